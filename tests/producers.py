"""Foreign artifacts written the way their common producers write them, for the import tests (our own files: no
third-party test data).

`jpmml_xgboost_pmml` lays an XGBoost model out as the JPMML converters do (JPMML-XGBoost, which sklearn2pmml and the
Spark and R integrations also use): string categoricals one-hot encoded for XGBoost and tested in the trees as
`equal` / `notEqual` predicates on the string field, missing values through `defaultChild`, float32 numbers,
`x-mathContext="float"` on every model, the base margin as a `Target rescaleConstant` of the trees' sum, and
  binary      a `modelChain` of the trees' sum (an intermediate output) and a logit RegressionModel whose Output
              declares probability(0) and probability(1): the outputs live in the chain's LAST SEGMENT only
  regression  the sum MiningModel alone, no Output (pmml4s names its result predicted_<target>)
  multiclass  a modelChain of one sum per class and a softmax RegressionModel declaring probability(<class>)
`selectfirst_regression_pmml` is a Segmentation selectFirst whose segments each declare their own Output.

The expected scores of every file are the producer's own (XGBoost's predictions), not the evaluator's."""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

NS = "http://www.dmg.org/PMML-4_4"
EMPLOYMENT = ("Private", "SelfEmp", "Gov")
EDUCATION = ("HS", "College", "Bachelor", "Master")


def audit(n: int, seed: int) -> pd.DataFrame:
    """Audit-like rows: numbers with missing values (age, income, hours), string categoricals with missing values
    (employment, education), and three targets: `adjusted` (0/1), `risk` (a value), `segment` (three classes)."""
    rng = np.random.default_rng(seed)
    age = rng.integers(18, 80, n).astype(float)
    income = np.round(rng.gamma(2.0, 30_000.0, n), 2)
    hours = rng.integers(10, 70, n).astype(float)
    employment = np.array(EMPLOYMENT, dtype=object)[rng.choice(3, n, p=[0.6, 0.25, 0.15])]
    education = np.array(EDUCATION, dtype=object)[rng.choice(4, n, p=[0.3, 0.3, 0.25, 0.15])]
    z = (
        0.04 * (age - 45)
        + 0.00001 * (income - 60_000)
        + 0.03 * (hours - 40)
        + 0.8 * (employment == "SelfEmp")
        - 0.4 * (employment == "Gov")
        + 0.5 * (education == "Master")
    )
    frame = pd.DataFrame(
        {"age": age, "income": income, "hours": hours, "employment": employment, "education": education}
    )
    frame["adjusted"] = (rng.random(n) < 1 / (1 + np.exp(-z))).astype(int)
    frame["risk"] = np.round(50 + 12 * z + rng.normal(0, 3, n), 3)
    frame["segment"] = np.array(["low", "mid", "high"], dtype=object)[
        np.digitize(z + rng.normal(0, 0.5, n), [-0.5, 0.6])
    ]
    for col, rate in (("age", 0.05), ("income", 0.05), ("employment", 0.04), ("education", 0.03)):
        frame.loc[rng.random(n) < rate, col] = None
    return frame


@dataclass
class Column:
    """One XGBoost input column: a number, or the indicator of one category of a string field."""

    field: str
    category: str | None = None


def encode(frame: pd.DataFrame) -> tuple[np.ndarray, list[Column]]:
    """The rows as XGBoost takes them: numbers as they are, each category an indicator (NaN when the field is
    missing, so XGBoost sends it the default way, as PMML's defaultChild does)."""
    cols: list[Column] = [Column("age"), Column("income"), Column("hours")]
    cols += [Column("employment", c) for c in EMPLOYMENT] + [Column("education", c) for c in EDUCATION]
    X = np.empty((len(frame), len(cols)))
    for j, c in enumerate(cols):
        values = frame[c.field]
        if c.category is None:
            X[:, j] = pd.to_numeric(values).to_numpy(dtype=float)
        else:
            X[:, j] = np.where(values.isna(), np.nan, (values == c.category).astype(float))
    return X, cols


def f32(x: float) -> str:
    """A number as Java's Float.toString would write it: the shortest text of the float32."""
    return str(np.float32(x))


def _sub(parent: ET.Element, tag: str, **attrs: str) -> ET.Element:
    return ET.SubElement(parent, tag, attrs)


def _data_dictionary(root: ET.Element, target: str, target_values: list[str] | None) -> None:
    dd = _sub(root, "DataDictionary")
    if target_values is None:
        _sub(dd, "DataField", name=target, optype="continuous", dataType="float")
    else:
        tf = _sub(dd, "DataField", name=target, optype="categorical", dataType="string")
        for v in target_values:
            _sub(tf, "Value", value=v)
    for name in ("age", "income", "hours"):
        _sub(dd, "DataField", name=name, optype="continuous", dataType="float")
    for name, cats in (("employment", EMPLOYMENT), ("education", EDUCATION)):
        df = _sub(dd, "DataField", name=name, optype="categorical", dataType="string")
        for c in cats:
            _sub(df, "Value", value=c)


def _mining_schema(parent: ET.Element, target: str | None, fields: list[str]) -> None:
    ms = _sub(parent, "MiningSchema")
    if target is not None:
        _sub(ms, "MiningField", name=target, usageType="target")
    for f in fields:
        _sub(ms, "MiningField", name=f)


INPUTS = ["age", "income", "hours", "employment", "education"]


def _tree(parent: ET.Element, tree: dict[str, Any], cols: list[Column]) -> None:
    tm = _sub(parent, "TreeModel", functionName="regression", noTrueChildStrategy="returnLastPrediction",
              missingValueStrategy="defaultChild", splitCharacteristic="binarySplit")  # fmt: skip
    tm.set("x-mathContext", "float")
    _mining_schema(tm, None, INPUTS)
    left, right = tree["left_children"], tree["right_children"]
    cond, feat, dl = tree["split_conditions"], tree["split_indices"], tree["default_left"]

    def node(elem: ET.Element, i: int) -> None:
        if left[i] == -1:
            elem.set("score", f32(cond[i]))
            return
        c, t = cols[feat[i]], float(np.float32(cond[i]))
        elem.set("defaultChild", str(left[i] if dl[i] else right[i]))
        lnode = _sub(elem, "Node", id=str(left[i]))
        rnode = _sub(elem, "Node", id=str(right[i]))
        if c.category is None:
            _sub(lnode, "SimplePredicate", field=c.field, operator="lessThan", value=f32(t))
            _sub(rnode, "SimplePredicate", field=c.field, operator="greaterOrEqual", value=f32(t))
        elif 0 < t <= 1:  # an indicator (0 or 1) below t: "not this category" goes left
            _sub(lnode, "SimplePredicate", field=c.field, operator="notEqual", value=c.category)
            _sub(rnode, "SimplePredicate", field=c.field, operator="equal", value=c.category)
        else:  # every known value goes one way (t > 1: left, t <= 0: right); a missing one the default way
            known, other = (lnode, rnode) if t > 1 else (rnode, lnode)
            if (known is lnode) == bool(dl[i]):
                _sub(known, "True")
                _sub(other, "False")
            else:
                _sub(known, "SimplePredicate", field=c.field, operator="isNotMissing")
                _sub(other, "SimplePredicate", field=c.field, operator="isMissing")
        node(lnode, left[i])
        node(rnode, right[i])

    root = _sub(tm, "Node", id="0")
    _sub(root, "True")
    node(root, 0)


def _sum_model(parent: ET.Element, trees: list[dict[str, Any]], cols: list[Column], base: float,
               target: str | None, output: str | None) -> None:  # fmt: skip
    mm = _sub(parent, "MiningModel", functionName="regression")
    mm.set("x-mathContext", "float")
    _mining_schema(mm, target, INPUTS)
    if output is not None:
        out = _sub(mm, "Output")
        _sub(out, "OutputField", name=output, optype="continuous", dataType="float", isFinalResult="false")
    targets = _sub(mm, "Targets")
    _sub(targets, "Target", **({"field": target} if target else {}), rescaleConstant=f32(base))
    seg = _sub(mm, "Segmentation", multipleModelMethod="sum", missingPredictionTreatment="returnMissing")
    for i, t in enumerate(trees):
        s = _sub(seg, "Segment", id=str(i + 1))
        _sub(s, "True")
        _tree(s, t, cols)


def jpmml_xgboost_pmml(booster: Any, cols: list[Column], target: str, classes: list[str] | None, path: Path) -> None:
    """Write `booster` (binary:logistic, reg:squarederror or multi:softprob) as JPMML-XGBoost lays it out."""
    doc = json.loads(bytes(booster.save_raw("json")))
    learner = doc["learner"]
    objective = learner["objective"]["name"]
    trees = learner["gradient_booster"]["model"]["trees"]
    tree_info = learner["gradient_booster"]["model"]["tree_info"]
    bases = [float(v) for v in str(learner["learner_model_param"]["base_score"]).strip("[]").split(",")]
    root = ET.Element("PMML", {"xmlns": NS, "version": "4.4"})
    header = _sub(root, "Header")
    _sub(header, "Application", name="JPMML-XGBoost", version="1.8.0")
    _data_dictionary(root, target, classes)
    if objective.startswith("reg:"):
        _sum_model(root, trees, cols, bases[0], target, None)
    else:
        top = _sub(root, "MiningModel", functionName="classification", algorithmName="XGBoost (GBTree)")
        top.set("x-mathContext", "float")
        _mining_schema(top, target, INPUTS)
        chain = _sub(top, "Segmentation", multipleModelMethod="modelChain", missingPredictionTreatment="returnMissing")
        assert classes is not None
        k = 1 if objective == "binary:logistic" else len(classes)
        values = []
        for c in range(k):
            seg = _sub(chain, "Segment", id=str(c + 1))
            _sub(seg, "True")
            name = "xgbValue" if k == 1 else f"xgbValue({classes[c]})"
            values.append(name)
            base = -math.log(1 / bases[0] - 1) if k == 1 else bases[c]
            _sum_model(seg, [t for t, tc in zip(trees, tree_info, strict=True) if tc == c], cols, base, None, name)
        seg = _sub(chain, "Segment", id=str(k + 1))
        _sub(seg, "True")
        reg = _sub(seg, "RegressionModel", functionName="classification",
                   normalizationMethod="logit" if k == 1 else "softmax")  # fmt: skip
        reg.set("x-mathContext", "float")
        _mining_schema(reg, target, values)
        out = _sub(reg, "Output")  # the probabilities are declared here, in the chain's last segment only
        for c in classes:
            _sub(out, "OutputField", name=f"probability({c})", optype="continuous", dataType="float",
                 feature="probability", value=c)  # fmt: skip
        if k == 1:
            table = _sub(reg, "RegressionTable", intercept="0.0", targetCategory=classes[1])
            _sub(table, "NumericPredictor", name="xgbValue", coefficient="1.0")
            _sub(reg, "RegressionTable", intercept="0.0", targetCategory=classes[0])
        else:
            for c, name in zip(classes, values, strict=True):
                table = _sub(reg, "RegressionTable", intercept="0.0", targetCategory=c)
                _sub(table, "NumericPredictor", name=name, coefficient="1.0")
    ET.indent(root)
    path.write_bytes(ET.tostring(root, encoding="utf-8", xml_declaration=True))


def selectfirst_regression_pmml(path: Path, target: str = "risk") -> dict[str, tuple[float, dict[str, float]]]:
    """A Segmentation selectFirst of two linear regressions (by employment), each segment declaring its own Output
    field `predicted_risk`, the way KNIME or R's pmml package write segmented models. Returns each segment's
    (intercept, coefficients) so a test can compute the producer's scores."""
    segments = {
        "Gov": (40.0, {"age": 0.25, "hours": 0.1}),
        "*": (45.5, {"age": 0.125, "hours": 0.2}),
    }
    root = ET.Element("PMML", {"xmlns": NS, "version": "4.4"})
    _sub(_sub(root, "Header"), "Application", name="KNIME", version="5.2")
    _data_dictionary(root, target, None)
    top = _sub(root, "MiningModel", functionName="regression")
    _mining_schema(top, target, ["age", "hours", "employment"])
    seg_root = _sub(top, "Segmentation", multipleModelMethod="selectFirst")
    for i, (who, (intercept, coef)) in enumerate(segments.items()):
        seg = _sub(seg_root, "Segment", id=str(i + 1))
        if who == "*":
            _sub(seg, "True")
        else:
            _sub(seg, "SimplePredicate", field="employment", operator="equal", value=who)
        reg = _sub(seg, "RegressionModel", functionName="regression")
        _mining_schema(reg, target, list(coef))
        out = _sub(reg, "Output")
        _sub(
            out, "OutputField", name="predicted_risk", optype="continuous", dataType="double", feature="predictedValue"
        )
        table = _sub(reg, "RegressionTable", intercept=repr(intercept))
        for name, c in coef.items():
            _sub(table, "NumericPredictor", name=name, coefficient=repr(c))
    ET.indent(root)
    path.write_bytes(ET.tostring(root, encoding="utf-8", xml_declaration=True))
    return segments


def with_transformed_output(path: Path, name: str, factor: float) -> None:
    """Give a regression document (the sum MiningModel) an Output whose only final field is `name` =
    factor x the predicted value (the prediction itself is an intermediate field): a file whose outputs do not
    include a predicted value."""
    ET.register_namespace("", NS)
    tree = ET.parse(path)
    mm = tree.getroot().find(f"{{{NS}}}MiningModel")
    assert mm is not None
    out = ET.Element(f"{{{NS}}}Output")
    raw = ET.SubElement(out, f"{{{NS}}}OutputField", name="raw", optype="continuous", dataType="double",
                        feature="predictedValue", isFinalResult="false")  # fmt: skip
    assert raw is not None
    scaled = ET.SubElement(out, f"{{{NS}}}OutputField", name=name, optype="continuous", dataType="double",
                           feature="transformedValue")  # fmt: skip
    apply = ET.SubElement(scaled, f"{{{NS}}}Apply", function="*")
    ET.SubElement(apply, f"{{{NS}}}FieldRef", field="raw")
    ET.SubElement(apply, f"{{{NS}}}Constant", dataType="double").text = repr(factor)
    mm.insert(1, out)  # after MiningSchema
    tree.write(path, encoding="utf-8", xml_declaration=True)


def reference_csv(frame: pd.DataFrame, path: Path, expected: dict[str, np.ndarray]) -> Path:
    """The rows with the producer's scores as columns, numbers written exactly (repr), missing as empty cells."""
    out = frame.copy()
    for name, values in expected.items():
        out[name] = [repr(float(v)) for v in values]
    out.to_csv(path, index=False, na_rep="")
    return path
