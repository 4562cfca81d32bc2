"""PMML export scored by pypmml (pmml4s in the process JVM) against the IR's reference evaluator, and the
pmml adapter on a small bundle.

The IR cases, the row generator and the bundle writer here are also used by tests/test_export_pfa.py.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from adapters.errors import AdapterClosed, BadInput, BundleError
from adapters.tasks import TaskSpec
from harness.modelbuild.export_pmml import OUTPUT_FIELD, output_fields, write_pmml
from harness.modelbuild.ir import LEAF, Glm, ModelIR, SplitOp, Tree, TreeEnsemble, predict, task_of

ATOL = 1e-9

# ---- hand-made IR cases (shared with test_export_pfa.py) -------------------------------------------------


def stump(feature: int, threshold: float, default_left: bool, left: float, right: float) -> Tree:
    return Tree(
        feature=[feature, LEAF, LEAF],
        threshold=[threshold, 0.0, 0.0],
        left=[1, -1, -1],
        right=[2, -1, -1],
        default_left=[default_left, False, False],
        value=[0.0, left, right],
    )


def random_tree(rng: np.random.Generator, n_features: int, depth: int) -> Tree:
    """A full binary tree; thresholds on a coarse grid so test rows can sit exactly on them."""
    feature: list[int] = []
    threshold: list[float] = []
    left: list[int] = []
    right: list[int] = []
    default_left: list[bool] = []
    value: list[float] = []

    def build(d: int) -> int:
        i = len(feature)
        feature.append(LEAF)
        threshold.append(0.0)
        left.append(-1)
        right.append(-1)
        default_left.append(False)
        value.append(0.0)
        if d == depth or (d >= 2 and rng.random() < 0.2):
            value[i] = float(rng.normal())
            return i
        feature[i] = int(rng.integers(n_features))
        threshold[i] = float(np.round(rng.normal(), 1))
        default_left[i] = bool(rng.integers(2))
        left[i] = build(d + 1)
        right[i] = build(d + 1)
        return i

    build(0)
    return Tree(feature, threshold, left, right, default_left, value)


def ensemble(split_op: SplitOp, link: str = "logistic", seed: int = 1) -> TreeEnsemble:
    rng = np.random.default_rng(seed)
    return TreeEnsemble(
        feature_names=["f0", "f1", "f2", "f3"],
        trees=[random_tree(rng, 4, 4) for _ in range(12)],
        base_score=-0.4375,
        link=link,  # type: ignore[arg-type]
        split_op=split_op,
    )


def multiclass(seed: int = 3, scale: float = 1.0) -> TreeEnsemble:
    """Three classes, four trees each (class of tree i: i % 3); `scale` multiplies the leaves: 800 puts margins
    far beyond exp's range in float64, which a softmax that does not subtract the largest margin overflows on."""
    rng = np.random.default_rng(seed)
    trees = [random_tree(rng, 4, 3) for _ in range(12)]
    for t in trees:
        t.value = [v * scale for v in t.value]
    return TreeEnsemble(
        feature_names=["f0", "f1", "f2", "f3"],
        trees=trees,
        link="softmax",
        split_op="<=",
        n_classes=3,
        tree_class=[i % 3 for i in range(12)],
        class_base_scores=[0.25, -0.5, 0.125],
    )


def one_tree() -> TreeEnsemble:
    # depth 2, values that differ in their last bits too: precision loss in the file would show
    tree = Tree(
        feature=[0, 1, LEAF, LEAF, LEAF],
        threshold=[0.3, -1.7, 0.0, 0.0, 0.0],
        left=[1, 3, -1, -1, -1],
        right=[2, 4, -1, -1, -1],
        default_left=[True, False, False, False, False],
        value=[0.0, 0.0, 1.0 / 3.0, -2.0 / 7.0, 0.1 + 0.2],
    )
    return TreeEnsemble(feature_names=["a", "b"], trees=[tree], base_score=0.0)


CASES: dict[str, Callable[[], ModelIR]] = {
    "one_tree": one_tree,
    "missing_goes_right": lambda: TreeEnsemble(["a", "b"], [stump(1, 0.5, False, -1.25, 2.5)]),
    "missing_goes_left": lambda: TreeEnsemble(["a", "b"], [stump(1, 0.5, True, -1.25, 2.5)]),
    "ensemble_le": lambda: ensemble("<="),
    "ensemble_lt": lambda: ensemble("<"),
    "ensemble_identity_link": lambda: ensemble("<=", link="identity", seed=2),
    "multiclass": lambda: multiclass(),
    "multiclass_huge_margins": lambda: multiclass(seed=4, scale=800.0),
    "glm_intercept_only": lambda: Glm(feature_names=[], coefficients=[], intercept=-0.7),
    "glm_missing_replacement": lambda: Glm(
        feature_names=["a", "b", "c", "d"],
        coefficients=[0.5, -1.25, 0.0, 2.0 / 3.0],
        intercept=0.1,
        missing_replacement=[1.5, None, 0.25, -0.75],
    ),
    "glm_identity_link": lambda: Glm(
        feature_names=["a", "b"],
        coefficients=[0.3, -0.2],
        intercept=0.05,
        link="identity",
        missing_replacement=[0.0, 1.0],
    ),
}


def thresholds_by_feature(ir: ModelIR) -> dict[int, list[float]]:
    out: dict[int, list[float]] = {}
    if isinstance(ir, TreeEnsemble):
        for tree in ir.trees:
            for f, t in zip(tree.feature, tree.threshold, strict=True):
                if f != LEAF:
                    out.setdefault(f, []).append(t)
    return out


def make_X(ir: ModelIR, n: int = 400, seed: int = 0) -> np.ndarray:
    """Random rows, a third of the cells exactly ON a threshold of that feature, ~15% NaN."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, ir.n_features))
    for f, ts in thresholds_by_feature(ir).items():
        on = rng.random(n) < 0.35
        X[on, f] = rng.choice(ts, size=int(on.sum()))
    X[rng.random(X.shape) < 0.15] = np.nan
    return X


def write_bundle(root: Path, ir: ModelIR, files: dict[str, str], X: np.ndarray) -> Path:
    """A minimal bundle: manifest.json, reference.npz (X, y, p = IR predictions) and the given format files
    (already in `root`), as adapters/bundle.py reads it."""
    p = predict(ir, X)
    y = p.argmax(axis=1) if p.ndim == 2 else (p > 0.5).astype(np.int64)
    np.savez(root / "reference.npz", X=X, y=y, p=p)

    def sha(name: str) -> str:
        return hashlib.sha256((root / name).read_bytes()).hexdigest()

    task = task_of(ir)
    if task == "multiclass":
        spec = TaskSpec.multiclass([str(c) for c in range(ir.n_outputs)])
    else:
        spec = TaskSpec.regression() if task == "regression" else TaskSpec.binary()
    manifest = {
        "model_id": "test-model",
        **spec.to_manifest(),
        "feature_names": ir.feature_names,
        "formats": {fmt: {"file": name, "sha256": sha(name)} for fmt, name in files.items()},
        "reference": {"file": "reference.npz", "sha256": sha("reference.npz")},
    }
    (root / "manifest.json").write_text(json.dumps(manifest))
    return root


def sensitivity_checks(ir: ModelIR, X: np.ndarray) -> None:
    """The test rows must tell the split op and the missing direction apart, or a parity test proves little."""
    if not isinstance(ir, TreeEnsemble):
        return
    p = predict(ir, X)
    other_op: SplitOp = "<" if ir.split_op == "<=" else "<="
    swapped = dataclasses.replace(ir, split_op=other_op)
    assert np.abs(predict(swapped, X) - p).max() > 1e-3, "no test row sits on a threshold"
    flipped = dataclasses.replace(
        ir,
        trees=[
            Tree(t.feature, t.threshold, t.left, t.right, [not d for d in t.default_left], t.value) for t in ir.trees
        ],
    )
    assert np.abs(predict(flipped, X) - p).max() > 1e-3, "no test row has a missing value at a split"


# ---- pypmml --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pmml_model_class() -> Any:
    from adapters.pmml import use_process_jvm

    use_process_jvm()
    from pypmml import Model

    return Model


def pypmml_predict(model_class: Any, path: Path, ir: ModelIR, X: np.ndarray) -> np.ndarray:
    """Score with pypmml's own public API (a DataFrame; NaN becomes a missing value)."""
    model = model_class.fromFile(str(path))
    fields = output_fields(ir)  # one (binary: probability_1, regression: prediction), or one per class
    if ir.n_features == 0:
        return np.array([[model.predict({})[f] for f in fields] for _ in range(len(X))], dtype=np.float64).squeeze(1)
    out = model.predict(pd.DataFrame(X, columns=ir.feature_names))
    values = out[fields].to_numpy(dtype=np.float64)
    return values[:, 0] if len(fields) == 1 else values


@pytest.mark.parametrize("case", sorted(CASES))
def test_pypmml_matches_ir(case: str, tmp_path: Path, pmml_model_class: Any) -> None:
    ir = CASES[case]()
    X = make_X(ir)
    sensitivity_checks(ir, X)
    path = tmp_path / "model.pmml"
    write_pmml(ir, path)

    got = pypmml_predict(pmml_model_class, path, ir, X)
    expected = predict(ir, X)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=0, atol=ATOL, equal_nan=True)
    if case != "glm_missing_replacement":  # the one case where NaN without replacement gives NaN
        assert not np.isnan(got).any()


def test_glm_nan_without_replacement_is_missing(tmp_path: Path, pmml_model_class: Any) -> None:
    ir = CASES["glm_missing_replacement"]()
    X = np.array([[np.nan, 1.0, np.nan, np.nan], [1.0, np.nan, 1.0, 1.0]])
    write_pmml(ir, tmp_path / "m.pmml")
    got = pypmml_predict(pmml_model_class, tmp_path / "m.pmml", ir, X)
    assert np.isfinite(got[0]) and abs(got[0] - predict(ir, X)[0]) < ATOL  # replacements used
    assert np.isnan(got[1])  # feature b has no replacement


def test_numbers_round_trip_exactly(tmp_path: Path) -> None:
    ir = one_tree()
    write_pmml(ir, tmp_path / "m.pmml")
    text = (tmp_path / "m.pmml").read_text()
    for v in (1.0 / 3.0, -2.0 / 7.0, 0.1 + 0.2):
        assert f'score="{v!r}"' in text
    assert 'value="-1.7"' in text and 'operator="lessOrEqual"' in text
    write_pmml(ensemble("<"), tmp_path / "lt.pmml")
    lt = (tmp_path / "lt.pmml").read_text()
    assert 'operator="lessThan"' in lt and 'operator="lessOrEqual"' not in lt


def test_reserved_and_duplicate_names_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="reserved"):
        write_pmml(Glm([OUTPUT_FIELD], [1.0], 0.0), tmp_path / "m.pmml")
    with pytest.raises(ValueError, match="unique"):
        write_pmml(Glm(["a", "a"], [1.0, 1.0], 0.0), tmp_path / "m.pmml")


def test_feature_names_needing_xml_escapes(tmp_path: Path, pmml_model_class: Any) -> None:
    ir = TreeEnsemble(['a<b & "c"', "label"], [stump(0, 0.0, True, 1.0, -1.0), stump(1, 1.0, False, 0.5, 0.0)])
    X = make_X(ir, n=50)
    write_pmml(ir, tmp_path / "m.pmml")
    got = pypmml_predict(pmml_model_class, tmp_path / "m.pmml", ir, X)
    np.testing.assert_allclose(got, predict(ir, X), rtol=0, atol=ATOL)


# ---- the adapter ---------------------------------------------------------------------------------------


def pmml_bundle(root: Path, ir: ModelIR, X: np.ndarray) -> Path:
    write_pmml(ir, root / "model.pmml")
    return write_bundle(root, ir, {"pmml": "model.pmml"}, X)


@pytest.mark.parametrize("case", ["ensemble_le", "ensemble_lt", "glm_missing_replacement", "glm_intercept_only"])
def test_adapter_matches_reference(case: str, tmp_path: Path) -> None:
    from adapters.bundle import Bundle
    from adapters.pmml import PmmlAdapter

    ir = CASES[case]()
    X = make_X(ir, n=300, seed=3)
    bundle = Bundle.open(pmml_bundle(tmp_path, ir, X))
    Xr, _, p = bundle.reference()
    with PmmlAdapter.load(bundle) as adapter:
        got = adapter.predict(Xr)
        np.testing.assert_allclose(got, p, rtol=0, atol=ATOL, equal_nan=True)
        # one row as 1-D, and a batch of one
        np.testing.assert_allclose(adapter.predict(Xr[0]), p[:1], rtol=0, atol=ATOL, equal_nan=True)
        np.testing.assert_allclose(adapter.predict(Xr[5:6]), p[5:6], rtol=0, atol=ATOL, equal_nan=True)


def test_adapter_maps_columns_by_name(tmp_path: Path) -> None:
    from adapters.pmml import PmmlAdapter

    # the file lists its fields as (c, a, b); the bundle's feature order is (a, b, c)
    bundle_ir = Glm(["a", "b", "c"], [1.0, -2.0, 0.5], 0.25, missing_replacement=[0.0, 1.0, None])
    file_ir = Glm(["c", "a", "b"], [0.5, 1.0, -2.0], 0.25, missing_replacement=[None, 0.0, 1.0])
    write_pmml(file_ir, tmp_path / "model.pmml")
    X = make_X(bundle_ir, n=50)
    X[:, 2] = np.nan_to_num(X[:, 2], nan=0.5)
    write_bundle(tmp_path, bundle_ir, {"pmml": "model.pmml"}, X)
    with PmmlAdapter.load(tmp_path) as adapter:
        np.testing.assert_allclose(adapter.predict(X), predict(bundle_ir, X), rtol=0, atol=ATOL)


def test_adapter_bad_input_and_close(tmp_path: Path) -> None:
    from adapters.pmml import PmmlAdapter

    ir = CASES["ensemble_le"]()
    X = make_X(ir, n=20)
    adapter = PmmlAdapter.load(pmml_bundle(tmp_path, ir, X))
    with pytest.raises(BadInput, match="3 columns, the model takes 4"):
        adapter.predict(np.zeros((2, 3)))
    with pytest.raises(BadInput, match="infinite"):
        adapter.predict(np.full((1, 4), np.inf))
    with pytest.raises(BadInput, match="non-numeric"):
        adapter.predict([["a", "b", "c", "d"]])
    assert adapter.predict(X).shape == (20,)
    adapter.close()
    with pytest.raises(AdapterClosed):
        adapter.predict(X)


def test_adapter_refuses_tampered_file(tmp_path: Path) -> None:
    from adapters.pmml import PmmlAdapter

    ir = CASES["one_tree"]()
    root = pmml_bundle(tmp_path, ir, make_X(ir, n=10))
    path = root / "model.pmml"
    path.write_text(path.read_text().replace('score="0.30000000000000004"', 'score="0.9"'))
    with pytest.raises(BundleError, match="was changed"):
        PmmlAdapter.load(root)


def test_adapter_refuses_unreadable_pmml(tmp_path: Path) -> None:
    from adapters.pmml import PmmlAdapter

    ir = CASES["one_tree"]()
    (tmp_path / "model.pmml").write_text("<PMML version='4.4'><oops")
    write_bundle(tmp_path, ir, {"pmml": "model.pmml"}, make_X(ir, n=5))
    with pytest.raises(BundleError, match="pmml4s cannot load"):
        PmmlAdapter.load(tmp_path)
