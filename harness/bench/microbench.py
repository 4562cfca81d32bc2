"""An adapter's in-process ceiling: rows per second at a batch size, and one-row latency.

Used by `harness run` (in a child process, so each adapter's JVM or native library stays out of the
orchestrator) to frame every loop figure as a ratio: loop throughput / in-process throughput.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from adapters.base import Adapter


def rows_per_second(adapter: Adapter, X: np.ndarray, batch: int, seconds: float) -> tuple[float, float]:
    """(rows per second, mean µs per call) predicting consecutive slices of `batch` rows for ~`seconds`."""
    n = X.shape[0]
    reps = max(1, -(-batch // n))
    pool = np.ascontiguousarray(np.tile(X, (reps, 1))) if reps > 1 else X
    starts = list(range(0, max(1, pool.shape[0] - batch + 1), batch)) or [0]
    # warm-up: JITs (pmml4s, h2o-genmodel) and caches
    warm_end = time.perf_counter() + min(0.5, seconds / 2)
    i = 0
    while time.perf_counter() < warm_end:
        s = starts[i % len(starts)]
        adapter.predict(pool[s : s + batch])
        i += 1
    calls = 0
    t0 = time.perf_counter()
    end = t0 + seconds
    while True:
        s = starts[calls % len(starts)]
        adapter.predict(pool[s : s + batch])
        calls += 1
        now = time.perf_counter()
        if now >= end:
            break
    elapsed = now - t0
    return calls * batch / elapsed, elapsed / calls * 1e6


def run(adapter: Adapter, X: np.ndarray, batch: int, seconds: float = 1.0) -> dict[str, Any]:
    r1, us1 = rows_per_second(adapter, X, 1, seconds)
    rb, usb = rows_per_second(adapter, X, batch, seconds) if batch > 1 else (r1, us1)
    return {
        "batch1_rows_per_s": round(r1, 1),
        "batch1_latency_us": round(us1, 2),
        "batch_size": batch,
        "batch_rows_per_s": round(rb, 1),
        "batch_call_us": round(usb, 2),
    }
