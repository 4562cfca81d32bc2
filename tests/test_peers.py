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
        "load": [{"name": "steady-100", "pattern": "constant", "rate_per_s": 100, "duration_s": 3, "warmup_s": 1}],
        "sustainable": {"enabled": False},
        "trials": {"count": 1, "aa_identity": False},
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
    ((p,),) = ([pt for pt in a["trials"][0]["points"] if pt["kind"] == "load"],)
    c = p["counts"]
    assert c["sent"] == 300 and c["scored"] == 300 and c["lost"] == 0, c
    assert p["accuracy"]["max_abs_diff"] < 1e-9  # MLServer's LightGBM runtime, the same model file
    assert p["latency_ms"]["p50"] > 0 and p["cost"]["cpu_s_per_1000"] > 0
    assert a["inprocess"]["batch_rows_per_s"] > 0  # its REST endpoint, through the rest adapter
