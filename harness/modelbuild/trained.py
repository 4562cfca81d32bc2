"""What every trainer returns: the native model, its IR, and how to save and score it natively.

Trainer modules (train_lightgbm.py, train_sklearn.py, train_h2o.py, train_xgboost.py) each expose a `Trainer`:

    train(algorithm: str, params: dict[str, Any], X: np.ndarray, y: np.ndarray, feature_names: list[str],
          seed: int, task: TaskSpec = TaskSpec()) -> the trainer's TrainedModel

It refuses an algorithm the trainer does not have and checks the arrays once for every trainer, then hands the
module's own fit function a `TrainingSet`: X float64 (n, d) with NaN for missing, y (n,): 0/1 (binary), the class
index 0..k-1 (multiclass) or the target value (regression), the d feature names, the seed, the task
(adapters/tasks.py; default binary).

The build (harness/modelbuild/pipeline.py) then calls the exporters on `ir` (PMML, PFA, compiled C) and on the
native model (ONNX), and holds every format to `predict` (the native predictions: P(class 1), the class
probabilities (n, k), or the predicted value) in its parity gate.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

import numpy as np

from adapters.tasks import TaskSpec
from harness.modelbuild.ir import ModelIR


class TrainedModel(ABC):
    flavor: str  # "lightgbm" | "sklearn" | "h2o" | "xgboost"
    algorithm: str  # e.g. "gbm", "logistic_regression", "glm", "mlp"
    model: Any  # the trainer's own object
    ir: ModelIR
    task: TaskSpec = TaskSpec()
    # None: the native runtime computes in float64 and its predictions are the parity reference. A number: the
    # native runtime computes in lower precision (XGBoost: float32), so the IR's float64 prediction of the stored
    # model is the reference and the native format is held to this tolerance.
    native_tolerance: float | None = None

    @abstractmethod
    def save_native(self, directory: Path) -> str:
        """Write the trainer's own format into `directory`; return the file name (not the path)."""

    @abstractmethod
    def predict(self, X: np.ndarray) -> np.ndarray:
        """Native predictions of the task's shape: (n,) P(class 1) or value, (n, k) class probabilities."""

    def library_versions(self) -> dict[str, str]:
        return {}

    def reference_predict(self, X: np.ndarray) -> np.ndarray:
        """The predictions every format is held to: the native ones, or the IR's when the native runtime computes
        in lower precision (see native_tolerance)."""
        if self.native_tolerance is None:
            return self.predict(X)
        from harness.modelbuild.ir import predict

        return predict(self.ir, X)


M = TypeVar("M", bound=TrainedModel)


@dataclass(frozen=True)
class TrainingSet:
    """What a trainer fits on, checked by `Trainer`: X float64 (n, d) with NaN for missing, y (n,), the d feature
    names, the seed of every RNG the trainer uses, the task."""

    X: np.ndarray
    y: np.ndarray
    feature_names: list[str]
    seed: int
    task: TaskSpec


class Trainer(Generic[M]):
    """A trainer module's `train`: refuses an unknown algorithm, checks X and y against the feature names, then
    calls the module's `fit(algorithm, params, data)`."""

    def __init__(
        self, flavor: str, algorithms: Sequence[str], fit: Callable[[str, dict[str, Any], TrainingSet], M]
    ) -> None:
        self.flavor = flavor
        self.algorithms = tuple(algorithms)
        self.fit = fit

    def __call__(
        self,
        algorithm: str,
        params: dict[str, Any],
        X: np.ndarray,
        y: np.ndarray,
        feature_names: list[str],
        seed: int,
        task: TaskSpec = TaskSpec(),
    ) -> M:
        if algorithm not in self.algorithms:
            valid = ", ".join(self.algorithms)
            raise ValueError(f"{self.flavor} trainer: unknown algorithm {algorithm!r} (valid: {valid})")
        X = np.asarray(X, dtype=np.float64)
        y = np.asarray(y)
        if X.ndim != 2 or X.shape[1] != len(feature_names):
            raise ValueError(f"X has shape {X.shape}, expected (n, {len(feature_names)})")
        if y.shape != (X.shape[0],):
            raise ValueError(f"y has shape {y.shape}, expected ({X.shape[0]},)")
        return self.fit(algorithm, params, TrainingSet(X, y, list(feature_names), seed, task))
