"""`harness import`: a model somebody else trained becomes a bundle. A PMML file written by another tool (nyoka, from
a scikit-learn pipeline with a OneHotEncoder on string columns) with string categorical inputs and missing values
passes the parity gate against its producer's own scores; other kinds (skops, joblib behind --trust-pickle,
LightGBM text, ONNX, PFA, an H2O MOJO) are served by their own evaluators and, where they convert into the IR, get
every other format; bad input is one `error:` line, exit 2, and nothing left in artifacts/."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType
from typing import Any

import joblib
import numpy as np
import pandas as pd
import pytest

from adapters.bundle import Bundle
from adapters.registry import adapter_class
from adapters.schema import UNSEEN_CODE
from harness.datagen import generate
from harness.modelbuild.importer import ImportRequest, import_model
from tests.conftest import ROOT, run_cli

PRODUCER = ROOT / "scenarios" / "byom" / "make_nyoka_pmml.py"


def producer() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_nyoka_pmml", PRODUCER)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def nyoka(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Any]:
    """nyoka's PMML of a scikit-learn pipeline (strings one-hot encoded, missing numbers imputed), its reference
    table with the pipeline's own scores, and the pipeline."""
    return producer().make(tmp_path_factory.mktemp("nyoka"), rows=3000, reference_rows=400)  # type: ignore[no-any-return]


def last_line(text: str) -> str:
    return text.strip().splitlines()[-1]


def test_a_nyoka_pmml_with_strings_and_missing_values_passes_against_its_producer(
    nyoka: tuple[Path, Path, Any], tmp_path: Path
) -> None:
    pmml, csv, _ = nyoka
    r = run_cli("import", str(pmml), "--reference", str(csv), "--label", "label", "--expected", "expected",
                "--name", "nyoka", "--artifacts", str(tmp_path))  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    root = Path(last_line(r.stdout))
    assert root.parent == tmp_path / "nyoka" and not list(tmp_path.glob("*/*.partial"))
    b = Bundle.open(root)
    m = b.manifest
    types = {f["name"]: f for f in m["features"]}
    assert (
        types["merchant_category"]["type"] == "categorical" and "gambling" in types["merchant_category"]["categories"]
    )
    assert types["channel"]["categories"] == ["online", "terminal"] and types["channel"]["unseen"] == "invalid"
    assert types["amount_eur"]["type"] == "number"
    assert m["ignored_columns"] == ["transaction_id"]
    # the PMML only knows the strings ("gambling" in NormDiscrete): its scores equal the pipeline's only because
    # the adapter hands pmml4s the strings, on rows with missing values too
    assert m["expected"]["passed"] and m["expected"]["rows"] == 400 and m["expected"]["max_abs_diff"] <= 1e-9
    assert m["data"]["holdout_rows_with_nan"] > 0
    assert set(m["formats"]) == {"pmml"} and m["formats"]["pmml"]["parity"]["passed"]
    assert {"native", "onnx", "codegen-c", "pfa", "h2o-mojo"} <= set(m["absent"])
    assert "not convert a PMML document" in m["absent"]["onnx"]
    X, y, p = b.reference()
    assert set(np.unique(y).tolist()) == {0, 1}
    with adapter_class("pmml").load(b) as a:
        X1 = X[:2].copy()
        j = b.feature_names.index("merchant_category")
        X1[0, j] = types["merchant_category"]["categories"].index("gambling")
        X1[1, j] = UNSEEN_CODE  # a string the model does not list: PMML's returnInvalid gives no score
        got = a.predict(X1)
    assert got[0] != p[0] and np.isnan(got[1])
    # imported again: a cache hit
    again = run_cli("import", str(pmml), "--reference", str(csv), "--label", "label", "--expected", "expected",
                    "--name", "nyoka", "--artifacts", str(tmp_path))  # fmt: skip
    assert again.returncode == 0 and last_line(again.stdout) == str(root) and "cache hit" in again.stderr


def test_a_missing_category_the_pmml_cannot_score_fails_the_gate(nyoka: tuple[Path, Path, Any], tmp_path: Path) -> None:
    pmml, csv, pipe = nyoka
    ref = pd.read_csv(csv)
    ref.loc[3, "merchant_category"] = np.nan  # the pipeline's encoder gives zeros; nyoka's PMML gives no score
    ref["expected"] = pipe.predict_proba(ref.drop(columns=["transaction_id", "label", "expected"]))[:, 1]
    ref.to_csv(tmp_path / "ref.csv", index=False)
    arts = tmp_path / "artifacts"
    r = run_cli("import", str(pmml), "--reference", str(tmp_path / "ref.csv"), "--expected", "expected",
                "--artifacts", str(arts))  # fmt: skip
    assert r.returncode == 2
    assert r.stderr.count("error:") == 1
    assert "differs from the expected scores at reference row 3: nan vs expected" in r.stderr.replace("\n", " ")
    assert not arts.exists() or not any(arts.iterdir())


def _bad(tmp_path: Path, *args: str) -> str:
    arts = tmp_path / "arts"
    r = run_cli("import", *args, "--artifacts", str(arts))
    assert r.returncode == 2, (r.returncode, r.stderr[-1500:])
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert lines[0].startswith("error:") and "Traceback" not in r.stderr, r.stderr
    assert not arts.exists() or not any(arts.iterdir()), list(arts.rglob("*"))
    return " ".join(r.stderr.split())


def test_bad_input_is_one_error_line_and_exit_2(nyoka: tuple[Path, Path, Any], tmp_path: Path) -> None:
    pmml, csv, pipe = nyoka
    garbage = tmp_path / "garbage.pmml"
    garbage.write_text("this is not XML")
    assert "is not a PMML document: XML does not parse" in _bad(tmp_path, str(garbage), "--reference", str(csv))

    series = tmp_path / "series.pmml"
    series.write_text('<PMML xmlns="http://www.dmg.org/PMML-4_4" version="4.4"><DataDictionary/>'
                      '<TimeSeriesModel functionName="timeSeries"/></PMML>')  # fmt: skip
    msg = _bad(tmp_path, str(series), "--reference", str(csv))
    assert "PMML model type TimeSeriesModel is not supported by the PMML evaluator" in msg

    ref = pd.read_csv(csv)
    ref.drop(columns=["channel"]).to_csv(tmp_path / "no_channel.csv", index=False)
    msg = _bad(tmp_path, str(pmml), "--reference", str(tmp_path / "no_channel.csv"))
    assert "lacks feature 'channel' the model needs" in msg

    wrong = ref.astype({"amount_eur": object})
    wrong.loc[2, "amount_eur"] = "12,50 EUR"
    wrong.to_csv(tmp_path / "wrong.csv", index=False)
    msg = _bad(tmp_path, str(pmml), "--reference", str(tmp_path / "wrong.csv"))
    assert "column 'amount_eur' must be numeric, row 3 has '12,50 EUR'" in msg

    assert "--label 'fraud' is not a column" in _bad(tmp_path, str(pmml), "--reference", str(csv), "--label", "fraud")

    from sklearn.linear_model import LogisticRegression

    pickled = tmp_path / "model.joblib"
    joblib.dump(LogisticRegression().fit([[0.0], [1.0]], [0, 1]), pickled)
    msg = _bad(tmp_path, str(pickled), "--reference", str(csv))
    assert "runs code when loaded" in msg and "--trust-pickle" in msg


# ---- other kinds -----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def numeric() -> tuple[pd.DataFrame, np.ndarray]:
    X, y, names = generate("fraud", 2500, 9, positive_rate=0.05)
    return pd.DataFrame(X, columns=names), y


def _reference(tmp_path: Path, frame: pd.DataFrame, y: np.ndarray, expected: np.ndarray) -> Path:
    ref = frame.copy()
    ref["label"] = y
    ref["expected"] = expected
    ref.to_csv(tmp_path / "ref.csv", index=False)
    return tmp_path / "ref.csv"


def _formats_within(root: Path, tol: float = 1e-9) -> dict[str, Any]:
    m = Bundle.open(root).manifest
    for fmt, info in m["formats"].items():
        par = info["parity"]
        assert par["passed"], (fmt, par)
        if fmt != "onnx" or info.get("input_dtype") == "float64":
            assert par["max_abs_diff"] <= tol, (fmt, par)
    return m


def test_a_pickled_pipeline_imports_with_trust_pickle_and_gets_every_format(
    numeric: tuple[pd.DataFrame, np.ndarray], tmp_path: Path
) -> None:
    from harness.modelbuild.train_sklearn import train

    frame, y = numeric
    model = train("logistic_regression", {}, frame.to_numpy()[:2000], y[:2000], list(frame.columns), 1).model
    joblib.dump(model, tmp_path / "lr.joblib")
    ref = _reference(tmp_path, frame.iloc[2000:], y[2000:], model.predict_proba(frame.to_numpy()[2000:])[:, 1])
    r = run_cli("import", str(tmp_path / "lr.joblib"), "--reference", str(ref), "--label", "label",
                "--expected", "expected", "--trust-pickle", "--artifacts", str(tmp_path / "a"))  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    m = _formats_within(Path(last_line(r.stdout)))
    assert set(m["formats"]) == {"native", "ir", "onnx", "codegen-c", "pmml", "pfa"}
    assert m["formats"]["native"]["serialization"] == "joblib" and m["expected"]["max_abs_diff"] <= 1e-12


def test_a_skops_pipeline_with_string_columns_is_served_natively(tmp_path: Path) -> None:
    import skops.io as sio
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    frame, y = producer().fraud_frame(2500, 4)
    frame.loc[::17, "merchant_category"] = np.nan  # the encoder has its own rule for a missing category
    enc = ColumnTransformer([("cat", OneHotEncoder(handle_unknown="ignore"), ["merchant_category", "channel"])],
                            remainder="passthrough")  # fmt: skip
    pipe = Pipeline([("enc", enc), ("gbm", HistGradientBoostingClassifier(max_iter=20, random_state=0))])
    pipe.fit(frame.iloc[:2000], y[:2000])
    sio.dump(pipe, tmp_path / "pipe.skops")
    ref = _reference(tmp_path, frame.iloc[2000:], y[2000:], pipe.predict_proba(frame.iloc[2000:])[:, 1])
    res = import_model(ImportRequest(tmp_path / "pipe.skops", ref, "label", "expected"), tmp_path / "a", log=print)
    m = res.manifest
    assert set(m["formats"]) == {"native"} and m["formats"]["native"]["input"] == "dataframe"
    assert m["expected"]["max_abs_diff"] <= 1e-12 and m["data"]["holdout_rows_with_nan"] > 0
    assert [f["name"] for f in m["features"] if f["type"] == "categorical"] == ["merchant_category", "channel"]
    assert "no IR converter" in m["absent"]["onnx"]
    with adapter_class("native").load(res.bundle_dir) as a:  # an unseen string: the encoder's rule (ignore)
        X, _, p = Bundle.open(res.bundle_dir).reference()
        X1 = X[:1].copy()
        X1[0, m["feature_names"].index("merchant_category")] = UNSEEN_CODE
        row = frame.iloc[2000:2001].copy()
        row["merchant_category"] = "space_travel"
        assert a.predict(X1)[0] == pytest.approx(pipe.predict_proba(row)[0, 1], abs=1e-12)


def test_lightgbm_onnx_and_pfa_files_import(numeric: tuple[pd.DataFrame, np.ndarray], tmp_path: Path) -> None:
    import lightgbm as lgb
    import skl2onnx
    from skl2onnx.common.data_types import FloatTensorType

    from harness.modelbuild import ir as ir_mod
    from harness.modelbuild.export_pfa import write_pfa
    from harness.modelbuild.train_lightgbm import train

    frame, y = numeric
    Xtr, Xref = frame.to_numpy()[:2000], frame.to_numpy()[2000:]
    trained = train("gbm", {"n_estimators": 15, "num_leaves": 7}, Xtr, y[:2000], list(frame.columns), 1)
    trained.model.save_model(str(tmp_path / "model.txt"))
    ref = _reference(tmp_path, frame.iloc[2000:], y[2000:], trained.predict(Xref))
    res = import_model(ImportRequest(tmp_path / "model.txt", ref, "label", "expected"), tmp_path / "a", log=print)
    m = _formats_within(res.bundle_dir)
    assert set(m["formats"]) == {"native", "ir", "onnx", "codegen-c", "pmml", "pfa"} and m["expected"]["passed"]
    assert isinstance(lgb.Booster(model_file=str(tmp_path / "model.txt")), lgb.Booster)

    # ONNX (skl2onnx, float32) of a scikit-learn model: served by onnxruntime, names from the table
    from harness.modelbuild.train_sklearn import train as train_sk

    sk = train_sk("logistic_regression", {}, Xtr, y[:2000], list(frame.columns), 1).model
    onx = skl2onnx.convert_sklearn(sk, initial_types=[("x", FloatTensorType([None, Xtr.shape[1]]))],
                                   options={id(sk.steps[-1][1]): {"zipmap": False}})  # fmt: skip
    (tmp_path / "lr.onnx").write_bytes(onx.SerializeToString())
    ref = _reference(tmp_path, frame.iloc[2000:], y[2000:], sk.predict_proba(Xref)[:, 1])
    res = import_model(ImportRequest(tmp_path / "lr.onnx", ref, "label", "expected"), tmp_path / "a", log=print)
    m = res.manifest
    assert set(m["formats"]) == {"onnx"} and m["feature_names"] == list(frame.columns)
    assert m["expected"]["tolerance"] == 1e-5 and m["expected"]["max_abs_diff"] < 1e-5

    # PFA: the document names its features in its metadata
    write_pfa(trained.ir, tmp_path / "model.pfa")
    ref = _reference(tmp_path, frame.iloc[2000:], y[2000:], ir_mod.predict(trained.ir, Xref))
    res = import_model(ImportRequest(tmp_path / "model.pfa", ref, None, "expected"), tmp_path / "a", log=print)
    assert set(res.manifest["formats"]) == {"pfa"} and res.manifest["expected"]["max_abs_diff"] <= 1e-12


def test_an_h2o_mojo_imports_with_its_own_feature_names(tmp_path: Path) -> None:
    mojo = ROOT / "contestants" / "kstreams_mojo" / "src" / "test" / "resources" / "tiny_gbm.zip"
    rng = np.random.default_rng(7)
    rows = np.vstack([[[0.5, -1.0, 2.0], [1.0, 1.0, -1.0], [np.nan, 0.3, 0.1]], rng.normal(size=(60, 3))])
    frame = pd.DataFrame({"f3": rows[:, 2], "f1": rows[:, 0], "f2": rows[:, 1], "extra": 1.0})  # other order
    frame.to_csv(tmp_path / "ref.csv", index=False)
    res = import_model(ImportRequest(mojo, tmp_path / "ref.csv"), tmp_path / "a", log=print)
    m = _formats_within(res.bundle_dir)
    assert m["feature_names"] == ["f1", "f2", "f3"] and m["ignored_columns"] == ["extra"]
    assert {"native", "h2o-mojo", "ir", "onnx", "codegen-c", "pmml", "pfa"} == set(m["formats"])
    _, _, p = Bundle.open(res.bundle_dir).reference()
    # H2O's own predict() on these three rows (contestants/kstreams_mojo/src/test/resources/README.md)
    assert np.allclose(p[:3], [0.331913, 0.664910, 0.397656], atol=1e-6)
    assert json.loads((res.bundle_dir / "model.ir.json").read_text())["kind"] == "tree_ensemble"


def test_a_lightgbm_model_with_pandas_categories_gets_every_format_on_the_codes(tmp_path: Path) -> None:
    """LightGBM's categorical splits convert into the IR: ONNX (BRANCH_MEMBER) and C take the category codes, PMML
    (SimpleSetPredicate) the strings, PFA the codes (a.contains); an unseen category is missing, as in LightGBM."""
    import lightgbm as lgb

    rng = np.random.default_rng(0)
    cats = ["AT", "BE", "CH", "DE", "ES", "FR", "GB", "IT", "NL", "US"]
    n = 4000
    train = pd.DataFrame({"amount": rng.gamma(2, 50, n), "country": pd.Categorical(rng.choice(cats, n))})
    risky = train["country"].isin(["US", "GB", "ES"])
    y = (rng.random(n) < 1 / (1 + np.exp(-(0.02 * (train["amount"] - 100) + 1.5 * risky)))).astype(int)
    booster = lgb.train({"objective": "binary", "verbose": -1, "num_leaves": 15, "min_data_per_group": 5,
                         "cat_smooth": 1, "max_cat_to_onehot": 2}, lgb.Dataset(train, y), 40)  # fmt: skip
    booster.save_model(str(tmp_path / "model.txt"))
    ref = pd.DataFrame({"amount": rng.gamma(2, 50, 400), "country": rng.choice([*cats, "XX"], 400).astype(object)})
    ref.loc[::9, "amount"] = np.nan
    ref.loc[4::11, "country"] = np.nan
    # LightGBM's own pandas path: an unseen category ("XX") becomes missing
    as_pandas = ref.assign(country=pd.Categorical(ref["country"].where(ref["country"] != "XX"), categories=cats))
    ref["expected"] = booster.predict(as_pandas)
    ref.to_csv(tmp_path / "ref.csv", index=False)
    res = import_model(ImportRequest(tmp_path / "model.txt", tmp_path / "ref.csv", None, "expected"), tmp_path / "a")
    m = _formats_within(res.bundle_dir)
    assert m["features"][1] == {"name": "country", "type": "categorical", "categories": cats, "unseen": "missing"}
    assert m["expected"]["rows"] == 400 and m["expected"]["max_abs_diff"] <= 1e-12
    assert set(m["formats"]) == {"native", "ir", "onnx", "codegen-c", "pmml", "pfa"}
    ir = json.loads((res.bundle_dir / "model.ir.json").read_text())
    assert ir["feature_categories"] == {"country": cats}
    assert sum(any(t["cat_left"]) for t in ir["trees"]) >= 10  # the model does split on the categories
    assert 'SimpleSetPredicate field="country"' in (res.bundle_dir / "model.pmml").read_text()


def test_a_pfa_document_with_a_record_of_named_fields_takes_strings(tmp_path: Path) -> None:
    from adapters.titus_compat import pfa_engine_class

    doc = {  # as PFA producers write them: a record input, a string field, an enum field, nullable numbers
        "name": "fraud_record_lr",
        "input": {"type": "record", "name": "Txn", "fields": [
            {"name": "amount", "type": ["null", "double"]},
            {"name": "channel", "type": ["null", "string"]},
            {"name": "tier", "type": {"type": "enum", "name": "Tier", "symbols": ["basic", "gold"]}}]},
        "output": "double",
        "cells": {"coef": {"type": {"type": "map", "values": "double"}, "init": {"online": 1.2, "terminal": -0.4}}},
        "action": [
            {"let": {"a": {"ifnotnull": {"x": "input.amount"}, "then": "x", "else": 50.0}}},
            {"let": {"c": {"ifnotnull": {"ch": "input.channel"}, "else": 0.0, "then": {
                "if": {"map.containsKey": [{"cell": "coef"}, "ch"]}, "then": {"cell": "coef", "path": ["ch"]},
                "else": 0.0}}}},
            {"let": {"t": {"if": {"==": [{"enum.toString": ["input.tier"]}, {"string": "gold"}]},
                           "then": 0.7, "else": 0.0}}},
            {"m.link.logit": [{"+": [{"+": [{"*": [0.01, "a"]}, "c"]}, {"-": ["t", 2.0]}]}]},
        ],
    }  # fmt: skip
    (tmp_path / "model.pfa").write_text(json.dumps(doc))
    engine = pfa_engine_class().fromJson(json.dumps(doc))[0]
    rng = np.random.default_rng(1)
    rows = [{"amount": None if i % 7 == 0 else float(rng.gamma(2, 50)),
             "channel": None if i % 11 == 0 else str(rng.choice(["online", "terminal", "phone"])),
             "tier": str(rng.choice(["basic", "gold"]))} for i in range(60)]  # fmt: skip
    ref = pd.DataFrame(rows).assign(expected=[engine.action(r) for r in rows])
    ref.to_csv(tmp_path / "ref.csv", index=False)
    res = import_model(ImportRequest(tmp_path / "model.pfa", tmp_path / "ref.csv", None, "expected"), tmp_path / "a")
    m = res.manifest
    assert [f["type"] for f in m["features"]] == ["number", "categorical", "categorical"]
    assert m["features"][2]["categories"] == ["basic", "gold"] and m["features"][2]["unseen"] == "invalid"
    assert m["expected"]["rows"] == 60 and m["expected"]["max_abs_diff"] == 0.0


def test_an_onnx_graph_with_one_input_per_column_takes_strings(tmp_path: Path) -> None:
    import skl2onnx
    from skl2onnx.common.data_types import FloatTensorType, StringTensorType
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    frame, y = producer().fraud_frame(2000, 6)
    frame = frame[["amount_eur", "hour_of_day", "merchant_category", "channel"]].copy()
    frame.loc[::13, "merchant_category"] = np.nan  # a category of its own: "nan" in skl2onnx's graph
    enc = ColumnTransformer([("cat", OneHotEncoder(handle_unknown="ignore"), ["merchant_category", "channel"])],
                            remainder="passthrough")  # fmt: skip
    pipe = Pipeline([("enc", enc), ("lr", LogisticRegression(max_iter=500))]).fit(frame.iloc[:1500], y[:1500])
    types = [(c, StringTensorType([None, 1]) if c in ("merchant_category", "channel") else FloatTensorType([None, 1]))
             for c in frame.columns]  # fmt: skip
    onx = skl2onnx.convert_sklearn(pipe, initial_types=types, options={id(pipe.steps[-1][1]): {"zipmap": False}})
    (tmp_path / "pipe.onnx").write_bytes(onx.SerializeToString())
    ref = _reference(tmp_path, frame.iloc[1500:], y[1500:], pipe.predict_proba(frame.iloc[1500:])[:, 1])
    res = import_model(ImportRequest(tmp_path / "pipe.onnx", ref, "label", "expected"), tmp_path / "a", log=print)
    m = res.manifest
    assert m["feature_names"] == list(frame.columns) and m["formats"]["onnx"]["inputs"] == list(frame.columns)
    assert m["features"][2]["type"] == "categorical" and "gambling" in m["features"][2]["categories"]
    assert m["expected"]["rows"] == 500 and m["expected"]["max_abs_diff"] <= 1e-5  # a float32 graph
    assert m["data"]["holdout_rows_with_nan"] > 0


# A GLM in the exact style R's `pmml` package writes for glm(family = binomial) with factors (GeneralRegressionModel,
# treatment contrasts in a PPMatrix, invalidValueTreatment on every MiningField), with the missingValueReplacement
# attributes its addMSAttributes() adds. R is not on this machine: the expected scores are R's formula for
# predict(type = "response") with these coefficients, plogis(b0 + b1 amount + b_channel + b_mcc), computed in numpy.
R_GLM_PMML = """<?xml version="1.0"?>
<PMML version="4.4.1" xmlns="http://www.dmg.org/PMML-4_4" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
 <Header copyright="Copyright (c) 2026 analyst" description="Generalized Linear Regression Model">
  <Extension name="user" value="analyst" extender="SoftwareAG PMML Generator"/>
  <Application name="SoftwareAG PMML Generator" version="2.5.2"/>
  <Timestamp>2026-11-30 17:02:11.214</Timestamp>
 </Header>
 <DataDictionary numberOfFields="4">
  <DataField name="fraud" optype="categorical" dataType="string">
   <Value value="0"/>
   <Value value="1"/>
  </DataField>
  <DataField name="amount" optype="continuous" dataType="double"/>
  <DataField name="channel" optype="categorical" dataType="string">
   <Value value="online"/>
   <Value value="terminal"/>
  </DataField>
  <DataField name="mcc" optype="categorical" dataType="string">
   <Value value="gambling"/>
   <Value value="grocery"/>
   <Value value="travel"/>
  </DataField>
 </DataDictionary>
 <GeneralRegressionModel modelName="General_Regression_Model" modelType="generalizedLinear"
   functionName="classification" algorithmName="glm" distribution="binomial" linkFunction="logit"
   targetReferenceCategory="0">
  <MiningSchema>
   <MiningField name="fraud" usageType="predicted" invalidValueTreatment="returnInvalid"/>
   <MiningField name="amount" usageType="active" invalidValueTreatment="returnInvalid" missingValueReplacement="64.25"/>
   <MiningField name="channel" usageType="active" invalidValueTreatment="returnInvalid"
    missingValueReplacement="terminal"/>
   <MiningField name="mcc" usageType="active" invalidValueTreatment="asMissing" missingValueReplacement="grocery"/>
  </MiningSchema>
  <Output>
   <OutputField name="Predicted_fraud" optype="categorical" dataType="string" feature="predictedValue"/>
   <OutputField name="Probability_1" optype="continuous" dataType="double" feature="probability" value="1"/>
   <OutputField name="Probability_0" optype="continuous" dataType="double" feature="probability" value="0"/>
  </Output>
  <ParameterList>
   <Parameter name="p0" label="(Intercept)"/>
   <Parameter name="p1" label="amount"/>
   <Parameter name="p2" label="channelterminal"/>
   <Parameter name="p3" label="mccgrocery"/>
   <Parameter name="p4" label="mcctravel"/>
  </ParameterList>
  <FactorList>
   <Predictor name="channel"/>
   <Predictor name="mcc"/>
  </FactorList>
  <CovariateList>
   <Predictor name="amount"/>
  </CovariateList>
  <PPMatrix>
   <PPCell value="1" predictorName="amount" parameterName="p1"/>
   <PPCell value="terminal" predictorName="channel" parameterName="p2"/>
   <PPCell value="grocery" predictorName="mcc" parameterName="p3"/>
   <PPCell value="travel" predictorName="mcc" parameterName="p4"/>
  </PPMatrix>
  <ParamMatrix>
   <PCell targetCategory="1" parameterName="p0" df="1" beta="-3.10458213"/>
   <PCell targetCategory="1" parameterName="p1" df="1" beta="0.0123847"/>
   <PCell targetCategory="1" parameterName="p2" df="1" beta="-1.40127655"/>
   <PCell targetCategory="1" parameterName="p3" df="1" beta="-2.2089301"/>
   <PCell targetCategory="1" parameterName="p4" df="1" beta="0.35520981"/>
  </ParamMatrix>
 </GeneralRegressionModel>
</PMML>
"""


def test_a_glm_in_the_style_of_rs_pmml_package_follows_its_missing_and_invalid_rules(tmp_path: Path) -> None:
    (tmp_path / "glm.pmml").write_text(R_GLM_PMML)
    rng = np.random.default_rng(3)
    n = 200
    ref = pd.DataFrame({
        "amount": np.round(rng.gamma(2, 40, n), 2),
        "channel": rng.choice(["online", "terminal"], n).astype(object),
        "mcc": rng.choice(["gambling", "grocery", "travel"], n).astype(object),
    })  # fmt: skip
    ref.loc[::10, "amount"] = np.nan  # -> 64.25
    ref.loc[5::15, "channel"] = np.nan  # -> "terminal"
    ref.loc[7::20, "mcc"] = "casino"  # not a level: asMissing, then the replacement "grocery"
    ref.loc[199, "channel"] = "phone"  # not a level: returnInvalid, the row cannot be scored
    amount = ref["amount"].fillna(64.25)
    channel = ref["channel"].fillna("terminal")
    mcc = ref["mcc"].where(ref["mcc"].isin(["gambling", "grocery", "travel"]), "grocery")
    eta = (-3.10458213 + 0.0123847 * amount - 1.40127655 * (channel == "terminal")
           - 2.2089301 * (mcc == "grocery") + 0.35520981 * (mcc == "travel"))  # fmt: skip
    ref["expected"] = 1.0 / (1.0 + np.exp(-eta))
    ref.to_csv(tmp_path / "ref.csv", index=False)
    res = import_model(ImportRequest(tmp_path / "glm.pmml", tmp_path / "ref.csv", None, "expected"), tmp_path / "a")
    m = res.manifest
    assert m["formats"]["pmml"]["output_field"] == "Probability_1"
    rules = {f["name"]: f.get("unseen") for f in m["features"]}
    assert rules == {"amount": None, "channel": "invalid", "mcc": "missing"}
    assert (
        m["data"]["rows_left_out_invalid"] == 1
        and "unseen category 'phone'" in m["data"]["rows_left_out_invalid_examples"][0]
    )
    assert m["expected"]["rows"] == 199 and m["expected"]["max_abs_diff"] <= 1e-12


def test_a_scenario_names_either_a_bundle_or_data_to_train_on(tmp_path: Path) -> None:
    from pydantic import ValidationError

    from harness.modelbuild.errors import BuildError
    from harness.modelbuild.pipeline import build
    from harness.scenario import Scenario

    with pytest.raises(ValidationError, match="exactly one of 'dataset'"):
        Scenario.model_validate({"name": "x"})
    with pytest.raises(ValidationError, match="exactly one of 'dataset'"):
        Scenario.model_validate({"name": "x", "bundle": "b", "dataset": {"generator": "fraud"}})
    with pytest.raises(ValidationError, match="'model' does not go with 'bundle'"):
        Scenario.model_validate({"name": "x", "bundle": "b", "model": {"trainer": "xgboost"}})
    with pytest.raises(BuildError, match="is not a bundle folder nor a folder of bundles"):
        build(Scenario.model_validate({"name": "x", "bundle": str(tmp_path)}), log=lambda m: None)
