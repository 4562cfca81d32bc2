"""The seeded scenario generators: determinism, shapes, documented NaN, positive rates, learnability, speed."""

from __future__ import annotations

import time
from types import ModuleType

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import roc_auc_score

from harness import datagen
from harness.datagen import cross_sell, fraud, maintenance

MODULES: dict[str, ModuleType] = {"fraud": fraud, "maintenance": maintenance, "cross_sell": cross_sell}
NAMES = sorted(MODULES)

# (low, high) band for the positive rate at 100k rows with default params.
POSITIVE_RATE_BAND = {"fraud": (0.008, 0.012), "maintenance": (0.029, 0.041), "cross_sell": (0.105, 0.135)}
# Minimum held-out ROC AUC (train on seed s, score seed s+1, 20k rows each); measured over four seeds:
# fraud 0.914-0.935, maintenance 0.973-0.981, cross_sell 0.857-0.868.
MIN_AUC = {"fraud": 0.85, "maintenance": 0.92, "cross_sell": 0.78}


def test_registry_maps_the_three_scenarios_to_their_modules() -> None:
    assert set(datagen.GENERATORS) == {"fraud", "maintenance", "cross_sell"}
    for name, module in MODULES.items():
        assert datagen.GENERATORS[name] is module.generate


@pytest.mark.parametrize("name", NAMES)
def test_same_seed_same_data_different_seed_different_data(name: str) -> None:
    X1, y1, f1 = datagen.generate(name, 3000, 11)
    X2, y2, f2 = datagen.generate(name, 3000, 11)
    X3, y3, _ = datagen.generate(name, 3000, 12)
    np.testing.assert_array_equal(X1, X2)  # NaN compare equal here
    np.testing.assert_array_equal(y1, y2)
    assert f1 == f2
    assert not np.array_equal(X1, X3, equal_nan=True)
    assert not np.array_equal(y1, y3)


@pytest.mark.parametrize("name", NAMES)
def test_shapes_dtypes_and_feature_names(name: str) -> None:
    module = MODULES[name]
    frame = module.generate(500, 3)
    assert isinstance(frame, pd.DataFrame)
    assert list(frame.columns) == [*module.FEATURES, "label"]
    assert frame.shape == (500, len(module.FEATURES) + 1)
    assert all(pd.api.types.is_numeric_dtype(frame[c]) for c in frame.columns)

    X, y, names = datagen.generate(name, 500, 3)
    assert names == list(module.FEATURES)
    assert X.dtype == np.float64 and X.shape == (500, len(names))
    assert y.dtype == np.int64 and y.shape == (500,)
    assert set(np.unique(y)) <= {0, 1}
    np.testing.assert_array_equal(X, frame[names].to_numpy(dtype=np.float64))


@pytest.mark.parametrize("name", NAMES)
def test_nan_only_in_documented_columns_at_documented_rates(name: str) -> None:
    module = MODULES[name]
    X, _, names = datagen.generate(name, 50_000, 5)
    nan_rate = dict(zip(names, np.isnan(X).mean(axis=0), strict=True))
    assert {c for c, r in nan_rate.items() if r > 0} == set(module.NAN_COLUMNS)
    for column, rate in module.MISSING_RATES.items():
        assert rate * 0.8 < nan_rate[column] < rate * 1.2, (column, nan_rate[column])

    X_half, _, _ = datagen.generate(name, 50_000, 5, missing_scale=0.5)
    for column, rate in module.MISSING_RATES.items():
        assert rate * 0.4 < np.isnan(X_half[:, names.index(column)]).mean() < rate * 0.6

    X_none, y_none, _ = datagen.generate(name, 5000, 5, missing_scale=0.0)
    assert not np.isnan(X_none).any()


def test_maintenance_temperature_difference_shares_the_process_temperature_mask() -> None:
    frame = maintenance.generate(20_000, 8)
    process_missing = frame["process_temperature_k"].isna().to_numpy()
    assert process_missing.any()
    np.testing.assert_array_equal(process_missing, frame["temperature_difference_k"].isna().to_numpy())
    ok = ~process_missing
    np.testing.assert_allclose(
        frame["temperature_difference_k"][ok],
        frame["process_temperature_k"][ok] - frame["air_temperature_k"][ok],
        atol=0.051,
    )


@pytest.mark.parametrize("name", NAMES)
def test_positive_rate_within_band(name: str) -> None:
    low, high = POSITIVE_RATE_BAND[name]
    _, y, _ = datagen.generate(name, 100_000, 21)
    assert low < y.mean() < high


@pytest.mark.parametrize(("name", "rate"), [("fraud", 0.05), ("cross_sell", 0.3)])
def test_positive_rate_param_is_honoured(name: str, rate: float) -> None:
    _, y, _ = datagen.generate(name, 50_000, 4, positive_rate=rate)
    assert rate * 0.9 < y.mean() < rate * 1.1


@pytest.mark.parametrize("name", NAMES)
def test_a_quick_model_learns_the_structure(name: str) -> None:
    X_train, y_train, _ = datagen.generate(name, 20_000, 1)
    X_test, y_test, _ = datagen.generate(name, 20_000, 2)  # held out: an independent sample
    model = HistGradientBoostingClassifier(max_iter=100, random_state=0).fit(X_train, y_train)
    auc = roc_auc_score(y_test, model.predict_proba(X_test)[:, 1])
    assert auc > MIN_AUC[name], f"{name}: held-out ROC AUC {auc:.3f}"


@pytest.mark.parametrize("name", NAMES)
def test_100k_rows_in_under_two_seconds(name: str) -> None:
    datagen.generate(name, 100, 0)  # warm-up
    start = time.perf_counter()
    X, _, _ = datagen.generate(name, 100_000, 0)
    elapsed_s = time.perf_counter() - start
    assert X.shape[0] == 100_000
    assert elapsed_s < 2.0, f"{name}: {elapsed_s:.2f} s"


def test_fraud_follows_the_documented_drivers() -> None:
    frame = fraud.generate(200_000, 9, missing_scale=0.0)
    rate = frame["label"]
    night = frame["hour_of_day"] <= 5
    assert rate[night].mean() > 2 * rate[~night].mean()
    assert rate[frame["card_present"] == 0].mean() > 2 * rate[frame["card_present"] == 1].mean()
    assert rate[frame["foreign_country"] == 1].mean() > 5 * rate[frame["foreign_country"] == 0].mean()
    high_amount = frame["amount_eur"] > 3 * frame["customer_avg_amount_eur"]
    assert rate[high_amount].mean() > 2 * rate[~high_amount].mean()
    # ranges and encodings
    assert frame["hour_of_day"].between(0, 23).all()
    assert set(frame["merchant_category"].unique()) == set(range(len(fraud.MERCHANT_CATEGORIES)))
    assert (frame["amount_eur"] >= 0.5).all()
    assert (frame["txn_count_1h"] <= frame["txn_count_24h"]).all()
    online = frame["merchant_category"].isin([3, 7])  # online_retail, digital_goods
    assert (frame.loc[online, "card_present"] == 0).all()


def test_maintenance_failure_rules_and_noise() -> None:
    quiet = maintenance.generate(100_000, 4, noise=0.0, missing_scale=0.0)
    power_out = (quiet["power_w"] < 3400) | (quiet["power_w"] > 9100)  # a margin for rounding
    assert power_out.any() and quiet.loc[power_out, "label"].all()
    hot = (quiet["temperature_difference_k"] < 8.5) & (quiet["rotational_speed_rpm"] < 1370)
    assert hot.any() and quiet.loc[hot, "label"].all()
    nominal = (
        quiet["power_w"].between(3700, 8800)
        & (quiet["temperature_difference_k"] > 8.8)
        & (quiet["tool_wear_min"] < 190)
        & (quiet["tool_wear_min"] * quiet["torque_nm"] < 10_000)
    )
    assert quiet.loc[nominal, "label"].mean() < 0.003  # only random failures
    assert set(quiet["machine_type"].unique()) == {0, 1, 2}
    assert quiet["air_temperature_k"].between(294, 306).all()

    noisy = maintenance.generate(100_000, 4, noise=3.0, missing_scale=0.0)
    # labels come from the true values, so noise changes the readings but not the failures
    np.testing.assert_array_equal(quiet["label"], noisy["label"])
    assert (quiet["torque_nm"] - noisy["torque_nm"]).abs().mean() > 1.5


def test_maintenance_targets_are_the_same_rows_seen_three_ways() -> None:
    """The regression target (the tool's remaining life) and the multiclass one (the first failure mode) describe the
    same machines as the binary label: the features do not depend on the target."""
    failure = maintenance.generate(30_000, 5)
    rul = maintenance.generate(30_000, 5, target="rul")
    kind = maintenance.generate(30_000, 5, target="failure_type")
    features = list(maintenance.FEATURES)
    pd.testing.assert_frame_equal(failure[features], rul[features])
    pd.testing.assert_frame_equal(failure[features], kind[features])
    assert ((kind["label"] != "none") == (failure["label"] == 1)).all()
    assert set(kind["label"]) == set(maintenance.FAILURE_TYPES)
    assert rul["label"].between(0, 241).all() and 100 < rul["label"].mean() < 120
    # a worn tool has less life left: the target follows its features
    assert np.corrcoef(rul["label"], rul["tool_wear_min"])[0, 1] < -0.9
    worn = kind["label"] == "tool_wear"
    assert (rul.loc[worn, "label"] == 0).all()  # a tool past its end of life has none left
    with pytest.raises(ValueError, match="target must be one of failure, rul, failure_type"):
        maintenance.generate(10, 0, target="cost")


def test_cross_sell_follows_the_documented_drivers() -> None:
    frame = cross_sell.generate(100_000, 6, missing_scale=0.0)
    rate = frame["label"]
    engaged = frame["email_open_rate_90d"] > frame["email_open_rate_90d"].median()
    assert rate[engaged].mean() > 1.3 * rate[~engaged].mean()
    assert rate[frame["recency_days"] <= 30].mean() > 2 * rate[frame["recency_days"] > 365].mean()
    assert rate[frame["channel_app"] == 1].mean() > rate[frame["channel_store"] == 1].mean()
    channels = frame[["channel_web", "channel_app", "channel_store"]]
    assert (channels.sum(axis=1) == 1).all()
    assert ((frame["recency_days"] >= 365) == (frame["frequency_12m"] == 0)).all()
    assert frame["customer_age_years"].between(18, 85).all()


def test_unknown_generator_is_a_value_error_naming_the_valid_ones() -> None:
    with pytest.raises(ValueError, match="valid generators: cross_sell, fraud, maintenance"):
        datagen.generate("churn", 10, 0)


def test_unknown_param_is_a_value_error_listing_the_valid_ones() -> None:
    with pytest.raises(ValueError, match=r"positve_rate.*valid: positive_rate \(default 0.01\), missing_scale"):
        datagen.generate("fraud", 10, 0, positve_rate=0.02)
    with pytest.raises(ValueError, match=r"valid: noise \(default 1.0\), missing_scale"):
        datagen.generate("maintenance", 10, 0, positive_rate=0.02)


def test_params_of_lists_the_keyword_params_and_defaults() -> None:
    assert datagen.params_of("fraud") == {"positive_rate": 0.01, "missing_scale": 1.0, "drift": 0.0}
    assert datagen.params_of("maintenance") == {"noise": 1.0, "missing_scale": 1.0, "target": "failure"}
    assert datagen.params_of("cross_sell") == {"positive_rate": 0.12, "missing_scale": 1.0}


@pytest.mark.parametrize(
    ("name", "n_rows", "seed", "params", "message"),
    [
        ("fraud", 0, 0, {}, "n_rows"),
        ("fraud", 10, -1, {}, "seed"),
        ("fraud", 10, 0, {"positive_rate": 0.0}, "positive_rate"),
        ("cross_sell", 10, 0, {"positive_rate": 0.9}, "positive_rate"),
        ("maintenance", 10, 0, {"noise": -1.0}, "noise"),
        ("maintenance", 10, 0, {"missing_scale": float("nan")}, "missing_scale"),
    ],
)
def test_bad_values_are_value_errors(name: str, n_rows: int, seed: int, params: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        datagen.generate(name, n_rows, seed, **params)
