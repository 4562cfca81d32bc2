"""What a run needs to know of the embedded Kafka it measures on (the single broker or the cluster): its
processes (their CPU is the run's own, not interference), their GC logs (a pause inside a window disturbs
it), when it started and a folder for markers such as "warmed up"."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from harness.kafka.config import KafkaTarget


@dataclass
class Embedded:
    root: Path
    started_at: float  # the latest start of any of its nodes
    ident: str  # changes whenever a node is restarted
    pids: list[int] = field(default_factory=list)
    gc_logs: list[Path] = field(default_factory=list)
    brokers: int = 1


def embedded(target: KafkaTarget) -> Embedded | None:
    """The embedded broker or cluster `target` points at, while it runs; None for a cluster the user named."""
    if not target.embedded:
        return None
    if target.brokers > 1:
        from harness.kafka.cluster import Cluster

        c = Cluster()
        cst = c.running()
        if cst is None:
            return None
        return Embedded(
            root=c.root,
            started_at=max(n.started_at for n in cst.nodes),
            ident=",".join(str(n.pid) for n in cst.nodes),
            pids=[n.pid for n in cst.nodes],
            gc_logs=[c.node_dir(n.node_id).gc_log for n in cst.nodes],
            brokers=len(cst.nodes),
        )
    from harness.kafka.broker import Broker

    b = Broker()
    st = b.running()
    if st is None:
        return None
    return Embedded(root=b.root, started_at=st.started_at, ident=str(st.pid), pids=[st.pid], gc_logs=[b.gc_log])
