"""Resolve a Maven class path once and cache it next to the pom (used for JVM jars)."""

from __future__ import annotations

import hashlib
import os
import shlex
import shutil
import subprocess
from pathlib import Path

from jvm.errors import MavenError


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
    mvn = shutil.which("mvn")
    if mvn is None:
        raise MavenError("Maven (mvn) is not on PATH: install Maven 3 to resolve the JVM jars")
    if shutil.which("java") is None:
        raise MavenError("Java is not on PATH: install a Java 17 runtime")
    # extra Maven arguments, e.g. `-s mirror-settings.xml` behind a corporate mirror
    extra = shlex.split(os.environ.get("HARNESS_MAVEN_ARGS", ""))
    try:
        proc = subprocess.run(
            [mvn, "-q", "-B", *extra, "-f", str(pom), "dependency:build-classpath", f"-Dmdep.outputFile={out}"],
            capture_output=True,
            text=True,
            timeout=timeout_s,
        )
    except subprocess.TimeoutExpired:
        raise MavenError(f"Maven did not resolve {pom} within {timeout_s:.0f} s") from None
    if proc.returncode != 0 or not out.exists():
        lines = [ln for ln in (proc.stdout + proc.stderr).splitlines() if "ERROR" in ln] or (
            proc.stdout + proc.stderr
        ).splitlines()
        last = lines[0].strip() if lines else "no output"
        raise MavenError(f"Maven could not resolve {pom.name} in {pom.parent}: {last}")
    return [j for j in out.read_text().strip().split(":") if j]
