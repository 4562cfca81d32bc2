"""The measurement is right: a scorer that stalls for a known time on known records shows that stall in the
open-loop percentiles, within a tight bound; a closed-loop measurement of the same scorer hides it.

Set-up: one partition, per-record scoring (batch 1), 100 records/s for 8 s; one record in 100 (once a
second) makes the scorer sleep 250 ms. Every record that arrives during the stall waits behind it: about
25 records a second, waiting 250, 240, ..., 0 ms. Measured from the intended send time, 1% of records
(one a second) wait ~240-250 ms, so p99 must sit near 240 ms and the maximum near 250 ms, plus the
base latency and the catch-up time of a busy 2-core machine (bounded below at +150 ms).

A closed-loop client (send one, wait for its result, send the next) against the same scorer, stalling
once a second as well, sends nothing while the scorer is stalled, so each stall is one slow sample among
tens to hundreds of fast ones: its p95 stays near the scorer's base latency (its p99 too on a quiet machine),
although the scorer is exactly as slow. That is coordinated omission (wrk2, MLPerf LoadGen).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from confluent_kafka import OFFSET_END, Consumer, Producer, TopicPartition

from adapters.bundle import Bundle
from harness.bench.loadgen import send
from harness.bench.measure import Measurer, PointSpec
from harness.kafka.config import KafkaTarget
from harness.scoring import wire
from tests.conftest import create_topic, start_loop
from tests.stall_adapter import STALL_MARKER

RATE = 100.0
DURATION_S = 8.0
STALL_MS = 250.0
STALL_EVERY = 100


def _payloads(bundle: Path) -> list[bytes]:
    b = Bundle.open(bundle)
    X, _, _ = b.reference()
    codec = wire.FeatureCodec(b.feature_names, "json")
    rows = X[:STALL_EVERY].copy()
    rows[0, 0] = STALL_MARKER
    return [codec.encode(r) for r in rows]


def _closed_loop(broker: str, topic: str, payloads: list[bytes], duration_s: float) -> np.ndarray:
    """Send one record, wait for its result, repeat: latencies in ms (from the actual send). As in the
    open-loop run, the scorer stalls once a second: the first record sent in each second is a stall record."""
    out = Consumer(
        {"bootstrap.servers": broker, "group.id": "closed", "enable.auto.commit": False, "fetch.wait.max.ms": 1}
    )
    out.assign([TopicPartition(f"{topic}.out", 0, OFFSET_END)])
    prod = Producer({"bootstrap.servers": broker, "linger.ms": 0})
    out.poll(0.5)  # make the assignment live before the first request
    lat = []
    seq = 0
    start = time.monotonic()
    stalled_second = -1
    while (elapsed := time.monotonic() - start) < duration_s:
        rid = f"closed-{seq}".encode()
        if int(elapsed) != stalled_second:
            stalled_second, payload = int(elapsed), payloads[0]  # the stall record
        else:
            payload = payloads[1 + seq % (len(payloads) - 1)]
        t0 = time.time_ns()
        prod.produce(topic, value=payload, headers=[("rid", rid), ("t_intended_ns", str(t0).encode())])
        prod.flush(5)
        while True:
            m = out.poll(5)
            assert m is not None, "closed-loop request got no result"
            if m.error() is None and wire.headers_dict(m.headers()).get("rid") == rid:
                break
        lat.append((time.time_ns() - t0) / 1e6)
        seq += 1
    out.close()
    return np.asarray(lat)


def test_open_loop_shows_the_stall_and_closed_loop_hides_it(broker: str, small_bundle: Path, topic_name: str) -> None:
    create_topic(broker, topic_name, partitions=1)
    proc = start_loop(
        broker, small_bundle, "tests.stall_adapter:StallAdapter", topic_name, f"g-{topic_name}",
        "--batch-max", "1", "--batch-wait-ms", "0", "--option", f"stall_ms={STALL_MS}",
    )  # fmt: skip
    try:
        payloads = _payloads(small_bundle)
        target = KafkaTarget(broker)
        m = Measurer(
            target, f"{topic_name}.out", f"{topic_name}.dlq", "json", np.full(STALL_EVERY, 0.25), np.zeros(STALL_EVERY)
        )
        m.start()
        offsets = np.arange(int(RATE * DURATION_S)) / RATE
        t0 = time.time_ns() + 300_000_000
        m.add_point(PointSpec("open", t0, 0.0, DURATION_S, len(offsets)))
        rep = send(target.client_config(), topic_name, payloads, offsets, "open", t0, 10)
        m.wait_drained("open", rep.sent, 10)
        s = m.summary("open", 1e-9, 1.0, 3, 50)
        m.close()
        assert s.counts.scored == rep.sent and s.counts.lost == 0
        lat = s.latency_ms
        assert lat.p99 is not None and lat.max is not None and lat.p50 is not None
        # 1% of records wait ~240-250 ms behind a stall: p99 near 240, max near 250 (+ base latency)
        assert STALL_MS - 50 <= lat.p99 <= STALL_MS + 150, lat
        assert STALL_MS - 10 <= lat.max <= STALL_MS + 200, lat
        assert lat.p50 < 60, lat  # most records never meet a stall
        # the scoring time of the stalled records themselves is the stall
        assert s.scoring_ms is not None and s.scoring_ms.p99 is not None
        assert s.scoring_ms.p99 < STALL_MS  # the stalled records themselves are fewer than 1%

        closed = _closed_loop(broker, topic_name, payloads, DURATION_S)
        assert closed.max() >= STALL_MS - 10  # the closed-loop client did meet the stall...
        # ...but counts each stall once, so its p95 stays far below what an open-loop user of the same scorer
        # sees (~200 ms: 5% of records wait more than 200 ms behind a stall). Not its p99: that hides the stall
        # only while the client makes 100+ round trips a second, and a busy CI host managed ~60 (8 stalls in
        # ~500 samples put its p99 on the stall).
        assert lat.p95 is not None
        closed_p95 = float(np.percentile(closed, 95))
        assert closed_p95 < 0.5 * lat.p95, (closed_p95, lat.p95, len(closed))
    finally:
        proc.terminate()
        proc.communicate(timeout=30)
