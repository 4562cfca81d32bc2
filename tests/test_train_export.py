"""Trainers (LightGBM, scikit-learn) -> IR exactness; IR/native -> ONNX and compiled C parity.

Everything runs the real libraries on small data (3,000 rows, 30 trees).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from harness.modelbuild import ir as irmod
from harness.modelbuild import train_lightgbm, train_sklearn
from harness.modelbuild.export_c import compile_c
from harness.modelbuild.export_onnx import (
    CONVERTER_ATOL,
    IR_ATOL,
    float32_flip_rows,
    write_onnx,
    write_onnx_from_ir,
)
from harness.modelbuild.ir import Glm, Tree, TreeEnsemble
from harness.modelbuild.trained import TrainedModel

N_FEATURES = 6
NAMES = [f"f{i}" for i in range(N_FEATURES)]


def make_data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """f0..f3 normal with ~10% NaN, f4 never missing (LightGBM: missing_type None), f5 small integers
    (so rows sit on thresholds); f3's missingness itself predicts y (sklearn: splits on NaN)."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, N_FEATURES))
    X[:, 5] = rng.integers(0, 6, size=n)
    for j in range(4):
        X[rng.random(n) < 0.1, j] = np.nan
    m3 = rng.random(n) < 0.25
    X[m3, 3] = np.nan
    logit = np.nan_to_num(X[:, 0]) + 0.8 * X[:, 4] - 0.4 * X[:, 5] + 1.5 * m3 + 0.5 * np.nan_to_num(X[:, 1])
    y = (logit + rng.logistic(size=n) > 0).astype(np.int64)
    return X, y


def eval_rows(ir: irmod.ModelIR, X_test: np.ndarray) -> np.ndarray:
    """Held-out rows, all-NaN and one-NaN rows, and for every split: rows exactly on the threshold
    and one ulp either side, with NaN elsewhere and with the column means elsewhere."""
    rows = [X_test, np.full((1, N_FEATURES), np.nan)]
    base = np.nanmean(X_test, axis=0)
    kz = float(np.float32(1e-35))  # LightGBM reads |x| <= 1e-35f as 0.0
    tiny = [0.0, -0.0, kz, -kz, kz / 2, -kz / 2, np.nextafter(kz, 1), np.nextafter(-kz, -1), 5e-324]
    for j in range(N_FEATURES):
        r = np.tile(base, (1 + len(tiny), 1))
        r[0, j] = np.nan
        r[1:, j] = tiny
        rows.append(r)
    if isinstance(ir, TreeEnsemble):
        splits = sorted(
            {(t.feature[i], t.threshold[i]) for t in ir.trees for i in range(t.n_nodes) if t.feature[i] >= 0}
        )
        for f, thr in splits:
            for v in (thr, np.nextafter(thr, np.inf), np.nextafter(thr, -np.inf)):
                if not np.isfinite(v) or abs(v) > 1e300:
                    continue
                for fill in (base, np.full(N_FEATURES, np.nan)):
                    r = fill.copy()
                    r[f] = v
                    rows.append(r[None, :])
    return np.vstack(rows)


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    X, y = make_data(3000, seed=7)
    X_test, _ = make_data(1500, seed=8)
    return X, y, X_test


def large_scale(X: np.ndarray) -> np.ndarray:
    """A copy of X with feature 4 on a large scale (x * 250 + 4000, NaN stays NaN): the scale lr_model is trained on,
    where folding the scaler into the coefficients must stay exact."""
    X = X.copy()
    X[:, 4] = X[:, 4] * 250.0 + 4000.0
    return X


def model_and_rows(which: str, request: pytest.FixtureRequest, X_test: np.ndarray) -> tuple[TrainedModel, np.ndarray]:
    """The trained model of fixture `which` and its evaluation rows (on the large scale for lr_model)."""
    m = request.getfixturevalue(which)
    X = eval_rows(m.ir, X_test)
    return m, large_scale(X) if which == "lr_model" else X


@pytest.fixture(scope="module")
def lgb_model(data: tuple[np.ndarray, np.ndarray, np.ndarray]) -> train_lightgbm.LightGBMModel:
    X, y, _ = data
    return train_lightgbm.train("gbm", {"n_estimators": 30, "num_leaves": 15}, X, y, NAMES, seed=3)


@pytest.fixture(scope="module")
def hgb_model(data: tuple[np.ndarray, np.ndarray, np.ndarray]) -> train_sklearn.SklearnModel:
    X, y, _ = data
    return train_sklearn.train("gbm", {"max_iter": 30, "max_leaf_nodes": 15}, X, y, NAMES, seed=3)


@pytest.fixture(scope="module")
def lr_model(data: tuple[np.ndarray, np.ndarray, np.ndarray]) -> train_sklearn.SklearnModel:
    X, y, _ = data
    return train_sklearn.train("logistic_regression", {"C": 0.5}, large_scale(X), y, NAMES, seed=3)


def _split_stats(booster_dump: dict) -> dict[str, int]:
    stats = {"NaN": 0, "None": 0, "None_nan_right": 0}
    stack = [t["tree_structure"] for t in booster_dump["tree_info"]]
    while stack:
        node = stack.pop()
        if "leaf_value" in node:
            continue
        stats[node["missing_type"]] = stats.get(node["missing_type"], 0) + 1
        if node["missing_type"] == "None" and node["threshold"] < 0:
            stats["None_nan_right"] += 1
        stack += [node["left_child"], node["right_child"]]
    return stats


# ---------------------------------------------------------------- LightGBM


def test_lightgbm_ir_matches_raw_scores_exactly(lgb_model, data) -> None:
    _, _, X_test = data
    stats = _split_stats(lgb_model.model.dump_model())
    # the data must exercise both missing types, and NaN->0.0 going right for missing_type None
    assert stats["NaN"] > 0 and stats["None"] > 0 and stats["None_nan_right"] > 0, stats
    X = eval_rows(lgb_model.ir, X_test)
    raw = lgb_model.model.predict(X, raw_score=True)
    np.testing.assert_allclose(irmod.margin(lgb_model.ir, X), raw, rtol=0, atol=1e-12)
    np.testing.assert_allclose(irmod.predict(lgb_model.ir, X), lgb_model.predict(X), rtol=0, atol=1e-12)
    assert lgb_model.ir.base_score == 0.0 and len(lgb_model.ir.trees) == 30


def test_lightgbm_all_splits_missing_none(data) -> None:
    X, y, X_test = data
    m = train_lightgbm.train("gbm", {"n_estimators": 20, "use_missing": False}, X, y, NAMES, seed=1)
    stats = _split_stats(m.model.dump_model())
    assert stats["NaN"] == 0 and stats["None_nan_right"] > 0
    Xe = eval_rows(m.ir, X_test)
    np.testing.assert_allclose(irmod.predict(m.ir, Xe), m.predict(Xe), rtol=0, atol=1e-12)


def test_lightgbm_deterministic_and_native_roundtrip(lgb_model, data, tmp_path: Path) -> None:
    import lightgbm as lgb

    X, y, X_test = data
    again = train_lightgbm.train("gbm", {"n_estimators": 30, "num_leaves": 15}, X, y, NAMES, seed=3)
    assert again.model.model_to_string() == lgb_model.model.model_to_string()
    other = train_lightgbm.train(
        "gbm", {"n_estimators": 30, "num_leaves": 15, "bagging_fraction": 0.7, "bagging_freq": 1}, X, y, NAMES, seed=4
    )
    assert other.model.model_to_string() != lgb_model.model.model_to_string()
    name = lgb_model.save_native(tmp_path)
    assert name == "model.lgb.txt"
    loaded = lgb.Booster(model_file=str(tmp_path / name))
    np.testing.assert_array_equal(loaded.predict(X_test), lgb_model.predict(X_test))


def test_lightgbm_refuses_what_the_ir_cannot_hold(data) -> None:
    X, y, _ = data
    with pytest.raises(train_lightgbm.ConversionError, match="Zero"):
        train_lightgbm.train("gbm", {"n_estimators": 3, "zero_as_missing": True}, X, y, NAMES, seed=1)
    with pytest.raises(ValueError, match="categorical"):
        train_lightgbm.train("gbm", {"n_estimators": 3, "categorical_feature": [5]}, X, y, NAMES, seed=1)
    with pytest.raises(ValueError, match="binary"):
        train_lightgbm.train("gbm", {"objective": "regression"}, X, y, NAMES, seed=1)
    with pytest.raises(ValueError, match="unknown algorithm"):
        train_lightgbm.train("rf", {}, X, y, NAMES, seed=1)


def test_lightgbm_categorical_splits_convert_exactly(data) -> None:
    """Integer-coded categorical splits: the IR takes the same branch as LightGBM for known codes, unseen and
    negative codes and NaN (all of which go right)."""
    import lightgbm as lgb

    X, y, _ = data
    Xc = np.nan_to_num(X.copy())
    ds = lgb.Dataset(Xc, label=y, categorical_feature=[5], params={"verbose": -1, "min_data_per_group": 5})
    booster = lgb.train({"objective": "binary", "verbose": -1, "num_threads": 1, "cat_smooth": 1}, ds, 5)
    assert any(t["num_cat"] > 0 for t in booster.dump_model()["tree_info"])
    ir = train_lightgbm.booster_to_ir(booster, NAMES)
    assert any(t.is_categorical(n) for t in ir.trees for n in range(t.n_nodes))
    rows = np.repeat(Xc[:40], 4, axis=0)
    rows[1::4, 5] = np.nan
    rows[2::4, 5] = -1.0
    rows[3::4, 5] = 1000.0
    margin = booster.predict(rows, raw_score=True)
    assert np.abs(irmod.margin(ir, rows) - margin).max() <= 1e-12


# ---------------------------------------------------------------- scikit-learn


def test_hgb_ir_matches_predict_proba_exactly(hgb_model, data) -> None:
    _, _, X_test = data
    ir = hgb_model.ir
    # the model must send NaN both ways
    dls = {t.default_left[i] for t in ir.trees for i in range(t.n_nodes) if t.feature[i] >= 0}
    assert dls == {True, False}
    X = eval_rows(ir, X_test)
    np.testing.assert_allclose(irmod.predict(ir, X), hgb_model.predict(X), rtol=0, atol=1e-12)
    raw = hgb_model.model._raw_predict(X).ravel()
    np.testing.assert_allclose(irmod.margin(ir, X), raw, rtol=0, atol=1e-12)
    assert ir.base_score == pytest.approx(float(hgb_model.model._baseline_prediction.ravel()[0]), abs=0)


def test_hgb_split_on_nan_becomes_largest_finite_threshold() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(2000, 3))
    missing = rng.random(2000) < 0.3
    X[missing, 2] = np.nan
    y = (missing ^ (rng.random(2000) < 0.1)).astype(np.int64)
    m = train_sklearn.train("gbm", {"max_iter": 10}, X, y, ["a", "b", "c"], seed=0)
    raw_inf = sum(int(np.isinf(p.nodes["num_threshold"]).sum()) for it in m.model._predictors for p in it)
    ir_max = sum(t.threshold.count(train_sklearn._FLOAT_MAX) for t in m.ir.trees)
    assert raw_inf > 0 and ir_max == raw_inf
    Xt = np.vstack([X[:300], [[1e308, -1e308, 1e308]], [[0.0, 0.0, np.nan]]])
    np.testing.assert_allclose(irmod.predict(m.ir, Xt), m.predict(Xt), rtol=0, atol=1e-12)


def test_hgb_deterministic_and_refuses_categorical(hgb_model, data) -> None:
    X, y, X_test = data
    again = train_sklearn.train("gbm", {"max_iter": 30, "max_leaf_nodes": 15}, X, y, NAMES, seed=3)
    np.testing.assert_array_equal(again.predict(X_test), hgb_model.predict(X_test))
    with pytest.raises(ValueError, match="categorical"):
        train_sklearn.train("gbm", {"categorical_features": [5]}, X, y, NAMES, seed=3)
    with pytest.raises(ValueError, match="unknown algorithm"):
        train_sklearn.train("svm", {}, X, y, NAMES, seed=3)


@pytest.mark.parametrize("standardize", [True, False])
def test_logistic_regression_ir_is_exact(standardize: bool, data) -> None:
    X, y, X_test = data
    X, X_test = large_scale(X), large_scale(X_test)
    m = train_sklearn.train("logistic_regression", {"standardize": standardize}, X, y, NAMES, seed=3)
    assert isinstance(m.ir, Glm)
    assert ("scale" in m.model.named_steps) is standardize
    np.testing.assert_allclose(m.ir.missing_replacement, np.nanmean(X, axis=0), rtol=1e-12)
    Xe = eval_rows(m.ir, X_test)
    np.testing.assert_allclose(irmod.predict(m.ir, Xe), m.predict(Xe), rtol=0, atol=1e-12)
    np.testing.assert_allclose(irmod.margin(m.ir, Xe), m.model.decision_function(Xe), rtol=0, atol=1e-11)


def test_sklearn_native_roundtrip(hgb_model, data, tmp_path: Path) -> None:
    import joblib

    _, _, X_test = data
    name = hgb_model.save_native(tmp_path)
    assert name == "model.joblib"
    np.testing.assert_array_equal(joblib.load(tmp_path / name).predict_proba(X_test)[:, 1], hgb_model.predict(X_test))


# ---------------------------------------------------------------- ONNX


def _onnx_predict(path: Path, info: dict, X: np.ndarray) -> np.ndarray:
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    dtype = np.float32 if info["input_dtype"] == "float32" else np.float64
    (out,) = sess.run([info["output_name"]], {info["input_name"]: X.astype(dtype)})
    return np.asarray(out[:, info["output_column"]], dtype=np.float64)


@pytest.mark.parametrize("which", ["lgb_model", "hgb_model", "lr_model"])
def test_onnx_converter_parity_within_tolerance(which: str, request, data, tmp_path: Path) -> None:
    m, X = model_and_rows(which, request, data[2])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        info = write_onnx(m, tmp_path / "model.onnx")
    assert info["input_dtype"] == "float32" and info["tolerance"]["atol"] == CONVERTER_ATOL
    p = _onnx_predict(tmp_path / "model.onnx", info, X)
    native = m.predict(X)
    diff = np.abs(p - native)
    flips = float32_flip_rows(m.ir, X)
    # every row beyond the tolerance is one float32 rounding sends down another branch ...
    assert not np.any((diff > CONVERTER_ATOL) & ~flips), np.nonzero((diff > CONVERTER_ATOL) & ~flips)
    # ... the others (NaN rows included) are within float32 accuracy, and not bit-identical
    assert diff[~flips].max() < 1e-6
    assert diff.max() > 0
    nan_rows = np.isnan(X).any(axis=1) & ~flips
    assert nan_rows.sum() > 100 and diff[nan_rows].max() < 1e-6
    if which != "lr_model":
        # the ulp-above-threshold rows make some flips happen, and the mask sees them
        assert flips.sum() > 0 and (diff[flips] > CONVERTER_ATOL).any()


@pytest.mark.parametrize("which", ["lgb_model", "hgb_model", "lr_model"])
def test_onnx_from_ir_is_exact(which: str, request, data, tmp_path: Path) -> None:
    m = request.getfixturevalue(which)
    _, _, X_test = data
    X = eval_rows(m.ir, X_test)
    info = write_onnx_from_ir(m.ir, tmp_path / "model.onnx")
    assert info["input_dtype"] == "float64" and info["opset"]["ai.onnx.ml"] == 5
    assert write_onnx(m, tmp_path / "again.onnx", via="ir")["converter"] == info["converter"]
    p = _onnx_predict(tmp_path / "model.onnx", info, X)
    np.testing.assert_allclose(p, m.predict(X), rtol=0, atol=IR_ATOL)


def test_onnx_from_ir_handles_single_leaf_trees_and_lt(tmp_path: Path) -> None:
    ir = _hand_ir("<")
    X = _hand_rows()
    info = write_onnx_from_ir(ir, tmp_path / "m.onnx")
    np.testing.assert_allclose(_onnx_predict(tmp_path / "m.onnx", info, X), irmod.predict(ir, X), rtol=0, atol=1e-15)


def test_onnx_unknown_flavor_is_not_implemented(tmp_path: Path) -> None:
    class H2OLike(TrainedModel):
        flavor = "h2o"
        algorithm = "gbm"
        model = None
        ir = _hand_ir("<=")

        def save_native(self, directory: Path) -> str:
            return ""

        def predict(self, X: np.ndarray) -> np.ndarray:
            return irmod.predict(self.ir, X)

    with pytest.raises(NotImplementedError, match="h2o"):
        write_onnx(H2OLike(), tmp_path / "x.onnx")
    assert not (tmp_path / "x.onnx").exists()


# ---------------------------------------------------------------- compiled C


def _hand_ir(op: str) -> TreeEnsemble:
    """Two trees: a split on f0 (NaN left) over a split on f1 (NaN right), and a single leaf."""
    t1 = Tree(
        feature=[0, 1, -1, -1, -1],
        threshold=[0.5, -1.25, 0.0, 0.0, 0.0],
        left=[1, 2, -1, -1, -1],
        right=[4, 3, -1, -1, -1],
        default_left=[True, False, False, False, False],
        value=[0.0, 0.0, -0.75, 0.3, 1.1],
    )
    t2 = Tree(feature=[-1], threshold=[0.0], left=[-1], right=[-1], default_left=[False], value=[0.125])
    return TreeEnsemble(feature_names=NAMES[:2], trees=[t1, t2], base_score=-0.2, split_op=op)  # type: ignore[arg-type]


def _hand_rows() -> np.ndarray:
    # 0.49999999999999994 and 3.9999999999999996 have their low 32 bits all ones: tl2cgen 1.0's own
    # predictor reads such doubles as missing
    all_ones_low = float(np.array([0x400FFFFFFFFFFFFF], dtype=np.uint64).view(np.float64)[0])
    vals = [
        np.nan,
        0.5,
        np.nextafter(0.5, 1),
        np.nextafter(0.5, 0),
        -1.25,
        np.nextafter(-1.25, 0),
        3.0,
        -7.0,
        all_ones_low,
    ]
    return np.array([[a, b] for a in vals for b in vals], dtype=np.float64)


def _c_predict(out_dir: Path, lib: str, X: np.ndarray, nthread: int = 1) -> np.ndarray:
    import ctypes

    so = ctypes.CDLL(str(out_dir / lib))
    so.kmh_predict.argtypes = [ctypes.c_void_p, ctypes.c_long, ctypes.c_int, ctypes.c_void_p]
    so.kmh_num_feature.restype = ctypes.c_int
    assert so.kmh_num_feature() == X.shape[1]
    Xc = np.ascontiguousarray(X, dtype=np.float64)
    out = np.full(X.shape[0], -123.0)
    so.kmh_predict(Xc.ctypes.data, X.shape[0], nthread, out.ctypes.data)
    return out


@pytest.mark.parametrize("which", ["lgb_model", "hgb_model", "lr_model"])
def test_compiled_c_matches_native(which: str, request, data, tmp_path: Path) -> None:
    m, X = model_and_rows(which, request, data[2])
    lib = compile_c(m.ir, tmp_path)
    assert lib == "model.so" and (tmp_path / lib).is_file()
    got = _c_predict(tmp_path, lib, X)
    np.testing.assert_allclose(got, m.predict(X), rtol=0, atol=1e-9)
    assert X.shape[0] >= 256  # the OpenMP path runs and gives the same answers
    np.testing.assert_array_equal(_c_predict(tmp_path, lib, X, nthread=2), got)


@pytest.mark.parametrize("op", ["<=", "<"])
def test_compiled_c_split_ops_and_identity_link(op: str, tmp_path: Path) -> None:
    X = _hand_rows()
    ir = _hand_ir(op)
    lib = compile_c(ir, tmp_path / "logistic")
    np.testing.assert_allclose(_c_predict(tmp_path / "logistic", lib, X), irmod.predict(ir, X), rtol=0, atol=1e-15)
    ir.link = "identity"
    lib = compile_c(ir, tmp_path / "identity")
    got = _c_predict(tmp_path / "identity", lib, X)
    np.testing.assert_allclose(got, irmod.margin(ir, X), rtol=0, atol=1e-15)
    # on-threshold rows separate "<=" from "<": same rows, different leaves
    on_thr = X[:, 0] == 0.5
    expected_left = op == "<="
    assert np.all((got[on_thr & ~np.isnan(X[:, 1])] < 0.9) == expected_left)


def test_compiled_glm_without_replacement_and_identity(tmp_path: Path) -> None:
    ir = Glm(
        feature_names=NAMES[:3],
        coefficients=[0.5, -2.0, 1e-3],
        intercept=0.25,
        link="identity",
        missing_replacement=[1.5, None, 0.0],
    )
    X = np.array([[1.0, 2.0, 3.0], [np.nan, 1.0, np.nan], [0.0, np.nan, 1.0]])
    lib = compile_c(ir, tmp_path)
    got = _c_predict(tmp_path, lib, X)
    np.testing.assert_allclose(got[:2], irmod.margin(ir, X)[:2], rtol=0, atol=1e-15)
    assert np.isnan(got[2]) and np.isnan(irmod.margin(ir, X)[2])  # no replacement: NaN propagates, as in the IR


def test_compiled_c_large_model_split_into_several_files(data, tmp_path: Path) -> None:
    from harness.modelbuild.export_c import TREES_PER_FILE, _codegen_params

    X, y, X_test = data
    m = train_lightgbm.train("gbm", {"n_estimators": 2 * TREES_PER_FILE + 5, "num_leaves": 4}, X, y, NAMES, seed=2)
    assert _codegen_params(m.ir) == {"parallel_comp": 3}
    lib = compile_c(m.ir, tmp_path)
    X = eval_rows(m.ir, X_test[:200])
    np.testing.assert_allclose(_c_predict(tmp_path, lib, X), m.predict(X), rtol=0, atol=1e-9)
