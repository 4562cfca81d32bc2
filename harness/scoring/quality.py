"""How good a model's outputs are against labels, by task (adapters/tasks.py): pure functions of arrays, no I/O.
The measurer (harness/bench/measure.py) computes them on the events it timed, for the scorer's outputs and for
the bundle's reference predictions of the same records; the monitor (harness/monitoring/) on the labels that come
back.

    task         figures                                           labels
    binary       auc (ROC AUC)                                     0 / 1; -1 = none
    multiclass   log_loss (mean -ln p[true class]), accuracy       class index 0..k-1; -1 = none
                 (share of rows whose most probable class is true)
    regression   rmse, mae                                         the true value; NaN = none

Rows without a label are left out. A figure that needs more than the labels give (AUC with one class, anything
with no labelled row) is None.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from adapters.tasks import TaskSpec, predicted_class

LOG_LOSS_EPS = 1e-15
FIGURES: dict[str, tuple[str, ...]] = {
    "binary": ("auc",),
    "multiclass": ("log_loss", "accuracy"),
    "regression": ("rmse", "mae"),
}
# True when a larger value is better (the monitor's "dropped" and compare's "worse" read it)
HIGHER_IS_BETTER: dict[str, bool] = {"auc": True, "accuracy": True, "log_loss": False, "rmse": False, "mae": False}


def labelled(task: str, y: np.ndarray) -> np.ndarray:
    """(n,) bool: the rows that carry a label."""
    y = np.asarray(y)
    if task == "regression":
        return np.isfinite(np.asarray(y, dtype=np.float64))
    return np.asarray(y, dtype=np.float64) >= 0


def auc(y: np.ndarray, scores: np.ndarray) -> float | None:
    """ROC AUC of 0/1 labels against scores; None unless both classes are present."""
    y = np.asarray(y)
    if len(y) == 0 or len(np.unique(y)) < 2:
        return None
    from sklearn.metrics import roc_auc_score

    v = float(roc_auc_score(y, scores))
    return v if math.isfinite(v) else None


def log_loss(y: np.ndarray, probabilities: np.ndarray) -> float | None:
    """Mean -ln p[true class] of class indices `y` and (n, k) probabilities (clipped to [1e-15, 1])."""
    y = np.asarray(y, dtype=np.int64)
    if len(y) == 0:
        return None
    p = np.asarray(probabilities, dtype=np.float64)[np.arange(len(y)), y]
    return float(-np.mean(np.log(np.clip(p, LOG_LOSS_EPS, 1.0))))


def accuracy(y: np.ndarray, probabilities: np.ndarray) -> float | None:
    """Share of rows whose most probable class is the labelled one."""
    y = np.asarray(y, dtype=np.int64)
    if len(y) == 0:
        return None
    return float(np.mean(predicted_class(np.asarray(probabilities, dtype=np.float64)) == y))


def rmse(y: np.ndarray, values: np.ndarray) -> float | None:
    y = np.asarray(y, dtype=np.float64)
    if len(y) == 0:
        return None
    return float(np.sqrt(np.mean((np.asarray(values, dtype=np.float64) - y) ** 2)))


def mae(y: np.ndarray, values: np.ndarray) -> float | None:
    y = np.asarray(y, dtype=np.float64)
    if len(y) == 0:
        return None
    return float(np.mean(np.abs(np.asarray(values, dtype=np.float64) - y)))


def binary_log_loss(y: np.ndarray, scores: np.ndarray) -> float | None:
    """Mean log-loss of 0/1 labels and P(class 1) scores (clipped to [1e-15, 1 - 1e-15])."""
    y = np.asarray(y, dtype=np.float64)
    if len(y) == 0:
        return None
    s = np.clip(np.asarray(scores, dtype=np.float64), LOG_LOSS_EPS, 1 - LOG_LOSS_EPS)
    return float(-np.mean(y * np.log(s) + (1 - y) * np.log(1 - s)))


def quality(task: str, y: np.ndarray, outputs: np.ndarray) -> dict[str, float | None]:
    """The task's figures (FIGURES[task]) of `outputs` ((n,) or (n, k)) against labels `y`, on the labelled rows."""
    keep = labelled(task, y)
    yk, out = np.asarray(y)[keep], np.asarray(outputs, dtype=np.float64)[keep]
    if task == "binary":
        return {"auc": auc(yk.astype(np.int64), out)}
    if task == "multiclass":
        return {"log_loss": log_loss(yk, out), "accuracy": accuracy(yk, out)}
    return {"rmse": rmse(yk, out), "mae": mae(yk, out)}


def parse_label(task: TaskSpec, raw: Any, class_index: dict[str, int] | None = None) -> Any:
    """A feedback label as the task's quality figures take it: 0 or 1 (binary), a finite number (regression), the
    class's index (multiclass: the class as the manifest names it; a number is read as its text). ValueError when
    it is none of these."""
    if isinstance(raw, bool):
        raise ValueError("a label is not a boolean")
    if task.task == "regression":
        value = float(raw)
        if not math.isfinite(value):
            raise ValueError("a regression label must be a finite number")
        return value
    if task.task == "multiclass":
        index = (class_index or {c: i for i, c in enumerate(task.classes)}).get(str(raw))
        if index is None:
            raise ValueError(f"unknown class {raw!r}")
        return index
    label = int(raw)
    if label not in (0, 1) or label != raw:
        raise ValueError("label must be 0 or 1")
    return label
