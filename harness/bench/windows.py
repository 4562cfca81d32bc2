"""The two windows a round measures for each contestant (harness/bench/rounds.py), on its warm session.

Backlog window (cost). The strategy's processes are stopped (SIGSTOP), `n` records are queued on its input
topic, and the processes are resumed: they drain the backlog flat out, in full micro-batches. The window's
cost is the CPU time of every process of the strategy (the scoring loop; the model server for `rest`; the
JVM of a Kafka Streams app), read per thread from the kernel (procs.cpu_ns), over the drain, per record.
While it drains, nothing else of the harness runs: the load generator has finished, and the measurer is
paused (it would take the other core at the contestant's own speed) — completion is read from the output and
dead-letter topics' end offsets, and the measurer checks every record afterwards. The flat-out rate is the
slope of those end offsets between 10% and 90% of the backlog (start-up and the last partial batch left out).

Load window (latency). Open-loop Poisson load at a fraction of this round's flat-out rate, latency from the
intended send time (harness/bench/session.py `run_point`), the CPU per record at that load beside it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from harness.bench.interference import InterferenceMonitor
from harness.bench.measure import PointSpec
from harness.bench.procs import cpu_ns, freeze, thaw
from harness.bench.session import START_DELAY_NS, AdapterSession
from harness.kafka.config import KafkaTarget
from harness.kafka.topics import partitions_when_listed
from harness.results.cost import LatencySample, Window
from harness.results.point import NO_LOST, SCHEDULE_KEPT, Point
from harness.scenario import LoadProfile

POLL_S = 0.02  # how often a backlog window reads the output's end offsets


class EndOffsets:
    """The sum of the end offsets of some topics' partitions (a result or dead letter is one record each)."""

    def __init__(self, target: KafkaTarget, topics: list[str]) -> None:
        from confluent_kafka import Consumer, TopicPartition

        self.consumer = Consumer(
            target.client_config(**{"group.id": "harness-end-offsets", "enable.auto.commit": False})
        )
        listed = partitions_when_listed(self.consumer, topics)
        self.parts = [TopicPartition(t, p) for t, ps in listed.items() for p in ps]

    def total(self) -> int:
        return sum(self.consumer.get_watermark_offsets(tp, timeout=5, cached=False)[1] for tp in self.parts)

    def close(self) -> None:
        self.consumer.close()


@dataclass
class Drain:
    records: int
    seconds: float
    rate_per_s: float | None
    complete: bool


def drain(offsets: EndOffsets, base: int, n: int, idle_timeout_s: float) -> Drain:
    """Wait until `n` records past `base` are on the output topics (or none came for `idle_timeout_s`); the
    rate between 10% and 90% of them."""
    t0 = last_move = time.monotonic()
    seen = 0
    marks: dict[float, float] = {}  # share -> first time it was reached
    while True:
        got = offsets.total() - base
        now = time.monotonic()
        if got > seen:
            seen, last_move = got, now
        for share in (0.1, 0.9):
            if share not in marks and got >= share * n:
                marks[share] = now
        if got >= n:
            break
        if now - last_move > idle_timeout_s:
            break
        time.sleep(POLL_S)
    seconds = time.monotonic() - t0
    rate = min(seen, n) / seconds if seen and seconds > 0 else None
    # the slope between 10% and 90% leaves out the wake-up and the last partial batch, when it spans enough
    # readings of the end offsets to be measured (else the whole drain, start-up included)
    if 0.1 in marks and 0.9 in marks and marks[0.9] - marks[0.1] >= 5 * POLL_S:
        rate = 0.8 * n / (marks[0.9] - marks[0.1])
    return Drain(records=min(seen, n), seconds=seconds, rate_per_s=rate, complete=seen >= n)


def backlog_window(
    s: AdapterSession,
    monitor: InterferenceMonitor,
    offsets: EndOffsets,
    prefix: str,
    n: int,
    round_: int,
    position: int,
) -> Window:
    """The strategy's CPU per record draining `n` queued records flat out (see the module's docstring)."""
    ctx, m, gen = s.ctx, s.measurer, s.generator
    assert m is not None and gen is not None, "use the session as a context manager"
    scorer, server = s.deployment.process_tree()
    m.pause()
    base = offsets.total()
    stopped = freeze(scorer + server)
    try:
        start_at = time.time_ns() + START_DELAY_NS // 5
        gen.start(np.zeros(n), prefix, start_at)
        rep = gen.result(timeout_s=300)
        c0 = cpu_ns(scorer), cpu_ns(server)
        monitor.begin()
        t_start = time.time_ns()
    finally:
        thaw(stopped)
    d = drain(offsets, base, rep.sent, ctx.sc.validity.drain_timeout_s)
    c1 = cpu_ns(scorer), cpu_ns(server)
    interference = monitor.end((t_start, time.time_ns()))
    # the measurer was paused: the records wait for it on the output topics; registered only now, so that its
    # idle timeout counts from here and not from before the drain
    m.add_point(PointSpec(prefix, t_start, 0.0, 1.0, rep.sent, np.zeros(rep.sent)))
    m.resume()
    m.wait_drained(prefix, rep.sent, ctx.sc.validity.drain_timeout_s)
    scored, dead, _ = m.progress(prefix)
    dup = m.duplicates(prefix)
    records = max(1, d.records)  # the drain's own count (the measurer checks each record separately)
    total_ns = (c1[0] - c0[0]) + (c1[1] - c0[1])
    w = Window(
        round=round_,
        position=position,
        kind="backlog",
        records=rep.sent,
        scored=scored,
        dead_lettered=dead,
        lost=max(0, rep.sent - scored - dead),
        duplicates=dup,
        cpu_us_per_record=round(total_ns / records / 1e3, 3),
        server_cpu_us_per_record=round((c1[1] - c0[1]) / records / 1e3, 3) if server else None,
        rows_per_s=round(d.rate_per_s, 1) if d.rate_per_s else None,
        seconds=round(d.seconds, 3),
        interference=interference,
        busy=interference.busy,
    )
    if w.lost:
        w.problems.append(f"{w.lost:,} of {rep.sent:,} records lost")
    if not d.complete:
        w.problems.append(f"the backlog did not drain: {d.records:,} of {rep.sent:,} results")
    return w


def load_window(
    s: AdapterSession, prefix: str, fraction: float, rate: float, profile: LoadProfile, round_: int, position: int
) -> tuple[Window, np.ndarray]:
    """Open-loop Poisson load at `rate` (= `fraction` of this round's flat-out rate): the window and the
    latencies (ms) of its measured records, for pooling over the rounds."""
    m = s.measurer
    assert m is not None, "use the session as a context manager"
    m.resume()
    point: Point = s.run_point(profile, prefix, "load")
    lat = m.latencies_ms(prefix)
    slo = s.ctx.sc.slo.p99_ms
    c = point.counts
    w = Window(
        round=round_,
        position=position,
        kind="load",
        fraction=fraction,
        offered_per_s=point.offered_per_s,
        records=c.sent,
        scored=c.scored,
        dead_lettered=c.dead_lettered,
        lost=c.lost,
        duplicates=c.duplicates,
        cpu_us_per_record=_us(point.cost.total_cpu_s_per_1000() if point.cost else None),
        server_cpu_us_per_record=(
            point.cost.server_cpu_s_per_1000 * 1000 if point.cost and point.cost.server_cpu_s_per_1000 else None
        ),
        rows_per_s=point.achieved_per_s(),
        seconds=profile.duration_s,
        latency=latency_sample(lat, slo),
        accuracy=point.accuracy,
        generator_behind_share=point.generator.behind_share if point.generator else None,
        interference=point.interference,
        busy=bool(point.interference and point.interference.busy),
    )
    for check in point.checks:
        if not check.passed and check.name in (SCHEDULE_KEPT, NO_LOST):
            w.problems.append(f"{check.name}: {check.detail}")
    return w, lat


def _us(cpu_s_per_1000: float | None) -> float | None:
    return round(cpu_s_per_1000 * 1000, 3) if cpu_s_per_1000 is not None else None


def latency_sample(lat_ms: np.ndarray, slo_ms: float) -> LatencySample:
    if len(lat_ms) == 0:
        return LatencySample()

    def q(p: float) -> float:
        return round(float(np.percentile(lat_ms, p)), 3)

    return LatencySample(
        measured=int(len(lat_ms)),
        over_slo=int((lat_ms > slo_ms).sum()),
        p50_ms=q(50),
        p99_ms=q(99),
        p999_ms=q(99.9),
        max_ms=round(float(lat_ms.max()), 3),
    )
