"""Run Maven (one way for every caller: $HARNESS_MAVEN_ARGS, one error line), and resolve a Maven class path once
and cache it next to the pom (used for JVM jars)."""

from __future__ import annotations

import hashlib
import os
import re
import shlex
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from jvm.errors import MavenError

_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def mvn(purpose: str) -> str:
    """The Maven executable; MavenError when Maven, or the Java it runs on, is not on PATH."""
    path = shutil.which("mvn")
    if path is None:
        raise MavenError(f"Maven (mvn) is not on PATH: install Maven 3 to {purpose}")
    if shutil.which("java") is None:
        raise MavenError(f"Java is not on PATH: install a Java 17 runtime to {purpose}")
    return path


def error_line(output: str) -> str:
    """The line of a JVM tool's output that says what went wrong: its first ERROR line that is not a Maven banner."""
    lines = [ln.strip() for ln in _ANSI.sub("", output).splitlines() if ln.strip()]
    noise = ("-> [Help", "COMPILATION ERROR", "BUILD FAILURE")
    errors = [ln for ln in lines if "ERROR" in ln and ln != "[ERROR]" and not any(x in ln for x in noise)]
    return (errors or lines or ["no output"])[0][:400]


def run_maven(
    args: Sequence[str], what: str, produces: Path, cwd: Path | None = None, timeout_s: float = 900.0
) -> None:
    """Run `mvn -q -B $HARNESS_MAVEN_ARGS *args` (extra arguments, e.g. `-s mirror-settings.xml` behind a corporate
    mirror), which must write `produces`. MavenError when it does not ("Maven could not {what}: <its error line>")
    or runs longer than `timeout_s` ("Maven did not {what} within N s")."""
    extra = shlex.split(os.environ.get("HARNESS_MAVEN_ARGS", ""))
    cmd = [mvn(what), "-q", "-B", *extra, *args]
    try:
        proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        raise MavenError(f"Maven did not {what} within {timeout_s:.0f} s") from None
    if proc.returncode != 0 or not produces.exists():
        raise MavenError(f"Maven could not {what}: {error_line(proc.stdout + proc.stderr)}")


def resolve_classpath(pom: Path, cache_dir: Path | None = None, timeout_s: float = 900.0) -> list[str]:
    """Return the jars of `pom`'s dependencies, resolving with Maven only when the pom changed.

    The cache key is the pom's sha256; a cached class path whose jars vanished is resolved again.
    $HARNESS_MAVEN_ARGS adds Maven arguments (a settings file for a mirror, say); $HARNESS_CACHE_DIR
    moves the cache (default ~/.cache/kafka-model-harness).
    """
    pom = pom.resolve()
    digest = hashlib.sha256(pom.read_bytes()).hexdigest()[:16]
    cache_dir = cache_dir or Path(os.environ.get("HARNESS_CACHE_DIR", Path.home() / ".cache" / "kafka-model-harness"))
    cache_dir.mkdir(parents=True, exist_ok=True)
    out = cache_dir / f"classpath-{pom.parent.name}-{digest}.txt"
    if out.exists():
        jars = [j for j in out.read_text().strip().split(":") if j]
        if jars and all(Path(j).exists() for j in jars):
            return jars
    args = ["-f", str(pom), "dependency:build-classpath", f"-Dmdep.outputFile={out}"]
    run_maven(args, f"resolve {pom.name} in {pom.parent}", out, timeout_s=timeout_s)
    return [j for j in out.read_text().strip().split(":") if j]
