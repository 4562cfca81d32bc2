"""The native, onnx and codegen-c adapters on real bundles written here (tmp dirs): parity with the
native reference predictions, bad input, lifecycle, options, and refusal of tampered files."""

from __future__ import annotations

import json
import pathlib
import pickle
import shutil
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from adapters.base import Adapter
from adapters.bundle import Bundle, sha256_file
from adapters.errors import AdapterClosed, AdapterError, BundleError, FormatMissing
from adapters.registry import adapter_class
from harness.modelbuild import ir as irmod
from harness.modelbuild import train_lightgbm, train_sklearn
from harness.modelbuild.export_c import compile_c
from harness.modelbuild.export_onnx import CONVERTER_ATOL, IR_ATOL, float32_flip_rows, write_onnx
from harness.modelbuild.trained import TrainedModel
from tests.adapter_contract import refuses_bad_input_then_closes

N_FEATURES = 5
NAMES = [f"x{i}" for i in range(N_FEATURES)]
ADAPTERS = ("native", "onnx", "codegen-c")


def make_data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, N_FEATURES))
    X[:, 4] = rng.integers(0, 4, size=n)
    for j in (0, 1, 2):
        X[rng.random(n) < 0.15, j] = np.nan
    logit = np.nan_to_num(X[:, 0]) - 0.7 * np.nan_to_num(X[:, 1]) + 0.5 * X[:, 3] - 0.3 * X[:, 4]
    y = (logit + rng.logistic(size=n) > 0).astype(np.int64)
    return X, y


def write_bundle(root: Path, trained: TrainedModel, X_ref: np.ndarray, y_ref: np.ndarray, onnx_via: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    formats: dict[str, dict[str, Any]] = {}
    native = trained.save_native(root)
    formats["native"] = {"file": native, "sha256": sha256_file(root / native), "flavor": trained.flavor}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        info = write_onnx(trained, root / "model.onnx", via=onnx_via)
    formats["onnx"] = {"file": "model.onnx", "sha256": sha256_file(root / "model.onnx"), **info}
    lib = compile_c(trained.ir, root)
    formats["codegen-c"] = {"file": lib, "sha256": sha256_file(root / lib)}
    (root / "model.ir.json").write_text(json.dumps(irmod.to_dict(trained.ir)))
    np.savez(root / "reference.npz", X=X_ref, y=y_ref, p=trained.predict(X_ref))
    manifest = {
        "model_id": f"{trained.flavor}-{trained.algorithm}-{onnx_via}",
        "feature_names": NAMES,
        "formats": formats,
        "reference": {"file": "reference.npz", "sha256": sha256_file(root / "reference.npz")},
    }
    (root / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return root


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    X, y = make_data(3000, seed=11)
    X_ref, y_ref = make_data(400, seed=12)
    X_ref[0, :] = np.nan  # an all-missing row
    lgb = train_lightgbm.train("gbm", {"n_estimators": 30, "num_leaves": 15}, X, y, NAMES, seed=5)
    hgb = train_sklearn.train("gbm", {"max_iter": 30}, X, y, NAMES, seed=5)
    lr = train_sklearn.train("logistic_regression", {}, X, y, NAMES, seed=5)
    base = tmp_path_factory.mktemp("bundles")
    return {
        "lightgbm-gbm": write_bundle(base / "lgb", lgb, X_ref, y_ref, "converter"),
        "sklearn-gbm": write_bundle(base / "hgb", hgb, X_ref, y_ref, "converter"),
        "sklearn-lr": write_bundle(base / "lr", lr, X_ref, y_ref, "converter"),
        "lightgbm-gbm-onnx-ir": write_bundle(base / "lgb-ir", lgb, X_ref, y_ref, "ir"),
        "sklearn-lr-onnx-ir": write_bundle(base / "lr-ir", lr, X_ref, y_ref, "ir"),
    }


def _tolerance_check(name: str, root: Path, X: np.ndarray, got: np.ndarray, expected: np.ndarray) -> None:
    if name == "native":
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)
    elif name == "codegen-c":
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-9)
    else:
        info = Bundle.open(root).format_info("onnx")
        if info["input_dtype"] == "float64":
            np.testing.assert_allclose(got, expected, rtol=0, atol=IR_ATOL)
            return
        ir = irmod.from_dict(json.loads((root / "model.ir.json").read_text()))
        flips = float32_flip_rows(ir, X)
        diff = np.abs(got - expected)
        assert not np.any((diff > CONVERTER_ATOL) & ~flips)
        assert diff.max() > 0  # float32 really is in the path


@pytest.mark.parametrize("adapter_name", ADAPTERS)
@pytest.mark.parametrize(
    "kind", ["lightgbm-gbm", "sklearn-gbm", "sklearn-lr", "lightgbm-gbm-onnx-ir", "sklearn-lr-onnx-ir"]
)
def test_adapter_reproduces_reference(adapter_name: str, kind: str, bundles: dict[str, Path]) -> None:
    root = bundles[kind]
    X, _, p = Bundle.open(root).reference()
    cls = adapter_class(adapter_name)
    with cls.load(root) as adapter:
        assert adapter.name == adapter_name and adapter.format == adapter_name
        got = adapter.predict(X)
        assert got.shape == (X.shape[0],) and got.dtype == np.float64
        assert np.all((got > 0) & (got < 1))
        _tolerance_check(adapter_name, root, X, got, p)
        # one row at a time gives the batch's numbers (a 1-D row is accepted too; BLAS may differ by an ulp)
        singles = np.array([adapter.predict(X[i])[0] for i in range(0, X.shape[0], 37)])
        np.testing.assert_allclose(singles, got[::37], rtol=0, atol=1e-15)


@pytest.mark.parametrize("adapter_name", ADAPTERS)
def test_bad_input_and_closed(adapter_name: str, bundles: dict[str, Path]) -> None:
    adapter = adapter_class(adapter_name).load(bundles["lightgbm-gbm"])
    bad = {
        f"{N_FEATURES + 1} columns": np.zeros((2, N_FEATURES + 1)),
        f"{N_FEATURES - 1} columns": np.zeros((2, N_FEATURES - 1)),
        "2-D": np.zeros((2, N_FEATURES, 1)),
        "non-numeric": [["a"] * N_FEATURES],
        "infinite": np.full((1, N_FEATURES), np.inf),
        "empty": np.zeros((0, N_FEATURES)),
    }
    refuses_bad_input_then_closes(adapter, np.zeros((2, N_FEATURES)), bad)
    assert isinstance(AdapterClosed("x"), AdapterError)


def _copy(root: Path, tmp_path: Path) -> Path:
    dst = tmp_path / root.name
    shutil.copytree(root, dst)
    return dst


class _Trap:
    """Unpickling this touches a marker file: proof that a pickle was (or was not) loaded."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return (pathlib.Path.touch, (pathlib.Path(self.marker),))


def test_tampered_joblib_is_refused_and_never_loaded(bundles: dict[str, Path], tmp_path: Path) -> None:
    import joblib

    root = _copy(bundles["sklearn-gbm"], tmp_path)
    marker = tmp_path / "unpickled"
    joblib.dump(_Trap(marker), root / "model.joblib")
    with pytest.raises(BundleError, match="changed"):
        adapter_class("native").load(root)
    assert not marker.exists()
    # the file really would run code if loaded: the check above is what kept it out
    joblib.load(root / "model.joblib")
    assert marker.exists()


@pytest.mark.parametrize(("adapter_name", "file"), [("onnx", "model.onnx"), ("codegen-c", "model.so")])
def test_tampered_files_are_refused(adapter_name: str, file: str, bundles: dict[str, Path], tmp_path: Path) -> None:
    root = _copy(bundles["lightgbm-gbm"], tmp_path)
    data = bytearray((root / file).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (root / file).write_bytes(bytes(data))
    with pytest.raises(BundleError, match="changed"):
        adapter_class(adapter_name).load(root)
    (root / file).unlink()
    with pytest.raises(BundleError, match="missing"):
        adapter_class(adapter_name).load(root)


@pytest.mark.parametrize("adapter_name", ADAPTERS)
def test_missing_format_and_wrong_feature_count(adapter_name: str, bundles: dict[str, Path], tmp_path: Path) -> None:
    root = _copy(bundles["sklearn-gbm"], tmp_path)
    manifest = json.loads((root / "manifest.json").read_text())
    manifest["feature_names"] = NAMES + ["extra"]
    (root / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="features"):
        adapter_class(adapter_name).load(root)
    fmt = adapter_class(adapter_name).format
    assert fmt is not None
    del manifest["formats"][fmt]
    (root / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(FormatMissing):
        adapter_class(adapter_name).load(root)


@pytest.mark.parametrize(
    ("adapter_name", "options", "message"),
    [
        ("native", {"threads": 0}, "threads"),
        ("native", {"thread": 2}, "valid options: threads"),
        ("onnx", {"graph_optimization": "max"}, "graph_optimization"),
        ("onnx", {"intra_op_threads": 0}, "intra_op_threads"),
        ("codegen-c", {"nthreads": 2}, "valid options: nthread"),
    ],
)
def test_bad_options_are_one_clear_error(
    adapter_name: str, options: dict[str, Any], message: str, bundles: dict[str, Path]
) -> None:
    with pytest.raises(AdapterError, match=message):
        adapter_class(adapter_name).load(bundles["lightgbm-gbm"], **options)


@pytest.mark.parametrize(
    ("adapter_name", "options"),
    [
        ("native", {"threads": 2}),
        ("onnx", {"intra_op_threads": 2, "graph_optimization": "disable"}),
        ("onnx", {"graph_optimization": "basic"}),
        ("onnx", {"graph_optimization": "extended", "inter_op_threads": 2}),
        ("codegen-c", {"nthread": 2}),
    ],
)
@pytest.mark.parametrize("kind", ["lightgbm-gbm", "sklearn-gbm"])
def test_options_do_not_change_predictions(
    adapter_name: str, options: dict[str, Any], kind: str, bundles: dict[str, Path]
) -> None:
    X, _, _ = Bundle.open(bundles[kind]).reference()
    assert X.shape[0] >= 256  # codegen-c's threaded path needs a batch this large
    with (
        adapter_class(adapter_name).load(bundles[kind]) as one,
        adapter_class(adapter_name).load(bundles[kind], **options) as other,
    ):
        # onnxruntime with 2 threads sums the float32 tree outputs in another order: a float32 ulp or two
        atol = 1e-6 if adapter_name == "onnx" else 1e-15
        np.testing.assert_allclose(other.predict(X), one.predict(X), rtol=0, atol=atol)


def test_native_unknown_flavor(bundles: dict[str, Path], tmp_path: Path) -> None:
    root = _copy(bundles["lightgbm-gbm"], tmp_path)
    manifest = json.loads((root / "manifest.json").read_text())
    manifest["formats"]["native"]["flavor"] = "xgboost"
    (root / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="xgboost"):
        adapter_class("native").load(root)


def test_native_reads_each_flavor_with_its_own_library(bundles: dict[str, Path]) -> None:
    import lightgbm as lgb
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.pipeline import Pipeline

    a: Adapter
    with adapter_class("native").load(bundles["lightgbm-gbm"]) as a:
        assert isinstance(a._model, lgb.Booster)  # type: ignore[attr-defined]
    with adapter_class("native").load(bundles["sklearn-gbm"]) as a:
        assert isinstance(a._model, HistGradientBoostingClassifier)  # type: ignore[attr-defined]
    with adapter_class("native").load(bundles["sklearn-lr"]) as a:
        assert isinstance(a._model, Pipeline)  # type: ignore[attr-defined]


def test_onnx_adapter_feeds_the_graphs_dtype(bundles: dict[str, Path]) -> None:
    with adapter_class("onnx").load(bundles["lightgbm-gbm"]) as a:
        assert a._dtype is np.float32  # type: ignore[attr-defined]
    with adapter_class("onnx").load(bundles["lightgbm-gbm-onnx-ir"]) as a:
        assert a._dtype is np.float64  # type: ignore[attr-defined]


def test_codegen_c_kinds(bundles: dict[str, Path]) -> None:
    with adapter_class("codegen-c").load(bundles["sklearn-gbm"]) as a:
        assert a.kind == "tree_ensemble"  # type: ignore[attr-defined]
    with adapter_class("codegen-c").load(bundles["sklearn-lr"]) as a:
        assert a.kind == "glm"  # type: ignore[attr-defined]


def test_pickle_trap_is_a_real_pickle(tmp_path: Path) -> None:
    marker = tmp_path / "m"
    pickle.loads(pickle.dumps(_Trap(marker)))
    assert marker.exists()
