"""The parity gate: every exported format scored by its own independent evaluator (the adapters:
onnxruntime, the compiled library, pypmml, titus2, h2o-genmodel) on the held-out rows, against the reference
predictions (the native model's, or the IR's when the native runtime computes in float32, as XGBoost does). A
format beyond its tolerance fails the build, naming the format, the row and both values.

`harness import` runs the same gate on the user's reference rows, and `expected_parity` holds the artifact's own
evaluator to the producer's expected scores.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from adapters.bundle import Bundle
from adapters.errors import AdapterError
from harness.modelbuild import ir as ir_mod
from harness.modelbuild.errors import BuildError

FLOAT64_TOLERANCE = 1e-9


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
        diff = np.abs(p - p_native)
        entry = manifest["formats"][fmt]
        tol, excluded, why = _tolerance(fmt, entry, trained, X)
        checked = ~excluded
        worst = int(np.argmax(np.where(checked, diff, -1.0))) if checked.any() else 0
        max_diff = float(diff[checked].max()) if checked.any() else 0.0
        parity = {
            "evaluator": evaluator,
            "rows": int(X.shape[0]),
            "rows_with_nan": int(nan_rows.sum()),
            "max_abs_diff": max_diff,
            "max_abs_diff_row": worst,
            "max_abs_diff_rows_with_nan": float(diff[checked & nan_rows].max()) if (checked & nan_rows).any() else 0.0,
            "tolerance": tol,
            "tolerance_why": why,
            "excluded_rows": int(excluded.sum()),
            "max_abs_diff_all_rows": float(diff.max()),
            "seconds": round(seconds, 3),
            "passed": bool(max_diff <= tol),
        }
        entry["parity"] = parity
        log(
            f"  parity {fmt:<10} max |diff| {max_diff:.3g} (tolerance {tol:g}; {int(nan_rows.sum())} rows with NaN"
            + (f"; {int(excluded.sum())} float32 threshold flips excluded" if excluded.any() else "")
            + ")"
        )
        if not parity["passed"]:
            raise BuildError(
                f"parity gate: format {fmt!r} row {worst}: {fmt}={float(p[worst])!r} "
                f"{ref_name}={float(p_native[worst])!r} (|diff| {max_diff:.3g} > tolerance {tol:g})"
            )


def expected_parity(p: np.ndarray, expected: np.ndarray, tolerance: float, why: str, evaluator: str) -> dict[str, Any]:
    """The artifact's own evaluator (`p`) against the producer's expected scores; raises BuildError beyond
    `tolerance`. Rows where the producer wrote no score (NaN) are not compared and are counted."""
    given = ~np.isnan(expected)
    diff = np.where(given, np.abs(p - expected), -1.0)
    diff = np.where(given & np.isnan(p), np.inf, diff)  # the evaluator gave no score where the producer did
    worst = int(np.argmax(diff)) if given.any() else 0
    max_diff = float(diff[worst]) if given.any() else 0.0
    out = {
        "evaluator": evaluator,
        "rows": int(given.sum()),
        "rows_without_expected": int((~given).sum()),
        "max_abs_diff": max_diff,
        "max_abs_diff_row": worst,
        "tolerance": tolerance,
        "tolerance_why": why,
        "passed": bool(max_diff <= tolerance),
    }
    if not out["passed"]:
        raise BuildError(
            f"parity gate: the artifact's own evaluator ({evaluator}) differs from the expected scores at reference "
            f"row {worst}: {float(p[worst])!r} vs expected {float(expected[worst])!r} "
            f"(|diff| {max_diff:.3g} > tolerance {tolerance:g})"
        )
    return out


def _tolerance(fmt: str, entry: dict[str, Any], trained: ParitySubject, X: np.ndarray) -> tuple[float, np.ndarray, str]:
    none = np.zeros(X.shape[0], dtype=bool)
    native_tol = getattr(trained, "native_tolerance", None)
    if fmt == "native" and native_tol is not None:
        return (
            float(native_tol),
            none,
            f"{trained.flavor} computes in float32 (inputs, leaf sums, the sigmoid): held to the IR's float64 "
            "prediction of the stored model",
        )
    if fmt == "onnx":
        tol_info = entry.get("tolerance", {})
        atol = float(tol_info.get("atol", 1e-5))
        if entry.get("input_dtype", "float32") == "float64":
            return atol, none, "float64 graph"
        if not isinstance(trained.ir, ir_mod.TreeEnsemble):
            return atol, none, "a float32 graph: float32 weights and arithmetic, ~1e-7 on probabilities"
        from harness.modelbuild.export_onnx import float32_flip_rows

        flips = float32_flip_rows(trained.ir, X)
        return (
            atol,
            flips,
            "ONNX ML tree ensembles hold thresholds, leaves and sums in float32: ~1e-7 on probabilities; "
            "rows whose value and a threshold round across each other in float32 take another branch and are "
            "counted as flips, not compared",
        )
    if fmt == "h2o-mojo" or (fmt == "native" and trained.flavor == "h2o"):
        return FLOAT64_TOLERANCE, none, "h2o-genmodel is the native scorer for H2O models"
    return FLOAT64_TOLERANCE, none, "float64 end to end"


def verify_bundle(root: Path) -> Bundle:
    """Open a bundle and check every file's sha256; raises adapters.errors.BundleError."""
    b = Bundle.open(root)
    for fmt in b.formats():
        b.verified_path(fmt)
    b.reference()
    return b
