"""The embedded broker: a real single-node Apache Kafka 4.x in KRaft mode on loopback (node.py runs its JVM,
properties.py writes its configuration; cluster.py is the three-node variant).

The jars are the official ones from Maven Central (harness/kafka/broker_jars/pom.xml), resolved once with
Maven. State lives in a folder (default `.harness/broker` under the working directory, or
$HARNESS_STATE_DIR/broker): data, log, config and `state.json` with the bootstrap address, which
every other command reads to find the broker.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from harness.kafka import secure as secure_mode
from harness.kafka.errors import BrokerError
from harness.kafka.node import (
    DEFAULT_GC_OPTS,
    GC_OPTS_ENV,
    POM,
    NodeDir,
    SilentLogger,
    free_port,
    java_command,
    kafka_version,
    metadata_answers,
    new_cluster_id,
    pid_alive,
    port_is_free,
    terminate,
    wait_answers,
)
from harness.kafka.properties import NodeAddress, broker_properties, layout_of

__all__ = [
    "DEFAULT_GC_OPTS",
    "GC_OPTS_ENV",
    "POM",
    "SilentLogger",
    "Broker",
    "BrokerState",
    "free_port",
    "kafka_version",
    "metadata_answers",
    "new_cluster_id",
    "pid_alive",
    "port_is_free",
]

DEFAULT_HEAP_MB = 1024
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


class Broker:
    def __init__(self, root: Path | None = None, secure: bool = False, model_topics: tuple[str, ...] = ()) -> None:
        self.secure = secure
        self.model_topics = model_topics
        self.root = (root or state_root()) / ("secure-broker" if secure else "broker")
        self.state_file = self.root / "state.json"
        self.files = NodeDir(self.root)
        self.data_dir = self.files.data_dir
        self.log_file = self.files.log_file
        self.gc_log = self.files.gc_log  # read by the run to see GC pauses that overlap a measurement

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
        java, classpath = java_command()
        port, controller_port = self._ports(port)
        node = NodeAddress(1, port, controller_port)
        props = broker_properties(node, layout_of([node]), self.data_dir)
        files = None
        internal_port = None
        if self.secure:
            files = secure_mode.prepare(self.root / "secure")
            internal_port = free_port()
            while internal_port in (port, controller_port):
                internal_port = free_port()
            props |= secure_mode.listener_properties(port, controller_port, internal_port, files)
        self.files.write_config(props)
        if self.secure:
            self.files.config.chmod(0o600)
        jvm = self.files.jvm(java, heap_mb)
        if not self.files.formatted():
            extra = secure_mode.scram_arguments(files) if files is not None else []
            self.files.format(jvm, classpath, new_cluster_id(), extra)
        proc = self.files.launch(jvm, classpath)
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
        client_props = files.client_properties("admin") if files is not None else None
        wait_answers(proc, st.bootstrap, timeout_s, self.files.log_tail, properties=client_props)
        if files is not None:
            try:
                secure_mode.apply_acls(st.bootstrap, files, self.model_topics or secure_mode.DEFAULT_MODEL_TOPICS)
            except BaseException:
                terminate(proc.pid, grace_s=10)
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

    # ---- stop --------------------------------------------------------------------------------
    def stop(self, timeout_s: float = 30.0) -> bool:
        """Stop the broker cleanly; returns False when none was running."""
        st = self.state()
        if st is None:
            return False
        was_alive = pid_alive(st.pid)
        if was_alive:
            terminate(st.pid, grace_s=timeout_s)
        self.state_file.unlink(missing_ok=True)
        return was_alive
