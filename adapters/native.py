"""The training framework's own runtime, in process: LightGBM's Booster, XGBoost's Booster (JSON model),
scikit-learn's estimator (from skops, or joblib), or H2O (delegated to adapters.h2o_mojo.H2ONativeMojoAdapter:
H2O's own scorer, h2o-genmodel, on the MOJO that is the native file of an "h2o" bundle).

A scikit-learn model fitted on a DataFrame (manifest `input: dataframe`, e.g. a pipeline with a OneHotEncoder on
string columns) gets a DataFrame with the bundle's column names: numbers as float64, categorical features as
their strings (NaN when missing, as pandas reads a CSV), so its own encoder sees what it was fitted on.

    adapter = NativeAdapter.load("artifacts/fraud/<model-id>", threads=1)

The file is read once, its sha256 checked against the manifest, and the model is built from those
same bytes: a file changed after the check is never loaded (joblib runs code while unpickling, so
this matters for scikit-learn).
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from adapters.base import Adapter
from adapters.errors import BadInput, BundleError

FLAVORS = ("lightgbm", "sklearn", "h2o", "xgboost")


class NativeOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    threads: int = Field(default=1, ge=1, description="threads the library may use per predict call")


class NativeAdapter(Adapter):
    name = "native"
    family = "native"
    format = "native"
    Options = NativeOptions

    def _open(self) -> None:
        assert isinstance(self.options, NativeOptions)
        self.flavor = str(self.bundle.format_info("native").get("flavor", ""))
        self.threads = self.options.threads
        self._model: Any = None
        self._delegate: Adapter | None = None
        self._limits: Any = None
        if self.flavor == "lightgbm":
            self._open_lightgbm()
        elif self.flavor == "sklearn":
            self._open_sklearn()
        elif self.flavor == "h2o":
            self._open_h2o()
        elif self.flavor == "xgboost":
            self._open_xgboost()
        else:
            raise BundleError(f"native format has flavor {self.flavor!r}; this adapter reads {', '.join(FLAVORS)}")

    def _open_lightgbm(self) -> None:
        import lightgbm as lgb

        text = self.bundle.verified_bytes("native").decode("utf-8")
        try:
            booster = lgb.Booster(model_str=text)
        except lgb.basic.LightGBMError as e:
            raise BundleError(f"native LightGBM model in {self.bundle.root} cannot be read: {e}") from None
        if booster.num_feature() != self.n_features:
            raise BundleError(
                f"LightGBM model takes {booster.num_feature()} features, manifest lists {self.n_features}"
            )
        self._model = booster

    def _open_xgboost(self) -> None:
        import xgboost as xgb

        booster = xgb.Booster()
        try:
            booster.load_model(bytearray(self.bundle.verified_bytes("native")))
        except xgb.core.XGBoostError as e:
            raise BundleError(f"native XGBoost model in {self.bundle.root} cannot be read: {e}") from None
        if booster.num_features() != self.n_features:
            raise BundleError(
                f"XGBoost model takes {booster.num_features()} features, manifest lists {self.n_features}"
            )
        booster.set_param({"nthread": self.threads})
        self._model = booster

    def _open_sklearn(self) -> None:
        from threadpoolctl import ThreadpoolController

        info = self.bundle.format_info("native")
        data = self.bundle.verified_bytes("native")
        if info.get("serialization") == "skops":
            import skops.io as sio

            # the types `harness import` accepted (scikit-learn's own); the bytes are the ones the sha256 matched
            model = sio.loads(data, trusted=list(info.get("trusted_types", [])))
        else:
            import joblib

            model = joblib.load(io.BytesIO(data))
        self._frame = info.get("input") == "dataframe"
        method = "predict" if self.task.task == "regression" else "predict_proba"
        if not hasattr(model, method):
            raise BundleError(
                f"native scikit-learn object {type(model).__name__} has no {method} (the bundle's task is "
                f"{self.task.task})"
            )
        n_in = getattr(model, "n_features_in_", self.n_features)
        if n_in != self.n_features:
            raise BundleError(f"scikit-learn model takes {n_in} features, manifest lists {self.n_features}")
        self._model = model
        # HistGradientBoosting predicts with OpenMP (one parallel region per tree); cap its threads for
        # this adapter's calls only. Left uncapped on a busy 2-core box, a 1-row call of a 100-tree
        # model took ~1.6 ms instead of ~0.5 ms (threads waking up for nothing).
        self._limits = ThreadpoolController().select(user_api="openmp")

    def _open_h2o(self) -> None:
        # Another strategy's module (JPype, a JVM): imported only for H2O bundles. Its native-format
        # subclass reads this bundle's "native" entry (the MOJO) and takes no options: h2o-genmodel
        # scores a batch in one Java thread, so `threads` has nothing to set there.
        from adapters.h2o_mojo import H2ONativeMojoAdapter

        self._delegate = H2ONativeMojoAdapter.load(self.bundle)

    def _predict(self, X: np.ndarray) -> np.ndarray:
        if self.flavor == "lightgbm":
            return np.asarray(self._model.predict(X, num_threads=self.threads), dtype=np.float64)
        if self.flavor == "sklearn":
            rows = self._dataframe(X) if self._frame else X
            with self._limits.limit(limits=self.threads):
                try:
                    if self.task.task == "regression":
                        return np.asarray(self._model.predict(rows), dtype=np.float64)
                    proba = np.asarray(self._model.predict_proba(rows), dtype=np.float64)
                    return proba[:, 1] if self.task.task == "binary" else proba
                except ValueError as e:  # e.g. an encoder with handle_unknown="error" meeting an unseen category
                    raise BadInput(f"scikit-learn refused the batch: {str(e).splitlines()[0]}") from None
        if self.flavor == "xgboost":
            return np.asarray(self._model.inplace_predict(X, missing=np.nan), dtype=np.float64)
        assert self._delegate is not None
        return self._delegate.predict(X)

    def _dataframe(self, X: np.ndarray) -> Any:
        import pandas as pd

        schema = self.bundle.schema
        cols: dict[str, Any] = {}
        for j, f in enumerate(schema.features):
            if f.categorical:
                values = [f.string(v) for v in X[:, j].tolist()]
                cols[f.name] = np.array([np.nan if v is None else v for v in values], dtype=object)
            else:
                cols[f.name] = X[:, j]
        return pd.DataFrame(cols)

    def _close(self) -> None:
        if self._delegate is not None:
            self._delegate.close()
        self._model = None
        self._delegate = None
