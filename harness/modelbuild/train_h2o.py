"""H2O trainer (the reference architecture's tool): a GBM or GLM trained by a local H2O cluster,
kept as its MOJO (the native file, `mojo.zip`), scored by h2o-genmodel, converted exactly to the IR.

Tasks (adapters/tasks.py): a GBM is bernoulli (binary), gaussian (regression) or multinomial (multiclass); a GLM
binomial/logit or gaussian/identity (a multinomial GLM is not in the IR). A class label is uploaded as the class's
string; H2O's level order must be the task's class order (the classes are sorted), else the trainer stops.

Scoring. `H2OTrainedModel.predict` runs the MOJO in this process's one JPype JVM
(adapters.h2o_mojo.MojoScorer, h2o-genmodel from jvm/inprocess_jars/pom.xml), never
`h2o.mojo_predict_pandas` (a JVM per call) and never the cluster.

The cluster the trainer uses: harness/modelbuild/h2o_cluster.py. The MOJO -> IR reader:
harness/modelbuild/mojo_reader.py. ONNX from the MOJO: harness/modelbuild/export_onnx_h2o.py.
"""

from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from adapters.tasks import TaskSpec
from harness.modelbuild.h2o_cluster import h2o_cluster
from harness.modelbuild.mojo_reader import genmodel_version, mojo_info, mojo_to_ir
from harness.modelbuild.trained import TrainedModel

NATIVE_FILE = "mojo.zip"
ALGORITHMS = ("gbm", "glm")
_LABEL = "label"

_GBM_DEFAULTS: dict[str, Any] = {"ntrees": 50, "max_depth": 5, "learn_rate": 0.1, "ignore_const_cols": False}
_GBM_FIXED: dict[str, dict[str, Any]] = {
    "binary": {"distribution": "bernoulli"},
    "regression": {"distribution": "gaussian"},
    "multiclass": {"distribution": "multinomial"},
}
_GLM_DEFAULTS: dict[str, Any] = {"ignore_const_cols": False}
_GLM_FIXED: dict[str, dict[str, Any]] = {
    "binary": {"family": "binomial", "link": "logit", "missing_values_handling": "MeanImputation"},
    "regression": {"family": "gaussian", "link": "identity", "missing_values_handling": "MeanImputation"},
}
# Estimator parameters whose effect the IR cannot hold (or that need extra frame columns).
_REFUSED = (
    "balance_classes",
    "calibrate_model",
    "offset_column",
    "weights_column",
    "fold_column",
    "interactions",
    "interaction_pairs",
)


class H2OTrainedModel(TrainedModel):
    """An H2O MOJO: its bytes (the native file), genmodel's model in this process's JVM, and its IR."""

    flavor = "h2o"

    def __init__(self, algorithm: str, mojo_bytes: bytes, feature_names: list[str]) -> None:
        from adapters.h2o_mojo import MojoScorer

        self.algorithm = algorithm
        self.mojo_bytes = mojo_bytes
        self.h2o_estimator: Any = None  # set by train(); usable only while its cluster runs
        self.feature_names = list(feature_names)
        self.info = mojo_info(mojo_bytes)
        self._scorer = MojoScorer(mojo_bytes, self.feature_names, label=f"({algorithm} MOJO)")
        self.task = self._scorer.task
        self.model = self._scorer.model  # hex.genmodel.MojoModel (a JPype proxy)
        self.ir = mojo_to_ir(mojo_bytes, self.feature_names, model=self.model)

    @classmethod
    def from_mojo(cls, path: str | Path, feature_names: list[str]) -> H2OTrainedModel:
        """Wrap an existing MOJO zip (no cluster needed)."""
        data = Path(path).read_bytes()
        return cls(str(mojo_info(data)["info"].get("algo", "")), data, feature_names)

    def save_native(self, directory: Path) -> str:
        directory.mkdir(parents=True, exist_ok=True)
        (directory / NATIVE_FILE).write_bytes(self.mojo_bytes)
        return NATIVE_FILE

    def predict(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != len(self.feature_names):
            raise ValueError(f"X has shape {X.shape}, expected (n, {len(self.feature_names)})")
        return self._scorer.predict(X)

    def library_versions(self) -> dict[str, str]:
        out = {
            "h2o-genmodel": genmodel_version(),
            "mojo_h2o_version": str(self.info["info"].get("h2o_version", "")),
            "mojo_version": str(self.info["info"].get("mojo_version", "")),
        }
        with contextlib.suppress(ImportError):
            import h2o

            out["h2o"] = str(h2o.__version__)
        return out


def train(
    algorithm: str,
    params: dict[str, Any],
    X: np.ndarray,
    y: np.ndarray,
    feature_names: list[str],
    seed: int,
    task: TaskSpec = TaskSpec(),
) -> H2OTrainedModel:
    """Train an H2O "gbm" (bernoulli, gaussian or multinomial by task) or "glm" (binomial/logit or
    gaussian/identity, MeanImputation) on X (NaN = missing) and y (0/1, the value, or the class index).
    `params` go to the H2O estimator (e.g. ntrees, max_depth, learn_rate, lambda_, alpha); `seed` is the
    estimator's seed. Uses the enclosing `h2o_cluster()` or starts a cluster for this call."""
    if algorithm not in ALGORITHMS:
        raise ValueError(f"h2o trainer: unknown algorithm {algorithm!r} (valid: {', '.join(ALGORITHMS)})")
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y)
    if X.ndim != 2 or X.shape[1] != len(feature_names):
        raise ValueError(f"X has shape {X.shape}, expected (n, {len(feature_names)})")
    if y.shape != (X.shape[0],):
        raise ValueError(f"y has shape {y.shape}, expected ({X.shape[0]},)")
    if task.task != "regression":
        labels = set(np.unique(y).tolist())
        if labels != set(range(len(task.classes))):
            want = "both labels 0 and 1" if task.task == "binary" else f"every class index 0..{len(task.classes) - 1}"
            raise ValueError(f"h2o trainer: y must hold {want}, got {sorted(labels)[:12]}")
    if np.isinf(X).any():
        raise ValueError("h2o trainer: X has an infinite value (use NaN for missing)")
    fixed_by_task = _GBM_FIXED if algorithm == "gbm" else _GLM_FIXED
    if task.task not in fixed_by_task:
        raise ValueError(
            f"h2o trainer: {algorithm} for a {task.task} task is not supported here (a multinomial GLM is not in "
            "the IR): use gbm"
        )
    fixed = fixed_by_task[task.task]
    for key, value in params.items():
        if key in fixed and str(value) != str(fixed[key]):
            raise ValueError(f"h2o trainer: {algorithm} {key}={value!r} is not supported (only {fixed[key]!r})")
        if key in _REFUSED and value not in (None, False, [], ""):
            raise ValueError(f"h2o trainer: {key} is not supported (the IR cannot represent it)")
        if key in ("seed", "x", "y", "training_frame"):
            raise ValueError(f"h2o trainer: {key!r} is set by the harness, not by params")
    defaults = _GBM_DEFAULTS if algorithm == "gbm" else _GLM_DEFAULTS
    full = {**defaults, **params, **fixed, "seed": seed}
    label = _LABEL
    while label in feature_names:
        label = "_" + label

    import h2o
    from h2o.estimators import H2OGeneralizedLinearEstimator, H2OGradientBoostingEstimator

    with h2o_cluster():
        frame = _h2o_frame(X, y, list(feature_names), label, task)
        est_cls = H2OGradientBoostingEstimator if algorithm == "gbm" else H2OGeneralizedLinearEstimator
        est = est_cls(**full)
        try:
            est.train(x=list(feature_names), y=label, training_frame=frame)
            with tempfile.TemporaryDirectory(prefix="h2o-mojo-") as d:
                mojo_path = est.download_mojo(path=d)
                mojo_bytes = Path(mojo_path).read_bytes()
        finally:
            with contextlib.suppress(Exception):
                h2o.remove(frame)
    trained = H2OTrainedModel(algorithm, mojo_bytes, list(feature_names))
    trained.h2o_estimator = est
    return trained


def _h2o_frame(X: np.ndarray, y: np.ndarray, feature_names: list[str], label: str, task: TaskSpec) -> Any:
    """An H2OFrame of X (real columns, NaN -> NA) and y: a real column (regression), or a factor whose domain is the
    task's classes in order (y holds class indices: the class labels are uploaded, H2O sorts its levels)."""
    import h2o
    import pandas as pd

    df = pd.DataFrame(X, columns=feature_names)
    if task.task == "regression":
        df[label] = np.asarray(y, dtype=np.float64)
        frame = h2o.H2OFrame(df, column_types={**{f: "real" for f in feature_names}, label: "real"})
    else:
        df[label] = np.asarray(task.classes, dtype=object)[np.asarray(y, dtype=np.int64)]
        frame = h2o.H2OFrame(df, column_types={**{f: "real" for f in feature_names}, label: "enum"})
        domain = frame[label].levels()[0]
        if domain != list(task.classes):
            raise RuntimeError(
                f"h2o trainer: label levels are {domain}, expected the classes in order {list(task.classes)}"
            )
    na = [int(v) for v in frame[feature_names].nacnt()]
    expected = np.isnan(X).sum(axis=0).astype(int).tolist()
    if na != expected:
        raise RuntimeError(f"h2o trainer: H2O read {na} missing values per column, X has {expected}")
    return frame
