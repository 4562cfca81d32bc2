"""An H2O GBM MOJO to ONNX. `write_onnx_h2o(mojo_path, path)` is onnxmltools' H2O converter (what
`onnxmltools.convert_h2o` runs: genmodel's `PrintMojo --format json`, then its TreeEnsembleClassifier
converter) with one fix: PrintMojo omits the split value of an NA-vs-rest node, which makes `convert_h2o` fail with
KeyError 'splitValue'; we give such nodes +inf (BRANCH_GTE: x >= inf is false, so finite values go
left; NaN follows missing_value_tracks_true = not leftward = right -- exactly genmodel's decision).
The graph is float32 (input, thresholds, leaves, sum): the same tolerance as the other converters in
harness.modelbuild.export_onnx (atol 1e-5 outside float32 threshold flips; measured ~1e-7). GLM: no
converter exists (onnxmltools converts H2O GBM MOJOs only): NotImplementedError; the build can use
export_onnx.write_onnx_from_ir(trained.ir, path) instead.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from harness.modelbuild.mojo_reader import mojo_info

ONNX_ATOL = 1e-5  # float32 ONNX vs genmodel, rows without float32 threshold flips: measured ~1e-7


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
