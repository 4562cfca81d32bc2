"""What every trainer returns: the native model, its IR, and how to save and score it natively.

Trainer modules (train_lightgbm.py, train_sklearn.py, train_h2o.py) each expose

    def train(algorithm: str, params: dict[str, Any], X: np.ndarray, y: np.ndarray,
              feature_names: list[str], seed: int) -> TrainedModel

    (train_xgboost.py takes the same), and a keyword `task: TaskSpec` (adapters/tasks.py; default binary)

X is float64 with NaN for missing; y is 0/1 (binary), the class index 0..k-1 (multiclass) or the target value
(regression). The build (harness/modelbuild/pipeline.py) then calls the exporters on `ir` (PMML, PFA, compiled C)
and on the native model (ONNX), and holds every format to `predict` (the native predictions: P(class 1), the
class probabilities (n, k), or the predicted value) in its parity gate.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

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
