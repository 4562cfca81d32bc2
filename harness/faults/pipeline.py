"""One guarantee's scoring pipeline on the suite's cluster, as the matrix's rows and the soak run it: topics
placed on chosen nodes, scorer processes that join and leave the group, a steady open-loop sender, and the
outcomes read back as they become readable (read_committed)."""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from harness.faults.ledger import RESULT, Ledger, Outcomes
from harness.faults.network import Isolation
from harness.faults.processes import CaseTopics, FaultError, Process, SteadySender, scorer
from harness.faults.timeline import Sample, samples
from harness.kafka.cluster import Cluster
from harness.kafka.config import KafkaTarget
from harness.kafka.topics import create_placed_topics

RATE_PER_S = 200.0
STEADY_LATENCY_S = 3.0  # a pipeline is steady when the records of the last seconds came out within this


@dataclass
class ClusterEnv:
    """What the matrix's rows and the soak share: the suite's cluster, isolation (or why not), a bundle's rows."""

    cluster: Cluster
    target: KafkaTarget
    bundle: Path
    payloads: list[bytes]
    work: Path
    log: Callable[[str], None]
    isolation: Isolation | None = None
    isolation_missing: str | None = None
    rate_per_s: float = RATE_PER_S
    pipelines: int = field(default=0)  # pipelines created so far (their topics' leaders rotate)


def placement(n_nodes: int, first: int, partitions: int = 2) -> dict[str, list[list[int]]]:
    """Replica lists for the input, output and dead-letter topics: each topic's partitions all led by one
    node, a different node per topic (rotated by `first`)."""
    ids = list(range(1, n_nodes + 1))
    out: dict[str, list[list[int]]] = {}
    for k, name in enumerate(("input", "output", "dlq")):
        lead = ids[(first + k) % len(ids)]
        rest = [i for i in ids if i != lead][:2]
        out[name] = [[lead, *rest] if p % 2 == 0 else [lead, *reversed(rest)] for p in range(partitions)]
    return out


class Pipeline:
    def __init__(self, env: ClusterEnv, name: str, guarantee: str, rate_per_s: float | None = None) -> None:
        self.env, self.name, self.guarantee = env, name, guarantee
        self.rate = rate_per_s or env.rate_per_s
        self.topics = CaseTopics.new(name, guarantee, uuid.uuid4().hex[:6])
        state = env.cluster.state()
        if state is None:
            raise FaultError("the suite's cluster is not running")
        places = placement(len(state.nodes), env.pipelines)
        env.pipelines += 1
        t = self.topics
        create_placed_topics(env.target, {t.input: places["input"], t.output: places["output"], t.dlq: places["dlq"]})
        self.outcomes = Outcomes(env.target, t.output, t.dlq).follow()
        self.scorers: list[Process] = []
        self.sender: SteadySender | None = None
        self.notes: list[str] = []
        self._n = 0
        self._joiners: list[threading.Thread] = []

    # ---- processes ----------------------------------------------------------------------------------
    def start(self) -> Pipeline:
        """The first scorer (READY), then the sender."""
        self.scorers.append(self._scorer())
        self.sender = SteadySender(self.env.target, self.topics.input, self.env.payloads, self.rate,
                                   prefix=self.guarantee[0])  # fmt: skip
        self.sender.start()
        return self

    def _scorer(self) -> Process:
        self._n += 1
        env = self.env
        name = f"{self.name}-{self.guarantee}-scorer{self._n}"
        return scorer(name, env.target, env.bundle, self.topics, "native", self.guarantee, env.work)

    def wait_steady(self, timeout_s: float = 120.0, window_s: float = 5.0) -> float | None:
        """Until the start-up backlog has drained: every record intended in a `window_s` window ending 2 s ago
        has come out, each within STEADY_LATENCY_S. A new exactly-once pipeline on a fresh group and topics
        needs this: its first transactions (group load, transaction-log load, partition registration on three
        replicas) took 10-30 s on the shared machine, and a fault struck during that backlog would be judged by
        the start-up's latency, not its own. Returns the seconds waited, None when it never got steady."""
        sender = self.sender
        if sender is None:
            return None
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout_s:
            now = time.time()
            lo, hi = now - 2.0 - window_s, now - 2.0
            due = [(rid, t) for rid, t in list(sender.intended.items())[-int(self.rate * (window_s + 3)) :]
                   if lo <= t < hi]  # fmt: skip
            arrived = self.outcomes.arrived
            if due and all(rid in arrived and arrived[rid] - t <= STEADY_LATENCY_S for rid, t in due):
                return time.monotonic() - t0
            time.sleep(0.5)
        self.notes.append(f"the pipeline was not steady after {timeout_s:.0f} s (start-up backlog)")
        return None

    def join(self) -> None:
        """Start another scorer in the background (it joins the group); a failure to join becomes a note."""
        t0 = time.time()

        def run() -> None:
            try:
                self.scorers.append(self._scorer())
                self.notes.append(f"a scorer joined {time.time() - t0:.1f} s after the fault began")
            except FaultError as e:
                self.notes.append(f"a scorer did not join: {e}")

        th = threading.Thread(target=run, name=f"join-{self.name}", daemon=True)
        th.start()
        self._joiners.append(th)

    def wait_joined(self, timeout_s: float = 180.0) -> None:
        for th in self._joiners:
            th.join(timeout_s)
        self._joiners = []

    def leave(self) -> None:
        """The oldest scorer leaves the group (SIGTERM: it finishes its batch, commits and exits)."""
        if len(self.scorers) > 1:
            self._stop(self.scorers.pop(0))

    def _stop(self, p: Process) -> None:
        code = p.stop()
        if code != 0:
            self.notes.append(f"{p.name} exited {code}: {p.log_tail(1)}")

    def scorers_alive(self) -> int:
        return sum(1 for p in self.scorers if p.proc.poll() is None)

    # ---- the account ----------------------------------------------------------------------------
    def finish(self, settle_idle_s: float = 60.0) -> Ledger:
        """Stop sending, wait until every record is accounted for (or nothing came for `settle_idle_s`), stop
        the scorers, and account for every record sent."""
        sender = self.sender
        if sender is None:
            raise FaultError("the pipeline was never started")
        try:
            sender.stop()
            self.wait_joined()
            self.outcomes.wait_settled(sender.sent, idle_s=settle_idle_s, timeout_s=900)
        finally:
            self.abort()
        self.outcomes.poll(1.0)
        led = self.outcomes.ledger(dict.fromkeys(sender.intended, RESULT))
        led.notes = [*self.notes, *led.notes]
        if len(sender.acked) != sender.sent:
            led.notes.append(f"the cluster acknowledged {len(sender.acked):,} of {sender.sent:,} records sent")
        return led

    def abort(self) -> None:
        """Stop everything (idempotent)."""
        if self.sender is not None:
            with contextlib.suppress(FaultError):  # raised by finish() already, when it failed
                self.sender.stop()
        self.wait_joined(30)
        while self.scorers:
            self._stop(self.scorers.pop(0))

    def samples(self) -> list[Sample]:
        return samples(self.sender.intended if self.sender else {}, self.outcomes.arrived)

    def arrivals(self) -> list[float]:
        return list(self.outcomes.arrived.values())

    def close(self) -> None:
        self.abort()
        self.outcomes.close()
