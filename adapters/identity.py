"""The Kafka-only ceiling: returns 0.5 for every row without looking at a model.

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
        return np.full(X.shape[0], 0.5)
