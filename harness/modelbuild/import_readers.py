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

Every reader also tells the model's task (adapters/tasks.py) from the file: a PMML's functionName and target
classes (as pmml4s reads them), an ONNX graph's classifier labels and outputs, an XGBoost or LightGBM objective,
a MOJO's model category, a scikit-learn estimator's classes; and which of the file's outputs carry the task's
outputs: a PMML's output fields wherever the document declares them (the top model's Output, or the last segment
of a model chain: pmml4s's own list of the document's outputs), an ONNX output and its ZipMap labels. `--task`
settles what a file cannot say (a PFA document that returns one double: binary or regression) and must agree
with what it does say; `--output` names the output(s) to read when the reader cannot tell (one per class of a
multiclass model, in class order). A task or an output the harness cannot serve is one ImportInputError naming
what the file has.
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
from adapters.tasks import TASKS, TaskSpec
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
    task: TaskSpec = field(default_factory=TaskSpec)  # what the model produces (binary unless the file says)
    expected_rtol: float = 0.0  # a regression's expected scores: rtol on the values' scale (parity.Tolerance)


@dataclass
class Hints:
    """What the user said of the artifact: `--task` and `--output` (names, comma-separated on the command line)."""

    task: str | None = None
    output: list[str] | None = None

    def __post_init__(self) -> None:
        if self.task is not None and self.task not in TASKS:
            raise ImportInputError(f"--task {self.task!r}: valid tasks are {', '.join(TASKS)}")


def check_task(path: Path, found: TaskSpec, hints: Hints) -> TaskSpec:
    """The file's task, when `--task` (if given) agrees with it."""
    if hints.task is not None and hints.task != found.task:
        raise ImportInputError(
            f"{path} is a {found.task} model"
            + (f" ({len(found.classes)} classes: {', '.join(found.classes[:6])})" if found.classes else "")
            + f"; --task {hints.task} does not fit it"
        )
    return found


def task_from_classes(path: Path, classes: list[str], what: str) -> TaskSpec:
    """Binary (2 classes: the positive class is the one named 1 / true / yes, else the second) or multiclass."""
    if len(classes) == 2:
        positive = next((c for c in _POSITIVE if c in classes), classes[1])
        negative = classes[0] if classes[0] != positive else classes[1]
        return TaskSpec.binary(negative, positive)
    if len(classes) >= 3:
        return TaskSpec.multiclass(classes)
    raise ImportInputError(f"{path}: {what} has {len(classes)} class(es) ({', '.join(classes)}); a classifier needs 2+")


_POSITIVE = ("1", "true", "True", "TRUE", "yes", "Yes", "YES")


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


def read_artifact(path: Path, trust_pickle: bool = False, hints: Hints | None = None) -> Artifact:
    hints = hints or Hints()
    if not path.is_file():
        raise ImportInputError(f"artifact {path} does not exist")
    data = path.read_bytes()
    kind = detect_kind(path, data)
    if kind == "pickle" and not trust_pickle:
        raise ImportInputError(
            f"{path} is a joblib/pickle file, which runs code when loaded: save the model with skops "
            "(skops.io.dump) or, if you trust this file, pass --trust-pickle"
        )
    readers: dict[str, Callable[[Path, bytes, Hints], Artifact]] = {
        "pmml": read_pmml,
        "onnx": read_onnx,
        "pfa": read_pfa,
        "xgboost": read_xgboost,
        "lightgbm": read_lightgbm,
        "h2o-mojo": read_mojo,
        "sklearn": read_skops,
        "pickle": read_pickle,
    }
    art = readers[kind](path, data, hints)
    if hints.output and kind not in ("pmml", "onnx"):
        raise ImportInputError(
            f"--output names outputs of PMML and ONNX files; a {kind} model's outputs follow from its task "
            f"({art.task.task})"
        )
    return art


# ---- open standards: served as they are -------------------------------------------------------------------


def read_pmml(path: Path, data: bytes, hints: Hints) -> Artifact:
    from harness.modelbuild.pmml_schema import evaluator_view, read_pmml_inputs

    inputs = read_pmml_inputs(data, str(path))
    view = evaluator_view(data, str(path))  # pmml4s's own reading: task, classes, every output it writes
    entry: dict[str, Any] = {"pmml_version": inputs.version, "producer": inputs.application}
    if view.function_name == "regression":
        task = TaskSpec.regression()
    elif view.function_name == "classification":
        task = task_from_classes(path, view.classes or inputs.target_values, f"target {view.target!r}")
    else:
        raise ImportInputError(
            f"{path}: a {view.function_name or 'model without a functionName'} model is not one the harness serves "
            "(it serves classification and regression models: binary, multiclass, regression)"
        )
    task = check_task(path, task, hints)
    fields = view.output_fields_for(task, hints.output, str(path))
    entry |= {"output_fields": fields}
    if task.task == "binary":
        entry |= {"positive_class": task.classes[1], "output_field": fields[0]}
    float_math = 'x-mathContext="float"' in data.decode("utf-8", "replace")
    expected_tol, expected_rtol = (1e-6, 1e-6 if task.task == "regression" else 0.0) if float_math else (1e-9, 0.0)
    if float_math:
        entry["math_context"] = "float"
    return Artifact(
        kind="pmml",
        flavor="pmml",
        primary="pmml",
        files={"pmml": ("model.pmml", data, entry)},
        declared=inputs.features,
        no_ir_reason=NO_IR.format(kind="PMML", what="PMML document"),
        expected_tolerance=expected_tol,
        expected_rtol=expected_rtol,
        expected_why=(
            'the document computes in float (x-mathContext="float", as its producer did); pmml4s evaluates it in '
            "float64: held to float32 precision"
            if float_math
            else "pmml4s evaluates in float64 the numbers as the producer wrote them"
        ),
        algorithm=inputs.model_type,
        info={"producer": inputs.application, "pmml_version": inputs.version},
        undeclared_categories=inputs.undeclared_categories,
        task=task,
    )


def read_onnx(path: Path, data: bytes, hints: Hints) -> Artifact:
    import onnx

    try:
        model = onnx.load_model_from_string(data)
        onnx.checker.check_model(model)
    except Exception as e:  # onnx raises DecodeError, ValidationError, ...
        raise ImportInputError(f"{path} is not a valid ONNX model: {str(e).splitlines()[0]}") from None
    inits = {i.name for i in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in inits]
    task, out_extras = onnx_task_and_output(model, path, hints)
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
    regression = task.task == "regression"
    extras = {
        **where,
        "input_dtype": "float32" if f32 else "float64",
        **out_extras,
        "producer": f"{model.producer_name} {model.producer_version}".strip(),
        "tolerance": {
            "atol": 1e-5 if f32 else 1e-9,
            **({"rtol": 1e-5 if f32 else 1e-12} if regression else {}),
            "why": "float32 graph" if f32 else "float64 graph",
        },
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
        expected_rtol=(1e-5 if f32 else 1e-12) if regression else 0.0,
        expected_why="a float32 graph: float32 inputs and arithmetic" if f32 else "a float64 graph",
        algorithm="onnx-graph",
        info={"producer": extras["producer"]},
        undeclared_categories=undeclared,
        task=task,
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


_CLASSIFIER_OPS = ("TreeEnsembleClassifier", "LinearClassifier", "SVMClassifier", "ZipMap")
_PROBABILITY_NAMES = ("probabilities", "output_probability", "probability")


def onnx_task_and_output(model: Any, path: Path, hints: Hints) -> tuple[TaskSpec, dict[str, Any]]:
    """The graph's task and the output the adapter reads (manifest: output_name, output_column, output_keys).

    Classifier labels come from the graph's classifier or ZipMap node (classlabels_strings / _int64s): 2 labels is
    a binary model, 3 or more a multiclass one; the probabilities are the output named like probabilities (a
    tensor, columns in label order, or a ZipMap's sequence of maps, read by label). Without labels, an output of
    one column per row is a regression's value and an (n, k) output k class probabilities (classes 0..k-1)."""
    outputs = {o.name: o for o in model.graph.output}
    labels = _onnx_labels(model)
    names = ", ".join(outputs) or "none"
    chosen = hints.output
    if chosen is not None and (len(chosen) != 1 or chosen[0] not in outputs):
        raise ImportInputError(
            f"{path}: --output takes one of the graph's outputs (it has: {names}); an ONNX classifier's class "
            "probabilities are one output"
        )
    if labels is None:
        width = {n: _onnx_width(o) for n, o in outputs.items()}
        probability = [n for n in _PROBABILITY_NAMES if n in outputs]
        pick = (
            chosen[0]
            if chosen
            else (probability[0] if probability else (next(iter(outputs)) if len(outputs) == 1 else None))
        )
        if pick is None:
            raise ImportInputError(
                f"{path}: cannot tell which ONNX output carries the model's result (outputs: {names}); name it with "
                "--output NAME"
            )
        w = width[pick]
        wanted = hints.task or ("regression" if w in (None, 1) and pick not in _PROBABILITY_NAMES else None)
        if wanted == "regression":
            return TaskSpec.regression(), {"output_name": pick, "output_column": 0}
        if w is None or w < 2:
            raise ImportInputError(
                f"{path}: output {pick!r} has no fixed number of columns; say what it is with --task "
                "(regression, or a classifier's probabilities)"
            )
        labels = [str(i) for i in range(w)]
    task = check_task(path, task_from_classes(path, labels, "the graph's classifier"), hints)
    prob = chosen[0] if chosen else next((n for n in _PROBABILITY_NAMES if n in outputs), None)
    if prob is None:
        seqs = [n for n, o in outputs.items() if o.type.HasField("sequence_type")]
        floats = [n for n, o in outputs.items() if _onnx_width(o) == len(labels)]
        prob = (seqs or floats or [None])[0]
    if prob is None:
        raise ImportInputError(
            f"{path}: cannot tell which ONNX output holds the class probabilities (outputs: {names}); name it with "
            "--output NAME"
        )
    keys: list[Any] = [_key(labels, c) for c in (task.classes if task.task == "multiclass" else task.classes[1:])]
    return task, {
        "output_name": prob,
        "output_column": labels.index(task.classes[1]) if task.task == "binary" else 0,
        "output_keys": keys,
        "output_labels": labels,
    }


def _key(labels: list[str], label: str) -> Any:
    """A label as the graph's ZipMap keys it: an int when the graph's labels are integers."""
    return int(label) if all(lb.lstrip("-").isdigit() for lb in labels) else label


def _onnx_labels(model: Any) -> list[str] | None:
    """The class labels of the graph's classifier (or ZipMap) node, in probability-column order; None without."""
    from onnx import helper

    for node in model.graph.node:
        if node.op_type in _CLASSIFIER_OPS:
            attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
            for key in ("classlabels_strings", "classlabels_int64s"):
                values = attrs.get(key)
                if values is not None and len(values):
                    return [v.decode() if isinstance(v, bytes) else str(v) for v in values]
    return None


def _onnx_width(output: Any) -> int | None:
    """The number of columns of a tensor output ((n,) -> 1, (n, k) -> k), None when not fixed or not a tensor."""
    if not output.type.HasField("tensor_type"):
        return None
    dims = output.type.tensor_type.shape.dim
    if len(dims) == 1:
        return 1
    if len(dims) == 2 and dims[1].HasField("dim_value"):
        return int(dims[1].dim_value)
    return None


def read_pfa(path: Path, data: bytes, hints: Hints) -> Artifact:
    from adapters.pfa import record_field_kind
    from adapters.titus_compat import pfa_engine_class

    try:
        doc = json.loads(data)
        engine = pfa_engine_class().fromJson(data.decode("utf-8"))[0]
    except Exception as e:  # json and titus raise many kinds
        raise ImportInputError(f"{path} is not a PFA document titus can load: {str(e).splitlines()[0]}") from None
    itype = json.loads(str(engine.config.input))
    otype = json.loads(str(engine.config.output))
    if otype == "double":  # P(class 1) or a value: the document cannot say which
        task = TaskSpec.regression() if hints.task == "regression" else TaskSpec.binary()
    elif otype == {"type": "array", "items": "double"}:
        classes = json.loads(doc.get("metadata", {}).get("classes", "null") or "null")
        if not isinstance(classes, list) or len(classes) < 3:
            raise ImportInputError(
                f"{path}: the document returns an array of doubles (class probabilities?); the harness reads one "
                'only when its metadata names the classes ("classes": a JSON list of 3 or more, in output order)'
            )
        task = TaskSpec.multiclass([str(c) for c in classes])
    else:
        raise ImportInputError(
            f"{path}: the document returns {json.dumps(otype)[:60]}; the harness reads one double or an array of "
            "class probabilities"
        )
    task = check_task(path, task, hints)
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
        expected_rtol=1e-12 if task.task == "regression" else 0.0,
        algorithm="pfa-document",
        undeclared_categories=undeclared,
        task=task,
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


def read_xgboost(path: Path, data: bytes, hints: Hints) -> Artifact:
    from harness.modelbuild import train_xgboost as tx

    try:
        booster = tx.load_booster(data)
        doc = json.loads(bytes(booster.save_raw("json")))
    except Exception as e:  # xgboost.core.XGBoostError, json errors
        raise ImportInputError(f"{path} is not an XGBoost model: {str(e).splitlines()[0]}") from None
    try:
        kind, k = tx.objective_task(doc)
    except ValueError as e:
        raise ImportInputError(f"{path}: {e}") from None
    served = doc
    if doc["learner"]["objective"]["name"] == "multi:softmax":  # it predicts the class index: serve the probabilities
        served = tx.softprob_json(doc)
        booster = tx.load_booster(json.dumps(served).encode())
    classes = [str(i) for i in range(k)] if kind == "multiclass" else []
    task = check_task(
        path,
        TaskSpec.multiclass(classes) if classes else TaskSpec(kind, () if kind == "regression" else ("0", "1")),  # type: ignore[arg-type]
        hints,
    )
    learner = doc["learner"]
    names = learner.get("feature_names") or []
    n = int(learner["learner_model_param"]["num_feature"])
    if "c" in (learner.get("feature_types") or []):
        raise ImportInputError(f"{path}: XGBoost models with categorical features are not supported by the importer")
    import xgboost

    native_entry: dict[str, Any] = {"flavor": "xgboost", "algorithm": "gbm"}
    if served is not doc:
        native_entry["served_as"] = "multi:softprob (the file's multi:softmax predicts the class index)"
    return Artifact(
        kind="xgboost",
        flavor="xgboost",
        primary="native",
        files={"native": (tx.NATIVE_FILE, bytes(booster.save_raw("json")), native_entry)},
        declared=[Feature(str(x)) for x in names] if names else None,
        n_features=n,
        to_ir=lambda feats: tx.booster_json_to_ir(served, feats),
        native_tolerance=tx.NATIVE_TOLERANCE,
        expected_tolerance=tx.NATIVE_TOLERANCE,
        expected_rtol=tx.NATIVE_TOLERANCE if task.task == "regression" else 0.0,
        expected_why="XGBoost computes in float32; the expected scores are compared with the bundle's reference "
        "(the IR's float64 prediction) at float32 precision",
        algorithm="gbm",
        info={"xgboost": xgboost.__version__, "objective": doc["learner"]["objective"]["name"]},
        task=task,
    )


def read_lightgbm(path: Path, data: bytes, hints: Hints) -> Artifact:
    import lightgbm as lgb

    from harness.modelbuild.train_lightgbm import NATIVE_FILE, booster_to_ir

    try:
        booster = lgb.Booster(model_str=data.decode("utf-8"))
    except (lgb.basic.LightGBMError, UnicodeDecodeError) as e:
        raise ImportInputError(f"{path} is not a LightGBM model: {str(e).splitlines()[0]}") from None
    task = check_task(path, lightgbm_task(path, booster), hints)
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
        info={"lightgbm": lgb.__version__, "objective": str(booster.dump_model(num_iteration=1).get("objective", ""))},
        task=task,
        expected_rtol=1e-12 if task.task == "regression" else 0.0,
    )


_LGB_REGRESSION = ("regression", "regression_l1", "huber", "fair", "quantile", "mape", "poisson", "gamma", "tweedie")


def lightgbm_task(path: Path, booster: Any) -> TaskSpec:
    """A LightGBM model's task from its objective: binary (and cross_entropy: a probability), the regressions
    (poisson, gamma, tweedie included: LightGBM's own predict applies their exp; the IR holds those without a
    transform), multiclass and multiclassova (k classes, 0..k-1); ranking objectives are not served."""
    objective = str(booster.dump_model(num_iteration=1).get("objective", "")).split()
    name = objective[0] if objective else ""
    if name in ("binary", "cross_entropy", "xentropy"):
        return TaskSpec.binary()
    if name in _LGB_REGRESSION:
        return TaskSpec.regression()
    if name in ("multiclass", "softmax", "multiclassova", "ovr"):
        k = int(booster.num_model_per_iteration())
        return TaskSpec.multiclass([str(i) for i in range(k)])
    raise ImportInputError(
        f"{path}: LightGBM objective {name or '(none)'!r} is not a task the harness serves (binary, regression, "
        "multiclass)"
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


def read_mojo(path: Path, data: bytes, hints: Hints) -> Artifact:
    from harness.modelbuild.mojo_reader import mojo_to_ir
    from harness.modelbuild.train_h2o import NATIVE_FILE

    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            if "model.ini" not in z.namelist():
                raise ImportInputError(f"{path} is a zip file but not an H2O MOJO (no model.ini)")
    except zipfile.BadZipFile:
        raise ImportInputError(f"{path} is not a zip file (an H2O MOJO is a zip)") from None
    from adapters.errors import AdapterError
    from adapters.h2o_mojo import load_mojo, mojo_task

    try:
        m = load_mojo(data, str(path))
        task = check_task(path, mojo_task(m, str(path)), hints)
    except AdapterError as e:
        raise ImportInputError(str(e)) from None
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
        expected_rtol=1e-12 if task.task == "regression" else 0.0,
        task=task,
    )


def read_skops(path: Path, data: bytes, hints: Hints) -> Artifact:
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
    return _sklearn_artifact(path, model, "model.skops", data, extras, hints)


def read_pickle(path: Path, data: bytes, hints: Hints) -> Artifact:
    import joblib

    try:
        model = joblib.load(io.BytesIO(data))
    except Exception as e:  # unpickling raises anything
        raise ImportInputError(f"{path} does not load with joblib: {str(e).splitlines()[0]}") from None
    return _sklearn_artifact(path, model, "model.joblib", data, {"serialization": "joblib"}, hints)


def _sklearn_artifact(path: Path, model: Any, file: str, data: bytes, extras: dict[str, Any], hints: Hints) -> Artifact:
    import sklearn
    from sklearn.base import is_regressor

    if hasattr(model, "predict_proba"):
        classes = [str(c) for c in getattr(model, "classes_", [])]
        task = task_from_classes(path, classes, type(model).__name__)
        if task.task == "binary" and task.classes != tuple(classes):  # predict_proba's column 1 is classes_[1]
            task = TaskSpec.binary(classes[0], classes[1])
    elif hasattr(model, "predict") and is_regressor(model):
        task = TaskSpec.regression()
    else:
        raise ImportInputError(
            f"{path}: {type(model).__name__} is neither a classifier with predict_proba nor a regressor"
        )
    task = check_task(path, task, hints)
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
        task=task,
        expected_rtol=1e-12 if task.task == "regression" else 0.0,
    )


def _sklearn_algorithm(model: Any) -> str:
    last = model.steps[-1][1] if hasattr(model, "steps") else model
    return {
        "HistGradientBoostingClassifier": "gbm",
        "HistGradientBoostingRegressor": "gbm",
        "LogisticRegression": "logistic_regression",
        "MLPClassifier": "mlp",
        "MLPRegressor": "mlp",
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
