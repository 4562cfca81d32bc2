"""An adapter that misbehaves on cue, like real engines do: `--adapter harness.faults.chaos:ChaosAdapter`.

The first feature of a row says what the "engine" does with it; any other row scores
0.5 + 0.5 * tanh(second feature) (0.5 when that is missing), so a test can tell which record a result is for.

    NAN      returns NaN for the row (a PMML engine answering null)
    INF      returns +inf for the row (a GLM overflowing)
    RAISE    predict raises ValueError whenever the batch holds such a row (scikit-learn on a huge value)
    FRAGILE  predict raises RuntimeError when such a row comes with others; alone it scores
    HANG     predict sleeps `hang_s` seconds (an engine that stops answering for a while)

Options: `down_file`: while that file exists, every call raises EngineUnavailable (a model server that is
down); `hang_file`: the first call that finds this file deletes it and never returns (a hung engine, once).
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict

from adapters.base import Adapter
from adapters.errors import EngineUnavailable

NAN = -1001.0
INF = -1002.0
RAISE = -1003.0
FRAGILE = -1004.0
HANG = -1005.0


def expected_score(second_feature: float) -> float:
    """What the adapter returns for a good row (numpy's tanh, bit for bit)."""
    return 0.5 if math.isnan(second_feature) else float(0.5 + 0.5 * np.tanh(np.float64(second_feature)))


class ChaosOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    down_file: str | None = None
    hang_file: str | None = None
    hang_s: float = 3.0


class ChaosAdapter(Adapter):
    name = "chaos"
    family = "baseline"
    format = None
    Options = ChaosOptions

    options: ChaosOptions

    def _open(self) -> None:
        self.calls = 0

    def _predict(self, X: np.ndarray) -> np.ndarray:
        self.calls += 1
        o = self.options
        if o.down_file and Path(o.down_file).exists():
            raise EngineUnavailable(f"chaos engine is down ({o.down_file} exists)")
        if o.hang_file and Path(o.hang_file).exists():
            Path(o.hang_file).unlink(missing_ok=True)
            while True:
                time.sleep(3600)
        kind = X[:, 0]
        if (kind == RAISE).any():
            raise ValueError("Input contains a value too large for dtype('float64')")
        if X.shape[0] > 1 and (kind == FRAGILE).any():
            raise RuntimeError("engine failed on a batch with a fragile row")
        if (kind == HANG).any():
            time.sleep(o.hang_s)
        second = X[:, 1]
        out = np.where(np.isnan(second), 0.5, 0.5 + 0.5 * np.tanh(np.nan_to_num(second)))
        out[kind == NAN] = np.nan
        out[kind == INF] = np.inf
        return out
