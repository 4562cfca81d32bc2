"""Scoring one micro-batch so that a misbehaving engine costs only the rows it fails on.

    outcome = BatchScorer(adapter).score(X)     # X: (n, n_features) float64
    outcome.scores[i]         the score of row i (finite), or NaN when row i failed: a number, or a multiclass
                              model's row of class probabilities (adapters/tasks.py)
    outcome.failures[i]       why row i failed, one line (dead-lettered at stage "score")
    raises EngineDown         the engine, not the rows, failed: score the same batch again later

The rules (the loop's accounting invariant rests on them):
- predict raises anything (an AdapterError, or a ValueError from scikit-learn, ...): the batch is scored
  again row by row, and only the rows that fail alone are failures. The loop lives.
- a score that is not a finite number (NaN from a PMML engine answering null, inf from an overflowing
  GLM) is a failure of that row: it never becomes a result.
- EngineUnavailable (server down, timeout, 5xx, JVM gone) is the engine's fault: EngineDown, nothing fails.
- To tell a broken engine from broken rows, a canary — a row that scored before, or the bundle's first
  reference row — is scored: when EngineUnavailable comes back but the canary scores, the batch itself
  provoked it (a 5xx on one record), and it is isolated like any failure; when every row of a batch fails
  alone and the canary fails too, the engine is broken, and that is EngineDown as well.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from adapters.base import Adapter
from adapters.errors import AdapterError, EngineUnavailable
from adapters.tasks import finite_rows
from harness.scoring.wire import one_line

Predict = Callable[[np.ndarray], np.ndarray]


class EngineDown(Exception):
    """The engine cannot score now; no row of the batch is to blame."""


@dataclass
class Outcome:
    scores: np.ndarray
    failures: dict[int, str] = field(default_factory=dict)


def describe(exc: BaseException) -> str:
    """One line for a dead letter: our own errors as they are, anything else with its type."""
    if isinstance(exc, AdapterError):
        return one_line(str(exc))
    text = one_line(str(exc))
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class BatchScorer:
    """Scores batches through `predict` (the adapter's, or a wrapper such as the watchdog's), isolating
    failures row by row. Keeps the last row that scored as the canary."""

    def __init__(self, adapter: Adapter, canary: np.ndarray | None = None, predict: Predict | None = None) -> None:
        self.adapter = adapter
        self._predict = predict or adapter.predict
        self.canary = None if canary is None else np.array(canary, dtype=np.float64).reshape(1, -1)
        self.predict_seconds = 0.0

    def score(self, X: np.ndarray) -> Outcome:
        try:
            scores = np.array(self._call(X), dtype=np.float64)
        except EngineUnavailable as e:
            if self._canary_scores() is not True:
                raise EngineDown(describe(e)) from None
            return self._isolate(X)
        except Exception:
            return self._isolate(X)
        finite = finite_rows(scores)
        if finite.all():
            self._remember(X[0])
            return Outcome(scores)
        if not finite.any():  # every row non-finite: score them alone (and ask the canary) like any failure
            return self._isolate(X)
        self._remember(X[int(np.argmax(finite))])
        return Outcome(scores, {int(i): _not_finite(scores[i]) for i in np.flatnonzero(~finite)})

    def _isolate(self, X: np.ndarray) -> Outcome:
        """Each row alone; EngineDown when the engine, not the rows, is what fails."""
        n = X.shape[0]
        scores = self.adapter.task.empty(n)
        failures: dict[int, str] = {}
        for i in range(n):
            try:
                p = np.asarray(self._call(X[i : i + 1]), dtype=np.float64)[0]
            except EngineUnavailable as e:
                if self._canary_scores() is not True:
                    raise EngineDown(describe(e)) from None
                failures[i] = describe(e)
                continue
            except Exception as e:
                failures[i] = describe(e)
                continue
            if np.isfinite(p).all():
                scores[i] = p
                self._remember(X[i])
            else:
                failures[i] = _not_finite(p)
        if len(failures) == n and self._canary_scores() is False:
            first = failures[0]
            raise EngineDown(f"every row failed, and so does a row that scored before: {first}")
        return Outcome(scores, failures)

    def _canary_scores(self) -> bool | None:
        """True when the canary row scores a finite number, False when it does not, None without a canary."""
        if self.canary is None:
            return None
        try:
            return bool(np.isfinite(self._call(self.canary)[0]).all())
        except Exception:
            return False

    def _remember(self, row: np.ndarray) -> None:
        if self.canary is None:
            self.canary = np.array(row, dtype=np.float64).reshape(1, -1)

    def _call(self, X: np.ndarray) -> np.ndarray:
        t0 = time.perf_counter()
        try:
            return self._predict(X)
        finally:
            self.predict_seconds += time.perf_counter() - t0


def _not_finite(v: Any) -> str:
    if np.ndim(v):  # a multiclass row
        bad = next(float(x) for x in np.asarray(v).reshape(-1) if not np.isfinite(x))
        return f"the model returned {bad!r} among this record's class probabilities, not a finite score"
    return f"the model returned {float(v)!r} for this record, not a finite score"
