"""Online learners (river): adapters that score like any other and keep learning from labels.

    learner = OnlineAdapter.load(bundle, model="hat")   # lr | hat | arf
    p = learner.predict(X)                                 # P(class 1) per row, before learning anything new
    learner.learn(X, y)                                    # labels that arrived (test, then train)
    blob = learner.state(); learner.restore(blob)          # a checkpoint, versioned and hashed

The learner starts from the bundle's reference rows (the held-out rows and their labels: the only labelled
data a bundle carries), so it begins near, not at, the offline model's quality, and then follows the
stream. Models: `lr` logistic regression on standardised features (SGD), `hat` a Hoeffding adaptive tree,
`arf` an adaptive random forest (ARF, with drift detectors). Missing values are imputed with the running
mean of the feature seen while learning, as these models take numbers only.

It learns the bundle's task (adapters/tasks.py), as river has each one:
    binary      lr: LogisticRegression        hat: HoeffdingAdaptiveTreeClassifier   arf: ARFClassifier
    regression  lr: LinearRegression          hat: HoeffdingAdaptiveTreeRegressor    arf: ARFRegressor
    multiclass  lr: SoftmaxRegression         hat: HoeffdingAdaptiveTreeClassifier   arf: ARFClassifier
(labels: 0/1, the value, the class index); it predicts what the task produces (P(class 1), the value, the k class
probabilities: a class it has not seen yet has probability 0, and before any label every class has 1/k).

A checkpoint is the pickled river model with a small header: format version, the bundle's model id, the
model kind, and the sha256 of the payload; `restore` refuses anything else with one clear line (a corrupt
or foreign checkpoint is never half-loaded). Pickle is used on bytes this process wrote itself (its own
checkpoint topic or file); the header check comes first.
"""

from __future__ import annotations

import hashlib
import io
import json
import pickle
import struct
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from adapters.base import Adapter
from adapters.errors import AdapterError, BadInput

CHECKPOINT_MAGIC = b"HRLS"  # harness river learner state
CHECKPOINT_VERSION = 1


class CheckpointError(AdapterError):
    """A checkpoint that is not this learner's, or is corrupt: refused, never half-loaded."""


class OnlineOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model: Literal["lr", "hat", "arf"] = "lr"
    seed: int = 1
    warm_start: bool = Field(True, description="learn the bundle's reference rows before scoring")
    arf_models: int = Field(5, ge=1, le=50)


def make_model(kind: str, seed: int, arf_models: int = 5, task: str = "binary") -> Any:
    """A fresh river model of the kind asked for, for the task."""
    from river import forest, linear_model, optim, preprocessing, tree

    if task == "regression":
        if kind == "lr":
            return preprocessing.StandardScaler() | linear_model.LinearRegression(optimizer=optim.SGD(0.01))
        if kind == "hat":
            return tree.HoeffdingAdaptiveTreeRegressor(grace_period=100, seed=seed)
        return forest.ARFRegressor(n_models=arf_models, seed=seed)
    if kind == "lr":
        if task == "multiclass":
            return preprocessing.StandardScaler() | linear_model.SoftmaxRegression(optimizer=optim.SGD(0.05))
        return preprocessing.StandardScaler() | linear_model.LogisticRegression(optimizer=optim.SGD(0.05))
    if kind == "hat":
        return tree.HoeffdingAdaptiveTreeClassifier(grace_period=100, seed=seed)
    return forest.ARFClassifier(n_models=arf_models, seed=seed)


class OnlineAdapter(Adapter):
    name = "online"
    family = "online"
    format = None
    Options = OnlineOptions

    options: OnlineOptions

    def _open(self) -> None:
        o = self.options
        self.kind = o.model
        self.model = make_model(o.model, o.seed, o.arf_models, self.task.task)
        self._names = self.bundle.feature_names
        self._means = np.zeros(len(self._names))
        self._counts = np.zeros(len(self._names))
        self.learned = 0
        if o.warm_start:
            X, y, _ = self.bundle.reference()
            self.learn(X, y)

    # ---- scoring -------------------------------------------------------------------------------------
    def _rows(self, X: np.ndarray) -> list[dict[str, float]]:
        """Feature dicts with a missing value replaced by the running mean seen while learning."""
        filled = np.where(np.isnan(X), self._means, X)
        return [dict(zip(self._names, row.tolist(), strict=True)) for row in filled]

    def _predict(self, X: np.ndarray) -> np.ndarray:
        task = self.task
        out = task.empty(X.shape[0])
        if task.task == "regression":
            for i, x in enumerate(self._rows(X)):
                v = self.model.predict_one(x)
                out[i] = 0.0 if v is None else float(v)
            return out
        k = task.n_outputs
        for i, x in enumerate(self._rows(X)):
            proba = self.model.predict_proba_one(x)
            if task.task == "binary":
                out[i] = float(proba.get(True, proba.get(1, 0.0))) if proba else 0.5
            elif not proba:
                out[i] = 1.0 / k
            else:
                out[i] = [float(proba.get(c, 0.0)) for c in range(k)]
        return out

    # ---- learning ------------------------------------------------------------------------------------
    def learn(self, X: Any, y: Any) -> None:
        """Learn labelled rows (after they were scored: test, then train)."""
        Xa = np.asarray(X, dtype=np.float64).reshape(-1, len(self._names))
        ya = np.asarray(y).reshape(-1)
        if Xa.shape[0] != ya.shape[0]:
            raise BadInput(f"{Xa.shape[0]} rows but {ya.shape[0]} labels")
        with self._lock:
            seen = ~np.isnan(Xa)
            self._counts += seen.sum(axis=0)
            sums = np.where(seen, Xa, 0.0).sum(axis=0)
            self._means += (sums - self._means * seen.sum(axis=0)) / np.maximum(self._counts, 1)
            cast = {"binary": bool, "regression": float, "multiclass": int}[self.task.task]
            for x, label in zip(self._rows(Xa), ya.tolist(), strict=True):
                if self.task.task != "binary" or label >= 0:  # a reference row without a label teaches nothing
                    self.model.learn_one(x, cast(label))
            self.learned += Xa.shape[0]

    # ---- checkpoints ---------------------------------------------------------------------------------
    def state(self, extra: dict[str, Any] | None = None) -> bytes:
        """The learner as bytes: MAGIC, version, header length, JSON header (model id, kind, sha256), payload."""
        with self._lock:
            payload = pickle.dumps(
                {"model": self.model, "means": self._means, "counts": self._counts, "learned": self.learned},
                protocol=pickle.HIGHEST_PROTOCOL,
            )
        header = json.dumps(
            {
                "model_id": self.bundle.model_id,
                "kind": self.kind,
                "sha256": hashlib.sha256(payload).hexdigest(),
                "learned": self.learned,
                **(extra or {}),
            }
        ).encode()
        return CHECKPOINT_MAGIC + struct.pack("<HI", CHECKPOINT_VERSION, len(header)) + header + payload

    @staticmethod
    def read_header(blob: bytes) -> tuple[dict[str, Any], bytes]:
        """(header, payload) of a checkpoint, or CheckpointError."""
        if len(blob) < 10 or blob[:4] != CHECKPOINT_MAGIC:
            raise CheckpointError("not a learner checkpoint (bad magic)")
        version, n = struct.unpack("<HI", blob[4:10])
        if version != CHECKPOINT_VERSION:
            raise CheckpointError(f"checkpoint format {version}; this harness reads {CHECKPOINT_VERSION}")
        try:
            header = json.loads(blob[10 : 10 + n])
        except ValueError:
            raise CheckpointError("checkpoint header is not JSON") from None
        payload = blob[10 + n :]
        if hashlib.sha256(payload).hexdigest() != header.get("sha256"):
            raise CheckpointError("checkpoint payload does not match its sha256 (corrupt or truncated)")
        return header, payload

    def restore(self, blob: bytes) -> dict[str, Any]:
        """Resume from a checkpoint of this bundle's model and this kind; returns its header."""
        header, payload = self.read_header(blob)
        if header.get("model_id") != self.bundle.model_id or header.get("kind") != self.kind:
            raise CheckpointError(
                f"checkpoint of {header.get('kind')} on {header.get('model_id')}, not {self.kind} on "
                f"{self.bundle.model_id}"
            )
        try:
            data = pickle.load(io.BytesIO(payload))  # noqa: S301 - bytes this learner wrote, hash checked
        except Exception as e:
            raise CheckpointError(f"checkpoint payload cannot be read: {type(e).__name__}") from None
        with self._lock:
            self.model, self._means, self._counts = data["model"], data["means"], data["counts"]
            self.learned = int(data["learned"])
        return dict(header)
