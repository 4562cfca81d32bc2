"""Cost measured in randomized rounds: the windows `harness run` measures and what they add up to.

A run is rounds; each round measures every contestant once, in a fresh random order (harness/bench/rounds.py):
a *backlog window* (records queued while the strategy's processes are stopped, then drained flat out: full
micro-batches) gives its CPU time per record, read from the kernel for every process the strategy runs; *load
windows* offer open-loop Poisson load at fixed fractions of its own flat-out rate and give latency from the
intended send time.

Whatever the host does to the speed of a core falls on every contestant of a round alike, so a strategy is
judged by its cost as a ratio to the control (the identity scorer: the loop with no model) measured in the
same round, and by the median of those ratios over the rounds with an order-statistic interval
(harness/results/stats.py). Its model's own cost is its cost minus the control's in the same round; records
per second per core is 1 / cost. The flat-out rate and the latency at a load are this machine's figures: they
move with the host, and the report says so.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from typing import Literal

from pydantic import Field

from harness.results import early_stopping
from harness.results.base import Interference, Model
from harness.results.point import Accuracy
from harness.results.stats import Stat, stat

WindowKind = Literal["backlog", "load"]


class LatencySample(Model):
    """Latency of the measured samples of one window, or of several pooled (ms from the intended send time)."""

    measured: int = 0
    over_slo: int = 0
    p50_ms: float | None = None
    p99_ms: float | None = None
    p999_ms: float | None = None
    max_ms: float | None = None
    # one window's: where its p99 went — waiting to be consumed by the scorer (send, broker, the scorer's
    # queue), the scoring itself (batch wait included) and the result's way to the measurer
    queueing_p99_ms: float | None = None
    scoring_p99_ms: float | None = None
    delivery_p99_ms: float | None = None


class Window(Model):
    """One measured window of one contestant in one round."""

    round: int
    position: int  # where in the round's random order it ran (0 = first)
    kind: WindowKind
    control: bool = False  # a control window: the identity scorer measured beside or between contestants' windows
    fraction: float | None = None  # load windows: the share of this round's flat-out rate offered
    offered_per_s: float | None = None
    records: int = 0  # sent
    scored: int = 0
    dead_lettered: int = 0
    lost: int = 0
    duplicates: int = 0
    cpu_us_per_record: float | None = None  # every process of the strategy (scorer and model server)
    server_cpu_us_per_record: float | None = None  # of which the model server's
    # backlog windows of a contestant: what this window's ratio is taken to — the control's CPU per record
    # over the same moments (`rounds.pairing: concurrent`), or the median of the control's windows in the
    # same round (sequential)
    control_us_per_record: float | None = None
    rows_per_s: float | None = None  # backlog: the flat-out rate; load: the achieved rate
    seconds: float | None = None
    # backlog: the cost (µs per result) of each 0.1-second sub-span of the drain, in order (for how the cost
    # moved within the window; the window's cost is over the whole span)
    span_us_per_record: list[float] = Field(default_factory=list)
    latency: LatencySample | None = None
    accuracy: Accuracy | None = None  # load windows: each score against the reference, AUC on the same records
    generator_behind_share: float | None = None
    problems: list[str] = Field(default_factory=list)  # why this window's figures do not count
    interference: Interference | None = None
    busy: bool = False  # CPU steal or other processes over the thresholds during the window
    superseded: bool = False  # busy, and measured again in the same round: the repeat counts instead
    repeat: bool = False  # the second measurement of a busy window
    warmup: bool = False  # the warm-up round: sizes the backlogs, warms the processes; not counted
    capped: bool = False  # load window: the fraction's rate was above the harness's own ceilings

    @property
    def counts(self) -> bool:
        return not self.superseded and not self.warmup and not self.problems and not self.control

    @property
    def ratio(self) -> float | None:
        """This window's CPU per record over the control's in the same round."""
        if self.cpu_us_per_record and self.control_us_per_record:
            return self.cpu_us_per_record / self.control_us_per_record
        return None


class RoundOrder(Model):
    """The order a round measured the contestants in (the backlog windows, then the load windows)."""

    round: int
    warmup: bool = False  # the first round warms every process up and sizes the backlogs; not counted
    backlog_order: list[str] = Field(default_factory=list)
    load_order: list[str] = Field(default_factory=list)
    seconds: float | None = None


class FractionResult(Model):
    """Latency at one fraction of the strategy's own flat-out rate, pooled over the counted rounds."""

    fraction: float
    offered_per_s: Stat | None = None  # the rates that fraction meant, round by round
    latency: LatencySample = Field(default_factory=LatencySample)
    windows: int = 0
    invalid_windows: int = 0
    min_samples: int = 0  # early stopping: samples needed for the p99 to hold with this many over the SLO
    passed: bool | None = None  # p99 <= SLO at 99% confidence; None: too few samples to tell either way


class CostSummary(Model):
    """What a strategy's windows add up to over the counted rounds."""

    rounds: int = 0
    cpu_us_per_record: Stat | None = None  # backlog windows
    ratio: Stat | None = None  # to the control, round by round
    model_us_per_record: Stat | None = None  # minus the control's cost in the same round
    records_per_s_per_core: float | None = None  # 1 / the median cost
    flat_out_per_s: Stat | None = None  # this machine's figure
    load_cpu_us_per_record: dict[str, Stat] = Field(default_factory=dict)  # by fraction ("0.5")
    remeasured: int = 0  # busy windows measured again in their round
    peak_rss_mib: float | None = None  # the scorer's peak resident memory over the run
    server_peak_rss_mib: float | None = None
    highest_fraction_passed: float | None = None
    rate_at_highest_fraction: float | None = None  # what that fraction meant on this machine (median)


def counted_backlog_costs(windows: Iterable[Window]) -> dict[int, float]:
    """round -> the strategy's CPU µs per record in that round's counted backlog window."""
    out: dict[int, float] = {}
    for w in windows:
        if w.kind == "backlog" and w.counts and w.cpu_us_per_record:
            out[w.round] = w.cpu_us_per_record
    return out


def within_round(windows: Iterable[Window]) -> tuple[list[float], list[float]]:
    """(ratios, differences) of each counted backlog window to the control's in the same round: the only
    comparison made (the control was measured seconds away, by the same kernel accounting)."""
    ratios, diffs = [], []
    for w in windows:
        if w.kind == "backlog" and w.counts and w.cpu_us_per_record and w.control_us_per_record:
            ratios.append(w.cpu_us_per_record / w.control_us_per_record)
            diffs.append(w.cpu_us_per_record - w.control_us_per_record)
    return ratios, diffs


def pool_latency(samples: Sequence[LatencySample]) -> LatencySample:
    """Pooled counts; the percentiles of the pool come from the caller (it holds the raw latencies)."""
    return LatencySample(measured=sum(s.measured for s in samples), over_slo=sum(s.over_slo for s in samples))


def judge_fraction(latency: LatencySample) -> tuple[bool | None, int]:
    """(passed, samples needed): True when the p99 holds at 99% confidence (early stopping), False when it is
    missed at 99% confidence, None when the samples cannot tell yet."""
    need = early_stopping.min_samples(latency.over_slo)
    if latency.measured == 0:
        return None, need
    if early_stopping.holds(latency.measured, latency.over_slo):
        return True, need
    if early_stopping.fails(latency.measured, latency.over_slo):
        return False, need
    return None, need


def summarize(windows: Sequence[Window], confidence: float) -> CostSummary:
    """The cost summary of one strategy's windows over the counted rounds."""
    costs = counted_backlog_costs(windows)
    ratios, diffs = within_round(windows)
    cpu = stat(list(costs.values()), confidence)
    s = CostSummary(
        rounds=len(costs),
        cpu_us_per_record=cpu,
        ratio=stat(ratios, confidence),
        model_us_per_record=stat(diffs, confidence),
        records_per_s_per_core=round(1e6 / cpu.median, 1) if cpu and cpu.median > 0 else None,
        flat_out_per_s=stat(
            [w.rows_per_s for w in windows if w.kind == "backlog" and w.counts and w.rows_per_s], confidence
        ),
        remeasured=sum(1 for w in windows if w.repeat),
    )
    by_fraction: dict[float, list[float]] = {}
    for w in windows:
        if w.kind == "load" and w.counts and w.fraction is not None and w.cpu_us_per_record:
            by_fraction.setdefault(w.fraction, []).append(w.cpu_us_per_record)
    for f, vals in sorted(by_fraction.items()):
        st = stat(vals, confidence)
        if st is not None:
            s.load_cpu_us_per_record[f"{f:g}"] = st
    return s


def highest_passed(fractions: Sequence[FractionResult]) -> FractionResult | None:
    """The highest fraction whose p99 held, when every lower fraction held too (a pass above a failure is
    not a capacity to plan with)."""
    best = None
    for f in sorted(fractions, key=lambda f: f.fraction):
        if f.passed is not True:
            break
        best = f
    return best


def median_or_none(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None
