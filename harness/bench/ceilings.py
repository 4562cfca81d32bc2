"""The harness's own ceilings, measured in every run: how fast the load generator can send and the measurer
can read, flat out, on this machine and broker. A loop figure near either is the harness's, not the loop's;
the report says so when either is under twice the Kafka-only loop's capacity."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from harness.bench.loadgen import Generator
from harness.bench.measure import Measurer, PointSpec
from harness.bench.session import START_DELAY_NS, RunContext
from harness.kafka.topics import delete_topics, ensure_topics
from harness.scoring import wire

RECORDS = 50_000


def generator_ceiling(ctx: RunContext, records: int = RECORDS) -> float:
    """Records/s the load generator sends with its whole schedule due at once (acks from the broker included)."""
    topic = f"h.{ctx.tag}.ceiling-gen"
    ensure_topics(ctx.target, {topic: ctx.sc.loop.partitions})
    gen = Generator(ctx.target.client_config(), topic, ctx.payloads, 1e9)
    try:
        gen.start(np.zeros(records), "gen", time.time_ns() + START_DELAY_NS)
        return gen.result(timeout_s=300).achieved_per_s
    finally:
        gen.close()
        delete_topics(ctx.target, [topic])


def measurer_ceiling(ctx: RunContext, records: int = RECORDS) -> float:
    """Results/s the measurer reads and books: `records` results written first, then read from the start."""
    from confluent_kafka import Producer

    out, dlq = f"h.{ctx.tag}.ceiling-out", f"h.{ctx.tag}.ceiling-dlq"
    ensure_topics(ctx.target, {out: ctx.sc.loop.partitions, dlq: 1})
    try:
        p = Producer(ctx.target.client_config(**{"linger.ms": 20, "batch.num.messages": 10_000}))
        t0 = time.time_ns()
        stamp = str(t0).encode()
        codec = wire.ResultCodec(ctx.bundle.task, ctx.sc.encoding)
        for seq in range(records):
            rid = wire.record_id("m", seq)
            headers: list[Any] = wire.result_headers(
                [(wire.H_RID, rid.encode()), (wire.H_INTENDED, stamp), (wire.H_SENT, stamp)],
                wire.source("input", seq % 64, seq),
                (wire.H_CONSUMED, stamp),
                (wire.H_SCORED, stamp),
                (wire.H_SCORER, b"ceiling"),
            )
            value = codec.encode(rid, ctx.p[seq % len(ctx.p)].tolist())
            while True:
                try:
                    p.produce(out, value=value, key=str(seq % 64).encode(), headers=headers)
                    break
                except BufferError:
                    p.poll(0.01)
        p.flush(120)
        m = Measurer(ctx.target, out, dlq, ctx.sc.encoding, ctx.p, ctx.y, task=ctx.bundle.task)
        m.add_point(PointSpec("m", t0, 0.0, 1.0, records))
        start = time.perf_counter()
        m.start()
        try:
            m.wait_drained("m", records, 30.0)
            got, _, _ = m.received_span("m")
            return got / (time.perf_counter() - start)
        finally:
            m.close()
    finally:
        delete_topics(ctx.target, [out, dlq])
