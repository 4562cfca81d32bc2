"""Telling a JVM engine's failure from a record's, for the adapters that score in the process's JVM (JPype).

A Java exception thrown while scoring is usually about the row (a pmml4s or genmodel exception): the
adapter raises ScoringFailed and the scoring loop isolates and dead-letters the row. Two cases are the
engine's, not the row's, and raise EngineUnavailable instead: the JVM is not running, and a
`java.lang.VirtualMachineError` (OutOfMemoryError, InternalError, UnknownError: the JVM itself is in
trouble). The loop then backs off instead of dead-lettering good records.
"""

from __future__ import annotations

from typing import Any

from adapters.errors import EngineUnavailable


def require_jvm(adapter: str) -> None:
    """Raise EngineUnavailable when the process's JVM is not running (any more)."""
    import jpype

    if not jpype.isJVMStarted():
        raise EngineUnavailable(f"adapter {adapter!r}: the JVM is not running")


def is_jvm_failure(exc: BaseException) -> bool:
    """True for a java.lang.VirtualMachineError (or a subclass) raised through JPype."""
    import jpype

    if not isinstance(exc, jpype.JException):
        return False
    try:
        return bool(isinstance(exc, jpype.JClass("java.lang.VirtualMachineError")))
    except Exception:  # the JVM is gone: looking a class up fails too
        return True


def java_one_line(exc: Any) -> str:
    """A Java exception as `SimpleName: message`, on one line."""
    try:
        name = str(exc.getClass().getSimpleName())
        msg = exc.getMessage()
    except Exception:  # not a Java exception, or the JVM is gone
        name, msg = type(exc).__name__, str(exc)
    text = f"{name}: {msg}" if msg else name
    return " ".join(str(text).split()) or name
