"""The native relay: what the Kafka client itself can move on this machine and broker, the physical limit
every loop figure is read against (results.json's ceilings: relay_per_s, relay_cpu_us_per_record).

    python -m harness.bench.relay [--records N] [--bootstrap HOST:PORT] [--client-config FILE] [--json]

A backlog of N records (the scenario's payloads with the load generator's headers) is written to a fresh
topic, then drained by harness_native.relay: consume a micro-batch, produce each record's bytes and headers
unchanged, store the offsets behind the acknowledgements (auto-commit), at-least-once like the loop, with
the loop's consumer and producer settings — no decode, no model, no Python per record. Figures:

    records/s   from the output records' own timestamps (first to last), as the loop's drain is measured
    CPU µs      per record, the process's own (every thread; it excludes steal), from the first partition
                assignment to the last acknowledgement and commit

`--topic T` drains an existing backlog instead (what `harness run` does in a child process, with --json).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from harness.kafka.config import KafkaTarget

RECORDS = 200_000
CEILING_RECORDS = 100_000  # a run's ceiling: ~0.2-1 s of draining on this machine, ms timestamps


@dataclass
class Drain:
    """One drain of a backlog: records, their rate from the output timestamps, and the CPU it took."""

    who: str
    records: int
    rate_per_s: float
    cpu_s: float
    error: str | None = None

    @property
    def cpu_us_per_record(self) -> float:
        return self.cpu_s / self.records * 1e6 if self.records else float("nan")


def write_backlog(target: KafkaTarget, topic: str, payloads: list[bytes], records: int, partitions: int = 2) -> None:
    """`records` records (payloads cycled, the load generator's headers) on a fresh topic, acknowledged."""
    from harness.bench.loadgen import send
    from harness.kafka.topics import ensure_topics

    ensure_topics(target, {topic: partitions})
    rep = send(target.client_config(), topic, payloads, np.zeros(records), "r", time.time_ns(), 1e9)
    if rep.sent != records or rep.delivery_errors:
        raise RuntimeError(f"backlog: {rep.sent} of {records} sent, {rep.delivery_errors} delivery errors")


def output_rate(target: KafkaTarget, topic: str, timeout_s: float = 30.0) -> tuple[int, float]:
    """(records, records/s) of a topic from its records' timestamps: the first record of each partition to
    the last of each (millisecond timestamps: drain at least a few hundred ms for a precise rate)."""
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer(target.client_config(**{"group.id": f"rate-{uuid.uuid4().hex[:8]}", "enable.auto.commit": False}))
    try:
        md = c.list_topics(topic, timeout=10).topics[topic]
        n, first, last = 0, None, None
        for p in md.partitions:
            low, high = c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            if high <= low:
                continue
            n += high - low
            for off in {low, high - 1}:
                ts = _timestamp_at(c, topic, p, off, timeout_s)
                first = ts if first is None else min(first, ts)
                last = ts if last is None else max(last, ts)
        if not n or first is None or last is None or last <= first:
            return n, float("nan")
        return n, (n - 1) / ((last - first) / 1000.0)
    finally:
        c.close()


def _timestamp_at(c: Any, topic: str, partition: int, offset: int, timeout_s: float) -> int:
    from confluent_kafka import TopicPartition

    c.assign([TopicPartition(topic, partition, offset)])
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        m = c.poll(1.0)
        if m is not None and m.error() is None:
            return int(m.timestamp()[1])
    raise RuntimeError(f"could not read {topic}/{partition}/{offset} within {timeout_s:.0f} s")


def relay_drain(
    target: KafkaTarget, topic: str, records: int, batch_max: int = 64, batch_wait_ms: float = 5.0
) -> Drain:
    """Drain `records` of `topic` with the native relay in this process, to a fresh output topic."""
    import harness_native

    from harness.kafka.topics import delete_topics, ensure_topics
    from harness.scoring.loop import consumer_config
    from harness.scoring.output import producer_config
    from harness.scoring.settings import LoopConfig

    out = f"{topic}.relay-{uuid.uuid4().hex[:6]}"
    ensure_topics(target, {out: 2})
    group = f"relay-{uuid.uuid4().hex[:8]}"
    cfg = LoopConfig(input_topic=topic, output_topic=out, group=group, batch_max=batch_max, batch_wait_ms=batch_wait_ms)
    try:
        st = harness_native.relay(
            target.client_config(**consumer_config(cfg, "relay")),
            target.client_config(**producer_config("relay")),
            topic,
            out,
            records,
            batch_max=batch_max,
            batch_wait_s=batch_wait_ms / 1000.0,
        )
        n, rate = output_rate(target, out)
    finally:
        delete_topics(target, [out])
    return Drain("relay", int(st["consumed"]), rate, float(st["cpu_s"]), st["error"] or _short(n, records))


def _short(got: int, want: int) -> str | None:
    return None if got >= want else f"{got} of {want} records reached the output"


def relay_ceiling(target: KafkaTarget, payloads: list[bytes], tag: str, records: int = CEILING_RECORDS) -> Drain:
    """The relay's figures for a run's ceilings: a backlog of this run's payloads, drained by the relay in a
    child process (so nothing else of this process is charged to it)."""
    import subprocess

    from harness.bench.scorers import SecretFile
    from harness.kafka.topics import delete_topics

    topic = f"h.{tag}.ceiling-relay"
    secret = SecretFile(target.properties)
    try:
        write_backlog(target, topic, payloads, records)
        argv = [sys.executable, "-m", "harness.bench.relay", "--bootstrap", target.bootstrap, "--topic", topic]
        argv += ["--records", str(records), "--json"]
        if secret.path is not None:
            argv += ["--client-config", str(secret.path)]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
        line = (done.stdout.strip().splitlines() or [""])[-1]
        if done.returncode != 0 or not line.startswith("{"):
            tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
            return Drain("relay", 0, float("nan"), float("nan"), f"the relay failed: {tail}")
        d = json.loads(line)
        return Drain("relay", d["records"], d["rate_per_s"], d["cpu_s"], d.get("error"))
    finally:
        secret.remove()
        delete_topics(target, [topic])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m harness.bench.relay", description=__doc__.split("\n\n")[0])
    ap.add_argument("--records", type=int, default=RECORDS)
    ap.add_argument("--bootstrap", default=None, help="Kafka bootstrap (default: the embedded broker)")
    ap.add_argument("--client-config", type=Path, default=None, help="librdkafka properties file")
    ap.add_argument("--topic", default=None, help="drain this existing backlog instead of writing one")
    ap.add_argument("--batch-max", type=int, default=64)
    ap.add_argument("--json", action="store_true", help="one JSON line (records, rate_per_s, cpu_s, error)")
    a = ap.parse_args(argv)

    from harness.errors import HarnessError
    from harness.kafka.config import resolve_kafka
    from harness.kafka.topics import delete_topics

    try:
        target = resolve_kafka(a.bootstrap, a.client_config)
    except HarnessError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    topic = a.topic
    if topic is None:
        topic = f"h.relay.{uuid.uuid4().hex[:6]}"
        write_backlog(target, topic, _fraud_payloads(), a.records)
    try:
        d = relay_drain(target, topic, a.records, a.batch_max)
    finally:
        if a.topic is None:
            delete_topics(target, [topic])
    if a.json:
        print(json.dumps({**asdict(d), "cpu_us_per_record": d.cpu_us_per_record}))
    else:
        print(
            f"native relay: {d.records:,} records, {d.rate_per_s:,.0f} records/s (output timestamps), "
            f"{d.cpu_us_per_record:.2f} µs CPU per record (librdkafka {_librdkafka()})"
            + (f"; error: {d.error}" if d.error else "")
        )
    return 1 if d.error else 0


def _librdkafka() -> str:
    import harness_native

    return harness_native.LIBRDKAFKA_VERSION


def _fraud_payloads() -> list[bytes]:
    """The fraud scenario's reference rows as JSON (the bundle built, or reused from artifacts/)."""
    from adapters.bundle import Bundle
    from harness.bench.loopcost import fraud_bundle
    from harness.scoring import wire

    b = Bundle.open(fraud_bundle())
    X, _, _ = b.reference()
    codec = wire.FeatureCodec.for_bundle(b, "json")
    return [codec.encode(r) for r in X]


if __name__ == "__main__":
    raise SystemExit(main())
