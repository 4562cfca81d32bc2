"""H2O trainer (the reference architecture's tool): a GBM or GLM trained by a local H2O cluster,
kept as its MOJO (the native file, `mojo.zip`), scored by h2o-genmodel, converted exactly to the IR.

Cluster. `train()` needs an H2O cluster: it uses the one an enclosing `with h2o_cluster():` started,
or starts one for its own call and shuts it down before returning. A build that trains several H2O
models wraps them in one `with h2o_cluster():` to pay H2O's start-up (~6 s) once. The cluster is a new
local H2O (its own JVM, the h2o package's h2o.jar) started with `H2OLocalServer.start` and connected
with `h2o.connect` -- what `h2o.init` does, minus `h2o.init`'s "attach to whatever already listens on
port 54321", which could adopt (and later shut down) somebody else's cluster. On exit:
`h2o.cluster().shutdown()`, then wait for the process to end (SIGTERM after 15 s, SIGKILL after
30 s) and remove its temp files. The training frame is removed after training; the H2O model stays
in the cluster (`trained.h2o_estimator`, for in-cluster predictions or coefficients) until the
cluster shuts down. Note: an H2OFrame upload goes through CSV, H2O's number parser and its column
compression, which move ~9% of random doubles by one ulp (measured); H2O trains on those values.
The native predictions are genmodel's on the exact doubles, so the cluster's own `predict` can
differ from them on rows that sit on a split value (tests/test_h2o.py shows genmodel reproduces the
cluster exactly on the values the cluster holds).

Scoring. `H2OTrainedModel.predict` runs the MOJO in this process's one JPype JVM
(adapters.h2o_mojo.MojoScorer, h2o-genmodel from jvm/inprocess_jars/pom.xml), never
`h2o.mojo_predict_pandas` (a JVM per call) and never the cluster.

GBM -> IR (from genmodel's tree graph, `SharedTreeMojoModel.computeGraph(tree)`, read through JPype).
genmodel's scoring, `SharedTreeMojoModel.scoreTree` (MOJO >= 1.2), for a numeric split:

    d = row[col]                                   (double)
    NaN:              go left iff the NA direction is NALeft or Left ("leftward")
    NA-vs-rest split: NaN goes right, every other value left
    otherwise:        go right iff d >= splitVal   (splitVal is a float32, compared as double)

so the IR has split_op "<" (left iff x < t) with t = the float32 split value as a float64, and
default_left = leftward. An NA-vs-rest split gets t = the largest finite float64 and default_left
False: the same decision for every finite x except x == 1.797e308 (+inf would be exact but is neither
valid JSON nor PMML). Leaf values are float32 (widened exactly); genmodel adds them in double
(`preds[1] += leaf`), then `f = preds[1] + init_f` (double, from model.ini) and
p = 1 / (1 + exp(-f)). The IR is base_score = init_f, link logistic. The only difference left is the
order of the additions (genmodel adds init_f last): measured max |IR - genmodel| = 2.2e-16 (1 ulp
near 0.5), so parity holds at atol 1e-12 (IR_ATOL) -- H2O computes nothing in float32 at scoring
time; float32 lives only in the stored split and leaf values, which the IR holds exactly.

GLM -> IR: `GlmMojoModel.score0` imputes NaN with `num_means` (MeanImputation), then
eta = sum(beta[i] * x[i]) + beta[last] and p = 1 / (exp(-eta) + 1), all in double. beta is in the
original scale (H2O folds its standardization into the MOJO), so the IR is coefficients = beta,
intercept = beta[last], missing_replacement = num_means (doubles printed by Java's Double.toString in
model.ini, which round-trip exactly). Measured max |IR - genmodel| ~2e-16 (summation order only).

Regression and multinomial (adapters/tasks.py): a gaussian GBM's preds[0] = init_f + the sum of its trees (IR link
identity); a multinomial GBM has one tree per class per iteration (genmodel's graph of tree group i holds one
subgraph per class), init_f 0, and genmodel's GBM_rescale is a softmax over the class sums with the largest
subtracted (IR n_classes k, link softmax); a gaussian GLM's preds[0] = beta . x' + intercept (IR GLM, link identity).
A multinomial GLM, DRF and Deep Learning MOJOs are scored by h2o-genmodel but not converted (ConversionError:
their bundles have native and h2o-mojo only).

Refused (ConversionError): other distributions/families/links, categorical columns, balance_classes, calibration,
MOJO versions before 1.2.

ONNX: `write_onnx_h2o(mojo_path, path)` is onnxmltools' H2O converter (what `onnxmltools.convert_h2o`
runs: genmodel's `PrintMojo --format json`, then its TreeEnsembleClassifier converter) with one fix:
PrintMojo omits the split value of an NA-vs-rest node, which makes `convert_h2o` fail with
KeyError 'splitValue'; we give such nodes +inf (BRANCH_GTE: x >= inf is false, so finite values go
left; NaN follows missing_value_tracks_true = not leftward = right -- exactly genmodel's decision).
The graph is float32 (input, thresholds, leaves, sum): the same tolerance as the other converters in
harness.modelbuild.export_onnx (atol 1e-5 outside float32 threshold flips; measured ~1e-7). GLM: no
converter exists (onnxmltools converts H2O GBM MOJOs only): NotImplementedError; the build can use
export_onnx.write_onnx_from_ir(trained.ir, path) instead.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import shutil
import subprocess
import sys
import tempfile
import threading
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from adapters.tasks import TaskSpec
from harness.modelbuild.ir import Glm, ModelIR, Split, Tree, TreeEnsemble, tree_from_nodes
from harness.modelbuild.trained import TrainedModel

NATIVE_FILE = "mojo.zip"
ALGORITHMS = ("gbm", "glm")
IR_ATOL = 1e-12  # IR vs genmodel: measured 2.2e-16 (summation order)
ONNX_ATOL = 1e-5  # float32 ONNX vs genmodel, rows without float32 threshold flips: measured ~1e-7
_FLOAT_MAX = sys.float_info.max
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


class ConversionError(ValueError):
    """The MOJO uses a feature the IR cannot represent exactly."""


# ---------------------------------------------------------------------------------------------------
# The H2O cluster
# ---------------------------------------------------------------------------------------------------

_cluster_lock = threading.Lock()
_active: H2OCluster | None = None


class H2OCluster:
    """A local H2O cluster of one node (its own JVM), started on enter and shut down on exit."""

    def __init__(self, max_mem_mb: int = 1024, nthreads: int = 2, base_port: int = 54321) -> None:
        self.max_mem_mb = max_mem_mb
        self.nthreads = nthreads
        self.base_port = base_port
        self._server: Any = None

    def start(self) -> None:
        import h2o
        from h2o.backend import H2OLocalServer

        self._server = H2OLocalServer.start(
            nthreads=self.nthreads,
            max_mem_size=self.max_mem_mb << 20,
            enable_assertions=False,
            port=f"{self.base_port}+",
            name=f"harness-{uuid.uuid4().hex[:12]}",
            verbose=False,
        )
        try:
            # h2o.connect prints a "your H2O is N months old" notice to stdout: not ours to show.
            with contextlib.redirect_stdout(io.StringIO()):
                h2o.connect(server=self._server, verbose=False)
            h2o.no_progress()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """`h2o.cluster().shutdown()`, wait for the JVM to exit (else terminate, kill), remove its temp files."""
        import h2o

        server, self._server = self._server, None
        if server is None:
            return
        with contextlib.suppress(Exception):
            h2o.cluster().shutdown()
        proc = getattr(server, "_process", None)
        if proc is not None:
            for step in (None, proc.terminate, proc.kill):  # shut down by REST, else SIGTERM, else SIGKILL
                if step is not None:
                    step()
                try:
                    proc.wait(timeout=15)
                    break
                except subprocess.TimeoutExpired:
                    continue
            server._process = None
        tmp = getattr(server, "_tempdir", None)
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)

    @property
    def running(self) -> bool:
        return self._server is not None and bool(self._server.is_running())

    def __enter__(self) -> H2OCluster:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextlib.contextmanager
def h2o_cluster(max_mem_mb: int = 1024, nthreads: int = 2) -> Iterator[H2OCluster]:
    """Use the active cluster, or start one for the duration of the block (then shut it down)."""
    global _active
    with _cluster_lock:
        outer = _active
    if outer is not None and outer.running:
        yield outer
        return
    cluster = H2OCluster(max_mem_mb=max_mem_mb, nthreads=nthreads)
    with cluster:
        with _cluster_lock:
            _active = cluster
        try:
            yield cluster
        finally:
            with _cluster_lock:
                _active = None


# ---------------------------------------------------------------------------------------------------
# The trained model
# ---------------------------------------------------------------------------------------------------


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
            "h2o-genmodel": _genmodel_version(),
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
            raise ValueError(
                f"h2o trainer: y must hold every class index 0..{len(task.classes) - 1}, got {sorted(labels)[:12]}"
            )
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


# ---------------------------------------------------------------------------------------------------
# MOJO -> IR
# ---------------------------------------------------------------------------------------------------


def mojo_info(source: str | Path | bytes) -> dict[str, Any]:
    """model.ini of a MOJO (path or bytes): {"info": {key: str}, "columns": [...], "domains": {col: n_levels}}."""
    what = "the MOJO bytes" if isinstance(source, bytes) else str(source)
    try:
        with zipfile.ZipFile(io.BytesIO(source) if isinstance(source, bytes) else source) as z:
            text = z.read("model.ini").decode("utf-8")
    except (OSError, KeyError, zipfile.BadZipFile) as e:
        raise ConversionError(f"{what} is not an H2O MOJO (no readable model.ini): {e}") from None
    info: dict[str, str] = {}
    columns: list[str] = []
    domains: dict[int, int] = {}
    section = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
        elif section == "info" and "=" in line:
            key, _, value = line.partition("=")
            info[key.strip()] = value.strip()
        elif section == "columns":
            columns.append(raw.rstrip("\n"))
        elif section == "domains":
            idx, _, rest = line.partition(":")
            domains[int(idx)] = int(rest.split()[0])
    return {"info": info, "columns": columns, "domains": domains}


def mojo_to_ir(source: str | Path | bytes, feature_names: list[str], model: Any = None) -> ModelIR:
    """The IR of an H2O GBM (binomial, gaussian, multinomial) or GLM (binomial, gaussian) MOJO (path or bytes);
    `feature_names` is the IR's feature order (the MOJO's columns are matched by name). `model` is the MOJO already
    loaded by genmodel, if any."""
    meta = mojo_info(source)
    info = meta["info"]
    n_features = int(info.get("n_features", -1))
    mojo_features = meta["columns"][:n_features]
    unknown = [f for f in mojo_features if f not in feature_names]
    if unknown:
        raise ConversionError(f"MOJO features {unknown[:5]} are not among the feature names")
    categorical = [mojo_features[i] for i in meta["domains"] if i < n_features]
    if categorical:
        raise ConversionError(f"categorical columns are not supported: {categorical[:5]}")
    if info.get("supervised") != "true" or int(info.get("n_classes", "0")) < 1:
        raise ConversionError(f"only supervised models are supported (n_classes={info.get('n_classes')})")
    if info.get("balance_classes", "false") != "false":
        raise ConversionError("balance_classes=true rescales probabilities: not supported")
    col_map = [feature_names.index(f) for f in mojo_features]
    algo = info.get("algo")
    if algo == "gbm":
        if model is None:
            from adapters.h2o_mojo import load_mojo

            model = load_mojo(source)
        return _gbm_ir(info, model, col_map, feature_names)
    if algo == "glm":
        return _glm_ir(info, col_map, feature_names)
    raise ConversionError(
        f"H2O {algo} MOJOs are scored by h2o-genmodel only: the IR reads gbm and glm (not drf, deeplearning, ...)"
    )


_GBM_LINKS = {
    ("bernoulli", "logit"): "logistic",
    ("gaussian", "identity"): "identity",
    ("multinomial", "log"): "softmax",
}


def _gbm_ir(info: dict[str, str], model: Any, col_map: list[int], feature_names: list[str]) -> TreeEnsemble:
    link = _GBM_LINKS.get((info.get("distribution", ""), info.get("link_function", "")))
    if link is None:
        raise ConversionError(
            f"GBM distribution {info.get('distribution')!r} / link {info.get('link_function')!r}: the IR holds "
            "bernoulli / logit, gaussian / identity and multinomial / log"
        )
    if float(info.get("mojo_version", "0")) < 1.2:
        raise ConversionError(f"MOJO version {info.get('mojo_version')} predates genmodel's current tree format")
    k = int(info.get("n_trees_per_class", "1"))
    if (k != 1) != (link == "softmax"):
        raise ConversionError(f"GBM with {k} trees per iteration and link {link} is not supported")
    if any(key.startswith("calib") for key in info):
        raise ConversionError("calibrated GBMs are not supported")
    n_groups = int(model.getNTreeGroups())
    if link != "softmax":
        trees = [
            _tree_from_graph(model.computeGraph(i).subgraphArray.get(0).rootNode, col_map) for i in range(n_groups)
        ]
        return TreeEnsemble(
            feature_names=list(feature_names),
            trees=trees,
            base_score=float(info["init_f"]),
            link=link,  # type: ignore[arg-type]
            split_op="<",
        )
    if float(info.get("init_f", "0")) != 0.0:
        raise ConversionError(f"a multinomial GBM with init_f {info.get('init_f')} (genmodel ignores it; expected 0)")
    trees, tree_class = [], []
    for i in range(n_groups):
        graph = model.computeGraph(i)
        if int(graph.subgraphArray.size()) != k:
            raise ConversionError(f"tree group {i} has {int(graph.subgraphArray.size())} class trees, expected {k}")
        for c in range(k):
            trees.append(_tree_from_graph(graph.subgraphArray.get(c).rootNode, col_map))
            tree_class.append(c)
    return TreeEnsemble(
        feature_names=list(feature_names),
        trees=trees,
        link="softmax",
        split_op="<",
        n_classes=k,
        tree_class=tree_class,
        class_base_scores=[0.0] * k,
    )


def _tree_from_graph(root: Any, col_map: list[int]) -> Tree:
    def read(node: Any) -> float | Split:
        if node.isLeaf():
            return float(node.getPredValue())  # a Java float, widened exactly
        if node.isBitset():
            raise ConversionError("categorical (bitset) splits are not supported")
        f = col_map[int(node.getColId())]
        if node.isNaVsRest():
            # every finite value goes left; NaN goes right
            return f, _FLOAT_MAX, False, node.getLeftChild(), node.getRightChild()
        t = float(node.getSplitValue())
        if not math.isfinite(t):
            raise ConversionError(f"split value {t} is not finite")
        return f, t, bool(node.isLeftward()), node.getLeftChild(), node.getRightChild()

    return tree_from_nodes(root, read)


def _glm_ir(info: dict[str, str], col_map: list[int], feature_names: list[str]) -> Glm:
    links = {("binomial", "logit"): "logistic", ("gaussian", "identity"): "identity"}
    link = links.get((info.get("family", ""), info.get("link", "")))
    if link is None:
        raise ConversionError(
            f"GLM family {info.get('family')!r} / link {info.get('link')!r}: the IR holds binomial / logit and "
            "gaussian / identity (a multinomial GLM is scored by h2o-genmodel only)"
        )
    if int(info.get("cats", "0")) != 0:
        raise ConversionError("GLM with categorical columns is not supported")
    beta = _doubles(info["beta"])
    nums = int(info["nums"])
    if nums != len(col_map) or len(beta) != nums + 1:
        raise ConversionError(f"GLM has {len(beta)} coefficients for {nums} numeric columns and an intercept")
    means = _doubles(info["num_means"]) if info.get("mean_imputation") == "true" else [math.nan] * nums
    coefficients = [0.0] * len(feature_names)
    replacement: list[float | None] = [None] * len(feature_names)
    for i, j in enumerate(col_map):
        coefficients[j] = beta[i]
        replacement[j] = None if math.isnan(means[i]) else means[i]
    return Glm(
        feature_names=list(feature_names),
        coefficients=coefficients,
        intercept=beta[-1],
        link=link,  # type: ignore[arg-type]
        missing_replacement=replacement,
    )


def _doubles(text: str) -> list[float]:
    """A Java `Arrays.toString(double[])` (Double.toString per element: round-trips exactly)."""
    body = text.strip()
    if not (body.startswith("[") and body.endswith("]")):
        raise ConversionError(f"expected a [..] list of numbers in model.ini, got {text[:40]!r}")
    return [float(v) for v in body[1:-1].split(",") if v.strip()]


def _genmodel_version() -> str:
    from jvm.inprocess import classpath

    for jar in classpath():
        name = Path(jar).name
        if name.startswith("h2o-genmodel-") and name.endswith(".jar"):
            return name[len("h2o-genmodel-") : -len(".jar")]
    return "unknown"


# ---------------------------------------------------------------------------------------------------
# ONNX
# ---------------------------------------------------------------------------------------------------


def print_mojo_json(mojo_path: str | Path, timeout_s: float = 300.0) -> dict[str, Any]:
    """genmodel's `PrintMojo --format json` (a short-lived `java` process: PrintMojo calls System.exit)."""
    from jvm.inprocess import classpath

    java = shutil.which("java")
    if java is None:
        raise RuntimeError("Java is not on PATH: install a Java 17 runtime")
    with tempfile.TemporaryDirectory(prefix="printmojo-") as d:
        out = Path(d) / "mojo.json"
        cmd = [java, "-Xmx512m", "-cp", ":".join(classpath()), "hex.genmodel.tools.PrintMojo"]
        cmd += ["--input", str(mojo_path), "--format", "json", "--output", str(out)]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, stdin=subprocess.DEVNULL)
        if proc.returncode != 0 or not out.exists():
            lines = (proc.stderr + proc.stdout).strip().splitlines()
            raise RuntimeError(f"PrintMojo failed on {mojo_path}: {lines[-1] if lines else proc.returncode}")
        result: dict[str, Any] = json.loads(out.read_text())
        return result


def _fill_na_vs_rest(tree_json: dict[str, Any]) -> int:
    """Give PrintMojo's NA-vs-rest nodes (no splitValue) +inf; return how many there were."""
    n = 0
    stack = [tree_json["root"]]
    while stack:
        node = stack.pop()
        if "leftChild" in node:
            if "splitValue" not in node:
                node["splitValue"] = math.inf
                n += 1
            stack += [node["leftChild"], node["rightChild"]]
    return n


def write_onnx_h2o(mojo_path: str | Path, path: str | Path) -> dict[str, Any]:
    """Convert an H2O GBM MOJO to ONNX with onnxmltools' H2O converter; return the manifest entry.

    GLM MOJOs raise NotImplementedError (no H2O GLM converter exists)."""
    meta = mojo_info(Path(mojo_path))
    algo = meta["info"].get("algo")
    if algo != "gbm":
        raise NotImplementedError(
            f"H2O ONNX export: onnxmltools converts H2O GBM MOJOs only, this MOJO is {algo!r}; "
            "use harness.modelbuild.export_onnx.write_onnx_from_ir(trained.ir, path) instead"
        )
    import onnx
    import onnxmltools
    from onnxmltools.convert.common._topology import convert_topology
    from onnxmltools.convert.common.data_types import FloatTensorType
    from onnxmltools.convert.common.onnx_ex import get_maximum_opset_supported
    from onnxmltools.convert.h2o._parse import parse_h2o

    mojo = print_mojo_json(mojo_path)
    if mojo["params"].get("algo") != "gbm" or not mojo["params"].get("classifier"):
        raise NotImplementedError("H2O ONNX export: only binomial GBM MOJOs are supported")
    n_fixed = sum(_fill_na_vs_rest(t) for t in mojo["trees"])
    n_features = int(mojo["params"]["nfeatures"])
    opset = get_maximum_opset_supported()
    topology = parse_h2o(mojo, [("input", FloatTensorType([None, n_features]))], opset, None, None)
    topology.compile()
    model = convert_topology(topology, "h2o_gbm", "H2O GBM MOJO via onnxmltools", opset)
    names = [o.name for o in model.graph.output]
    if "probabilities" not in names:
        raise RuntimeError(f"converted ONNX model has outputs {names}, expected 'probabilities'")
    onnx.checker.check_model(model)
    Path(path).write_bytes(model.SerializeToString())
    return {
        "converter": "onnxmltools.convert_h2o",
        "converter_version": onnxmltools.__version__,
        "opset": {(o.domain or "ai.onnx"): int(o.version) for o in model.opset_import},
        "input_name": "input",
        "input_dtype": "float32",
        "output_name": "probabilities",
        "output_column": 1,
        "na_vs_rest_splits": n_fixed,
        "tolerance": {
            "atol": ONNX_ATOL,
            "threshold_flips": "allowed: rows listed by export_onnx.float32_flip_rows(ir, X)",
            "why": "float32 input, thresholds, leaf weights and sums: ~1e-7 measured; flips when a value rounds "
            "to float32 across a split value",
        },
    }
