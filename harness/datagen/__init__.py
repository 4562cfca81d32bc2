"""Seeded synthetic data for the three scenarios: card fraud, predictive maintenance, retail cross-sell.

Each scenario module exposes ``generate(n_rows, seed, **params) -> pandas.DataFrame`` (feature columns,
then a ``label`` column: int 0/1, or for a module's other targets a float (regression) or a string (the class);
the params are keyword-only), ``FEATURES`` (the column order),
``MISSING_RATES`` (the columns that get an independent NaN mask, with their rates before
``missing_scale``) and ``NAN_COLUMNS`` (every column that can hold NaN; a derived column may share its
source's mask). Every generator draws from ``numpy.random.default_rng(seed)`` alone, so
(name, n_rows, seed, params) fixes the output.
All features are numeric; how categoricals are encoded is documented in each module.

``generate(name, ...)`` here is the entry point for the harness: it validates the name and the params
(one clear ValueError listing the valid choices) and returns (X float64, y int64, feature names).

The small helpers below are shared by the scenario modules; they are defined before the scenario
modules are imported at the bottom of this file.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd


def solve_intercept(score: np.ndarray, target_rate: float) -> float:
    """The intercept b such that mean(sigmoid(score + b)) == target_rate (bisection, vectorised)."""
    lo, hi = -60.0, 60.0
    for _ in range(50):
        mid = 0.5 * (lo + hi)
        rate = float(np.mean(1.0 / (1.0 + np.exp(-(score + mid)))))
        if rate < target_rate:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def apply_missing(frame: pd.DataFrame, rates: dict[str, float], scale: float, rng: np.random.Generator) -> None:
    """Set each column in `rates` to NaN on an independent Bernoulli(rate * scale) row mask, in place."""
    for column, rate in rates.items():
        mask = rng.random(len(frame)) < min(rate * scale, 1.0)
        values = frame[column].to_numpy(dtype=np.float64, copy=True)
        values[mask] = np.nan
        frame[column] = values


def check_common(n_rows: int, seed: int, missing_scale: float, positive_rate: float | None = None) -> None:
    """Validate the arguments every generator takes (and the target positive rate where there is one); raise
    one-line ValueErrors."""
    if positive_rate is not None and not 0.0 < positive_rate <= 0.5:
        raise ValueError(f"positive_rate must be in (0, 0.5], got {positive_rate!r}")
    if isinstance(n_rows, bool) or not isinstance(n_rows, int | np.integer) or n_rows < 1:
        raise ValueError(f"n_rows must be a positive integer, got {n_rows!r}")
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if not np.isfinite(missing_scale) or missing_scale < 0:
        raise ValueError(f"missing_scale must be a finite number >= 0, got {missing_scale!r}")


from harness.datagen import cross_sell, fraud, maintenance  # noqa: E402  (the modules use the helpers above)

GENERATORS: dict[str, Callable[..., pd.DataFrame]] = {
    "fraud": fraud.generate,
    "maintenance": maintenance.generate,
    "cross_sell": cross_sell.generate,
}


def params_of(name: str) -> dict[str, Any]:
    """The keyword parameters generator `name` accepts, with their defaults."""
    if name not in GENERATORS:
        raise ValueError(f"unknown generator {name!r}; valid generators: {', '.join(sorted(GENERATORS))}")
    signature = inspect.signature(GENERATORS[name])
    return {p.name: p.default for p in signature.parameters.values() if p.kind is inspect.Parameter.KEYWORD_ONLY}


def generate(name: str, n_rows: int, seed: int, **params: Any) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Rows of scenario `name`: (X float64 (n_rows, n_features) with NaN for missing, y (int64 0/1; float64 for a
    regression target; object, the class strings, for a multiclass target), feature names)."""
    valid = params_of(name)
    unknown = sorted(set(params) - set(valid))
    if unknown:
        listed = ", ".join(f"{k} (default {v!r})" for k, v in valid.items())
        raise ValueError(f"unknown parameter(s) for generator {name!r}: {', '.join(unknown)}; valid: {listed}")
    frame = GENERATORS[name](n_rows, seed, **params)
    feature_names = [c for c in frame.columns if c != "label"]
    X = frame[feature_names].to_numpy(dtype=np.float64)
    label = frame["label"]
    if label.dtype == object or pd.api.types.is_string_dtype(label.dtype):
        y = label.astype(object).to_numpy(dtype=object)
    elif pd.api.types.is_float_dtype(label.dtype):
        y = label.to_numpy(dtype=np.float64)
    else:
        y = label.to_numpy(dtype=np.int64)
    return X, y, feature_names


__all__ = ["GENERATORS", "generate", "params_of"]
