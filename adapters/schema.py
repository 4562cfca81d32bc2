"""The bundle's feature schema: each feature's type, and how a categorical string becomes the float64 the
adapters take.

    manifest["features"] = [
        {"name": "amount", "type": "number"},
        {"name": "country", "type": "categorical", "categories": ["DE", "FR", "US"],
         "unseen": "invalid", "missing_values": ["", "NA"]},
    ]

A bundle without "features" (every bundle `harness build` wrote before categorical features existed) is all
numbers. The adapter contract stays one float64 matrix: a categorical value travels as its **code**, the index
of the string in `categories` (0.0, 1.0, ...), NaN when missing. Adapters whose format takes strings (PMML,
PFA, a scikit-learn pipeline) turn the code back into the string; numeric-only formats take the code as it is
(so categories order is part of the model: LightGBM and H2O number their categories the same way).

Unseen categories follow the model's own rule, recorded per feature as `unseen`:
    "missing"   the value is treated as missing (NaN): LightGBM, XGBoost, H2O, PMML invalidValueTreatment asMissing
    "invalid"   the record is refused (a dead letter with the reason): PMML returnInvalid (PMML's default)
    "as_is"     the value reaches the model, which applies its own rule (PMML asIs, a pipeline's encoder):
                the code is UNSEEN_CODE and string formats receive UNSEEN_TOKEN
    "as_value"  replaced by the category `unseen_value` (PMML asValue with invalidValueReplacement)
A value in `missing_values` (markers such as "" or "NA" a producer writes for missing) is missing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

FeatureType = Literal["number", "categorical"]
UnseenRule = Literal["missing", "invalid", "as_is", "as_value"]
UNSEEN_RULES: tuple[str, ...] = ("missing", "invalid", "as_is", "as_value")

UNSEEN_CODE = -1.0  # an unseen category under the "as_is" rule (codes of known categories are >= 0)
UNSEEN_TOKEN = "\u2400unseen\u2400"  # the string a string format receives for UNSEEN_CODE


class SchemaError(ValueError):
    """A feature value that does not fit the schema (wrong type, unseen category under the "invalid" rule)."""


@dataclass
class Feature:
    name: str
    type: FeatureType = "number"
    categories: list[str] = field(default_factory=list)
    unseen: UnseenRule = "missing"
    unseen_value: str | None = None
    missing_values: list[Any] = field(default_factory=list)
    _index: dict[str, int] = field(init=False, repr=False, default_factory=dict)
    _missing: set[str] = field(init=False, repr=False, default_factory=set)

    def __post_init__(self) -> None:
        if self.type not in ("number", "categorical"):
            raise ValueError(f"feature {self.name!r}: unknown type {self.type!r} (valid: number, categorical)")
        if self.unseen not in UNSEEN_RULES:
            raise ValueError(f"feature {self.name!r}: unknown unseen rule {self.unseen!r}")
        if self.type == "categorical":
            if len(set(self.categories)) != len(self.categories):
                raise ValueError(f"feature {self.name!r}: categories are not unique")
            if UNSEEN_TOKEN in self.categories:
                raise ValueError(f"feature {self.name!r}: a category equals the reserved unseen token")
            if self.unseen == "as_value" and self.unseen_value not in self.categories:
                raise ValueError(f"feature {self.name!r}: unseen_value {self.unseen_value!r} is not a category")
        self._index = {c: i for i, c in enumerate(self.categories)}
        self._missing = {str(v) for v in self.missing_values}

    @property
    def categorical(self) -> bool:
        return self.type == "categorical"

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"name": self.name, "type": self.type}
        if self.categorical:
            d["categories"] = list(self.categories)
            d["unseen"] = self.unseen
            if self.unseen_value is not None:
                d["unseen_value"] = self.unseen_value
        if self.missing_values:
            d["missing_values"] = list(self.missing_values)
        return d

    def code(self, value: Any) -> float:
        """One raw value (a JSON or CSV value: str, number, None) as the float64 the adapters take.
        Raises SchemaError with a reason a user can act on."""
        if value is None:
            return math.nan
        if not self.categorical:
            t = type(value)
            if t is float or t is int:
                v = float(value)
                return math.nan if self._missing and (v in self.missing_values) else v
            if t is str and value in self._missing:
                return math.nan
            raise SchemaError(f"feature {self.name!r} is a number, got {_show(value)}")
        if type(value) is not str:
            raise SchemaError(f"feature {self.name!r} is categorical (a string), got {_show(value)}")
        i = self._index.get(value)
        if i is not None:
            return float(i)
        if value in self._missing:
            return math.nan
        return self._unseen(value)

    def _unseen(self, value: str) -> float:
        if self.unseen == "missing":
            return math.nan
        if self.unseen == "as_is":
            return UNSEEN_CODE
        if self.unseen == "as_value":
            return float(self._index[str(self.unseen_value)])
        shown = ", ".join(self.categories[:8]) + (", ..." if len(self.categories) > 8 else "")
        raise SchemaError(f"feature {self.name!r}: unseen category {value!r} is invalid for this model ({shown})")

    def string(self, code: float) -> str | None:
        """The string a string format receives for a code: the category, None when missing, UNSEEN_TOKEN."""
        if math.isnan(code):
            return None
        i = int(code)
        if i == code and 0 <= i < len(self.categories):
            return self.categories[i]
        return UNSEEN_TOKEN


def _show(value: Any) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text[:40]}{'…' if len(text) > 40 else ''}"


@dataclass
class FeatureSchema:
    features: list[Feature]

    @classmethod
    def numeric(cls, names: list[str]) -> FeatureSchema:
        return cls([Feature(n) for n in names])

    @classmethod
    def from_manifest(cls, manifest: dict[str, Any]) -> FeatureSchema:
        """The manifest's "features", or all numbers in "feature_names" order for bundles without them."""
        names = list(manifest["feature_names"])
        raw = manifest.get("features")
        if not raw:
            return cls.numeric(names)
        features = [Feature(**f) for f in raw]
        if [f.name for f in features] != names:
            raise ValueError("manifest 'features' do not list the same names, in the same order, as 'feature_names'")
        return cls(features)

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.features]

    @property
    def all_numeric(self) -> bool:
        """True when every feature is a number without missing-value markers (the codecs' fast path)."""
        return all(not f.categorical and not f.missing_values for f in self.features)

    @property
    def categorical_indices(self) -> list[int]:
        return [i for i, f in enumerate(self.features) if f.categorical]

    def to_list(self) -> list[dict[str, Any]]:
        return [f.to_dict() for f in self.features]

    def strings(self, X: Any) -> list[list[Any]]:
        """Rows of codes as rows of Python values: floats (None for NaN) and category strings."""
        out: list[list[Any]] = []
        feats = self.features
        for row in X.tolist():
            out.append(
                [f.string(v) if f.categorical else (None if v != v else v) for f, v in zip(feats, row, strict=True)]
            )
        return out
