"""One reader per artifact kind `harness import` takes: what the file is, how the bundle serves it, what features it
declares, and whether it converts into the IR (from which every other format is derived).

    kind        file                              served as (its own evaluator)      IR
    lightgbm    LightGBM model text                native (LightGBM)                  train_lightgbm.booster_to_ir
    xgboost     XGBoost JSON / UBJSON             native (XGBoost)                   train_xgboost.booster_json_to_ir
    sklearn     skops (.skops), or joblib/pickle  native (scikit-learn)              HistGradientBoosting, the LR and
                only with --trust-pickle                                             MLP pipelines of train_sklearn
    h2o-mojo    H2O MOJO zip                      native + h2o-mojo (h2o-genmodel)   mojo_reader.mojo_to_ir (GBM, GLM)
    onnx        ONNX                              onnx (onnxruntime)                 none
    pmml        PMML 4.x                          pmml (pypmml)                      none
    pfa         PFA document (JSON)               pfa (titus2)                       none

ONNX, PMML and PFA documents are graphs or programs in their own languages: nothing here turns them back into
trees or coefficients, so their bundles hold the one format (the manifest's "absent" says why for the others).
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from adapters.schema import Feature
from harness.modelbuild.errors import ImportInputError
from harness.modelbuild.ir import ModelIR

KINDS = ("lightgbm", "xgboost", "sklearn", "h2o-mojo", "onnx", "pmml", "pfa")
NO_IR = "{kind} is served as is: the harness does not convert a {what} back into trees or coefficients"


@dataclass
class Artifact:
    """A user's model file, read: how to serve it and what it declares."""

    kind: str
    flavor: str  # the parity gate's name for it, e.g. "xgboost", "pmml"
    primary: str  # the bundle format that is the artifact's own evaluator
    files: dict[str, tuple[str, bytes, dict[str, Any]]]  # format -> (file name, bytes, manifest extras)
    declared: list[Feature] | None = None  # names, types and order, when the artifact declares them
    n_features: int | None = None  # when it only knows how many
    to_ir: Callable[[list[str]], ModelIR] | None = None  # raises ValueError when the model does not convert
    no_ir_reason: str = ""
    native_tolerance: float | None = None
    expected_tolerance: float = 1e-9
    expected_why: str = "the artifact's own evaluator computes in float64"
    algorithm: str = ""
    info: dict[str, Any] = field(default_factory=dict)
    sklearn_model: Any = None  # a scikit-learn estimator, for skl2onnx
    undeclared_categories: list[str] = field(default_factory=list)  # string inputs whose categories the table gives


def detect_kind(path: Path, data: bytes) -> str:
    """The artifact's kind from its name and first bytes."""
    suffix = path.suffix.lower()
    head = data[:4096].lstrip()
    if suffix in (".pmml", ".xml") or head.startswith(b"<?xml") or head.startswith(b"<PMML"):
        return "pmml"
    if suffix == ".onnx":
        return "onnx"
    if suffix == ".skops":
        return "sklearn"
    if suffix in (".joblib", ".pkl", ".pickle"):
        return "pickle"
    if suffix == ".ubj":
        return "xgboost"
    if suffix == ".zip" or data[:2] == b"PK":
        return "h2o-mojo"
    if head.startswith(b"{"):
        return "xgboost" if b'"learner"' in data[:65536] else "pfa"
    if head.startswith(b"tree\n") or b"\nversion=v" in data[:4096]:
        return "lightgbm"
    raise ImportInputError(
        f"{path}: cannot tell what kind of model this is; give a file named *.pmml, *.onnx, *.pfa.json / *.pfa, "
        "*.json / *.ubj (XGBoost), *.txt (LightGBM), *.zip (H2O MOJO), *.skops, or *.joblib / *.pkl"
    )


def read_artifact(path: Path, trust_pickle: bool = False) -> Artifact:
    if not path.is_file():
        raise ImportInputError(f"artifact {path} does not exist")
    data = path.read_bytes()
    kind = detect_kind(path, data)
    if kind == "pickle" and not trust_pickle:
        raise ImportInputError(
            f"{path} is a joblib/pickle file, which runs code when loaded: save the model with skops "
            "(skops.io.dump) or, if you trust this file, pass --trust-pickle"
        )
    readers: dict[str, Callable[[Path, bytes], Artifact]] = {
        "pmml": read_pmml,
        "onnx": read_onnx,
        "pfa": read_pfa,
        "xgboost": read_xgboost,
        "lightgbm": read_lightgbm,
        "h2o-mojo": read_mojo,
        "sklearn": read_skops,
        "pickle": read_pickle,
    }
    return readers[kind](path, data)


# ---- open standards: served as they are -------------------------------------------------------------------


def read_pmml(path: Path, data: bytes) -> Artifact:
    from harness.modelbuild.pmml_schema import read_pmml_inputs

    inputs = read_pmml_inputs(data, str(path))
    entry: dict[str, Any] = {"pmml_version": inputs.version, "producer": inputs.application}
    if inputs.function_name == "classification":
        pos = inputs.positive_class()
        if pos is None:
            raise ImportInputError(
                f"{path}: cannot tell the positive class of target {inputs.target!r} (values: {inputs.target_values})"
            )
        explicit = [n for n, feature, value in inputs.output_fields if feature == "probability" and value == pos]
        entry |= {"positive_class": pos, "output_field": explicit[0] if explicit else f"probability_{pos}"}
    return Artifact(
        kind="pmml",
        flavor="pmml",
        primary="pmml",
        files={"pmml": ("model.pmml", data, entry)},
        declared=inputs.features,
        no_ir_reason=NO_IR.format(kind="PMML", what="PMML document"),
        expected_why="pmml4s evaluates in float64 the numbers as the producer wrote them",
        algorithm=inputs.model_type,
        info={"producer": inputs.application, "pmml_version": inputs.version},
        undeclared_categories=inputs.undeclared_categories,
    )


def read_onnx(path: Path, data: bytes) -> Artifact:
    import onnx

    try:
        model = onnx.load_model_from_string(data)
        onnx.checker.check_model(model)
    except Exception as e:  # onnx raises DecodeError, ValidationError, ...
        raise ImportInputError(f"{path} is not a valid ONNX model: {str(e).splitlines()[0]}") from None
    inits = {i.name for i in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in inits]
    output, column = _onnx_output(model, path)
    if len(inputs) > 1:
        declared, undeclared, f32 = _onnx_named_inputs(inputs, path)
        n_features = None
        where: dict[str, Any] = {"inputs": [i.name for i in inputs]}
    else:
        tt = inputs[0].type.tensor_type if inputs else None
        dims = [d.dim_value if d.HasField("dim_value") else None for d in tt.shape.dim] if tt else []
        if tt is None or tt.elem_type not in (onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE) or len(dims) != 2:
            raise ImportInputError(f"{path}: the ONNX input must be a 2-D float or double tensor (rows x features), "
                                   "or one input per feature")  # fmt: skip
        declared, undeclared, f32, n_features = None, [], tt.elem_type == onnx.TensorProto.FLOAT, dims[1]
        where = {"input_name": inputs[0].name}
    extras = {
        **where,
        "input_dtype": "float32" if f32 else "float64",
        "output_name": output,
        "output_column": column,
        "producer": f"{model.producer_name} {model.producer_version}".strip(),
        "tolerance": {"atol": 1e-5 if f32 else 1e-9, "why": "float32 graph" if f32 else "float64 graph"},
    }
    return Artifact(
        kind="onnx",
        flavor="onnx",
        primary="onnx",
        files={"onnx": ("model.onnx", data, extras)},
        declared=declared,
        n_features=n_features,
        no_ir_reason=NO_IR.format(kind="ONNX", what="graph"),
        expected_tolerance=1e-5 if f32 else 1e-9,
        expected_why="a float32 graph: float32 inputs and arithmetic" if f32 else "a float64 graph",
        algorithm="onnx-graph",
        info={"producer": extras["producer"]},
        undeclared_categories=undeclared,
    )


def _onnx_named_inputs(inputs: list[Any], path: Path) -> tuple[list[Feature], list[str], bool]:
    """One input per feature (skl2onnx's ColumnTransformer graphs): numbers, and strings whose categories the
    reference table gives (the graph's own encoder decides what an unseen string means)."""
    import onnx

    numeric = (onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE, onnx.TensorProto.INT64)
    declared, undeclared, f32 = [], [], False
    for i in inputs:
        elem = i.type.tensor_type.elem_type
        if elem == onnx.TensorProto.STRING:
            declared.append(Feature(i.name, "categorical", categories=[], unseen="as_is", missing_values=[""]))
            undeclared.append(i.name)
        elif elem in numeric:
            declared.append(Feature(i.name))
            f32 = f32 or elem == onnx.TensorProto.FLOAT
        else:
            raise ImportInputError(f"{path}: ONNX input {i.name!r} is neither a number nor a string tensor")
    return declared, undeclared, f32


def _onnx_output(model: Any, path: Path) -> tuple[str, int]:
    names = [o.name for o in model.graph.output]
    for preferred in ("probabilities", "output_probability", "probability"):
        if preferred in names:
            return preferred, 1
    if len(names) == 1:
        return names[0], 1
    raise ImportInputError(f"{path}: cannot tell which ONNX output is the probability (outputs: {', '.join(names)})")


def read_pfa(path: Path, data: bytes) -> Artifact:
    from adapters.pfa import record_field_kind
    from adapters.titus_compat import pfa_engine_class

    try:
        doc = json.loads(data)
        engine = pfa_engine_class().fromJson(data.decode("utf-8"))[0]
    except Exception as e:  # json and titus raise many kinds
        raise ImportInputError(f"{path} is not a PFA document titus can load: {str(e).splitlines()[0]}") from None
    itype = json.loads(str(engine.config.input))
    if json.loads(str(engine.config.output)) != "double":
        raise ImportInputError(f"{path}: the document returns {str(engine.config.output)[:60]}, not one double")
    undeclared: list[str] = []
    if itype == {"type": "array", "items": "double"}:
        names = json.loads(doc.get("metadata", {}).get("feature_names", "null") or "null")
        declared = [Feature(str(n)) for n in names] if isinstance(names, list) else None
    elif isinstance(itype, dict) and itype.get("type") == "record":
        declared = []
        for f in itype["fields"]:
            kind, _ = record_field_kind(f["type"])
            if kind is None:
                raise ImportInputError(f"{path}: input field {f['name']!r} has a type the pfa adapter does not feed")
            declared.append(_pfa_feature(str(f["name"]), f["type"], kind))
            if kind == "string" and not declared[-1].categories:
                undeclared.append(declared[-1].name)
    else:
        raise ImportInputError(
            f"{path}: the pfa adapter feeds an array of doubles or a record, not {json.dumps(itype)[:60]}"
        )
    return Artifact(
        kind="pfa",
        flavor="pfa",
        primary="pfa",
        files={"pfa": ("model.pfa.json", data, {"producer": str(doc.get("name", ""))})},
        declared=declared,
        no_ir_reason=NO_IR.format(kind="PFA", what="PFA program"),
        expected_why="titus evaluates in float64",
        algorithm="pfa-document",
        undeclared_categories=undeclared,
    )


def _pfa_feature(name: str, avro: Any, kind: str) -> Feature:
    """A record field as a feature: numbers, enums (their symbols, anything else invalid), strings (categories from
    the reference table; unseen strings reach the document as they are)."""
    if kind != "string":
        return Feature(name)
    rest = [t for t in avro if t != "null"][0] if isinstance(avro, list) else avro
    if isinstance(rest, dict) and rest.get("type") == "enum":
        return Feature(name, "categorical", categories=[str(x) for x in rest["symbols"]], unseen="invalid")
    return Feature(name, "categorical", categories=[], unseen="as_is")


# ---- training frameworks: served natively, converted into the IR where they can be ------------------------


def read_xgboost(path: Path, data: bytes) -> Artifact:
    from harness.modelbuild import train_xgboost as tx

    try:
        booster = tx.load_booster(data)
        doc = json.loads(bytes(booster.save_raw("json")))
    except Exception as e:  # xgboost.core.XGBoostError, json errors
        raise ImportInputError(f"{path} is not an XGBoost model: {str(e).splitlines()[0]}") from None
    learner = doc["learner"]
    names = learner.get("feature_names") or []
    n = int(learner["learner_model_param"]["num_feature"])
    if "c" in (learner.get("feature_types") or []):
        raise ImportInputError(f"{path}: XGBoost models with categorical features are not supported by the importer")
    import xgboost

    return Artifact(
        kind="xgboost",
        flavor="xgboost",
        primary="native",
        files={"native": (tx.NATIVE_FILE, bytes(booster.save_raw("json")), {"flavor": "xgboost", "algorithm": "gbm"})},
        declared=[Feature(str(x)) for x in names] if names else None,
        n_features=n,
        to_ir=lambda feats: tx.booster_json_to_ir(doc, feats),
        native_tolerance=tx.NATIVE_TOLERANCE,
        expected_tolerance=tx.NATIVE_TOLERANCE,
        expected_why="XGBoost computes in float32; the expected scores are compared with the bundle's reference "
        "(the IR's float64 prediction) at float32 precision",
        algorithm="gbm",
        info={"xgboost": xgboost.__version__},
    )


def read_lightgbm(path: Path, data: bytes) -> Artifact:
    import lightgbm as lgb

    from harness.modelbuild.train_lightgbm import NATIVE_FILE, booster_to_ir

    try:
        booster = lgb.Booster(model_str=data.decode("utf-8"))
    except (lgb.basic.LightGBMError, UnicodeDecodeError) as e:
        raise ImportInputError(f"{path} is not a LightGBM model: {str(e).splitlines()[0]}") from None
    names = [str(n) for n in booster.feature_name()]
    declared = None if all(n.startswith("Column_") for n in names) else [Feature(n) for n in names]
    if declared is not None:
        declared = _lightgbm_categories(data.decode("utf-8"), declared)
    return Artifact(
        kind="lightgbm",
        flavor="lightgbm",
        primary="native",
        files={"native": (NATIVE_FILE, data, {"flavor": "lightgbm", "algorithm": "gbm"})},
        declared=declared,
        n_features=booster.num_feature(),
        to_ir=lambda feats: booster_to_ir(booster, feats, _category_names(declared)),
        algorithm="gbm",
        info={"lightgbm": lgb.__version__},
    )


def _category_names(features: list[Feature] | None) -> dict[str, list[str]]:
    return {f.name: list(f.categories) for f in features or [] if f.categorical}


def _lightgbm_categories(text: str, features: list[Feature]) -> list[Feature]:
    """Features trained as pandas categoricals: LightGBM stores their indices (`[categorical_feature: 1,2]`) and
    the category lists (`pandas_categorical:`), and takes the category's index; an unseen category is missing
    (LightGBM's pandas path turns it into NaN). Integer-coded categoricals without a list stay numbers."""
    indices: list[int] = []
    lists: Any = None
    for line in text.splitlines():
        if line.startswith("[categorical_feature: ") and line.endswith("]"):
            indices = [int(i) for i in line[len("[categorical_feature: ") : -1].split(",") if i.strip()]
        elif line.startswith("pandas_categorical:"):
            lists = json.loads(line.split(":", 1)[1])
    if not indices or not isinstance(lists, list) or len(lists) != len(indices):
        return features
    out = list(features)
    for i, cats in zip(indices, lists, strict=True):
        out[i] = Feature(features[i].name, "categorical", categories=[str(c) for c in cats], unseen="missing")
    return out


def read_mojo(path: Path, data: bytes) -> Artifact:
    from harness.modelbuild.mojo_reader import mojo_to_ir
    from harness.modelbuild.train_h2o import NATIVE_FILE

    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            if "model.ini" not in z.namelist():
                raise ImportInputError(f"{path} is a zip file but not an H2O MOJO (no model.ini)")
    except zipfile.BadZipFile:
        raise ImportInputError(f"{path} is not a zip file (an H2O MOJO is a zip)") from None
    from adapters.errors import AdapterError
    from adapters.h2o_mojo import load_mojo

    try:
        m = load_mojo(data, str(path))
    except AdapterError as e:
        raise ImportInputError(str(e)) from None
    if int(m.nclasses()) != 2:
        raise ImportInputError(f"{path}: the MOJO is not a binomial classifier (nclasses={int(m.nclasses())})")
    n_cols = int(m.getNumCols())
    names = [str(s) for s in list(m.getNames())[:n_cols]]
    declared = []
    for i, name in enumerate(names):
        domain = m.getDomainValues(i)
        if domain is None:
            declared.append(Feature(name))
        else:  # an enum column: genmodel takes the level's index, unseen levels are NA (H2O's rule)
            declared.append(Feature(name, "categorical", categories=[str(d) for d in domain], unseen="missing"))
    entry = {"flavor": "h2o", "algorithm": str(m._algoName)}
    return Artifact(
        kind="h2o-mojo",
        flavor="h2o",
        primary="native",
        files={"native": (NATIVE_FILE, data, entry), "h2o-mojo": (NATIVE_FILE, data, {})},
        declared=declared,
        to_ir=lambda feats: mojo_to_ir(data, feats),
        algorithm=str(m._algoName),
        expected_why="h2o-genmodel computes in float64",
    )


def read_skops(path: Path, data: bytes) -> Artifact:
    import skops.io as sio

    try:
        untrusted = sio.get_untrusted_types(data=data)
    except Exception as e:  # skops raises zip and schema errors
        raise ImportInputError(f"{path} is not a skops file: {str(e).splitlines()[0]}") from None
    # scikit-learn's own classes (e.g. HistGradientBoosting's TreePredictor) are trusted; anything else is not
    foreign = [t for t in untrusted if not t.startswith("sklearn.")]
    if foreign:
        raise ImportInputError(
            f"{path} holds types that are not scikit-learn's: {', '.join(foreign[:5])}; save the model without "
            "them, or as joblib and pass --trust-pickle if you trust the file"
        )
    try:
        model = sio.loads(data, trusted=untrusted)
    except Exception as e:
        raise ImportInputError(f"{path}: skops cannot load the model: {str(e).splitlines()[0]}") from None
    extras = {"serialization": "skops", "trusted_types": untrusted}
    return _sklearn_artifact(path, model, "model.skops", data, extras)


def read_pickle(path: Path, data: bytes) -> Artifact:
    import joblib

    try:
        model = joblib.load(io.BytesIO(data))
    except Exception as e:  # unpickling raises anything
        raise ImportInputError(f"{path} does not load with joblib: {str(e).splitlines()[0]}") from None
    return _sklearn_artifact(path, model, "model.joblib", data, {"serialization": "joblib"})


def _sklearn_artifact(path: Path, model: Any, file: str, data: bytes, extras: dict[str, Any]) -> Artifact:
    import sklearn

    if not hasattr(model, "predict_proba"):
        raise ImportInputError(f"{path}: {type(model).__name__} has no predict_proba (a binary classifier is needed)")
    classes = list(getattr(model, "classes_", []))
    if len(classes) != 2:
        raise ImportInputError(f"{path}: the classifier has {len(classes)} classes; binary classifiers only")
    names = getattr(model, "feature_names_in_", None)
    declared = [Feature(str(n)) for n in names] if names is not None else None
    algorithm = _sklearn_algorithm(model)
    entry = {"flavor": "sklearn", "algorithm": algorithm, **extras}
    if names is not None:
        entry["input"] = "dataframe"
    return Artifact(
        kind="sklearn",
        flavor="sklearn",
        primary="native",
        files={"native": (file, data, entry)},
        declared=declared,
        n_features=int(getattr(model, "n_features_in_", 0)) or None,
        to_ir=lambda feats: _sklearn_ir(model, algorithm, feats),
        algorithm=algorithm,
        info={"scikit-learn": sklearn.__version__, "estimator": type(model).__name__},
        sklearn_model=model,
    )


def _sklearn_algorithm(model: Any) -> str:
    last = model.steps[-1][1] if hasattr(model, "steps") else model
    return {
        "HistGradientBoostingClassifier": "gbm",
        "LogisticRegression": "logistic_regression",
        "MLPClassifier": "mlp",
    }.get(type(last).__name__, type(last).__name__)


def _sklearn_ir(model: Any, algorithm: str, feats: list[str]) -> ModelIR:
    from harness.modelbuild import train_sklearn as ts

    try:
        if algorithm == "gbm" and not hasattr(model, "steps"):
            return ts.hgb_to_ir(model, feats)
        if algorithm == "logistic_regression" and hasattr(model, "steps"):
            return ts.pipeline_to_ir(model, feats)
        if algorithm == "mlp" and hasattr(model, "steps"):
            return ts.mlp_pipeline_to_ir(model, feats)
    except (KeyError, AttributeError, TypeError) as e:
        raise ValueError(f"the {algorithm} does not have the shape the IR converter reads ({e})") from None
    raise ValueError(
        f"{type(model).__name__} ({algorithm}) has no IR converter: the IR reads HistGradientBoostingClassifier, "
        "Pipeline(SimpleImputer, [StandardScaler], LogisticRegression) and Pipeline(SimpleImputer, [StandardScaler], "
        "MLPClassifier)"
    )
