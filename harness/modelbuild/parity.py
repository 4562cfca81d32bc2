"""The parity gate: every exported format scored by its own independent evaluator (the adapters:
onnxruntime, the compiled library, pypmml, titus2, h2o-genmodel) on the held-out rows, against the reference
predictions (the native model's, or the IR's when the native runtime computes in float32, as XGBoost does). A
format beyond its tolerance fails the build, naming the format, the row and both values.

`harness import` runs the same gate on the user's reference rows, and `expected_parity` holds the artifact's own
evaluator to the producer's expected scores.

Tolerances follow the task's outputs (adapters/tasks.py): a probability (binary, each class of a multiclass model)
is held to an absolute tolerance; a regression's value to atol + rtol * max|reference| (the output's scale over the
rows: a float32 evaluator is exact to ~1e-7 of the values' magnitude, so 1e-5 absolute near 200 would be below
float32's own resolution there, and an MLP's float32 error near 0 is that of its largest outputs).
Each output is checked and recorded on its own (manifest parity "outputs": name -> max |diff|).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from adapters.bundle import Bundle
from adapters.errors import AdapterError
from adapters.tasks import TaskSpec
from harness.modelbuild import ir as ir_mod
from harness.modelbuild.errors import BuildError

FLOAT64_TOLERANCE = 1e-9
FLOAT64_RTOL = 1e-12  # a regression's value in float64: summation order only
FLOAT32_RTOL = 1e-5  # a regression's value from a float32 evaluator (float32 has 24 bits: 6e-8 per rounding)


@dataclass(frozen=True)
class Tolerance:
    """|p - reference| <= atol + rtol * max|reference| (the output's scale over the rows), per output."""

    atol: float
    rtol: float = 0.0

    def allowed(self, reference: np.ndarray) -> np.ndarray:
        """Per output column of (n, k) reference values."""
        if not self.rtol or reference.size == 0:
            return np.full((1, reference.shape[1] if reference.ndim == 2 else 1), self.atol)
        finite = np.where(np.isfinite(reference), np.abs(reference), 0.0)
        return self.atol + self.rtol * finite.max(axis=0, keepdims=True)

    def describe(self) -> str:
        return f"{self.atol:g}" + (f" + {self.rtol:g}·max|ref|" if self.rtol else "")

    def as_dict(self) -> dict[str, float]:
        return {"atol": self.atol, "rtol": self.rtol}


def compare(
    p: np.ndarray, reference: np.ndarray, tol: Tolerance, checked: np.ndarray, names: list[str]
) -> dict[str, Any]:
    """Outputs `p` against `reference` ((n,) or (n, k)) on the `checked` rows: the largest |diff| overall and per
    output, the worst row (the one furthest beyond its allowance), and whether every output is within `tol`."""
    p2 = np.asarray(p, dtype=np.float64).reshape(len(reference), -1)
    r2 = np.asarray(reference, dtype=np.float64).reshape(len(reference), -1)
    diff = np.abs(p2 - r2)
    diff = np.where(np.isnan(p2) != np.isnan(r2), np.inf, np.nan_to_num(diff, nan=0.0))  # a score against none
    excess = np.where(checked[:, None], diff - tol.allowed(r2), -np.inf)
    per_row = excess.max(axis=1) if excess.size else np.zeros(0)
    worst = int(np.argmax(per_row)) if checked.any() else 0
    col = int(np.argmax(excess[worst])) if checked.any() else 0
    masked = np.where(checked[:, None], diff, 0.0)
    outputs = {name: float(masked[:, j].max()) if checked.any() else 0.0 for j, name in enumerate(names)}
    return {
        "max_abs_diff": float(masked.max()) if checked.any() else 0.0,
        "max_abs_diff_row": worst,
        "worst_output": names[col] if names else "",
        "outputs": outputs,
        "passed": bool(not checked.any() or per_row[checked].max() <= 0.0),
        "worst_values": (float(p2[worst, col]), float(r2[worst, col])) if len(r2) else (0.0, 0.0),
    }


class ParitySubject(Protocol):
    """What the gate needs to know of the model (a TrainedModel, or an imported artifact)."""

    @property
    def ir(self) -> ir_mod.ModelIR | None: ...

    @property
    def flavor(self) -> str: ...


# the adapter that is each format's independent evaluator
EVALUATOR = {
    "native": "native",
    "onnx": "onnx",
    "codegen-c": "codegen-c",
    "pmml": "pmml",
    "pfa": "pfa",
    "h2o-mojo": "h2o-mojo",
}


def parity_gate(
    root: Path,
    manifest: dict[str, Any],
    trained: ParitySubject,
    X: np.ndarray,
    p_native: np.ndarray,
    log: Callable[[str], None],
) -> None:
    """Score X through every format of the bundle at `root` and hold each to `p_native` (the reference)."""
    from adapters.registry import adapter_class

    nan_rows = np.isnan(X).any(axis=1)
    task: TaskSpec = getattr(trained, "task", None) or TaskSpec()  # a subject without one: binary
    names = task.output_names
    ir = trained.ir
    ref_name = "reference" if getattr(trained, "native_tolerance", None) is not None else "native"
    # the IR itself first: PMML, PFA and the C library are all generated from it
    checks: list[tuple[str, Callable[..., np.ndarray], str]] = []
    if ir is not None:
        checks.append(("ir", lambda: ir_mod.predict(ir, X), "harness.modelbuild.ir reference evaluator"))
    for fmt in manifest["formats"]:
        if fmt in ("ir",):
            continue
        adapter_name = EVALUATOR[fmt]

        def run(adapter_name: str = adapter_name) -> np.ndarray:
            cls = adapter_class(adapter_name)
            with cls.load(root) as a:
                return a.predict(X)

        checks.append((fmt, run, f"adapter {adapter_name}"))
    for fmt, run, evaluator in checks:
        t = time.perf_counter()
        try:
            p = run()
        except AdapterError as e:
            raise BuildError(f"parity gate: format {fmt!r} could not be scored: {e}") from None
        seconds = time.perf_counter() - t
        entry = manifest["formats"][fmt]
        tol, excluded, why = _tolerance(fmt, entry, trained, X)
        checked = ~excluded
        got = compare(p, p_native, tol, checked, names)
        with_nan = compare(p, p_native, tol, checked & nan_rows, names)
        everything = compare(p, p_native, tol, np.ones(len(checked), dtype=bool), names)
        max_diff, worst = got["max_abs_diff"], got["max_abs_diff_row"]
        parity = {
            "evaluator": evaluator,
            "rows": int(X.shape[0]),
            "rows_with_nan": int(nan_rows.sum()),
            "max_abs_diff": max_diff,
            "max_abs_diff_row": worst,
            "max_abs_diff_rows_with_nan": with_nan["max_abs_diff"],
            "outputs": got["outputs"],
            "tolerance": tol.atol,
            "tolerance_rtol": tol.rtol,
            "tolerance_why": why,
            "excluded_rows": int(excluded.sum()),
            "max_abs_diff_all_rows": everything["max_abs_diff"],
            "seconds": round(seconds, 3),
            "passed": got["passed"],
        }
        entry["parity"] = parity
        log(
            f"  parity {fmt:<10} max |diff| {max_diff:.3g} (tolerance {tol.describe()}; "
            f"{int(nan_rows.sum())} rows with NaN"
            + (f"; {int(excluded.sum())} float32 threshold flips excluded" if excluded.any() else "")
            + ")"
        )
        if not parity["passed"]:
            mine, ref = got["worst_values"]
            output = f" {got['worst_output']}" if len(names) > 1 else ""
            raise BuildError(
                f"parity gate: format {fmt!r} row {worst}{output}: {fmt}={mine!r} {ref_name}={ref!r} "
                f"(|diff| {abs(mine - ref):.3g} > tolerance {tol.describe()})"
            )


def expected_parity(
    p: np.ndarray,
    expected: np.ndarray,
    tolerance: float | Tolerance,
    why: str,
    evaluator: str,
    names: list[str] | None = None,
) -> dict[str, Any]:
    """The artifact's own evaluator (`p`, (n,) or (n, k)) against the producer's expected scores (the same shape);
    raises BuildError beyond `tolerance`. Rows where the producer wrote no score (NaN in every output) are not
    compared and are counted; a row the evaluator leaves without a score where the producer gave one fails."""
    tol = tolerance if isinstance(tolerance, Tolerance) else Tolerance(float(tolerance))
    exp2 = np.asarray(expected, dtype=np.float64).reshape(len(expected), -1)
    names = names or [f"output {j}" for j in range(exp2.shape[1])]
    given = np.asarray(~np.isnan(exp2).all(axis=1), dtype=bool)
    got = compare(p, expected, tol, given, names)
    out = {
        "evaluator": evaluator,
        "rows": int(given.sum()),
        "rows_without_expected": int((~given).sum()),
        "max_abs_diff": got["max_abs_diff"],
        "max_abs_diff_row": got["max_abs_diff_row"],
        "outputs": got["outputs"],
        "tolerance": tol.atol,
        "tolerance_rtol": tol.rtol,
        "tolerance_why": why,
        "passed": got["passed"],
    }
    if not out["passed"]:
        mine, theirs = got["worst_values"]
        output = f" ({got['worst_output']})" if len(names) > 1 else ""
        raise BuildError(
            f"parity gate: the artifact's own evaluator ({evaluator}) differs from the expected scores at reference "
            f"row {got['max_abs_diff_row']}{output}: {mine!r} vs expected {theirs!r} "
            f"(|diff| {abs(mine - theirs):.3g} > tolerance {tol.describe()})"
        )
    return out


def _tolerance(
    fmt: str, entry: dict[str, Any], trained: ParitySubject, X: np.ndarray
) -> tuple[Tolerance, np.ndarray, str]:
    none = np.zeros(X.shape[0], dtype=bool)
    native_tol = getattr(trained, "native_tolerance", None)
    regression = getattr(getattr(trained, "task", None), "task", "binary") == "regression"
    if fmt == "native" and native_tol is not None:
        return (
            Tolerance(float(native_tol), float(native_tol) if regression else 0.0),
            none,
            f"{trained.flavor} computes in float32 (inputs, leaf sums, the link): held to the IR's float64 "
            "prediction of the stored model",
        )
    if fmt == "onnx":
        tol_info = entry.get("tolerance", {})
        atol = float(tol_info.get("atol", 1e-5))
        if entry.get("input_dtype", "float32") == "float64":
            return Tolerance(atol, FLOAT64_RTOL if regression else 0.0), none, "float64 graph"
        tol = Tolerance(atol, float(tol_info.get("rtol", FLOAT32_RTOL)) if regression else 0.0)
        if not isinstance(trained.ir, ir_mod.TreeEnsemble):
            return tol, none, "a float32 graph: float32 weights and arithmetic, ~1e-7 on probabilities"
        from harness.modelbuild.export_onnx import float32_flip_rows

        flips = float32_flip_rows(trained.ir, X)
        return (
            tol,
            flips,
            "ONNX ML tree ensembles hold thresholds, leaves and sums in float32: ~1e-7 on probabilities; "
            "rows whose value and a threshold round across each other in float32 take another branch and are "
            "counted as flips, not compared",
        )
    f64 = Tolerance(FLOAT64_TOLERANCE, FLOAT64_RTOL if regression else 0.0)
    if fmt == "h2o-mojo" or (fmt == "native" and trained.flavor == "h2o"):
        return f64, none, "h2o-genmodel is the native scorer for H2O models"
    return f64, none, "float64 end to end"


def verify_bundle(root: Path) -> Bundle:
    """Open a bundle and check every file's sha256; raises adapters.errors.BundleError."""
    b = Bundle.open(root)
    for fmt in b.formats():
        b.verified_path(fmt)
    b.reference()
    return b
