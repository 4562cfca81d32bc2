"""What a PMML document (4.x, any producer: R's pmml package, KNIME, SAS, nyoka, JPMML, ...) declares about its
inputs, read for `harness import`: the model type, the active fields in MiningSchema order with their types from
the DataDictionary, categories (Value elements), missing-value markers (Value property="missing"), the unseen
rule (MiningField invalidValueTreatment), the target and its classes.

Field types: a DataField of dataType string (optype categorical or ordinal) is a categorical feature; every
other active field is a number (a categorical integer field is passed as its number). When a DataField lists no
valid values, its categories are the strings the document itself compares it with (predicates, NormDiscrete,
CategoricalPredictor, PPCell) plus those the reference table holds, and unseen strings reach the model as they
are (rule "as_is"): the model, not the harness, decides what they mean.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

from adapters.schema import Feature
from adapters.tasks import TaskSpec
from harness.modelbuild.errors import ImportInputError

# Model elements of PMML 4.4, and those pmml4s (the pmml adapter's evaluator) scores.
MODEL_TAGS = (
    "AnomalyDetectionModel", "AssociationModel", "BayesianNetworkModel", "BaselineModel", "ClusteringModel",
    "GaussianProcessModel", "GeneralRegressionModel", "MiningModel", "NaiveBayesModel", "NearestNeighborModel",
    "NeuralNetwork", "RegressionModel", "RuleSetModel", "SequenceModel", "Scorecard", "SupportVectorMachineModel",
    "TextModel", "TimeSeriesModel", "TreeModel",
)  # fmt: skip
EVALUATED_TAGS = (
    "AnomalyDetectionModel", "GeneralRegressionModel", "MiningModel", "NaiveBayesModel", "NearestNeighborModel",
    "NeuralNetwork", "RegressionModel", "RuleSetModel", "Scorecard", "SupportVectorMachineModel", "TreeModel",
)  # fmt: skip
_UNSEEN = {"returnInvalid": "invalid", "asIs": "as_is", "asMissing": "missing", "asValue": "as_value"}
_POSITIVE = ("1", "true", "True", "TRUE", "yes", "Yes", "YES")


@dataclass
class PmmlInputs:
    model_type: str
    function_name: str
    features: list[Feature]
    undeclared_categories: list[str]  # categorical fields whose DataField lists no values
    target: str | None
    target_values: list[str]
    output_fields: list[tuple[str, str, str]] = field(default_factory=list)  # (name, feature, value)
    version: str = ""
    application: str = ""

    def positive_class(self) -> str | None:
        for v in _POSITIVE:
            if v in self.target_values:
                return v
        return self.target_values[-1] if len(self.target_values) == 2 else None


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _children(elem: ET.Element, name: str) -> list[ET.Element]:
    return [c for c in elem if _local(c.tag) == name]


def read_pmml_inputs(data: bytes, source: str) -> PmmlInputs:
    try:
        root = ET.fromstring(data)
    except ET.ParseError as e:
        raise ImportInputError(f"{source} is not a PMML document: XML does not parse ({e})") from None
    if _local(root.tag) != "PMML":
        raise ImportInputError(f"{source} is not a PMML document (its root element is <{_local(root.tag)}>)")
    models = [c for c in root if _local(c.tag) in MODEL_TAGS]
    if not models:
        raise ImportInputError(f"{source}: no model element found (PMML model types: {', '.join(MODEL_TAGS)})")
    model = models[0]
    mtype = _local(model.tag)
    if mtype not in EVALUATED_TAGS:
        raise ImportInputError(
            f"{source}: PMML model type {mtype} is not supported by the PMML evaluator here (pmml4s scores: "
            f"{', '.join(EVALUATED_TAGS)})"
        )
    dd = {f.get("name", ""): f for d in _children(root, "DataDictionary") for f in _children(d, "DataField")}
    mining = [m for s in _children(model, "MiningSchema") for m in _children(s, "MiningField")]
    if not mining:
        raise ImportInputError(f"{source}: the {mtype} has no MiningSchema")
    order, last, target = _mining_fields(mining)
    features, undeclared = [], []
    for name in order:
        df = dd.get(name)
        if df is None:
            raise ImportInputError(f"{source}: mining field {name!r} is not in the DataDictionary")
        feat, has_values = _feature(name, df, last[name], root)
        if feat.categorical and not has_values:
            undeclared.append(name)
        features.append(feat)
    target_values = [v.get("value", "") for v in _children(dd[target], "Value")] if target in dd else []
    outputs = [
        (o.get("name", ""), o.get("feature", "predictedValue"), o.get("value", ""))
        for out in _children(model, "Output")
        for o in _children(out, "OutputField")
    ]
    header = next(iter(_children(root, "Header")), None)
    app = next(iter(_children(header, "Application")), None) if header is not None else None
    return PmmlInputs(
        model_type=mtype,
        function_name=model.get("functionName", ""),
        features=features,
        undeclared_categories=undeclared,
        target=target,
        target_values=target_values,
        output_fields=outputs,
        version=root.get("version", ""),
        application=" ".join(x for x in (app.get("name", ""), app.get("version", "")) if x) if app is not None else "",
    )


def _mining_fields(mining: list[ET.Element]) -> tuple[list[str], dict[str, ET.Element], str | None]:
    """The active fields in order, each one's MiningField, and the target."""
    last: dict[str, ET.Element] = {}
    order: list[str] = []
    target: str | None = None
    for mf in mining:
        name = mf.get("name", "")
        usage = mf.get("usageType", "active")
        if usage in ("target", "predicted"):
            target = target or name
        elif usage == "active":
            if name not in last:
                order.append(name)
            last[name] = mf  # a field listed twice (nyoka does): the evaluator keeps the last one
    return order, last, target


def _feature(name: str, df: ET.Element, mf: ET.Element, root: ET.Element) -> tuple[Feature, bool]:
    values = _children(df, "Value")
    valid = [v.get("value", "") for v in values if v.get("property", "valid") == "valid"]
    missing = [v.get("value", "") for v in values if v.get("property") == "missing"]
    if df.get("dataType", "string") != "string" or df.get("optype", "categorical") == "continuous":
        return Feature(name, missing_values=[float(m) for m in missing if _is_number(m)]), True
    rule = _UNSEEN.get(mf.get("invalidValueTreatment", "returnInvalid"), "invalid")
    has_values = bool(valid)
    cats = valid if has_values else sorted(_constants(root, name))
    if not has_values:
        rule = "as_is"  # no declared values: every string is valid for the model
    replacement = mf.get("invalidValueReplacement")
    if rule == "as_value" and replacement not in cats:
        rule = "invalid"
    feat = Feature(
        name,
        "categorical",
        categories=cats,
        unseen=rule,  # type: ignore[arg-type]
        unseen_value=replacement if rule == "as_value" else None,
        missing_values=missing,
    )
    return feat, has_values


def _is_number(text: str) -> bool:
    return re.fullmatch(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?", text.strip()) is not None


# elements that compare a field with a string value, and the attribute naming the field
_FIELD_ATTR = {
    "SimplePredicate": "field",
    "NormDiscrete": "field",
    "CategoricalPredictor": "name",
    "PPCell": "predictorName",
}


def _constants(root: ET.Element, name: str) -> set[str]:
    """Strings the document compares field `name` with."""
    out: set[str] = set()
    for e in root.iter():
        tag, value = _local(e.tag), e.get("value")
        refers = _FIELD_ATTR.get(tag)
        if refers is not None and e.get(refers) == name and value is not None:
            out.add(value)
        elif tag == "SimpleSetPredicate" and e.get("field") == name:
            for arr in _children(e, "Array"):
                out.update(_array_values(arr.text or ""))
    return out


def _array_values(text: str) -> list[str]:
    """A PMML string Array's values: space-separated, double-quoted when they hold spaces."""
    return [a if a else b for a, b in re.findall(r'"((?:[^"\\]|\\.)*)"|(\S+)', text)]


# ---- what the evaluator makes of the document ------------------------------------------------------------------


@dataclass
class PmmlView:
    """pmml4s's reading of a document: its function, target and classes, and every final output field it writes
    (name, result feature, value): those of the top model's Output, of the last segment of a model chain, or
    pmml4s's defaults for a model that declares none."""

    function_name: str
    target: str | None
    classes: list[str]
    outputs: list[tuple[str, str, str | None]]

    @property
    def names(self) -> list[str]:
        return [n for n, _, _ in self.outputs]

    def output_fields_for(self, task: TaskSpec, chosen: list[str] | None, source: str) -> list[str]:
        """The output fields that carry the task's outputs, in output order: `chosen` (--output), checked against
        the document's outputs, or the probability of each class (the positive class of a binary model), or the
        predicted value of a regression. ImportInputError naming the outputs found when they are not there."""
        have = ", ".join(self.names) or "none"
        if chosen:
            unknown = [c for c in chosen if c not in self.names]
            if unknown:
                raise ImportInputError(
                    f"{source}: --output {unknown[0]!r} is not an output of the document (it has: {have})"
                )
            if len(chosen) != task.n_outputs:
                raise ImportInputError(
                    f"{source}: --output names {len(chosen)} field(s); a {task.task} model reads {task.n_outputs}"
                    + (f", one per class in the order {', '.join(task.classes)}" if task.task == "multiclass" else "")
                )
            return list(chosen)
        if task.task == "regression":
            found = [n for n, feature, _ in self.outputs if feature == "predictedValue"]
            if found:
                return found[:1]
            raise ImportInputError(
                f"{source}: no output field gives the predicted value (its outputs: {have}); name the one to read "
                "with --output NAME"
            )
        wanted = task.classes[1:] if task.task == "binary" else task.classes
        fields = []
        for c in wanted:
            found = [n for n, feature, value in self.outputs if feature == "probability" and value == c]
            if not found:
                how = "--output NAME" if task.task == "binary" else "--output NAME,NAME,... (one per class, in order)"
                raise ImportInputError(
                    f"{source}: no output field gives the probability of class {c!r} (its outputs: {have}); name "
                    f"the one{'s' if task.task == 'multiclass' else ''} to read with {how}"
                )
            fields.append(found[0])
        return fields


def evaluator_view(data: bytes, source: str) -> PmmlView:
    """The document as pmml4s (the pmml adapter's evaluator) reads it, in the process's JVM."""
    import jpype
    from pypmml import Model

    from adapters.errors import AdapterError
    from adapters.java_engine import java_one_line
    from adapters.pmml import use_process_jvm

    try:
        use_process_jvm()
    except AdapterError as e:
        raise ImportInputError(str(e)) from None
    try:
        jm = Model.fromBytes(jpype.JArray(jpype.JByte)(data))._java_model
    except Exception as e:  # pypmml wraps the Java exception
        raise ImportInputError(f"pmml4s cannot load {source}: {java_one_line(e)}") from None
    outputs = []
    for f in jm.outputFields():
        value = f.value()
        outputs.append((str(f.name()), str(f.feature()), str(value.get()) if value.isDefined() else None))
    classes_raw = jm.classes()
    classes = [str(c) for c in classes_raw] if classes_raw is not None else []
    target = jm.targetName()
    return PmmlView(
        function_name=str(jm.functionName()),
        target=None if target is None else str(target),
        classes=classes,
        outputs=outputs,
    )
