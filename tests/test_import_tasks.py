"""`harness import` of regression and multiclass models, and of files laid out as their common producers write them
(tests/producers.py: our own files, in the producers' layouts). Each file imports and its own evaluator passes the
parity gate against the producer's scores (the training library's own predictions); every format derived from the
model IR passes against the reference. An import that cannot work is one `error:` line and exit 2."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from adapters.bundle import Bundle
from adapters.registry import adapter_class
from harness.modelbuild.importer import ImportRequest, import_model
from tests import producers as pr
from tests.conftest import run_cli

SEGMENTS = ["high", "low", "mid"]  # sorted, as the trainers number them


@pytest.fixture(scope="module")
def audit() -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray, np.ndarray, list[pr.Column]]:
    train, ref = pr.audit(4000, 1), pr.audit(500, 2)
    Xtr, cols = pr.encode(train)
    Xref, _ = pr.encode(ref)
    return train, ref, Xtr, Xref, cols


def _xgboost(audit: Any, task: str) -> tuple[Any, np.ndarray]:
    import xgboost as xgb

    train, _, Xtr, Xref, _ = audit
    params = {"max_depth": 4, "eta": 0.3, "tree_method": "hist", "nthread": 1, "seed": 1}
    if task == "binary":
        params["objective"], y = "binary:logistic", train["adjusted"].to_numpy()
    elif task == "regression":
        params["objective"], y = "reg:squarederror", train["risk"].to_numpy()
    else:
        params |= {"objective": "multi:softprob", "num_class": 3}
        y = np.array([SEGMENTS.index(v) for v in train["segment"]])
    booster = xgb.train(params, xgb.DMatrix(Xtr, label=y, missing=np.nan), 30)
    return booster, np.asarray(booster.inplace_predict(Xref, missing=np.nan), dtype=np.float64)


def _last(text: str) -> str:
    return text.strip().splitlines()[-1]


def _manifest(stdout: str) -> dict[str, Any]:
    return Bundle.open(_last(stdout)).manifest


# ---- PMML as the JPMML converters write it -------------------------------------------------------------------


def test_a_pmml_model_chain_with_its_outputs_in_the_last_segment_matches_xgboost(audit: Any, tmp_path: Path) -> None:
    """The file the issue found unimportable: a JPMML-XGBoost binary classifier whose probability(0) and
    probability(1) are declared only in the model chain's last segment, string categoricals and missing values,
    x-mathContext="float"."""
    _, ref, _, _, cols = audit
    booster, p = _xgboost(audit, "binary")
    pr.jpmml_xgboost_pmml(booster, cols, "adjusted", ["0", "1"], tmp_path / "audit.pmml")
    csv = pr.reference_csv(ref, tmp_path / "audit.csv", {"expected": p})
    r = run_cli("import", str(tmp_path / "audit.pmml"), "--reference", str(csv), "--label", "adjusted",
                "--expected", "expected", "--artifacts", str(tmp_path / "a"))  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    m = _manifest(r.stdout)
    assert m["task"] == "binary" and m["formats"]["pmml"]["output_fields"] == ["probability(1)"]
    assert m["formats"]["pmml"]["math_context"] == "float"
    # pmml4s computes in float64 the float32 numbers XGBoost computed with in float32: ~1e-7 apart
    assert m["expected"]["passed"] and m["expected"]["rows"] == len(ref) and m["expected"]["max_abs_diff"] < 1e-6
    assert m["data"]["holdout_rows_with_nan"] > 50 and m["formats"]["pmml"]["parity"]["passed"]
    assert "expected   max |diff|" in r.stderr


def test_a_regression_pmml_with_target_rescaling_matches_xgboost(audit: Any, tmp_path: Path) -> None:
    _, ref, _, _, cols = audit
    booster, p = _xgboost(audit, "regression")
    pr.jpmml_xgboost_pmml(booster, cols, "risk", None, tmp_path / "risk.pmml")
    csv = pr.reference_csv(ref, tmp_path / "risk.csv", {"expected": p})
    r = run_cli("import", str(tmp_path / "risk.pmml"), "--reference", str(csv), "--label", "risk",
                "--expected", "expected", "--artifacts", str(tmp_path / "a"))  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    m = _manifest(r.stdout)
    # no Output in the file: pmml4s names the result predicted_risk; the base score is the Target's rescaleConstant
    assert m["task"] == "regression" and m["outputs"] == ["prediction"]
    assert m["formats"]["pmml"]["output_fields"] == ["predicted_risk"]
    assert m["expected"]["passed"] and m["expected"]["tolerance_rtol"] == 1e-6
    assert m["expected"]["max_abs_diff"] < 1e-4 * np.abs(p).max()  # float32 sums of values near 50
    X, y, ref_p = Bundle.open(_last(r.stdout)).reference()
    assert np.allclose(y, ref["risk"]) and np.abs(ref_p - p).max() == m["expected"]["max_abs_diff"]
    assert m["data"]["label_mean"] == pytest.approx(ref["risk"].mean())


def test_a_multiclass_pmml_chain_and_a_selectfirst_segmentation_import(audit: Any, tmp_path: Path) -> None:
    _, ref, _, _, cols = audit
    booster, p = _xgboost(audit, "multiclass")
    pr.jpmml_xgboost_pmml(booster, cols, "segment", SEGMENTS, tmp_path / "seg.pmml")
    csv = pr.reference_csv(ref, tmp_path / "seg.csv", {f"p_{c}": p[:, i] for i, c in enumerate(SEGMENTS)})
    req = ImportRequest(tmp_path / "seg.pmml", csv, "segment", "p_", "seg")
    m = import_model(req, tmp_path / "a", log=lambda s: None).manifest
    assert m["task"] == "multiclass" and m["classes"] == SEGMENTS
    assert m["formats"]["pmml"]["output_fields"] == [f"probability({c})" for c in SEGMENTS]
    assert m["expected"]["passed"] and m["expected"]["columns"] == [f"p_{c}" for c in SEGMENTS]
    assert set(m["expected"]["outputs"]) == {f"probability({c})" for c in SEGMENTS}
    assert m["data"]["class_shares"]["mid"] > 0.2

    segments = pr.selectfirst_regression_pmml(tmp_path / "knime.pmml")
    gov = ref["employment"] == "Gov"
    expected = np.where(
        gov,
        segments["Gov"][0] + 0.25 * ref["age"] + 0.1 * ref["hours"],
        segments["*"][0] + 0.125 * ref["age"] + 0.2 * ref["hours"],
    )
    csv = pr.reference_csv(ref, tmp_path / "knime.csv", {"expected": expected})
    m = import_model(ImportRequest(tmp_path / "knime.pmml", csv, "risk", "expected", "knime"), tmp_path / "a").manifest
    # the segments each declare predicted_risk; rows whose age is missing get no score from either segment
    assert m["task"] == "regression" and m["formats"]["pmml"]["output_fields"] == ["predicted_risk"]
    assert m["expected"]["passed"] and m["expected"]["max_abs_diff"] < 1e-9
    assert m["expected"]["rows"] == int((~np.isnan(expected)).sum()) and m["data"]["rows_left_out_unscored"] > 0


def test_an_output_that_is_not_there_is_one_line_naming_what_is_and_output_picks_one(
    audit: Any, tmp_path: Path
) -> None:
    _, ref, _, _, cols = audit
    booster, p = _xgboost(audit, "regression")
    pr.jpmml_xgboost_pmml(booster, cols, "risk", None, tmp_path / "risk.pmml")
    pr.with_transformed_output(tmp_path / "risk.pmml", "risk_x10", 10.0)
    csv = pr.reference_csv(ref, tmp_path / "risk.csv", {"expected": 10.0 * p})
    args = ["import", str(tmp_path / "risk.pmml"), "--reference", str(csv), "--expected", "expected",
            "--artifacts", str(tmp_path / "a")]  # fmt: skip
    r = run_cli(*args)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    line = _last(r.stderr)
    assert line.startswith("error:") and "no output field gives the predicted value" in line
    assert "its outputs: risk_x10" in line and "--output NAME" in line
    assert not (tmp_path / "a").exists() or not list((tmp_path / "a").rglob("manifest.json"))
    r = run_cli(*args, "--output", "risk_x10")
    assert r.returncode == 0, r.stderr[-3000:]
    assert _manifest(r.stdout)["formats"]["pmml"]["output_fields"] == ["risk_x10"]
    r = run_cli(*args, "--output", "nope")
    assert r.returncode == 2 and "--output 'nope' is not an output of the document (it has: risk_x10)" in r.stderr
    r = run_cli(*args, "--task", "multiclass")
    assert r.returncode == 2 and "is a regression model; --task multiclass does not fit it" in _last(r.stderr)


# ---- ONNX as skl2onnx and onnxmltools write it --------------------------------------------------------------


def _numeric(ref: pd.DataFrame) -> pd.DataFrame:
    out = ref[["age", "income", "hours"]].copy()
    out["income"] = out["income"] / 1000.0
    return out


def test_a_multiclass_onnx_with_zipmap_matches_its_pipeline(audit: Any, tmp_path: Path) -> None:
    """skl2onnx's default for a classifier: output_label and output_probability, a ZipMap (one {class: p} map per
    row); and the same model as a plain probability tensor (zipmap off). A pipeline (mean imputer, scaler,
    multinomial logistic regression) on string class labels."""
    import skl2onnx
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    train, ref = audit[0], audit[1]
    Xtr, Xref = _numeric(train).to_numpy(), _numeric(ref).to_numpy()
    clf = make_pipeline(SimpleImputer(), StandardScaler(), LogisticRegression(max_iter=500))
    clf.fit(Xtr, train["segment"].to_numpy())
    assert list(clf.classes_) == SEGMENTS
    p = clf.predict_proba(Xref)
    table = _numeric(ref).assign(segment=ref["segment"])
    csv = pr.reference_csv(table, tmp_path / "ref.csv", {f"p({c})": p[:, i] for i, c in enumerate(SEGMENTS)})
    init = [("input", FloatTensorType([None, 3]))]
    zipmap = skl2onnx.convert_sklearn(clf, initial_types=init)
    (tmp_path / "zipmap.onnx").write_bytes(zipmap.SerializeToString())
    assert [o.name for o in zipmap.graph.output] == ["output_label", "output_probability"]
    r = run_cli("import", str(tmp_path / "zipmap.onnx"), "--reference", str(csv), "--label", "segment",
                "--expected", "p", "--artifacts", str(tmp_path / "a"))  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    m = _manifest(r.stdout)
    onnx = m["formats"]["onnx"]
    assert m["task"] == "multiclass" and m["classes"] == SEGMENTS
    assert onnx["output_name"] == "output_probability" and onnx["output_keys"] == SEGMENTS
    assert m["expected"]["passed"] and m["expected"]["max_abs_diff"] < 1e-5  # a float32 graph
    b = Bundle.open(_last(r.stdout))
    with adapter_class("onnx").load(b) as a:
        got = a.predict(b.reference()[0][:5])
    assert got.shape == (5, 3) and np.allclose(got.sum(axis=1), 1.0, atol=1e-6)

    tensor = skl2onnx.convert_sklearn(clf, initial_types=init, options={id(clf.steps[-1][1]): {"zipmap": False}})
    (tmp_path / "tensor.onnx").write_bytes(tensor.SerializeToString())
    m = import_model(ImportRequest(tmp_path / "tensor.onnx", csv, "segment", "p"), tmp_path / "b").manifest
    assert m["formats"]["onnx"]["output_name"] == "probabilities" and m["expected"]["passed"]


def test_onnx_from_onnxmltools_and_a_regression_tensor_import(audit: Any, tmp_path: Path) -> None:
    import lightgbm as lgb
    import onnxmltools
    import skl2onnx
    from onnxmltools.convert.common.data_types import FloatTensorType as MLFloat
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LinearRegression
    from sklearn.pipeline import make_pipeline

    train, ref = audit[0], audit[1]
    Xtr, Xref = _numeric(train).to_numpy(), _numeric(ref).to_numpy()
    y = np.array([SEGMENTS.index(v) for v in train["segment"]])
    lgbm = lgb.LGBMClassifier(n_estimators=20, num_leaves=7, verbose=-1, random_state=1).fit(Xtr, y)
    model = onnxmltools.convert_lightgbm(lgbm, initial_types=[("input", MLFloat([None, 3]))])  # ZipMap on
    (tmp_path / "lgbm.onnx").write_bytes(model.SerializeToString())
    p = lgbm.predict_proba(Xref)
    classes = ["0", "1", "2"]
    table = _numeric(ref).assign(segment=y[: len(ref)] * 0 + np.array([SEGMENTS.index(v) for v in ref["segment"]]))
    csv = pr.reference_csv(table, tmp_path / "lgbm.csv", {f"e_{c}": p[:, i] for i, c in enumerate(classes)})
    m = import_model(ImportRequest(tmp_path / "lgbm.onnx", csv, "segment", "e_"), tmp_path / "a").manifest
    assert m["task"] == "multiclass" and m["classes"] == classes and m["formats"]["onnx"]["output_keys"] == [0, 1, 2]
    assert m["expected"]["passed"]

    reg = make_pipeline(SimpleImputer(), LinearRegression()).fit(Xtr, train["risk"].to_numpy())
    graph = skl2onnx.convert_sklearn(reg, initial_types=[("input", FloatTensorType([None, 3]))])
    (tmp_path / "reg.onnx").write_bytes(graph.SerializeToString())
    csv = pr.reference_csv(_numeric(ref).assign(risk=ref["risk"]), tmp_path / "reg.csv", {"e": reg.predict(Xref)})
    m = import_model(ImportRequest(tmp_path / "reg.onnx", csv, "risk", "e"), tmp_path / "a").manifest
    assert m["task"] == "regression" and m["formats"]["onnx"]["output_name"] == "variable"
    assert m["expected"]["passed"] and m["expected"]["tolerance_rtol"] == 1e-5


# ---- XGBoost and LightGBM native files of every task --------------------------------------------------------


def _formats_within(m: dict[str, Any]) -> set[str]:
    parities = {f: e["parity"] for f, e in m["formats"].items() if "parity" in e}
    assert all(p["passed"] for p in parities.values()), parities
    return set(parities)


@pytest.mark.parametrize("task", ["regression", "multiclass", "multi:softmax"])
def test_xgboost_and_lightgbm_files_of_every_task_import_with_every_format(
    task: str, audit: Any, tmp_path: Path
) -> None:
    import lightgbm as lgb
    import xgboost as xgb

    train, ref = audit[0], audit[1]
    table = _numeric(ref)
    Xtr, Xref = _numeric(train).to_numpy(), table.to_numpy()
    kind = "regression" if task == "regression" else "multiclass"
    y = train["risk"].to_numpy() if kind == "regression" else np.array([SEGMENTS.index(v) for v in train["segment"]])
    params: dict[str, Any] = {"max_depth": 3, "eta": 0.3, "nthread": 1, "seed": 1}
    params |= (
        {"objective": "reg:squarederror"}
        if kind == "regression"
        else {"objective": task.replace("multiclass", "multi:softprob"), "num_class": 3}
    )
    booster = xgb.train(params, xgb.DMatrix(Xtr, label=y, feature_names=list(table.columns)), 20)
    booster.save_model(str(tmp_path / "model.json"))
    softprob = xgb.Booster(model_file=str(tmp_path / "model.json"))
    softprob.set_param({"objective": "multi:softprob"}) if task == "multi:softmax" else None
    p = np.asarray(softprob.inplace_predict(Xref), dtype=np.float64)
    names = ["e"] if p.ndim == 1 else [f"e_{i}" for i in range(3)]
    label = ref["risk"] if kind == "regression" else [SEGMENTS.index(v) for v in ref["segment"]]
    csv = pr.reference_csv(
        table.assign(y=label), tmp_path / "ref.csv", dict(zip(names, p.T if p.ndim == 2 else [p], strict=True))
    )
    expected = "e" if kind == "regression" else "e_"
    m = import_model(ImportRequest(tmp_path / "model.json", csv, "y", expected, "xgb"), tmp_path / "a").manifest
    assert m["task"] == kind and m["expected"]["passed"]
    assert _formats_within(m) == {"ir", "native", "onnx", "codegen-c", "pmml", "pfa"}
    if task == "multi:softmax":  # it predicts the class index: the bundle serves the class probabilities
        assert "multi:softprob" in m["formats"]["native"]["served_as"]

    lparams = {"objective": "regression"} if kind == "regression" else {"objective": "multiclass", "num_class": 3}
    lbooster = lgb.train({**lparams, "num_leaves": 7, "verbose": -1, "seed": 1},
                         lgb.Dataset(Xtr, label=y, feature_name=list(table.columns)), 20)  # fmt: skip
    (tmp_path / "model.txt").write_text(lbooster.model_to_string())
    lp = lbooster.predict(Xref)
    csv = pr.reference_csv(
        table.assign(y=label), tmp_path / "lref.csv", dict(zip(names, lp.T if lp.ndim == 2 else [lp], strict=True))
    )
    m = import_model(ImportRequest(tmp_path / "model.txt", csv, "y", expected, "lgb"), tmp_path / "a").manifest
    assert m["task"] == kind and m["expected"]["passed"] and m["expected"]["max_abs_diff"] < 1e-12
    assert _formats_within(m) == {"ir", "native", "onnx", "codegen-c", "pmml", "pfa"}


def test_an_import_that_cannot_work_says_why_in_one_line(audit: Any, tmp_path: Path) -> None:
    import lightgbm as lgb

    train, ref = audit[0], audit[1]
    Xtr = _numeric(train).to_numpy()
    ranker = lgb.train({"objective": "lambdarank", "verbose": -1},
                       lgb.Dataset(Xtr, label=np.arange(len(Xtr)) % 3, group=[100] * (len(Xtr) // 100)), 3)  # fmt: skip
    (tmp_path / "rank.txt").write_text(ranker.model_to_string())
    csv = pr.reference_csv(_numeric(ref), tmp_path / "ref.csv", {})
    r = run_cli("import", str(tmp_path / "rank.txt"), "--reference", str(csv), "--artifacts", str(tmp_path / "a"))
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert (
        _last(r.stderr).startswith("error:") and "objective 'lambdarank' is not a task the harness serves" in r.stderr
    )
    r = run_cli("import", str(tmp_path / "rank.txt"), "--reference", str(csv), "--task", "ranking")
    assert r.returncode == 2 and "--task 'ranking': valid tasks are binary, regression, multiclass" in r.stderr


# ---- H2O MOJOs of every algorithm and task ------------------------------------------------------------------


H2O_ALGOS = ("gbm", "glm", "drf", "deeplearning")
H2O_TASKS = ("binary", "regression", "multiclass")


@pytest.fixture(scope="module")
def h2o_mojos(audit: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], tuple[Path, Path]]:
    """A MOJO of each algorithm and task, trained by a local H2O cluster, with H2O's own in-cluster predictions as
    the expected scores of the reference rows (the cluster is shut down before the tests run)."""
    import h2o
    from h2o.estimators import (
        H2ODeepLearningEstimator,
        H2OGeneralizedLinearEstimator,
        H2OGradientBoostingEstimator,
        H2ORandomForestEstimator,
    )

    from harness.modelbuild.h2o_cluster import h2o_cluster

    train, ref = _numeric(audit[0]), _numeric(audit[1])
    for frame, src in ((train, audit[0]), (ref, audit[1])):
        frame["adjusted"] = src["adjusted"].astype(str)
        frame["risk"] = src["risk"]
        frame["segment"] = src["segment"]
    out = tmp_path_factory.mktemp("mojos")
    features = ["age", "income", "hours"]
    targets = {"binary": "adjusted", "regression": "risk", "multiclass": "segment"}
    estimators = {
        "gbm": lambda: H2OGradientBoostingEstimator(ntrees=15, max_depth=4, seed=1),
        "drf": lambda: H2ORandomForestEstimator(ntrees=10, max_depth=6, seed=1),
        "deeplearning": lambda: H2ODeepLearningEstimator(hidden=[8], epochs=3, reproducible=True, seed=1),
    }
    families = {"binary": "binomial", "regression": "gaussian", "multiclass": "multinomial"}
    made: dict[tuple[str, str], tuple[Path, Path]] = {}
    types = dict.fromkeys(features, "real") | {"adjusted": "enum", "risk": "real", "segment": "enum"}
    with h2o_cluster():
        htrain = h2o.H2OFrame(train, column_types=types)
        href = h2o.H2OFrame(ref, column_types=types)
        for algo in H2O_ALGOS:
            for task in H2O_TASKS:
                est = (
                    H2OGeneralizedLinearEstimator(family=families[task], seed=1)
                    if algo == "glm"
                    else estimators[algo]()
                )
                est.train(x=features, y=targets[task], training_frame=htrain)
                mojo = Path(est.download_mojo(path=str(out)))
                mojo = mojo.rename(out / f"{algo}-{task}.zip")
                with warnings.catch_warnings():  # "install polars for a faster conversion"
                    warnings.simplefilter("ignore")
                    pred = est.predict(href).as_data_frame(use_multi_thread=False)
                if task == "regression":
                    expected = {"e": pred["predict"].to_numpy()}
                elif task == "binary":
                    expected = {"e": pred["1"].to_numpy() if "1" in pred else pred["p1"].to_numpy()}
                else:
                    expected = {f"e_{c}": pred[c].to_numpy() for c in SEGMENTS}
                table = ref[features].assign(y=ref[targets[task]])
                made[(algo, task)] = (mojo, pr.reference_csv(table, out / f"{algo}-{task}.csv", expected))
    return made


@pytest.mark.heavy  # an H2O cluster: not in `make check`
@pytest.mark.parametrize("algo", H2O_ALGOS)
def test_h2o_mojos_of_every_task_import_against_h2os_own_predictions(
    algo: str, h2o_mojos: dict[tuple[str, str], tuple[Path, Path]], tmp_path: Path
) -> None:
    for task in H2O_TASKS:
        mojo, csv = h2o_mojos[(algo, task)]
        expected = "e_" if task == "multiclass" else "e"
        m = import_model(
            ImportRequest(mojo, csv, "y", expected, f"{algo}-{task}"), tmp_path, log=lambda s: None
        ).manifest
        assert m["task"] == task, (algo, task)
        if task == "multiclass":
            assert m["classes"] == SEGMENTS
        assert m["expected"]["passed"] and m["expected"]["max_abs_diff"] < 1e-9 * max(1.0, 60.0), (algo, task)
        formats = _formats_within(m)
        in_ir = algo == "gbm" or (algo == "glm" and task != "multiclass")
        if in_ir:  # converted into the IR: every format, each held to genmodel's scores
            assert formats == {"ir", "native", "h2o-mojo", "onnx", "codegen-c", "pmml", "pfa"}, (algo, task)
        else:  # scored by h2o-genmodel only, and the manifest says why the others are absent
            assert formats == {"native", "h2o-mojo"}, (algo, task)
            assert "h2o-genmodel" in m["absent"]["onnx"] or "multinomial GLM" in m["absent"]["onnx"], m["absent"]
