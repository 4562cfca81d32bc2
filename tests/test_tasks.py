"""Model tasks without a broker: the task description a manifest carries, the result encoding of each task (what the
loop writes and the measurer and the monitor read), the quality figures of each task against scikit-learn's own,
the measurer's accuracy of timed events, the monitor's drift and labels, and the isolation rules on class
probabilities."""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from sklearn import metrics as skm

from adapters.base import Adapter
from adapters.bundle import Bundle
from adapters.errors import BundleError, ScoringFailed
from adapters.tasks import TaskError, TaskSpec, finite_rows, predicted_class
from harness.bench.measure import accuracy_of
from harness.monitoring.monitor import drift
from harness.monitoring.rules import default_rules
from harness.scoring import quality, wire
from harness.scoring.isolation import BatchScorer
from harness.scoring.quality import parse_label

CLASSES = ("none", "tool_wear", "power")


# ---- the task a manifest records ----------------------------------------------------------------------------


def test_a_manifest_without_a_task_is_a_binary_classifier_and_each_task_names_its_outputs() -> None:
    assert TaskSpec.from_manifest({}) == TaskSpec.binary()
    assert TaskSpec.binary().output_names == ["probability(1)"]
    reg = TaskSpec.regression()
    assert reg.output_names == ["prediction"] and reg.n_outputs == 1 and reg.vector
    multi = TaskSpec.multiclass(CLASSES)
    assert multi.output_names == ["probability(none)", "probability(tool_wear)", "probability(power)"]
    assert multi.n_outputs == 3 and not multi.vector
    for spec in (TaskSpec.binary("no", "yes"), reg, multi):
        assert TaskSpec.from_manifest(json.loads(json.dumps(spec.to_manifest()))) == spec


@pytest.mark.parametrize(
    ("manifest", "message"),
    [
        ({"task": "ranking"}, "unknown task 'ranking'"),
        ({"task": "multiclass", "classes": ["a", "b"]}, "at least three classes"),
        ({"task": "multiclass", "classes": ["a", "b", "a"]}, "not unique"),
        ({"task": "regression", "outputs": ["probability(1)"]}, "do not match its task"),
    ],
)
def test_a_task_that_does_not_hold_together_is_refused(manifest: dict[str, Any], message: str) -> None:
    with pytest.raises(TaskError, match=message):
        TaskSpec.from_manifest(manifest)


def test_an_adapter_returning_the_wrong_shape_for_its_task_fails_the_batch(tmp_path: Path) -> None:
    bundle = _bundle(tmp_path, TaskSpec.multiclass(CLASSES))

    class TwoColumns(Adapter):
        name, family, format = "two", "baseline", None

        def _open(self) -> None:
            pass

        def _predict(self, X: np.ndarray) -> np.ndarray:
            return np.full((X.shape[0], 2), 0.5)

    with TwoColumns.load(bundle) as a, pytest.raises(ScoringFailed, match="returned 4 values for 2 rows of 3"):
        a.predict(np.zeros((2, 2)))
    (tmp_path / "manifest.json").write_text(json.dumps({**_manifest(TaskSpec.regression()), "classes": ["a"]}))
    with pytest.raises(BundleError, match="manifest 'task' is not valid"):
        _ = Bundle.open(tmp_path).task


# ---- the result encoding of each task -------------------------------------------------------------------------


@pytest.mark.parametrize("task", [TaskSpec.binary(), TaskSpec.regression()])
def test_one_number_results_are_encoded_as_before(task: TaskSpec) -> None:
    codec = wire.ResultCodec(task, "json")
    assert orjson.loads(codec.encode("p-1", 123.5)) == {"rid": "p-1", "score": 123.5}
    assert orjson.loads(codec.encode(None, 0.25)) == {"score": 0.25}
    assert codec.decode(codec.encode("p-1", 123.5)) == 123.5
    f64 = wire.ResultCodec(task, "f64le")
    assert f64.encode("p-1", 0.1) == struct.pack("<d", 0.1) and f64.decode(struct.pack("<d", 0.1)) == 0.1


def test_a_multiclass_result_names_its_class_and_every_class_probability() -> None:
    codec = wire.ResultCodec(TaskSpec.multiclass(CLASSES), "json")
    value = codec.encode("p-7", [0.2, 0.1, 0.7])
    assert orjson.loads(value) == {
        "rid": "p-7",
        "class": "power",
        "probabilities": {"none": 0.2, "tool_wear": 0.1, "power": 0.7},
    }
    assert codec.decode(value).tolist() == [0.2, 0.1, 0.7]
    assert orjson.loads(codec.encode(None, [0.5, 0.5, 0.0]))["class"] == "none"  # the first of equals, like argmax
    f64 = wire.ResultCodec(TaskSpec.multiclass(CLASSES), "f64le")
    raw = f64.encode("p-7", [0.2, 0.1, 0.7])
    assert raw == struct.pack("<3d", 0.2, 0.1, 0.7) and f64.decode(raw).tolist() == [0.2, 0.1, 0.7]
    with pytest.raises(ValueError, match="expected 24"):
        f64.decode(struct.pack("<d", 1.0))
    with pytest.raises(KeyError):
        codec.decode(orjson.dumps({"rid": "x", "score": 0.3}))  # a binary result is not a multiclass one


# ---- quality figures --------------------------------------------------------------------------------------------


def test_quality_figures_match_scikit_learn_and_leave_out_unlabelled_rows() -> None:
    rng = np.random.default_rng(3)
    p = rng.dirichlet([1, 1, 1], 500)
    y = rng.integers(0, 3, 500)
    y_some = y.copy()
    y_some[:50] = -1
    got = quality.quality("multiclass", y_some, p)
    assert got["log_loss"] == pytest.approx(skm.log_loss(y[50:], p[50:], labels=[0, 1, 2]), rel=1e-12)
    assert got["accuracy"] == pytest.approx(skm.accuracy_score(y[50:], p[50:].argmax(axis=1)))
    v = rng.normal(100, 20, 400)
    t = v + rng.normal(0, 5, 400)
    t_some = t.copy()
    t_some[::10] = np.nan
    keep = ~np.isnan(t_some)
    got = quality.quality("regression", t_some, v)
    assert got["rmse"] == pytest.approx(math.sqrt(skm.mean_squared_error(t[keep], v[keep])), rel=1e-12)
    assert got["mae"] == pytest.approx(skm.mean_absolute_error(t[keep], v[keep]), rel=1e-12)
    s = rng.random(300)
    yb = (rng.random(300) < s).astype(int)
    assert quality.quality("binary", yb, s)["auc"] == pytest.approx(skm.roc_auc_score(yb, s))
    assert quality.quality("binary", np.ones(10, dtype=int), s[:10])["auc"] is None  # one class: no AUC
    assert quality.quality("regression", np.full(3, np.nan), v[:3]) == {"rmse": None, "mae": None}


def test_the_measurers_accuracy_holds_every_output_to_the_reference_and_reports_the_tasks_figures() -> None:
    rng = np.random.default_rng(5)
    ref = rng.dirichlet([2, 1, 1], 200)
    y = ref.argmax(axis=1)
    out = ref.copy()
    out[7, 2] += 1e-3  # one class probability of one event moved
    acc = accuracy_of(TaskSpec.multiclass(CLASSES), out, ref, y, tolerance=1e-5)
    assert acc.task == "multiclass" and acc.max_abs_diff == pytest.approx(1e-3)
    assert acc.share_beyond_tolerance == pytest.approx(1 / 200)
    assert acc.accuracy == acc.accuracy_reference == 1.0 and acc.log_loss is not None
    assert set(acc.figures()) == {"log_loss", "accuracy"}
    values = rng.normal(120, 40, 300)
    truth = values + rng.normal(0, 10, 300)
    acc = accuracy_of(TaskSpec.regression(), values + 2.0, values, truth, tolerance=1e-5)
    assert acc.rmse is not None and acc.rmse_reference is not None and acc.rmse > acc.rmse_reference
    assert acc.max_abs_diff == pytest.approx(2.0) and acc.share_beyond_tolerance == 1.0
    assert acc.auc is None and set(acc.figures()) == {"rmse", "mae"}


# ---- the monitor's drift and labels ---------------------------------------------------------------------------


def test_drift_of_class_probabilities_is_the_class_that_moved_most() -> None:
    rng = np.random.default_rng(9)
    ref = rng.dirichlet([8, 1, 1], 4000)
    same = rng.dirichlet([8, 1, 1], 1000)
    moved = rng.dirichlet([2, 1, 4], 1000)  # "power" gained, "none" lost
    psi_same, ks_same = drift(ref, same)
    psi_moved, ks_moved = drift(ref, moved)
    assert psi_same < 0.05 and ks_same < 0.06
    assert psi_moved > 1.0 and ks_moved > 0.5
    values = rng.normal(100, 10, 4000)
    assert drift(values, values[:1000] + 25)[0] > 1.0  # a regression's predictions shifted by 2.5 sd


def test_feedback_labels_are_read_by_task() -> None:
    multi = TaskSpec.multiclass(CLASSES)
    assert parse_label(multi, "power") == 2
    assert parse_label(TaskSpec.multiclass(["0", "1", "2"]), 1) == 1  # a number is read as its text
    assert parse_label(TaskSpec.regression(), 87.5) == 87.5
    assert parse_label(TaskSpec.binary(), 1) == 1
    for task, raw in ((multi, "broken"), (TaskSpec.regression(), float("nan")), (TaskSpec.binary(), 2),
                      (TaskSpec.binary(), True), (TaskSpec.binary(), 0.5), (TaskSpec.regression(), "x")):  # fmt: skip
        with pytest.raises(ValueError):
            parse_label(task, raw)
    names = {t: [r.name for r in default_rules(task=t)][-1] for t in ("binary", "regression", "multiclass")}
    assert names == {"binary": "LiveAUCDropped", "regression": "LiveRMSERose", "multiclass": "LiveAccuracyDropped"}


# ---- isolation on class probabilities ---------------------------------------------------------------------------


def test_a_row_with_a_non_finite_class_probability_is_a_failure_and_the_others_score(tmp_path: Path) -> None:
    bundle = _bundle(tmp_path, TaskSpec.multiclass(CLASSES))

    class Probabilities(Adapter):
        name, family, format = "probs", "baseline", None

        def _open(self) -> None:
            pass

        def _predict(self, X: np.ndarray) -> np.ndarray:
            out = np.tile([0.2, 0.3, 0.5], (X.shape[0], 1))
            out[X[:, 0] < 0, 1] = np.nan
            return out

    with Probabilities.load(bundle) as a:
        X = np.array([[1.0, 0.0], [-1.0, 0.0], [2.0, 0.0]])
        outcome = BatchScorer(a).score(X)
    assert set(outcome.failures) == {1} and "among this record's class probabilities" in outcome.failures[1]
    assert outcome.scores[0].tolist() == [0.2, 0.3, 0.5] and finite_rows(outcome.scores).tolist() == [1, 0, 1]
    assert predicted_class(outcome.scores[[0, 2]]).tolist() == [2, 2]


def _manifest(task: TaskSpec) -> dict[str, Any]:
    return {"model_id": "m", "feature_names": ["a", "b"], "formats": {}, **task.to_manifest()}


def _bundle(root: Path, task: TaskSpec) -> Bundle:
    (root / "manifest.json").write_text(json.dumps(_manifest(task)))
    return Bundle.open(root)


# ---- the online learner learns each task river has ----------------------------------------------------------


def _reference_bundle(root: Path, task: TaskSpec, X: np.ndarray, y: np.ndarray) -> Bundle:
    np.savez(root / "reference.npz", X=X, y=y, p=np.zeros((len(X),) if task.vector else (len(X), task.n_outputs)))
    from adapters.bundle import sha256_file

    manifest = _manifest(task) | {"reference": {"file": "reference.npz", "sha256": sha256_file(root / "reference.npz")}}
    (root / "manifest.json").write_text(json.dumps(manifest))
    return Bundle.open(root)


@pytest.mark.parametrize("kind", ["lr", "hat"])
def test_the_online_learner_learns_regression_and_multiclass_labels(kind: str, tmp_path: Path) -> None:
    from adapters.online import OnlineAdapter

    rng = np.random.default_rng(2)
    X = rng.normal(size=(3000, 2))
    value = 40 + 10 * X[:, 0] - 5 * X[:, 1]
    cls = np.digitize(X[:, 0] + 0.3 * X[:, 1], [-0.5, 0.5])
    for task, y, figure in (
        (TaskSpec.regression(), value, "rmse"),
        (TaskSpec.multiclass(CLASSES), cls, "log_loss"),
    ):
        root = tmp_path / task.task
        root.mkdir()
        bundle = _reference_bundle(root, task, X[:100], y[:100])
        with OnlineAdapter.load(bundle, model=kind) as learner:
            test, ty = X[2000:], y[2000:]
            before = quality.quality(task.task, ty, learner.predict(test))[figure]
            learner.learn(X[100:2000], y[100:2000])
            after = quality.quality(task.task, ty, learner.predict(test))[figure]
            restored = OnlineAdapter.load(bundle, model=kind, warm_start=False)
            restored.restore(learner.state())
            assert np.array_equal(restored.predict(test[:20]), learner.predict(test[:20]))
        assert before is not None and after is not None and after < 0.85 * before, (task.task, kind, before, after)


# ---- the report and compare show the task's figures ----------------------------------------------------------


def _regression_run(run_id: str, onnx_rmse: float) -> dict[str, Any]:
    from tests.test_report import make_results

    data = make_results(run_id)
    sc = data["scenarios"][0]
    sc["task"], sc["outputs"] = "regression", "the predicted rul"
    for a in sc["adapters"]:
        for w in a["windows"]:
            if w["kind"] != "load" or "identity" in a["adapter"]:
                continue
            rmse = onnx_rmse if a["adapter"] == "onnx" else 11.8
            if a["adapter"] == "onnx":  # timing disturbed by other processes: what it predicted still counts
                w["problems"] = ["disturbed: other processes used 120% of a core"]
            w["accuracy"] = {
                "max_abs_diff": 3e-6,
                "share_beyond_tolerance": 0.0,
                "tolerance": 1e-5,
                "task": "regression",
                "rmse": rmse,
                "rmse_reference": 11.8,
                "mae": 9.9,
                "mae_reference": 9.9,
            }
    return data


def test_the_report_and_compare_show_and_judge_a_regression_models_figures(tmp_path: Path) -> None:
    from rich.console import Console

    from harness.reporting.compare import compare
    from harness.reporting.report import write_report
    from harness.reporting.verdict import summary_table, tier_table, verdict
    from harness.results.schema import parse_results
    from tests.test_report import write_run

    a = _regression_run("20261203-100000-fraud", 11.8)
    table = tier_table(verdict(parse_results(a).scenarios[0]))
    assert "max abs diff · RMSE · MAE" in table.header
    col = table.header.index("max abs diff · RMSE · MAE")
    onnx = next(r for r in table.rows if r[1] == "onnx")
    assert onnx[col].endswith("RMSE 11.8/11.8 · MAE 9.9/9.9"), onnx[col]
    md = (write_report(write_run(tmp_path, a))[0]).read_text()
    assert "**Task:** regression: each result is the predicted rul" in md and "RMSE 11.8/11.8" in md
    con = Console(record=True, width=250)
    con.print(summary_table(a))
    assert "RMSE 11.8/11.8 · MAE 9.9/9.9" in con.export_text()
    same = compare([write_run(tmp_path, a), write_run(tmp_path, _regression_run("20261203-110000-fraud", 11.8))], 10)
    assert not [r for r in same.regressions if "RMSE" in r]
    assert not [r for r in same.rows if r.metric.startswith("AUC")]  # a regression has no AUC row
    worse = compare([write_run(tmp_path, a), write_run(tmp_path, _regression_run("20261203-120000-fraud", 12.5))], 10)
    rows = [r for r in worse.regressions if "RMSE / reference − 1" in r]
    assert len(rows) == 1 and rows[0].startswith("fraud/onnx") and "+0.00% → +5.93%" in rows[0], rows


def test_the_built_in_regression_and_multiclass_scenarios_and_what_a_scenario_refuses() -> None:
    from pydantic import ValidationError

    from harness.scenario import Scenario, load_scenario
    from tests.conftest import ROOT

    rul = load_scenario(ROOT / "scenarios" / "maintenance_rul.yaml")
    kind = load_scenario(ROOT / "scenarios" / "maintenance_failure_type.yaml")
    assert (rul.task, rul.dataset and rul.dataset.params["target"]) == ("regression", "rul")
    assert (kind.task, kind.dataset and kind.dataset.params["target"]) == ("multiclass", "failure_type")
    assert "kstreams-mojo" in [a.name for a in rul.adapters] and "kstreams-mojo" not in [a.name for a in kind.adapters]
    for bad, message in (
        ({"task": "regression", "model": {"trainer": "sklearn", "algorithm": "logistic_regression"}}, "is binary"),
        ({"task": "multiclass", "model": {"trainer": "h2o", "algorithm": "glm"}}, "multinomial"),
        ({"task": "ranking"}, "task"),
    ):
        with pytest.raises(ValidationError, match=message):
            Scenario.model_validate({"name": "x", "dataset": {"generator": "fraud"}, **bad})
