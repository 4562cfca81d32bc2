"""A test adapter that stalls for a known time on known records (for the measurement test).

A row whose first feature equals STALL_MARKER makes predict() sleep `stall_ms`; every row scores 0.25.
Loaded by the scoring loop as `--adapter tests.stall_adapter:StallAdapter`.
"""

from __future__ import annotations

import time

import numpy as np
from pydantic import BaseModel, ConfigDict

from adapters.base import Adapter

STALL_MARKER = -12345.0


class StallOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    stall_ms: float = 250.0
    per_batch_ms: float = 0.0


class StallAdapter(Adapter):
    name = "stall"
    family = "baseline"
    format = None
    Options = StallOptions

    def _open(self) -> None:
        pass

    def _predict(self, X: np.ndarray) -> np.ndarray:
        opts = self.options
        assert isinstance(opts, StallOptions)
        if opts.per_batch_ms:
            time.sleep(opts.per_batch_ms / 1000)
        if (X[:, 0] == STALL_MARKER).any():
            time.sleep(opts.stall_ms / 1000)
        return np.full(X.shape[0], 0.25)
