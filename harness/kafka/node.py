"""One embedded Kafka node: a JVM running `kafka.Kafka` from a folder of its own (server.properties, data,
server log, GC log). The single broker (broker.py) is one node; the embedded cluster (cluster.py) is three.

Everything here works from a pid, not a process handle: `harness broker start` and `harness broker stop` are
different processes.
"""

from __future__ import annotations

import base64
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from harness.kafka.errors import BrokerError
from harness.kafka.properties import render
from jvm.errors import JvmError
from jvm.maven import resolve_classpath

POM = Path(__file__).parent / "broker_jars" / "pom.xml"
# the broker's garbage collector; HARNESS_BROKER_GC_OPTS (space-separated JVM options) replaces them
GC_OPTS_ENV = "HARNESS_BROKER_GC_OPTS"
DEFAULT_GC_OPTS = (
    "-XX:+UseG1GC",
    "-XX:G1HeapRegionSize=4m",  # fewer of Kafka's large buffers become humongous objects
    "-XX:+AlwaysPreTouch",
    "-XX:InitiatingHeapOccupancyPercent=35",
    "-XX:+ExplicitGCInvokesConcurrent",
)


def kafka_version() -> str:
    text = POM.read_text()
    start = text.index("<kafka.version>") + len("<kafka.version>")
    return text[start : text.index("</kafka.version>")]


def new_cluster_id() -> str:
    """A random KRaft cluster ID (22 characters of URL-safe base64). Like Kafka's own Uuid.randomUuid, never
    one that starts with '-': kafka-storage would read it as an option ("argument --cluster-id/-t: expected
    one argument"), one fresh broker in 64."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def free_ports(n: int, avoid: set[int] | None = None) -> list[int]:
    """`n` distinct free ports, none of them in `avoid`."""
    taken = set(avoid or ())
    out: list[int] = []
    while len(out) < n:
        p = free_port()
        if p not in taken:
            taken.add(p)
            out.append(p)
    return out


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def pid_alive(pid: int) -> bool:
    if pid <= 0:  # 0 and -1 would address a process group
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie child counts as dead
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except OSError:
        return True


def metadata_answers(bootstrap: str, timeout_s: float = 5.0, properties: dict[str, str] | None = None) -> bool:
    """True when a broker at `bootstrap` answers a metadata request within the timeout."""
    return broker_count(bootstrap, timeout_s, properties) > 0


def broker_count(bootstrap: str, timeout_s: float = 5.0, properties: dict[str, str] | None = None) -> int:
    """How many brokers the cluster at `bootstrap` lists in a metadata answer (0: no answer in time)."""
    from confluent_kafka.admin import AdminClient

    conf: dict[str, Any] = {"bootstrap.servers": bootstrap, "socket.timeout.ms": int(timeout_s * 1000)}
    conf.update(properties or {})
    conf["log_level"] = 0
    conf["logger"] = SilentLogger()
    try:
        md = AdminClient(conf).list_topics(timeout=timeout_s)
    except Exception:  # KafkaException on timeout: the broker does not answer
        return 0
    return len(md.brokers)


class SilentLogger:
    """librdkafka logs connection refusals at length; the harness reports one line itself."""

    def log(self, *args: object, **kwargs: object) -> None:
        pass

    def __getattr__(self, name: str) -> object:
        return self.log


def java_command() -> tuple[str, str]:
    """(the java executable, the Kafka class path), or one clear BrokerError."""
    java = shutil.which("java")
    if java is None:
        raise BrokerError("Java is not on PATH: install a Java 17 runtime (e.g. apt-get install openjdk-17-jre)")
    try:
        return java, ":".join(resolve_classpath(POM))
    except JvmError as e:
        raise BrokerError(str(e)) from None


def kafka_env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("KAFKA_OPTS", None)
    return env


class NodeDir:
    """A node's folder: server.properties, log4j2.properties, data/, server.log, gc.log, stdout.log."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.data_dir = root / "data"
        self.log_file = root / "server.log"
        self.gc_log = root / "gc.log"  # read by a run to see GC pauses that overlap a measurement
        self.config = root / "server.properties"
        self.log4j = root / "log4j2.properties"
        self.stdout = root / "stdout.log"

    def write_config(self, props: dict[str, str]) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.config.write_text(render(props))
        self.log4j.write_text(_log4j_properties(self.log_file))

    def formatted(self) -> bool:
        return (self.data_dir / "meta.properties").exists()

    def jvm(self, java: str, heap_mb: int) -> list[str]:
        """A fixed, pre-touched heap and G1, with a GC log beside the server log for when a latency figure needs
        explaining. Not Kafka's start-script pause goal of 20 ms: on a machine whose cores the broker shares
        with the load, G1's pauses cannot meet it, so G1 shrinks the young generation to its minimum and
        collects every second or so — each collection a p99 spike for whatever step it falls in. With G1's
        default goal the young generation grows and collections are rare (see GC_OPTS_ENV to try others)."""
        gc = os.environ.get(GC_OPTS_ENV, "").split() or list(DEFAULT_GC_OPTS)
        return [
            java,
            f"-Xmx{heap_mb}m",
            f"-Xms{heap_mb}m",
            *gc,
            "-Djava.awt.headless=true",
            f"-Xlog:gc*:file={self.gc_log}:time,uptime:filecount=2,filesize=10M",
            f"-Dlog4j2.configurationFile={self.log4j}",
        ]

    def format(self, jvm: list[str], classpath: str, cluster_id: str, extra: Sequence[str] = ()) -> None:
        """kafka-storage format with `cluster_id` (every node of a cluster gets the same one); `extra` adds
        arguments (the secure broker's SCRAM credentials)."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        fmt = subprocess.run(
            [
                *jvm,
                "-cp",
                classpath,
                "kafka.tools.StorageTool",
                "format",
                "-t",
                cluster_id,
                "-c",
                str(self.config),
                *extra,
            ],
            capture_output=True,
            text=True,
            timeout=180,
            env=kafka_env(),
        )
        if fmt.returncode != 0:
            tail = (fmt.stdout + fmt.stderr).strip().splitlines()[-1:] or ["no output"]
            raise BrokerError(f"formatting the broker's storage failed: {tail[0]}")

    def launch(
        self, jvm: list[str], classpath: str, preexec: Callable[[], None] | None = None
    ) -> subprocess.Popen[bytes]:
        """Start the node in a session of its own (its pid is its process group)."""
        with open(self.stdout, "ab") as out:
            return subprocess.Popen(
                [*jvm, "-cp", classpath, "kafka.Kafka", str(self.config)],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                env=kafka_env(),
                preexec_fn=preexec,
            )

    def log_tail(self, n: int = 5) -> str:
        lines: list[str] = []
        for f in (self.log_file, self.stdout):
            if f.exists():
                lines += [ln for ln in f.read_text(errors="replace").splitlines() if ln.strip()]
        if not lines:
            return "its log is empty"
        tail = " | ".join(ln.strip()[:200] for ln in lines[-n:])
        return f"last log lines ({self.log_file}): {tail}"


def wait_answers(
    proc: subprocess.Popen[bytes],
    bootstrap: str,
    timeout_s: float,
    log_tail: Callable[[], str],
    what: str = "broker",
    properties: dict[str, str] | None = None,
) -> None:
    """Until the node at `bootstrap` answers a metadata request; a node that exits or stays silent is an error
    (and is killed)."""
    deadline = time.monotonic() + timeout_s
    while True:
        if proc.poll() is not None:
            raise BrokerError(f"the {what} exited with code {proc.returncode} while starting; {log_tail()}")
        wait = max(0.2, min(5.0, deadline - time.monotonic()))
        if metadata_answers(bootstrap, timeout_s=wait, properties=properties):
            return
        if time.monotonic() > deadline:
            terminate(proc.pid, grace_s=5)
            raise BrokerError(f"the {what} did not answer within {timeout_s:.0f} s; {log_tail()}")
        time.sleep(0.3)


def terminate(pid: int, grace_s: float) -> None:
    """SIGTERM (a clean, controlled shutdown), then SIGKILL to the process group after `grace_s`."""
    try:
        os.kill(pid, signal.SIGCONT)  # a frozen node cannot shut down
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        if _reaped(pid):
            return
        if not pid_alive(pid):
            _reaped(pid)  # it exited between the two looks: a zombie child holds its cgroup until reaped
            return
        time.sleep(0.1)
    kill(pid)


def kill(pid: int) -> None:
    """SIGKILL to the node's process group (a hard kill: no controlled shutdown, no flush)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)


def _reaped(pid: int) -> bool:
    """Reap `pid` when it is this process's child and has exited."""
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        return done == pid
    except ChildProcessError:
        return False


def _log4j_properties(log_file: Path) -> str:
    return f"""rootLogger.level=INFO
rootLogger.appenderRef.f.ref=F
appender.f.type=File
appender.f.name=F
appender.f.fileName={log_file}
appender.f.layout.type=PatternLayout
appender.f.layout.pattern=[%d] %p %m (%c)%n
logger.kafka.name=kafka
logger.kafka.level=WARN
logger.apache.name=org.apache.kafka
logger.apache.level=WARN
logger.started.name=kafka.server.KafkaRaftServer
logger.started.level=INFO
"""
