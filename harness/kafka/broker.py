"""The embedded broker: a real single-node Apache Kafka 4.x in KRaft mode on loopback.

The jars are the official ones from Maven Central (harness/kafka/broker_jars/pom.xml), resolved once with
Maven. State lives in a folder (default `.harness/broker` under the working directory, or
$HARNESS_STATE_DIR/broker): data, log, config and `state.json` with the bootstrap address, which
every other command reads to find the broker.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from harness.kafka import secure as secure_mode
from harness.kafka.errors import BrokerError
from jvm.errors import JvmError
from jvm.maven import resolve_classpath

POM = Path(__file__).parent / "broker_jars" / "pom.xml"
DEFAULT_HEAP_MB = 1024
# the broker's garbage collector; HARNESS_BROKER_GC_OPTS (space-separated JVM options) replaces them
GC_OPTS_ENV = "HARNESS_BROKER_GC_OPTS"
DEFAULT_GC_OPTS = (
    "-XX:+UseG1GC",
    "-XX:G1HeapRegionSize=4m",  # fewer of Kafka's large buffers become humongous objects
    "-XX:+AlwaysPreTouch",
    "-XX:InitiatingHeapOccupancyPercent=35",
    "-XX:+ExplicitGCInvokesConcurrent",
)
DEFAULT_START_TIMEOUT_S = 90.0


def state_root() -> Path:
    return Path(os.environ.get("HARNESS_STATE_DIR", Path.cwd() / ".harness"))


@dataclass
class BrokerState:
    pid: int
    bootstrap: str
    port: int
    controller_port: int
    data_dir: str
    log_file: str
    started_at: float
    kafka_version: str
    secure: bool = False  # SASL/SCRAM over TLS with ACLs (harness/kafka/secure.py)
    internal_port: int | None = None
    client_configs: dict[str, str] | None = None  # principal -> its client config file (secure only)


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


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def pid_alive(pid: int) -> bool:
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
    from confluent_kafka.admin import AdminClient

    conf: dict[str, Any] = {"bootstrap.servers": bootstrap, "socket.timeout.ms": int(timeout_s * 1000)}
    conf.update(properties or {})
    conf["log_level"] = 0
    conf["logger"] = _SilentLogger()
    try:
        md = AdminClient(conf).list_topics(timeout=timeout_s)
    except Exception:  # KafkaException on timeout: the broker does not answer
        return False
    return bool(md.brokers)


class _SilentLogger:
    """librdkafka logs connection refusals at length; the harness reports one line itself."""

    def log(self, *args: object, **kwargs: object) -> None:
        pass

    def __getattr__(self, name: str) -> object:
        return self.log


class Broker:
    def __init__(self, root: Path | None = None, secure: bool = False, model_topics: tuple[str, ...] = ()) -> None:
        self.secure = secure
        self.model_topics = model_topics
        self.root = (root or state_root()) / ("secure-broker" if secure else "broker")
        self.state_file = self.root / "state.json"
        self.data_dir = self.root / "data"
        self.log_file = self.root / "server.log"
        self.gc_log = self.root / "gc.log"  # read by the run to see GC pauses that overlap a measurement

    # ---- state -------------------------------------------------------------------------------
    def state(self) -> BrokerState | None:
        if not self.state_file.exists():
            return None
        try:
            return BrokerState(**json.loads(self.state_file.read_text()))
        except (ValueError, TypeError):
            return None

    def running(self) -> BrokerState | None:
        st = self.state()
        if st is not None and pid_alive(st.pid):
            return st
        return None

    # ---- start -------------------------------------------------------------------------------
    def start(
        self,
        port: int | None = None,
        heap_mb: int = DEFAULT_HEAP_MB,
        timeout_s: float = DEFAULT_START_TIMEOUT_S,
    ) -> BrokerState:
        """Start the broker (formatting its storage on first start) and wait until it answers; return its
        state. Idempotent: a running broker is returned as it is. Without `port`, the previous port is reused
        when free (clients keep their bootstrap address across a restart)."""
        st = self.running()
        if st is not None:
            if port is not None and port != st.port:
                raise BrokerError(f"a broker already runs at {st.bootstrap}; stop it before starting on port {port}")
            return st
        java = shutil.which("java")
        if java is None:
            raise BrokerError("Java is not on PATH: install a Java 17 runtime (e.g. apt-get install openjdk-17-jre)")
        try:
            classpath = ":".join(resolve_classpath(POM))
        except JvmError as e:
            raise BrokerError(str(e)) from None
        port, controller_port = self._ports(port)
        self.root.mkdir(parents=True, exist_ok=True)
        config = self.root / "server.properties"
        files = None
        internal_port = None
        if self.secure:
            files = secure_mode.prepare(self.root / "secure")
            internal_port = free_port()
            while internal_port in (port, controller_port):
                internal_port = free_port()
            config.write_text(secure_mode.server_properties(port, controller_port, internal_port, self.data_dir, files))
            config.chmod(0o600)
        else:
            config.write_text(_server_properties(port, controller_port, self.data_dir))
        log4j = self.root / "log4j2.properties"
        log4j.write_text(_log4j_properties(self.log_file))
        env = dict(os.environ)
        env.pop("KAFKA_OPTS", None)
        jvm = self._jvm(java, heap_mb, log4j)
        if not (self.data_dir / "meta.properties").exists():
            extra = secure_mode.scram_arguments(files) if files is not None else []
            self._format_storage([*jvm, "-cp", classpath], config, env, extra)
        with open(self.root / "stdout.log", "ab") as out:
            proc = subprocess.Popen(
                [*jvm, "-cp", classpath, "kafka.Kafka", str(config)],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                env=env,
            )
        st = BrokerState(
            pid=proc.pid,
            bootstrap=f"127.0.0.1:{port}",
            port=port,
            controller_port=controller_port,
            data_dir=str(self.data_dir),
            log_file=str(self.log_file),
            started_at=time.time(),
            kafka_version=kafka_version(),
            secure=self.secure,
            internal_port=internal_port,
        )
        props = files.client_properties("admin") if files is not None else None
        self._wait_answers(proc, st.bootstrap, timeout_s, props)
        if files is not None:
            try:
                secure_mode.apply_acls(st.bootstrap, files, self.model_topics or secure_mode.DEFAULT_MODEL_TOPICS)
            except BaseException:
                self._kill(proc.pid, grace_s=10)
                raise
            configs = secure_mode.write_client_configs(files, st.bootstrap)
            st.client_configs = {k: str(v) for k, v in configs.items()}
        self.state_file.write_text(json.dumps(asdict(st), indent=2))
        return st

    def _ports(self, port: int | None) -> tuple[int, int]:
        """(listener, controller) ports: the one asked for, else the previous ones when free, else free ones."""
        previous = self.state()
        if port is not None:
            if not port_is_free(port):
                raise BrokerError(f"port {port} is taken: choose another with --port, or stop what listens there")
        elif previous is not None and port_is_free(previous.port):
            port = previous.port
        else:
            port = free_port()
        controller_port = (
            previous.controller_port
            if previous is not None and previous.controller_port != port and port_is_free(previous.controller_port)
            else free_port()
        )
        while controller_port == port:
            controller_port = free_port()
        return port, controller_port

    def _jvm(self, java: str, heap_mb: int, log4j: Path) -> list[str]:
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
            f"-Dlog4j2.configurationFile={log4j}",
        ]

    def _format_storage(
        self, java_cp: list[str], config: Path, env: dict[str, str], extra: list[str] | None = None
    ) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        cluster_id = new_cluster_id()
        fmt = subprocess.run(
            [*java_cp, "kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(config), *(extra or [])],
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
        )
        if fmt.returncode != 0:
            tail = (fmt.stdout + fmt.stderr).strip().splitlines()[-1:] or ["no output"]
            raise BrokerError(f"formatting the broker's storage failed: {tail[0]}")

    def _wait_answers(
        self, proc: subprocess.Popen[bytes], bootstrap: str, timeout_s: float, props: dict[str, str] | None = None
    ) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            if proc.poll() is not None:
                raise BrokerError(f"the broker exited with code {proc.returncode} while starting; {self._log_tail()}")
            wait = max(0.2, min(2.0, deadline - time.monotonic()))
            if metadata_answers(bootstrap, timeout_s=wait, properties=props):
                return
            if time.monotonic() > deadline:
                self._kill(proc.pid, grace_s=5)
                raise BrokerError(f"the broker did not answer within {timeout_s:.0f} s; {self._log_tail()}")
            time.sleep(0.3)

    def _log_tail(self, n: int = 5) -> str:
        lines: list[str] = []
        for f in (self.log_file, self.root / "stdout.log"):
            if f.exists():
                lines += [ln for ln in f.read_text(errors="replace").splitlines() if ln.strip()]
        if not lines:
            return "its log is empty"
        tail = " | ".join(ln.strip()[:200] for ln in lines[-n:])
        return f"last log lines ({self.log_file}): {tail}"

    # ---- stop --------------------------------------------------------------------------------
    def stop(self, timeout_s: float = 30.0) -> bool:
        """Stop the broker cleanly; returns False when none was running."""
        st = self.state()
        if st is None:
            return False
        was_alive = pid_alive(st.pid)
        if was_alive:
            self._kill(st.pid, grace_s=timeout_s)
        self.state_file.unlink(missing_ok=True)
        return was_alive

    @staticmethod
    def _kill(pid: int, grace_s: float) -> None:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline:
            try:
                done, _ = os.waitpid(pid, os.WNOHANG)
                if done == pid:
                    return
            except ChildProcessError:
                pass
            if not pid_alive(pid):
                return
            time.sleep(0.1)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)


def _server_properties(port: int, controller_port: int, data_dir: Path) -> str:
    return f"""# written by `harness broker start`
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:{controller_port}
listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}
advertised.listeners=PLAINTEXT://127.0.0.1:{port}
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs={data_dir}
num.partitions=1
num.network.threads=2
num.io.threads=4
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
log.retention.hours=24
log.segment.bytes=67108864
"""


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
