"""H2O as a trainer, its MOJO -> IR conversion, its ONNX export and the h2o-mojo adapter.

Real H2O (one local cluster for the whole module, shut down before the first test runs), real
h2o-genmodel in the process's JPype JVM, real onnxruntime.
"""

from __future__ import annotations

import hashlib
import json
import threading
import warnings
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from harness.modelbuild import export_onnx_h2o, h2o_cluster, ir
from harness.modelbuild import mojo_reader as mr
from harness.modelbuild import train_h2o as th

pytestmark = pytest.mark.heavy  # an H2O cluster: not in `make check`

FEATURES = ["amount", "age", "score", "ratio", "count", "noise"]
SEED = 11
N_TREES = 40


def _data(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    X = rng.normal(size=(n, len(FEATURES)))
    X[:, 4] = np.round(np.abs(X[:, 4]) * 3)  # integer-valued: many rows sit exactly on split points
    X[rng.random(X.shape) < np.array([0.05, 0.1, 0.25, 0.0, 0.1, 0.05])] = np.nan
    z = (
        1.4 * np.nan_to_num(X[:, 0])
        - np.nan_to_num(X[:, 1])
        + 1.2 * np.isnan(X[:, 2])  # missingness itself is predictive: H2O makes NA-vs-rest splits
        + 0.5 * np.nan_to_num(X[:, 2])
        + 0.3 * np.nan_to_num(X[:, 4])
        - 0.5
    )
    y = (rng.random(n) < 1.0 / (1.0 + np.exp(-z))).astype(np.int64)
    return X, y


def _split_rows(model: ir.TreeEnsemble, base: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Rows with values exactly on split values, and one double below / above them."""
    splits = [
        (f, t)
        for tree in model.trees
        for f, t in zip(tree.feature, tree.threshold, strict=True)
        if f != ir.LEAF and t < mr._FLOAT_MAX
    ]
    rows = []
    for k in range(600):
        row = base[k % len(base)].copy()
        for _ in range(3):
            f, t = splits[rng.integers(len(splits))]
            row[f] = [t, np.nextafter(t, -np.inf), np.nextafter(t, np.inf)][k % 3] if k % 4 else t
        rows.append(row)
    return np.array(rows)


def _h2o_predict(est: Any, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """H2O's own in-cluster P(class 1), and X as the cluster holds it (downloaded back)."""
    import h2o
    import pandas as pd

    frame = h2o.H2OFrame(pd.DataFrame(X, columns=FEATURES), column_types=dict.fromkeys(FEATURES, "real"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = est.predict(frame).as_data_frame()
        held = frame.as_data_frame()
    h2o.remove(frame)
    return np.asarray(out["p1"], dtype=np.float64), np.asarray(held[FEATURES], dtype=np.float64)


@pytest.fixture(scope="module")
def h2o_models() -> Iterator[dict[str, Any]]:
    """Train a GBM and a GLM in one cluster, take H2O's in-cluster predictions, shut the cluster down."""
    rng = np.random.default_rng(SEED)
    X, y = _data(3000, rng)
    X_test, _ = _data(400, rng)
    with h2o_cluster.h2o_cluster(max_mem_mb=1024, nthreads=2) as cluster:
        process = cluster._server._process
        gbm = th.train("gbm", {"ntrees": N_TREES, "max_depth": 5}, X, y, FEATURES, SEED)
        glm = th.train("glm", {}, X, y, FEATURES, SEED)
        assert isinstance(gbm.ir, ir.TreeEnsemble)
        X_eval = np.vstack([X_test, _split_rows(gbm.ir, X_test, rng)])
        in_cluster = {algo: _h2o_predict(m.h2o_estimator, X_eval) for algo, m in (("gbm", gbm), ("glm", glm))}
        glm_coef = dict(glm.h2o_estimator.coef())
    yield {
        "X": X,
        "y": y,
        "X_eval": X_eval,
        "gbm": gbm,
        "glm": glm,
        "in_cluster": in_cluster,
        "glm_coef": glm_coef,
        "cluster": cluster,
        "process": process,
    }


# --------------------------------------------------------------------------------------------- cluster


def test_cluster_is_shut_down_after_training(h2o_models: dict[str, Any]) -> None:
    assert not h2o_models["cluster"].running
    assert h2o_models["process"].poll() is not None, "the H2O JVM is still running"


def test_trainer_refuses_what_the_ir_cannot_hold() -> None:
    X, y = _data(50, np.random.default_rng(0))
    with pytest.raises(ValueError, match="unknown algorithm"):
        th.train("drf", {}, X, y, FEATURES, 1)
    with pytest.raises(ValueError, match="distribution"):
        th.train("gbm", {"distribution": "gaussian"}, X, y, FEATURES, 1)
    with pytest.raises(ValueError, match="balance_classes"):
        th.train("gbm", {"balance_classes": True}, X, y, FEATURES, 1)
    with pytest.raises(ValueError, match="missing_values_handling"):
        th.train("glm", {"missing_values_handling": "Skip"}, X, y, FEATURES, 1)
    with pytest.raises(ValueError, match="both labels"):
        th.train("gbm", {}, X, np.zeros_like(y), FEATURES, 1)


# --------------------------------------------------------------------------------------------- GBM -> IR


def test_gbm_ir_shape(h2o_models: dict[str, Any]) -> None:
    gbm = h2o_models["gbm"]
    model = gbm.ir
    assert isinstance(model, ir.TreeEnsemble)
    assert model.split_op == "<" and model.link == "logistic"
    assert len(model.trees) == N_TREES
    assert model.base_score == float(gbm.model._init_f)
    thresholds = [t for tree in model.trees for f, t in zip(tree.feature, tree.threshold, strict=True) if f != ir.LEAF]
    finite = np.array([t for t in thresholds if t < mr._FLOAT_MAX])
    assert np.all(finite.astype(np.float32).astype(np.float64) == finite), "H2O split values are float32"
    leaves = np.array(
        [v for tree in model.trees for f, v in zip(tree.feature, tree.value, strict=True) if f == ir.LEAF]
    )
    assert np.all(leaves.astype(np.float32).astype(np.float64) == leaves), "H2O leaf values are float32"
    # The data makes H2O use all three NaN routes: NA left, NA right, and NA-vs-rest splits.
    dl = [d for tree in model.trees for f, d in zip(tree.feature, tree.default_left, strict=True) if f != ir.LEAF]
    assert any(dl) and not all(dl)
    assert any(t == mr._FLOAT_MAX for t in thresholds), "expected NA-vs-rest splits"


def test_gbm_ir_matches_genmodel(h2o_models: dict[str, Any]) -> None:
    gbm, X = h2o_models["gbm"], h2o_models["X_eval"]
    assert np.isnan(X).any(axis=1).sum() > 100
    p_genmodel = gbm.predict(X)
    p_ir = ir.predict(gbm.ir, X)
    assert p_genmodel.std() > 0.1
    assert np.abs(p_ir - p_genmodel).max() <= mr.IR_ATOL
    # The rows on split values decide the comparison: with "<=" they would go the other way.
    wrong = replace(gbm.ir, split_op="<=")
    assert np.abs(ir.predict(wrong, X) - p_genmodel).max() > 1e-3


def test_genmodel_matches_h2o_in_cluster(h2o_models: dict[str, Any]) -> None:
    """genmodel scores exactly like the H2O cluster -- given the data as the cluster holds it.

    H2OFrame uploads go through CSV, H2O's number parser and its column compression, which move some
    doubles by an ulp (measured: ~5-10% of the random doubles here). genmodel, the IR and the adapter
    see the exact double, so a row on or one ulp next to a split value may go the other way in the
    cluster. Scored on the frame's own (downloaded) values, genmodel reproduces the cluster exactly."""
    X = h2o_models["X_eval"]
    for algo in ("gbm", "glm"):
        p_cluster, X_held = h2o_models["in_cluster"][algo]
        moved = ~((X_held == X) | (np.isnan(X_held) & np.isnan(X)))
        assert np.array_equal(np.isnan(X_held), np.isnan(X))  # NaN -> NA -> NaN
        assert moved.any(), "expected H2O's ingestion to move some values by an ulp"
        assert np.abs(X_held[moved] - X[moved]).max() <= 2 * np.spacing(np.abs(X[moved])).max()
        assert np.abs(h2o_models[algo].predict(X_held) - p_cluster).max() <= 1e-12, algo
        # On the exact doubles the difference is confined to rows that sit on a split value.
        rows_moved = moved.any(axis=1)
        diff = np.abs(h2o_models[algo].predict(X) - p_cluster)
        assert diff[~rows_moved].max() <= 1e-12, algo


# --------------------------------------------------------------------------------------------- GLM -> IR


def test_glm_ir_matches_genmodel(h2o_models: dict[str, Any]) -> None:
    glm, X = h2o_models["glm"], h2o_models["X_eval"]
    model = glm.ir
    assert isinstance(model, ir.Glm)
    coef = h2o_models["glm_coef"]
    assert model.intercept == pytest.approx(coef["Intercept"], rel=1e-12)
    for name, c in zip(model.feature_names, model.coefficients, strict=True):
        assert c == pytest.approx(coef[name], rel=1e-12, abs=1e-15)
    assert all(r is not None for r in model.missing_replacement)
    # Mean imputation: the training means of the observed values.
    Xtr = h2o_models["X"]
    means = np.array([np.nan if r is None else r for r in model.missing_replacement])
    assert np.allclose(means, np.nanmean(Xtr, axis=0), rtol=0, atol=1e-12)
    p_genmodel = glm.predict(X)
    assert np.abs(ir.predict(model, X) - p_genmodel).max() <= mr.IR_ATOL
    # Without the replacement values the NaN rows would not match.
    bare = replace(model, missing_replacement=[0.0] * model.n_features)
    assert np.abs(ir.predict(bare, X) - p_genmodel).max() > 1e-6


def test_from_mojo_round_trip(h2o_models: dict[str, Any], tmp_path: Path) -> None:
    gbm = h2o_models["gbm"]
    name = gbm.save_native(tmp_path)
    assert name == "mojo.zip"
    again = th.H2OTrainedModel.from_mojo(tmp_path / name, FEATURES)
    assert again.algorithm == "gbm"
    assert ir.to_dict(again.ir) == ir.to_dict(gbm.ir)
    json.dumps(ir.to_dict(again.ir), allow_nan=False)  # the IR is plain JSON (no inf)
    assert again.library_versions()["h2o-genmodel"] == "3.46.0.11"


# --------------------------------------------------------------------------------------------- ONNX


def test_onnx_gbm_parity(h2o_models: dict[str, Any], tmp_path: Path) -> None:
    import onnxruntime as ort

    from harness.modelbuild.export_onnx import float32_flip_rows

    gbm, X = h2o_models["gbm"], h2o_models["X_eval"]
    gbm.save_native(tmp_path)
    info = export_onnx_h2o.write_onnx_h2o(tmp_path / "mojo.zip", tmp_path / "model.onnx")
    assert info["na_vs_rest_splits"] > 0 and info["input_dtype"] == "float32"
    sess = ort.InferenceSession(str(tmp_path / "model.onnx"), providers=["CPUExecutionProvider"])
    out = sess.run([info["output_name"]], {info["input_name"]: X.astype(np.float32)})[0]
    p_onnx = np.asarray(out, dtype=np.float64)[:, info["output_column"]]
    p_genmodel = gbm.predict(X)

    flips = float32_flip_rows(gbm.ir, X)
    assert flips.sum() < 0.3 * len(X)  # only the "one double below/above a split" rows can flip
    keep = ~flips
    assert np.isnan(X[keep]).any(axis=1).sum() > 100  # NaN rows (every NaN route) are compared
    # float32 bound: the margin is a sum of T+1 float32 terms of total magnitude <= S, each addition
    # rounds by <= 2^-24 of the running sum; sigmoid' <= 1/4; plus a few ulp for the float32 sigmoid.
    u = 2.0**-24
    S = abs(gbm.ir.base_score) + sum(max(abs(v) for v in t.value) for t in gbm.ir.trees)
    tol = 0.25 * (len(gbm.ir.trees) + 1) * u * S + 8 * u
    assert tol <= info["tolerance"]["atol"]
    diff = np.abs(p_onnx[keep] - p_genmodel[keep])
    assert diff.max() <= tol, (diff.max(), tol)
    # Exactly representable rows never flip, and flipped rows really differ (they are not noise).
    X32 = X.astype(np.float32).astype(np.float64)
    assert not float32_flip_rows(gbm.ir, X32).any()
    if flips.any():
        assert np.abs(p_onnx[flips] - p_genmodel[flips]).max() > tol


def test_onnx_glm_is_not_implemented(h2o_models: dict[str, Any], tmp_path: Path) -> None:
    h2o_models["glm"].save_native(tmp_path)
    with pytest.raises(NotImplementedError, match="GBM MOJOs only"):
        export_onnx_h2o.write_onnx_h2o(tmp_path / "mojo.zip", tmp_path / "model.onnx")
    assert not (tmp_path / "model.onnx").exists()


# --------------------------------------------------------------------------------------------- adapter


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _bundle(root: Path, trained: Any, X: np.ndarray, feature_names: list[str], fmt: str = "h2o-mojo") -> Path:
    """A minimal bundle: the MOJO under `fmt`, reference.npz with the trainer's predictions."""
    root.mkdir(parents=True, exist_ok=True)
    name = trained.save_native(root)
    cols = [FEATURES.index(f) for f in feature_names]
    Xb = X[:, cols]
    np.savez(root / "reference.npz", X=Xb, y=np.zeros(len(X)), p=trained.predict(X))
    manifest = {
        "model_id": f"h2o-{trained.algorithm}",
        "feature_names": feature_names,
        "formats": {fmt: {"file": name, "sha256": _sha(root / name)}},
        "reference": {"file": "reference.npz", "sha256": _sha(root / "reference.npz")},
    }
    (root / "manifest.json").write_text(json.dumps(manifest))
    return root


@pytest.mark.parametrize("algo", ["gbm", "glm"])
def test_adapter_matches_reference(h2o_models: dict[str, Any], tmp_path: Path, algo: str) -> None:
    from adapters.h2o_mojo import H2OMojoAdapter
    from adapters.registry import adapter_class

    assert adapter_class("h2o-mojo") is H2OMojoAdapter
    trained, X = h2o_models[algo], h2o_models["X_eval"]
    root = _bundle(tmp_path / algo, trained, X, FEATURES)
    with H2OMojoAdapter.load(root) as adapter:
        assert (adapter.name, adapter.family, adapter.format) == ("h2o-mojo", "generated-code", "h2o-mojo")
        Xr, _, p_ref = adapter.bundle.reference()
        X_before = Xr.copy()
        p = adapter.predict(Xr)
        np.testing.assert_array_equal(p, p_ref)
        np.testing.assert_array_equal(Xr, X_before)  # GLM imputation must not write into the caller's rows
        assert np.abs(p - ir.predict(trained.ir, Xr)).max() <= mr.IR_ATOL
        # Batch size does not change a row's score.
        singles = np.array([adapter.predict(Xr[i : i + 1])[0] for i in range(0, len(Xr), 37)])
        np.testing.assert_array_equal(singles, p_ref[::37])
        np.testing.assert_array_equal(adapter.predict(Xr[0]), p_ref[:1])  # one 1-D row


def test_adapter_maps_columns_by_name(h2o_models: dict[str, Any], tmp_path: Path) -> None:
    from adapters.h2o_mojo import H2OMojoAdapter

    gbm, X = h2o_models["gbm"], h2o_models["X_eval"]
    order = list(reversed(FEATURES))
    root = _bundle(tmp_path, gbm, X, order)
    with H2OMojoAdapter.load(root) as adapter:
        Xr, _, p_ref = adapter.bundle.reference()
        np.testing.assert_array_equal(adapter.predict(Xr), p_ref)


def test_adapter_is_reentrant(h2o_models: dict[str, Any], tmp_path: Path) -> None:
    from adapters.h2o_mojo import H2OMojoAdapter

    glm, X = h2o_models["glm"], h2o_models["X_eval"]
    with H2OMojoAdapter.load(_bundle(tmp_path, glm, X, FEATURES)) as adapter:
        expected = adapter.predict(X)
        results: list[np.ndarray] = []
        errors: list[BaseException] = []

        def work() -> None:
            try:
                for _ in range(20):
                    results.append(adapter.predict(X))
            except BaseException as e:  # pragma: no cover - reported below
                errors.append(e)

        threads = [threading.Thread(target=work) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors
        assert len(results) == 80
        for r in results:
            np.testing.assert_array_equal(r, expected)


def test_native_format_reads_the_same_mojo(h2o_models: dict[str, Any], tmp_path: Path) -> None:
    from adapters.errors import FormatMissing
    from adapters.h2o_mojo import H2OMojoAdapter, H2ONativeMojoAdapter

    gbm, X = h2o_models["gbm"], h2o_models["X_eval"]
    root = _bundle(tmp_path, gbm, X, FEATURES, fmt="native")
    with H2ONativeMojoAdapter.load(root) as adapter:
        Xr, _, p_ref = adapter.bundle.reference()
        np.testing.assert_array_equal(adapter.predict(Xr), p_ref)
    with pytest.raises(FormatMissing, match="h2o-mojo"):
        H2OMojoAdapter.load(root)


def test_adapter_bad_input_and_close(h2o_models: dict[str, Any], tmp_path: Path) -> None:
    from adapters.errors import AdapterClosed, AdapterError, BadInput
    from adapters.h2o_mojo import H2OMojoAdapter

    gbm, X = h2o_models["gbm"], h2o_models["X_eval"]
    adapter = H2OMojoAdapter.load(_bundle(tmp_path, gbm, X, FEATURES))
    with pytest.raises(BadInput, match="columns"):
        adapter.predict(X[:, :-1])
    with pytest.raises(BadInput, match="infinite"):
        adapter.predict(np.where(np.arange(len(FEATURES)) == 2, np.inf, X[:3]))
    with pytest.raises(BadInput):
        adapter.predict([["a"] * len(FEATURES)])
    assert adapter.predict(X[:2]).shape == (2,)
    adapter.close()
    with pytest.raises(AdapterClosed):
        adapter.predict(X[:2])
    with pytest.raises(AdapterError, match="valid options: none"):
        H2OMojoAdapter.load(tmp_path, threads=2)


def test_tampered_mojo_is_refused(h2o_models: dict[str, Any], tmp_path: Path) -> None:
    from adapters.errors import BundleError
    from adapters.h2o_mojo import H2OMojoAdapter

    gbm, X = h2o_models["gbm"], h2o_models["X_eval"]
    root = _bundle(tmp_path, gbm, X, FEATURES)
    mojo = root / "mojo.zip"
    data = bytearray(mojo.read_bytes())
    data[len(data) // 2] ^= 0xFF
    mojo.write_bytes(bytes(data))
    with pytest.raises(BundleError, match="sha256"):
        H2OMojoAdapter.load(root)


def test_unreadable_mojo_is_a_bundle_error(tmp_path: Path) -> None:
    """A file whose sha256 matches but that is no MOJO: one-line BundleError from genmodel's loader."""
    from adapters.errors import BundleError
    from adapters.h2o_mojo import H2OMojoAdapter

    (tmp_path / "mojo.zip").write_bytes(b"not a zip")
    manifest = {
        "model_id": "broken",
        "feature_names": FEATURES,
        "formats": {"h2o-mojo": {"file": "mojo.zip", "sha256": _sha(tmp_path / "mojo.zip")}},
    }
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="cannot load the MOJO") as e:
        H2OMojoAdapter.load(tmp_path)
    assert "\n" not in str(e.value)


def test_jvm_exception_while_scoring_is_one_line(h2o_models: dict[str, Any]) -> None:
    """A Java exception inside the batch loop surfaces as ScoringFailed with one line."""
    from adapters.errors import ScoringFailed
    from adapters.h2o_mojo import MojoScorer, _batch_loop, _java

    gbm = h2o_models["gbm"]
    scorer = MojoScorer(gbm.mojo_bytes, FEATURES)
    # A loop that reads preds[7] of a 3-slot preds array: a real ArrayIndexOutOfBoundsException.
    scorer._loop = _batch_loop(_java(), scorer.model, len(FEATURES), scorer.preds_size, 7)
    with pytest.raises(ScoringFailed, match="ArrayIndexOutOfBoundsException") as e:
        scorer.predict(h2o_models["X_eval"][:3])
    assert "\n" not in str(e.value)
