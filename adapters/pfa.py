"""PFA through titus2 (pure Python), one `engine.action` per row.

Input: an array of doubles in the bundle's feature order (NaN = missing), what harness.modelbuild.export_pfa
writes; or a record of named fields (what most PFA producers write), each fed from the bundle feature of the
same name: double/float/int/long fields get numbers, string and enum fields get the category's string (the
bundle schema turns the batch's category codes back into strings), a missing value is null where the field's
type is a union with "null". Output: one double (P(class 1), or the predicted value of a regression), or an array
of doubles, the class probabilities of a multiclass model in the manifest's class order. titus2 is imported through
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
from adapters.errors import BadInput, BundleError, ScoringFailed
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
        otype = json.loads(str(self._engine.config.output))
        wanted: Any = "double" if self.task.vector else {"type": "array", "items": "double"}
        if otype != wanted:
            raise BundleError(
                f"{path} returns {json.dumps(otype)[:60]}; a {self.task.task} model's document returns "
                f"{json.dumps(wanted)}"
            )
        itype = json.loads(str(self._engine.config.input))  # the Avro schema as JSON text
        self._fields: list[tuple[str, int, str, bool]] | None = None
        if itype == {"type": "array", "items": "double"}:
            return
        if not (isinstance(itype, dict) and itype.get("type") == "record"):
            what = json.dumps(itype)[:80]
            raise BundleError(f"{path} takes input {what}; the pfa adapter feeds an array of doubles or a record")
        self._fields = [self._field(f, path) for f in itype["fields"]]

    def _field(self, field: dict[str, Any], path: Any) -> tuple[str, int, str, bool]:
        """(name, bundle column, kind "number" | "int" | "string", nullable) of one record field."""
        name = str(field["name"])
        if name not in self.bundle.feature_names:
            raise BundleError(f"{path} needs input field {name!r}, which the bundle's features do not have")
        kind, nullable = record_field_kind(field["type"])
        if kind is None:
            what = json.dumps(field["type"])[:60]
            raise BundleError(
                f"{path}: input field {name!r} has type {what}; this adapter feeds double, float, int, long, string, "
                "enum, or a union of one of them with null"
            )
        return name, self.bundle.feature_names.index(name), kind, nullable

    def _records(self, X: np.ndarray) -> list[dict[str, Any]]:
        assert self._fields is not None
        features = self.bundle.schema.features
        out = []
        for row in X.tolist():
            rec: dict[str, Any] = {}
            for name, j, kind, nullable in self._fields:
                v = row[j]
                value = features[j].string(v) if features[j].categorical else (None if v != v else v)
                if value is None and not nullable:
                    raise BadInput(f"PFA input field {name!r} cannot be missing (its type has no null)")
                rec[name] = int(value) if kind == "int" and value is not None else value
            out.append(rec)
        return out

    def _predict(self, X: np.ndarray) -> np.ndarray:
        action = self._engine.action
        out = self.task.empty(X.shape[0])
        i = 0
        rows = X.tolist() if self._fields is None else self._records(X)
        with self._lock:
            try:
                for i, row in enumerate(rows):
                    # check=False: check_batch already made every row n_features floats (NaN allowed).
                    out[i] = action(row, check=False)
            except Exception as e:  # PFARuntimeException, PFAUserException, or a Python error inside titus
                raise ScoringFailed(f"titus failed on row {i} of the batch: {_one_line(e)}") from None
        return out

    def _close(self) -> None:
        self._engine = None


def record_field_kind(avro: Any) -> tuple[str | None, bool]:
    """("number" | "int" | "string" | None, nullable) of a record field's Avro type."""
    nullable = False
    if isinstance(avro, list):
        rest = [t for t in avro if t != "null"]
        nullable = len(rest) < len(avro)
        if len(rest) != 1:
            return None, nullable
        avro = rest[0]
    if avro in ("double", "float"):
        return "number", nullable
    if avro in ("int", "long"):
        return "int", nullable
    if avro == "string" or (isinstance(avro, dict) and avro.get("type") == "enum"):
        return "string", nullable
    return None, nullable
