"""The embedded cluster: three Apache Kafka 4.x nodes on loopback, each a broker and a KRaft controller
(combined mode), for `harness broker start --brokers 3` and the replication fault matrix.

Why combined nodes: three JVMs instead of six on a machine of two cores; every node is a voter, so the
metadata quorum survives the loss of any one node exactly as the data does (replication factor 3,
min.insync.replicas 2); and killing the active controller also kills a broker that leads partitions, the
harder of the two cases. (Kafka recommends separate controllers in production so that a broker's load
cannot starve the quorum; properties.py is where a `process.roles=controller` node would be described.)

State lives in `.harness/cluster` (or $HARNESS_STATE_DIR/cluster): `state.json` (the cluster id, every node's
pid and ports) and a folder per node (`node-1/`: config, data, server.log, gc.log). The fault suite drives
single nodes: clean stop, hard kill, start, freeze (SIGSTOP) and thaw.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from harness.kafka.broker import state_root
from harness.kafka.errors import BrokerError
from harness.kafka.node import (
    NodeDir,
    broker_count,
    free_ports,
    java_command,
    kafka_version,
    kill,
    new_cluster_id,
    pid_alive,
    port_is_free,
    terminate,
    wait_answers,
)
from harness.kafka.properties import Layout, NodeAddress, broker_properties

CLUSTER_SIZES = (3, 4, 5)
DEFAULT_CLUSTER_HEAP_MB = 256  # per node: three of them share the machine with the load and the scorers
# three JVMs starting at once on two shared cores: minutes, when the machine is busy (a restarted node also
# recovers its logs and catches up with the metadata log before it answers)
DEFAULT_CLUSTER_START_TIMEOUT_S = 300.0

# A hook the fault suite uses to place a node's JVM (e.g. in a cgroup of its own) before it opens a socket:
# called with the node id, it returns a function run in the child between fork and exec, or None.
LaunchHook = Callable[[int], Callable[[], None] | None]


@dataclass
class NodeState:
    node_id: int
    pid: int
    port: int
    controller_port: int
    started_at: float

    @property
    def address(self) -> NodeAddress:
        return NodeAddress(self.node_id, self.port, self.controller_port)


@dataclass
class ClusterState:
    cluster_id: str
    kafka_version: str
    heap_mb: int
    started_at: float
    nodes: list[NodeState] = field(default_factory=list)

    @property
    def bootstrap(self) -> str:
        return self.layout.bootstrap

    @property
    def layout(self) -> Layout:
        return Layout(tuple(n.address for n in sorted(self.nodes, key=lambda n: n.node_id)))

    def node(self, node_id: int) -> NodeState:
        for n in self.nodes:
            if n.node_id == node_id:
                return n
        raise BrokerError(f"the cluster has no node {node_id} (nodes: {', '.join(str(n.node_id) for n in self.nodes)})")

    def alive(self) -> list[int]:
        return [n.node_id for n in self.nodes if pid_alive(n.pid)]

    @classmethod
    def from_json(cls, text: str) -> ClusterState:
        raw = json.loads(text)
        raw["nodes"] = [NodeState(**n) for n in raw.get("nodes", [])]
        return cls(**raw)


class Cluster:
    def __init__(self, root: Path | None = None, launch_hook: LaunchHook | None = None) -> None:
        self.root = (root or state_root()) / "cluster"
        self.state_file = self.root / "state.json"
        self.launch_hook = launch_hook
        self._lock = threading.Lock()

    def node_dir(self, node_id: int) -> NodeDir:
        return NodeDir(self.root / f"node-{node_id}")

    # ---- state -------------------------------------------------------------------------------
    def state(self) -> ClusterState | None:
        if not self.state_file.exists():
            return None
        try:
            return ClusterState.from_json(self.state_file.read_text())
        except (ValueError, TypeError, KeyError):
            return None

    def running(self) -> ClusterState | None:
        """The cluster's state while at least one of its nodes runs."""
        st = self.state()
        if st is not None and st.alive():
            return st
        return None

    def _save(self, st: ClusterState) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(st), indent=2))
        tmp.replace(self.state_file)

    # ---- start -------------------------------------------------------------------------------
    def start(
        self,
        brokers: int = 3,
        heap_mb: int = DEFAULT_CLUSTER_HEAP_MB,
        timeout_s: float = DEFAULT_CLUSTER_START_TIMEOUT_S,
    ) -> ClusterState:
        """Start every node (formatting storage on first start) and wait until all of them answer and are
        registered; return the state. Idempotent: a running cluster is returned (its stopped nodes started
        again). Ports of a previous start are reused when free, so clients keep their bootstrap address."""
        if brokers not in CLUSTER_SIZES:
            raise BrokerError(f"--brokers takes 1 (the single broker) or {', '.join(map(str, CLUSTER_SIZES))}")
        previous = self.state()
        if previous is not None and len(previous.nodes) != brokers:
            if previous.alive():
                raise BrokerError(
                    f"a cluster of {len(previous.nodes)} brokers already runs at {previous.bootstrap}; "
                    "stop it (`harness broker stop`) before starting one of another size"
                )
            previous = None  # a stopped cluster of another size: start afresh in its folder
            self._wipe()
        java, classpath = java_command()
        st = self._plan(previous, brokers, heap_mb)
        self._save(st)
        dead = [n for n in st.nodes if not pid_alive(n.pid)]
        if not dead:
            return st
        for n in st.nodes:
            d = self.node_dir(n.node_id)
            d.write_config(broker_properties(n.address, st.layout, d.data_dir))
        unformatted = [n for n in st.nodes if not self.node_dir(n.node_id).formatted()]
        _parallel(lambda n: self._format(n, java, classpath, st), unformatted)
        procs = {n.node_id: self._launch(n, java, classpath, st) for n in dead}
        for n in dead:
            n.pid, n.started_at = procs[n.node_id].pid, time.time()
        self._save(st)
        try:
            _parallel(
                lambda n: wait_answers(
                    procs[n.node_id], f"127.0.0.1:{n.port}", timeout_s, self.node_dir(n.node_id).log_tail, "node"
                ),
                dead,
            )
            self.wait_registered(len(st.nodes), timeout_s)
        except BrokerError:
            self._stop_nodes(st, grace_s=5)
            raise
        return st

    def _plan(self, previous: ClusterState | None, brokers: int, heap_mb: int) -> ClusterState:
        """The state to start from: the previous one (its running nodes kept, stopped nodes on their old ports
        when those are free), or a new cluster on free ports."""
        if previous is None:
            ports = free_ports(2 * brokers)
            nodes = [NodeState(i + 1, 0, ports[2 * i], ports[2 * i + 1], 0.0) for i in range(brokers)]
            return ClusterState(new_cluster_id(), kafka_version(), heap_mb, time.time(), nodes)
        alive = set(previous.alive())
        taken = {p for n in previous.nodes for p in (n.port, n.controller_port)}
        for n in previous.nodes:
            if n.node_id in alive:
                continue
            if not (port_is_free(n.port) and port_is_free(n.controller_port)):
                if not alive:  # nobody else knows the old ports yet
                    n.port, n.controller_port = free_ports(2, taken)
                    taken |= {n.port, n.controller_port}
                else:
                    raise BrokerError(
                        f"node {n.node_id}'s ports ({n.port}, {n.controller_port}) are taken; the other nodes "
                        "expect it there: free them, or stop the cluster"
                    )
        if not alive:
            previous.started_at = time.time()
            previous.heap_mb = heap_mb
        previous.kafka_version = kafka_version()
        return previous

    def _format(self, n: NodeState, java: str, classpath: str, st: ClusterState) -> None:
        d = self.node_dir(n.node_id)
        d.format(d.jvm(java, st.heap_mb), classpath, st.cluster_id)

    def _launch(self, n: NodeState, java: str, classpath: str, st: ClusterState) -> subprocess.Popen[bytes]:
        d = self.node_dir(n.node_id)
        preexec = self.launch_hook(n.node_id) if self.launch_hook else None
        return d.launch(d.jvm(java, st.heap_mb), classpath, preexec)

    def wait_registered(self, brokers: int, timeout_s: float) -> None:
        """Until the cluster's metadata lists `brokers` brokers (each registered with the controller)."""
        st = self.state()
        assert st is not None
        deadline = time.monotonic() + timeout_s
        seen = 0
        while time.monotonic() < deadline:
            seen = broker_count(st.bootstrap, timeout_s=2.0)
            if seen >= brokers:
                return
            time.sleep(0.3)
        raise BrokerError(f"only {seen} of {brokers} brokers registered within {timeout_s:.0f} s")

    # ---- stop --------------------------------------------------------------------------------
    def stop(self, timeout_s: float = 30.0) -> bool:
        """Stop every node (SIGTERM at once, SIGKILL after `timeout_s`); False when none was running. The state
        stays (pids cleared): the next start reuses the cluster id and, when free, the ports."""
        st = self.state()
        if st is None:
            return False
        was_alive = bool(st.alive())
        self._stop_nodes(st, timeout_s)
        for n in st.nodes:
            n.pid = 0
        self._save(st)
        return was_alive

    def _stop_nodes(self, st: ClusterState, grace_s: float) -> None:
        _parallel(lambda n: terminate(n.pid, grace_s) if n.pid and pid_alive(n.pid) else None, st.nodes)

    def _wipe(self) -> None:
        import shutil

        for d in self.root.glob("node-*"):
            shutil.rmtree(d, ignore_errors=True)

    # ---- one node (the fault suite) --------------------------------------------------------------
    def _node(self, node_id: int) -> NodeState:
        st = self.state()
        if st is None:
            raise BrokerError("no embedded cluster: start one with `harness broker start --brokers 3`")
        return st.node(node_id)

    def node_alive(self, node_id: int) -> bool:
        return pid_alive(self._node(node_id).pid)

    def stop_node(self, node_id: int, timeout_s: float = 60.0) -> None:
        """A clean shutdown (SIGTERM): the node hands its leaderships over before it exits."""
        terminate(self._node(node_id).pid, grace_s=timeout_s)

    def kill_node(self, node_id: int) -> None:
        """A hard kill (SIGKILL): no controlled shutdown."""
        kill(self._node(node_id).pid)

    def freeze_node(self, node_id: int) -> None:
        """SIGSTOP: the node stops answering without dying (a long GC pause, a frozen VM)."""
        os.kill(self._node(node_id).pid, signal.SIGSTOP)

    def thaw_node(self, node_id: int) -> None:
        os.kill(self._node(node_id).pid, signal.SIGCONT)

    def start_node(self, node_id: int, timeout_s: float = DEFAULT_CLUSTER_START_TIMEOUT_S) -> NodeState:
        """Start a stopped node again on its ports and wait until it answers and is registered."""
        with self._lock:
            st = self.state()
            if st is None:
                raise BrokerError("no embedded cluster to start a node in")
            n = st.node(node_id)
            if pid_alive(n.pid):
                return n
            java, classpath = java_command()
            proc = self._launch(n, java, classpath, st)
            n.pid, n.started_at = proc.pid, time.time()
            self._save(st)
        wait_answers(proc, f"127.0.0.1:{n.port}", timeout_s, self.node_dir(node_id).log_tail, f"node {node_id}")
        self.wait_registered(len(st.nodes), timeout_s)
        return n

    def active_controller(self) -> int | None:
        """The KRaft quorum's leader, from the quorum-state files of the running nodes (the highest epoch
        wins): librdkafka cannot ask for it (a KRaft broker names a random broker as "controller")."""
        st = self.state()
        if st is None:
            return None
        best: tuple[int, int] | None = None
        for n in st.nodes:
            if not pid_alive(n.pid):
                continue
            f = self.node_dir(n.node_id).data_dir / "__cluster_metadata-0" / "quorum-state"
            try:
                q = json.loads(f.read_text())
            except (OSError, ValueError):
                continue
            leader, epoch = int(q.get("leaderId", -1)), int(q.get("leaderEpoch", -1))
            if leader >= 0 and (best is None or epoch > best[1]):
                best = (leader, epoch)
        return best[0] if best else None


def _parallel(fn: Callable[[NodeState], object], nodes: list[NodeState]) -> None:
    """fn(node) for every node at once (formatting and starting are JVM start-ups: seconds each); the first
    error is raised once all are done."""
    errors: list[BaseException] = []

    def run(n: NodeState) -> None:
        try:
            fn(n)
        except BaseException as e:  # handed to the caller
            errors.append(e)

    threads = [threading.Thread(target=run, args=(n,), daemon=True) for n in nodes]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
