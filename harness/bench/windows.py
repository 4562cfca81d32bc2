"""The two windows a round measures for each contestant (harness/bench/rounds.py), on its warm session.

Backlog window (cost). The strategy's processes are stopped (SIGSTOP), `n` records are queued on its input
topic, and the processes are resumed: they drain the backlog flat out, in full micro-batches. The window's
cost is the CPU time of every process of the strategy (the scoring loop; the model server for `rest`; the
JVM of a Kafka Streams app), read per thread from the kernel (procs.cpu_ns), over the drain, per record.
While it drains, nothing else of the harness runs: the load generator has finished, and the measurer is
paused (it would take the other core at the contestant's own speed) — completion is read from the output and
dead-letter topics' end offsets, and the measurer checks every record afterwards. Results and CPU are read
every POLL_S: the cost and the flat-out rate are taken between 10% and 90% of the backlog (start-up and the
last partial batch left out), and the costs of its 0.1-second sub-spans are kept beside them.

Paired backlog window (`rounds.pairing: concurrent`). A strategy and the control drain their backlogs at the
same time; each one's cost is taken over the moments in which both drained in full.

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
from harness.results.base import Interference
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
class _Queued:
    """A backlog queued on one strategy's input while its processes were stopped (the first half of a window)."""

    s: AdapterSession
    offsets: EndOffsets
    prefix: str
    base: int  # the output topics' end offsets before the backlog
    sent: int
    scorer: list[int]
    server: list[int]

    def cpu(self) -> tuple[int, int]:
        return cpu_ns(self.scorer), cpu_ns(self.server)

    def done(self) -> int:
        return self.offsets.total() - self.base


def _queue(pairs: list[tuple[AdapterSession, EndOffsets, str, int]]) -> tuple[list[_Queued], list[int]]:
    """Stop each strategy's processes and queue its backlog (the generators run side by side); returns the
    queued backlogs and the pids to `thaw` — the caller thaws them, also when this fails half-way."""
    queued: list[_Queued] = []
    stopped: list[int] = []
    try:
        for s, offsets, prefix, n in pairs:
            assert s.measurer is not None and s.generator is not None, "use the session as a context manager"
            scorer, server = s.deployment.process_tree()
            s.measurer.pause()
            base = offsets.total()
            stopped += freeze(scorer + server)
            s.generator.start(np.zeros(n), prefix, time.time_ns() + START_DELAY_NS // 5)
            queued.append(_Queued(s, offsets, prefix, base, 0, scorer, server))
        for q in queued:
            assert q.s.generator is not None
            q.sent = q.s.generator.result(timeout_s=300).sent
    except BaseException:
        thaw(stopped)
        raise
    return queued, stopped


@dataclass
class Sample:
    """One reading during a drain: the time, and per side its results so far and its CPU (ns: scorer, server)."""

    t: float
    done: tuple[int, ...]
    cpu: tuple[tuple[int, int], ...]


def common_span(samples: list[Sample], n: tuple[int, ...], lo: float = 0.1, hi: float = 0.9) -> tuple[int, int] | None:
    """The readings (i, j) between which every side was draining in full: from the first at which all had
    passed `lo` of their backlog to the first at which any had passed `hi` (start-up and each side's tail left
    out). None when that span is too short to measure (fewer than 3 readings, or 10% of a backlog)."""
    k = range(len(n))
    i = next((x for x, s in enumerate(samples) if all(s.done[y] >= lo * n[y] for y in k)), None)
    if i is None:
        return None
    j = next((x for x in range(i, len(samples)) if any(samples[x].done[y] >= hi * n[y] for y in k)), None)
    if j is None or j - i < 3:
        return None
    if any(samples[j].done[y] - samples[i].done[y] < 0.1 * n[y] for y in k):
        return None
    return i, j


SPAN_S = 0.1  # the sub-spans of a drain whose costs are kept beside the window's (see `span_costs`)


def span_costs(samples: list[Sample], side: int, i: int, j: int, span_s: float = SPAN_S) -> list[float]:
    """CPU per result (µs) of one side over consecutive sub-spans of at least `span_s` between readings i and
    j: how the cost moved within the window (a host that slows for a moment shows as a few dear spans). A tail
    shorter than `span_s` joins the sub-span before it; a drain shorter than `span_s` is one sub-span. Empty
    only when the side scored nothing between i and j."""
    cuts = [i]
    for b in range(i + 1, j + 1):
        if samples[b].t - samples[cuts[-1]].t >= span_s:
            cuts.append(b)
    if cuts[-1] != j:
        if len(cuts) > 1:
            cuts[-1] = j
        else:
            cuts.append(j)
    out: list[float] = []
    for a, b in zip(cuts[:-1], cuts[1:], strict=True):
        got = samples[b].done[side] - samples[a].done[side]
        if got > 0:
            cpu = sum(samples[b].cpu[side]) - sum(samples[a].cpu[side])
            out.append(round(cpu / got / 1e3, 3))
    return out


def _drain(queued: list[_Queued], first: Sample, idle_timeout_s: float) -> tuple[list[Sample], list[float | None]]:
    """Read every side's results and CPU every POLL_S until all have drained (or none moved for
    `idle_timeout_s`); the readings and when each side finished."""
    samples = [first]
    finished: list[float | None] = [None] * len(queued)
    last_move = first.t
    while True:
        time.sleep(POLL_S)
        done = tuple(q.done() for q in queued)
        now = time.monotonic()
        samples.append(Sample(now, done, tuple(q.cpu() for q in queued)))
        if done != samples[-2].done:
            last_move = now
        for k, q in enumerate(queued):
            if finished[k] is None and done[k] >= q.sent:
                finished[k] = now
        if all(f is not None for f in finished) or now - last_move > idle_timeout_s:
            return samples, finished


def _measure(
    queued: list[_Queued], stopped: list[int], monitor: InterferenceMonitor, round_: int, position: int
) -> list[Window]:
    """Thaw the stopped processes, follow the drain, and make each side's window: its cost over the span in
    which every side drained in full (`common_span`), or over its whole drain when that span is too short."""
    try:
        first = Sample(time.monotonic(), tuple(0 for _ in queued), tuple(q.cpu() for q in queued))
        monitor.begin()
        t_start = time.time_ns()
    finally:
        thaw(stopped)
    samples, finished = _drain(queued, first, queued[0].s.ctx.sc.validity.drain_timeout_s)
    interference = monitor.end((t_start, time.time_ns()))
    sent = tuple(q.sent for q in queued)
    span = common_span(samples, sent)
    windows = []
    for k, q in enumerate(queued):
        e = next((x for x, s in enumerate(samples) if s.done[k] >= sent[k]), len(samples) - 1)
        end = samples[e]
        got = min(end.done[k], sent[k])
        seconds = (finished[k] or samples[-1].t) - first.t
        rate = got / seconds if seconds > 0 and got else None
        if span is not None:
            a, b = samples[span[0]], samples[span[1]]
            records = b.done[k] - a.done[k]
            cpu = (b.cpu[k][0] - a.cpu[k][0], b.cpu[k][1] - a.cpu[k][1])
            rate = records / (b.t - a.t) if b.t > a.t else rate
            spans = span_costs(samples, k, *span)
        else:
            records = got
            cpu = (end.cpu[k][0] - first.cpu[k][0], end.cpu[k][1] - first.cpu[k][1])
            spans = span_costs(samples, k, 0, e)
        w = _finish(q, got, cpu, records, t_start, interference, round_, position)
        w.rows_per_s = round(rate, 1) if rate else None
        w.seconds = round(seconds, 3)
        w.span_us_per_record = spans
        windows.append(w)
    return windows


def _finish(
    q: _Queued,
    got: int,
    cpu: tuple[int, int],
    records: int,
    t_start: int,
    interference: Interference,
    round_: int,
    position: int,
) -> Window:
    """The measurer checks every record of the backlog (it was paused: the records wait for it on the output
    topics; registered only now, so that its idle timeout counts from here and not from before the drain);
    the window, with `cpu` (ns: scorer, server) spent on `records` results."""
    m, sent = q.s.measurer, q.sent
    assert m is not None
    timeout_s = q.s.ctx.sc.validity.drain_timeout_s
    m.add_point(PointSpec(q.prefix, t_start, 0.0, 1.0, sent, np.zeros(sent)))
    m.resume()
    m.wait_drained(q.prefix, sent, timeout_s)
    scored, dead, _ = m.progress(q.prefix)
    duplicates = m.duplicates(q.prefix)
    m.forget(q.prefix)
    records = max(1, records)
    w = Window(
        round=round_,
        position=position,
        kind="backlog",
        records=sent,
        scored=scored,
        dead_lettered=dead,
        lost=max(0, sent - scored - dead),
        duplicates=duplicates,
        cpu_us_per_record=round((cpu[0] + cpu[1]) / records / 1e3, 3),
        server_cpu_us_per_record=round(cpu[1] / records / 1e3, 3) if q.server else None,
        interference=interference,
        busy=interference.busy,
    )
    if w.lost:
        w.problems.append(f"{w.lost:,} of {sent:,} records lost")
    if got < sent:
        w.problems.append(f"the backlog did not drain: {got:,} of {sent:,} results")
    return w


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
    queued, stopped = _queue([(s, offsets, prefix, n)])
    return _measure(queued, stopped, monitor, round_, position)[0]


def paired_backlog_window(
    s: AdapterSession,
    control: AdapterSession,
    monitor: InterferenceMonitor,
    offsets: tuple[EndOffsets, EndOffsets],
    prefixes: tuple[str, str],
    n: tuple[int, int],
    round_: int,
    position: int,
) -> tuple[Window, Window]:
    """A strategy and the control drain their backlogs at the same time, each on its own processes: whatever
    the host does to the cores' speed in those moments falls on both. Each side's cost is its CPU per result
    over the span in which both drained in full. Returns (the strategy's window, the control's); the
    strategy's `control_us_per_record` is the control's cost over the same span."""
    queued, stopped = _queue([(s, offsets[0], prefixes[0], n[0]), (control, offsets[1], prefixes[1], n[1])])
    strategy, ctl = _measure(queued, stopped, monitor, round_, position)
    ctl.control = True
    strategy.control_us_per_record = ctl.cpu_us_per_record if not ctl.problems else None
    return strategy, ctl


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
    m.forget(prefix)
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
        latency=latency_sample(lat, slo).model_copy(
            update={
                "queueing_p99_ms": point.queueing_ms.p99 if point.queueing_ms else None,
                "scoring_p99_ms": point.scoring_ms.p99 if point.scoring_ms else None,
                "delivery_p99_ms": point.delivery_ms.p99 if point.delivery_ms else None,
            }
        ),
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
