"""The Kafka scoring loop: consume feature records, score them in micro-batches, produce one result each.

    poll (up to batch_max records or batch_wait_ms) -> decode -> adapter.predict(batch) -> produce results
    -> when the broker has acknowledged every result of a batch, store its offsets -> commit (background,
       every 200 ms, only stored offsets; synchronously on shutdown and before partitions are revoked)

At-least-once: an input offset is committed only after the broker acknowledged the result (or the
dead-letter record) of that input and of every input before it in the same partition. Batches are
acknowledged in order per partition, so offsets are stored only for the completed prefix of the
in-flight queue. A record that cannot be decoded or scored goes to the dead-letter topic with the
reason in a header; the loop carries on. SIGTERM / Ctrl-C: finish the batch in hand, produce, wait for
acknowledgements, commit, exit.

The loop knows adapters only through their contract (predict a batch); it does not know which one.
"""

from __future__ import annotations

import collections
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

from adapters.base import Adapter
from adapters.errors import AdapterError
from harness.kafka.config import KafkaTarget
from harness.scoring import wire
from harness.scoring.errors import LoopError


@dataclass
class LoopConfig:
    input_topic: str
    output_topic: str
    group: str
    dlq_topic: str | None = None
    encoding: wire.Encoding = "json"
    batch_max: int = 64
    batch_wait_ms: float = 5.0
    scorer_name: str = "loop"
    max_in_flight_batches: int = 64

    @property
    def dlq(self) -> str:
        return self.dlq_topic or f"{self.input_topic}.dlq"


@dataclass
class LoopStats:
    consumed: int = 0
    scored: int = 0
    dead_lettered: int = 0
    batches: int = 0
    committed_batches: int = 0
    delivery_errors: int = 0
    predict_seconds: float = 0.0
    started_at: float = field(default_factory=time.time)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class _Batch:
    __slots__ = ("offsets", "pending", "failed")

    def __init__(self, offsets: dict[tuple[str, int], int]) -> None:
        self.offsets = offsets  # (topic, partition) -> next offset to commit
        self.pending = 0
        self.failed: str | None = None


class ScoringLoop:
    def __init__(
        self,
        target: KafkaTarget,
        adapter: Adapter,
        feature_names: list[str],
        cfg: LoopConfig,
        on_assigned: Callable[[list[int]], None] | None = None,
    ) -> None:
        self.cfg = cfg
        self.adapter = adapter
        self.codec = wire.FeatureCodec.for_bundle(adapter.bundle, cfg.encoding)
        self.stats = LoopStats()
        self._stop = threading.Event()
        self._on_assigned = on_assigned
        self._inflight: collections.deque[_Batch] = collections.deque()
        self._fatal: str | None = None
        self._buf = np.empty((cfg.batch_max, len(feature_names)), dtype=np.float64)
        scorer = cfg.scorer_name.encode()
        self._scorer_header = (wire.H_SCORER, scorer)
        self.consumer = Consumer(
            target.client_config(
                **{
                    "group.id": cfg.group,
                    # offsets are stored by hand only once the results are acknowledged; librdkafka's
                    # background auto-commit then commits just those stored offsets (at-least-once)
                    "enable.auto.commit": True,
                    "auto.commit.interval.ms": 200,
                    "enable.auto.offset.store": False,
                    "auto.offset.reset": "earliest",
                    "partition.assignment.strategy": "range",
                    "session.timeout.ms": 10_000,
                    "heartbeat.interval.ms": 1_000,
                    "max.poll.interval.ms": 300_000,
                    "fetch.wait.max.ms": 1,  # latency over fetch efficiency: a loopback benchmark
                    "client.id": f"{cfg.scorer_name}-loop",
                }
            )
        )
        self.producer = Producer(
            target.client_config(
                **{
                    "acks": "all",
                    "enable.idempotence": True,
                    "linger.ms": 1,
                    "batch.num.messages": 10_000,
                    "client.id": f"{cfg.scorer_name}-loop",
                }
            )
        )

    # ---- lifecycle ----------------------------------------------------------------------------
    def stop(self) -> None:
        self._stop.set()

    def install_signal_handlers(self) -> None:
        def handler(signum: int, frame: object) -> None:
            self._stop.set()

        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)

    def run(self, max_records: int | None = None, idle_exit_s: float | None = None) -> LoopStats:
        """Run until stop(), a signal, `max_records` consumed, or `idle_exit_s` without records."""
        self.consumer.subscribe([self.cfg.input_topic], on_assign=self._assigned, on_revoke=self._revoked)
        last_record = time.monotonic()
        try:
            while not self._stop.is_set():
                if self._fatal:
                    raise LoopError(self._fatal)
                msgs = self._collect_batch()
                if msgs:
                    last_record = time.monotonic()
                    self._process(msgs)
                    if max_records is not None and self.stats.consumed >= max_records:
                        break
                elif idle_exit_s is not None and time.monotonic() - last_record > idle_exit_s:
                    break
                self.producer.poll(0)
                self._store_completed()
            self._drain()
            if self._fatal:
                raise LoopError(self._fatal)
        finally:
            self.consumer.close()
        return self.stats

    # ---- rebalance ------------------------------------------------------------------------------
    def _assigned(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        if self._on_assigned is not None:
            self._on_assigned([p.partition for p in partitions])

    def _revoked(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # finish what is in flight for the partitions we lose, then commit, before they move
        self._drain()

    # ---- the batch ------------------------------------------------------------------------------
    def _collect_batch(self) -> list[Message]:
        cfg = self.cfg
        # consume(n, timeout) blocks until n records or the timeout: wait for the first record with poll(),
        # then take what is already fetched without waiting
        first = self.consumer.poll(0.1)
        if first is None:
            return []
        msgs = [first]
        if cfg.batch_max > 1:
            msgs.extend(self.consumer.consume(cfg.batch_max - 1, timeout=0))
        if len(msgs) >= cfg.batch_max or cfg.batch_wait_ms <= 0:
            return msgs
        deadline = time.monotonic() + cfg.batch_wait_ms / 1000.0
        while len(msgs) < cfg.batch_max:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            more = self.consumer.consume(cfg.batch_max - len(msgs), timeout=left)
            msgs.extend(more)
        return msgs

    def _process(self, msgs: list[Message]) -> None:
        t_consumed = wire.now_ns()
        good: list[tuple[Message, dict[str, bytes]]] = []
        offsets: dict[tuple[str, int], int] = {}
        batch_dead: list[tuple[Message, str, str]] = []
        buf = self._buf
        for m in msgs:
            err = m.error()
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:
                    continue
                raise LoopError(f"consumer error: {err.str()}")
            tp = (str(m.topic()), int(m.partition() or 0))
            offsets[tp] = max(offsets.get(tp, -1), int(m.offset() or 0) + 1)
            self.stats.consumed += 1
            try:
                self.codec.decode_into(m.value(), buf[len(good)])
            except wire.DecodeError as e:
                batch_dead.append((m, "decode", str(e)))
                continue
            good.append((m, wire.headers_dict(m.headers())))
        batch = _Batch(offsets)
        self._inflight.append(batch)
        self.stats.batches += 1
        scores: np.ndarray | None = None
        if good:
            X = buf[: len(good)]
            t0 = time.perf_counter()
            try:
                scores = self.adapter.predict(X)
            except AdapterError:
                scores = self._score_one_by_one(X, good, batch_dead)
            self.stats.predict_seconds += time.perf_counter() - t0
        t_scored = str(wire.now_ns()).encode()
        consumed_h = (wire.H_CONSUMED, str(t_consumed).encode())
        scored_h = (wire.H_SCORED, t_scored)
        enc = self.cfg.encoding
        out_topic = self.cfg.output_topic
        produce = self.producer.produce
        for i, (m, h) in enumerate(good):
            if scores is None or np.isnan(scores[i]):
                continue
            headers: list[Any] = wire.result_headers(h, consumed_h, scored_h, self._scorer_header)
            value = wire.encode_score(h.get(wire.H_RID, b"").decode("utf-8", "replace"), float(scores[i]), enc)
            self._produce(batch, produce, out_topic, m.key(), value, headers)
            self.stats.scored += 1
        for m, stage, reason in batch_dead:
            src = f"{m.topic()}/{m.partition()}/{m.offset()}"
            headers = list(m.headers() or []) + [
                (wire.H_DLQ_REASON, reason.replace("\n", " ")[:500].encode()),
                (wire.H_DLQ_STAGE, stage.encode()),
                (wire.H_DLQ_SOURCE, src.encode()),
            ]
            self._produce(batch, produce, self.cfg.dlq, m.key(), m.value(), headers)
            self.stats.dead_lettered += 1
        self.producer.poll(0)
        while len(self._inflight) > self.cfg.max_in_flight_batches:
            self.producer.poll(0.05)
            self._store_completed()
            if self._fatal:
                raise LoopError(self._fatal)

    def _score_one_by_one(
        self, X: np.ndarray, good: list[tuple[Message, dict[str, bytes]]], dead: list[tuple[Message, str, str]]
    ) -> np.ndarray:
        """The batch failed: score row by row so one poison record does not take the batch with it."""
        out = np.full(X.shape[0], np.nan)
        for i in range(X.shape[0]):
            try:
                out[i] = self.adapter.predict(X[i : i + 1])[0]
            except AdapterError as e:
                dead.append((good[i][0], "score", str(e)))
        return out

    def _produce(
        self, batch: _Batch, produce: Callable[..., None], topic: str, key: Any, value: Any, headers: Any
    ) -> None:
        batch.pending += 1

        def delivered(err: KafkaError | None, msg: Message) -> None:
            batch.pending -= 1
            if err is not None:
                self.stats.delivery_errors += 1
                batch.failed = err.str()

        while True:
            try:
                produce(topic, value=value, key=key, headers=headers, on_delivery=delivered)
                return
            except BufferError:
                self.producer.poll(0.05)  # the local queue is full: let deliveries drain
            except KafkaException as e:
                batch.pending -= 1
                raise LoopError(f"cannot produce to {topic}: {e}") from None

    # ---- offsets -------------------------------------------------------------------------------
    def _store_completed(self) -> None:
        """Store offsets for the acknowledged prefix of the in-flight batches."""
        to_store: dict[tuple[str, int], int] = {}
        while self._inflight and self._inflight[0].pending == 0:
            b = self._inflight.popleft()
            if b.failed is not None:
                self._fatal = f"the broker refused a result ({b.failed}); stopping without committing it"
                self._inflight.appendleft(b)
                break
            for tp, off in b.offsets.items():
                to_store[tp] = max(to_store.get(tp, -1), off)
            self.stats.committed_batches += 1
        if to_store:
            tps = [TopicPartition(t, p, o) for (t, p), o in to_store.items()]
            try:
                self.consumer.store_offsets(offsets=tps)
            except KafkaException as e:
                # a partition we no longer own: its records will be redelivered to the new owner
                if "UNKNOWN_PARTITION" not in str(e) and "_STATE" not in str(e):
                    raise

    def _drain(self, timeout_s: float = 30.0) -> None:
        """Wait for every in-flight result to be acknowledged, then commit synchronously."""
        deadline = time.monotonic() + timeout_s
        while self._inflight and time.monotonic() < deadline:
            self.producer.poll(0.05)
            self._store_completed()
            if self._fatal:
                break
        self.producer.flush(max(0.0, deadline - time.monotonic()))
        self._store_completed()
        try:
            self.consumer.commit(asynchronous=False)
        except KafkaException as e:
            if "NO_OFFSET" not in str(e):
                raise
