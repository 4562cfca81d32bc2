"""The reference table of `harness import`: the user's feature rows (CSV with a header row), optionally with a label
column and the producer's own expected scores, read into the bundle schema's encoding.

Every cell is read as text first (no type guessing by pandas), then each feature the model needs is read as the
schema says: a number (an empty cell or NA / NaN / null is missing; anything else that is not a number is an
error naming the column and the row), or a categorical string (its category code; missing markers; unseen
categories by the feature's rule, adapters/schema.py). Rows whose categorical value is invalid for the model
(PMML's returnInvalid) cannot be scored: they are left out of the reference rows and counted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from adapters.schema import Feature, FeatureSchema, SchemaError
from harness.modelbuild.errors import ImportInputError

CSV_MISSING = frozenset({"", "NA", "N/A", "NaN", "nan", "null", "NULL", "None"})


@dataclass
class Table:
    """The reference table as text columns, in file order."""

    path: Path
    columns: dict[str, list[str]]

    @property
    def names(self) -> list[str]:
        return list(self.columns)

    @property
    def n_rows(self) -> int:
        return len(next(iter(self.columns.values()))) if self.columns else 0

    def column_is_numeric(self, name: str) -> bool:
        return all(_number(v) is not None for v in self.columns[name] if v not in CSV_MISSING)

    def numbers(self, name: str) -> np.ndarray:
        """A column as float64 (NaN for missing); an error naming the column and row for a non-number."""
        out = np.empty(self.n_rows, dtype=np.float64)
        for i, v in enumerate(self.columns[name]):
            x = math.nan if v in CSV_MISSING else _number(v)
            if x is None:
                raise ImportInputError(f"{self.path}: column {name!r} must be numeric, row {i + 1} has {v!r}")
            out[i] = x
        return out


@dataclass
class Encoded:
    X: np.ndarray
    kept: np.ndarray  # which table rows are in X (rows invalid for the model are left out)
    dropped_reasons: list[str] = field(default_factory=list)


def _number(text: str) -> float | None:
    try:
        x = float(text)
    except ValueError:
        return None
    return x if not math.isinf(x) else None


def read_table(path: Path) -> Table:
    """The CSV at `path` as text columns; Parquet is not read (pyarrow is not a dependency)."""
    import pandas as pd

    if not path.is_file():
        raise ImportInputError(f"reference table {path} does not exist")
    if path.suffix.lower() in (".parquet", ".pq"):
        raise ImportInputError(f"{path}: Parquet reference tables are not supported; write the rows as CSV")
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, na_filter=False)
    except (ValueError, UnicodeDecodeError, pd.errors.ParserError) as e:
        raise ImportInputError(f"reference table {path} is not a readable CSV: {str(e).splitlines()[0]}") from None
    if frame.shape[0] == 0:
        raise ImportInputError(f"reference table {path} has no rows")
    if len(set(frame.columns)) != len(frame.columns):
        raise ImportInputError(f"reference table {path} has duplicate column names")
    return Table(path, {str(c): frame[c].tolist() for c in frame.columns})


def inferred_feature(table: Table, name: str) -> Feature:
    """A feature's type from the table when the artifact does not declare it: numeric columns are numbers, other
    columns categorical strings with the categories seen in the table (the model's own encoder decides unseen
    ones: rule "as_is")."""
    if table.column_is_numeric(name):
        return Feature(name)
    cats = sorted({v for v in table.columns[name] if v not in CSV_MISSING})
    return Feature(name, "categorical", categories=cats, unseen="as_is", missing_values=[""])


def encode(table: Table, schema: FeatureSchema) -> Encoded:
    """The table's rows in the schema's encoding; a feature the table lacks or a wrong type is an error."""
    missing = [f.name for f in schema.features if f.name not in table.columns]
    if missing:
        raise ImportInputError(
            f"reference table {table.path} lacks feature {missing[0]!r} the model needs"
            + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else "")
            + f"; it has: {', '.join(table.names)}"
        )
    n = table.n_rows
    X = np.empty((n, len(schema.features)), dtype=np.float64)
    kept = np.ones(n, dtype=bool)
    reasons: list[str] = []
    for j, f in enumerate(schema.features):
        if not f.categorical:
            col = table.numbers(f.name)
            if f.missing_values:
                col[np.isin(col, np.asarray(f.missing_values, dtype=np.float64))] = np.nan
            X[:, j] = col
            continue
        for i, v in enumerate(table.columns[f.name]):
            try:
                X[i, j] = f.code(None if (v in CSV_MISSING and v not in f.categories) else v)
            except SchemaError as e:
                kept[i] = False
                X[i, j] = math.nan
                if len(reasons) < 5:
                    reasons.append(f"row {i + 1}: {e}")
    return Encoded(X[kept], kept, reasons)
