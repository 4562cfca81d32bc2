"""Make an XGBoost model file and its reference table, as someone who trained XGBoost in their own pipeline would
hand them over:

    python scenarios/byom/make_xgboost_json.py artifacts/byom-src

writes `fraud_xgb.json` (XGBoost's JSON model, feature names inside), `fraud_xgb.ubj` (the same model as UBJSON)
and `fraud_xgb_reference.csv` (1,000 held-out rows of the fraud generator's data with missing values, the label,
XGBoost's own scores in `expected`, and a `card_id` column the model does not use).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd


def make(out_dir: Path, rows: int = 6000, seed: int = 21, reference_rows: int = 1000) -> tuple[Path, Path]:
    import xgboost as xgb

    from harness.datagen import generate

    X, y, names = generate("fraud", rows, seed, positive_rate=0.05)
    frame = pd.DataFrame(X, columns=names)
    clf = xgb.XGBClassifier(n_estimators=60, max_depth=5, learning_rate=0.1, n_jobs=1, random_state=1)
    clf.fit(frame.iloc[reference_rows:], y[reference_rows:])
    out_dir.mkdir(parents=True, exist_ok=True)
    model = out_dir / "fraud_xgb.json"
    clf.get_booster().save_model(str(model))
    clf.get_booster().save_model(str(out_dir / "fraud_xgb.ubj"))
    ref = frame.iloc[:reference_rows].copy()
    ref.insert(0, "card_id", [f"card-{i:05d}" for i in range(reference_rows)])
    ref["label"] = y[:reference_rows]
    ref["expected"] = clf.predict_proba(frame.iloc[:reference_rows])[:, 1]
    csv = out_dir / "fraud_xgb_reference.csv"
    ref.to_csv(csv, index=False)
    return model, csv


if __name__ == "__main__":
    for p in make(Path(sys.argv[1] if len(sys.argv) > 1 else ".")):
        print(p)
