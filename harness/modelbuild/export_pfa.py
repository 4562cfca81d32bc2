"""Write a model IR as a PFA document (JSON) that titus2 executes (the `pfa` adapter).

Input: an array of doubles in the IR's feature order (`{"type": "array", "items": "double"}`), NaN for
missing. Output: one double, P(class 1) for a logistic link (`m.link.logit` of the margin), the margin for
an identity link (a regression); a multiclass model (link softmax) returns an array of doubles, the class
probabilities in output order (exp(margin - max) / sum, written out: `_softmax`). The feature names are kept in
the document's metadata (`feature_names`, JSON text).

titus's comparison operators (`<`, `<=`, ...) are slow (each call parses an Avro type), so the per-node
work uses none: a split's side is `m.signum(x - threshold)` (exact: for float64, x - t is 0 only when
x == t, and its sign is the sign of the true difference), used as an index.

Tree ensemble: the trees live in cells as flat arrays, every tree's nodes concatenated (child indices are
absolute): `inner` (false for a leaf), `feature`, `threshold`, `children`, `missing`, `value`, plus `roots`
(each tree's root node) and `baseScore`. The action walks each tree with a `while` loop:

    margin = baseScore
    for root in roots:                   (foreach, seq: the order of the IR, so the float sum is the same)
        node = root
        while inner[node]:
            x = input[feature[node]]
            node = missing[node] if impute.isnan(x) else children[node][m.signum(x - threshold[node]) + 1]
        margin = margin + value[node]

    children[node] = [left, left, right] for split_op "<=", [left, right, right] for "<" (below, on, above);
    missing[node] = left if default_left else right.

Multiclass: cells `classes` (0..k-1), `classRoots` (the roots of each class's trees) and `classBase`; for each
class (foreach, seq) its margin is its base plus the walk of its trees, appended to `margins` (a.append).

A categorical node (the IR's cat_left) goes left when its code is in the node's set: cells `isCat` and `catSets`
(the codes as doubles, `a.contains`), written only for models that have such nodes.

A data-driven walk (rather than one nested `if` per node) keeps the document small and its size linear in
the number of nodes, and avoids deep nesting in the Python titus generates.

GLM: cells `features` (0..n-1), `coefficients`, `replacement`, `hasReplacement`, `intercept`; for each
feature (foreach, no comparison) a NaN with a replacement is replaced, then margin += coefficient * x
(a NaN without replacement makes the margin NaN, as in the IR).

MLP: cells `replacement`/`hasReplacement`, `shift`, `scale`, and per layer `w<i>` (the weights transposed: one
row per output, as `la.dot(matrix, vector)` takes them) and `b<i>`. The action is matrix algebra:

    x = a.zipmap(input, replacement, hasReplacement, NaN with a replacement -> the replacement)
    h = a.zipmap(x, shift, scale, (x - shift) / scale)
    for each layer: h = activation(la.add(la.dot(w<i>, h), b<i>))   (m.link.relu / m.link.logit / m.link.tanh)
    margin = h[0]

titus computes `la.dot` with numpy (float64), so the sums match the IR to ~1e-16; `la.dot` refuses a NaN, so a
missing value without a replacement is a scoring error (the IR gives NaN).

Numbers are written by `json.dumps`, i.e. `repr(float)`, which parses back to the same float64.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from harness.modelbuild.ir import LEAF, Glm, Mlp, ModelIR, TreeEnsemble

_ARRAY_DOUBLE = {"type": "array", "items": "double"}
_ARRAY_INT = {"type": "array", "items": "int"}
_ARRAY_BOOL = {"type": "array", "items": "boolean"}


def write_pfa(ir: ModelIR, path: Path) -> None:
    """Write `ir` as a PFA document at `path`."""
    doc = pfa_document(ir)
    try:
        text = json.dumps(doc, allow_nan=False, separators=(",", ":"))
    except ValueError:
        raise ValueError("cannot write a non-finite number (NaN or infinity) into PFA") from None
    Path(path).write_text(text)


def pfa_document(ir: ModelIR) -> dict[str, Any]:
    if isinstance(ir, TreeEnsemble):
        cells, action = _tree_ensemble(ir)
    elif isinstance(ir, Mlp):
        cells, action = _mlp(ir)
    else:
        cells, action = _glm(ir)
    output: Any = "double"
    if ir.link == "softmax":  # "margins": an array of the class margins
        output = _ARRAY_DOUBLE
        action.extend(_softmax("margins"))
    elif ir.link == "logistic":
        # titus computes 1 / (1 + math.exp(-x)), and math.exp overflows above 709.78 where float64 (and the
        # IR's numpy) give exp = inf and P = 0; below -709 the true P is < 1e-307, so 0.0 is exact to 1e-307.
        action.append({"if": {"<": ["margin", -709.0]}, "then": 0.0, "else": {"m.link.logit": ["margin"]}})
    else:
        action.append("margin")
    return {
        "name": ir.kind,
        "input": _ARRAY_DOUBLE,
        "output": output,
        "method": "map",
        "cells": cells,
        "action": action,
        "metadata": {"feature_names": json.dumps(ir.feature_names), "link": ir.link},
    }


def _softmax(margins: str) -> list[Any]:
    """exp(m - max) / sum: the IR's softmax. Not titus's m.link.softmax, which subtracts the smallest margin when the
    largest |margin| is negative ([-2000, -1] overflows math.exp)."""

    def fcn(body: Any) -> dict[str, Any]:
        return {"params": [{"v": "double"}], "ret": "double", "do": body}

    return [
        {"let": {"top": {"a.max": [margins]}}},
        {"let": {"e": {"a.map": [margins, fcn({"m.exp": [{"-": ["v", "top"]}]})]}}},
        {"let": {"total": {"a.sum": ["e"]}}},
        {"a.map": ["e", fcn({"/": ["v", "total"]})]},
    ]


def _cell(avro_type: Any, init: Any) -> dict[str, Any]:
    return {"type": avro_type, "init": init}


def _at(cell: str, index: Any) -> dict[str, Any]:
    return {"cell": cell, "path": [index]}


def _tree_ensemble(ir: TreeEnsemble) -> tuple[dict[str, Any], list[Any]]:
    inner: list[bool] = []
    feature: list[int] = []
    threshold: list[float] = []
    children: list[list[int]] = []
    missing: list[int] = []
    value: list[float] = []
    roots: list[int] = []
    for tree in ir.trees:
        offset = len(feature)
        roots.append(offset)
        for n in range(tree.n_nodes):
            if tree.feature[n] == LEAF:
                inner.append(False)
                feature.append(0)
                threshold.append(0.0)
                children.append([-1, -1, -1])
                missing.append(-1)
                value.append(float(tree.value[n]))
                continue
            left, right = offset + int(tree.left[n]), offset + int(tree.right[n])
            inner.append(True)
            feature.append(int(tree.feature[n]))
            threshold.append(float(tree.threshold[n]))
            # indexed by signum(x - threshold) + 1: below, equal, above
            children.append([left, left if ir.split_op == "<=" else right, right])
            missing.append(left if tree.default_left[n] else right)
            value.append(0.0)
    cells = {
        "inner": _cell(_ARRAY_BOOL, inner),
        "feature": _cell(_ARRAY_INT, feature),
        "threshold": _cell(_ARRAY_DOUBLE, threshold),
        "children": _cell({"type": "array", "items": _ARRAY_INT}, children),
        "missing": _cell(_ARRAY_INT, missing),
        "value": _cell(_ARRAY_DOUBLE, value),
        "roots": _cell(_ARRAY_INT, roots),
        "baseScore": _cell("double", float(ir.base_score)),
    }
    side = {"+": [{"m.signum": [{"-": ["x", _at("threshold", "node")]}]}, 1]}
    branch: Any = {"cell": "children", "path": ["node", side]}
    catsets = [
        [float(c) for c in t.cat_left[n]] if t.is_categorical(n) else [] for t in ir.trees for n in range(t.n_nodes)
    ]
    if any(catsets):  # categorical nodes: left when the code is one of the node's set (a.contains), else right
        cells["isCat"] = _cell(_ARRAY_BOOL, [bool(c) for c in catsets])
        cells["catSets"] = _cell({"type": "array", "items": _ARRAY_DOUBLE}, catsets)
        member = {"a.contains": [_at("catSets", "node"), "x"]}
        by_set = {"if": member, "then": {"cell": "children", "path": ["node", 0]},
                  "else": {"cell": "children", "path": ["node", 2]}}  # fmt: skip
        branch = {"if": _at("isCat", "node"), "then": by_set, "else": branch}
    walk = {
        "while": _at("inner", "node"),
        "do": [
            {"let": {"x": {"attr": "input", "path": [_at("feature", "node")]}}},
            {
                "set": {
                    "node": {
                        "if": {"impute.isnan": ["x"]},
                        "then": _at("missing", "node"),
                        "else": branch,
                    }
                }
            },
        ],
    }

    def sum_over(roots: Any) -> dict[str, Any]:
        return {
            "foreach": "root",
            "in": roots,
            "seq": True,
            "do": [
                {"let": {"node": "root"}},
                walk,
                {"set": {"margin": {"+": ["margin", _at("value", "node")]}}},
            ],
        }

    if ir.n_classes:
        k = ir.n_classes
        cells["classes"] = _cell(_ARRAY_INT, list(range(k)))
        cells["classRoots"] = _cell(
            {"type": "array", "items": _ARRAY_INT},
            [[r for r, c in zip(roots, ir.tree_class, strict=True) if c == cls] for cls in range(k)],
        )
        cells["classBase"] = _cell(_ARRAY_DOUBLE, [float(b) for b in ir.class_base_scores])
        per_class = {
            "foreach": "c",
            "in": {"cell": "classes"},
            "seq": True,
            "do": [
                {"let": {"margin": _at("classBase", "c")}},
                sum_over(_at("classRoots", "c")),
                {"set": {"margins": {"a.append": ["margins", "margin"]}}},
            ],
        }
        return cells, [{"let": {"margins": {"value": [], "type": _ARRAY_DOUBLE}}}, per_class]
    return cells, [{"let": {"margin": {"cell": "baseScore"}}}, sum_over({"cell": "roots"})]


def _glm(ir: Glm) -> tuple[dict[str, Any], list[Any]]:
    reps = ir.missing_replacement
    cells = {
        "features": _cell(_ARRAY_INT, list(range(ir.n_features))),
        "coefficients": _cell(_ARRAY_DOUBLE, [float(c) for c in ir.coefficients]),
        "replacement": _cell(_ARRAY_DOUBLE, [0.0 if r is None else float(r) for r in reps]),
        "hasReplacement": _cell(_ARRAY_BOOL, [r is not None for r in reps]),
        "intercept": _cell("double", float(ir.intercept)),
    }
    x = {"attr": "input", "path": ["i"]}
    imputed = {
        "if": {"impute.isnan": [x]},
        "then": {"if": _at("hasReplacement", "i"), "then": _at("replacement", "i"), "else": x},
        "else": x,
    }
    action: list[Any] = [
        {"let": {"margin": {"cell": "intercept"}}},
        {
            "foreach": "i",
            "in": {"cell": "features"},
            "seq": True,
            "do": [{"set": {"margin": {"+": ["margin", {"*": [_at("coefficients", "i"), imputed]}]}}}],
        },
    ]
    return cells, action


_PFA_ACTIVATION = {"relu": "m.link.relu", "logistic": "m.link.logit", "tanh": "m.link.tanh"}


def _fcn(params: list[tuple[str, str]], body: Any) -> dict[str, Any]:
    return {"params": [{name: t} for name, t in params], "ret": "double", "do": body}


def _mlp(ir: Mlp) -> tuple[dict[str, Any], list[Any]]:
    reps = ir.missing_replacement
    cells: dict[str, Any] = {
        "replacement": _cell(_ARRAY_DOUBLE, [0.0 if r is None else float(r) for r in reps]),
        "hasReplacement": _cell(_ARRAY_BOOL, [r is not None for r in reps]),
        "shift": _cell(_ARRAY_DOUBLE, [float(v) for v in ir.shift]),
        "scale": _cell(_ARRAY_DOUBLE, [float(v) for v in ir.scale]),
    }
    impute = _fcn(
        [("x", "double"), ("r", "double"), ("has", "boolean")],
        {"if": {"&&": [{"impute.isnan": ["x"]}, "has"]}, "then": "r", "else": "x"},
    )
    standardize = _fcn([("x", "double"), ("s", "double"), ("c", "double")], {"/": [{"-": ["x", "s"]}, "c"]})
    action: list[Any] = [
        {"let": {"x": {"a.zipmap": ["input", {"cell": "replacement"}, {"cell": "hasReplacement"}, impute]}}},
        {"let": {"h0": {"a.zipmap": ["x", {"cell": "shift"}, {"cell": "scale"}, standardize]}}},
    ]
    for i, layer in enumerate(ir.layers):
        transposed = [[float(layer.weights[k][j]) for k in range(layer.n_in)] for j in range(layer.n_out)]
        cells[f"w{i}"] = _cell({"type": "array", "items": _ARRAY_DOUBLE}, transposed)
        cells[f"b{i}"] = _cell(_ARRAY_DOUBLE, [float(b) for b in layer.bias])
        value: Any = {"la.add": [{"la.dot": [{"cell": f"w{i}"}, f"h{i}"]}, {"cell": f"b{i}"}]}
        if layer.activation != "identity":
            value = {_PFA_ACTIVATION[layer.activation]: [value]}
        action.append({"let": {f"h{i + 1}": value}})
    if ir.link == "softmax":
        action.append({"let": {"margins": f"h{len(ir.layers)}"}})
    else:
        action.append({"let": {"margin": {"attr": f"h{len(ir.layers)}", "path": [0]}}})
    return cells, action
