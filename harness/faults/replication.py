"""The replication matrix: each fault of cluster_faults.py with the scoring loop under load on the embedded
three-node cluster, in either guarantee, while a second scorer joins the group.

One row:
    topics placed so the input's and the output's partitions are led by different nodes (replication 3,
    min.insync.replicas 2); a scorer; a sender at a fixed rate (acks=all, idempotent); once the pipeline is
    steady (its start-up backlog drained) and 5 s more, the fault strikes and, at the same moment, a second
    scorer joins the group (a rebalance in the middle of the failover); `after_s` more of load; then the
    sender stops, everything is read back (read_committed) and accounted for (ledger.py), and the cluster is
    restored (stopped nodes started, every partition fully replicated, preferred leaders) for the next row.
The row's figures: sent, scored, dead-lettered, lost, duplicates, the longest gap in output and the p99 around
the fault (timeline.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from harness.faults.cluster_faults import FAULTS, FaultRecord, Stage, restore
from harness.faults.ledger import Ledger
from harness.faults.pipeline import ClusterEnv, Pipeline
from harness.faults.processes import FaultError
from harness.faults.timeline import Sample, Timing

WARM_S = 5.0
AFTER_S = 15.0


def run_row(
    env: ClusterEnv,
    fault_key: str,
    guarantee: str,
    warm_s: float = WARM_S,
    after_s: float = AFTER_S,
    on_samples: Callable[[list[Sample], FaultRecord], None] | None = None,
) -> Ledger:
    """One row of the matrix (see the module's docstring). `on_samples` gets every record's latency and the
    fault's actions (for a closer look at one row)."""
    fault = FAULTS[fault_key]
    if fault.needs_isolation and env.isolation is None:
        raise FaultError(env.isolation_missing or "isolation is not available here")
    p = Pipeline(env, fault_key, guarantee)
    t = p.topics
    stage = Stage(env.cluster, env.target, t.input, t.output, t.group, env.isolation, env.log)
    rec = FaultRecord(fault_key)
    restored: str | None = None
    try:
        p.start()
        time.sleep(warm_s)
        p.wait_steady()
        time.sleep(5.0)  # the baseline the row's p99 before the fault is read from
        p.join()
        fault.action(stage, rec)
        time.sleep(after_s)
        led = p.finish()
    finally:
        p.abort()
        try:
            restore(stage)
        except Exception as e:  # the next row starts from a broken cluster: say so in this one
            restored = f"the cluster was not restored after the fault: {e}"
        p.close()
    ss = p.samples()
    led.timing = Timing.of(ss, p.arrivals(), rec.first, rec.last)
    if on_samples is not None:
        on_samples(ss, rec)
    led.notes = [rec.summary(), *led.notes, *([restored] if restored else [])]
    return led


def _row(key: str) -> Callable[[ClusterEnv, str], Ledger]:
    def run(env: ClusterEnv, guarantee: str) -> Ledger:
        return run_row(env, key, guarantee)

    return run


MATRIX: dict[str, tuple[str, Callable[[ClusterEnv, str], Ledger]]] = {
    key: (fault.title, _row(key)) for key, fault in FAULTS.items()
}
