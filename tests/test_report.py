"""Reports and run comparison, from a results.json test fixture (hand-built numbers, not a real run)."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import orjson
import pytest
from rich.console import Console

from harness.reporting.analysis import summary_table
from harness.reporting.compare import compare, main_compare
from harness.reporting.report import write_report
from harness.results.errors import ResultsError

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
HDR_PERCENTILES = [0.0, 10.0, 25.0, 50.0, 75.0, 90.0, 95.0, 99.0, 99.5, 99.9, 99.95, 99.99, 99.999]


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


SEARCH_RATES = (500.0, 1000.0, 1500.0, 2000.0, 4000.0, 6000.0, 9000.0, 12000.0)


def _search(held_up_to: float, p99_floor: float, p99_at: float, cpu: float, rss: float, **kw: Any) -> dict[str, Any]:
    """The throughput search as harness/bench/run.py records it: one search point per step, the last step fails
    (p99 over the SLO, backlog, lost records, INVALID), `sustainable` names the last rate that held."""
    steps, points = [], []
    for rate in SEARCH_RATES:
        ok = rate <= held_up_to
        p99 = round(p99_floor + (p99_at - p99_floor) * (rate / held_up_to) ** 3, 3)
        achieved = rate if ok else held_up_to * 1.05
        p = _point(
            f"search-{rate:g}",
            rate,
            round(p99 / 3, 3),
            p99,
            kind="search",
            achieved=achieved,
            slo_met=ok,
            unstable=not ok,
            lost=0 if ok else int(rate * 0.4),
            cpu=cpu,
            rss=rss,
            **kw,
        )
        points.append(p)
        steps.append(
            {
                "offered_per_s": rate,
                "achieved_per_s": achieved,
                "p99_ms": p99,
                "ok": ok,
                "reason": "held" if ok else "slo",
                "verdict": p["verdict"],
            }
        )
        if not ok:
            break
    return {"sustainable": {"rows_per_s": held_up_to, "limited_by": "slo", "steps": steps}, "points": points}


def make_results(run_id: str = "20261126-233000-fraud", hostname: str = "bench-01") -> dict[str, Any]:
    """TEST FIXTURE: a results.json as the orchestrator (harness/bench/run.py) writes it, with made-up but plausible
    numbers, not a measurement.

    identity (Kafka-only ceiling) sustains 9,000/s, onnx 6,000/s, pmml 1,500/s; pmml is INVALID at steady-800
    (p99 over the 50 ms SLO, unstable windows) and dead-lettered one record there. Every search ends on a
    failing step, as a real search does.
    """
    identity_search = _search(9000.0, 3.0, 40.0, cpu=0.17, rss=151.0)
    identity = {
        "adapter": "identity",
        "name": "identity",
        "family": "baseline",
        "inprocess": {
            "batch1_rows_per_s": 2.0e6,
            "batch_rows_per_s": 9.0e6,
            "batch_size": 256,
            "batch1_latency_us": 0.5,
        },
        "sustainable": identity_search["sustainable"],
        "loop_vs_inprocess_ratio": 0.001,
        "points": [
            _point("steady-200", 200.0, 1.2, 3.0, cpu=0.20, rss=150.0),
            _point("steady-800", 800.0, 1.3, 3.5, cpu=0.18, rss=152.0),
            *identity_search["points"],
        ],
        "vs_kafka_ceiling": 1.0,
    }
    for p in identity["points"]:  # identity answers 0.5 for every row, as harness/bench/run.py notes
        p["accuracy"].update(max_abs_diff=0.49, share_beyond_tolerance=1.0, auc=0.5)
        p["accuracy"]["note"] = "identity returns 0.5 for every row: accuracy does not apply"
    onnx_search = _search(6000.0, 6.0, 42.0, cpu=0.38, rss=230.0)
    onnx = {
        "adapter": "onnx",
        "name": "onnx",
        "family": "onnx",
        "inprocess": {
            "batch1_rows_per_s": 40000.0,
            "batch_rows_per_s": 900000.0,
            "batch_size": 256,
            "batch1_latency_us": 25.0,
        },
        "sustainable": onnx_search["sustainable"],
        "loop_vs_inprocess_ratio": 0.0067,
        "points": [
            _point("steady-200", 200.0, 2.1, 6.0, cpu=0.45, rss=210.0, jitter=(0.93, 1.04, 1.01, 0.97, 1.03, 0.99)),
            _point("steady-800", 800.0, 2.6, 9.0, cpu=0.40, rss=214.0, jitter=(0.93, 1.04, 1.01, 0.97, 1.03, 0.99)),
            *onnx_search["points"],
        ],
        "vs_kafka_ceiling": 0.6667,
    }
    pmml_search = _search(1500.0, 20.0, 45.0, cpu=1.4, rss=650.0, max_abs_diff=3e-6)
    pmml = {
        "adapter": "pmml",
        "name": "pmml",
        "family": "pmml",
        "inprocess": {
            "batch1_rows_per_s": 3000.0,
            "batch_rows_per_s": 5200.0,
            "batch_size": 256,
            "batch1_latency_us": 330.0,
        },
        "sustainable": pmml_search["sustainable"],
        "loop_vs_inprocess_ratio": 0.2885,
        "points": [
            _point("steady-200", 200.0, 6.0, 20.0, cpu=1.6, rss=610.0, max_abs_diff=3e-6),
            _point(
                "steady-800",
                800.0,
                30.0,
                180.0,
                achieved=640.0,
                slo_met=False,
                unstable=True,
                dead_lettered=1,
                cpu=1.5,
                rss=640.0,
                max_abs_diff=3e-6,
                jitter=(1.1, 0.7, 1.25, 0.8, 1.2, 0.9),
            ),
            *pmml_search["points"],
        ],
        "vs_kafka_ceiling": 0.1667,
    }
    return {
        "schema": 1,
        "run_id": run_id,
        "started_at": "2026-11-26T23:30:00+00:00",
        "finished_at": "2026-11-26T23:41:12+00:00",
        "environment": {
            "hostname": hostname,
            "cpu_model": "Fixture CPU 3000 @ 2.40GHz",
            "cpu_count": 2,
            "memory_gib": 24.0,
            "os": "Linux 6.1 (Debian 12)",
            "python": "3.11.2",
            "kafka_version": "3.9.0",
            "bootstrap": "127.0.0.1:39092",
            "embedded_broker": True,
            "libraries": {"onnxruntime": "1.20.1", "lightgbm": "4.5.0", "pypmml": "1.5.4"},
            "machine_note": "test fixture, not a measurement",
        },
        "scenarios": [
            {
                "name": "fraud",
                "description": "Card-fraud scoring: 30 numeric features, gradient-boosted trees.",
                "model_id": "fraud-lgbm-1a2b3c",
                "trainer": "lightgbm/gbm",
                "slo_p99_ms": 50.0,
                "encoding": "json",
                "loop": {"batch_max": 256, "batch_wait_ms": 5.0, "partitions": 2, "processes": 1},
                "bundle_parity": {
                    "onnx": {
                        "max_abs_diff": 2e-7,
                        "tolerance": 1e-5,
                        "rows": 5000,
                        "rows_with_nan": 250,
                        "passed": True,
                    },
                    "pmml": {
                        "max_abs_diff": 3e-6,
                        "tolerance": 1e-5,
                        "rows": 5000,
                        "rows_with_nan": 250,
                        "passed": True,
                    },
                },
                "adapters": [pmml, identity, onnx],  # deliberately not in ranking order
            }
        ],
    }


def write_run(root: Path, data: dict[str, Any]) -> Path:
    run_dir = root / data["run_id"]
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "results.json").write_bytes(orjson.dumps(data))
    return run_dir


def _adapter(data: dict[str, Any], name: str) -> dict[str, Any]:
    return next(a for a in data["scenarios"][0]["adapters"] if a["adapter"] == name)


def _ranking_rows(md: str) -> list[list[str]]:
    """The ranking table's body rows, as cells."""
    section = md.split("### Ranking", 1)[1]
    rows = []
    for line in section.splitlines()[1:]:
        if not line.startswith("|"):
            if rows:
                break
            continue
        cells = [c.strip() for c in line.strip("|").split(" | ")]
        if cells[0] in ("#",) or set(cells[0]) <= {"-", ":", "|"}:
            continue
        rows.append(cells)
    return rows


def _recommendation(md: str) -> str:
    return next(line for line in md.splitlines() if line.startswith("**Recommendation:**"))


# --- report --------------------------------------------------------------------------------------------------


def test_report_ranks_adapters_and_recommends_the_fastest_within_slo(tmp_path: Path) -> None:
    run_dir = write_run(tmp_path, make_results())
    md_path, html_path = write_report(run_dir)
    assert md_path == run_dir / "report.md" and html_path == run_dir / "report.html"
    md = md_path.read_text()

    # the machine is named at the top, before any scenario
    head = md.split("## Scenario", 1)[0]
    assert "bench-01" in head and "Fixture CPU 3000" in head and "2 cores" in head and "Apache Kafka 3.9.0" in head

    rows = _ranking_rows(md)
    assert [(r[0], r[1]) for r in rows] == [("1", "onnx"), ("2", "pmml"), ("ceiling", "identity")]
    onnx, pmml, identity = rows
    assert onnx[2] == "onnx" and onnx[3] == "6,000" and onnx[4] == "slo" and onnx[5] == "67%"
    assert pmml[3] == "1,500" and identity[3] == "9,000"
    header = md.split("### Ranking", 1)[1].splitlines()[2]
    assert "p50 / p99 ms @ steady-200" in header and "p50 / p99 ms @ steady-800" in header
    assert "search-6000" not in header  # search points are in the chart, not the table columns
    assert "2.10 / 6.00" in onnx and "2.60 / 9.00" in onnx
    assert "30.0 / 180 ✗" in pmml  # the INVALID point is marked
    assert "3.0e-06" in pmml and "0.9312 / 0.9312" in pmml  # accuracy: max |diff|, AUC beside the reference
    assert identity[8:10] == ["n/a", "n/a"]  # identity scores nothing: accuracy does not apply
    assert onnx[-3] == "0.4" and pmml[-3] == "1.5"  # CPU at the highest load point (steady-800)
    assert pmml[-2] == "640"  # peak RSS at the cost point (steady-800), not the search steps' 650
    assert onnx[-1] == "VALID" and pmml[-1].startswith("INVALID (1 of 5)")

    rec = _recommendation(md)
    assert "Use **onnx**: it meets the 50 ms p99 SLO" in rec
    assert "6,000 rows/s" in rec and "67% of the Kafka-only ceiling" in rec
    assert "4x the throughput of pmml" in rec
    assert "pmml 3.8x" in rec  # CPU per event relative to onnx (1.5 / 0.4)

    caveats = md.split("**Caveats:**", 1)[1].split("###", 1)[0]
    assert "pmml @ steady-800: INVALID (failed: throughput stable)" in caveats
    assert "pmml: 1 record dead-lettered (1 @ steady-800)" in caveats
    assert "not stable" not in caveats  # said once, by the INVALID line
    assert "onnx" not in caveats  # nothing to say about the clean adapter
    assert "identity" not in caveats  # identity scores nothing: its accuracy "failure" is not one
    assert "search-" not in caveats  # the failing last step of a search is how a search ends, not a caveat

    # failed checks carry their recommendation
    assert (
        "`throughput stable`: last 3 windows of 1 s: [512.0, 768.0, 576.0] (tolerance 10%) → lengthen duration_s" in md
    )


def test_report_charts_are_written_and_referenced(tmp_path: Path) -> None:
    run_dir = write_run(tmp_path, make_results())
    md_path, html_path = write_report(run_dir)
    md, page = md_path.read_text(), html_path.read_text()
    pngs = sorted(p.name for p in run_dir.glob("*.png"))
    assert pngs == [
        "report-fraud-hdr-percentiles.png",
        "report-fraud-latency-vs-load.png",
        "report-fraud-sustainable-throughput.png",
        "report-fraud-throughput-windows.png",
    ]
    for name in pngs:
        data = (run_dir / name).read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 10_000, name
        assert f"]({name})" in md  # referenced from report.md
    # each chart inlined as SVG in the HTML, one per PNG
    assert page.count('<figure class="chart"') == len(pngs)
    assert page.count("<svg") == len(pngs)
    for key in ("latency-vs-load", "hdr-percentiles", "throughput-windows", "sustainable-throughput"):
        assert f'data-chart="{key}"' in page
    # chart ids are unique across the page (several inline SVGs share one id space)
    ids = re.findall(r'\bid="([^"]+)"', page)
    assert len(ids) == len(set(ids))


def test_report_html_is_self_contained(tmp_path: Path) -> None:
    run_dir = write_run(tmp_path, make_results())
    _, html_path = write_report(run_dir)
    page = html_path.read_text()
    assert page.startswith("<!DOCTYPE html>")
    assert "<title>Benchmark report: 20261126-233000-fraud</title>" in page
    assert not re.search(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", page, re.IGNORECASE)
    assert not re.search(r"url\(\s*['\"]?\s*(?:https?:)?//", page, re.IGNORECASE)
    # the only URLs at all are the SVG namespace names, which are identifiers, never fetched
    assert set(re.findall(r"https?://[^\s\"'<>]+", page)) == {
        "http://www.w3.org/2000/svg",
        "http://www.w3.org/1999/xlink",
    }
    assert "@import" not in page and "<link" not in page and "<script src" not in page
    assert ".png" not in page  # charts are inlined, not referenced
    assert "<strong>onnx</strong>" in page  # the recommendation, rendered
    assert 'class="best"' in page


def test_inaccurate_adapter_is_not_recommended(tmp_path: Path) -> None:
    data = make_results()
    for p in _adapter(data, "onnx")["points"]:
        p["accuracy"]["max_abs_diff"] = 0.02
        p["accuracy"]["share_beyond_tolerance"] = 0.013
    md = write_report(write_run(tmp_path, data))[0].read_text()
    rows = _ranking_rows(md)
    assert [r[1] for r in rows] == ["pmml", "onnx", "identity"]
    assert "accuracy beyond tolerance" in rows[1][-1]
    rec = _recommendation(md)
    assert "Use **pmml**" in rec
    assert "0.25x the throughput of onnx (whose predictions fall outside tolerance)" in rec
    assert "onnx @ steady-200: 1.30% of predictions beyond the tolerance 1e-05 (max |diff| 2.0e-02)" in md


def test_no_strategy_meets_the_slo(tmp_path: Path) -> None:
    data = make_results()
    for name in ("onnx", "pmml"):
        _adapter(data, name)["sustainable"] = {"rows_per_s": None, "limited_by": "slo", "steps": []}
    md = write_report(write_run(tmp_path, data))[0].read_text()
    assert "none to recommend" in _recommendation(md)
    assert [r[3] for r in _ranking_rows(md)] == ["none", "none", "9,000"]


def test_failed_adapter_and_unsearched_rates(tmp_path: Path) -> None:
    data = make_results()
    sc = data["scenarios"][0]
    for a in sc["adapters"]:  # the scenario did not search: rates fall back to the highest load point that held
        a["sustainable"] = {"rows_per_s": None, "limited_by": "not searched", "steps": []}
        a["points"] = [p for p in a["points"] if p["kind"] == "load"]
    sc["adapters"].append(
        {
            "adapter": "pfa",
            "name": "pfa",
            "family": "pfa",
            "error": "titus2 cannot load the document: unknown function a.argmax",
            "points": [],
            "sustainable": {"rows_per_s": None, "limited_by": "error", "steps": []},
        }
    )
    run_dir = write_run(tmp_path, data)
    md = write_report(run_dir)[0].read_text()
    rows = _ranking_rows(md)
    assert [(r[1], r[3]) for r in rows] == [("onnx", "800"), ("pmml", "200"), ("pfa", "none"), ("identity", "800")]
    assert rows[0][4] == "not searched: highest load point held"
    assert rows[2][-1] == "FAILED"
    rec = _recommendation(md)
    assert "Use **onnx**: it meets the 50 ms p99 SLO at the highest tested rate, 800 rows/s" in rec
    assert "4x the throughput of pmml" in rec and "pfa failed to run (see the caveats)" in rec
    assert "pfa failed: titus2 cannot load the document: unknown function a.argmax" in md
    assert "not searched for every adapter" in md
    # no search steps: the sustainable chart still draws, from the load points
    assert (run_dir / "report-fraud-sustainable-throughput.png").is_file()


def test_report_tolerates_missing_optional_fields(tmp_path: Path) -> None:
    data = make_results()
    data["environment"] = {"hostname": "bare", "cpu_model": None}
    data["finished_at"] = None
    sc = data["scenarios"][0]
    sc["loop"] = None
    del sc["bundle_parity"], sc["description"]
    for a in sc["adapters"]:
        for p in a["points"]:
            p["counts"]["duplicates"] = None  # the orchestrator writes NaN as null
    for a in sc["adapters"]:
        del a["inprocess"], a["loop_vs_inprocess_ratio"]
        for p in a["points"]:
            for key in ("hdr_percentiles", "throughput", "accuracy", "cost", "generator", "checks", "queueing_ms"):
                p.pop(key)
    run_dir = write_run(tmp_path, data)
    md = write_report(run_dir)[0].read_text()
    # without distributions or windows only two charts can be drawn
    assert sorted(p.name for p in run_dir.glob("*.png")) == [
        "report-fraud-latency-vs-load.png",
        "report-fraud-sustainable-throughput.png",
    ]
    assert "- **Machine:** bare · unknown CPU\n" in md
    assert "Use **onnx**" in _recommendation(md)
    assert "CPU per event" not in _recommendation(md)
    assert "### Bundle parity" not in md and "**Loop:**" not in md
    assert (run_dir / "report.html").read_text().count("<svg") == 2


def test_stale_charts_are_removed(tmp_path: Path) -> None:
    data = make_results()
    run_dir = write_run(tmp_path, data)
    write_report(run_dir)
    assert len(list(run_dir.glob("*.png"))) == 4
    for a in data["scenarios"][0]["adapters"]:
        for p in a["points"]:
            p.pop("hdr_percentiles")
    write_run(tmp_path, data)
    write_report(run_dir)
    assert not (run_dir / "report-fraud-hdr-percentiles.png").exists()
    assert len(list(run_dir.glob("*.png"))) == 3


def test_unreadable_results_are_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ResultsError, match="no results.json"):
        write_report(tmp_path)
    (tmp_path / "results.json").write_text("{not json")
    with pytest.raises(ResultsError, match="not valid JSON"):
        write_report(tmp_path)
    data = make_results()
    data["schema"] = 4
    with pytest.raises(ResultsError, match="schema 4 is newer"):
        write_report(write_run(tmp_path, data))
    data = make_results()
    data["scenarios"][0]["adapters"][0]["points"][0]["offered_per_s"] = "fast"
    with pytest.raises(ResultsError, match=r"scenarios\.0\.adapters\.0\.trials\.0\.points\.0\.offered_per_s"):
        write_report(write_run(tmp_path, data))


def test_summary_table(tmp_path: Path) -> None:
    console = Console(record=True, width=220, color_system=None)
    console.print(summary_table(make_results()))
    text = console.export_text()
    lines = [ln for ln in text.splitlines() if ln.startswith("│ fraud")]
    order = [next(n for n in ("onnx", "pmml", "identity") if n in ln) for ln in lines[:3]]
    assert order == ["onnx", "pmml", "identity"]
    assert "6,000" in lines[0] and "9.00 @ steady-800" in lines[0] and "VALID" in lines[0]
    assert "INVALID (1 of 5)" in lines[1]
    assert "→ use onnx" in text


# --- compare -------------------------------------------------------------------------------------------------


def _capture() -> Console:
    return Console(record=True, width=240, color_system=None)


def test_compare_unchanged_copy_passes(tmp_path: Path) -> None:
    a = write_run(tmp_path, make_results("run-a"))
    b = write_run(tmp_path, make_results("run-b"))
    res = compare([a, b], threshold_pct=10)
    assert res.run_ids == ["run-a", "run-b"]
    assert not res.regressed and res.regressions == [] and res.warnings == []
    metrics = {(r.adapter, r.metric) for r in res.rows}
    for m in (
        "sustainable rows/s",
        "p50 ms @ steady-200",
        "p99 ms @ steady-800",
        "CPU s/1000 @ steady-800",
        "peak RSS MiB @ steady-800",
        "max abs diff",
        "AUC − reference AUC",
        "verdict @ steady-800",
    ):
        assert ("onnx", m) in metrics, m
    assert all(r.ratios[0] in (None, 1.0) for r in res.rows)
    con = _capture()
    assert main_compare([a, b], 10, console=con) == 0
    assert "no regression beyond 10 %" in con.export_text()


def test_compare_judges_auc_against_the_reference_on_the_same_records(tmp_path: Path) -> None:
    """Another subset of the holdout moves AUC and its reference alike (not a regression); an AUC that falls
    below its own reference by more than AUC_DROP is one."""
    base = make_results("run-a")
    other_records, worse = copy.deepcopy(base), copy.deepcopy(base)
    other_records["run_id"], worse["run_id"] = "run-b", "run-c"
    for p in _adapter(other_records, "onnx")["points"]:
        p["accuracy"].update(auc=0.9242, auc_reference=0.9242)
    for p in _adapter(worse, "onnx")["points"]:
        p["accuracy"].update(auc=0.9212, auc_reference=0.9312)
    a, b, c = (write_run(tmp_path, d) for d in (base, other_records, worse))
    assert not any("AUC" in r for r in compare([a, b], threshold_pct=10).regressions)
    flagged = compare([a, c], threshold_pct=10).regressions
    assert any("onnx AUC − reference AUC: 0.0000 → -0.0100" in r for r in flagged), flagged


def test_compare_flags_planted_regression(tmp_path: Path) -> None:
    base = make_results("run-a")
    worse = copy.deepcopy(base)
    worse["run_id"] = "run-b"
    onnx = _adapter(worse, "onnx")
    onnx["sustainable"]["rows_per_s"] /= 2
    steady = next(p for p in onnx["points"] if p["name"] == "steady-800")
    steady["latency_ms"]["p99"] *= 2
    steady["latency_ms"]["p50"] *= 1.05  # within the threshold: not a regression
    a, b = write_run(tmp_path, base), write_run(tmp_path, worse)

    res = compare([a, b], threshold_pct=10)
    assert res.regressed
    flagged = {(r.adapter, r.metric) for r in res.rows if r.any_regressed}
    assert flagged == {("onnx", "sustainable rows/s"), ("onnx", "p99 ms @ steady-800")}
    row = next(r for r in res.rows if r.adapter == "onnx" and r.metric == "sustainable rows/s")
    assert row.values == [6000.0, 3000.0] and row.ratios == [0.5]
    assert "down 50%" in row.why[0]

    con = _capture()
    assert main_compare([a, b], 10, console=con) == 1
    out = con.export_text()
    assert "2 regression(s) beyond 10 %" in out
    assert "fraud/onnx p99 ms @ steady-800: 2.00x (up 100%) (run-b)" in out
    assert "REGRESSION" in out and "0.50x" in out
    # the same change passes a looser gate
    assert main_compare([a, b], 150, console=_capture()) == 0


def test_compare_improvement_is_not_a_regression(tmp_path: Path) -> None:
    base = make_results("run-a")
    better = copy.deepcopy(base)
    better["run_id"] = "run-b"
    for a in better["scenarios"][0]["adapters"]:
        a["sustainable"]["rows_per_s"] *= 2
        for p in a["points"]:
            p["latency_ms"]["p99"] /= 2
            p["cost"]["cpu_s_per_1000"] /= 2
    assert main_compare([write_run(tmp_path, base), write_run(tmp_path, better)], 10, console=_capture()) == 0


def test_compare_flags_verdict_accuracy_and_lost_records(tmp_path: Path) -> None:
    base = make_results("run-a")
    worse = copy.deepcopy(base)
    worse["run_id"] = "run-b"
    onnx = _adapter(worse, "onnx")
    steady = next(p for p in onnx["points"] if p["name"] == "steady-200")
    steady["verdict"] = "INVALID"
    steady["accuracy"]["max_abs_diff"] = 3e-4  # beyond the 1e-5 tolerance
    steady["counts"]["lost"] = 3
    res = compare([write_run(tmp_path, base), write_run(tmp_path, worse)], threshold_pct=10)
    flagged = {r.metric: r.why[0] for r in res.rows if r.any_regressed}
    assert set(flagged) == {"verdict @ steady-200", "max abs diff", "lost + dead-lettered"}
    assert flagged["verdict @ steady-200"] == "VALID → INVALID"
    assert "beyond the tolerance" in flagged["max abs diff"]
    assert flagged["lost + dead-lettered"] == "0 → 3"


def test_compare_warns_on_different_machines(tmp_path: Path) -> None:
    a = write_run(tmp_path, make_results("run-a", hostname="bench-01"))
    b = write_run(tmp_path, make_results("run-b", hostname="laptop-7"))
    res = compare([a, b], threshold_pct=10)
    assert len(res.warnings) == 1
    assert "different machines" in res.warnings[0] and "bench-01" in res.warnings[0] and "laptop-7" in res.warnings[0]
    con = _capture()
    assert main_compare([a, b], 10, console=con) == 0  # a warning, not a regression
    assert "warning: runs come from different machines" in con.export_text()


def test_compare_three_runs_against_the_first(tmp_path: Path) -> None:
    a = make_results("run-a")
    b = make_results("run-b")
    c = copy.deepcopy(a)
    c["run_id"] = "run-c"
    _adapter(c, "pmml")["sustainable"]["rows_per_s"] = 1200.0  # -20 %
    del c["scenarios"][0]["adapters"][1]  # identity missing from run-c
    res = compare([write_run(tmp_path, x) for x in (a, b, c)], threshold_pct=10)
    row = next(r for r in res.rows if r.adapter == "pmml" and r.metric == "sustainable rows/s")
    assert row.values == [1500.0, 1500.0, 1200.0] and row.ratios == [1.0, 0.8] and row.regressed == [False, True]
    assert res.regressions == ["fraud/pmml sustainable rows/s: 0.80x (down 20%) (run-c)"]
    assert "fraud/identity is missing from run-c" in res.warnings
    out = _capture()
    main_compare([tmp_path / "run-a", tmp_path / "run-b", tmp_path / "run-c" / "results.json"], 10, console=out)
    text = out.export_text()
    assert "C / A" in text and "C: run-c" in text and "A = run-a, B = run-b, C = run-c" in text


def test_compare_needs_two_runs(tmp_path: Path) -> None:
    with pytest.raises(ResultsError, match="at least two runs"):
        compare([write_run(tmp_path, make_results())], threshold_pct=10)
