"""Scale-out and rebalance experiments on the real broker: a scorer joins and leaves the consumer group under
load and every record is accounted for; the scale-out grid measures each cell; the report draws both."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import run_cli

SCENARIO = """
name: small
dataset: {generator: fraud, rows: 4000, seed: 3, holdout_max_rows: 500, params: {positive_rate: 0.05}}
model: {trainer: lightgbm, params: {n_estimators: 20, num_leaves: 15}}
formats: [onnx]
adapters: [{name: native}]
"""


def _run(broker: str, small_bundle: Path, tmp_path: Path, *args: str) -> dict:  # type: ignore[type-arg]
    f = tmp_path / "small.yaml"
    f.write_text(SCENARIO)
    r = run_cli(
        "experiment", str(f), *args, "--bootstrap", broker, "--artifacts", str(small_bundle.parent.parent),
        "--results", str(tmp_path / "results"), timeout=900,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    run_dir = Path(r.stdout.strip().splitlines()[-1])
    assert (run_dir / "report.md").is_file()
    return {"data": json.loads((run_dir / "results.json").read_text()), "dir": run_dir}


def test_a_scorer_joins_and_leaves_under_load_and_nothing_is_lost(
    broker: str, small_bundle: Path, tmp_path: Path
) -> None:
    out = _run(broker, small_bundle, tmp_path, "rebalance", "--adapter", "native", "--partitions", "4",
               "--rate-per-s", "800", "--duration-s", "12")  # fmt: skip
    rb = out["data"]["scenarios"][0]["experiments"]["rebalance"]
    c = rb["counts"]
    assert c["sent"] == 9600 and c["lost"] == 0 and c["scored"] == c["sent"], c
    whats = [e[1] for e in rb["events"]]
    expected = ["a scorer joins", "it is READY (partitions assigned)", "a scorer leaves (SIGTERM)", "it has left"]
    assert whats == expected, rb["events"]
    assert len(rb["windows"]) == 12 and rb["p99_ms_around"], (rb["windows"], rb["p99_ms_around"])
    assert (out["dir"] / "report-small-rebalance.png").is_file()


def test_the_scale_out_grid_measures_every_cell(broker: str, small_bundle: Path, tmp_path: Path) -> None:
    out = _run(broker, small_bundle, tmp_path, "scale-out", "--partitions", "1,2", "--processes", "1,2",
               "--trials", "1")  # fmt: skip
    exp = out["data"]["scenarios"][0]["experiments"]
    cells = {(c["partitions"], c["processes"]): c for c in exp["scale_out"]}
    assert set(cells) == {(1, 1), (1, 2), (2, 1), (2, 2)} and exp["scale_out_adapter"] == "identity"
    assert all(c["capacity_rows_per_s"]["median"] > 0 for c in cells.values())
    assert (out["dir"] / "report-small-scale-out.png").is_file()
    assert "### Scale-out" in (out["dir"] / "report.md").read_text()


def test_the_lifecycle_swap_time_is_when_the_new_model_scored_not_its_window() -> None:
    """Windows are by intended send time: the first window holding a new-model result starts before the publish
    (the bug this guards against printed a time to swap of -0.41 s). The swap is timed by the first result."""
    from harness.bench.lifecycle import LifecyclePlan, _summary
    from harness.results.point import Counts
    from harness.scenario import AdapterSpec

    events = [(15.0, "drift starts"), (20.34, "monitor alert: ScoreDriftPSI"),
              (24.0, "training set from the stream: 4,000 labelled records"),
              (26.5, "challenger trained, exported, parity-gated and judged"),
              (26.9, "challenger published on the model topic")]  # fmt: skip
    timeline = [(float(t), {"old": 2000} if t < 27 else {"old": 900, "new": 1100}, 0.1) for t in range(40)]
    latency = [(float(t), 2000, 8.0, 12.0) for t in range(40)]
    monitor = [{"t_end_s": float(t), "auc": a} for t, a in ((5, 0.92), (10, 0.93), (20, 0.71), (25, 0.69),
                                                            (30, 0.80), (35, 0.90), (40, 0.91))]  # fmt: skip
    lc = _summary(LifecyclePlan(), AdapterSpec(name="native"), "old", "new", events, monitor, timeline, latency,
                  Counts(), 0, 27.07)  # fmt: skip
    assert lc.time_to_swap_s == 0.17 and lc.time_to_alert_s == 5.34
    assert lc.time_to_training_set_s == 3.66 and lc.time_to_gated_s == 2.5 and lc.time_to_publish_s == 0.4
    assert lc.auc_before == 0.925 and lc.auc_worst == 0.69 and lc.auc_after == 0.905
    assert lc.time_to_recovered_s == 7.93  # the window ending at 35 s is within 0.05 of 0.925; 30 s was not
    assert (27.07, "first result from the retrained model") in lc.events
