"""The accounting invariant as a property (hypothesis), on the real broker: for any mix of good rows, rows the
engine scores NaN or inf, rows it raises on, rows it fails on only in company, and undecodable records — sent in
any grouping, with or without a record id — every record ends in exactly one output of the right kind (a result
with its own score, or a dead letter at the right stage), and its offset is committed behind it.

One ScoringLoop per guarantee runs in a thread for all the examples (starting a process per example would
cost seconds); each example's records carry keys of their own.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, ConsumerGroupTopicPartitions, Producer, TopicPartition
from confluent_kafka.admin import AdminClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.bundle import Bundle
from harness.faults import chaos
from harness.kafka.config import KafkaTarget
from harness.scoring import wire
from harness.scoring.loop import ScoringLoop
from harness.scoring.settings import LoopConfig
from tests.conftest import create_topic

# kind -> (first feature or raw value, expected outcome: "result" or the dead letter's stage)
KINDS: dict[str, tuple[float | bytes | None, str]] = {
    "good": (0.0, "result"),
    "fragile": (chaos.FRAGILE, "result"),  # fails its batch, scores alone
    "nan": (chaos.NAN, "score"),
    "inf": (chaos.INF, "score"),
    "raise": (chaos.RAISE, "score"),
    "not-json": (b"{oops", "decode"),
    "unknown-feature": (b'{"no_such_feature": 1}', "decode"),
    "no-value": (None, "decode"),
}

record_st = st.tuples(
    st.sampled_from(sorted(KINDS)),
    st.floats(-3, 3, allow_nan=False),  # the second feature: the good rows' score follows from it
    st.booleans(),  # with a rid header?
)
example_st = st.tuples(st.lists(record_st, min_size=1, max_size=40), st.integers(1, 12))  # records, flush every k


@dataclass
class Harness:
    """A running loop on its own topics, a producer, and readers of its outputs and committed offsets."""

    topic: str
    group: str
    feature_names: list[str]
    producer: Producer
    reader: Consumer
    admin: AdminClient
    outputs: dict[bytes, list[tuple[str, bytes | None, dict[str, bytes]]]] = field(default_factory=dict)

    def read(self, timeout_s: float = 0.1) -> None:
        for m in self.reader.consume(1000, timeout=timeout_s):
            if m.error() is None:
                where = "dlq" if m.topic().endswith(".dlq") else "out"
                self.outputs.setdefault(m.key(), []).append((where, m.value(), wire.headers_dict(m.headers())))

    def committed_gap(self) -> int:
        """End offsets minus the group's committed offsets, over the input's partitions."""
        tps = [TopicPartition(self.topic, p) for p in range(2)]
        req = ConsumerGroupTopicPartitions(self.group, tps)
        res = self.admin.list_consumer_group_offsets([req])[self.group].result(timeout=10)
        committed = sum(max(0, tp.offset) for tp in res.topic_partitions)
        ends = sum(self.reader.get_watermark_offsets(tp, timeout=10)[1] for tp in tps)
        return ends - committed


def _start(broker: str, bundle: Path, guarantee: str) -> Iterator[Harness]:
    topic = f"prop-{guarantee}-{uuid.uuid4().hex[:6]}"
    for t in (topic, f"{topic}.out", f"{topic}.dlq"):
        create_topic(broker, t, partitions=2)
    b = Bundle.open(bundle)
    group = f"g-{topic}"
    cfg = LoopConfig(
        input_topic=topic, output_topic=f"{topic}.out", group=group, batch_max=8, batch_wait_ms=5, guarantee=guarantee
    )
    adapter = chaos.ChaosAdapter.load(b)
    loop = ScoringLoop(KafkaTarget(broker), adapter, b.feature_names, cfg, log=lambda m: None)
    thread = threading.Thread(target=loop.run, daemon=True)
    thread.start()
    reader = Consumer({"bootstrap.servers": broker, "group.id": f"r-{topic}", "isolation.level": "read_committed"})
    reader.assign([TopicPartition(t, p, OFFSET_BEGINNING) for t in (f"{topic}.out", f"{topic}.dlq") for p in range(2)])
    h = Harness(
        topic, group, b.feature_names, Producer({"bootstrap.servers": broker, "linger.ms": 2}), reader,
        AdminClient({"bootstrap.servers": broker}),
    )  # fmt: skip
    try:
        yield h
    finally:
        loop.stop()
        thread.join(30)
        reader.close()


@pytest.fixture(scope="module")
def at_least_once(broker: str, small_bundle: Path) -> Iterator[Harness]:
    yield from _start(broker, small_bundle, "at-least-once")


@pytest.fixture(scope="module")
def exactly_once(broker: str, small_bundle: Path) -> Iterator[Harness]:
    yield from _start(broker, small_bundle, "exactly-once")


def _value(h: Harness, kind: str, x: float) -> bytes | None:
    marker = KINDS[kind][0]
    if isinstance(marker, float):
        return orjson.dumps({h.feature_names[0]: marker, h.feature_names[1]: x})
    return marker


def check_example(h: Harness, records: list[tuple[str, float, bool]], flush_every: int) -> None:
    tag = uuid.uuid4().hex[:8]
    keys = []
    for i, (kind, x, with_rid) in enumerate(records):
        key = f"{tag}-{i}".encode()
        keys.append(key)
        headers = [("rid", key)] if with_rid else None
        h.producer.produce(h.topic, key=key, value=_value(h, kind, x), headers=headers)
        if (i + 1) % flush_every == 0:
            h.producer.flush(10)
    h.producer.flush(10)
    deadline = time.monotonic() + 30
    while not all(k in h.outputs for k in keys) and time.monotonic() < deadline:
        h.read()
    h.read(0.3)  # a duplicate would arrive right behind
    for key, (kind, x, with_rid) in zip(keys, records, strict=True):
        outs = h.outputs.get(key, [])
        assert len(outs) == 1, f"{kind} record {key!r} has {len(outs)} outputs (exactly one expected)"
        where, value, headers = outs[0]
        expected = KINDS[kind][1]
        if expected == "result":
            assert where == "out", (kind, headers)
            assert orjson.loads(value or b"")["score"] == chaos.expected_score(x)
            assert ("rid" in headers) == with_rid and headers["src"].startswith(h.topic.encode())
        else:
            assert where == "dlq" and headers["dlq_stage"].decode() == expected, (kind, headers)
            assert value == _value(h, kind, x)
    deadline = time.monotonic() + 15
    while h.committed_gap() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert h.committed_gap() == 0, "records with an output are not all committed"


PROPERTY = settings(
    max_examples=12, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow], print_blob=True
)


@PROPERTY
@given(example=example_st)
def test_at_least_once_accounts_for_every_record(at_least_once: Harness, example: tuple[list, int]) -> None:  # type: ignore[type-arg]
    check_example(at_least_once, *example)


@PROPERTY
@given(example=example_st)
def test_exactly_once_accounts_for_every_record(exactly_once: Harness, example: tuple[list, int]) -> None:  # type: ignore[type-arg]
    check_example(exactly_once, *example)
