"""PFA through titus2 (pure Python), one `engine.action` per row.

The document is the one harness.build.export_pfa writes: input an array of doubles in the bundle's
feature order (NaN = missing), output one double, P(class 1). titus2 is imported through
adapters.titus_compat (it predates Python 3.11 and NumPy 2).

The document is read from the very bytes whose sha256 matched the manifest (`Bundle.verified_bytes`,
decoded as UTF-8 and handed to titus as a JSON string): a file swapped after the check is never read.

An engine is not thread-safe (it keeps per-action state), so predict holds the adapter's lock.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from adapters.base import Adapter
from adapters.errors import BundleError, ScoringFailed
from adapters.titus_compat import pfa_engine_class


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    first = text.splitlines()[0] if text else ""
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


class PfaAdapter(Adapter):
    name = "pfa"
    family = "pfa"
    format = "pfa"

    def _open(self) -> None:
        data = self.bundle.verified_bytes("pfa")
        path = self.bundle.file_path("pfa")
        engine_class = pfa_engine_class()
        try:
            engines = engine_class.fromJson(data.decode("utf-8"))
        except Exception as e:  # titus raises many kinds (syntax, semantics, Avro schema) when it reads a document
            raise BundleError(f"titus cannot load {path}: {_one_line(e)}") from None
        self._engine: Any = engines[0]
        itype = str(self._engine.config.input)  # the Avro schema as JSON text
        if json.loads(itype) != {"type": "array", "items": "double"}:
            raise BundleError(f"{path} takes input {itype}; the pfa adapter feeds an array of doubles")

    def _predict(self, X: np.ndarray) -> np.ndarray:
        action = self._engine.action
        out = np.empty(X.shape[0], dtype=np.float64)
        i = 0
        with self._lock:
            try:
                for i, row in enumerate(X.tolist()):
                    # check=False: check_batch already made every row n_features floats (NaN allowed).
                    out[i] = action(row, check=False)
            except Exception as e:  # PFARuntimeException, PFAUserException, or a Python error inside titus
                raise ScoringFailed(f"titus failed on row {i} of the batch: {_one_line(e)}") from None
        return out

    def _close(self) -> None:
        self._engine = None
