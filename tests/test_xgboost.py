"""XGBoost, trained in a scenario or imported from its JSON / UBJSON file, converts exactly into the IR: the same leaf
in every tree for values on, next to and between XGBoost's float32 thresholds, NaN included; then every format
derived from the IR (ONNX, C, PMML, PFA) reproduces it to 1e-9 on float64 paths."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from adapters.bundle import Bundle
from harness.datagen import generate
from harness.modelbuild import ir as ir_mod
from harness.modelbuild import train_xgboost as tx
from harness.modelbuild.export_onnx import _leaves
from harness.modelbuild.importer import ImportRequest, import_model
from harness.modelbuild.pipeline import build
from harness.scenario import Scenario, load_scenario
from tests.conftest import ROOT, run_cli


@pytest.fixture(scope="module")
def fraud() -> tuple[np.ndarray, np.ndarray, list[str]]:
    X, y, names = generate("fraud", 3000, 5, positive_rate=0.05)
    return X, y, names


def test_float32_thresholds_become_exact_float64_thresholds() -> None:
    rng = np.random.default_rng(0)
    t32 = np.concatenate([rng.normal(0, 100, 300), [0.0, 1.0, -1.0, 1e-40, 3.4e38, -3.4e38]]).astype(np.float32)
    for t in t32:
        tt = tx.threshold_for_float32(float(t))
        below = float(np.nextafter(t, np.float32(-np.inf)))
        mid = (below + float(t)) / 2
        candidates = [float(t), below, mid, np.nextafter(mid, -np.inf), np.nextafter(mid, np.inf), tt]
        candidates += [np.nextafter(float(t), np.inf), np.nextafter(float(t), -np.inf), np.nextafter(tt, -np.inf)]
        for x in candidates:
            with np.errstate(over="ignore"):
                assert (x < tt) == (np.float32(x) < t), (float(t), x, tt)


def test_the_ir_takes_xgboosts_leaf_in_every_tree(fraud: tuple[np.ndarray, np.ndarray, list[str]]) -> None:
    import xgboost as xgb

    X, y, names = fraud
    model = tx.train("gbm", {"n_estimators": 25, "max_depth": 4}, X, y, names, seed=1)
    ir = model.ir
    assert isinstance(ir, ir_mod.TreeEnsemble) and ir.split_op == "<"
    # rows that sit on every threshold, one float64 ulp either side, and on the float32 rounding boundary
    rows = [X[:200]]
    for tree in ir.trees[:10]:
        for node in range(tree.n_nodes):
            f = tree.feature[node]
            if f < 0:
                continue
            t = tree.threshold[node]
            for v in (t, np.nextafter(t, -np.inf), np.nextafter(t, np.inf), float(np.float32(t)), np.nan):
                row = X[node % 200].copy()
                row[f] = v
                rows.append(row[None, :])
    Xb = np.vstack(rows)
    leaves = model.model.predict(xgb.DMatrix(Xb, missing=np.nan, feature_names=names), pred_leaf=True)
    for k, tree in enumerate(ir.trees):
        thr = np.asarray(tree.threshold, dtype=np.float64)
        assert np.array_equal(_leaves(tree, Xb, thr, "<"), leaves[:, k]), f"tree {k}"
    margin = model.model.predict(xgb.DMatrix(Xb, missing=np.nan, feature_names=names), output_margin=True)
    assert np.abs(ir_mod.margin(ir, Xb) - margin).max() < 1e-5  # XGBoost adds the leaves in float32
    assert np.abs(model.predict(Xb) - ir_mod.predict(ir, Xb)).max() <= tx.NATIVE_TOLERANCE


def _xgb_files(tmp_path: Path, fraud: tuple[np.ndarray, np.ndarray, list[str]]) -> tuple[Path, Path, Path]:
    import xgboost as xgb

    X, y, names = fraud
    frame = pd.DataFrame(X, columns=names)
    clf = xgb.XGBClassifier(n_estimators=30, max_depth=4, n_jobs=1, random_state=3)
    clf.fit(frame.iloc[:2500], y[:2500])
    clf.get_booster().save_model(str(tmp_path / "model.json"))
    clf.get_booster().save_model(str(tmp_path / "model.ubj"))
    ref = frame.iloc[2500:].copy()
    ref.insert(0, "card_id", [f"c{i}" for i in range(len(ref))])  # a column the model does not use
    ref["label"] = y[2500:]
    ref["expected"] = clf.predict_proba(frame.iloc[2500:])[:, 1]
    ref.to_csv(tmp_path / "ref.csv", index=False)
    return tmp_path / "model.json", tmp_path / "model.ubj", tmp_path / "ref.csv"


def test_an_xgboost_json_import_gets_every_format_within_1e9(
    tmp_path: Path, fraud: tuple[np.ndarray, np.ndarray, list[str]]
) -> None:
    model_json, model_ubj, ref = _xgb_files(tmp_path, fraud)
    arts = tmp_path / "artifacts"
    r = run_cli("import", str(model_json), "--reference", str(ref), "--label", "label", "--expected", "expected",
                "--name", "xgb", "--artifacts", str(arts))  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    root = Path(r.stdout.strip().splitlines()[-1])  # tl2cgen logs to stdout before
    m = Bundle.open(root).manifest
    assert set(m["formats"]) == {"native", "ir", "onnx", "codegen-c", "pmml", "pfa"}
    assert m["feature_names"] == fraud[2] and m["ignored_columns"] == ["card_id"]
    assert m["expected"]["passed"] and m["expected"]["rows"] == 500
    assert m["data"]["holdout_rows_with_nan"] > 0
    for fmt in ("ir", "onnx", "codegen-c", "pmml", "pfa"):
        par = m["formats"][fmt]["parity"]
        assert par["passed"] and par["max_abs_diff"] <= 1e-9 and par["excluded_rows"] == 0, (fmt, par)
    assert m["formats"]["onnx"]["input_dtype"] == "float64"
    assert m["formats"]["native"]["parity"]["max_abs_diff"] <= tx.NATIVE_TOLERANCE
    assert "h2o-mojo" in m["absent"]
    # the UBJSON file is the same model: the same IR
    res = import_model(ImportRequest(model_ubj, ref, "label", "expected", "xgb-ubj"), arts, log=lambda s: None)
    assert json.loads((res.bundle_dir / "model.ir.json").read_text()) == json.loads(
        (root / "model.ir.json").read_text()
    )


def test_xgboost_is_a_scenario_trainer(tmp_path: Path) -> None:
    shipped = load_scenario(ROOT / "scenarios" / "fraud_xgboost.yaml")
    assert shipped.model.trainer == "xgboost" and "codegen-c" in shipped.formats
    sc = Scenario.model_validate(
        {
            "name": "xgb",
            "dataset": {"generator": "fraud", "rows": 3000, "seed": 3, "holdout_max_rows": 400},
            "model": {"trainer": "xgboost", "params": {"n_estimators": 20, "max_depth": 4}},
            "formats": ["onnx", "pmml", "pfa"],  # codegen-c: the import test above compiles one
        }
    )
    res = build(sc, artifacts=tmp_path, log=lambda m: None)
    m = res.manifest
    assert m["formats"]["native"]["flavor"] == "xgboost"
    for fmt in ("ir", "onnx", "pmml", "pfa"):
        assert m["formats"][fmt]["parity"]["max_abs_diff"] <= 1e-9, fmt
    assert 0 < m["formats"]["native"]["parity"]["max_abs_diff"] <= tx.NATIVE_TOLERANCE  # float32 sums
