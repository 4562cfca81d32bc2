"""ONNX exporter: the official converters (onnxmltools for LightGBM, skl2onnx for scikit-learn), or
a float64 graph generated from the IR.

Every graph has one input "input" (n, n_features) and, by task (adapters/tasks.py), an output "probabilities"
(n, 2) whose column 1 is P(class 1) (binary), "probabilities" (n, k) in class order (multiclass), or the predicted
value (regression: "prediction" (n, 1) from the IR, the converter's "variable" otherwise); the info dict says the
input dtype the adapter must feed and which output (and column) to read.

Precision (measured, see tests/test_train_export.py):

- Official converters (`write_onnx`, the default): ONNX TreeEnsembleClassifier (ai.onnx.ml opset 1)
  and LinearClassifier hold thresholds, leaf weights and coefficients as float32, take float32 input
  and compute the score in float32. Rows whose decision paths agree with float64 differ from the native
  probability by ~1e-7 (measured on 20,000 rows with NaN, 100-tree models: max 1.8e-7 LightGBM,
  1.6e-7 HistGradientBoosting, 1.6e-7 logistic regression). We allow `atol` 1e-5, the worst case of
  float32 rounding where it matters most: near p = 0.5 (dp = p(1-p) dm <= dm/4), 100 trees whose partial
  sums stay below 4 lose at most 100 x half an ulp(4) = 2.4e-5 of margin, i.e. 6e-6 of probability,
  plus 6e-8 for rounding p. Typical errors grow like sqrt(trees), hence the 1e-7 measured; onnxruntime
  with more threads sums in another order (another ~1e-7). A row can also take another branch when its value
  and the threshold round to the same float32 or straddle it ("threshold flips"): such rows differ by a
  whole leaf value. `float32_flip_rows(ir, X)` finds exactly those rows (it replays the IR with float32
  inputs and thresholds); the parity gate should exclude them and report their count. NaN handling is
  exact in both converters (measured, LightGBM missing_type NaN and None, sklearn missing_go_to_left).
  One theoretical gap: onnxmltools sends NaN right at a missing_type None split with default_left
  false and threshold >= 0, where LightGBM (NaN -> 0.0) goes left; LightGBM always writes
  default_left true at None splits (0 of ~3,000 splits measured), so this did not occur.
- From the IR (`write_onnx_from_ir`): ai.onnx.ml opset 5 TreeEnsemble with float64 thresholds and leaf
  weights on float64 input (categorical nodes as BRANCH_MEMBER nodes over the category codes), then Sigmoid in
  float64 (a regression: the sum itself; multiclass: one target per class, leaf_targetids = the tree's class, then
  Softmax); for a GLM, Where/IsNaN + MatMul + Sigmoid in
  float64. Parity with the native model is ~1e-15 (measured max 4.4e-16; atol 1e-12), no flips. It
  needs an onnxruntime that implements ai.onnx.ml opset 5 TreeEnsemble (1.32 here).

Known converter problem worked around here: skl2onnx 1.20 with onnx 1.23 (the versions here) fails on
HistGradientBoostingClassifier ("AttributeProto.ints: Expected an int, got a boolean": a leaf's
missing flag is a Python bool among numpy ints); we coerce that flag to int during the conversion.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from harness.modelbuild.ir import LEAF, Glm, Mlp, ModelIR, TreeEnsemble, task_of
from harness.modelbuild.trained import TrainedModel

INPUT_NAME = "input"
OUTPUT_NAME = "probabilities"
PREDICTION_NAME = "prediction"
CONVERTER_ATOL = 1e-5
IR_ATOL = 1e-12
_ML_OPSET_IR = 5
_BRANCH_MEMBER = 6  # ai.onnx.ml TreeEnsemble (opset 5) node mode: set membership
_ONNX_OPSET_IR = 21


def write_onnx(trained: TrainedModel, path: Path, *, via: str = "converter") -> dict[str, Any]:
    """Write `trained` as ONNX to `path`; return what the manifest should record.

    via="converter" uses the official converter for the flavor (float32); via="ir" generates a
    float64 graph from `trained.ir` (exact)."""
    if via == "ir":
        return write_onnx_from_ir(trained.ir, path)
    if via != "converter":
        raise ValueError(f"write_onnx: via must be 'converter' or 'ir', got {via!r}")
    n = trained.ir.n_features
    task = task_of(trained.ir)
    if trained.flavor == "lightgbm":
        import onnxmltools
        from onnxmltools.convert.common.data_types import FloatTensorType as MLFloat

        model = onnxmltools.convert_lightgbm(
            trained.model, initial_types=[(INPUT_NAME, MLFloat([None, n]))], zipmap=False
        )
        converter = {"converter": "onnxmltools.convert_lightgbm", "converter_version": onnxmltools.__version__}
    elif trained.flavor == "sklearn":
        import skl2onnx
        from skl2onnx.common.data_types import FloatTensorType

        est = trained.model.steps[-1][1] if hasattr(trained.model, "steps") else trained.model
        options = {} if task == "regression" else {id(est): {"zipmap": False}}
        with _skl2onnx_bool_flag_fix():
            model = skl2onnx.convert_sklearn(
                trained.model, initial_types=[(INPUT_NAME, FloatTensorType([None, n]))], options=options
            )
        converter = {"converter": "skl2onnx.convert_sklearn", "converter_version": skl2onnx.__version__}
    else:
        raise NotImplementedError(
            f"write_onnx: no ONNX converter here for flavor {trained.flavor!r} (H2O's ONNX is written by train_h2o)"
        )
    output = _check_output(model, task)
    onnx.checker.check_model(model)
    path.write_bytes(model.SerializeToString())
    return {
        **converter,
        "opset": _opsets(model),
        "input_name": INPUT_NAME,
        "input_dtype": "float32",
        "output_name": output,
        "output_column": 1 if task == "binary" else 0,
        "tolerance": {
            "atol": CONVERTER_ATOL,
            "threshold_flips": "allowed: rows listed by float32_flip_rows(ir, X)",
            "why": "float32 thresholds, leaf weights and sums: ~1e-7 measured; flips when a value and a "
            "threshold round to the same float32",
        },
    }


def write_onnx_from_ir(ir: ModelIR, path: Path) -> dict[str, Any]:
    """Generate a float64 ONNX graph from the IR (exact to ~1e-15)."""
    if isinstance(ir, Mlp):
        raise NotImplementedError("an MLP's ONNX graph comes from skl2onnx (write_onnx), not from the IR")
    model = _tree_graph(ir) if isinstance(ir, TreeEnsemble) else _glm_graph(ir)
    onnx.checker.check_model(model)
    path.write_bytes(model.SerializeToString())
    task = task_of(ir)
    return {
        "converter": "harness.export_onnx.write_onnx_from_ir",
        "converter_version": f"onnx {onnx.__version__}",
        "opset": _opsets(model),
        "input_name": INPUT_NAME,
        "input_dtype": "float64",
        "output_name": PREDICTION_NAME if task == "regression" else OUTPUT_NAME,
        "output_column": 1 if task == "binary" else 0,
        "tolerance": {"atol": IR_ATOL, "threshold_flips": "none", "why": "float64 end to end"},
    }


def float32_flip_rows(ir: ModelIR, X: np.ndarray) -> np.ndarray:
    """Boolean mask of rows that reach a different leaf in some tree when the input and the thresholds
    are rounded to float32 (what a float32 ONNX tree ensemble does). Always all-False for a GLM."""
    X = np.asarray(X, dtype=np.float64)
    flips = np.zeros(X.shape[0], dtype=bool)
    if not isinstance(ir, TreeEnsemble):
        return flips
    with np.errstate(over="ignore"):  # values beyond float32's range round to +-inf, as in ONNX
        X32 = X.astype(np.float32)
        for tree in ir.trees:
            thr = np.asarray(tree.threshold, dtype=np.float64)
            exact = _leaves(tree, X, thr, ir.split_op)
            rounded = _leaves(tree, X32, thr.astype(np.float32), ir.split_op)
            flips |= exact != rounded
    return flips


def _leaves(tree: Any, X: np.ndarray, thr: np.ndarray, split_op: str) -> np.ndarray:
    """Leaf index of every row (vectorised over rows; comparisons in X's and thr's dtype)."""
    feat = np.asarray(tree.feature, dtype=np.int64)
    left = np.asarray(tree.left, dtype=np.int64)
    right = np.asarray(tree.right, dtype=np.int64)
    default_left = np.asarray(tree.default_left, dtype=bool)
    cat_nodes = [n for n in range(len(feat)) if tree.is_categorical(n)]
    node = np.zeros(X.shape[0], dtype=np.int64)
    active = np.nonzero(feat[node] != LEAF)[0]
    while active.size:
        nd = node[active]
        x = X[active, feat[nd]]
        t = thr[nd]
        go_left = np.where(np.isnan(x), default_left[nd], x <= t if split_op == "<=" else x < t)
        for n in cat_nodes:  # categorical nodes: left when the code is in the node's set
            at = nd == n
            if at.any():
                xs = x[at]
                go_left[at] = np.where(np.isnan(xs), default_left[n], np.isin(xs, tree.cat_left[n]))
        node[active] = np.where(go_left, left[nd], right[nd])
        active = active[feat[node[active]] != LEAF]
    return node


@contextlib.contextmanager
def _skl2onnx_bool_flag_fix() -> Iterator[None]:
    from skl2onnx.common import tree_ensemble

    original = tree_ensemble.add_node

    def add_node(*args: Any, **kwargs: Any) -> Any:
        flag = kwargs.get("nodes_missing_value_tracks_true")
        if flag is not None:
            kwargs["nodes_missing_value_tracks_true"] = int(flag)
        return original(*args, **kwargs)

    tree_ensemble.add_node = add_node
    try:
        yield
    finally:
        tree_ensemble.add_node = original


def _check_output(model: onnx.ModelProto, task: str) -> str:
    """The output the adapter reads: "probabilities" for a classifier, the one value output of a regressor."""
    names = [o.name for o in model.graph.output]
    if task == "regression":
        if len(names) != 1:
            raise RuntimeError(f"converted ONNX regressor has outputs {names}, expected one")
        return names[0]
    if OUTPUT_NAME not in names:
        raise RuntimeError(f"converted ONNX model has outputs {names}, expected {OUTPUT_NAME!r}")
    return OUTPUT_NAME


def _opsets(model: onnx.ModelProto) -> dict[str, int]:
    return {(o.domain or "ai.onnx"): int(o.version) for o in model.opset_import}


def _tree_graph(ir: TreeEnsemble) -> onnx.ModelProto:
    roots: list[int] = []
    featureids: list[int] = []
    splits: list[float] = []
    modes: list[int] = []
    true_ids: list[int] = []
    true_leafs: list[int] = []
    false_ids: list[int] = []
    false_leafs: list[int] = []
    missing_true: list[int] = []
    leaf_weights: list[float] = []
    membership: list[float] = []  # BRANCH_MEMBER nodes' codes, in node order, each set closed by a NaN
    leaf_targets: list[int] = []  # the class (target) each leaf adds to: its tree's class (0 but multiclass)
    mode = 0 if ir.split_op == "<=" else 1  # BRANCH_LEQ / BRANCH_LT
    for t, tree in enumerate(ir.trees):
        target = ir.tree_class[t] if ir.n_classes else 0
        # Inner nodes and leaves get their own dense numbering in the graph's nodes_* / leaf_* arrays.
        inner: dict[int, int] = {}
        leaves: dict[int, int] = {}
        for node in range(tree.n_nodes):
            if tree.feature[node] == LEAF:
                leaves[node] = len(leaf_weights) + len(leaves)
            else:
                inner[node] = len(featureids) + len(inner)
        if not inner:  # a single leaf: one dummy node whose both branches reach it
            roots.append(len(featureids))
            featureids.append(0)
            splits.append(0.0)
            modes.append(mode)
            true_ids.append(len(leaf_weights))
            false_ids.append(len(leaf_weights))
            true_leafs.append(1)
            false_leafs.append(1)
            missing_true.append(0)
            leaf_weights.append(tree.value[0])
            leaf_targets.append(target)
            continue
        roots.append(inner[0])
        for node in sorted(inner, key=inner.__getitem__):
            featureids.append(tree.feature[node])
            splits.append(tree.threshold[node])
            if tree.is_categorical(node):  # BRANCH_MEMBER: true when the code is one of the node's set
                modes.append(_BRANCH_MEMBER)
                membership.extend([*map(float, tree.cat_left[node]), math.nan])
            else:
                modes.append(mode)
            missing_true.append(int(tree.default_left[node]))
            for child, ids, flags in (
                (tree.left[node], true_ids, true_leafs),
                (tree.right[node], false_ids, false_leafs),
            ):
                if child in leaves:
                    ids.append(leaves[child])
                    flags.append(1)
                else:
                    ids.append(inner[child])
                    flags.append(0)
        for node in sorted(leaves, key=leaves.__getitem__):
            leaf_weights.append(tree.value[node])
            leaf_targets.append(target)

    member = {"membership_values": numpy_helper.from_array(np.asarray(membership), "membership")} if membership else {}
    ensemble = helper.make_node(
        "TreeEnsemble",
        [INPUT_NAME],
        ["sum"],
        domain="ai.onnx.ml",
        aggregate_function=1,
        post_transform=0,
        n_targets=ir.n_outputs,
        **member,
        tree_roots=roots,
        nodes_featureids=featureids,
        nodes_splits=numpy_helper.from_array(np.asarray(splits, dtype=np.float64), "nodes_splits"),
        nodes_modes=numpy_helper.from_array(np.asarray(modes, dtype=np.uint8), "nodes_modes"),
        nodes_truenodeids=true_ids,
        nodes_trueleafs=true_leafs,
        nodes_falsenodeids=false_ids,
        nodes_falseleafs=false_leafs,
        nodes_missing_value_tracks_true=missing_true,
        leaf_targetids=leaf_targets,
        leaf_weights=numpy_helper.from_array(np.asarray(leaf_weights, dtype=np.float64), "leaf_weights"),
    )
    bases = ir.class_base_scores if ir.n_classes else [ir.base_score]
    base = numpy_helper.from_array(np.asarray([bases], dtype=np.float64), "base_score")
    nodes = [ensemble, helper.make_node("Add", ["sum", "base_score"], ["margin"])]
    return _finish(nodes, [base], ir.n_features, ir.link, "margin", "harness-ir-trees", ir.n_outputs)


def _glm_graph(ir: Glm) -> onnx.ModelProto:
    n = ir.n_features
    repl = np.asarray([np.nan if r is None else r for r in ir.missing_replacement], dtype=np.float64)
    has_repl = np.asarray([r is not None for r in ir.missing_replacement])
    inits = [
        numpy_helper.from_array(np.where(has_repl, repl, 0.0).reshape(1, n), "replacement"),
        numpy_helper.from_array(has_repl.reshape(1, n), "has_replacement"),
        numpy_helper.from_array(np.asarray(ir.coefficients, dtype=np.float64).reshape(n, 1), "coefficients"),
        numpy_helper.from_array(np.asarray([[ir.intercept]], dtype=np.float64), "intercept"),
    ]
    nodes = [
        helper.make_node("IsNaN", [INPUT_NAME], ["is_nan"]),
        helper.make_node("And", ["is_nan", "has_replacement"], ["replace"]),
        helper.make_node("Where", ["replace", "replacement", INPUT_NAME], ["imputed"]),
        helper.make_node("MatMul", ["imputed", "coefficients"], ["dot"]),
        helper.make_node("Add", ["dot", "intercept"], ["margin"]),
    ]
    return _finish(nodes, inits, n, ir.link, "margin", "harness-ir-glm")


def _finish(
    nodes: list[onnx.NodeProto],
    inits: list[TensorProto],
    n_features: int,
    link: str,
    margin: str,
    name: str,
    n_outputs: int = 1,
) -> onnx.ModelProto:
    """The link: binary -> "probabilities" [1 - p, p]; regression -> "prediction" (the margin); multiclass ->
    "probabilities" = Softmax(margins)."""
    if link == "logistic":
        one = numpy_helper.from_array(np.asarray([[1.0]], dtype=np.float64), "one")
        inits = [*inits, one]
        nodes.append(helper.make_node("Sigmoid", [margin], ["p1"]))
        nodes.append(helper.make_node("Sub", ["one", "p1"], ["p0"]))
        nodes.append(helper.make_node("Concat", ["p0", "p1"], [OUTPUT_NAME], axis=1))
        output, width = OUTPUT_NAME, 2
    elif link == "softmax":
        nodes.append(helper.make_node("Softmax", [margin], [OUTPUT_NAME], axis=1))
        output, width = OUTPUT_NAME, n_outputs
    else:
        nodes.append(helper.make_node("Identity", [margin], [PREDICTION_NAME]))
        output, width = PREDICTION_NAME, 1
    graph = helper.make_graph(
        nodes,
        name,
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.DOUBLE, [None, n_features])],
        [helper.make_tensor_value_info(output, TensorProto.DOUBLE, [None, width])],
        initializer=inits,
    )
    return helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", _ONNX_OPSET_IR), helper.make_opsetid("ai.onnx.ml", _ML_OPSET_IR)],
        producer_name="kafka-model-harness",
    )
