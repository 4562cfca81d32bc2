"""Does a latency percentile hold, given how many samples there are? MLPerf LoadGen's early-stopping rule.

A p99 computed from 300 samples says little: with 3 over the SLO the true 99th percentile could be far
worse. LoadGen (mlcommons/inference, loadgen/early_stopping.cc) asks instead: if the true share of samples
under the bound were only `percentile - tolerance`, how likely would it be to see as few as `over`
samples over it in `n`? When that is at most `1 - confidence`, the percentile holds at that confidence.

    P(X <= over) for X ~ Binomial(n, 1 - (percentile - tolerance))  <=  1 - confidence

(LoadGen writes it as BetaRegularized(p - d, h, 1 + t) with h samples under and t over). With no sample
over the bound, p99 at 99% confidence needs n >= 459 (0.99^459 < 0.01); each sample over it raises the
count needed (1 over: 662; 10 over: 2,010). `fails` is the mirror test (LoadGen has none; a latency bound
that is clearly missed should say so rather than "too few samples"): so many samples over the bound would
be unlikely if the true percentile sat exactly on it.
"""

from __future__ import annotations

import math

from scipy.stats import binom

PERCENTILE = 0.99  # the SLO is on the p99
CONFIDENCE = 0.99  # LoadGen's default for its early-stopping estimate
TOLERANCE = 0.0


def odds(n: int, over: int, percentile: float = PERCENTILE, tolerance: float = TOLERANCE) -> float:
    """P(at most `over` of `n` samples over the bound) if the true percentile were `percentile - tolerance`."""
    if n <= 0:
        return 1.0
    return float(binom.cdf(over, n, 1.0 - (percentile - tolerance)))


def holds(
    n: int, over: int, percentile: float = PERCENTILE, confidence: float = CONFIDENCE, tolerance: float = TOLERANCE
) -> bool:
    """Whether `n` samples with `over` of them above the bound show the percentile holds at `confidence`."""
    if not 0 <= over <= n:
        raise ValueError(f"over must be within 0..n, got over={over}, n={n}")
    return odds(n, over, percentile, tolerance) <= 1.0 - confidence


def fails(
    n: int, over: int, percentile: float = PERCENTILE, confidence: float = CONFIDENCE, tolerance: float = TOLERANCE
) -> bool:
    """The same test the other way round: so many samples over the bound would be unlikely (at most
    `1 - confidence`) if the true percentile were exactly at it, so it does not hold."""
    if not 0 <= over <= n:
        raise ValueError(f"over must be within 0..n, got over={over}, n={n}")
    if over == 0:
        return False
    return float(binom.sf(over - 1, n, 1.0 - (percentile + tolerance))) <= 1.0 - confidence


def min_samples(
    over: int, percentile: float = PERCENTILE, confidence: float = CONFIDENCE, tolerance: float = TOLERANCE
) -> int:
    """The fewest samples in which `over` samples above the bound still let the percentile hold."""
    q = percentile - tolerance
    lo = over + max(1, math.ceil(math.log(1.0 - confidence) / math.log(q)))  # enough with no sample over
    hi = lo
    while not holds(hi, over, percentile, confidence, tolerance):
        lo, hi = hi, hi * 2
    while lo < hi:  # the smallest n in (lo, hi] that holds; odds() falls as n grows with `over` fixed
        mid = (lo + hi) // 2
        if holds(mid, over, percentile, confidence, tolerance):
            hi = mid
        else:
            lo = mid + 1
    return hi
