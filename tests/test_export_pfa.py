"""PFA export executed by titus2 against the IR's reference evaluator, the titus compatibility shims, and
the pfa adapter on a small bundle. The IR cases come from tests/test_export_pmml.py."""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from adapters.errors import BundleError, ScoringFailed
from adapters.titus_compat import apply_shims, pfa_engine_class
from harness.modelbuild.export_pfa import write_pfa
from harness.modelbuild.ir import Glm, ModelIR, Split, TreeEnsemble, predict, tree_from_nodes
from tests.adapter_contract import refuses_bad_input_then_closes, refuses_changed_file, scores_reference
from tests.test_export_pmml import ATOL, CASES, make_X, one_tree, sensitivity_checks, stump, write_bundle


def titus_engine(path: Path) -> Any:
    engines = pfa_engine_class().fromJson(path.read_text())
    assert len(engines) == 1
    return engines[0]


# ---- titus_compat --------------------------------------------------------------------------------------


def test_shims_give_titus_what_it_needs() -> None:
    apply_shims()
    spec = inspect.getargspec(lambda a, b=1: a)  # type: ignore[attr-defined]
    assert spec.args == ["a", "b"]
    assert np.float_ is np.float64  # type: ignore[attr-defined]
    before = inspect.getargspec  # type: ignore[attr-defined]
    apply_shims()  # idempotent: a second call replaces nothing
    assert inspect.getargspec is before  # type: ignore[attr-defined]


def test_engine_class_runs_a_document() -> None:
    engine_class = pfa_engine_class()
    assert engine_class.__name__ == "PFAEngine"
    doc = {"input": "double", "output": "double", "action": [{"m.link.logit": ["input"]}]}
    (engine,) = engine_class.fromJson(json.dumps(doc))
    assert engine.action(0.0) == 0.5
    assert abs(engine.action(2.0) - 1.0 / (1.0 + np.exp(-2.0))) < 1e-15


# ---- the exporter --------------------------------------------------------------------------------------


def titus_predict(path: Path, X: np.ndarray) -> np.ndarray:
    engine = titus_engine(path)
    return np.array([engine.action(row) for row in X.tolist()], dtype=np.float64)  # with titus's input check


@pytest.mark.parametrize("case", sorted(CASES))
def test_titus_matches_ir(case: str, tmp_path: Path) -> None:
    ir = CASES[case]()
    X = make_X(ir, n=150)
    sensitivity_checks(ir, X)
    path = tmp_path / "model.pfa"
    write_pfa(ir, path)

    got = titus_predict(path, X)
    expected = predict(ir, X)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=0, atol=ATOL, equal_nan=True)
    if case != "glm_missing_replacement":  # the one case where NaN without replacement gives NaN
        assert not np.isnan(got).any()


def test_glm_nan_without_replacement_is_nan(tmp_path: Path) -> None:
    ir = CASES["glm_missing_replacement"]()
    X = np.array([[np.nan, 1.0, np.nan, np.nan], [1.0, np.nan, 1.0, 1.0]])
    write_pfa(ir, tmp_path / "m.pfa")
    got = titus_predict(tmp_path / "m.pfa", X)
    assert np.isfinite(got[0]) and abs(got[0] - predict(ir, X)[0]) < ATOL
    assert np.isnan(got[1])


def test_extreme_margins(tmp_path: Path) -> None:
    # math.exp overflows past 709.78 where numpy gives P = 0; the document guards the link
    ir = TreeEnsemble(["a"], [stump(0, 0.0, True, -800.0, 800.0)])
    write_pfa(ir, tmp_path / "m.pfa")
    got = titus_predict(tmp_path / "m.pfa", np.array([[-1.0], [1.0], [np.nan]]))
    with np.errstate(over="ignore"):
        expected = predict(ir, np.array([[-1.0], [1.0], [np.nan]]))
    np.testing.assert_array_equal(got, expected)
    assert list(got) == [0.0, 1.0, 0.0]


def test_numbers_round_trip_exactly(tmp_path: Path) -> None:
    write_pfa(one_tree(), tmp_path / "m.pfa")
    doc = json.loads((tmp_path / "m.pfa").read_text())
    assert doc["input"] == {"type": "array", "items": "double"} and doc["output"] == "double"
    assert json.loads(doc["metadata"]["feature_names"]) == ["a", "b"]
    values = doc["cells"]["value"]["init"]
    for v in (1.0 / 3.0, -2.0 / 7.0, 0.1 + 0.2):
        assert v in values  # exact float equality after the JSON round trip


def test_non_finite_numbers_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="non-finite"):
        write_pfa(Glm(["a"], [float("inf")], 0.0), tmp_path / "m.pfa")


def test_deep_tree(tmp_path: Path) -> None:
    # a chain 300 splits deep: the data-driven walk has no nesting limit
    depth = 300

    # split d (an int node): x <= depth - d, NaN left at even d; its left child is split d + 1 (the last one's a
    # leaf -1.0), its right child a leaf with value d (a float node)
    def read(node: int | float) -> float | Split:
        if isinstance(node, float):
            return node
        return 0, float(depth - node), node % 2 == 0, node + 1 if node + 1 < depth else -1.0, float(node)

    tree = tree_from_nodes(0, read)
    assert len(tree.feature) == 2 * depth + 1
    ir = TreeEnsemble(["a"], [tree], link="identity")
    X = np.array([[-5.0], [0.0], [0.5], [1.0], [150.0], [299.0], [300.0], [1000.0], [np.nan]])
    write_pfa(ir, tmp_path / "m.pfa")
    got = titus_predict(tmp_path / "m.pfa", X)
    np.testing.assert_array_equal(got, predict(ir, X))
    assert got[0] == -1.0 and got[-1] == 1.0  # -5 walks the whole chain; NaN: left at split 0, right at 1


# ---- the adapter ---------------------------------------------------------------------------------------


def pfa_bundle(root: Path, ir: ModelIR, X: np.ndarray) -> Path:
    write_pfa(ir, root / "model.pfa")
    return write_bundle(root, ir, {"pfa": "model.pfa"}, X)


@pytest.mark.parametrize("case", ["ensemble_lt", "glm_missing_replacement", "glm_intercept_only"])
def test_adapter_matches_reference(case: str, tmp_path: Path) -> None:
    from adapters.pfa import PfaAdapter

    ir = CASES[case]()
    with PfaAdapter.load(pfa_bundle(tmp_path, ir, make_X(ir, n=100, seed=3))) as adapter:
        scores_reference(adapter, ATOL)


def test_adapter_bad_input_and_close(tmp_path: Path) -> None:
    from adapters.pfa import PfaAdapter

    ir = CASES["ensemble_le"]()
    X = make_X(ir, n=10)
    adapter = PfaAdapter.load(pfa_bundle(tmp_path, ir, X))
    bad = {"5 columns, the model takes 4": np.zeros((2, 5)), "empty": np.zeros((0, 4))}
    refuses_bad_input_then_closes(adapter, X, bad)


def test_adapter_refuses_tampered_file(tmp_path: Path) -> None:
    from adapters.pfa import PfaAdapter

    ir = CASES["glm_missing_replacement"]()
    root = pfa_bundle(tmp_path, ir, make_X(ir, n=10))
    intercept = '"intercept":{"type":"double","init":%s}'
    refuses_changed_file(PfaAdapter.load, root, "model.pfa", intercept % 0.1, intercept % 0.2)


def test_adapter_refuses_other_input_types(tmp_path: Path) -> None:
    from adapters.pfa import PfaAdapter

    ir = CASES["one_tree"]()
    doc = {"input": "double", "output": "double", "action": ["input"]}
    (tmp_path / "model.pfa").write_text(json.dumps(doc))
    write_bundle(tmp_path, ir, {"pfa": "model.pfa"}, make_X(ir, n=5))
    with pytest.raises(BundleError, match="array of doubles"):
        PfaAdapter.load(tmp_path)
    (tmp_path / "model.pfa").write_text('{"input": "double", "output": "double", "action": [{"nope": []}]}')
    write_bundle(tmp_path, ir, {"pfa": "model.pfa"}, make_X(ir, n=5))
    with pytest.raises(BundleError, match="titus cannot load"):
        PfaAdapter.load(tmp_path)


def test_adapter_turns_engine_errors_into_scoring_failed(tmp_path: Path) -> None:
    from adapters.pfa import PfaAdapter

    # a valid document that fails at run time on some rows (a user error raised by the document itself)
    ir = CASES["one_tree"]()
    doc = {
        "input": {"type": "array", "items": "double"},
        "output": "double",
        "action": [{"if": {"impute.isnan": [{"attr": "input", "path": [0]}]}, "then": {"error": "no a"}, "else": 0.5}],
    }
    (tmp_path / "model.pfa").write_text(json.dumps(doc))
    write_bundle(tmp_path, ir, {"pfa": "model.pfa"}, make_X(ir, n=5))
    with PfaAdapter.load(tmp_path) as adapter:
        assert list(adapter.predict(np.array([[1.0, 2.0]]))) == [0.5]
        with pytest.raises(ScoringFailed, match=r"row 1 .*no a"):
            adapter.predict(np.array([[1.0, 2.0], [np.nan, 2.0]]))
