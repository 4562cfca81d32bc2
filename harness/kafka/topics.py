"""Topic and consumer-group housekeeping for the loop and the runs: create if missing, delete, partition
counts, wait for a group to settle."""

from __future__ import annotations

import contextlib
import time
from typing import Any

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from harness.kafka.config import KafkaTarget
from harness.kafka.errors import KafkaSetupError


def admin(target: KafkaTarget) -> AdminClient:
    return AdminClient(target.client_config())


def partitions_of(target: KafkaTarget, topic: str, timeout_s: float = 10.0) -> int | None:
    md = admin(target).list_topics(topic=topic, timeout=timeout_s)
    t = md.topics.get(topic)
    if t is None or t.error is not None:
        return None
    return len(t.partitions)


def ensure_topics(
    target: KafkaTarget,
    topics: dict[str, int],
    replication: int = 1,
    timeout_s: float = 30.0,
    config: dict[str, str] | None = None,
) -> None:
    """Create each missing topic with the given partition count (and topic `config`, e.g. compaction);
    existing topics are left as they are."""
    a = admin(target)
    existing = set(a.list_topics(timeout=timeout_s).topics)
    new = [
        NewTopic(t, num_partitions=p, replication_factor=replication, config=dict(config or {}))
        for t, p in topics.items()
        if t not in existing
    ]
    if not new:
        return
    for name, fut in a.create_topics(new, operation_timeout=timeout_s).items():
        try:
            fut.result(timeout=timeout_s)
        except KafkaException as e:
            if "TOPIC_ALREADY_EXISTS" not in str(e):
                raise KafkaSetupError(f"cannot create topic {name}: {e.args[0].str() if e.args else e}") from None


def partitions_when_listed(client: Any, topics: list[str], timeout_s: float = 15.0) -> dict[str, list[int]]:
    """Each topic's partitions as `client`'s metadata lists them, waiting until every topic is listed: a topic
    created a moment ago by another client may not be in this one's first metadata answer (seen when several
    sessions create their topics at once)."""
    deadline = time.monotonic() + timeout_s
    while True:
        md = client.list_topics(timeout=max(1.0, deadline - time.monotonic()))
        found = {t: sorted(md.topics[t].partitions) for t in topics if t in md.topics and md.topics[t].partitions}
        if len(found) == len(topics):
            return found
        if time.monotonic() > deadline:
            missing = ", ".join(t for t in topics if t not in found)
            raise KafkaSetupError(f"topic(s) {missing} not listed by the broker within {timeout_s:.0f} s")
        time.sleep(0.1)


def delete_topics(target: KafkaTarget, topics: list[str], timeout_s: float = 30.0) -> None:
    a = admin(target)
    existing = set(a.list_topics(timeout=timeout_s).topics)
    todo = [t for t in topics if t in existing]
    if not todo:
        return
    for _, fut in a.delete_topics(todo, operation_timeout=timeout_s).items():
        with contextlib.suppress(KafkaException):
            fut.result(timeout=timeout_s)


def wait_group_stable(target: KafkaTarget, group: str, members: int, timeout_s: float) -> None:
    """Until the consumer group is Stable with `members` members that all hold partitions."""
    from confluent_kafka import ConsumerGroupState

    a = admin(target)
    deadline = time.monotonic() + timeout_s
    last = "unknown"
    while time.monotonic() < deadline:
        try:
            d = a.describe_consumer_groups([group])[group].result(timeout=5)
            assigned = [m for m in d.members if m.assignment and m.assignment.topic_partitions]
            last = f"{d.state}, {len(assigned)}/{members} members with partitions"
            if d.state == ConsumerGroupState.STABLE and len(assigned) >= members:
                return
        except KafkaException as e:  # the group may not exist yet
            last = str(e)
        time.sleep(0.2)
    raise KafkaSetupError(f"consumer group {group} did not settle within {timeout_s:.0f} s ({last})")
