"""Figures from repeated trials: the median, its distribution-free interval, and whether two figures differ.

A figure measured in k independent trials is reported as its median with an order-statistic confidence
interval for the median: [x(j), x(k+1-j)], the widest symmetric pair of order statistics whose coverage
1 - 2·P(Binomial(k, 1/2) < j) reaches the confidence asked for. No distribution is assumed. With few trials
the coverage cannot reach 95%: for k = 3 the interval is [min, max] and covers the median with 75%
probability, for k = 5 94%, for k = 6 97% — so the interval records the coverage it achieved, and the
report says it.

Two figures differ only when their intervals are apart; overlapping intervals are a tie. A regression (or an
improvement) must also exceed a threshold beyond the gap between the intervals.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

DEFAULT_CONFIDENCE = 0.95


class Stat(BaseModel):
    """One figure over k trials: median, interval (lo..hi) with the coverage it achieves, min, max, values."""

    model_config = ConfigDict(extra="ignore")

    median: float
    lo: float
    hi: float
    coverage: float = Field(description="probability that [lo, hi] holds the true median")
    min: float
    max: float
    n: int
    values: list[float] = Field(default_factory=list)

    @property
    def half_width_pct(self) -> float:
        """Half the interval's width as a share of the median, in percent (0 for a single trial)."""
        if self.median == 0:
            return 0.0 if self.hi == self.lo else math.inf
        return (self.hi - self.lo) / 2.0 / abs(self.median) * 100.0

    def fmt(self, f: object = None) -> str:
        """ "median [lo–hi]" with the caller's number formatter."""
        fn = f if callable(f) else (lambda v: f"{v:g}")
        if self.n <= 1 or self.lo == self.hi:
            return str(fn(self.median))
        return f"{fn(self.median)} [{fn(self.lo)}–{fn(self.hi)}]"


def _binom_cdf_half(k: int, n: int) -> float:
    """P(Binomial(n, 1/2) <= k)."""
    if k < 0:
        return 0.0
    return sum(math.comb(n, i) for i in range(0, min(k, n) + 1)) / 2.0**n


def median_interval(values: Sequence[float], confidence: float = DEFAULT_CONFIDENCE) -> tuple[float, float, float]:
    """(lo, hi, coverage) of the order-statistic interval for the median of `values`.

    The narrowest symmetric interval [x(j), x(n+1-j)] whose coverage reaches `confidence`; when even
    [min, max] falls short (few values), [min, max] with the coverage it has."""
    xs = sorted(values)
    n = len(xs)
    if n == 0:
        raise ValueError("no values")
    if n == 1:
        return xs[0], xs[0], 0.0
    best = (xs[0], xs[-1], 1.0 - 2.0 * _binom_cdf_half(0, n))
    for j in range(1, n // 2 + 1):  # j = 1 is [min, max]; larger j is narrower
        coverage = 1.0 - 2.0 * _binom_cdf_half(j - 1, n)
        if coverage < confidence:
            break
        best = (xs[j - 1], xs[n - j], coverage)
    return best


def stat(values: Sequence[float | None], confidence: float = DEFAULT_CONFIDENCE) -> Stat | None:
    """The Stat of the finite values, or None when there is none."""
    xs = [float(v) for v in values if v is not None and math.isfinite(v)]
    if not xs:
        return None
    lo, hi, coverage = median_interval(xs, confidence)
    return Stat(
        median=statistics.median(xs), lo=lo, hi=hi, coverage=coverage, min=min(xs), max=max(xs), n=len(xs), values=xs
    )


Better = Literal["higher", "lower"]
Judgement = Literal["better", "worse", "tie"]


def judge(a: Stat, b: Stat, better: Better, threshold: float = 0.0) -> Judgement:
    """How `b` compares with `a`: "better" or "worse" only when the intervals are apart and the gap between
    them exceeds `threshold` (a share of a's median); otherwise "tie"."""
    scale = abs(a.median) or 1.0
    if b.lo > a.hi and (b.lo - a.hi) / scale > threshold:
        return "better" if better == "higher" else "worse"
    if b.hi < a.lo and (a.lo - b.hi) / scale > threshold:
        return "worse" if better == "higher" else "better"
    return "tie"


def relative_difference(a: float, b: float) -> float:
    """|a - b| over their mean (0 when both are 0)."""
    mean = (abs(a) + abs(b)) / 2.0
    return abs(a - b) / mean if mean else 0.0
