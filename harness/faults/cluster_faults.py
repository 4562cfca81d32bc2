"""The faults of the replication matrix: which node of the embedded cluster, and what is done to it.

After Apache Kafka's own tests/kafkatest/tests/core/replication_test.py (three brokers, replication factor 3,
min.insync.replicas 2): the leader of a partition shut down cleanly (SIGTERM: a controlled shutdown hands
its leaderships over first) or hard (SIGKILL), or bounced five times in a row chasing the partition's
current leader, cleanly or hard (after a hard kill the node is started again once the partition has a new
leader, as Kafka's test waits for the controller to notice). Beyond it: the active KRaft controller killed;
a node frozen with SIGSTOP for longer than the consumer session (10 s), the broker session (9 s) and the
request timeout (30 s), then resumed; a node cut off from the other nodes while clients still reach it
(network.py); the consumer group's coordinator killed.

Victims are picked when the fault strikes, from live metadata: the leader of partition 0 of the input or
output topic, the active controller, the group's coordinator. Every action is logged with its wall-clock
time, for the latency timeline.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from harness.faults.network import Isolation
from harness.faults.processes import FaultError
from harness.kafka.cluster import Cluster
from harness.kafka.config import KafkaTarget
from harness.kafka.errors import KafkaSetupError
from harness.kafka.placement import (
    elect_preferred_leaders,
    group_coordinator,
    leader_of,
    partitions,
    wait_fully_replicated,
)

BOUNCES = 5  # as Kafka's replication test chases the leader
FREEZE_S = 35.0  # > consumer session.timeout.ms 10 s, broker.session.timeout.ms 9 s, request.timeout.ms 30 s
ISOLATE_S = 30.0


@dataclass
class Stage:
    """What a fault acts on: the cluster, the topics whose leaders it chases, the consumer group."""

    cluster: Cluster
    target: KafkaTarget
    input_topic: str
    output_topic: str
    group: str
    isolation: Isolation | None
    log: Callable[[str], None]


@dataclass
class FaultRecord:
    """What a fault did, and when (wall clock)."""

    kind: str
    actions: list[tuple[float, str]] = field(default_factory=list)

    def act(self, st: Stage, what: str) -> None:
        self.actions.append((time.time(), what))
        st.log(f"  {what}")

    @property
    def first(self) -> float:
        return self.actions[0][0] if self.actions else time.time()

    @property
    def last(self) -> float:
        return self.actions[-1][0] if self.actions else time.time()

    def summary(self) -> str:
        return "; ".join(what for _, what in self.actions)


# ---- victims ---------------------------------------------------------------------------------------------
Victim = Callable[[Stage], int]


def input_leader(st: Stage) -> int:
    return leader_of(st.target, st.input_topic, 0)


def output_leader(st: Stage) -> int:
    return leader_of(st.target, st.output_topic, 0)


def active_controller(st: Stage) -> int:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        node = st.cluster.active_controller()
        if node is not None:
            return node
        time.sleep(0.5)
    raise FaultError("the cluster has had no active controller for 30 s")


def coordinator(st: Stage) -> int:
    return group_coordinator(st.target, st.group)


def roles(st: Stage, node: int) -> str:
    """What else `node` is (so a row says when a fault hit several roles at once)."""
    out = []
    with contextlib.suppress(KafkaSetupError, FaultError):
        if input_leader(st) == node:
            out.append("input leader")
        if output_leader(st) == node:
            out.append("output leader")
        if st.cluster.active_controller() == node:
            out.append("active controller")
        if coordinator(st) == node:
            out.append("group coordinator")
    return f"node {node}" + (f" ({', '.join(out)})" if out else "")


# ---- actions ---------------------------------------------------------------------------------------------
Action = Callable[[Stage, FaultRecord], None]


def shutdown(victim: Victim, clean: bool) -> Action:
    """The victim stops (cleanly or hard) and stays down until the cluster is restored."""

    def run(st: Stage, rec: FaultRecord) -> None:
        node = victim(st)
        who = roles(st, node)
        if clean:
            st.cluster.stop_node(node)
            rec.act(st, f"clean shutdown of {who}")
        else:
            st.cluster.kill_node(node)
            rec.act(st, f"hard kill of {who}")

    return run


def bounce(victim: Victim, clean: bool, topic: Callable[[Stage], str], times: int = BOUNCES) -> Action:
    """Restart the victim `times` times, picking it again each time (the partition's leader moves)."""

    def run(st: Stage, rec: FaultRecord) -> None:
        for i in range(times):
            node = victim(st)
            who = roles(st, node)
            if clean:
                st.cluster.stop_node(node)
                rec.act(st, f"bounce {i + 1}: clean shutdown of {who}")
            else:
                st.cluster.kill_node(node)
                rec.act(st, f"bounce {i + 1}: hard kill of {who}")
                _wait_leader_moves(st, topic(st), node)
            st.cluster.start_node(node)
            rec.act(st, f"bounce {i + 1}: node {node} back")

    return run


def _wait_leader_moves(st: Stage, topic: str, node: int, timeout_s: float = 45.0) -> None:
    """Until `topic`/0 is led by a node other than `node` (the controller noticed the loss), or timeout_s."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(KafkaSetupError):
            if leader_of(st.target, topic, 0, timeout_s=5) != node:
                return
        time.sleep(0.2)


def freeze(victim: Victim, seconds: float = FREEZE_S) -> Action:
    def run(st: Stage, rec: FaultRecord) -> None:
        node = victim(st)
        who = roles(st, node)
        st.cluster.freeze_node(node)
        rec.act(st, f"SIGSTOP of {who}")
        try:
            time.sleep(seconds)
        finally:
            st.cluster.thaw_node(node)
            rec.act(st, f"SIGCONT of node {node} after {seconds:.0f} s")

    return run


def isolate(victim: Victim, seconds: float = ISOLATE_S) -> Action:
    def run(st: Stage, rec: FaultRecord) -> None:
        if st.isolation is None:
            raise FaultError("isolation is not available here")
        node = victim(st)
        who = roles(st, node)
        state = st.cluster.state()
        assert state is not None
        st.isolation.isolate(node, state.layout.nodes)
        rec.act(st, f"{who} cut off from the other nodes (clients still reach it)")
        try:
            time.sleep(seconds)
        finally:
            st.isolation.heal()
            rec.act(st, f"node {node} reconnected after {seconds:.0f} s")

    return run


@dataclass(frozen=True)
class Fault:
    title: str
    action: Action
    needs_isolation: bool = False


FAULTS: dict[str, Fault] = {
    "input-leader-clean-shutdown": Fault("input leader: clean shutdown", shutdown(input_leader, True)),
    "input-leader-hard-kill": Fault("input leader: hard kill", shutdown(input_leader, False)),
    "input-leader-clean-bounce": Fault(
        "input leader: clean bounce ×5", bounce(input_leader, True, lambda st: st.input_topic)
    ),
    "input-leader-hard-bounce": Fault(
        "input leader: hard bounce ×5", bounce(input_leader, False, lambda st: st.input_topic)
    ),
    "output-leader-clean-shutdown": Fault("output leader: clean shutdown", shutdown(output_leader, True)),
    "output-leader-hard-kill": Fault("output leader: hard kill", shutdown(output_leader, False)),
    "output-leader-clean-bounce": Fault(
        "output leader: clean bounce ×5", bounce(output_leader, True, lambda st: st.output_topic)
    ),
    "output-leader-hard-bounce": Fault(
        "output leader: hard bounce ×5", bounce(output_leader, False, lambda st: st.output_topic)
    ),
    "controller-hard-kill": Fault("active controller: hard kill", shutdown(active_controller, False)),
    "freeze": Fault(f"input leader frozen {FREEZE_S:.0f} s (SIGSTOP)", freeze(input_leader)),
    "isolate": Fault(f"input leader isolated {ISOLATE_S:.0f} s", isolate(input_leader), needs_isolation=True),
    "coordinator-hard-kill": Fault("group coordinator: hard kill", shutdown(coordinator, False)),
}


def restore(st: Stage, timeout_s: float = 240.0) -> None:
    """Back to a whole cluster: heal the network, resume frozen nodes, start stopped ones, wait until every
    partition is fully replicated, hand leaderships back to the preferred replicas."""
    state = st.cluster.state()
    if state is None:
        raise FaultError("the cluster's state is gone")
    if st.isolation is not None:
        st.isolation.heal()
    for n in state.nodes:
        if st.cluster.node_alive(n.node_id):
            with contextlib.suppress(ProcessLookupError):
                st.cluster.thaw_node(n.node_id)
    for n in state.nodes:
        if not st.cluster.node_alive(n.node_id):
            st.cluster.start_node(n.node_id)
    wait_fully_replicated(st.target, len(state.nodes), timeout_s)
    elect_preferred_leaders(st.target)
    _wait_preferred(st)


def _wait_preferred(st: Stage, timeout_s: float = 20.0) -> None:
    """Until every partition of the stage's topics is led by its preferred (first) replica."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        ps = [p for t in (st.input_topic, st.output_topic) for p in partitions(st.target, t)]
        if all(p.replicas and p.leader == p.replicas[0] for p in ps):
            return
        time.sleep(0.5)
