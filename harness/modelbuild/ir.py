"""The model IR: the one place where trainers meet exporters.

Every trainer converts its model into one of three shapes, and every exporter (PMML, PFA, compiled C)
reads only these shapes. N trainers + M formats, not N x M converters.

Semantics (what every exporter must reproduce exactly, in float64):

TreeEnsemble
    margin(x) = base_score + sum(tree.value[leaf(tree, x)] for tree in trees)
    multiclass (n_classes = k >= 3): one margin per class,
        margin_c(x) = class_base_scores[c] + sum(tree.value[leaf(tree, x)] for the trees with tree_class == c)
    leaf(tree, x): start at node 0; at an inner node with feature f and threshold t:
        if x[f] is NaN:      go left when default_left[node] else right
        elif split_op "<=":  go left when x[f] <= t else right
        elif split_op "<":   go left when x[f] <  t else right
      a categorical node (cat_left[node] not empty; x[f] is a category code, adapters/schema.py):
        if x[f] is NaN:      go left when default_left[node] else right
        else:                go left when x[f] equals one of cat_left[node] (codes), else right (an unseen or
                             negative code goes right)
    probability = link(margin); link "logistic" is 1 / (1 + exp(-margin)), "identity" is margin (a regression),
    "softmax" (multiclass) is exp(margin_c - m) / sum_j exp(margin_j - m) with m = max_j margin_j.
    feature_categories names the categories of categorical features (code i = the i-th name), for the formats
    that take strings (PMML).

Glm
    x'[f] = missing_replacement[f] if x[f] is NaN (and a replacement exists) else x[f]
    margin(x) = intercept + sum(coefficients[f] * x'[f])
    probability = link(margin)

Mlp (a feed-forward neural network, one output; or k outputs and link softmax for a multiclass model)
    x'[f] = missing_replacement[f] if x[f] is NaN (and a replacement exists) else x[f]
    h = (x' - shift) / scale                    (element-wise; the standardization, shift 0 / scale 1 when none)
    for each layer: h = activation(h @ weights + bias)     weights is (inputs, outputs)
    margin = h[0] (the last layer has one output), probability = link(margin); multiclass: margin = h, softmax
    activations: "relu" max(0, v), "logistic" 1 / (1 + exp(-v)), "tanh", "identity"

A node is a leaf when feature[node] == -1; its value is value[node]. Inner nodes' value is ignored.

The task a model IR serves follows from its link (`task_of`): logistic -> binary, identity -> regression,
softmax -> multiclass (classes are output indices here; the bundle's manifest names them).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np

Link = Literal["logistic", "identity", "softmax"]
SplitOp = Literal["<=", "<"]

LEAF = -1


@dataclass
class Tree:
    """One binary tree in flat arrays, node 0 is the root."""

    feature: list[int]
    threshold: list[float]
    left: list[int]
    right: list[int]
    default_left: list[bool]
    value: list[float]
    cat_left: list[list[int]] = field(default_factory=list)  # empty: no categorical node; else one list per node

    def __post_init__(self) -> None:
        n = len(self.feature)
        for name in ("threshold", "left", "right", "default_left", "value"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"tree array {name!r} has {len(getattr(self, name))} entries, expected {n}")
        if self.cat_left and len(self.cat_left) != n:
            raise ValueError(f"tree array 'cat_left' has {len(self.cat_left)} entries, expected {n}")

    @property
    def n_nodes(self) -> int:
        return len(self.feature)

    def is_leaf(self, node: int) -> bool:
        return self.feature[node] == LEAF

    def is_categorical(self, node: int) -> bool:
        return bool(self.cat_left) and bool(self.cat_left[node])


# A split as a converter reads it: (feature, threshold, default_left, left child, right child), and for a
# categorical split the codes that go left as a sixth element.
Split = tuple[int, float, bool, Any, Any] | tuple[int, float, bool, Any, Any, list[int]]


def tree_from_nodes(root: Any, read: Callable[[Any], float | Split]) -> Tree:
    """Flatten a linked tree (a trainer's own nodes) into the IR's arrays, depth first, node 0 the root.

    `read(node)` returns the leaf value for a leaf, or a `Split`. An explicit stack, not recursion: deep
    trees would exhaust Python's recursion limit.
    """
    feature: list[int] = []
    threshold: list[float] = []
    left: list[int] = []
    right: list[int] = []
    default_left: list[bool] = []
    value: list[float] = []
    cat_left: list[list[int]] = []
    stack: list[tuple[Any, int, bool]] = [(root, -1, False)]
    while stack:
        node, parent, is_left = stack.pop()
        idx = len(feature)
        if parent >= 0:
            (left if is_left else right)[parent] = idx
        got = read(node)
        left.append(-1)
        right.append(-1)
        if isinstance(got, tuple):
            f, t, dl, left_child, right_child = got[:5]
            cat_left.append(list(got[5]) if len(got) == 6 else [])  # type: ignore[misc]
            feature.append(f)
            threshold.append(t)
            default_left.append(dl)
            value.append(0.0)
            stack.append((right_child, idx, False))
            stack.append((left_child, idx, True))
        else:
            feature.append(LEAF)
            threshold.append(0.0)
            default_left.append(False)
            value.append(got)
            cat_left.append([])
    return Tree(
        feature=feature,
        threshold=threshold,
        left=left,
        right=right,
        default_left=default_left,
        value=value,
        cat_left=cat_left if any(cat_left) else [],
    )


@dataclass
class TreeEnsemble:
    feature_names: list[str]
    trees: list[Tree]
    base_score: float = 0.0
    link: Link = "logistic"
    split_op: SplitOp = "<="
    feature_categories: dict[str, list[str]] = field(default_factory=dict)
    kind: Literal["tree_ensemble"] = "tree_ensemble"
    n_classes: int = 0  # 0: one margin; k >= 3: a multiclass model, one margin per class (link softmax)
    tree_class: list[int] = field(default_factory=list)  # multiclass: the class each tree adds to
    class_base_scores: list[float] = field(default_factory=list)  # multiclass: each class's base margin

    def __post_init__(self) -> None:
        if self.n_classes:
            if self.n_classes < 3 or self.link != "softmax":
                raise ValueError("a multiclass tree ensemble has n_classes >= 3 and link softmax")
            if len(self.tree_class) != len(self.trees) or len(self.class_base_scores) != self.n_classes:
                raise ValueError("a multiclass tree ensemble needs tree_class per tree and a base score per class")
            if any(not 0 <= c < self.n_classes for c in self.tree_class):
                raise ValueError("tree_class holds a class outside 0..n_classes-1")
        elif self.link == "softmax" or self.tree_class or self.class_base_scores:
            raise ValueError("link softmax, tree_class and class_base_scores are for multiclass models (n_classes)")

    @property
    def n_features(self) -> int:
        return len(self.feature_names)

    @property
    def n_outputs(self) -> int:
        return self.n_classes or 1


@dataclass
class Glm:
    feature_names: list[str]
    coefficients: list[float]
    intercept: float
    link: Link = "logistic"
    missing_replacement: list[float | None] = field(default_factory=list)
    kind: Literal["glm"] = "glm"

    def __post_init__(self) -> None:
        if len(self.coefficients) != len(self.feature_names):
            raise ValueError("GLM needs one coefficient per feature")
        if self.link == "softmax":
            raise ValueError("the IR's GLM has one output (logistic or identity link); multinomial GLMs are not in it")
        if not self.missing_replacement:
            self.missing_replacement = [None] * len(self.feature_names)

    @property
    def n_features(self) -> int:
        return len(self.feature_names)

    @property
    def n_outputs(self) -> int:
        return 1


Activation = Literal["relu", "logistic", "tanh", "identity"]
ACTIVATIONS: tuple[str, ...] = ("relu", "logistic", "tanh", "identity")


@dataclass
class Layer:
    """One dense layer: outputs = activation(inputs @ weights + bias); weights[i][j] from input i to output j."""

    weights: list[list[float]]
    bias: list[float]
    activation: Activation = "relu"

    def __post_init__(self) -> None:
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {self.activation!r}; valid: {', '.join(ACTIVATIONS)}")
        if any(len(row) != len(self.bias) for row in self.weights):
            raise ValueError("every row of a layer's weights needs one entry per output (len(bias))")

    @property
    def n_in(self) -> int:
        return len(self.weights)

    @property
    def n_out(self) -> int:
        return len(self.bias)


@dataclass
class Mlp:
    feature_names: list[str]
    layers: list[Layer]
    missing_replacement: list[float | None] = field(default_factory=list)
    shift: list[float] = field(default_factory=list)
    scale: list[float] = field(default_factory=list)
    link: Link = "logistic"
    kind: Literal["mlp"] = "mlp"

    def __post_init__(self) -> None:
        n = len(self.feature_names)
        self.missing_replacement = self.missing_replacement or [None] * n
        self.shift = self.shift or [0.0] * n
        self.scale = self.scale or [1.0] * n
        outs = self.layers[-1].n_out if self.layers else 0
        if not self.layers or self.layers[0].n_in != n or not (outs == 1 or (outs >= 3 and self.link == "softmax")):
            raise ValueError(f"an MLP needs layers from {n} inputs to 1 output (or k >= 3 with link softmax)")
        if self.link == "softmax" and outs < 3:
            raise ValueError("an MLP with link softmax needs at least 3 outputs")
        for a, b in zip(self.layers, self.layers[1:], strict=False):
            if a.n_out != b.n_in:
                raise ValueError(f"layer of {a.n_out} outputs feeds a layer of {b.n_in} inputs")
        if not (len(self.missing_replacement) == len(self.shift) == len(self.scale) == n):
            raise ValueError("missing_replacement, shift and scale need one entry per feature")

    @property
    def n_features(self) -> int:
        return len(self.feature_names)

    @property
    def n_outputs(self) -> int:
        return self.layers[-1].n_out


ModelIR = TreeEnsemble | Glm | Mlp


def task_of(model: ModelIR) -> str:
    """ "binary", "regression" or "multiclass" (adapters/tasks.py), from the link."""
    return {"logistic": "binary", "identity": "regression", "softmax": "multiclass"}[model.link]


def softmax(margin: np.ndarray) -> np.ndarray:
    """Row-wise softmax of (n, k) margins, the largest subtracted first (no overflow)."""
    m = np.asarray(margin, dtype=np.float64)
    e = np.exp(m - m.max(axis=1, keepdims=True))
    return np.asarray(e / e.sum(axis=1, keepdims=True), dtype=np.float64)


def apply_link(margin: np.ndarray, link: Link) -> np.ndarray:
    if link == "logistic":
        return np.asarray(1.0 / (1.0 + np.exp(-margin)), dtype=np.float64)
    if link == "softmax":
        return softmax(margin)
    return margin


def _tree_leaf_values(tree: Tree, X: np.ndarray, split_op: SplitOp) -> np.ndarray:
    out = np.empty(X.shape[0], dtype=np.float64)
    feat, thr, left, right, dl, val = (
        tree.feature,
        tree.threshold,
        tree.left,
        tree.right,
        tree.default_left,
        tree.value,
    )
    le = split_op == "<="
    cats = [set(c) for c in tree.cat_left] if tree.cat_left else [set()] * len(feat)
    for i in range(X.shape[0]):
        row = X[i]
        node = 0
        while feat[node] != LEAF:
            x = row[feat[node]]
            if math.isnan(x):
                go_left = dl[node]
            elif cats[node]:
                go_left = x in cats[node]
            elif le:
                go_left = x <= thr[node]
            else:
                go_left = x < thr[node]
            node = left[node] if go_left else right[node]
        out[i] = val[node]
    return out


def _impute(X: np.ndarray, replacement: list[float | None]) -> np.ndarray:
    Xf = X.copy()
    for j, rep in enumerate(replacement):
        if rep is not None:
            col = Xf[:, j]
            col[np.isnan(col)] = rep
    return Xf


def _activate(h: np.ndarray, activation: str) -> np.ndarray:
    if activation == "relu":
        return np.maximum(h, 0.0)
    if activation == "logistic":
        return np.asarray(1.0 / (1.0 + np.exp(-h)))
    if activation == "tanh":
        return np.tanh(h)
    return h


def margin(model: ModelIR, X: np.ndarray) -> np.ndarray:
    """Reference evaluator of the IR (slow, plain Python; used in tests and the parity gate)."""
    X = np.asarray(X, dtype=np.float64)
    if isinstance(model, TreeEnsemble):
        if model.n_classes:
            margins = np.tile(np.asarray(model.class_base_scores, dtype=np.float64), (X.shape[0], 1))
            for tree, c in zip(model.trees, model.tree_class, strict=True):
                margins[:, c] += _tree_leaf_values(tree, X, model.split_op)
            return margins
        total = np.full(X.shape[0], model.base_score, dtype=np.float64)
        for tree in model.trees:
            total += _tree_leaf_values(tree, X, model.split_op)
        return total
    Xf = _impute(X, model.missing_replacement)
    if isinstance(model, Glm):
        return np.asarray(model.intercept + Xf @ np.asarray(model.coefficients, dtype=np.float64))
    h = (Xf - np.asarray(model.shift)) / np.asarray(model.scale)
    with np.errstate(over="ignore"):
        for layer in model.layers:
            h = _activate(h @ np.asarray(layer.weights, dtype=np.float64) + np.asarray(layer.bias), layer.activation)
    if model.link == "softmax":
        return np.asarray(h, dtype=np.float64)
    return np.asarray(h[:, 0], dtype=np.float64)


def predict(model: ModelIR, X: np.ndarray) -> np.ndarray:
    return apply_link(margin(model, X), model.link)


def to_dict(model: ModelIR) -> dict[str, Any]:
    return asdict(model)


def from_dict(d: dict[str, Any]) -> ModelIR:
    if d.get("kind") == "glm":
        return Glm(**d)
    if d.get("kind") == "mlp":
        layers = [Layer(**layer) for layer in d["layers"]]
        return Mlp(layers=layers, **{k: v for k, v in d.items() if k != "layers"})
    trees = [Tree(**t) for t in d["trees"]]
    rest = {k: v for k, v in d.items() if k != "trees"}
    return TreeEnsemble(trees=trees, **rest)
