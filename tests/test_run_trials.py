"""`harness run` end to end on the real broker: interleaved trials, the A/A identity pair, the search's
steps with their interference records, and a results.json that the report reads back."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from harness.results.schema import SCHEMA_VERSION, load_results
from tests.conftest import ROOT, run_cli


def test_run_interleaves_trials_and_measures_the_noise_floor(broker: str, small_bundle: Path, tmp_path: Path) -> None:
    sc = {
        "name": "trials",
        "dataset": {"generator": "fraud", "rows": 4000, "seed": 3, "holdout_max_rows": 500,
                    "params": {"positive_rate": 0.05}},
        "model": {"trainer": "lightgbm", "params": {"n_estimators": 20, "num_leaves": 15}},
        "formats": ["onnx"],
        "adapters": [{"name": "onnx"}],
        "load": [{"name": "steady-200", "pattern": "constant", "rate_per_s": 200, "duration_s": 2, "warmup_s": 0.5}],
        "sustainable": {"start_rate_per_s": 1000, "factor": 2, "max_rate_per_s": 2000, "step_duration_s": 1.5,
                        "warmup_s": 0.5, "precision": 0.5, "min_step_samples": 300},
        "trials": {"count": 2, "aa_identity": True},
        # about interleaving and the noise floor: CPU steal or a busy CI host must not end a search "machine busy"
        # and leave a trial unbooked (that rule has its own tests in tests/test_search.py and test_verdicts.py)
        "interference": {"other_cpu_pct": 10000, "steal_pct": 100},
    }  # fmt: skip
    f = tmp_path / "trials.yaml"
    f.write_text(yaml.safe_dump(sc))
    results = tmp_path / "results"
    r = run_cli(
        "run", str(f), "--bootstrap", broker, "--artifacts", str(small_bundle.parent.parent),
        "--results", str(results), timeout=900,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    run_dir = Path(r.stdout.strip().splitlines()[-1])
    raw = json.loads((run_dir / "results.json").read_text())
    assert raw["schema"] == SCHEMA_VERSION
    sc_out = raw["scenarios"][0]
    # three contestants (identity, onnx, identity A/A), two rounds, each in a rotated order
    assert [a["adapter"] for a in sc_out["adapters"]] == ["identity", "onnx", "identity (A/A)"]
    assert sc_out["rounds"] == [["identity", "onnx", "identity (A/A)"], ["onnx", "identity (A/A)", "identity"]]
    for a in sc_out["adapters"]:
        assert a["error"] is None, a["error"]
        assert [t["index"] for t in a["trials"]] == [0, 1]
        assert a["stats"]["trials"] == 2 and a["stats"]["sustainable_rows_per_s"]["n"] == 2
        for t in a["trials"]:
            load = [p for p in t["points"] if p["kind"] == "load"]
            steps = [p for p in t["points"] if p["kind"] == "search"]
            assert len(load) == 1 and steps and t["capacity"]["rows_per_s"] > 0
            assert all(p["counts"]["lost"] == 0 or p["kind"] == "search" for p in t["points"])
            assert all(p["interference"] is not None for p in t["points"])  # every point says what else ran
            assert all(s["point"] for s in t["sustainable"]["steps"])  # each step names its point
    ceilings = sc_out["ceilings"]  # the harness's own limits, beside the loop's cost per record
    assert ceilings["generator_per_s"] > 0 and ceilings["measurer_per_s"] > 0
    assert ceilings["loop_cpu_us_per_record"] > 0 and ceilings["loop_capacity_per_s"] > 0
    # the native relay on the same broker: the Kafka client's own limit, beside the loop's identity figure
    assert ceilings["relay_per_s"] > 0 and ceilings["relay_cpu_us_per_record"] > 0
    assert sc_out["noise"]["contestants"] == ["identity", "identity (A/A)"]
    assert sc_out["noise"]["sustainable_pct"] is not None
    # the report reads the same classes back
    res = load_results(run_dir)
    assert res.scenarios[0].adapter("onnx") is not None
    md = (run_dir / "report.md").read_text()
    assert "**Noise floor:**" in md and "**Trials:** 2 per adapter, interleaved" in md
    assert "**Harness ceilings:**" in md
    assert ROOT.is_dir()
