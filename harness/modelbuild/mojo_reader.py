"""An H2O MOJO read into the model IR, exactly (used by the H2O trainer and by `harness import`).

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
"""

from __future__ import annotations

import io
import math
import sys
import zipfile
from pathlib import Path
from typing import Any

from harness.modelbuild.ir import Glm, ModelIR, Split, Tree, TreeEnsemble, tree_from_nodes

IR_ATOL = 1e-12  # IR vs genmodel: measured 2.2e-16 (summation order)
_FLOAT_MAX = sys.float_info.max


class ConversionError(ValueError):
    """The MOJO uses a feature the IR cannot represent exactly."""


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


def genmodel_version() -> str:
    from jvm.inprocess import classpath

    for jar in classpath():
        name = Path(jar).name
        if name.startswith("h2o-genmodel-") and name.endswith(".jar"):
            return name[len("h2o-genmodel-") : -len(".jar")]
    return "unknown"
