"""Categorical string features on the wire: the bundle schema turns a JSON string into its category code (the float64
the adapters take), applies the model's rule to an unseen category, refuses a value of the wrong type with a reason,
and leaves the all-numeric path exactly as it was."""

from __future__ import annotations

import math

import numpy as np
import orjson
import pytest

from adapters.schema import UNSEEN_CODE, UNSEEN_TOKEN, Feature, FeatureSchema, SchemaError
from harness.scoring.wire import DecodeError, FeatureCodec

SCHEMA = FeatureSchema(
    [
        Feature("amount"),
        Feature("country", "categorical", categories=["DE", "FR", "US"], unseen="invalid", missing_values=["", "NA"]),
        Feature("mcc", "categorical", categories=["grocery", "travel"], unseen="missing"),
        Feature("channel", "categorical", categories=["online", "terminal"], unseen="as_is"),
        Feature("tier", "categorical", categories=["gold", "basic"], unseen="as_value", unseen_value="basic"),
    ]
)


def decode(codec: FeatureCodec, obj: dict[str, object]) -> list[float]:
    return codec.decode(orjson.dumps(obj)).tolist()


def test_strings_become_category_codes_and_back() -> None:
    codec = FeatureCodec(SCHEMA.names, "json", schema=SCHEMA)
    row = decode(codec, {"amount": 12.5, "country": "US", "mcc": "travel", "channel": "online", "tier": "gold"})
    assert row == [12.5, 2.0, 1.0, 0.0, 0.0]
    assert orjson.loads(codec.encode(np.array(row))) == {
        "amount": 12.5, "country": "US", "mcc": "travel", "channel": "online", "tier": "gold",
    }  # fmt: skip


def test_missing_values_and_markers_are_nan() -> None:
    codec = FeatureCodec(SCHEMA.names, "json", schema=SCHEMA)
    row = decode(codec, {"amount": None, "country": "NA", "mcc": None})  # channel, tier absent
    assert all(math.isnan(v) for v in row)
    assert orjson.loads(codec.encode(np.array(row))) == dict.fromkeys(SCHEMA.names)


def test_unseen_categories_follow_each_features_rule() -> None:
    codec = FeatureCodec(SCHEMA.names, "json", schema=SCHEMA)
    row = decode(codec, {"mcc": "casino", "channel": "phone", "tier": "platinum"})
    assert math.isnan(row[2])  # "missing": LightGBM's, XGBoost's, H2O's rule
    assert row[3] == UNSEEN_CODE  # "as_is": the model decides; string formats receive the token
    assert row[4] == 1.0  # "as_value": PMML's invalidValueReplacement
    assert SCHEMA.strings(np.array([row]))[0][3] == UNSEEN_TOKEN
    with pytest.raises(DecodeError, match=r"feature 'country': unseen category 'XX' is invalid for this model"):
        decode(codec, {"country": "XX"})  # "invalid": PMML's returnInvalid -> a dead letter with this reason


@pytest.mark.parametrize(
    "obj, reason",
    [
        ({"country": 3}, r"feature 'country' is categorical \(a string\), got int 3"),
        ({"country": True}, r"feature 'country' is categorical \(a string\), got bool True"),
        ({"amount": "12.5"}, r"feature 'amount' is a number, got str '12.5'"),
        ({"amount": [1]}, r"feature 'amount' is a number, got list"),
        ({"merchant": "x"}, r"unknown feature 'merchant'"),
    ],
)
def test_a_value_of_the_wrong_type_is_a_decode_error_with_a_reason(obj: dict[str, object], reason: str) -> None:
    codec = FeatureCodec(SCHEMA.names, "json", schema=SCHEMA)
    with pytest.raises(DecodeError, match=reason):
        decode(codec, obj)


def test_all_numeric_bundles_keep_the_numeric_fast_path() -> None:
    names = ["a", "b"]
    for schema in (None, FeatureSchema.numeric(names)):
        codec = FeatureCodec(names, "json", schema=schema)
        assert codec.decode_into.__func__ is FeatureCodec.decode_into  # type: ignore[attr-defined]
        assert codec.encode.__func__ is FeatureCodec.encode  # type: ignore[attr-defined]
    # f64le carries the codes as they are, with or without categorical features
    codec = FeatureCodec(SCHEMA.names, "f64le", schema=SCHEMA)
    assert codec.decode_into.__func__ is FeatureCodec.decode_into  # type: ignore[attr-defined]


def test_feature_rules_are_checked_when_the_schema_is_made() -> None:
    with pytest.raises(ValueError, match="unseen_value 'x' is not a category"):
        Feature("t", "categorical", categories=["a"], unseen="as_value", unseen_value="x")
    with pytest.raises(ValueError, match="categories are not unique"):
        Feature("t", "categorical", categories=["a", "a"])
    with pytest.raises(SchemaError):
        Feature("t", "categorical", categories=["a"], unseen="invalid").code("b")
    manifest = {"feature_names": ["b", "a"], "features": [{"name": "a"}, {"name": "b"}]}
    with pytest.raises(ValueError, match="same order"):
        FeatureSchema.from_manifest(manifest)
    assert FeatureSchema.from_manifest({"feature_names": ["a"]}).all_numeric
