"""XGBoost trainer: a gbtree booster for a binary (binary:logistic), regression (reg:squarederror) or multiclass
(multi:softprob) task, saved as XGBoost JSON, converted exactly to the IR.

The conversion reads the saved JSON model (`booster.save_raw("json")`, or a user's .json / .ubj file), so the
same function converts a trained booster and an imported file. XGBoost's prediction (src/predictor, RegTree):

    every input value is read as a float32 (the DMatrix / inplace_predict adapters cast it)
    at an inner node: NaN goes the default_left way; otherwise left iff float32(x) < split_condition (float32)
    margin = base margin + sum of the leaves' values (float32), probability = sigmoid(margin)
    regression (reg:squarederror, reg:absoluteerror, reg:pseudohubererror): the margin is the prediction
    multiclass (multi:softprob, multi:softmax): one margin per class, tree t adds to class tree_info[t],
        base_score holds one base margin per class (XGBoost 3); probabilities = softmax(margins)

The IR compares float64 values, so each threshold t32 becomes t' with `x < t'` == `float32(x) < t32` for every
non-NaN float64 x: t' is the midpoint between t32 and the float32 below it (exact in float64), moved one ulp up
when that midpoint rounds down to the lower float32 (round-half-to-even). Leaf values are the float32s the file
holds, widened exactly. The base margin is the objective's ProbToMargin of `base_score`, computed in float32 as
XGBoost does: -log(1/base_score - 1) (regression and multiclass: base_score is the margin itself). split_op "<",
link logistic / identity / softmax. A per-row base_margin is data, not part of the model: the IR (and every
exported format) predicts without one. A multi:softmax model predicts the class index; the harness serves its
class probabilities (multi:softprob, the same trees): `softprob_json`.

What stays different: XGBoost adds the leaves and the base margin in float32 and computes the sigmoid in
float32, the IR (and every float64 format derived from it) in float64. The native scores are therefore the
IR's to float32 precision (~1e-7; the parity gate gives the native format a float32 tolerance), and the parity
reference of an XGBoost bundle is the IR's float64 prediction of the stored model.

Refused (ConversionError): other objectives (count:poisson, reg:gamma, reg:tweedie: exp; rank:*; survival:*),
multi-target models, dart and gblinear boosters, categorical splits.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from adapters.tasks import TaskSpec
from harness.modelbuild.ir import LEAF, Link, Tree, TreeEnsemble
from harness.modelbuild.trained import TrainedModel

NATIVE_FILE = "model.xgb.json"
NATIVE_TOLERANCE = 1e-6  # XGBoost's float32 sums and sigmoid vs the IR's float64: ~1e-7 measured
BINARY_OBJECTIVES = ("binary:logistic", "reg:logistic")
REGRESSION_OBJECTIVES = ("reg:squarederror", "reg:absoluteerror", "reg:pseudohubererror", "reg:squaredlogerror")
MULTICLASS_OBJECTIVES = ("multi:softprob", "multi:softmax")
_OBJECTIVES = BINARY_OBJECTIVES + REGRESSION_OBJECTIVES + MULTICLASS_OBJECTIVES
_DEFAULTS: dict[str, Any] = {"nthread": 1, "tree_method": "hist", "max_depth": 6, "eta": 0.1}
_TASK_OBJECTIVE = {"binary": "binary:logistic", "regression": "reg:squarederror", "multiclass": "multi:softprob"}


class ConversionError(ValueError):
    """The model uses a feature the IR cannot represent exactly."""


class XGBoostModel(TrainedModel):
    flavor = "xgboost"
    native_tolerance = NATIVE_TOLERANCE

    def __init__(self, algorithm: str, booster: Any, feature_names: list[str], task: TaskSpec) -> None:
        self.algorithm = algorithm
        self.model = booster
        self.task = task
        self.ir = booster_json_to_ir(json.loads(bytes(booster.save_raw("json"))), feature_names)

    def save_native(self, directory: Path) -> str:
        directory.mkdir(parents=True, exist_ok=True)
        (directory / NATIVE_FILE).write_bytes(bytes(self.model.save_raw("json")))
        return NATIVE_FILE

    def predict(self, X: np.ndarray) -> np.ndarray:
        out = np.asarray(self.model.inplace_predict(np.asarray(X, dtype=np.float64), missing=np.nan), dtype=np.float64)
        return self.task.shape_of(out, np.asarray(X).shape[0])

    def library_versions(self) -> dict[str, str]:
        import xgboost

        return {"xgboost": xgboost.__version__}


def train(
    algorithm: str,
    params: dict[str, Any],
    X: np.ndarray,
    y: np.ndarray,
    feature_names: list[str],
    seed: int,
    task: TaskSpec = TaskSpec(),
) -> XGBoostModel:
    """Train an XGBoost gbtree for `task`. `params` go to xgboost.train (n_estimators / num_boost_round: the
    rounds)."""
    import xgboost as xgb

    if algorithm != "gbm":
        raise ValueError(f"xgboost trainer: unknown algorithm {algorithm!r} (valid: gbm)")
    rest = dict(params)
    rounds = int(rest.pop("n_estimators", rest.pop("num_boost_round", 100)))
    objective = _TASK_OBJECTIVE[task.task]
    allowed = {"binary": ("binary:logistic",), "regression": REGRESSION_OBJECTIVES, "multiclass": ("multi:softprob",)}
    if str(rest.get("objective", objective)) not in allowed[task.task]:
        raise ValueError(
            f"xgboost trainer: objective={rest['objective']!r} is not supported for a {task.task} task "
            f"(valid: {', '.join(allowed[task.task])})"
        )
    fixed: dict[str, Any] = {"objective": str(rest.pop("objective", objective))}
    if task.task == "multiclass":
        fixed["num_class"] = task.n_outputs
    if rest.get("booster", "gbtree") != "gbtree":
        raise ValueError("xgboost trainer: only booster gbtree is supported (dart and gblinear are not in the IR)")
    dtrain = xgb.DMatrix(np.asarray(X, dtype=np.float64), label=y, missing=np.nan, feature_names=list(feature_names))
    booster = xgb.train({**_DEFAULTS, **rest, **fixed, "seed": seed}, dtrain, num_boost_round=rounds)
    return XGBoostModel(algorithm, booster, list(feature_names), task)


def softprob_json(doc: dict[str, Any]) -> dict[str, Any]:
    """A multi:softmax model (it predicts the class index) as multi:softprob (the same trees: the class
    probabilities); any other model unchanged."""
    objective = doc["learner"]["objective"]
    if objective.get("name") != "multi:softmax":
        return doc
    out = json.loads(json.dumps(doc))
    out["learner"]["objective"]["name"] = "multi:softprob"
    return out


def objective_task(doc: dict[str, Any]) -> tuple[str, int]:
    """("binary" | "regression" | "multiclass", number of classes or 0) of a saved model's objective."""
    learner = doc["learner"]
    name = str(learner["objective"]["name"])
    if name in BINARY_OBJECTIVES:
        return "binary", 0
    if name in REGRESSION_OBJECTIVES:
        return "regression", 0
    if name in MULTICLASS_OBJECTIVES:
        return "multiclass", int(learner["learner_model_param"].get("num_class", "0"))
    raise ConversionError(
        f"XGBoost objective {name!r} is not supported (binary: {', '.join(BINARY_OBJECTIVES)}; regression: "
        f"{', '.join(REGRESSION_OBJECTIVES)}; multiclass: {', '.join(MULTICLASS_OBJECTIVES)})"
    )


def load_booster(data: bytes) -> Any:
    """An xgboost.Booster from JSON or UBJSON bytes (XGBoost tells the two apart itself)."""
    import xgboost as xgb

    booster = xgb.Booster()
    booster.load_model(bytearray(data))
    return booster


def threshold_for_float32(t32: float) -> float:
    """t' such that, for every non-NaN float64 x, x < t' exactly when float32(x) < t32 (t32 a float32 value)."""
    t = np.float32(t32)
    if not math.isfinite(float(t)):
        return float(t)
    below = np.nextafter(t, np.float32(-np.inf))
    if math.isinf(float(below)):  # t is the lowest float32: the gap below it is that above it
        gap = float(np.nextafter(t, np.float32(np.inf))) - float(t)
        mid = float(t) - gap / 2
    else:
        mid = (float(below) + float(t)) / 2  # exact: float32s have 24-bit significands
    with np.errstate(over="ignore"):
        rounds_up = np.float32(mid) == t
    return mid if rounds_up else float(np.nextafter(mid, np.inf))


def base_margin(base_score: float) -> float:
    """binary:logistic's ProbToMargin in float32, as XGBoost computes it."""
    b = np.float32(base_score)
    if not 0.0 < float(b) < 1.0:
        raise ConversionError(f"base_score {float(b)} is not a probability in (0, 1)")
    with np.errstate(all="ignore"):
        return float(-np.log(np.float32(1.0) / b - np.float32(1.0)))


def _first_float(text: Any) -> float:
    """XGBoost writes base_score as "5E-1" (2.x) or "[5E-1]" (3.x)."""
    return _floats(text)[0]


def _floats(text: Any) -> list[float]:
    """base_score's float32 values: "5E-1", "[5E-1]", or one per class "[-2.3E-1,5.1E-1,-2.8E-1]" (3.x)."""
    return [float(np.float32(float(v))) for v in str(text).strip().strip("[]").split(",") if v.strip()]


def booster_json_to_ir(model: dict[str, Any], feature_names: list[str]) -> TreeEnsemble:
    """The IR of a saved XGBoost model (the JSON document; UBJSON decodes to the same structure)."""
    learner = model["learner"]
    task, k = objective_task(model)
    mp = learner["learner_model_param"]
    if int(mp.get("num_target", "1")) != 1:
        raise ConversionError("multi-target XGBoost models are not supported")
    if task == "multiclass" and k < 3:
        raise ConversionError(f"a multiclass XGBoost model with num_class={k}: expected 3 or more")
    gb = learner["gradient_booster"]
    if gb["name"] != "gbtree":
        raise ConversionError(f"XGBoost booster {gb['name']!r} is not supported (only gbtree)")
    n = int(mp["num_feature"])
    if n != len(feature_names):
        raise ConversionError(f"the model has {n} features, expected {len(feature_names)}")
    types = learner.get("feature_types") or []
    if "c" in types:
        raise ConversionError("categorical features (feature type 'c') are not supported in the IR")
    trees = [_tree(t) for t in gb["model"]["trees"]]
    bases = _floats(mp["base_score"])
    if task == "multiclass":
        tree_info = [int(c) for c in gb["model"].get("tree_info", [])]
        if len(tree_info) != len(trees):
            raise ConversionError("the model's tree_info does not give every tree its class")
        class_bases = bases if len(bases) == k else [bases[0]] * k
        return TreeEnsemble(
            feature_names=list(feature_names),
            trees=trees,
            link="softmax",
            split_op="<",
            n_classes=k,
            tree_class=tree_info,
            class_base_scores=class_bases,
        )
    link: Link = "logistic" if task == "binary" else "identity"
    return TreeEnsemble(
        feature_names=list(feature_names),
        trees=trees,
        base_score=base_margin(bases[0]) if task == "binary" else bases[0],
        link=link,
        split_op="<",
    )


def _tree(t: dict[str, Any]) -> Tree:
    if any(int(s) != 0 for s in t.get("split_type", [])):
        raise ConversionError(f"tree {t.get('id')}: categorical splits are not supported in the IR")
    left, right = t["left_children"], t["right_children"]
    cond, feat, dl = t["split_conditions"], t["split_indices"], t["default_left"]
    leaf = [int(c) == -1 for c in left]
    return Tree(
        feature=[LEAF if lf else int(f) for lf, f in zip(leaf, feat, strict=True)],
        threshold=[0.0 if lf else threshold_for_float32(c) for lf, c in zip(leaf, cond, strict=True)],
        left=[int(c) for c in left],
        right=[int(c) for c in right],
        default_left=[bool(d) and not lf for lf, d in zip(leaf, dl, strict=True)],
        value=[float(np.float32(c)) if lf else 0.0 for lf, c in zip(leaf, cond, strict=True)],
    )
