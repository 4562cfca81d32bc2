"""The model IR: the one place where trainers meet exporters.

Every trainer converts its model into one of two shapes, and every exporter (PMML, PFA, compiled C)
reads only these shapes. N trainers + M formats, not N x M converters.

Semantics (what every exporter must reproduce exactly, in float64):

TreeEnsemble
    margin(x) = base_score + sum(tree.value[leaf(tree, x)] for tree in trees)
    leaf(tree, x): start at node 0; at an inner node with feature f and threshold t:
        if x[f] is NaN:      go left when default_left[node] else right
        elif split_op "<=":  go left when x[f] <= t else right
        elif split_op "<":   go left when x[f] <  t else right
    probability = link(margin); link "logistic" is 1 / (1 + exp(-margin)), "identity" is margin.

Glm
    x'[f] = missing_replacement[f] if x[f] is NaN (and a replacement exists) else x[f]
    margin(x) = intercept + sum(coefficients[f] * x'[f])
    probability = link(margin)

A node is a leaf when feature[node] == -1; its value is value[node]. Inner nodes' value is ignored.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np

Link = Literal["logistic", "identity"]
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

    def __post_init__(self) -> None:
        n = len(self.feature)
        for name in ("threshold", "left", "right", "default_left", "value"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"tree array {name!r} has {len(getattr(self, name))} entries, expected {n}")

    @property
    def n_nodes(self) -> int:
        return len(self.feature)

    def is_leaf(self, node: int) -> bool:
        return self.feature[node] == LEAF


# A split as a converter reads it: (feature, threshold, default_left, left child, right child).
Split = tuple[int, float, bool, Any, Any]


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
            f, t, dl, left_child, right_child = got
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
    return Tree(feature=feature, threshold=threshold, left=left, right=right, default_left=default_left, value=value)


@dataclass
class TreeEnsemble:
    feature_names: list[str]
    trees: list[Tree]
    base_score: float = 0.0
    link: Link = "logistic"
    split_op: SplitOp = "<="
    kind: Literal["tree_ensemble"] = "tree_ensemble"

    @property
    def n_features(self) -> int:
        return len(self.feature_names)


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
        if not self.missing_replacement:
            self.missing_replacement = [None] * len(self.feature_names)

    @property
    def n_features(self) -> int:
        return len(self.feature_names)


ModelIR = TreeEnsemble | Glm


def apply_link(margin: np.ndarray, link: Link) -> np.ndarray:
    if link == "logistic":
        return np.asarray(1.0 / (1.0 + np.exp(-margin)), dtype=np.float64)
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
    for i in range(X.shape[0]):
        row = X[i]
        node = 0
        while feat[node] != LEAF:
            x = row[feat[node]]
            if math.isnan(x):
                go_left = dl[node]
            elif le:
                go_left = x <= thr[node]
            else:
                go_left = x < thr[node]
            node = left[node] if go_left else right[node]
        out[i] = val[node]
    return out


def margin(model: ModelIR, X: np.ndarray) -> np.ndarray:
    """Reference evaluator of the IR (slow, plain Python; used in tests and the parity gate)."""
    X = np.asarray(X, dtype=np.float64)
    if isinstance(model, TreeEnsemble):
        total = np.full(X.shape[0], model.base_score, dtype=np.float64)
        for tree in model.trees:
            total += _tree_leaf_values(tree, X, model.split_op)
        return total
    Xf = X.copy()
    for j, rep in enumerate(model.missing_replacement):
        if rep is not None:
            col = Xf[:, j]
            col[np.isnan(col)] = rep
    return np.asarray(model.intercept + Xf @ np.asarray(model.coefficients, dtype=np.float64))


def predict(model: ModelIR, X: np.ndarray) -> np.ndarray:
    return apply_link(margin(model, X), model.link)


def to_dict(model: ModelIR) -> dict[str, Any]:
    return asdict(model)


def from_dict(d: dict[str, Any]) -> ModelIR:
    if d.get("kind") == "glm":
        return Glm(**d)
    trees = [Tree(**t) for t in d["trees"]]
    rest = {k: v for k, v in d.items() if k != "trees"}
    return TreeEnsemble(trees=trees, **rest)
