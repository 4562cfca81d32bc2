"""The replication matrix: each fault of cluster_faults.py with the scoring loop under load on the embedded
three-node cluster, in either guarantee, while a second scorer joins the group.

One row:
    topics placed so the input's and the output's partitions are led by different nodes (replication 3,
    min.insync.replicas 2); a scorer; a sender at a fixed rate (acks=all, idempotent); after `warm_s` the
    fault strikes and, at the same moment, a second scorer joins the group (a rebalance in the middle of the
    failover); `after_s` more of load; then the sender stops, everything is read back (read_committed) and
    accounted for (ledger.py), and the cluster is restored (stopped nodes started, every partition fully
    replicated, preferred leaders) for the next row.
The row's figures: sent, scored, dead-lettered, lost, duplicates, the longest gap in output and the p99 around
the fault (timeline.py).
"""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from harness.faults.cluster_faults import FAULTS, FaultRecord, Stage, restore
from harness.faults.ledger import RESULT, Ledger, Outcomes
from harness.faults.network import Isolation
from harness.faults.processes import CaseTopics, FaultError, Process, SteadySender, scorer
from harness.faults.timeline import Timing, samples
from harness.kafka.cluster import Cluster
from harness.kafka.config import KafkaTarget
from harness.kafka.topics import create_placed_topics

RATE_PER_S = 300.0
WARM_S = 8.0
AFTER_S = 15.0


@dataclass
class ClusterEnv:
    """What the matrix's rows share: the suite's cluster, isolation (or why not), a bundle's rows."""

    cluster: Cluster
    target: KafkaTarget
    bundle: Path
    payloads: list[bytes]
    work: Path
    log: Callable[[str], None]
    isolation: Isolation | None = None
    isolation_missing: str | None = None
    rate_per_s: float = RATE_PER_S
    warm_s: float = WARM_S
    after_s: float = AFTER_S
    rows: int = field(default=0)


def placement(n_nodes: int, first: int, partitions: int = 2) -> dict[str, list[list[int]]]:
    """Replica lists for the input, output and dead-letter topics: each topic's partitions all led by one
    node, a different node per topic (rotated by `first` from row to row)."""
    ids = list(range(1, n_nodes + 1))
    out: dict[str, list[list[int]]] = {}
    for k, name in enumerate(("input", "output", "dlq")):
        lead = ids[(first + k) % len(ids)]
        rest = [i for i in ids if i != lead][:2]
        out[name] = [[lead, *rest] if p % 2 == 0 else [lead, *reversed(rest)] for p in range(partitions)]
    return out


def run_row(env: ClusterEnv, fault_key: str, guarantee: str) -> Ledger:
    """One row of the matrix (see the module's docstring)."""
    fault = FAULTS[fault_key]
    if fault.needs_isolation and env.isolation is None:
        raise FaultError(env.isolation_missing or "isolation is not available here")
    state = env.cluster.state()
    if state is None:
        raise FaultError("the suite's cluster is not running")
    topics = CaseTopics.new(fault_key, guarantee, uuid.uuid4().hex[:6])
    places = placement(len(state.nodes), env.rows)
    env.rows += 1
    create_placed_topics(
        env.target, {topics.input: places["input"], topics.output: places["output"], topics.dlq: places["dlq"]}
    )
    stage = Stage(env.cluster, env.target, topics.input, topics.output, topics.group, env.isolation, env.log)
    outcomes = Outcomes(env.target, topics.output, topics.dlq).follow()
    notes: list[str] = []
    running: list[Process] = []
    sender: SteadySender | None = None
    rec = FaultRecord(fault_key)
    try:
        running.append(_scorer(env, topics, guarantee, 1))
        sender = SteadySender(env.target, topics.input, env.payloads, env.rate_per_s, prefix="r").start()
        time.sleep(env.warm_s)
        joiner = _Joiner(env, topics, guarantee, running, notes)
        joiner.start()
        fault.action(stage, rec)
        time.sleep(env.after_s)
        sender.stop()
        joiner.join(180)
        outcomes.wait_settled(sender.sent, idle_s=60, timeout_s=600)
    finally:
        if sender is not None:
            with contextlib.suppress(FaultError):  # raised above already, when it failed
                sender.stop()
        for p in running:
            code = p.stop()
            if code != 0:
                notes.append(f"{p.name} exited {code}: {p.log_tail(1)}")
        try:
            restore(stage)
        except Exception as e:  # the next row starts from a broken cluster: say so in this one
            notes.append(f"the cluster was not restored after the fault: {e}")
    outcomes.poll(1.0)
    expected = dict.fromkeys(sender.intended, RESULT)
    led = outcomes.ledger(expected)
    ss = samples(sender.intended, outcomes.arrived)
    led.timing = Timing.of(ss, outcomes.arrived.values(), rec.first, rec.last)
    led.notes = [rec.summary(), *notes, *led.notes]
    if len(sender.acked) != sender.sent:
        led.notes.append(f"the cluster acknowledged {len(sender.acked):,} of {sender.sent:,} records sent")
    outcomes.close()
    return led


def _scorer(env: ClusterEnv, topics: CaseTopics, guarantee: str, n: int) -> Process:
    name = f"{topics.input.split('.')[2]}-{guarantee}-scorer{n}"
    return scorer(name, env.target, env.bundle, topics, "native", guarantee, env.work)


class _Joiner(threading.Thread):
    """Starts the second scorer (it joins the group while the fault is on); a failure to join is a note."""

    def __init__(self, env: ClusterEnv, topics: CaseTopics, guarantee: str, running: list[Process],
                 notes: list[str]) -> None:  # fmt: skip
        super().__init__(name="joiner", daemon=True)
        self.env, self.topics, self.guarantee, self.running, self.notes = env, topics, guarantee, running, notes
        self.joined_at: float | None = None

    def run(self) -> None:
        t0 = time.time()
        try:
            self.running.append(_scorer(self.env, self.topics, self.guarantee, 2))
            self.joined_at = time.time()
            self.notes.append(f"second scorer joined {self.joined_at - t0:.1f} s after the fault began")
        except FaultError as e:
            self.notes.append(f"the second scorer did not join: {e}")


def _row(key: str) -> Callable[[ClusterEnv, str], Ledger]:
    def run(env: ClusterEnv, guarantee: str) -> Ledger:
        return run_row(env, key, guarantee)

    return run


MATRIX: dict[str, tuple[str, Callable[[ClusterEnv, str], Ledger]]] = {
    key: (fault.title, _row(key)) for key, fault in FAULTS.items()
}
