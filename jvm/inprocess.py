"""The one JVM of a process (JPype), started once with every jar any adapter needs.

pypmml and h2o-genmodel both live in this JVM. JPype cannot restart a JVM or add jars to its
boot class path later, so whoever needs Java calls `ensure_jvm()` and gets the same JVM.
"""

from __future__ import annotations

import threading
from pathlib import Path

from jvm.maven import resolve_classpath

_lock = threading.Lock()
_POM = Path(__file__).parent / "inprocess_jars" / "pom.xml"


def classpath() -> list[str]:
    """pypmml's jars (shipped in its wheel) plus h2o-genmodel and its dependencies (from Maven)."""
    jars: list[str] = []
    try:
        import pypmml

        jars_dir = Path(pypmml.__file__).parent / "jars"
        jars += sorted(str(p) for p in jars_dir.glob("*.jar"))
    except ImportError:  # the pmml extra is not installed; genmodel alone is fine
        pass
    jars += resolve_classpath(_POM)
    return jars


def ensure_jvm(max_heap_mb: int = 1024) -> None:
    """Start the process's JVM if it is not running yet (idempotent, thread-safe)."""
    import jpype
    import jpype.config

    with _lock:
        if jpype.isJVMStarted():
            return
        # Destroying the JVM at interpreter exit can die with SIGSEGV in JPype's _JTerminate once some
        # other code has replaced the signal handlers the JVM relies on (pytest's faulthandler does;
        # jpype-project/jpype#842). The process is ending anyway: leave the JVM to the OS.
        jpype.config.destroy_jvm = False
        jpype.startJVM(
            f"-Xmx{max_heap_mb}m",
            "-Xss4m",
            classpath=classpath(),
            convertStrings=True,
        )


def jvm_started() -> bool:
    """True when this process started its JVM (without importing JPype when nothing did)."""
    import sys

    jpype = sys.modules.get("jpype")
    return bool(jpype is not None and jpype.isJVMStarted())


def exit_process(code: int) -> None:
    """End the process with `code`, skipping the interpreter's teardown when a JVM runs in it: JPype's JVM
    sometimes aborts that teardown (SIGABRT, exit code 134), which would hide the real exit code of a
    scorer. Without a JVM this is sys.exit(code). Only for commands with nothing left to clean up."""
    import os
    import sys

    if not jvm_started():
        sys.exit(code)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
