"""The peer a user would otherwise deploy, in the same harness: MLServer 1.7.1's Kafka mode, installed into its
own virtual environment, serving the same LightGBM model on the real broker, driven by the same load
generator (V2 requests) and timed by the same measurer (V2 responses; the intended time from the schedule)."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from tests.conftest import run_cli


def test_mlserver_kafka_scores_the_same_model_through_the_same_measurer(
    broker: str, small_bundle: Path, tmp_path: Path
) -> None:
    sc = {
        "name": "small",
        "dataset": {"generator": "fraud", "rows": 4000, "seed": 3, "holdout_max_rows": 500,
                    "params": {"positive_rate": 0.05}},
        "model": {"trainer": "lightgbm", "params": {"n_estimators": 20, "num_leaves": 15}},
        "formats": ["onnx"],
        "adapters": [{"name": "mlserver-kafka"}],
        "rounds": {"count": 1, "aa_identity": False, "fractions": [0.3], "backlog_s": 0.5, "backlog_min_records": 300},
    }  # fmt: skip
    f = tmp_path / "peer.yaml"
    f.write_text(yaml.safe_dump(sc))
    r = run_cli(
        "run", str(f), "--bootstrap", broker, "--artifacts", str(small_bundle.parent.parent),
        "--results", str(tmp_path / "results"), "--no-identity", "--no-report", timeout=900,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    data = json.loads((Path(r.stdout.strip().splitlines()[-1]) / "results.json").read_text())
    (a,) = data["scenarios"][0]["adapters"]
    assert a["adapter"] == "mlserver-kafka" and a["family"] == "peer" and a["error"] is None
    for w in a["windows"]:
        assert w["scored"] == w["records"] and w["lost"] == 0, w
    (w,) = [w for w in a["windows"] if w["kind"] == "load"]
    assert w["accuracy"]["max_abs_diff"] < 1e-9  # MLServer's LightGBM runtime, the same model file
    assert w["latency"]["p50_ms"] > 0 and w["cpu_us_per_record"] > 0
    assert a["inprocess"]["batch_rows_per_s"] > 0  # its REST endpoint, through the rest adapter
