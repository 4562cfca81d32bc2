"""Bring-your-own-model end to end on the real broker: the PMML from another tool (nyoka, string categorical inputs,
missing values) imported and run by `harness run` from a scenario that names the bundle; the MLP scenario through
`harness run` with every format it has; and the scoring loop decoding categorical strings with the bundle's schema
(a wrong type or a category the model calls invalid is a dead letter with the reason)."""

from __future__ import annotations

import json
import threading
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
import yaml
from confluent_kafka import Producer

from adapters.bundle import Bundle
from adapters.registry import adapter_class
from harness.kafka.config import KafkaTarget
from harness.modelbuild.importer import ImportRequest, import_model
from harness.scoring import wire
from harness.scoring.loop import ScoringLoop
from harness.scoring.settings import LoopConfig
from tests.conftest import ROOT, consume_all, create_topic, run_cli

BYOM = ROOT / "scenarios" / "byom"
QUICK_ROUNDS = {"count": 1, "aa_identity": False, "fractions": [0.5], "backlog_s": 0.5, "backlog_min_records": 300}


@pytest.fixture(scope="module")
def byom_artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The repository's nyoka PMML example (scenarios/byom), imported as docs/your-own-model.md does."""
    arts = tmp_path_factory.mktemp("artifacts")
    req = ImportRequest(BYOM / "fraud_lr.pmml", BYOM / "fraud_reference.csv", "label", "expected", "byom-pmml")
    import_model(req, arts, log=lambda m: None)
    return arts


def _run(broker: str, sc: dict[str, Any], tmp_path: Path, artifacts: Path) -> dict[str, Any]:
    f = tmp_path / f"{sc['name']}.yaml"
    f.write_text(yaml.safe_dump(sc))
    r = run_cli("run", str(f), "--quick", "--no-identity", "--no-report", "--bootstrap", broker,
                "--artifacts", str(artifacts), "--results", str(tmp_path / "results"), timeout=600)  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    run_dir = Path(r.stdout.strip().splitlines()[-1])
    return json.loads((run_dir / "results.json").read_text())["scenarios"][0]  # type: ignore[no-any-return]


def _load_window(adapter: dict[str, Any]) -> dict[str, Any]:
    assert adapter["error"] is None, adapter["error"]
    for w in adapter["windows"]:  # the backlog windows: every record scored once
        assert w["scored"] == w["records"] and w["lost"] == 0 and w["dead_lettered"] == 0, w
    (window,) = [w for w in adapter["windows"] if w["kind"] == "load"]
    return window  # type: ignore[no-any-return]


def test_an_imported_pmml_runs_through_harness_run(broker: str, byom_artifacts: Path, tmp_path: Path) -> None:
    sc = {
        "name": "byom-pmml",
        "bundle": str(byom_artifacts / "byom-pmml"),  # a folder of bundles: the newest is used
        "adapters": [{"name": "pmml"}],
        "rounds": QUICK_ROUNDS,
    }
    out = _run(broker, sc, tmp_path, byom_artifacts)
    assert out["trainer"] == "import/pmml/RegressionModel"
    w = _load_window(out["adapters"][0])
    assert w["scored"] >= 150 and w["lost"] == 0 and w["dead_lettered"] == 0
    assert w["accuracy"]["max_abs_diff"] <= 1e-9 and w["accuracy"]["auc"] > 0.7


def test_the_mlp_scenario_runs_with_every_format_it_has(broker: str, tmp_path: Path) -> None:
    sc = yaml.safe_load((ROOT / "scenarios" / "mlp.yaml").read_text())
    sc |= {
        "dataset": {**sc["dataset"], "rows": 4000, "holdout_max_rows": 500},
        "model": {**sc["model"], "params": {"hidden_layer_sizes": [16, 8], "max_iter": 80}},
        "adapters": [{"name": n} for n in ("native", "onnx", "pmml", "pfa")],
        "rounds": QUICK_ROUNDS,
    }
    out = _run(broker, sc, tmp_path, tmp_path / "artifacts")
    assert set(out["bundle_parity"]) == {"native", "ir", "onnx", "pmml", "pfa"}
    for a in out["adapters"]:
        w = _load_window(a)
        assert w["scored"] >= 100 and w["lost"] == 0, a["adapter"]
        assert w["accuracy"]["max_abs_diff"] <= (1e-5 if a["adapter"] == "onnx" else 1e-9), a["adapter"]


def test_the_loop_takes_categorical_strings_with_the_bundle_schema(broker: str, byom_artifacts: Path) -> None:
    root = next((byom_artifacts / "byom-pmml").glob("import-pmml-*"))
    b = Bundle.open(root)
    X, _, p = b.reference()
    codec = wire.FeatureCodec.for_bundle(b, "json")
    good = [codec.encode(row) for row in X[:40]]
    assert all(isinstance(orjson.loads(v)["merchant_category"], str) for v in good)  # strings on the wire
    bad = {
        "wrong-type": orjson.dumps({**orjson.loads(good[0]), "channel": 1}),
        "invalid": orjson.dumps({**orjson.loads(good[0]), "channel": "phone"}),
    }
    topic = f"byom-{uuid.uuid4().hex[:8]}"
    for t in (topic, f"{topic}.out", f"{topic}.dlq"):
        create_topic(broker, t)
    prod = Producer({"bootstrap.servers": broker})
    for i, v in enumerate(good):
        prod.produce(topic, value=v, headers=[(wire.H_RID, f"r-{i}".encode())])
    for rid, v in bad.items():
        prod.produce(topic, value=v, headers=[(wire.H_RID, rid.encode())])
    prod.flush(30)

    with adapter_class("pmml").load(b) as adapter:
        cfg = LoopConfig(input_topic=topic, output_topic=f"{topic}.out", group=f"g-{topic}", scorer_name="pmml")
        loop = ScoringLoop(KafkaTarget(broker), adapter, b.feature_names, cfg)
        loop.codec = wire.FeatureCodec.for_bundle(b, cfg.encoding)  # as the loop builds it from its adapter's bundle
        t = threading.Thread(target=loop.run, kwargs={"max_records": len(good) + len(bad)}, daemon=True)
        t.start()
        t.join(timeout=120)
        assert not t.is_alive(), "the loop did not finish"
    results = consume_all(broker, f"{topic}.out", len(good))
    scores = {dict(m.headers())[wire.H_RID].decode(): wire.decode_score(m.value(), "json") for m in results}
    assert len(scores) == len(good)
    assert max(abs(scores[f"r-{i}"] - p[i]) for i in range(len(good))) <= 1e-12
    dead = consume_all(broker, f"{topic}.dlq", 2)
    reasons = {dict(m.headers())[wire.H_RID].decode(): dict(m.headers())[wire.H_DLQ_REASON].decode() for m in dead}
    assert reasons == {
        "wrong-type": "feature 'channel' is categorical (a string), got int 1",
        "invalid": "feature 'channel': unseen category 'phone' is invalid for this model (online, terminal)",
    }
    assert np.isfinite(p[: len(good)]).all()
