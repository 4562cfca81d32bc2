"""Trustworthy verdicts without a broker: intervals over trials, ties, the noise floor, consistency checks and
`harness compare` judging with the same statistics. Fixtures are hand-built trials (not measurements)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from harness.reporting.analysis import analyse
from harness.reporting.compare import compare, main_compare
from harness.reporting.repeatability import verdict as repeat_verdict
from harness.results.consistency import consistency_problems
from harness.results.schema import load_results, parse_results
from harness.results.stats import judge, median_interval, stat
from tests.conftest import ROOT
from tests.test_report import _point, _search, make_results, write_run

# ---- statistics -------------------------------------------------------------------------------------------


def test_three_trials_give_min_max_at_75_percent() -> None:
    lo, hi, coverage = median_interval([30_000, 26_000, 33_000])
    assert (lo, hi) == (26_000, 33_000) and coverage == pytest.approx(0.75)


def test_interval_narrows_and_reaches_95_percent_with_more_trials() -> None:
    xs = list(range(1, 11))  # 10 trials
    lo, hi, coverage = median_interval(xs, 0.95)
    assert (lo, hi) == (2, 9) and coverage == pytest.approx(1 - 2 * (1 + 10) / 1024)
    lo6, hi6, cov6 = median_interval([5, 1, 4, 2, 6, 3], 0.95)
    assert (lo6, hi6) == (1, 6) and cov6 >= 0.95


def test_stat_ignores_missing_values_and_reports_spread() -> None:
    st = stat([100.0, None, float("nan"), 120.0, 110.0])
    assert st is not None and st.n == 3 and st.median == 110.0 and (st.min, st.max) == (100.0, 120.0)
    assert st.half_width_pct == pytest.approx(10 / 110 * 100)
    assert stat([None, float("nan")]) is None


def test_judge_calls_overlap_a_tie_and_needs_the_gap_beyond_the_threshold() -> None:
    a = stat([100.0, 105.0, 110.0])
    b = stat([104.0, 112.0, 120.0])
    c = stat([120.0, 125.0, 130.0])
    assert a and b and c
    assert judge(a, b, "higher") == "tie"  # overlapping intervals
    assert judge(a, c, "higher") == "better" and judge(c, a, "higher") == "worse"
    assert judge(a, c, "higher", threshold=0.2) == "tie"  # apart by 10/105: below a 20 % threshold
    assert judge(a, c, "lower") == "worse"  # latency up is worse


# ---- fixtures: several trials per adapter ---------------------------------------------------------------


def _trial(index: int, held_up_to: float, p99_floor: float, cpu: float, capacity: float) -> dict[str, Any]:
    search = _search(held_up_to, p99_floor, 45.0, cpu=cpu, rss=200.0)
    return {
        "index": index,
        "round": index,
        "capacity": {"rows_per_s": capacity, "records": 40_000},
        "sustainable": search["sustainable"],
        "points": [_point("steady-200", 200.0, 2.0 + index * 0.1, 6.0 + index, cpu=cpu), *search["points"]],
    }


def _adapter(name: str, family: str, rates: list[float], cpu: float = 0.4, capacity: float = 60_000) -> dict:
    return {
        "adapter": name,
        "name": name.split(" ")[0],
        "family": family,
        "trials": [_trial(i, r, 5.0, cpu, capacity) for i, r in enumerate(rates)],
    }


def _results(adapters: list[dict[str, Any]], run_id: str = "run-a") -> dict[str, Any]:
    data = make_results(run_id)
    data["schema"] = 3
    sc = data["scenarios"][0]
    sc["trials"] = 3
    sc["adapters"] = adapters
    return data


def _identity_pair(a: list[float], b: list[float]) -> list[dict[str, Any]]:
    pair = [_adapter("identity", "baseline", a, cpu=0.3), _adapter("identity (A/A)", "baseline", b, cpu=0.3)]
    for ad in pair:
        for t in ad["trials"]:
            for p in t["points"]:
                p["accuracy"]["note"] = "identity returns 0.5 for every row: accuracy does not apply"
    return pair


# ---- ranking: a winner only when its interval clears the runner-up's ---------------------------------------


def test_a_winner_clears_the_runner_up() -> None:
    data = _results(
        [
            _adapter("native", "native", [9000, 9500, 10000]),
            _adapter("pmml", "pmml", [3000, 3200, 3400], cpu=1.2),
            *_identity_pair([12000, 12500, 13000], [12000, 12400, 12800]),
        ]
    )
    an = analyse(parse_results(data).scenarios[0])
    assert an.best is not None and an.best.adapter == "native" and an.tied == []
    assert (
        "Use **native**" in an.recommendation
        and "clears the runner-up's, pmml 3,200 [3,000–3,400]" in an.recommendation
    )
    assert "9,500 [9,000–10,000] rows/s" in an.recommendation


def test_trials_that_met_a_busy_machine_leave_no_winner_to_name() -> None:
    """native's three searches ended "machine busy" and pmml kept one trial of three: no recommendation, the
    table says "not booked", and repeatability's verdict is "none" — never "native met the SLO at no rate"."""
    native = _adapter("native", "native", [9000, 9500, 10000])
    pmml = _adapter("pmml", "pmml", [3000, 3200, 3400], cpu=1.2)
    for t in native["trials"] + pmml["trials"][1:]:
        t["sustainable"]["limited_by"] = "machine busy"
    data = _results([native, pmml, *_identity_pair([12000, 12500, 13000], [12000, 12400, 12800])])
    sc = parse_results(data).scenarios[0]
    an = analyse(sc)
    assert an.best is None and an.tied == []
    assert an.recommendation.startswith("No recommendation from this run: the machine was busy")
    assert "native (3 of 3 trials not booked)" in an.recommendation
    assert "pmml (2 of 3 trials not booked)" in an.recommendation
    native_row = next(r for r in an.ranked if r.adapter.adapter == "native")
    assert not native_row.qualifies and "not measured: the machine was busy" in native_row.why_not
    assert repeat_verdict(sc) == "none"
    # one busy trial of three still leaves two to rank on: a winner as before
    pmml["trials"] = copy.deepcopy(pmml["trials"])
    for t in pmml["trials"]:
        t["sustainable"]["limited_by"] = "slo"
    native["trials"][0]["sustainable"]["limited_by"] = "slo"
    native["trials"][1]["sustainable"]["limited_by"] = "slo"
    an2 = analyse(
        parse_results(
            _results([native, pmml, *_identity_pair([12000, 12500, 13000], [12000, 12400, 12800])])
        ).scenarios[0]
    )
    assert an2.best is not None and an2.best.adapter == "native"
    assert any("1 of 3 trials' searches ended with the machine busy" in c for c in an2.caveats)


def test_overlapping_intervals_are_a_tie_with_how_to_choose() -> None:
    data = _results(
        [
            _adapter("native", "native", [9000, 9600, 10200], cpu=0.40),
            _adapter("codegen-c", "generated-code", [8800, 9400, 10000], cpu=0.30),
            _adapter("pmml", "pmml", [3000, 3200, 3400], cpu=1.2),
            *_identity_pair([12000, 12500, 13000], [12000, 12400, 12800]),
        ]
    )
    an = analyse(parse_results(data).scenarios[0])
    assert an.best is None and [a.adapter for a in an.tied] == ["native", "codegen-c"]
    rec = an.recommendation
    assert rec.startswith("Tied on sustainable throughput") and "**native**, **codegen-c**" in rec
    assert "CPU per 1,000 events: codegen-c 0.3 s, native 0.4 s (codegen-c least)" in rec
    assert "operations:" in rec and "pmml" in rec  # the one behind is still compared


def test_apart_but_within_the_noise_floor_is_a_tie() -> None:
    """Intervals apart by a little, but the A/A pair of identical scorers differed by more than that."""
    data = _results(
        [
            _adapter("native", "native", [10_000, 10_100, 10_200]),
            _adapter("onnx", "onnx", [9_500, 9_600, 9_700]),
            *_identity_pair([12_000, 12_500, 13_000], [10_800, 11_000, 11_200]),
        ]
    )
    sc = parse_results(data).scenarios[0]
    assert sc.noise is not None and sc.noise.sustainable_pct == pytest.approx(12.8, abs=0.1)
    an = analyse(sc)
    assert an.best is None and {a.adapter for a in an.tied} == {"native", "onnx"}
    assert any("noise floor of this run (A/A: identity vs identity (A/A)" in c for c in an.caveats)


def test_single_trial_coverage_and_wide_intervals_are_explained() -> None:
    data = _results(
        [
            _adapter("native", "native", [6000, 9000, 12000]),  # ±33 %
            *_identity_pair([12000, 12500, 13000], [12000, 12400, 12800]),
        ]
    )
    an = analyse(parse_results(data).scenarios[0])
    text = "\n".join(an.caveats)
    assert "native: sustainable throughput varies ±33% over the trials (6,000, 9,000, 12,000)" in text
    assert "holds the median with 75% confidence; `--trials 6` gives 95%" in text


# ---- consistency: never recommended on -------------------------------------------------------------------


def test_sustainable_above_its_own_capacity_is_inconsistent() -> None:
    data = _results(
        [
            _adapter("kstreams-mojo-batch", "generated-code", [9000, 9500, 9800], capacity=5000),
            _adapter("native", "native", [6000, 6200, 6400]),
            *_identity_pair([12000, 12500, 13000], [12000, 12400, 12800]),
        ]
    )
    sc = parse_results(data).scenarios[0]
    ks = sc.adapter("kstreams-mojo-batch")
    assert ks is not None
    problems = consistency_problems(sc, ks)
    assert problems and "above its own flat-out capacity 5,000/s" in problems[0]
    an = analyse(sc)
    assert an.best is not None and an.best.adapter == "native"  # the faster but inconsistent one is not
    assert any("kstreams-mojo-batch: inconsistent figures, not recommended" in c for c in an.caveats)


def test_above_the_kafka_ceiling_beyond_the_noise_is_inconsistent() -> None:
    data = _results(
        [
            _adapter("native", "native", [20000, 21000, 22000]),
            *_identity_pair([12000, 12500, 13000], [12000, 12400, 12800]),
        ]
    )
    sc = parse_results(data).scenarios[0]
    native = sc.adapter("native")
    assert native is not None
    assert any("above the Kafka-only ceiling" in p for p in consistency_problems(sc, native))
    assert "none to recommend" in analyse(sc).recommendation


def test_a_strategy_with_its_own_kafka_client_is_not_bounded_by_the_python_loops_ceiling() -> None:
    app = _adapter("kstreams-mojo", "generated-code", [20000, 21000, 22000], capacity=30_000)
    app["client"] = "own"
    data = _results([app, *_identity_pair([12000, 12500, 13000], [12000, 12400, 12800])])
    sc = parse_results(data).scenarios[0]
    ks = sc.adapter("kstreams-mojo")
    assert ks is not None and consistency_problems(sc, ks) == []
    an = analyse(sc)
    assert an.best is not None and an.best.adapter == "kstreams-mojo"
    assert any("its own Kafka client" in c for c in an.caveats)
    del app["client"]  # a run written before the field: the built-in app is still known to have its own client
    assert consistency_problems(sc, parse_results(data).scenarios[0].adapter("kstreams-mojo")) == []  # type: ignore[arg-type]


# ---- compare: a regression only when the intervals separate beyond the threshold ---------------------------


def _capture() -> Console:
    return Console(record=True, width=240, color_system=None)


def test_compare_of_noisy_identical_runs_reports_no_regression(tmp_path: Path) -> None:
    a = _results([_adapter("native", "native", [9000, 10000, 11000]), *_identity_pair([12000] * 3, [12100] * 3)])
    b = _results(
        [_adapter("native", "native", [7600, 9200, 10400]), *_identity_pair([11000] * 3, [11200] * 3)], "run-b"
    )  # the median is down 8 %, then 16 % in c: the intervals still overlap
    c = copy.deepcopy(b)
    c["run_id"] = "run-c"
    c["scenarios"][0]["adapters"][0] = _adapter("native", "native", [7600, 8400, 9100])
    res = compare([write_run(tmp_path, a), write_run(tmp_path, b), write_run(tmp_path, c)], threshold_pct=10)
    assert not res.regressed
    row = next(r for r in res.rows if r.adapter == "native" and r.metric == "sustainable rows/s")
    assert row.values == [10000, 9200, 8400] and row.within_noise == [False, True]
    con = _capture()
    assert main_compare([tmp_path / "run-a", tmp_path / "run-c"], 10, console=con) == 0
    out = con.export_text()
    assert "within noise" in out and "8,400 [7,600–9,100]" in out


def test_compare_flags_intervals_apart_beyond_the_threshold(tmp_path: Path) -> None:
    a = _results([_adapter("native", "native", [9000, 10000, 11000]), *_identity_pair([12000] * 3, [12100] * 3)])
    b = _results([_adapter("native", "native", [6000, 6500, 7000]), *_identity_pair([12000] * 3, [12100] * 3)], "run-b")
    res = compare([write_run(tmp_path, a), write_run(tmp_path, b)], threshold_pct=10)
    flagged = {r.metric: r.why[0] for r in res.rows if r.adapter == "native" and r.any_regressed}
    assert "sustainable rows/s" in flagged and "down 35%" in flagged["sustainable rows/s"]


def test_compare_within_the_gap_but_under_the_threshold_is_no_regression(tmp_path: Path) -> None:
    a = _results([_adapter("native", "native", [10000, 10100, 10200]), *_identity_pair([12000] * 3, [12100] * 3)])
    b = _results(
        [_adapter("native", "native", [9400, 9500, 9600]), *_identity_pair([12000] * 3, [12100] * 3)], "run-b"
    )  # apart, but the gap (9600 -> 10000) is 4 %: below a 10 % threshold
    res = compare([write_run(tmp_path, a), write_run(tmp_path, b)], threshold_pct=10)
    assert not res.regressed


def test_compare_holds_a_move_inside_the_runs_a_a_noise_floor_as_noise(tmp_path: Path) -> None:
    # native's intervals are apart by 20 % (a regression at a 10 % threshold on its own) ...
    native_a, native_b = [12300, 12900, 13600], [8440, 9730, 9740]
    plain = [_adapter("identity", "baseline", [12000] * 3, cpu=0.3)]  # no A/A pair: no floor
    a = _results([_adapter("native", "native", native_a), *plain])
    b = _results([_adapter("native", "native", native_b), *plain], "run-b")
    res = compare([write_run(tmp_path, a), write_run(tmp_path, b)], threshold_pct=10)
    assert [r.metric for r in res.rows if r.any_regressed] == ["sustainable rows/s"]
    # ... but two identical contestants of run B differed by 29 %: the move is inside this machine's noise
    a2 = _results([_adapter("native", "native", native_a), *_identity_pair([12000] * 3, [12100] * 3)], "run-a2")
    b2 = _results([_adapter("native", "native", native_b), *_identity_pair([12000] * 3, [9000] * 3)], "run-b2")
    pa, pb = write_run(tmp_path, a2), write_run(tmp_path, b2)
    res2 = compare([pa, pb], threshold_pct=10)
    assert not res2.regressed
    row = next(r for r in res2.rows if r.adapter == "native" and r.metric == "sustainable rows/s")
    assert row.within_noise == [True] and row.bars[0] == pytest.approx(3000 / 10500, abs=1e-3)
    con = _capture()
    assert main_compare([pa, pb], 10, console=con) == 0
    assert "A/A noise floor per run" in con.export_text()
    # a collapse well beyond the floor is still a regression, and says which bar it cleared
    b3 = _results(
        [_adapter("native", "native", [4000, 4200, 4400]), *_identity_pair([12000] * 3, [9000] * 3)], "run-b3"
    )
    res3 = compare([pa, write_run(tmp_path, b3)], threshold_pct=10)
    assert "beyond the runs' A/A noise floor 29%" in res3.regressions[0]


def test_compare_skips_latency_at_a_point_over_capacity_in_every_run(tmp_path: Path) -> None:
    def slow(run: str, p50: float) -> dict[str, Any]:
        ad = _adapter("pfa", "pfa", [80, 82, 84])
        for t in ad["trials"]:  # 200/s offered, ~150/s scored: a backlog that grows, latency is the queue
            t["points"][0] = _point("steady-200", 200.0, p50, p50 * 1.6, achieved=150.0, slo_met=False)
        return _results([ad, *_identity_pair([12000] * 3, [12100] * 3)], run)

    res = compare([write_run(tmp_path, slow("run-a", 80.0)), write_run(tmp_path, slow("run-b", 500.0))], 10)
    pfa_metrics = [r.metric for r in res.rows if r.adapter == "pfa"]
    assert not res.regressed and "p99 ms @ steady-200" not in pfa_metrics and "p50 ms @ steady-200" not in pfa_metrics
    assert any("pfa @ steady-200" in n and "not compared" in n for n in res.notes)
    # held in run A, over capacity in run B: that is a regression, and it is flagged
    a = _results([_adapter("pfa", "pfa", [80, 82, 84]), *_identity_pair([12000] * 3, [12100] * 3)], "run-c")
    res2 = compare([write_run(tmp_path, a), write_run(tmp_path, slow("run-d", 500.0))], 10)
    assert any(r.metric == "p99 ms @ steady-200" for r in res2.rows if r.any_regressed)


def test_compare_judges_cpu_relative_to_the_runs_kafka_only_baseline(tmp_path: Path) -> None:
    def run(run_id: str, native_cpu: float, identity_cpu: float) -> Path:
        pair = _identity_pair([12000] * 3, [12100] * 3)
        for ad in pair:
            for t in ad["trials"]:
                for pt in t["points"]:
                    pt["cost"]["cpu_s_per_1000"] = identity_cpu
        return write_run(tmp_path, _results([_adapter("native", "native", [10000] * 3, cpu=native_cpu), *pair], run_id))

    metric = "CPU s/1000 @ steady-200"
    a = run("run-a", 0.50, 0.30)
    # the machine ran 9% slower: native's CPU +12% as measured, +3% relative to the identity in the same run
    res = compare([a, run("run-b", 0.56, 0.327)], 10)
    row = next(r for r in res.rows if r.adapter == "native" and r.metric == metric)
    assert not res.regressed and row.relative and row.values[1] == pytest.approx(0.56)
    assert row.ratios[0] == pytest.approx(0.56 / 0.327 / (0.50 / 0.30))
    assert any("Kafka-only baseline" in n for n in res.notes)
    ident = next(r for r in res.rows if r.adapter == "identity" and r.metric == metric)
    assert not ident.relative  # the baseline itself is judged as measured
    # native alone +20% in a run where the baseline did not move: a regression, and it says against what
    res2 = compare([a, run("run-c", 0.60, 0.30)], 10)
    assert [r.metric for r in res2.rows if r.any_regressed] == [metric]
    assert "relative to each run's Kafka-only baseline" in res2.regressions[0]
    # the baseline's own CPU +25%: flagged as measured (a slower loop, or a slower machine: the runs cannot say)
    res3 = compare([a, run("run-d", 0.625, 0.375)], 10)
    flagged = [(r.adapter, r.metric) for r in res3.rows if r.any_regressed]
    assert flagged == [("identity", metric), ("identity (A/A)", metric)]


def test_compare_judges_peak_rss_over_trials_at_the_load_point(tmp_path: Path) -> None:
    def with_rss(run: str, rss: list[float], search_rss: float = 200.0) -> dict[str, Any]:
        ad = _adapter("native", "native", [10000] * 3)
        for t, r in zip(ad["trials"], rss, strict=True):
            for pt in t["points"]:
                pt["cost"]["peak_rss_mib"] = r if pt["kind"] == "load" else search_rss
        return _results([ad], run)

    metric = "peak RSS MiB @ steady-200"
    a, b = with_rss("run-a", [70, 78, 74]), with_rss("run-b", [80, 90, 76])  # +8 % median, overlapping
    res = compare([write_run(tmp_path, a), write_run(tmp_path, b)], 10)
    assert not res.regressed and any(r.metric == metric for r in res.rows)
    c = with_rss("run-c", [140, 150, 145])  # doubled in every trial
    res2 = compare([write_run(tmp_path, a), write_run(tmp_path, c)], 10)
    assert [r.metric for r in res2.rows if r.any_regressed] == [metric]
    # the search's peak (the consumer's prefetch under a backlog) grew 1.6x: not the strategy's footprint
    d = with_rss("run-d", [70, 78, 74], search_rss=320.0)
    assert not compare([write_run(tmp_path, a), write_run(tmp_path, d)], 10).regressed


def test_compare_does_not_gate_latency_where_the_load_is_most_of_the_capacity(tmp_path: Path) -> None:
    def near(run: str, p99: float, capacity: float) -> dict[str, Any]:
        ad = _adapter("pfa", "pfa", [80, 82, 84], capacity=capacity)
        for t in ad["trials"]:  # 200/s held, but at 200/capacity of what the strategy can do flat out
            t["points"][0] = _point("steady-200", 200.0, p99 / 2, p99)
        return _results([ad, *_identity_pair([12000] * 3, [12100] * 3)], run)

    # 200/s is 70 % of a 285/s capacity in run B: p99 2.5x is queueing, not gated, and a note says why
    res = compare(
        [write_run(tmp_path, near("run-a", 20.0, 300.0)), write_run(tmp_path, near("run-b", 50.0, 285.0))], 10
    )
    assert not res.regressed
    assert "p99 ms @ steady-200" not in [r.metric for r in res.rows if r.adapter == "pfa"]
    assert any("pfa @ steady-200" in n and "70% of the strategy's flat-out capacity in run-b" in n for n in res.notes)
    # the same move at 10 % of capacity in both runs is a regression
    far = compare(
        [write_run(tmp_path, near("run-c", 20.0, 2000.0)), write_run(tmp_path, near("run-d", 50.0, 2000.0))], 10
    )
    assert any(r.metric == "p99 ms @ steady-200" for r in far.rows if r.any_regressed)


# ---- older schemas are still read ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "results/example-fraud",
        "results/example-maintenance",
        "tests/data/results-schema1-fraud.json",  # the kept runs of schema 1 (one measurement per adapter)
        "tests/data/results-schema1-maintenance.json",
    ],
)
def test_kept_example_runs_are_still_read(path: str) -> None:
    res = load_results(ROOT / path)
    sc = res.scenarios[0]
    assert sc.adapters and all(a.trials for a in sc.adapters if not a.error)
    an = analyse(sc)
    assert an.recommendation


# ---- repeatability: do identical runs agree? -------------------------------------------------------------


def test_repeatability_agrees_and_then_catches_a_flip(tmp_path: Path) -> None:
    from harness.reporting.repeatability import repeatability

    def run(run_id: str, native: list[float], pmml: list[float]) -> Path:
        adapters = [
            _adapter("native", "native", native),
            _adapter("pmml", "pmml", pmml, cpu=1.2),
            *_identity_pair([12000] * 3, [12100] * 3),
        ]
        return write_run(tmp_path, _results(adapters, run_id))

    a = run("r1", [9000, 9500, 10000], [3000, 3200, 3400])
    b = run("r2", [9200, 9900, 10100], [3100, 3300, 3500])
    c = run("r3", [8800, 9300, 9800], [2900, 3100, 3300])
    con = _capture()
    assert repeatability([a, b, c], 15.0, console=con) == 0
    out = con.export_text()
    assert "recommendations agree" in out and "run 2 (r2): winner native" in out
    flipped = run("r4", [3000, 3200, 3400], [9000, 9500, 10000])
    con = _capture()
    assert repeatability([a, b, flipped], 15.0, console=con) == 1
    assert "recommendations disagree" in con.export_text()
    # runs that recommend nothing (here: both above the Kafka-only ceiling, inconsistent) do not "agree"
    nothing = [run(f"n{i}", [20000, 21000, 22000], [20000, 21000, 22000]) for i in range(2)]
    con = _capture()
    assert repeatability(nothing, 15.0, console=con) == 1
    text = con.export_text()
    assert "no run made a recommendation" in text and "run 1 (n0): none" in text
