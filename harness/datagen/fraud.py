"""Card-payment fraud detection: one row per card transaction, label 1 = fraudulent (~1% by default).

Features (all numeric; units in the names):

- ``amount_eur``: transaction amount, EUR, cents, 0.50-20 000.
- ``customer_avg_amount_eur``: the cardholder's usual (median) amount over the last 90 days, EUR.
- ``merchant_category``: integer code, see ``MERCHANT_CATEGORIES`` (0 grocery, 1 fuel, 2 restaurant,
  3 online_retail, 4 travel, 5 electronics, 6 gambling, 7 digital_goods). Nominal, not ordinal.
- ``hour_of_day``: local hour 0-23, drawn from a day-heavy profile.
- ``txn_count_1h`` / ``txn_count_24h``: transactions on the card in the last hour / 24 hours (velocity).
- ``minutes_since_last_txn``: minutes since the card's previous transaction.
- ``distance_from_home_km``: distance between the terminal/IP location and the cardholder's home, km.
- ``foreign_country``: 1 if the merchant is in another country than the card's issuer, else 0.
- ``card_present``: 1 for chip/contactless at a terminal, 0 for card-not-present (online, phone).
- ``new_merchant``: 1 if the card never paid this merchant before, else 0.
- ``account_age_days``: days since the card account was opened.

Generating process. Legitimate behaviour is drawn first: the category from fixed shares, the amount as
the customer's usual amount times a category factor times log-normal noise, the card-present flag with a
category-dependent probability (online_retail and digital_goods are always card-not-present), velocity
from a Poisson rate, distance log-normal (plus 300-3000 km when foreign). The label is then drawn as
Bernoulli(sigmoid(z)) with a fraud score

    z = b + 2.0*[hour in 0..5] + 1.8*log(amount / customer_avg)+ + 1.6*[card not present]
          + 0.7*min(txn_count_1h, 6) + 0.9*log1p(distance_km / 50) + 1.5*foreign_country
          + 1.0*new_merchant + 1.2*[account_age < 90 days] + 0.9*[minutes_since_last_txn < 5]
          + category risk (electronics 1.2, gambling 1.5, digital_goods 1.3, travel 0.6, else 0)

where ``(x)+`` is max(x, 0) and the intercept ``b`` is solved (bisection on the generated sample) so that
the mean fraud probability equals ``positive_rate``. Fraud is therefore more likely at night, for
amounts high relative to the customer's usual, card-not-present, at high velocity, far from home, abroad,
at a new merchant, on young accounts and in risky categories. Nothing else drives the label.

Missing values (NaN), completely at random and applied after the label is drawn (the label used the
true value): ``distance_from_home_km`` 5% (no geolocation), ``customer_avg_amount_eur`` 3% (no history
available). Rates are multiplied by ``missing_scale`` (0 disables missing values). No other column is
ever missing.

Parameters: ``positive_rate`` (default 0.01, in (0, 0.5]), ``missing_scale`` (default 1.0, >= 0),
``drift`` (default 0.0, in [0, 1]).

Drift (``drift`` = d > 0; the drifting-stream scenario, scenarios/drift.yaml): the population and the fraud
pattern both move. Covariate shift: the category shares move by d toward online_retail and digital_goods,
amounts are scaled by (1 + d). Concept shift: the fraudsters' new pattern is daytime, card-present digital
goods at new merchants — the night, card-not-present, foreign and young-account terms are scaled by
(1 - d), the amount-ratio and velocity terms by (1 - 0.7·d); daytime (9-17 h) adds 1.5·d, card present
2.0·d, new_merchant weighs 1.0 + 2.5·d and digital_goods risk 1.3 + 3.0·d. A model trained at d = 0 sees
its score distribution shift and its AUC fall; a model that learns on the drifted stream recovers.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from harness.datagen import apply_missing, check_common, solve_intercept

MERCHANT_CATEGORIES: tuple[str, ...] = (
    "grocery",
    "fuel",
    "restaurant",
    "online_retail",
    "travel",
    "electronics",
    "gambling",
    "digital_goods",
)
_CATEGORY_SHARE = np.array([0.30, 0.12, 0.18, 0.20, 0.05, 0.06, 0.03, 0.06])
_CATEGORY_AMOUNT_FACTOR = np.array([0.8, 1.2, 0.7, 1.3, 4.0, 3.0, 1.0, 0.4])
_CATEGORY_P_PRESENT = np.array([0.97, 0.98, 0.95, 0.0, 0.40, 0.60, 0.30, 0.0])
_CATEGORY_RISK = np.array([0.0, 0.0, 0.0, 0.0, 0.6, 1.2, 1.5, 1.3])

# Share of transactions per local hour 0..23: quiet at night, peaks at lunch and early evening.
_HOUR_WEIGHT = np.array(
    [
        1.0,
        0.6,
        0.4,
        0.3,
        0.3,
        0.5,
        1.2,
        2.5,
        4.0,
        5.0,
        5.5,
        6.0,
        7.0,
        6.5,
        5.5,
        5.5,
        6.0,
        7.0,
        7.5,
        6.5,
        5.0,
        3.5,
        2.5,
        1.5,
    ]
)

MISSING_RATES: dict[str, float] = {"distance_from_home_km": 0.05, "customer_avg_amount_eur": 0.03}
NAN_COLUMNS: tuple[str, ...] = tuple(MISSING_RATES)

FEATURES: tuple[str, ...] = (
    "amount_eur",
    "customer_avg_amount_eur",
    "merchant_category",
    "hour_of_day",
    "txn_count_1h",
    "txn_count_24h",
    "minutes_since_last_txn",
    "distance_from_home_km",
    "foreign_country",
    "card_present",
    "new_merchant",
    "account_age_days",
)


def _drifted_shares(d: float) -> np.ndarray:
    target = np.array([0.15, 0.06, 0.09, 0.35, 0.05, 0.06, 0.03, 0.21])  # online_retail, digital_goods up
    shares = (1.0 - d) * _CATEGORY_SHARE + d * target
    return np.asarray(shares / shares.sum())


def generate(
    n_rows: int, seed: int, *, positive_rate: float = 0.01, missing_scale: float = 1.0, drift: float = 0.0
) -> pd.DataFrame:
    """`n_rows` transactions (columns FEATURES + "label"), deterministic for `seed`."""
    check_common(n_rows, seed, missing_scale, positive_rate)
    if not 0.0 <= drift <= 1.0:
        raise ValueError(f"drift must be in [0, 1], got {drift!r}")
    rng = np.random.default_rng(seed)
    n = n_rows
    d = float(drift)

    category = rng.choice(len(MERCHANT_CATEGORIES), size=n, p=_drifted_shares(d) if d else _CATEGORY_SHARE)
    hour = rng.choice(24, size=n, p=_HOUR_WEIGHT / _HOUR_WEIGHT.sum())
    customer_avg = np.round(np.exp(rng.normal(np.log(35.0), 0.7, n)), 2)
    raw_amount = (1.0 + d) * customer_avg * _CATEGORY_AMOUNT_FACTOR[category] * np.exp(rng.normal(0.0, 0.7, n))
    amount = np.round(np.clip(raw_amount, 0.5, 20_000.0), 2)
    card_present = (rng.random(n) < _CATEGORY_P_PRESENT[category]).astype(np.int64)

    activity = rng.gamma(2.0, 1.5, n)  # the card's typical transactions per day
    txn_24h = rng.poisson(activity) + 1  # includes this one
    txn_1h = np.minimum(rng.binomial(txn_24h - 1, 0.08) + 1 + rng.poisson(0.05, n), txn_24h)
    gap = rng.exponential(1440.0 / (activity + 0.2))
    gap = np.where(txn_1h > 1, np.minimum(gap, rng.uniform(0.2, 59.0, n)), gap)  # another txn within the hour
    minutes_since_last = np.round(np.clip(gap, 0.1, 60.0 * 24 * 60), 1)

    foreign = (rng.random(n) < 0.04).astype(np.int64)
    raw_distance = np.exp(rng.normal(np.log(6.0), 1.1, n)) + foreign * rng.uniform(300.0, 3000.0, n)
    distance = np.round(np.clip(raw_distance, 0.0, 20_000.0), 1)
    new_merchant = (rng.random(n) < 0.15).astype(np.int64)
    account_age = np.floor(rng.gamma(1.5, 700.0, n)).astype(np.int64)

    risk = _CATEGORY_RISK[category] + (3.0 * d) * (category == MERCHANT_CATEGORIES.index("digital_goods"))
    score = (
        2.0 * (1.0 - d) * (hour <= 5)
        + 1.5 * d * ((hour >= 9) & (hour <= 17))
        + 1.8 * (1.0 - 0.7 * d) * np.maximum(np.log(amount / customer_avg), 0.0)
        + 1.6 * (1.0 - d) * (card_present == 0)
        + 2.0 * d * card_present
        + 0.7 * (1.0 - 0.7 * d) * np.minimum(txn_1h, 6)
        + 0.9 * np.log1p(distance / 50.0)
        + 1.5 * (1.0 - d) * foreign
        + (1.0 + 2.5 * d) * new_merchant
        + 1.2 * (1.0 - d) * (account_age < 90)
        + 0.9 * (minutes_since_last < 5.0)
        + risk
    )
    intercept = solve_intercept(score, positive_rate)
    label = (rng.random(n) < 1.0 / (1.0 + np.exp(-(score + intercept)))).astype(np.int64)

    frame = pd.DataFrame(
        {
            "amount_eur": amount,
            "customer_avg_amount_eur": customer_avg,
            "merchant_category": category.astype(np.int64),
            "hour_of_day": hour.astype(np.int64),
            "txn_count_1h": txn_1h.astype(np.int64),
            "txn_count_24h": txn_24h.astype(np.int64),
            "minutes_since_last_txn": minutes_since_last,
            "distance_from_home_km": distance,
            "foreign_country": foreign,
            "card_present": card_present,
            "new_merchant": new_merchant,
            "account_age_days": account_age,
        }
    )
    apply_missing(frame, MISSING_RATES, missing_scale, rng)
    frame["label"] = label
    return frame
