"""The server.properties of an embedded Kafka node: one function builds them for any node of any size of
embedded cluster (a single broker, or three combined broker+controller nodes).

The properties come in sections, each a small function of the node and the cluster's layout: identity and
listeners, replication (what makes acknowledged records survive a node), and resource limits for a shared
machine. A new concern (issue 28: SASL/SCRAM, TLS and ACLs) is one more section here, plus the listener
protocol map it changes; nothing else writes broker configuration.

Replication on a cluster of three or more: replication factor 3 and min.insync.replicas=2 for every topic
created without an explicit factor (the harness creates its topics with the cluster's default), for the
consumer offsets and for the transaction log; unclean leader election off. With producers using acks=all
and idempotence, an acknowledged record is on at least two replicas, and only an in-sync replica can lead.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

HOST = "127.0.0.1"
CLIENT_LISTENER = "PLAINTEXT"
CONTROLLER_LISTENER = "CONTROLLER"


@dataclass(frozen=True)
class NodeAddress:
    """Where one node listens: clients and brokers on `port`, the KRaft quorum on `controller_port`."""

    node_id: int
    port: int
    controller_port: int


@dataclass(frozen=True)
class Layout:
    """The embedded cluster: every node is a broker and a KRaft voter (combined mode)."""

    nodes: tuple[NodeAddress, ...]

    @property
    def size(self) -> int:
        return len(self.nodes)

    @property
    def replication_factor(self) -> int:
        return 3 if self.size >= 3 else 1

    @property
    def min_insync_replicas(self) -> int:
        return 2 if self.replication_factor >= 3 else 1

    @property
    def voters(self) -> str:
        return ",".join(f"{n.node_id}@{HOST}:{n.controller_port}" for n in self.nodes)

    @property
    def bootstrap(self) -> str:
        return ",".join(f"{HOST}:{n.port}" for n in self.nodes)


def broker_properties(node: NodeAddress, layout: Layout, data_dir: Path) -> dict[str, str]:
    """Every property of `node` in `layout`, storing its logs in `data_dir`."""
    return {
        **_identity_and_listeners(node, layout, data_dir),
        **_replication(layout),
        **_resources(layout),
    }


def render(props: dict[str, str], header: str = "written by `harness broker start`") -> str:
    return f"# {header}\n" + "".join(f"{k}={v}\n" for k, v in props.items())


def _identity_and_listeners(node: NodeAddress, layout: Layout, data_dir: Path) -> dict[str, str]:
    return {
        "process.roles": "broker,controller",
        "node.id": str(node.node_id),
        "controller.quorum.voters": layout.voters,
        "listeners": f"{CLIENT_LISTENER}://{HOST}:{node.port},{CONTROLLER_LISTENER}://{HOST}:{node.controller_port}",
        "advertised.listeners": f"{CLIENT_LISTENER}://{HOST}:{node.port}",
        "controller.listener.names": CONTROLLER_LISTENER,
        "listener.security.protocol.map": f"{CLIENT_LISTENER}:PLAINTEXT,{CONTROLLER_LISTENER}:PLAINTEXT",
        "inter.broker.listener.name": CLIENT_LISTENER,
        "log.dirs": str(data_dir),
    }


def _replication(layout: Layout) -> dict[str, str]:
    rf, isr = str(layout.replication_factor), str(layout.min_insync_replicas)
    return {
        "num.partitions": "1",
        "default.replication.factor": rf,
        "min.insync.replicas": isr,
        "unclean.leader.election.enable": "false",
        "offsets.topic.replication.factor": rf,
        "offsets.topic.num.partitions": "4",
        "transaction.state.log.replication.factor": rf,
        "transaction.state.log.min.isr": isr,
        "transaction.state.log.num.partitions": "4",
        "share.coordinator.state.topic.replication.factor": rf,
        "share.coordinator.state.topic.min.isr": isr,
        "group.initial.rebalance.delay.ms": "0",
        "auto.create.topics.enable": "false",
    }


def _resources(layout: Layout) -> dict[str, str]:
    """The single broker as it always was; a cluster's nodes small: three share two cores (and the memory of a
    machine shared with others) with the load generator and the scorers."""
    props = {
        "num.network.threads": "2",
        "num.io.threads": "4",
        "log.retention.hours": "24",
        "log.segment.bytes": str(64 * 1024 * 1024),
    }
    if layout.size > 1:
        props |= {
            "num.io.threads": "2",
            "background.threads": "4",
            # the log cleaner (compacted topics: consumer offsets, transaction log, model versions) allocates
            # its dedupe buffer up front, 128 MiB by default: half of a node's heap; 16 MiB index ~500k keys
            "log.cleaner.dedupe.buffer.size": str(16 * 1024 * 1024),
        }
    return props


def layout_of(addresses: Sequence[NodeAddress]) -> Layout:
    return Layout(tuple(sorted(addresses, key=lambda n: n.node_id)))
