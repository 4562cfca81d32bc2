"""LightGBM trainer: a GBM booster for a binary, regression or multiclass task, saved as LightGBM model text,
converted exactly to the IR.

Tasks (the objective follows the task; adapters/tasks.py):
    binary      objective binary (sigmoid 1)                       IR link logistic
    regression  objective regression (L2; or regression_l1, huber,  IR link identity: the sum of the leaves is the
                fair, quantile, mape: their output is the raw sum)   prediction
    multiclass  objective multiclass, num_class k: k trees per       IR n_classes k, tree i adds to class i % k,
                iteration, softmax                                   link softmax
Objectives whose output is transformed otherwise (poisson, gamma, tweedie: exp; multiclassova, cross_entropy) are
refused by the IR converter: a model with one is served natively only.

Conversion reads `booster.dump_model()` (thresholds and leaf values are printed with 17 significant
digits, so they round-trip to the same float64). LightGBM's numerical decision, per node
(include/LightGBM/tree.h, NumericalDecision):

    missing_type "NaN":  NaN goes the default_left way; otherwise x <= threshold.
    missing_type "None": NaN is replaced by 0.0 first, so NaN goes left iff 0.0 <= threshold.
    missing_type "Zero": zero (and NaN) go the default way: not representable in the IR, refused.

Categorical splits (decision_type "==", a model trained on pandas categoricals or with categorical_feature): the
threshold lists the category codes that go left ("0||2||5"); LightGBM 4 (tree.h, CategoricalDecision) sends NaN
and negative codes right, so the IR node has cat_left = those codes and default_left false (measured on 4.7: a NaN
category scores as an unseen one). The category names (the model file's pandas_categorical) go into the IR's
feature_categories when the caller gives them. Linear trees, multiclass and averaged (random forest) outputs are
refused.
The init score (boost_from_average) is folded into the first tree's leaves by LightGBM, so the IR's
base_score is 0.

One more LightGBM rule: when it reads a dense row for prediction it drops every value with
|x| <= kZeroThreshold (1e-35f) and the dropped entries read as 0.0 (src/c_api.cpp,
RowPairFunctionFromDenseMatric). Only thresholds t in [-kZ, kZ) see the difference (LightGBM puts
thresholds at exactly +-kZ when zeros are frequent); the IR moves them so that `x <= t'` gives
LightGBM's answer for every x: t in [-kZ, 0) -> the double just below -kZ, t in [0, kZ) -> kZ.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np

from adapters.tasks import TaskSpec
from harness.modelbuild.ir import Link, Split, Tree, TreeEnsemble, tree_from_nodes
from harness.modelbuild.trained import TrainedModel

NATIVE_FILE = "model.lgb.txt"

# Our defaults; the scenario's params override them (except the ones in _FIXED).
_DEFAULTS: dict[str, Any] = {
    "num_threads": 1,
    "deterministic": True,
    "force_row_wise": True,
    "verbose": -1,
}
_OBJECTIVE_ALIASES = ("objective", "objective_type", "app", "application", "loss")
# regression objectives whose prediction is the raw sum of the leaves (no output transform)
IDENTITY_OBJECTIVES = ("regression", "regression_l1", "huber", "fair", "quantile", "mape")
K_ZERO_THRESHOLD = float(np.float32(1e-35))  # LightGBM's kZeroThreshold (a float literal, 1e-35f)


class ConversionError(ValueError):
    """The trained model uses a feature the IR cannot represent exactly."""


class LightGBMModel(TrainedModel):
    flavor = "lightgbm"

    def __init__(self, algorithm: str, booster: lgb.Booster, feature_names: list[str], task: TaskSpec) -> None:
        self.algorithm = algorithm
        self.model = booster
        self.task = task
        self.ir = booster_to_ir(booster, feature_names)

    def save_native(self, directory: Path) -> str:
        directory.mkdir(parents=True, exist_ok=True)
        self.model.save_model(str(directory / NATIVE_FILE))
        return NATIVE_FILE

    def predict(self, X: np.ndarray) -> np.ndarray:
        out = np.asarray(self.model.predict(np.asarray(X, dtype=np.float64)), dtype=np.float64)
        return self.task.shape_of(out, out.shape[0])

    def predict_margin(self, X: np.ndarray) -> np.ndarray:
        out = self.model.predict(np.asarray(X, dtype=np.float64), raw_score=True)
        return np.asarray(out, dtype=np.float64).reshape(-1)

    def library_versions(self) -> dict[str, str]:
        return {"lightgbm": lgb.__version__}


def train(
    algorithm: str,
    params: dict[str, Any],
    X: np.ndarray,
    y: np.ndarray,
    feature_names: list[str],
    seed: int,
    task: TaskSpec = TaskSpec(),
) -> LightGBMModel:
    """Train a LightGBM GBM for `task`. `params` go to LightGBM as they are (aliases such as
    n_estimators, num_leaves, learning_rate work); `seed` seeds every LightGBM RNG."""
    if algorithm != "gbm":
        raise ValueError(f"lightgbm trainer: unknown algorithm {algorithm!r} (valid: gbm)")
    allowed = {"binary": ("binary",), "regression": IDENTITY_OBJECTIVES, "multiclass": ("multiclass",)}[task.task]
    fixed: dict[str, Any] = {"objective": allowed[0]}
    for key in _OBJECTIVE_ALIASES:
        if key in params:
            if str(params[key]) not in allowed:
                raise ValueError(
                    f"lightgbm trainer: {key}={params[key]!r} is not supported for a {task.task} task "
                    f"(valid: {', '.join(allowed)})"
                )
            fixed = {"objective": str(params[key])}
    if task.task == "multiclass":
        fixed["num_class"] = task.n_outputs
    for key in ("categorical_feature", "categorical_column", "cat_feature", "categorical_features"):
        if key in params:
            raise ValueError(f"lightgbm trainer: {key} is not supported (the IR has numerical splits only)")
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y)
    if X.ndim != 2 or X.shape[1] != len(feature_names):
        raise ValueError(f"X has shape {X.shape}, expected (n, {len(feature_names)})")
    rest = {k: v for k, v in params.items() if k not in _OBJECTIVE_ALIASES}
    full = {**_DEFAULTS, **rest, **fixed, "seed": seed}
    dataset = lgb.Dataset(X, label=y, feature_name=list(feature_names), free_raw_data=True)
    booster = lgb.train(full, dataset)
    return LightGBMModel(algorithm, booster, list(feature_names), task)


def objective_link(objective: str) -> tuple[Link, int]:
    """(IR link, number of classes or 0) of a LightGBM objective line ("binary sigmoid:1", "multiclass
    num_class:3", "regression"); ConversionError for one the IR cannot hold."""
    name, *rest = objective.split()
    if name == "binary":
        sigmoid = _sigmoid_of(objective)
        if sigmoid != 1.0:
            raise ConversionError(f"LightGBM binary objective with sigmoid={sigmoid} is not supported (only 1)")
        return "logistic", 0
    if name in IDENTITY_OBJECTIVES:
        return "identity", 0
    if name in ("multiclass", "softmax"):
        k = next((int(p.split(":", 1)[1]) for p in rest if p.startswith("num_class:")), 0)
        if k < 3:
            raise ConversionError(f"LightGBM multiclass objective with num_class={k}: expected 3 or more")
        return "softmax", k
    raise ConversionError(
        f"LightGBM objective {name!r} is not in the IR (it holds binary, multiclass and the regressions whose output "
        f"is the raw sum: {', '.join(IDENTITY_OBJECTIVES)})"
    )


def booster_to_ir(
    booster: lgb.Booster, feature_names: list[str], categories: dict[str, list[str]] | None = None
) -> TreeEnsemble:
    dump = booster.dump_model()
    link, k = objective_link(str(dump.get("objective", "")))
    per_iteration = int(dump.get("num_tree_per_iteration", 1))
    if per_iteration != (k or 1) or int(dump.get("num_class", 1)) != (k or 1):
        raise ConversionError(
            f"LightGBM model with {per_iteration} trees per iteration and num_class {dump.get('num_class')} "
            f"does not match its objective {dump.get('objective')!r}"
        )
    if dump.get("average_output"):
        raise ConversionError("LightGBM models with averaged output (boosting=rf) are not supported")
    if len(dump.get("feature_names", [])) != len(feature_names):
        raise ConversionError(
            f"booster has {len(dump.get('feature_names', []))} features, expected {len(feature_names)}"
        )
    trees = [_convert_tree(info) for info in dump["tree_info"]]
    multi: dict[str, Any] = {}
    if k:  # tree i of the model file adds to class i % k (LightGBM's layout: iteration-major)
        multi = {"n_classes": k, "tree_class": [i % k for i in range(len(trees))], "class_base_scores": [0.0] * k}
    return TreeEnsemble(
        feature_names=list(feature_names),
        trees=trees,
        base_score=0.0,
        link=link,
        split_op="<=",
        feature_categories=dict(categories or {}),
        **multi,
    )


def _effective_threshold(thr: float) -> float:
    """The IR threshold t' with x <= t' == (0.0 if |x| <= kZ else x) <= thr for every non-NaN x."""
    if -K_ZERO_THRESHOLD <= thr < 0.0:
        return float(np.nextafter(-K_ZERO_THRESHOLD, -np.inf))
    if 0.0 <= thr < K_ZERO_THRESHOLD:
        return K_ZERO_THRESHOLD
    return thr


def _sigmoid_of(objective: str) -> float:
    for part in objective.split()[1:]:
        if part.startswith("sigmoid:"):
            return float(part.split(":", 1)[1])
    return 1.0


def _convert_tree(info: dict[str, Any]) -> Tree:
    return tree_from_nodes(info["tree_structure"], _read_node)


def _read_node(node: dict[str, Any]) -> float | Split:
    if "leaf_value" in node:
        if "leaf_coeff" in node or "leaf_features" in node:
            raise ConversionError("LightGBM linear trees are not supported")
        return float(node["leaf_value"])
    decision = node["decision_type"]
    if decision == "==":  # categorical: the codes that go left; NaN and other codes go right
        codes = sorted(int(c) for c in str(node["threshold"]).split("||"))
        return int(node["split_feature"]), 0.0, False, node["left_child"], node["right_child"], codes
    if decision != "<=":
        raise ConversionError(f"split with decision_type {decision!r} is not supported")
    thr = float(node["threshold"])
    missing = node.get("missing_type", "None")
    if missing == "NaN":
        dl = bool(node["default_left"])
    elif missing == "None":
        dl = thr >= 0.0  # LightGBM turns NaN into 0.0 before comparing
    else:
        raise ConversionError(f"split with missing_type {missing!r} is not supported (zero_as_missing must stay false)")
    return int(node["split_feature"]), _effective_threshold(thr), dl, node["left_child"], node["right_child"]
