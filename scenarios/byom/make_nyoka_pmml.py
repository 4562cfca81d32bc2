"""Make the "bring your own model" example: a PMML file written by another tool (nyoka, from a scikit-learn
pipeline) with string categorical inputs and missing values, and the reference table to import it with.

    python scenarios/byom/make_nyoka_pmml.py scenarios/byom

writes `fraud_lr.pmml` and `fraud_reference.csv` (1,000 held-out rows: the features, the label, the pipeline's
own scores in `expected`, and a `transaction_id` column the model does not use). The data is the fraud
generator's, with two string columns: `merchant_category` as its name ("grocery", ..., "digital_goods") and
`channel` ("terminal" or "online", from card_present). Missing values: `distance_from_home_km` and
`customer_avg_amount_eur` (5% and 3%), imputed with the training mean by the pipeline, and by the PMML
through MiningField missingValueReplacement.

nyoka (Apache-2.0) converts a Pipeline whose first step is sklearn-pandas' DataFrameMapper, which it recognises by
class name and reads through its `features` list. sklearn-pandas is not a dependency of this project, so this file
defines the same small transformer (per-column transformer lists, outputs side by side).

What nyoka's PMML does not reproduce, so the example's string columns have no missing values: a missing category.
The pipeline's OneHotEncoder(handle_unknown="ignore") encodes it as all zeros, while the PMML's NormDiscrete fields
have no mapMissingTo, so the PMML's prediction is missing. (With an imputer on the column, nyoka writes its
MiningField twice, with and without the replacement, and pmml4s keeps the second: the same result.)
`harness import --expected` catches it, naming the row (tests/test_import.py).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

NUMERIC = ["amount_eur", "customer_avg_amount_eur", "hour_of_day", "txn_count_1h", "distance_from_home_km",
           "foreign_country", "new_merchant", "account_age_days"]  # fmt: skip
CATEGORICAL = ["merchant_category", "channel"]


class DataFrameMapper(BaseEstimator, TransformerMixin):  # type: ignore[misc]
    """sklearn-pandas' DataFrameMapper, the part nyoka reads: `features` = [([columns], [transformers]), ...]."""

    def __init__(self, features: list[tuple[list[str], list[Any]]]) -> None:
        self.features = features

    def fit(self, X: pd.DataFrame, y: Any = None) -> DataFrameMapper:
        for cols, steps in self.features:
            data = X[cols]
            for step in steps:
                data = step.fit_transform(data)
        return self

    def transform(self, X: pd.DataFrame) -> np.ndarray:
        out = []
        for cols, steps in self.features:
            data = X[cols]
            for step in steps:
                data = step.transform(data)
            out.append(data.toarray() if hasattr(data, "toarray") else np.asarray(data, dtype=np.float64))
        return np.hstack(out)


def fraud_frame(rows: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    from harness.datagen import generate
    from harness.datagen.fraud import MERCHANT_CATEGORIES

    X, y, names = generate("fraud", rows, seed, positive_rate=0.05)
    frame = pd.DataFrame(X, columns=names)
    frame["merchant_category"] = [MERCHANT_CATEGORIES[int(c)] for c in frame["merchant_category"]]
    frame["channel"] = np.where(frame["card_present"] == 1, "terminal", "online")
    return frame[NUMERIC + CATEGORICAL], y


def make(out_dir: Path, rows: int = 6000, seed: int = 11, reference_rows: int = 1000) -> tuple[Path, Path, Pipeline]:
    """Train the pipeline, write its PMML with nyoka and the reference table; return both paths and the pipeline."""
    from nyoka import skl_to_pmml

    frame, y = fraud_frame(rows, seed)
    train, ref = frame.iloc[reference_rows:], frame.iloc[:reference_rows].copy()
    mapper = DataFrameMapper(
        [([c], [SimpleImputer(strategy="mean"), StandardScaler()]) for c in NUMERIC]
        + [([c], [OneHotEncoder(handle_unknown="ignore")]) for c in CATEGORICAL]
    )
    pipe = Pipeline([("mapper", mapper), ("lr", LogisticRegression(max_iter=1000))])
    pipe.fit(train, y[reference_rows:])
    out_dir.mkdir(parents=True, exist_ok=True)
    pmml = out_dir / "fraud_lr.pmml"
    skl_to_pmml(pipe, NUMERIC + CATEGORICAL, "label", str(pmml))
    ref.insert(0, "transaction_id", [f"tx-{i:05d}" for i in range(reference_rows)])
    ref["label"] = y[:reference_rows]
    ref["expected"] = pipe.predict_proba(frame.iloc[:reference_rows])[:, 1]
    csv = out_dir / "fraud_reference.csv"
    ref.to_csv(csv, index=False)  # floats as Python writes them: the shortest text that reads back exactly
    return pmml, csv, pipe


if __name__ == "__main__":
    for p in make(Path(sys.argv[1] if len(sys.argv) > 1 else "."))[:2]:
        print(p)
