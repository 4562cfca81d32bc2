"""scikit-learn trainer: HistGradientBoostingClassifier ("gbm"), an imputer + scaler + logistic
regression pipeline ("logistic_regression") or an imputer + scaler + MLPClassifier pipeline ("mlp", a
neural network), saved with joblib, converted exactly to the IR.

Tasks: "gbm" and "mlp" serve all three (adapters/tasks.py): a regression is HistGradientBoostingRegressor
(loss squared_error, absolute_error or quantile: the raw sum is the prediction) or MLPRegressor (identity output,
IR link identity); a multiclass model is the classifier with k classes: k trees per iteration (tree i of an
iteration adds to class i, each class its own baseline) or k output neurons, link softmax. "logistic_regression"
is binary only (a multinomial GLM is not in the IR).

gbm: every TreePredictor in `_predictors` is a flat node array; sklearn's `_predict_from_raw_data`
goes left when x is NaN and missing_go_to_left, else when x <= num_threshold (raw float64 thresholds,
not the bins). Leaf values already include the learning rate; the margin is `_baseline_prediction`
plus the sum of leaf values, probability = expit(margin). A "split on NaN" has threshold +inf; the IR
stores the largest finite float64 instead (same decision for every finite x, and valid JSON).
Categorical features are refused.

logistic_regression: Pipeline(SimpleImputer(mean), StandardScaler (optional), LogisticRegression).
The scaler is folded into the coefficients: w' = w / scale, b' = b - sum(w * mean / scale);
missing_replacement = the imputer's means. Params go to LogisticRegression, except `standardize`
(bool, default true) which chooses whether the scaler is in the pipeline.

mlp: Pipeline(SimpleImputer(mean), StandardScaler, MLPClassifier). The IR's Mlp keeps the imputer's means
(missing_replacement) and the scaler (shift = mean, scale) as they are, and one Layer per `coefs_[i]` /
`intercepts_[i]` with the hidden activation (relu, logistic, tanh, identity); the last layer is identity and
the link logistic (MLPClassifier's out_activation_ for two classes). Params go to MLPClassifier; defaults
here: hidden_layer_sizes (16, 8), max_iter 300, early_stopping true.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import joblib
import numpy as np
import sklearn
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from adapters.tasks import TaskSpec
from harness.modelbuild.ir import LEAF, Glm, Layer, Mlp, ModelIR, Tree, TreeEnsemble
from harness.modelbuild.trained import TrainedModel

NATIVE_FILE = "model.joblib"
ALGORITHMS = ("gbm", "logistic_regression", "mlp")
_MLP_DEFAULTS: dict[str, Any] = {"hidden_layer_sizes": (16, 8), "max_iter": 300, "early_stopping": True}
_FLOAT_MAX = float(np.finfo(np.float64).max)


class ConversionError(ValueError):
    """The trained model uses a feature the IR cannot represent exactly."""


class SklearnModel(TrainedModel):
    flavor = "sklearn"

    def __init__(self, algorithm: str, model: Any, ir: ModelIR, task: TaskSpec = TaskSpec()) -> None:
        self.algorithm = algorithm
        self.model = model
        self.ir = ir
        self.task = task

    def save_native(self, directory: Path) -> str:
        directory.mkdir(parents=True, exist_ok=True)
        joblib.dump(self.model, directory / NATIVE_FILE)
        return NATIVE_FILE

    def predict(self, X: np.ndarray) -> np.ndarray:
        return sklearn_predict(self.model, self.task, np.asarray(X, dtype=np.float64))

    def library_versions(self) -> dict[str, str]:
        return {"scikit-learn": sklearn.__version__, "joblib": joblib.__version__}


def train(
    algorithm: str,
    params: dict[str, Any],
    X: np.ndarray,
    y: np.ndarray,
    feature_names: list[str],
    seed: int,
    task: TaskSpec = TaskSpec(),
) -> SklearnModel:
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y)
    if X.ndim != 2 or X.shape[1] != len(feature_names):
        raise ValueError(f"X has shape {X.shape}, expected (n, {len(feature_names)})")
    if algorithm == "gbm":
        if params.get("categorical_features") is not None:
            raise ValueError("sklearn trainer: categorical_features is not supported (the IR has numerical splits)")
        est = HistGradientBoostingRegressor if task.task == "regression" else HistGradientBoostingClassifier
        hgb = est(**{**params, "categorical_features": None, "random_state": seed})
        hgb.fit(X, y)
        return SklearnModel(algorithm, hgb, hgb_to_ir(hgb, feature_names), task)
    if algorithm == "logistic_regression" and task.task != "binary":
        raise ValueError(
            f"sklearn trainer: logistic_regression is for a binary task (this one is {task.task}: use gbm or mlp)"
        )
    if algorithm == "logistic_regression":
        rest = dict(params)
        standardize = bool(rest.pop("standardize", True))
        lr = LogisticRegression(**{"max_iter": 1000, **rest, "random_state": seed})
        steps: list[tuple[str, Any]] = [("impute", SimpleImputer(strategy="mean", keep_empty_features=True))]
        if standardize:
            steps.append(("scale", StandardScaler()))
        steps.append(("logistic", lr))
        pipe = Pipeline(steps)
        pipe.fit(X, y)
        return SklearnModel(algorithm, pipe, pipeline_to_ir(pipe, feature_names))
    if algorithm == "mlp":
        net = MLPRegressor if task.task == "regression" else MLPClassifier
        mlp = net(**{**_MLP_DEFAULTS, **params, "random_state": seed})
        imputer = SimpleImputer(strategy="mean", keep_empty_features=True)
        pipe = Pipeline([("impute", imputer), ("scale", StandardScaler()), ("mlp", mlp)])
        pipe.fit(X, y)
        return SklearnModel(algorithm, pipe, mlp_pipeline_to_ir(pipe, feature_names), task)
    raise ValueError(f"sklearn trainer: unknown algorithm {algorithm!r} (valid: {', '.join(ALGORITHMS)})")


def sklearn_predict(model: Any, task: TaskSpec, X: Any) -> np.ndarray:
    """A fitted scikit-learn estimator's output for `task`: P(class 1), the class probabilities, or the value."""
    if task.task == "regression":
        return np.asarray(model.predict(X), dtype=np.float64).reshape(-1)
    proba = np.asarray(model.predict_proba(X), dtype=np.float64)
    return proba[:, 1].copy() if task.task == "binary" else proba


_IDENTITY_LOSSES = ("squared_error", "absolute_error", "quantile")


def hgb_to_ir(model: Any, feature_names: list[str]) -> TreeEnsemble:
    """HistGradientBoostingClassifier (2 or k >= 3 classes) or HistGradientBoostingRegressor -> the IR."""
    name = type(model).__name__
    if getattr(model, "is_categorical_", None) is not None and np.any(model.is_categorical_):
        raise ConversionError(f"{name} with categorical features is not supported")
    regression = isinstance(model, HistGradientBoostingRegressor)
    if regression and model.loss not in _IDENTITY_LOSSES:
        raise ConversionError(
            f"{name} with loss {model.loss!r} is not in the IR (its prediction is not the raw sum; "
            f"the IR holds {', '.join(_IDENTITY_LOSSES)})"
        )
    k = 1 if regression else len(model.classes_)
    per_iteration = 1 if k <= 2 else k
    baseline = np.asarray(model._baseline_prediction, dtype=np.float64).reshape(-1)
    if baseline.size != per_iteration:
        raise ConversionError(f"{name}: {baseline.size} baselines, expected {per_iteration}")
    trees: list[Tree] = []
    tree_class: list[int] = []
    for iteration in model._predictors:
        if len(iteration) != per_iteration:
            raise ConversionError(f"{name}: {len(iteration)} trees per iteration, expected {per_iteration}")
        for c, predictor in enumerate(iteration):
            trees.append(_convert_nodes(predictor.nodes))
            tree_class.append(c)
    if per_iteration > 1:
        return TreeEnsemble(
            feature_names=list(feature_names),
            trees=trees,
            link="softmax",
            split_op="<=",
            n_classes=k,
            tree_class=tree_class,
            class_base_scores=[float(b) for b in baseline],
        )
    return TreeEnsemble(
        feature_names=list(feature_names),
        trees=trees,
        base_score=float(baseline[0]),
        link="identity" if regression else "logistic",
        split_op="<=",
    )


def _convert_nodes(nodes: np.ndarray) -> Tree:
    is_leaf = nodes["is_leaf"].astype(bool)
    if np.any(nodes["is_categorical"][~is_leaf]):
        raise ConversionError("categorical split found: not supported")
    thr = nodes["num_threshold"].astype(np.float64)
    thr = np.where(np.isposinf(thr), _FLOAT_MAX, thr)
    inner = ~is_leaf
    if np.any(np.isnan(thr[inner])) or np.any(np.isneginf(thr[inner])):
        raise ConversionError("split with a NaN or -inf threshold")
    return Tree(
        feature=[LEAF if leaf else int(f) for leaf, f in zip(is_leaf, nodes["feature_idx"], strict=True)],
        threshold=[0.0 if leaf else float(t) for leaf, t in zip(is_leaf, thr, strict=True)],
        left=[-1 if leaf else int(c) for leaf, c in zip(is_leaf, nodes["left"], strict=True)],
        right=[-1 if leaf else int(c) for leaf, c in zip(is_leaf, nodes["right"], strict=True)],
        default_left=[bool(m) and not leaf for leaf, m in zip(is_leaf, nodes["missing_go_to_left"], strict=True)],
        value=[float(v) if leaf else 0.0 for leaf, v in zip(is_leaf, nodes["value"], strict=True)],
    )


def pipeline_to_ir(pipe: Pipeline, feature_names: list[str]) -> Glm:
    n = len(feature_names)
    imputer = pipe.named_steps["impute"]
    lr = pipe.named_steps["logistic"]
    if lr.coef_.shape != (1, n):
        raise ConversionError(f"logistic regression has coefficients of shape {lr.coef_.shape}, expected (1, {n})")
    w = lr.coef_[0].astype(np.float64)
    b = float(lr.intercept_[0])
    scaler = pipe.named_steps.get("scale")
    if scaler is not None:
        mean = scaler.mean_ if scaler.with_mean else np.zeros(n)
        scale = scaler.scale_ if scaler.with_std else np.ones(n)
        w = w / scale
        b = b - float(np.dot(w, mean))
    means = np.asarray(imputer.statistics_, dtype=np.float64)
    if means.shape != (n,):
        raise ConversionError("imputer dropped a feature (keep_empty_features must be true)")
    return Glm(
        feature_names=list(feature_names),
        coefficients=[float(c) for c in w],
        intercept=b,
        link="logistic",
        missing_replacement=[float(m) for m in means],
    )


def mlp_pipeline_to_ir(pipe: Pipeline, feature_names: list[str]) -> Mlp:
    """Pipeline(impute, scale (optional), mlp) -> the IR's Mlp, every number as scikit-learn holds it."""
    n = len(feature_names)
    mlp = pipe.steps[-1][1]
    links = {"logistic": "logistic", "softmax": "softmax", "identity": "identity"}
    if not isinstance(mlp, MLPClassifier | MLPRegressor) or getattr(mlp, "out_activation_", "") not in links:
        raise ConversionError("expected an MLPClassifier or MLPRegressor as the last step")
    imputer = pipe.named_steps.get("impute")
    scaler = pipe.named_steps.get("scale")
    if len(pipe.steps) != 1 + (imputer is not None) + (scaler is not None):
        raise ConversionError("an MLP pipeline may hold only 'impute' (SimpleImputer) and 'scale' (StandardScaler)")
    means: list[float | None] = [None] * n
    if imputer is not None:
        stats = np.asarray(imputer.statistics_, dtype=np.float64)
        if imputer.strategy not in ("mean", "median", "constant") or stats.shape != (n,):
            raise ConversionError("the imputer must keep every feature (keep_empty_features=True)")
        means = [float(m) for m in stats]
    shift, scale = [0.0] * n, [1.0] * n
    if scaler is not None:
        if scaler.with_mean:
            shift = [float(v) for v in scaler.mean_]
        if scaler.with_std:
            scale = [float(v) for v in scaler.scale_]
    acts = [mlp.activation] * (len(mlp.coefs_) - 1) + ["identity"]
    layers = [
        Layer(weights=np.asarray(w, dtype=np.float64).tolist(), bias=[float(b) for b in bias], activation=a)
        for w, bias, a in zip(mlp.coefs_, mlp.intercepts_, acts, strict=True)
    ]
    return Mlp(
        feature_names=list(feature_names),
        layers=layers,
        missing_replacement=means,
        shift=shift,
        scale=scale,
        link=links[mlp.out_activation_],  # type: ignore[arg-type]
    )
