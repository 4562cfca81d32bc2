"""Who holds what in a cluster: partition leaders and in-sync replicas, the consumer group's coordinator,
the transaction coordinator of a transactional.id, and whether every partition is fully replicated again.
Read from metadata answers (librdkafka's admin client); the fault suite picks its victims with these."""

from __future__ import annotations

import concurrent.futures
import contextlib
import time
from dataclasses import dataclass

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from harness.kafka.config import KafkaTarget
from harness.kafka.errors import KafkaSetupError
from harness.kafka.node import SilentLogger

TRANSACTION_LOG = "__transaction_state"
OFFSETS_TOPIC = "__consumer_offsets"


@dataclass(frozen=True)
class PartitionInfo:
    topic: str
    partition: int
    leader: int  # -1: no leader (offline)
    replicas: tuple[int, ...]
    isr: tuple[int, ...]

    @property
    def fully_replicated(self) -> bool:
        return self.leader >= 0 and set(self.isr) == set(self.replicas)


def _admin(target: KafkaTarget) -> AdminClient:
    return AdminClient(target.client_config(log_level=0, logger=SilentLogger()))


def partitions(target: KafkaTarget, topic: str | None = None, timeout_s: float = 10.0) -> list[PartitionInfo]:
    """Every partition of `topic` (of every topic, internal ones included, when None)."""
    md = _admin(target).list_topics(topic=topic, timeout=timeout_s)
    out = []
    for name, t in md.topics.items():
        if t.error is not None and topic is not None:
            raise KafkaSetupError(f"no metadata for topic {name}: {t.error.str()}")
        for p in t.partitions.values():
            out.append(PartitionInfo(name, p.id, p.leader, tuple(p.replicas), tuple(p.isrs)))
    return sorted(out, key=lambda p: (p.topic, p.partition))


def leader_of(target: KafkaTarget, topic: str, partition: int = 0, timeout_s: float = 30.0) -> int:
    """The node leading `topic`/`partition`, waiting while it has none (an election under way)."""
    deadline = time.monotonic() + timeout_s
    while True:
        for p in partitions(target, topic):
            if p.partition == partition and p.leader >= 0:
                return p.leader
        if time.monotonic() > deadline:
            raise KafkaSetupError(f"{topic}/{partition} has had no leader for {timeout_s:.0f} s")
        time.sleep(0.2)


def group_coordinator(target: KafkaTarget, group: str, timeout_s: float = 10.0) -> int:
    """The node coordinating consumer group `group`."""
    try:
        a = _admin(target)  # held until the answer came: a collected client never completes its futures
        d = a.describe_consumer_groups([group], request_timeout=timeout_s)[group].result(timeout_s + 5)
    except (KafkaException, concurrent.futures.TimeoutError) as e:
        raise KafkaSetupError(f"cannot describe consumer group {group}: {e or 'timed out'}") from None
    return int(d.coordinator.id)


def java_string_hash(s: str) -> int:
    """Java's String.hashCode (Kafka places a transactional.id by it), as a signed 32-bit int."""
    b = s.encode("utf-16-be")  # Java hashes UTF-16 code units
    h = 0
    for i in range(0, len(b), 2):
        h = (31 * h + int.from_bytes(b[i : i + 2], "big")) & 0xFFFFFFFF
    return h - (1 << 32) if h >= 1 << 31 else h


def transaction_coordinator(target: KafkaTarget, transactional_id: str) -> int:
    """The node coordinating `transactional_id`'s transactions: the leader of its transaction-log partition
    (Kafka's Utils.abs(hashCode) % partitions)."""
    parts = partitions(target, TRANSACTION_LOG)
    if not parts:
        raise KafkaSetupError("the cluster has no transaction log yet")
    index = (java_string_hash(transactional_id) & 0x7FFFFFFF) % len(parts)
    return next(p.leader for p in parts if p.partition == index)


def wait_fully_replicated(target: KafkaTarget, brokers: int, timeout_s: float = 180.0) -> None:
    """Until `brokers` brokers are registered and every partition of every topic has a leader and all its
    replicas in sync (after a node came back, its replicas catch up first)."""
    deadline = time.monotonic() + timeout_s
    last = "no metadata"
    while time.monotonic() < deadline:
        try:
            md = _admin(target).list_topics(timeout=5)
            behind = [p for p in partitions(target) if not p.fully_replicated]
            if len(md.brokers) >= brokers and not behind:
                return
            last = f"{len(md.brokers)}/{brokers} brokers registered, {len(behind)} partitions not fully replicated" + (
                f" (e.g. {behind[0].topic}/{behind[0].partition} isr {list(behind[0].isr)})" if behind else ""
            )
        except KafkaException as e:
            last = str(e)
        time.sleep(0.5)
    raise KafkaSetupError(f"the cluster did not recover within {timeout_s:.0f} s: {last}")


def elect_preferred_leaders(target: KafkaTarget, timeout_s: float = 30.0) -> None:
    """Hand every partition's leadership back to its preferred replica (as Kafka's auto rebalance does every
    5 minutes), so that each fault starts from the same placement."""
    from confluent_kafka import ElectionType

    a = _admin(target)
    # ELECTION_NOT_NEEDED for partitions already led by their preferred replica
    with contextlib.suppress(KafkaException):
        a.elect_leaders(ElectionType.PREFERRED, None).result(timeout_s)  # (its request_timeout kwarg crashes 2.16)
