"""Reports, run comparison and repeatability, from results.json test fixtures (hand-built numbers shaped as
harness/bench/rounds.py writes them: not a measurement)."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from rich.console import Console

from harness.reporting.compare import compare, main_compare
from harness.reporting.repeatability import repeatability
from harness.reporting.report import write_report
from harness.reporting.verdict import summary_table, verdict
from harness.results.cost import (
    FractionResult,
    LatencySample,
    RoundOrder,
    Window,
    highest_passed,
    judge_fraction,
    summarize,
)
from harness.results.errors import ResultsError
from harness.results.point import Accuracy
from harness.results.schema import AdapterResult, Results, parse_results
from harness.results.stats import stat

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
HDR_PERCENTILES = [0.0, 10.0, 25.0, 50.0, 75.0, 90.0, 95.0, 99.0, 99.5, 99.9, 99.95, 99.99, 99.999]
FRACTIONS = (0.5, 0.7, 0.85)
# the host's speed in each round (costs move with it; ratios within a round must not)
SPEED = (1.0, 1.0, 1.45, 0.9, 1.25, 1.1)


def _point(
    name: str,
    offered: float,
    p50: float,
    p99: float,
    *,
    kind: str = "load",
    achieved: float | None = None,
    slo_met: bool = True,
    unstable: bool = False,
    lost: int = 0,
    dead_lettered: int = 0,
    cpu: float = 0.5,
    rss: float = 180.0,
    max_abs_diff: float = 2e-7,
    share_beyond: float = 0.0,
    jitter: tuple[float, ...] = (0.97, 1.02, 0.99, 1.01, 1.0, 0.98),
) -> dict[str, Any]:
    """One load point or search step, shaped like harness/bench/run.py's `run_point` output."""
    achieved = offered if achieved is None else achieved
    sent = int(offered * 6)
    # a plausible latency distribution: p50 at the median, p99 at 99 %, a tail above it
    hdr = []
    for q in HDR_PERCENTILES:
        if q <= 50.0:
            ms = p50 * (0.5 + q / 100.0)
        elif q <= 99.0:
            ms = p50 + (p99 - p50) * ((q - 50.0) / 49.0) ** 3
        else:
            ms = p99 * (1.0 + (q - 99.0) * 0.8)
        hdr.append([q, round(ms, 4)])
    windows = [round(achieved * f, 1) for f in jitter]
    checks = [
        {
            "name": "schedule kept",
            "passed": True,
            "detail": "0.00% of sends were more than 5 ms late (allowed 1%); send lag p99 0.40 ms",
            "recommendation": "lower the offered rate or run the load generator on another machine",
        },
        {
            "name": "min measured events",
            "passed": True,
            "detail": f"{int(achieved * 4.5)} events after warm-up (minimum 500)",
            "recommendation": "lengthen duration_s or raise the rate",
        },
        {
            "name": "no lost records",
            "passed": lost == 0,
            "detail": f"{lost} of {sent} records had no result or dead letter after the drain timeout",
            "recommendation": "the scorer cannot keep up or failed: see its log; lower the rate",
        },
        {
            "name": "throughput stable",
            "passed": not unstable,
            "detail": f"last 3 windows of 1 s: {windows[-3:]} (tolerance 10%)",
            "recommendation": "lengthen duration_s; a backlog that grows means the rate is above capacity",
        },
    ]
    verdict = "VALID" if all(c["passed"] for c in checks) else "INVALID"
    return {
        "name": name,
        "kind": kind,
        "pattern": "constant",
        "offered_per_s": offered,
        "duration_s": 6.0,
        "warmup_s": 1.5,
        "generator": {
            "sent": sent,
            "achieved_per_s": offered,
            "send_lag_ms": {"p50": 0.05, "p99": 0.4, "max": 2.0},
            "behind_share": 0.0,
            "delivery_errors": 0,
        },
        "counts": {
            "sent": sent,
            "scored": sent - dead_lettered - lost,
            "duplicates": 0,
            "lost": lost,
            "dead_lettered": dead_lettered,
            "measured": int(achieved * 4.5),
        },
        "latency_ms": {
            "p50": p50,
            "p90": p50 + (p99 - p50) * 0.4,
            "p95": p50 + (p99 - p50) * 0.7,
            "p99": p99,
            "p999": p99 * 1.8,
            "max": p99 * 2.5,
            "mean": p50 * 1.1,
        },
        "queueing_ms": {"p50": p50 * 0.3, "p99": p99 * 0.6},
        "scoring_ms": {"p50": p50 * 0.2, "p99": p99 * 0.2},
        "delivery_ms": {"p50": p50 * 0.5, "p99": p99 * 0.2},
        "hdr_percentiles": hdr,
        "throughput": {"mean_per_s": achieved, "windows_per_s": windows, "window_s": 1.0, "stable": not unstable},
        "accuracy": {
            "max_abs_diff": max_abs_diff,
            "share_beyond_tolerance": share_beyond,
            "tolerance": 1e-5,
            "auc": 0.9312,
            "auc_reference": 0.9312,
        },
        "dead_letter_reasons": {"decode: invalid JSON": dead_lettered} if dead_lettered else {},
        "cost": {"cpu_s_per_1000": cpu, "peak_rss_mib": rss},
        "slo_met": slo_met and lost == 0,
        "verdict": verdict,
        "checks": checks,
    }


# name, family, base cost µs/record, flat-out rows/s, p99 ms at each fraction
CONTESTANTS: list[tuple[str, str, float, float, tuple[float, float, float]]] = [
    ("identity", "baseline", 7.0, 90_000.0, (4.0, 9.0, 30.0)),
    ("onnx", "onnx", 9.6, 60_000.0, (6.0, 14.0, 45.0)),
    ("codegen-c", "generated-code", 9.1, 64_000.0, (5.5, 12.0, 80.0)),
    ("pmml", "pmml", 64.0, 9_000.0, (20.0, 60.0, 400.0)),
    ("identity (A/A)", "baseline", 7.0, 90_000.0, (4.0, 9.0, 30.0)),
]


def _windows(name: str, base: float, rate: float, p99s: tuple[float, ...], rounds: int, seed: int) -> list[Window]:
    rng = np.random.default_rng(seed)
    out = []
    for r in range(rounds + 1):
        noise = 1.0 + rng.uniform(-0.015, 0.015)
        control = 7.0 * SPEED[r % len(SPEED)] * (1.0 + rng.uniform(-0.015, 0.015))  # the identity around it
        out.append(
            Window(
                round=r,
                position=int(rng.integers(0, 5)),
                kind="backlog",
                records=int(rate),
                scored=int(rate),
                cpu_us_per_record=round(base * SPEED[r % len(SPEED)] * noise, 3),
                control_us_per_record=None if r == 0 else round(control, 3),
                rows_per_s=round(rate / SPEED[r % len(SPEED)], 1),
                seconds=1.0,
                warmup=r == 0,
            )
        )
        if r == 0:
            continue
        for f, p99 in zip(FRACTIONS, p99s, strict=True):
            n = int(rate * f * 1.2)
            over = int(n * 0.002) if p99 < 50 else int(n * 0.05)
            acc = Accuracy(max_abs_diff=2e-7, share_beyond_tolerance=0.0, tolerance=1e-5, auc=0.93, auc_reference=0.93)
            if "identity" in name:
                acc = Accuracy(max_abs_diff=0.49, share_beyond_tolerance=1.0, tolerance=1e-5, note="identity")
            out.append(
                Window(
                    round=r,
                    position=int(rng.integers(0, 5)),
                    kind="load",
                    fraction=f,
                    offered_per_s=round(rate * f, 1),
                    records=n,
                    scored=n,
                    cpu_us_per_record=round(base * 1.3 * SPEED[r % len(SPEED)], 3),
                    rows_per_s=round(rate * f, 1),
                    seconds=1.5,
                    latency=LatencySample(measured=n, over_slo=over, p50_ms=p99 / 4, p99_ms=p99, max_ms=p99 * 2),
                    accuracy=acc,
                )
            )
    return out


def finish(a: AdapterResult, confidence: float = 0.9) -> None:
    """What harness/bench/rounds.py's `finish` does with a contestant's windows."""
    a.cost = summarize(a.windows, confidence)
    a.cost.peak_rss_mib = 180.0
    a.fractions = []
    for f in FRACTIONS:
        ws = [w for w in a.windows if w.kind == "load" and w.fraction == f and w.counts and w.latency]
        lat = LatencySample(
            measured=sum(w.latency.measured for w in ws if w.latency),
            over_slo=sum(w.latency.over_slo for w in ws if w.latency),
            p50_ms=ws[0].latency.p50_ms if ws and ws[0].latency else None,
            p99_ms=ws[0].latency.p99_ms if ws and ws[0].latency else None,
        )
        fr = FractionResult(fraction=f, offered_per_s=stat([w.offered_per_s for w in ws]), latency=lat, windows=len(ws))
        fr.passed, fr.min_samples = judge_fraction(lat)
        a.fractions.append(fr)
    best = highest_passed(a.fractions)
    if best is not None:
        a.cost.highest_fraction_passed = best.fraction
        a.cost.rate_at_highest_fraction = best.offered_per_s.median if best.offered_per_s else None


def make_results(
    run_id: str = "20261126-233000-fraud",
    hostname: str = "bench-01",
    rounds: int = 5,
    scale: dict[str, float] | None = None,
    seed: int = 1,
) -> dict[str, Any]:
    """TEST FIXTURE: a results.json of a rounds run with made-up but plausible numbers. `scale` multiplies a
    contestant's cost (to plant a change)."""
    scale = scale or {}
    adapters = []
    for i, (name, family, base, rate, p99s) in enumerate(CONTESTANTS):
        a = AdapterResult(adapter=name, name=name.split(" ")[0], family=family, client="python-loop")
        a.windows = _windows(name, base * scale.get(name, 1.0), rate, p99s, rounds, seed * 100 + i)
        adapters.append(a)
    for a in adapters:
        finish(a)
    orders = [RoundOrder(round=r, warmup=r == 0, backlog_order=[c[0] for c in CONTESTANTS]) for r in range(rounds + 1)]
    res = parse_results(
        {
            "schema": 4,
            "run_id": run_id,
            "started_at": "2026-11-26T23:30:00Z",
            "finished_at": "2026-11-26T23:39:00Z",
            "environment": {
                "hostname": hostname,
                "cpu_model": "Test CPU",
                "cpu_count": 2,
                "memory_gib": 24.0,
                "python": "3.11.7",
                "kafka_version": "4.1.1",
                "embedded_broker": True,
            },
            "scenarios": [
                {
                    "name": "fraud",
                    "description": "Card-payment fraud scoring.",
                    "model_id": "lightgbm-gbm-abc",
                    "trainer": "lightgbm/gbm",
                    "slo_p99_ms": 50.0,
                    "encoding": "json",
                    "method": "rounds",
                    "control": "identity",
                    "round_settings": {"count": rounds, "seed": 5, "tie_pct": 10.0, "fractions": list(FRACTIONS)},
                    "round_orders": [o.model_dump() for o in orders],
                    "ceilings": {"generator_per_s": 150000.0, "measurer_per_s": 120000.0},
                    "bundle_parity": {"onnx": {"max_abs_diff": 2e-7, "tolerance": 1e-5, "passed": True}},
                    "adapters": [a.model_dump(by_alias=True) for a in adapters],
                }
            ],
        }
    )
    return orjson.loads(res.to_json())


def write_run(root: Path, data: dict[str, Any]) -> Path:
    run_dir = root / data["run_id"]
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "results.json").write_bytes(orjson.dumps(data))
    return run_dir


def _adapter(data: dict[str, Any], name: str) -> dict[str, Any]:
    return next(a for a in data["scenarios"][0]["adapters"] if a["adapter"] == name)


def _tier_rows(md: str) -> list[list[str]]:
    section = md.split("### Verdict: tiers by cost", 1)[1]
    rows = []
    for line in section.splitlines():
        if not line.startswith("|"):
            if rows:
                break
            continue
        cells = [c.strip() for c in line.strip("|").split(" | ")]
        if cells[0] == "Tier" or set(cells[0]) <= {"-", ":", "|"}:
            continue
        rows.append(cells)
    return rows


def _recommendation(md: str) -> str:
    return next(line for line in md.splitlines() if line.startswith("**Recommendation:**"))


# --- the verdict and the report ---------------------------------------------------------------------------------


def test_close_strategies_share_a_tier_and_the_host_drift_cancels(tmp_path: Path) -> None:
    """codegen-c (1.30x) and onnx (1.37x) are 5% apart: one tier, recommended together; pmml (9x) its own. The
    host's speed moved 45% between rounds, yet every ratio interval stays narrow."""
    run_dir = write_run(tmp_path / "results", make_results())
    md_path, _ = write_report(run_dir)
    md = md_path.read_text()
    rows = _tier_rows(md)
    tiers = {r[1]: r[0] for r in rows}
    assert tiers == {"identity": "1", "identity (A/A)": "1", "codegen-c": "2", "onnx": "2", "pmml": "3"}
    rec = _recommendation(md)
    assert "**codegen-c and onnx share tier 2**" in rec and "Choose within it by latency" in rec
    # latency decides inside the tier: onnx held the SLO up to 85% of flat out, codegen-c only up to 70%
    assert "onnx up to 85%" in rec and "codegen-c up to 70%" in rec
    res = parse_results(orjson.loads((run_dir / "results.json").read_bytes()))
    onnx = res.scenarios[0].adapter("onnx")
    assert onnx is not None and onnx.cost is not None and onnx.cost.ratio is not None
    assert onnx.cost.ratio.median == pytest.approx(9.6 / 7.0, rel=0.03)
    assert onnx.cost.ratio.half_width_pct < 3.0  # while the absolute cost spread by ±20%
    assert onnx.cost.cpu_us_per_record is not None and onnx.cost.cpu_us_per_record.half_width_pct > 15.0


def test_a_single_cheapest_strategy_is_named(tmp_path: Path) -> None:
    data = make_results(scale={"onnx": 1.3})
    md = write_report(write_run(tmp_path, data))[0].read_text()
    assert "**Use codegen-c** (tier 2)" in _recommendation(md)
    assert {r[1]: r[0] for r in _tier_rows(md)}["onnx"] == "3"


def test_report_charts_are_written_and_referenced(tmp_path: Path) -> None:
    run_dir = write_run(tmp_path, make_results())
    md = write_report(run_dir)[0].read_text()
    pngs = sorted(p.name for p in run_dir.glob("report-*.png"))
    assert pngs == ["report-fraud-cost-ratios.png", "report-fraud-latency-fractions.png", "report-fraud-rounds.png"]
    for name in pngs:
        assert (run_dir / name).read_bytes()[:8] == PNG_MAGIC
        assert f"]({name})" in md


def test_report_html_is_self_contained(tmp_path: Path) -> None:
    _, html_path = write_report(write_run(tmp_path, make_results()))
    page = html_path.read_text()
    assert page.count("<svg") == 3 and "<img" not in page
    assert not re.search(r"(src|href)=\"(https?:)?//", page)
    assert 'class="best"' in page  # the recommended tier's rows are highlighted
    assert "Every window" in page and "<details>" in page


def test_inaccurate_or_lossy_strategies_are_not_recommended(tmp_path: Path) -> None:
    data = make_results()
    for w in _adapter(data, "codegen-c")["windows"]:
        if w["kind"] == "load":
            w["accuracy"]["max_abs_diff"] = 0.2
            w["accuracy"]["share_beyond_tolerance"] = 0.5
    _adapter(data, "onnx")["windows"][3]["lost"] = 12
    md = write_report(write_run(tmp_path, data))[0].read_text()
    rec = _recommendation(md)
    assert "Use pmml" in rec
    assert "codegen-c is not recommended: predictions beyond the tolerance." in md
    assert "onnx is not recommended: 12 records lost." in md


def test_an_a_a_pair_in_two_tiers_means_no_ranking(tmp_path: Path) -> None:
    data = make_results(scale={"identity (A/A)": 1.3})
    md = write_report(write_run(tmp_path, data))[0].read_text()
    rec = _recommendation(md)
    assert "No ranking from this run" in rec and re.search(r"identity \(A/A\) costs 1\.[23]", rec), rec
    assert verdict(parse_results(data).scenarios[0]).can_rank is False


def test_a_failed_strategy_is_not_placed_and_says_why(tmp_path: Path) -> None:
    data = make_results()
    a = _adapter(data, "pmml")
    a["error"] = "harness serve did not answer within 60 s"
    md = write_report(write_run(tmp_path, data))[0].read_text()
    assert "pmml is not placed: failed: harness serve did not answer within 60 s." in md
    assert [r for r in _tier_rows(md) if r[1] == "pmml"][0][0] == "–"


def test_a_run_measured_before_schema_4_opens_without_a_verdict(tmp_path: Path) -> None:
    old = {
        "schema": 3,
        "run_id": "20261201-183713-fraud",
        "scenarios": [{"name": "fraud", "adapters": [{"adapter": "onnx", "trials": [{"points": []}]}]}],
    }
    md = write_report(write_run(tmp_path, old))[0].read_text()
    assert "measured before schema 4" in md
    with pytest.raises(ResultsError, match="measured before schema 4"):
        compare([write_run(tmp_path / "a", old), write_run(tmp_path / "b", make_results())], 10.0)


def test_stale_charts_are_removed(tmp_path: Path) -> None:
    run_dir = write_run(tmp_path, make_results())
    (run_dir / "report-fraud-old-chart.png").write_bytes(PNG_MAGIC)
    write_report(run_dir)
    assert not (run_dir / "report-fraud-old-chart.png").exists()


def test_unreadable_results_are_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ResultsError, match="no results.json"):
        write_report(tmp_path)
    (tmp_path / "results.json").write_text("{not json")
    with pytest.raises(ResultsError, match="not valid JSON"):
        write_report(tmp_path)
    data = make_results()
    data["schema"] = 5
    with pytest.raises(ResultsError, match="schema 5 is newer"):
        write_report(write_run(tmp_path, data))
    data = make_results()
    data["scenarios"][0]["adapters"][1]["windows"][0]["records"] = "many"
    with pytest.raises(ResultsError, match=r"scenarios\.0\.adapters\.1\.windows\.0\.records"):
        write_report(write_run(tmp_path, data))


def test_summary_table(tmp_path: Path) -> None:
    console = Console(record=True, width=220, color_system=None)
    console.print(summary_table(make_results()))
    text = console.export_text()
    lines = [ln for ln in text.splitlines() if ln.startswith("│ fraud")]
    names = [
        next(n for n in ("identity (A/A)", "identity", "codegen-c", "onnx", "pmml") if n in ln) for ln in lines[:5]
    ]
    assert names[2:] == ["codegen-c", "onnx", "pmml"]
    assert "→ codegen-c, onnx" in text


# --- compare ------------------------------------------------------------------------------------------------------


def _capture() -> Console:
    return Console(record=True, width=260, color_system=None)


def test_compare_identical_code_no_regression_and_the_same_tiers(tmp_path: Path) -> None:
    """Two runs of the same code on a host whose speed changed: other noise, same ratios, no regression."""
    a = write_run(tmp_path, make_results("20261126-233000-fraud", seed=1))
    b = write_run(tmp_path, make_results("20261127-010000-fraud", seed=2))
    con = _capture()
    assert main_compare([a, b], 10.0, console=con) == 0
    text = con.export_text()
    assert "no regression" in text and "fraud: tiers the same" in text


def test_compare_flags_a_planted_cost_regression_and_not_a_small_move(tmp_path: Path) -> None:
    a = write_run(tmp_path, make_results("20261126-233000-fraud"))
    slow = write_run(tmp_path, make_results("20261127-000000-fraud", scale={"onnx": 1.3}, seed=3))
    res = compare([a, slow], 10.0)
    assert res.regressed
    assert any(line.startswith("fraud/onnx cost ratio:") and "intervals apart" in line for line in res.regressions)
    assert "differ" in str(res.tiers) or res.tiers["fraud"][0] != res.tiers["fraud"][1]
    small = write_run(tmp_path, make_results("20261127-010000-fraud", scale={"onnx": 1.05}, seed=4))
    assert not compare([a, small], 10.0).regressed  # 5%: tied by the rule


def test_compare_improvement_is_not_a_regression(tmp_path: Path) -> None:
    a = write_run(tmp_path, make_results("20261126-233000-fraud"))
    fast = write_run(tmp_path, make_results("20261127-000000-fraud", scale={"pmml": 0.5}, seed=3))
    assert not compare([a, fast], 10.0).regressed


def test_compare_flags_accuracy_and_lost_records(tmp_path: Path) -> None:
    a = write_run(tmp_path, make_results("20261126-233000-fraud"))
    data = make_results("20261127-000000-fraud")
    for w in _adapter(data, "onnx")["windows"]:
        if w["kind"] == "load":
            w["accuracy"]["max_abs_diff"] = 3e-3
            w["accuracy"]["auc"] = 0.90
    _adapter(data, "pmml")["windows"][2]["lost"] = 7
    res = compare([a, write_run(tmp_path, data)], 10.0)
    regs = "\n".join(res.regressions)
    assert "fraud/onnx max abs diff" in regs and "beyond the tolerance" in regs
    assert "fraud/onnx AUC − reference AUC" in regs
    assert "fraud/pmml records lost: 0 → 7" in regs


def test_compare_warns_on_different_machines_and_needs_two_runs(tmp_path: Path) -> None:
    a = write_run(tmp_path, make_results("20261126-233000-fraud"))
    b = write_run(tmp_path, make_results("20261127-000000-fraud", hostname="other-box"))
    assert any("different machines" in w for w in compare([a, b], 10.0).warnings)
    with pytest.raises(ResultsError, match="at least two runs"):
        compare([a], 10.0)
    with pytest.raises(ResultsError, match="threshold"):
        compare([a, b], -1.0)


def test_compare_three_runs_against_the_first(tmp_path: Path) -> None:
    runs = [write_run(tmp_path, make_results(f"2026112{i}-000000-fraud", seed=i)) for i in range(3)]
    res = compare(runs, 10.0)
    assert len(res.run_ids) == 3 and not res.regressed
    row = next(r for r in res.rows if r.adapter == "onnx" and r.metric == "cost ratio")
    assert len(row.cells) == 3 and len(row.regressed) == 2


# --- repeatability --------------------------------------------------------------------------------------------------


def test_repeatability_agrees_and_then_catches_a_flip(tmp_path: Path) -> None:
    runs = [write_run(tmp_path, make_results(f"2026112{i}-000000-fraud", seed=i)) for i in range(3)]
    con = _capture()
    assert repeatability(runs, 10.0, console=con) == 0
    assert "tiers the same in every run" in con.export_text()
    flipped = write_run(tmp_path, make_results("20261129-000000-fraud", scale={"onnx": 1.3}, seed=9))
    con = _capture()
    assert repeatability([*runs[:2], flipped], 10.0, console=con) == 1
    assert "differ" in con.export_text()


def test_results_round_trip(tmp_path: Path) -> None:
    data = make_results()
    res = parse_results(copy.deepcopy(data))
    assert isinstance(res, Results)
    again = orjson.loads(res.to_json())
    assert again["scenarios"][0]["adapters"][1]["cost"] == data["scenarios"][0]["adapters"][1]["cost"]
