"""Which bundle formats run code when they are loaded: the compiled C library is a shared object loaded into the
process, a pickled scikit-learn model runs code while it is unpickled, titus2 turns a PFA document into Python and
runs it, and h2o-genmodel instantiates the Java classes a MOJO names. ONNX (onnxruntime's operators), PMML (a
declarative document) and the LightGBM and XGBoost native files (model text and JSON) are data.

    code_reason("codegen-c", info)  -> "a C shared library (model.so) loaded into the process"
    code_reason("onnx", info)       -> None
    format_label("native", info)    -> "native", or "native:sklearn" / "native:h2o" for native files that run code

`harness build` and `harness import` mark each format in the manifest (`runs_code`, `runs_code_why`); a scorer
limited with `--model-formats` judges a bundle with this table, its own, not with the marks the bundle carries.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# format -> why loading it runs code (every flavor of it)
CODE_FORMATS: dict[str, str] = {
    "codegen-c": "a C shared library loaded into the process (dlopen runs its code)",
    "pfa": "titus2 compiles the PFA document into Python and runs it",
    "h2o-mojo": "h2o-genmodel instantiates the Java classes the MOJO names, in the process's JVM",
}
# native flavors whose file runs code (the others, LightGBM text and XGBoost JSON, are data)
CODE_NATIVE_FLAVORS: dict[str, str] = {
    "sklearn": "a scikit-learn model unpickled (joblib) or rebuilt from the types its skops file names",
    "h2o": "an H2O MOJO: h2o-genmodel instantiates the Java classes it names, in the process's JVM",
}
# the formats a scorer may be limited to, in the order the help lists them
KNOWN_LABELS = ("native", "onnx", "pmml", "codegen-c", "h2o-mojo", "pfa", "native:sklearn", "native:h2o")
NO_CODE = ("native", "onnx", "pmml")


def code_reason(fmt: str, info: Mapping[str, Any] | None = None) -> str | None:
    """Why loading `fmt` (its manifest entry `info`) runs code, or None when it is data only."""
    if fmt in CODE_FORMATS:
        return CODE_FORMATS[fmt]
    if fmt == "native":
        flavor = str((info or {}).get("flavor", ""))
        return CODE_NATIVE_FLAVORS.get(flavor)
    return None


def format_label(fmt: str, info: Mapping[str, Any] | None = None) -> str:
    """The name `--model-formats` lists a format by: the format, or `native:<flavor>` for a native file that runs
    code (so that allowing `native` never lets a pickle in)."""
    if fmt == "native" and code_reason(fmt, info) is not None:
        return f"native:{(info or {}).get('flavor', '')}"
    return fmt


def mark_formats(formats: Mapping[str, dict[str, Any]]) -> None:
    """Write `runs_code` (and `runs_code_why` when true) into each format entry of a manifest, in place."""
    for fmt, info in formats.items():
        if not isinstance(info, dict) or fmt == "ir":
            continue
        why = code_reason(fmt, info)
        info["runs_code"] = why is not None
        if why is not None:
            info["runs_code_why"] = why
        else:
            info.pop("runs_code_why", None)
