"""The one place that lets titus2 (written for Python <= 3.10 and NumPy 1) run on Python 3.11 and NumPy 2.

titus2 1.2 calls `inspect.getargspec` (removed in Python 3.11) and reads `numpy.float_` (removed in
NumPy 2.0). `pfa_engine_class()` restores both names, only when missing, then imports titus. It also
silences the DeprecationWarning avro 1.10 raises each time titus calls `avro.schema.Parse` (once per type
it reads, thousands per document), and numpy's PendingDeprecationWarning for the numpy.matrix titus's `la.*`
functions build on every call. Nothing else in the project imports titus directly.

    PFAEngine = pfa_engine_class()
    engine, = PFAEngine.fromJson(pfa_text)
    engine.action([1.0, 2.0])
"""

from __future__ import annotations

import inspect
import warnings
from typing import Any


def _getargspec(func: Any) -> inspect.FullArgSpec:
    # titus only reads `.args`; FullArgSpec has it with the same meaning.
    return inspect.getfullargspec(func)


def apply_shims() -> None:
    """Restore the names titus2 needs (idempotent; never replaces a name that exists)."""
    import numpy

    warnings.filterwarnings("ignore", message="`Parse` is deprecated", category=DeprecationWarning)
    # titus's la.* functions (matrix algebra, the MLP's PFA) build numpy.matrix objects on every call
    warnings.filterwarnings("ignore", message="the matrix subclass", category=PendingDeprecationWarning)

    if not hasattr(inspect, "getargspec"):
        inspect.getargspec = _getargspec  # type: ignore[attr-defined]
    if not hasattr(numpy, "float_"):
        numpy.float_ = numpy.float64  # type: ignore[attr-defined]


def pfa_engine_class() -> Any:
    """titus's PFAEngine class, after the compatibility shims."""
    apply_shims()
    from titus.genpy import PFAEngine

    return PFAEngine
