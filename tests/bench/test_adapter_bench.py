"""Every adapter on every scenario's model at batch 1, 64 and 1024: µs per call and rows per second.

Ids read `<scenario>-<adapter>-b<batch>` (e.g. `fraud-onnx-b64`); pytest-benchmark groups them per
scenario and batch so its own table compares adapters side by side. Each benchmark cycles through
consecutive slices of the first 1024 reference rows (checked against the reference before timing).

Rounds are sized from a warm-up estimate of one call so every benchmark takes about BENCH_SECONDS:
fast calls are grouped into iterations of ~1 ms per round; a call slower than BENCH_SECONDS (pfa on a
1024-row batch, ~1-2 s) is timed once.
"""

from __future__ import annotations

import itertools
import time
from typing import Any

import pytest

from tests.bench.support import (
    ADAPTERS,
    BATCHES,
    CHECK_ROWS,
    SCENARIOS,
    Pool,
    bench_seconds,
    runs_on,
    scenario_formats,
)

WARMUP_S = 0.5  # JIT warm-up (pmml4s, h2o-genmodel) and caches: calls for this long, at least one
SLOW_CALL_S = 1.0  # a call whose (cold) estimate is slower than this is not warmed up again (pfa at 1024 rows)
ROUND_S = 1e-3  # fast calls are repeated within a round up to about this long
MAX_ROUNDS = 5000
CHECK_AT_LEAST_ROWS = 64  # per batch size, rows checked through that batch size's own calls

# titus2 calls avro's deprecated `Parse` on every row: pytest would record ~10k warnings and time their
# bookkeeping, which a production process (DeprecationWarning ignored by default) does not pay.
pytestmark = pytest.mark.filterwarnings("ignore:`Parse` is deprecated:DeprecationWarning")


def _params() -> list[Any]:
    out = []
    for sc in SCENARIOS:
        formats = scenario_formats(sc)
        for ad in ADAPTERS:
            if runs_on(ad, formats):
                out += [pytest.param(sc, ad, b, id=f"{sc}-{ad}-b{b}") for b in BATCHES]
    return out


def _estimate_call_s(predict: Any, views: list[Any], first_guess_s: float) -> float:
    """Seconds per call after a warm-up; a very slow call is not repeated (the check call was its warm-up).

    first_guess_s comes from the first, cold CHECK_ROWS-row call: a JVM adapter's is several times its
    warm cost, so anything below SLOW_CALL_S is measured again warm."""
    if first_guess_s >= SLOW_CALL_S:
        return first_guess_s
    times = []
    end = time.perf_counter() + WARMUP_S
    for v in itertools.cycle(views):
        t0 = time.perf_counter()
        predict(v)
        t1 = time.perf_counter()
        times.append(t1 - t0)
        if t1 >= end:
            break
    tail = sorted(times[len(times) // 2 :])  # the warmer half
    return max(tail[len(tail) // 2], 1e-7)


@pytest.mark.parametrize(("scenario", "adapter", "batch"), _params())
def test_adapter(
    benchmark: Any, pool: Pool, bench_results: list[dict[str, Any]], scenario: str, adapter: str, batch: int
) -> None:
    loaded = pool.get(scenario, adapter)
    slices = [slice(s, s + batch) for s in range(0, CHECK_ROWS - batch + 1, batch)]
    views = [loaded.X[s] for s in slices]

    # correctness at this batch size (the full CHECK_ROWS rows were checked when the adapter was opened)
    if batch < CHECK_ROWS:
        n_check = max(1, -(-CHECK_AT_LEAST_ROWS // batch))
        for s, v in zip(slices[:n_check], views[:n_check], strict=True):
            loaded.check(v, s, f"batch {batch}")

    predict = loaded.adapter.predict
    call_s = _estimate_call_s(predict, views, loaded.check_call_s * batch / CHECK_ROWS)
    iterations = max(1, int(ROUND_S / call_s))
    rounds = max(1, min(MAX_ROUNDS, int(bench_seconds() / (iterations * call_s))))

    cycle = itertools.cycle(views)

    def one_call() -> None:
        predict(next(cycle))

    benchmark.group = f"{scenario} batch {batch}"
    benchmark.pedantic(one_call, rounds=rounds, iterations=iterations, warmup_rounds=0)

    if benchmark.stats is None:  # --benchmark-disable: nothing was timed
        return
    st = benchmark.stats.stats
    info = {
        "scenario": scenario,
        "adapter": adapter,
        "batch": batch,
        "rows_per_s": round(batch / st.mean, 1),
        "mean_us_per_call": round(st.mean * 1e6, 2),
        "median_us_per_call": round(st.median * 1e6, 2),
        "min_us_per_call": round(st.min * 1e6, 2),
        "stddev_us_per_call": round(st.stddev * 1e6, 2),
        "us_per_row": round(st.mean * 1e6 / batch, 3),
        "rounds": rounds,
        "iterations": iterations,
        **loaded.extra,
    }
    benchmark.extra_info.update(info)
    bench_results.append(info)
