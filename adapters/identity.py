"""The Kafka-only ceiling: returns a constant for every row without looking at a model (0.5 for a binary model,
0.0 for a regression, 1/k for each of k classes).

It measures what the loop, the encoding and the broker cost with no model in the way.
"""

from __future__ import annotations

import numpy as np

from adapters.base import Adapter


class IdentityAdapter(Adapter):
    name = "identity"
    family = "baseline"
    format = None

    def _open(self) -> None:
        pass

    def _predict(self, X: np.ndarray) -> np.ndarray:
        if self.task.vector:
            return np.full(X.shape[0], 0.5 if self.task.task == "binary" else 0.0)
        return np.full((X.shape[0], self.task.n_outputs), 1.0 / self.task.n_outputs)
