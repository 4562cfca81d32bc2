"""Build, start and stop the Kafka Streams + H2O MOJO application (contestants/kstreams_mojo).

The reference architecture as a contestant: a Java 17 Kafka Streams app with the MOJO embedded reads the
input topic, scores and writes result and dead-letter records exactly like the Python scoring loop
(see harness/scoring/wire.py). This module only builds its jar (Maven, when the sources changed), runs it as a
child process and stops it; the broker, topics and measurement belong to the rest of the harness.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import hashlib
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import weakref
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Literal

from contestants.errors import KStreamsError
from jvm.errors import MavenError
from jvm.maven import error_line, mvn, run_maven

APP_DIR = Path(__file__).resolve().parent / "kstreams_mojo"
JAR_NAME = "kstreams-mojo.jar"
STAMP_NAME = ".build-key"
SCORER_NAME = "kstreams-mojo"

Mode = Literal["per-record", "batch"]
Guarantee = Literal["at_least_once", "exactly_once_v2"]
MODES: tuple[str, ...] = ("per-record", "batch")
GUARANTEES: tuple[str, ...] = ("at_least_once", "exactly_once_v2")


def _tool(name: str, hint: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise KStreamsError(f"{name} is not on PATH: {hint}")
    return path


def _maven() -> str:
    try:
        return mvn("build the Kafka Streams app")
    except MavenError as e:
        raise KStreamsError(str(e)) from None


def source_key(app_dir: Path = APP_DIR) -> str:
    """sha256 of the pom and every file under src/main (paths and contents): the jar's build key."""
    h = hashlib.sha256()
    pom = app_dir / "pom.xml"
    if not pom.is_file():
        raise KStreamsError(f"no pom.xml in {app_dir}")
    h.update(b"pom.xml\0" + pom.read_bytes() + b"\0")
    src = app_dir / "src" / "main"
    for f in sorted(p for p in src.rglob("*") if p.is_file()):
        h.update(f.relative_to(app_dir).as_posix().encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _tail(output: str, n: int = 40) -> str:
    lines = [ln for ln in _ANSI.sub("", output).splitlines() if ln.strip()]
    return "\n".join(lines[-n:])


def build_jar(timeout_s: float = 900.0, app_dir: Path = APP_DIR) -> Path:
    """Return the app's runnable jar, running `mvn -q -B -DskipTests package` only when pom or src/main changed."""
    jar = app_dir / "target" / JAR_NAME
    stamp = app_dir / "target" / STAMP_NAME
    key = source_key(app_dir)
    if jar.is_file() and stamp.is_file() and stamp.read_text().strip() == key:
        return jar
    (app_dir / "target").mkdir(parents=True, exist_ok=True)
    with open(app_dir / "target" / ".build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one build at a time (parallel test workers)
        if jar.is_file() and stamp.is_file() and stamp.read_text().strip() == key:
            return jar
        stamp.unlink(missing_ok=True)
        try:
            run_maven(["-DskipTests", "package"], f"build the Kafka Streams app in {app_dir}", jar, app_dir, timeout_s)
        except MavenError as e:
            raise KStreamsError(str(e)) from None
        stamp.write_text(key + "\n")
    return jar


def run_maven_tests(timeout_s: float = 900.0, app_dir: Path = APP_DIR) -> tuple[bool, str]:
    """Run the app's Java unit tests (`mvn -q -B test`); return (passed, the tail of Maven's output)."""
    mvn = _maven()
    try:
        proc = subprocess.run([mvn, "-q", "-B", "test"], cwd=app_dir, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
        return False, _tail(out + f"\nmvn test did not finish within {timeout_s:.0f} s")
    return proc.returncode == 0, _tail(proc.stdout + proc.stderr)


def _escape_property(s: str, key: bool) -> str:
    """Escape for java.util.Properties.load (ISO-8859-1 file; \\uXXXX for anything else)."""
    out = []
    for i, ch in enumerate(s):
        if ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\f":
            out.append("\\f")
        elif ch in "=:#!" or (ch == " " and (key or i == 0)):
            out.append("\\" + ch)
        elif ord(ch) < 0x20 or ord(ch) > 0x7E:
            out.append("".join(f"\\u{u:04x}" for u in _utf16_units(ch)))
        else:
            out.append(ch)
    return "".join(out)


def _utf16_units(ch: str) -> list[int]:
    b = ch.encode("utf-16-be")
    return [int.from_bytes(b[i : i + 2], "big") for i in range(0, len(b), 2)]


def properties_text(config: Mapping[str, object]) -> str:
    """A java.util.Properties file with `config` (values as str; booleans as true/false)."""
    lines = []
    for k, v in config.items():
        value = str(v).lower() if isinstance(v, bool) else str(v)
        lines.append(f"{_escape_property(str(k), True)}={_escape_property(value, False)}")
    return "\n".join(lines) + "\n"


@dataclass
class KStreamsConfig:
    """What one run of the app reads and writes, how it scores, and with which delivery guarantee."""

    bootstrap: str
    input_topic: str
    output_topic: str
    dlq_topic: str
    application_id: str
    mojo_path: Path | str
    feature_names: Sequence[str]
    encoding: str = "json"
    mode: str = "per-record"
    batch_size: int = 64
    batch_max_wait_ms: int = 10
    guarantee: str = "at_least_once"
    client_config: Mapping[str, object] | None = None
    threads: int = 1

    def check(self) -> None:
        if self.mode not in MODES:
            raise KStreamsError(f"unknown mode {self.mode!r}; valid: {', '.join(MODES)}")
        if self.guarantee not in GUARANTEES:
            raise KStreamsError(f"unknown guarantee {self.guarantee!r}; valid: {', '.join(GUARANTEES)}")
        bad = [f for f in self.feature_names if not f or "," in f or f != f.strip()]
        if bad or not self.feature_names:
            raise KStreamsError(f"feature names must be non-empty, without commas or surrounding spaces: {bad}")


_live: weakref.WeakSet[KStreamsApp] = weakref.WeakSet()


@atexit.register
def _stop_all() -> None:
    for app in list(_live):
        with contextlib.suppress(Exception):
            app.stop(timeout_s=10)


class KStreamsApp:
    """One run of the Kafka Streams app as a child process: start() waits for READY, stop() ends it."""

    def __init__(
        self,
        jar: Path | None = None,
        java: str | None = None,
        max_heap_mb: int = 512,
        jvm_args: Sequence[str] = (),
        log_path: Path | None = None,
        tail_lines: int = 200,
    ) -> None:
        self.jar = jar
        self.java = java
        self.max_heap_mb = max_heap_mb
        self.jvm_args = list(jvm_args)
        self.log_path = log_path
        self._tail: deque[str] = deque(maxlen=tail_lines)
        self._tail_lock = threading.Lock()
        self._proc: subprocess.Popen[str] | None = None
        self._readers: list[threading.Thread] = []
        self._ready = threading.Event()
        self._config_file: Path | None = None
        self._log: IO[str] | None = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def returncode(self) -> int | None:
        return self._proc.poll() if self._proc is not None else None

    def output_tail(self, n: int = 40) -> str:
        """The last lines the app printed (stdout and stderr, in arrival order)."""
        with self._tail_lock:
            return "\n".join(list(self._tail)[-n:])

    def command(self, cfg: KStreamsConfig, client_config_file: Path | None = None) -> list[str]:
        """The java command line (without starting anything)."""
        cfg.check()
        java = self.java or _tool("java", "install a Java 17 runtime to run the Kafka Streams app")
        jar = self.jar or build_jar()
        cmd = [java, f"-Xmx{self.max_heap_mb}m", *self.jvm_args, "-jar", str(jar)]
        cmd += ["--bootstrap", cfg.bootstrap, "--input-topic", cfg.input_topic, "--output-topic", cfg.output_topic]
        cmd += ["--dlq-topic", cfg.dlq_topic, "--application-id", cfg.application_id, "--mojo", str(cfg.mojo_path)]
        cmd += ["--features", ",".join(cfg.feature_names), "--encoding", cfg.encoding, "--mode", cfg.mode]
        cmd += ["--batch-size", str(cfg.batch_size), "--batch-max-wait-ms", str(cfg.batch_max_wait_ms)]
        cmd += ["--guarantee", cfg.guarantee, "--threads", str(cfg.threads)]
        if client_config_file is not None:
            cmd += ["--client-config", str(client_config_file)]
        return cmd

    def start(self, cfg: KStreamsConfig, ready_timeout_s: float = 60.0) -> KStreamsApp:
        """Start the app and wait until it prints READY (its stream is RUNNING). Raises KStreamsError."""
        if self.running:
            raise KStreamsError(f"the Kafka Streams app is already running (pid {self.pid})")
        self._cleanup()
        config_file = None
        if cfg.client_config:
            # secrets (SASL passwords) in a private temporary file, deleted when the app stops
            fd, name = tempfile.mkstemp(prefix="kstreams-mojo-", suffix=".properties")
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w", encoding="latin-1") as f:
                f.write(properties_text(cfg.client_config))
            config_file = self._config_file = Path(name)
        cmd = self.command(cfg, config_file)
        bootstrap = cfg.bootstrap
        self._ready.clear()
        with self._tail_lock:
            self._tail.clear()
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log = open(self.log_path, "a", encoding="utf-8")  # noqa: SIM115 - closed in _cleanup
        self._proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            errors="replace",
            bufsize=1,
        )
        _live.add(self)
        assert self._proc.stdout is not None and self._proc.stderr is not None
        self._readers = [
            threading.Thread(target=self._read, args=(self._proc.stdout, True), daemon=True),
            threading.Thread(target=self._read, args=(self._proc.stderr, False), daemon=True),
        ]
        for t in self._readers:
            t.start()
        deadline = time.monotonic() + ready_timeout_s
        while not self._ready.wait(0.05):
            rc = self._proc.poll()
            if rc is not None:
                for t in self._readers:
                    t.join(2)
                tail = self.output_tail(20)
                self._cleanup()
                own = [ln for ln in tail.splitlines() if ln.startswith(SCORER_NAME + ": ")]
                last = own[-1][len(SCORER_NAME) + 2 :] if own else error_line(tail) if tail else "no output"
                raise KStreamsError(f"the Kafka Streams app exited with code {rc} before READY: {last}")
            if time.monotonic() > deadline:
                self.stop(timeout_s=20)
                tail = self.output_tail(20)
                raise KStreamsError(
                    f"the Kafka Streams app was not READY within {ready_timeout_s:.0f} s (is the broker at "
                    f"{bootstrap} up and the input topic created?); its last output:\n{tail}"
                )
        return self

    def _read(self, stream: IO[str], is_stdout: bool) -> None:
        for raw in stream:
            line = raw.rstrip("\n")
            with self._tail_lock:
                self._tail.append(line)
                if self._log is not None:
                    self._log.write(line + "\n")
                    self._log.flush()
            if is_stdout and line.strip() == "READY":
                self._ready.set()

    def stop(self, timeout_s: float = 20.0) -> int | None:
        """SIGTERM (the app drains its batches and closes Kafka Streams), then SIGKILL after timeout_s.

        Returns the exit code (0 after a clean shutdown), or None if it was never started.
        """
        proc = self._proc
        if proc is None:
            self._cleanup()
            return None
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                proc.wait(10)
        for t in self._readers:
            t.join(2)
        rc = proc.returncode
        self._cleanup()
        return rc

    def _cleanup(self) -> None:
        _live.discard(self)
        if self._proc is not None:
            for stream in (self._proc.stdout, self._proc.stderr):
                if stream is not None:
                    with contextlib.suppress(Exception):
                        stream.close()
        if self._config_file is not None:
            self._config_file.unlink(missing_ok=True)
            self._config_file = None
        if self._log is not None:
            with self._tail_lock:
                self._log.close()
                self._log = None

    def __enter__(self) -> KStreamsApp:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
