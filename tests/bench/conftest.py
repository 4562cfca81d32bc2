"""Micro-benchmarks of every adapter on every scenario's model: fixtures, result collection, summary table.

Not part of the default test run (pyproject's addopts has --ignore=tests/bench, which does not stop an
explicit `pytest tests/bench`). `make bench` runs them:

    .venv/bin/pytest tests/bench -q --benchmark-only --benchmark-json=results/bench.json -p no:randomly

Environment knobs:
    BENCH_SECONDS  timed seconds per benchmark (default 1.0); a call slower than that gets one round
    BENCH_TABLE    where the summary table is written as JSON (default results/bench-table.json)

The three scenarios are built once per session into the repository's artifacts/ (a cache hit when the
scenario, the exporter code and the library versions are unchanged). One adapter is open at a time: the
pool opens it on first use, checks its predictions against the bundle's reference before anything is
timed, and closes it (and stops the `harness serve` child behind `rest`) when the next one is asked for
and at the end of the session.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.bench.support import ATOL, CHECK_ROWS, REST_SERVES, Pool, bench_seconds, table_path

RESULTS_KEY = pytest.StashKey[list[dict[str, Any]]]()


@pytest.fixture(scope="session")
def pool(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pool]:
    p = Pool(tmp_path_factory.mktemp("bench-serve-logs"))
    try:
        yield p
    finally:
        p.close()


@pytest.fixture(scope="session")
def bench_results(request: pytest.FixtureRequest) -> list[dict[str, Any]]:
    return request.config.stash.setdefault(RESULTS_KEY, [])


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Stop the process's JVM (pmml, h2o-mojo) while its signal handlers are still in place.

    pytest's faulthandler plugin restores the SIGSEGV handler it found at start-up in pytest_unconfigure,
    which removes the JVM's; JPype's own shutdown at interpreter exit then dies now and then with
    SIGSEGV (exit 139) after every test passed (jpype-project/jpype#842, #1261). Shutting the JVM down
    here, before pytest_unconfigure, avoids that; the session's adapters are closed by then.
    """
    jpype = sys.modules.get("jpype")
    if jpype is not None and jpype.isJVMStarted():
        jpype.shutdownJVM()


# ------------------------------------------------------------------------------------------ summary


def build_table(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (scenario, adapter), in the order they ran: µs per row at batch 1, rows/s per batch."""
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for r in results:
        key = (r["scenario"], r["adapter"])
        row = rows.setdefault(key, {"scenario": r["scenario"], "adapter": r["adapter"], "model_id": r["model_id"]})
        b = r["batch"]
        row[f"rows_per_s_b{b}"] = r["rows_per_s"]
        row[f"rounds_b{b}"] = r["rounds"]
        if b == 1:
            row["us_per_row_b1_mean"] = r["mean_us_per_call"]
            row["us_per_row_b1_median"] = r["median_us_per_call"]
    return list(rows.values())


def _fmt_rate(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v:,.0f}" if v >= 100 else f"{v:,.1f}"


def _fmt_us(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v:,.1f}" if v < 10_000 else f"{v:,.0f}"


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    results = config.stash.get(RESULTS_KEY, [])
    if not results:
        return
    table = build_table(results)
    headers = ("scenario", "adapter", "µs/row b1 mean", "µs/row b1 p50", "rows/s b1", "rows/s b64", "rows/s b1024")
    lines = [
        (
            r["scenario"],
            r["adapter"],
            _fmt_us(r.get("us_per_row_b1_mean")),
            _fmt_us(r.get("us_per_row_b1_median")),
            _fmt_rate(r.get("rows_per_s_b1")),
            _fmt_rate(r.get("rows_per_s_b64")),
            _fmt_rate(r.get("rows_per_s_b1024")),
        )
        for r in table
    ]
    widths = [max(len(h), *(len(ln[i]) for ln in lines)) for i, h in enumerate(headers)]

    def fmt(cells: tuple[str, ...]) -> str:
        return "  ".join(
            c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        )

    tr = terminalreporter
    tr.write_sep("=", "adapter micro-benchmarks (in process, 1 thread; rest = loopback V2 server hosting onnx)")
    tr.write_line(fmt(headers))
    tr.write_line(fmt(tuple("-" * w for w in widths)))
    for ln in lines:
        tr.write_line(fmt(ln))
    doc = {
        "generated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "load_average_1_5_15": list(os.getloadavg()),
        },
        "method": {
            "seconds_per_benchmark": bench_seconds(),
            "threads": 1,
            "rows": f"the first {CHECK_ROWS} held-out reference rows, consecutive slices of `batch` rows",
            "checked": f"every adapter's predictions equal the reference within {ATOL:g} before timing",
            "rest": f"rest adapter -> `harness serve --adapter {REST_SERVES}` subprocess on 127.0.0.1",
        },
        "table": table,
        "benchmarks": results,
    }
    path = table_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2))
    tr.write_line(f"table written to {path}")
