"""Write a model IR as PMML 4.4 (scored by pypmml / pmml4s in the `pmml` adapter).

Final output fields by task (`write_pmml` returns their names, in the order the adapter reads them):
binary `OUTPUT_FIELD` ("probability_1"), a double, P(class 1); regression `PREDICTION_FIELD` ("prediction"), the
predicted value; multiclass "probability_0" ... "probability_<k-1>", one per class in output order (the target is a
categorical integer field with the values 0 .. k-1: the bundle's manifest names the classes). Inputs are the IR's
feature names, continuous doubles; a missing value is a missing input (the adapter passes NaN, which pmml4s reads
as missing).

Tree ensemble, logistic link (the layout JPMML writes for XGBoost, readable by any PMML 4.4 consumer):

    MiningModel classification, Segmentation modelChain
      1. MiningModel regression, Segmentation sum -> output field "margin" (not final)
           segment 0: TreeModel with one leaf = base_score (so the sum adds it first, as the IR does)
           segment i: TreeModel i
      2. RegressionModel classification normalizationMethod="logit":
           table "1": 0 + 1 * margin; table "0": 0   ->  P(1) = 1 / (1 + exp(-margin))

Identity link: the sum MiningModel alone, regression, its predicted value is the output.

Multiclass (link softmax; the layout JPMML writes for XGBoost and LightGBM multiclass models):

    MiningModel classification, Segmentation modelChain
      1..k. MiningModel regression, Segmentation sum -> output field "margin_<c>" (not final): class c's base score,
            then the trees of class c in the IR's order
      k+1.  RegressionModel classification normalizationMethod="softmax": table "c": 0 + 1 * shifted_<c>, where
            shifted_<c> = margin_<c> - max(margins) (LocalTransformations): softmax is the same, and no exp
            overflows (pmml4s computes exp(y_c) / sum exp(y_j) as the standard writes it; a scikit-learn model
            with a rare class had a margin of 1545)

Categorical features (the IR's feature_categories): a DataField of dataType string listing the categories in
code order, invalidValueTreatment asMissing; a categorical node's left predicate is a SimpleSetPredicate isIn over
the strings of its codes (a missing value makes it unknown, so it goes right unless default_left).

Trees: missingValueStrategy="none" (a comparison with a missing value is FALSE) and every inner node has
exactly two children in order: the left child's predicate is `x <= t` (or `x < t`), wrapped as
`isMissing(x) OR x <= t` when default_left; the right child's predicate is True. So a missing value goes
left exactly when default_left, as in the IR, and a value ON the threshold follows split_op.

GLM: RegressionModel (classification + logit, or regression); missing_replacement becomes the
MiningField's missingValueReplacement. Every coefficient is written, zeros included: a missing value
with no replacement makes the prediction missing (NaN), as in the IR.

MLP (multiclass: functionName classification, the last NeuralLayer normalizationMethod softmax, one NeuralOutput
per class, a NormDiscrete of the target; otherwise as follows).
MLP: NeuralNetwork (functionName regression, its predicted value = P(class 1)): missing_replacement becomes the
MiningField's missingValueReplacement, each NeuralInput a DerivedField (x - shift) / scale, each IR layer a
NeuralLayer of Neurons (bias, one Con per input, in order) with the layer's activationFunction (relu ->
rectifier); the IR's logistic link is folded into the last layer (its activation is identity in the IR, so the
last NeuralLayer is "logistic"). One NeuralOutput maps the output neuron to the target.

Numbers are written with `repr(float)`, the shortest text that parses back to the same float64.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from collections.abc import Callable, Collection
from pathlib import Path

from harness.modelbuild.ir import LEAF, Glm, Mlp, ModelIR, Tree, TreeEnsemble

PMML_NS = "http://www.dmg.org/PMML-4_4"
OUTPUT_FIELD = "probability_1"
PREDICTION_FIELD = "prediction"


def output_fields(ir: ModelIR) -> list[str]:
    """The final output fields `write_pmml` writes for `ir`, in the order of the task's outputs."""
    if ir.link == "softmax":
        return [f"probability_{c}" for c in range(ir.n_outputs)]
    return [OUTPUT_FIELD if ir.link == "logistic" else PREDICTION_FIELD]


def write_pmml(ir: ModelIR, path: Path) -> list[str]:
    """Write `ir` as a PMML 4.4 document at `path`; return its final output fields (in output order)."""
    outputs = output_fields(ir)
    clash = [o for o in outputs if o in ir.feature_names]
    if clash:
        raise ValueError(f"feature name {clash[0]!r} is reserved for the PMML output field")
    if len(set(ir.feature_names)) != len(ir.feature_names):
        raise ValueError("feature names must be unique to be written as PMML fields")
    taken = set(ir.feature_names) | set(outputs)
    target = _fresh("label", taken)
    taken.add(target)
    # the target's values: 0/1 for a binary classification document, 0..k-1 multiclass (an MLP with a logistic
    # link is a regression document: its output is P(class 1) as a value)
    n_values = ir.n_outputs if ir.link == "softmax" else (2 if ir.link == "logistic" and not isinstance(ir, Mlp) else 0)

    root = ET.Element("PMML", {"xmlns": PMML_NS, "version": "4.4"})
    header = ET.SubElement(root, "Header", {"description": f"{ir.kind} exported from the model IR"})
    ET.SubElement(header, "Application", {"name": "kafka-model-harness"})
    cats = ir.feature_categories if isinstance(ir, TreeEnsemble) else {}
    _data_dictionary(root, ir.feature_names, target, n_values, cats)

    if isinstance(ir, TreeEnsemble) and ir.n_classes:
        _multiclass_ensemble(root, ir, target, taken)
    elif isinstance(ir, TreeEnsemble):
        _tree_ensemble(root, ir, target, _fresh("margin", taken))
    elif isinstance(ir, Mlp):
        _mlp(root, ir, target)
    else:
        _glm(root, ir, target)

    ET.indent(root)
    Path(path).write_bytes(ET.tostring(root, encoding="utf-8", xml_declaration=True))
    return outputs


def _num(x: float) -> str:
    x = float(x)
    if not math.isfinite(x):
        raise ValueError(f"cannot write non-finite number {x!r} into PMML")
    return repr(x)


def _fresh(base: str, taken: set[str]) -> str:
    name = base
    while name in taken:
        name = "_" + name
    return name


def _data_dictionary(
    root: ET.Element, features: list[str], target: str, n_values: int, cats: dict[str, list[str]]
) -> None:
    dd = ET.SubElement(root, "DataDictionary", {"numberOfFields": str(len(features) + 1)})
    for name in features:
        if name in cats:  # a categorical feature: its strings, in code order
            df = ET.SubElement(dd, "DataField", {"name": name, "optype": "categorical", "dataType": "string"})
            for value in cats[name]:
                ET.SubElement(df, "Value", {"value": value})
        else:
            ET.SubElement(dd, "DataField", {"name": name, "optype": "continuous", "dataType": "double"})
    if n_values:
        tf = ET.SubElement(dd, "DataField", {"name": target, "optype": "categorical", "dataType": "integer"})
        for c in range(n_values):
            ET.SubElement(tf, "Value", {"value": str(c)})
    else:
        ET.SubElement(dd, "DataField", {"name": target, "optype": "continuous", "dataType": "double"})


def _mining_schema(
    parent: ET.Element, fields: list[str], target: str | None, categorical: Collection[str] = ()
) -> ET.Element:
    ms = ET.SubElement(parent, "MiningSchema")
    if target is not None:
        ET.SubElement(ms, "MiningField", {"name": target, "usageType": "target"})
    for name in fields:
        # a string that is not a category is missing, as the IR treats a code outside the categories
        extra = {"invalidValueTreatment": "asMissing"} if name in categorical else {}
        ET.SubElement(ms, "MiningField", {"name": name, **extra})
    return ms


def _final_output(parent: ET.Element, classification: bool, name: str = OUTPUT_FIELD) -> None:
    out = ET.SubElement(parent, "Output")
    attrs = {"name": name, "optype": "continuous", "dataType": "double"}
    if classification:
        attrs |= {"feature": "probability", "value": "1"}
    else:
        attrs |= {"feature": "predictedValue"}
    ET.SubElement(out, "OutputField", attrs)


def _class_outputs(parent: ET.Element, k: int) -> None:
    out = ET.SubElement(parent, "Output")
    for c in range(k):
        attrs = {"name": f"probability_{c}", "optype": "continuous", "dataType": "double"}
        ET.SubElement(out, "OutputField", attrs | {"feature": "probability", "value": str(c)})


# ---- tree ensembles ----------------------------------------------------------------------------------------


def _tree_ensemble(root: ET.Element, ir: TreeEnsemble, target: str, margin_field: str) -> None:
    features = ir.feature_names
    if ir.link == "identity":
        _sum_model(root, ir, target, lambda mm: _final_output(mm, classification=False, name=PREDICTION_FIELD))
        return

    top = ET.SubElement(root, "MiningModel", {"functionName": "classification", "modelName": "tree_ensemble"})
    _mining_schema(top, features, target, ir.feature_categories)
    _final_output(top, classification=True)
    chain = ET.SubElement(top, "Segmentation", {"multipleModelMethod": "modelChain"})

    seg = ET.SubElement(chain, "Segment", {"id": "margin"})
    ET.SubElement(seg, "True")

    def margin_output(mm: ET.Element) -> None:
        out = ET.SubElement(mm, "Output")
        attrs = {"name": margin_field, "optype": "continuous", "dataType": "double"}
        ET.SubElement(out, "OutputField", attrs | {"feature": "predictedValue", "isFinalResult": "false"})

    _sum_model(seg, ir, None, margin_output)

    seg = ET.SubElement(chain, "Segment", {"id": "link"})
    ET.SubElement(seg, "True")
    reg = ET.SubElement(
        seg,
        "RegressionModel",
        {"functionName": "classification", "normalizationMethod": "logit", "modelName": "logistic_link"},
    )
    _mining_schema(reg, [margin_field], target)
    t1 = ET.SubElement(reg, "RegressionTable", {"targetCategory": "1", "intercept": "0.0"})
    ET.SubElement(t1, "NumericPredictor", {"name": margin_field, "coefficient": "1.0"})
    ET.SubElement(reg, "RegressionTable", {"targetCategory": "0", "intercept": "0.0"})


def _multiclass_ensemble(root: ET.Element, ir: TreeEnsemble, target: str, taken: set[str]) -> None:
    """modelChain: one sum model per class (its margin, not final), then a softmax RegressionModel."""
    k = ir.n_outputs
    top = ET.SubElement(root, "MiningModel", {"functionName": "classification", "modelName": "tree_ensemble"})
    _mining_schema(top, ir.feature_names, target, ir.feature_categories)
    _class_outputs(top, k)
    chain = ET.SubElement(top, "Segmentation", {"multipleModelMethod": "modelChain"})
    margins = [_fresh(f"margin_{c}", taken) for c in range(k)]
    taken.update(margins)
    for c, margin_field in enumerate(margins):
        seg = ET.SubElement(chain, "Segment", {"id": f"margin_{c}"})
        ET.SubElement(seg, "True")

        def margin_output(mm: ET.Element, name: str = margin_field) -> None:
            out = ET.SubElement(mm, "Output")
            attrs = {"name": name, "optype": "continuous", "dataType": "double"}
            ET.SubElement(out, "OutputField", attrs | {"feature": "predictedValue", "isFinalResult": "false"})

        trees = [i for i, tc in enumerate(ir.tree_class) if tc == c]
        _sum_model(seg, ir, None, margin_output, trees=trees, base=ir.class_base_scores[c], name=f"margin_{c}")
    seg = ET.SubElement(chain, "Segment", {"id": "link"})
    ET.SubElement(seg, "True")
    reg = ET.SubElement(
        seg,
        "RegressionModel",
        {"functionName": "classification", "normalizationMethod": "softmax", "modelName": "softmax_link"},
    )
    _mining_schema(reg, margins, target)
    local = ET.SubElement(reg, "LocalTransformations")
    max_field = _fresh("max_margin", taken)
    taken.add(max_field)
    df = ET.SubElement(local, "DerivedField", {"name": max_field, "optype": "continuous", "dataType": "double"})
    apply_max = ET.SubElement(df, "Apply", {"function": "max"})
    for margin_field in margins:
        ET.SubElement(apply_max, "FieldRef", {"field": margin_field})
    shifted = []
    for c, margin_field in enumerate(margins):
        name = _fresh(f"shifted_{c}", taken)
        taken.add(name)
        shifted.append(name)
        df = ET.SubElement(local, "DerivedField", {"name": name, "optype": "continuous", "dataType": "double"})
        sub = ET.SubElement(df, "Apply", {"function": "-"})
        ET.SubElement(sub, "FieldRef", {"field": margin_field})
        ET.SubElement(sub, "FieldRef", {"field": max_field})
    for c, name in enumerate(shifted):
        t = ET.SubElement(reg, "RegressionTable", {"targetCategory": str(c), "intercept": "0.0"})
        ET.SubElement(t, "NumericPredictor", {"name": name, "coefficient": "1.0"})


def _sum_model(
    parent: ET.Element,
    ir: TreeEnsemble,
    target: str | None,
    add_output: Callable[[ET.Element], None],
    trees: list[int] | None = None,
    base: float | None = None,
    name: str = "margin",
) -> None:
    """MiningModel regression = base_score + sum of the trees (segment order = the IR's order); `trees` and
    `base`: one class's trees and base score of a multiclass ensemble."""
    mm = ET.SubElement(parent, "MiningModel", {"functionName": "regression", "modelName": name})
    _mining_schema(mm, ir.feature_names, target, ir.feature_categories)
    add_output(mm)  # PMML order: MiningSchema, Output, Segmentation
    seg_root = ET.SubElement(mm, "Segmentation", {"multipleModelMethod": "sum"})

    seg = ET.SubElement(seg_root, "Segment", {"id": "base_score"})
    ET.SubElement(seg, "True")
    tm = ET.SubElement(seg, "TreeModel", {"functionName": "regression", "modelName": "base_score"})
    ET.SubElement(tm, "MiningSchema")
    node = ET.SubElement(tm, "Node", {"score": _num(ir.base_score if base is None else base)})
    ET.SubElement(node, "True")

    for i in range(len(ir.trees)) if trees is None else trees:
        seg = ET.SubElement(seg_root, "Segment", {"id": f"tree_{i}"})
        ET.SubElement(seg, "True")
        _tree_model(seg, ir.trees[i], ir.feature_names, ir.split_op, f"tree_{i}", ir.feature_categories)


def _tree_model(
    parent: ET.Element, tree: Tree, features: list[str], split_op: str, name: str, cats: dict[str, list[str]]
) -> None:
    tm = ET.SubElement(
        parent,
        "TreeModel",
        {
            "functionName": "regression",
            "modelName": name,
            "missingValueStrategy": "none",
            "noTrueChildStrategy": "returnNullPrediction",
            "splitCharacteristic": "binarySplit",
        },
    )
    used = sorted({f for f in tree.feature if f != LEAF})
    _mining_schema(tm, [features[f] for f in used], None, cats)
    op = "lessOrEqual" if split_op == "<=" else "lessThan"

    root = ET.SubElement(tm, "Node")
    ET.SubElement(root, "True")
    # Iterative build (deep trees must not hit Python's recursion limit): (xml node, ir node).
    stack: list[tuple[ET.Element, int]] = [(root, 0)]
    while stack:
        elem, n = stack.pop()
        if tree.feature[n] == LEAF:
            elem.set("score", _num(tree.value[n]))
            continue
        field = features[tree.feature[n]]
        left = ET.SubElement(elem, "Node")
        where = left
        if tree.default_left[n]:
            where = ET.SubElement(left, "CompoundPredicate", {"booleanOperator": "or"})
            ET.SubElement(where, "SimplePredicate", {"field": field, "operator": "isMissing"})
        if tree.is_categorical(n):
            _set_predicate(where, field, tree.cat_left[n], cats)
        else:
            ET.SubElement(where, "SimplePredicate", {"field": field, "operator": op, "value": _num(tree.threshold[n])})
        right = ET.SubElement(elem, "Node")
        ET.SubElement(right, "True")
        stack.append((left, tree.left[n]))
        stack.append((right, tree.right[n]))


def _set_predicate(parent: ET.Element, field: str, codes: list[int], cats: dict[str, list[str]]) -> None:
    """SimpleSetPredicate isIn: the category strings of the codes that go left."""
    if field not in cats:
        raise ValueError(f"a categorical split on {field!r}, whose category names the IR does not hold")
    names = [cats[field][c] for c in codes if 0 <= c < len(cats[field])]
    sp = ET.SubElement(parent, "SimpleSetPredicate", {"field": field, "booleanOperator": "isIn"})
    quoted = " ".join('"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"' for v in names)
    ET.SubElement(sp, "Array", {"n": str(len(names)), "type": "string"}).text = quoted


# ---- GLM ---------------------------------------------------------------------------------------------------


def _glm(root: ET.Element, ir: Glm, target: str) -> None:
    classification = ir.link == "logistic"
    attrs = {"functionName": "classification" if classification else "regression", "modelName": "glm"}
    if classification:
        attrs["normalizationMethod"] = "logit"
    reg = ET.SubElement(root, "RegressionModel", attrs)
    ms = ET.SubElement(reg, "MiningSchema")
    ET.SubElement(ms, "MiningField", {"name": target, "usageType": "target"})
    for name, rep in zip(ir.feature_names, ir.missing_replacement, strict=True):
        mf = {"name": name}
        if rep is not None:
            mf["missingValueReplacement"] = _num(rep)
        ET.SubElement(ms, "MiningField", mf)
    _final_output(reg, classification, OUTPUT_FIELD if classification else PREDICTION_FIELD)

    table_attrs = {"intercept": _num(ir.intercept)}
    if classification:
        table_attrs["targetCategory"] = "1"
    table = ET.SubElement(reg, "RegressionTable", table_attrs)
    for name, coef in zip(ir.feature_names, ir.coefficients, strict=True):
        ET.SubElement(table, "NumericPredictor", {"name": name, "coefficient": _num(coef)})
    if classification:
        ET.SubElement(reg, "RegressionTable", {"targetCategory": "0", "intercept": "0.0"})


# ---- MLP ---------------------------------------------------------------------------------------------------

_PMML_ACTIVATION = {"relu": "rectifier", "logistic": "logistic", "tanh": "tanh", "identity": "identity"}


def _constant(parent: ET.Element, x: float) -> None:
    ET.SubElement(parent, "Constant", {"dataType": "double"}).text = _num(x)


def _mlp(root: ET.Element, ir: Mlp, target: str) -> None:
    last = ir.layers[-1].activation
    if ir.link in ("logistic", "softmax") and last != "identity":
        raise ValueError(f"an MLP with a {ir.link} link needs an identity last layer (the link becomes its activation)")
    multiclass = ir.link == "softmax"
    nn = ET.SubElement(
        root,
        "NeuralNetwork",
        {
            "functionName": "classification" if multiclass else "regression",
            "activationFunction": "identity",
            "modelName": "mlp",
        },
    )
    ms = ET.SubElement(nn, "MiningSchema")
    ET.SubElement(ms, "MiningField", {"name": target, "usageType": "target"})
    for name, rep in zip(ir.feature_names, ir.missing_replacement, strict=True):
        attrs = {"name": name} | ({} if rep is None else {"missingValueReplacement": _num(rep)})
        ET.SubElement(ms, "MiningField", attrs)
    if multiclass:
        _class_outputs(nn, ir.n_outputs)
    else:
        _final_output(nn, False, OUTPUT_FIELD if ir.link == "logistic" else PREDICTION_FIELD)

    inputs = ET.SubElement(nn, "NeuralInputs", {"numberOfInputs": str(ir.n_features)})
    for j, name in enumerate(ir.feature_names):
        ni = ET.SubElement(inputs, "NeuralInput", {"id": f"i{j}"})
        df = ET.SubElement(ni, "DerivedField", {"optype": "continuous", "dataType": "double"})
        div = ET.SubElement(df, "Apply", {"function": "/"})
        sub = ET.SubElement(div, "Apply", {"function": "-"})
        ET.SubElement(sub, "FieldRef", {"field": name})
        _constant(sub, ir.shift[j])
        _constant(div, ir.scale[j])

    previous = [f"i{j}" for j in range(ir.n_features)]
    for li, layer in enumerate(ir.layers):
        act = layer.activation
        if li == len(ir.layers) - 1 and ir.link == "logistic":
            act = "logistic"
        attrs = {"numberOfNeurons": str(layer.n_out), "activationFunction": _PMML_ACTIVATION[act]}
        if li == len(ir.layers) - 1 and multiclass:
            attrs["normalizationMethod"] = "softmax"
        nl = ET.SubElement(nn, "NeuralLayer", attrs)
        ids = [f"l{li}n{k}" for k in range(layer.n_out)]
        for k, nid in enumerate(ids):
            neuron = ET.SubElement(nl, "Neuron", {"id": nid, "bias": _num(layer.bias[k])})
            for src, row in zip(previous, layer.weights, strict=True):
                ET.SubElement(neuron, "Con", {"from": src, "weight": _num(row[k])})
        previous = ids

    if multiclass:
        outputs = ET.SubElement(nn, "NeuralOutputs", {"numberOfOutputs": str(len(previous))})
        for c, neuron_id in enumerate(previous):
            no = ET.SubElement(outputs, "NeuralOutput", {"outputNeuron": neuron_id})
            df = ET.SubElement(no, "DerivedField", {"optype": "categorical", "dataType": "integer"})
            ET.SubElement(df, "NormDiscrete", {"field": target, "value": str(c)})
        return
    outputs = ET.SubElement(nn, "NeuralOutputs", {"numberOfOutputs": "1"})
    no = ET.SubElement(outputs, "NeuralOutput", {"outputNeuron": previous[0]})
    df = ET.SubElement(no, "DerivedField", {"optype": "continuous", "dataType": "double"})
    ET.SubElement(df, "FieldRef", {"field": target})
