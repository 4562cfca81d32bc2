"""How far a window of live scores has moved from the reference scores: PSI and the KS statistic.

PSI (population stability index) over `bins` quantile bins of the reference:
    PSI = Σ (live_i - ref_i) · ln(live_i / ref_i)      (shares per bin, floored at `eps`)
Common reading: < 0.1 no shift, 0.1-0.25 moderate, > 0.25 major. KS is the two-sample Kolmogorov-Smirnov
statistic: the largest gap between the two empirical distribution functions (0 = identical, 1 = disjoint).
Both are pure functions of two arrays (no I/O), tested on their own.
"""

from __future__ import annotations

import numpy as np

DEFAULT_BINS = 10
EPS = 1e-4


def quantile_edges(reference: np.ndarray, bins: int = DEFAULT_BINS) -> np.ndarray:
    """Interior bin edges at the reference's quantiles (duplicates removed: many equal scores make fewer bins)."""
    ref = np.asarray(reference, dtype=np.float64)
    ref = ref[np.isfinite(ref)]
    if len(ref) == 0:
        raise ValueError("no finite reference scores")
    qs = np.quantile(ref, np.linspace(0.0, 1.0, bins + 1)[1:-1])
    return np.unique(qs)


def shares(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    counts = np.bincount(np.searchsorted(edges, v, side="right"), minlength=len(edges) + 1).astype(np.float64)
    return counts / max(1.0, counts.sum())


def psi(reference: np.ndarray, live: np.ndarray, bins: int = DEFAULT_BINS, eps: float = EPS) -> float:
    edges = quantile_edges(reference, bins)
    ref = np.maximum(shares(reference, edges), eps)
    cur = np.maximum(shares(live, edges), eps)
    return float(np.sum((cur - ref) * np.log(cur / ref)))


def ks(reference: np.ndarray, live: np.ndarray) -> float:
    a = np.sort(np.asarray(reference, dtype=np.float64)[np.isfinite(reference)])
    b = np.sort(np.asarray(live, dtype=np.float64)[np.isfinite(live)])
    if len(a) == 0 or len(b) == 0:
        return float("nan")
    grid = np.concatenate([a, b])
    cdf_a = np.searchsorted(a, grid, side="right") / len(a)
    cdf_b = np.searchsorted(b, grid, side="right") / len(b)
    return float(np.max(np.abs(cdf_a - cdf_b)))
