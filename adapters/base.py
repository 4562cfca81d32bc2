"""The scoring contract every adapter implements: load from a bundle, predict a batch, close.

    adapter = SomeAdapter.load("artifacts/fraud/<model-id>", threads=1)
    p = adapter.predict(X)      # X: (n, n_features) float64, NaN = missing -> what the bundle's task produces:
                                #   binary (n,) P(class 1), regression (n,) the value, multiclass (n, k) the
                                #   class probabilities in the manifest's class order (adapters/tasks.py)
    adapter.close()

Adapters know models and formats, nothing of Kafka, scenarios or measurement. Heavy imports
(onnxruntime, jpype, ...) live inside each adapter's own module, so importing this file is cheap.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict, ValidationError

from adapters.bundle import Bundle
from adapters.errors import AdapterClosed, AdapterError, BadInput, ScoringFailed
from adapters.tasks import TaskError, TaskSpec

FAMILIES = ("native", "generated-code", "external-server", "pmml", "pfa", "onnx", "baseline")


class NoOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Adapter(ABC):
    """Subclasses set `name`, `family`, `format` (the bundle format they read, or None) and
    optionally `Options` (a pydantic model, extra keys forbidden); they implement `_open` and `_predict`.
    """

    name: ClassVar[str]
    family: ClassVar[str]
    format: ClassVar[str | None]
    Options: ClassVar[type[BaseModel]] = NoOptions

    def __init__(self, bundle: Bundle, options: BaseModel) -> None:
        self.bundle = bundle
        self.options = options
        self.n_features = bundle.n_features
        self.task: TaskSpec = bundle.task
        self._closed = False
        self._lock = threading.Lock()

    @classmethod
    def load(cls, bundle: str | Path | Bundle, **options: Any) -> Adapter:
        b = bundle if isinstance(bundle, Bundle) else Bundle.open(bundle)
        try:
            opts = cls.Options(**options)
        except ValidationError as e:
            first = e.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "options"
            valid = ", ".join(cls.Options.model_fields) or "none"
            raise AdapterError(
                f"adapter {cls.name!r}: option {where}: {first['msg']} (valid options: {valid})"
            ) from None
        self = cls(b, opts)
        self._open()
        return self

    @abstractmethod
    def _open(self) -> None:
        """Load the model from self.bundle: from `bundle.verified_bytes(self.format)`, the bytes that were checked."""

    @abstractmethod
    def _predict(self, X: np.ndarray) -> np.ndarray:
        """Score a validated (n, n_features) float64 C-contiguous array; return (n,) float64, or (n, k) class
        probabilities for a multiclass task (`self.task`)."""

    def predict(self, X: Any) -> np.ndarray:
        if self._closed:
            raise AdapterClosed(f"adapter {self.name!r} is closed")
        Xa = check_batch(X, self.n_features)
        out = self._predict(Xa)
        if self.task.vector and isinstance(out, np.ndarray) and out.dtype == np.float64 and out.ndim == 1:
            if out.shape[0] != Xa.shape[0]:  # the common case, checked without a copy
                raise ScoringFailed(f"adapter {self.name!r} returned {out.shape[0]} scores for {Xa.shape[0]} rows")
            return np.ascontiguousarray(out)
        try:
            return self.task.shape_of(out, Xa.shape[0])
        except TaskError as e:
            raise ScoringFailed(f"adapter {self.name!r} {e}") from None

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._close()

    def _close(self) -> None:
        """Release resources; default: nothing."""

    def __enter__(self) -> Adapter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def parse_options(pairs: Sequence[str] | None) -> dict[str, str]:
    """["k=v", ...] as a user writes them -> {"k": "v"}; values stay strings and the adapter's pydantic
    Options coerce them ("64" to an int, "true" to a bool), the same for every command."""
    out: dict[str, str] = {}
    for pair in pairs or ():
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise AdapterError(f"option {pair!r} is not key=value")
        out[key.strip()] = value
    return out


def check_batch(X: Any, n_features: int) -> np.ndarray:
    try:
        Xa = np.asarray(X, dtype=np.float64)
    except (TypeError, ValueError):
        raise BadInput("batch has non-numeric values: every feature must be a number or NaN") from None
    if Xa.ndim == 1 and Xa.size == n_features:
        Xa = Xa.reshape(1, -1)
    if Xa.ndim != 2:
        raise BadInput(f"batch must be 2-D (rows x {n_features} features), got {Xa.ndim}-D")
    if Xa.shape[0] == 0:
        raise BadInput("batch is empty: give at least one row")
    if Xa.shape[1] != n_features:
        raise BadInput(f"batch has {Xa.shape[1]} columns, the model takes {n_features}")
    if np.isinf(Xa).any():
        raise BadInput("batch has an infinite value: use NaN for missing")
    return np.ascontiguousarray(Xa)
