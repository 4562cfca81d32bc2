"""Retail cross-sell propensity: one row per customer; label 1 = bought from the campaign's target category
within 30 days of the offer (~12% by default).

Features (all numeric; units in the names):

- ``tenure_months``: months since the first purchase, 1-180.
- ``recency_days``: days since the last purchase, 0-730 (365 or more exactly when frequency_12m is 0).
- ``frequency_12m``: orders in the last 12 months, 0 or more.
- ``monetary_12m_eur``: spend in the last 12 months, EUR (0 when there was no order).
- ``avg_basket_items``: mean items per order, 1-20.
- ``category_count_12m``: distinct product categories bought in the last 12 months, 0-12.
- ``channel_web`` / ``channel_app`` / ``channel_store``: the customer's main channel, one-hot (exactly one
  of the three is 1).
- ``email_open_rate_90d``: share of marketing emails opened in the last 90 days, 0-1.
- ``email_clicks_30d``: email link clicks in the last 30 days.
- ``discount_share``: share of orders that used a discount code or coupon, 0-1.
- ``loyalty_member``: 1 if enrolled in the loyalty programme.
- ``customer_age_years``: 18-85.

Generating process. A latent activity level (Gamma) drives frequency, recency, spend and the number of
categories; email engagement, discount affinity, channel, loyalty and age are drawn with mild links to
it. The label is Bernoulli(sigmoid(z)) with

    z = b + 0.7*log1p(frequency_12m) - 0.7*log1p(recency_days / 30) + 0.25*category_count_12m
          + 2.0*email_open_rate_90d + 0.35*min(email_clicks_30d, 5) + 0.9*discount_share
          + 0.5*channel_app - 0.3*channel_store + 0.4*loyalty_member - 0.001*(customer_age_years - 40)^2
          + u,   u ~ N(0, 0.8) an unobserved taste term,

with the intercept ``b`` solved (bisection on the generated sample) so that the mean probability is
``positive_rate``. So frequent, recent, broad, email-engaged, discount-minded app users in their thirties
to forties are most likely to take the offer; ``tenure_months``, ``monetary_12m_eur`` and
``avg_basket_items`` have no direct effect (only through their correlation with activity).

Missing values (NaN), completely at random, applied after the label is drawn, rates times
``missing_scale`` (0 disables): ``email_open_rate_90d`` 10% (no email consent), ``customer_age_years``
8% (not given). No other column is ever missing.

Parameters: ``positive_rate`` (default 0.12, in (0, 0.5]), ``missing_scale`` (default 1.0, >= 0).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from harness.datagen import apply_missing, check_common, solve_intercept

CHANNELS: tuple[str, ...] = ("web", "app", "store")
_CHANNEL_SHARE = np.array([0.40, 0.25, 0.35])

MISSING_RATES: dict[str, float] = {"email_open_rate_90d": 0.10, "customer_age_years": 0.08}
NAN_COLUMNS: tuple[str, ...] = tuple(MISSING_RATES)

FEATURES: tuple[str, ...] = (
    "tenure_months",
    "recency_days",
    "frequency_12m",
    "monetary_12m_eur",
    "avg_basket_items",
    "category_count_12m",
    "channel_web",
    "channel_app",
    "channel_store",
    "email_open_rate_90d",
    "email_clicks_30d",
    "discount_share",
    "loyalty_member",
    "customer_age_years",
)


def generate(n_rows: int, seed: int, *, positive_rate: float = 0.12, missing_scale: float = 1.0) -> pd.DataFrame:
    """`n_rows` customers (columns FEATURES + "label"), deterministic for `seed`."""
    check_common(n_rows, seed, missing_scale, positive_rate)
    rng = np.random.default_rng(seed)
    n = n_rows

    activity = rng.gamma(1.5, 1.0, n)  # latent: ~orders per month when active
    tenure = np.clip(np.ceil(rng.gamma(1.8, 20.0, n)), 1, 180).astype(np.int64)
    frequency = rng.poisson(activity * 4.0)
    # An order in the last 12 months means recency < 365 days; none means 365-730 days.
    recent = np.minimum(np.floor(rng.exponential(365.0 / (frequency + 0.5))), 364)
    lapsed = np.minimum(365 + np.floor(rng.exponential(120.0, n)), 730)
    recency = np.where(frequency > 0, recent, lapsed).astype(np.int64)
    avg_basket = np.clip(1 + rng.poisson(2.5, n) + np.floor(rng.exponential(1.0, n)), 1, 20).astype(np.int64)
    order_value = np.exp(rng.normal(np.log(12.0), 0.4, n)) * avg_basket
    monetary = np.round(frequency * order_value * np.exp(rng.normal(0.0, 0.15, n)), 2)
    category_count = np.minimum(rng.binomial(12, 1.0 - np.exp(-0.12 * frequency)), frequency).astype(np.int64)

    channel = rng.choice(3, size=n, p=_CHANNEL_SHARE)
    channel_onehot = np.eye(3, dtype=np.int64)[channel]
    open_rate = np.round(rng.beta(2.0 + 0.3 * np.minimum(activity, 4.0), 5.0), 3)
    clicks = rng.poisson(6.0 * open_rate * rng.uniform(0.2, 1.0, n))
    discount_share = np.round(rng.beta(1.5, 4.0, n), 3)
    loyalty = (rng.random(n) < 0.2 + 0.1 * np.minimum(activity, 3.0)).astype(np.int64)
    age = np.clip(np.round(rng.normal(44.0, 14.0, n)), 18, 85).astype(np.int64)

    score = (
        0.7 * np.log1p(frequency)
        - 0.7 * np.log1p(recency / 30.0)
        + 0.25 * category_count
        + 2.0 * open_rate
        + 0.35 * np.minimum(clicks, 5)
        + 0.9 * discount_share
        + 0.5 * channel_onehot[:, 1]
        - 0.3 * channel_onehot[:, 2]
        + 0.4 * loyalty
        - 0.001 * (age - 40.0) ** 2
        + rng.normal(0.0, 0.8, n)
    )
    intercept = solve_intercept(score, positive_rate)
    label = (rng.random(n) < 1.0 / (1.0 + np.exp(-(score + intercept)))).astype(np.int64)

    frame = pd.DataFrame(
        {
            "tenure_months": tenure,
            "recency_days": recency,
            "frequency_12m": frequency.astype(np.int64),
            "monetary_12m_eur": monetary,
            "avg_basket_items": avg_basket,
            "category_count_12m": category_count,
            "channel_web": channel_onehot[:, 0],
            "channel_app": channel_onehot[:, 1],
            "channel_store": channel_onehot[:, 2],
            "email_open_rate_90d": open_rate,
            "email_clicks_30d": clicks.astype(np.int64),
            "discount_share": discount_share,
            "loyalty_member": loyalty,
            "customer_age_years": age,
        }
    )
    apply_missing(frame, MISSING_RATES, missing_scale, rng)
    frame["label"] = label
    return frame
