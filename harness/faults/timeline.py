"""What a fault did to latency, from two clocks the harness owns: each record's intended send time (the
sender's fixed schedule) and the time its output became readable (read_committed). No I/O here.

    latency      output readable − intended send time (so a stall counts in full for every record due
                 during it: no coordinated omission)
    longest gap  the longest time no new output became readable, between the first and the last output
    p99 around   the 99th percentile of the records intended from `before_s` before the fault's first
                 action to `after_s` after its last one
    recovery     from the fault's start until latency stays under a threshold for `hold_s` of records
    timeline     per bucket of intended time: count, p50, p99, max
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Sample:
    intended: float  # wall clock, seconds
    latency_s: float


def samples(intended: dict[str, float], arrived: dict[str, float]) -> list[Sample]:
    """One sample per record that arrived, in intended-time order."""
    out = [Sample(t, arrived[rid] - t) for rid, t in intended.items() if rid in arrived]
    out.sort(key=lambda s: s.intended)
    return out


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-quantile (0..1) by the nearest-rank method; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q * len(ordered)))
    return ordered[rank - 1]


def longest_gap(arrivals: Iterable[float]) -> tuple[float, float | None]:
    """(the longest interval between consecutive arrivals, when it began); (0, None) for fewer than two."""
    ordered = sorted(arrivals)
    best, at = 0.0, None
    for a, b in zip(ordered, ordered[1:], strict=False):
        if b - a > best:
            best, at = b - a, a
    return best, at


def window(ss: Sequence[Sample], start: float, end: float) -> list[float]:
    """Latencies of the records intended in [start, end)."""
    return [s.latency_s for s in ss if start <= s.intended < end]


def p99_around(ss: Sequence[Sample], first_action: float, last_action: float, before_s: float = 5.0,
               after_s: float = 15.0) -> float | None:  # fmt: skip
    return percentile(window(ss, first_action - before_s, last_action + after_s), 0.99)


@dataclass(frozen=True)
class Bucket:
    start: float  # seconds since the run's start
    count: int
    p50_ms: float | None
    p99_ms: float | None
    max_ms: float | None


def buckets(ss: Sequence[Sample], t0: float, width_s: float) -> list[Bucket]:
    """Latency per `width_s` of intended time from t0 (empty buckets included, count 0)."""
    if not ss:
        return []
    n = int((ss[-1].intended - t0) // width_s) + 1
    groups: list[list[float]] = [[] for _ in range(max(n, 0))]
    for s in ss:
        k = int((s.intended - t0) // width_s)
        if 0 <= k < n:
            groups[k].append(s.latency_s)
    out = []
    for k, g in enumerate(groups):
        p50, p99 = percentile(g, 0.5), percentile(g, 0.99)
        out.append(
            Bucket(
                round(k * width_s, 3),
                len(g),
                None if p50 is None else round(p50 * 1000, 1),
                None if p99 is None else round(p99 * 1000, 1),
                round(max(g) * 1000, 1) if g else None,
            )
        )
    return out


def recovery_s(ss: Sequence[Sample], fault_start: float, until: float, threshold_s: float,
               hold_s: float = 10.0) -> float | None:  # fmt: skip
    """Seconds from `fault_start` until latency is back under `threshold_s` for good: from the first record
    over the threshold (intended at or after fault_start - the records already queued count too), the first
    record from which `hold_s` of consecutive records (by intended time) all stay under it. 0 when no record
    in [fault_start, until) went over; None when latency never settled before `until`."""
    # records intended shortly before the fault may be the ones it held up
    in_window = [s for s in ss if fault_start - 2.0 <= s.intended < until]
    first_over = next((i for i, s in enumerate(in_window) if s.latency_s > threshold_s), None)
    if first_over is None:
        return 0.0
    calm_from: int | None = None
    for i in range(first_over, len(in_window)):
        s = in_window[i]
        if s.latency_s > threshold_s:
            calm_from = None
            continue
        if calm_from is None:
            calm_from = i
        if s.intended - in_window[calm_from].intended >= hold_s:
            return max(0.0, in_window[calm_from].intended - fault_start)
    return None


@dataclass(frozen=True)
class Timing:
    """A matrix row's figures around its fault."""

    longest_gap_s: float
    gap_at_s: float | None  # when that gap began, seconds from the fault's first action
    p99_around_ms: float | None
    p99_before_ms: float | None  # records intended 8 to 3 s before the fault (the row's baseline, untouched by it)
    fault_s: float  # from the fault's first action to its last

    @classmethod
    def of(cls, ss: Sequence[Sample], arrivals: Iterable[float], first_action: float, last_action: float) -> Timing:
        gap, at = longest_gap(arrivals)
        around = p99_around(ss, first_action, last_action)
        before = percentile(window(ss, first_action - 8.0, first_action - 3.0), 0.99)
        return cls(
            longest_gap_s=round(gap, 3),
            gap_at_s=None if at is None else round(at - first_action, 1),
            p99_around_ms=None if around is None else round(around * 1000, 1),
            p99_before_ms=None if before is None else round(before * 1000, 1),
            fault_s=round(last_action - first_action, 1),
        )
