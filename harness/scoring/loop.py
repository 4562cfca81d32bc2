"""The Kafka scoring loop: consume feature records, score them in micro-batches, produce one output each.

    poll (up to batch_max records or batch_wait_ms) -> decode -> score (isolation.py) -> produce a result
    or a dead letter per record -> commit offsets behind the outputs (output.py: at-least-once or
    exactly-once)

The accounting invariant: every consumed record ends in exactly one of
    a result          (output topic, with its source `src` = topic/partition/offset),
    a dead letter     (dead-letter topic: reason, stage "decode" or "score", source),
    not committed     (it is delivered again, to this process or to the partition's next owner).

Faults and what the loop does (see docs/production.md):
- a record that cannot be decoded, a row the model fails on alone (any exception), a score that is not a
  finite number: a dead letter; the loop carries on;
- the engine unavailable (isolation.EngineDown): the assigned partitions are paused, the loop keeps
  polling (so the group keeps it) and retries the same batch with bounded exponential back-off; nothing
  is dead-lettered or committed for it; past `outage_limit_s` it stops with EngineOutage (exit code 3);
- a predict call that hangs past `engine_timeout_s`: the process exits (code 3) without committing it;
- a transient consumer error (broker restart, coordinator moved): logged, ridden out; only fatal or
  permanent ones stop the loop (consumer_errors.py);
- SIGTERM / Ctrl-C: finish the batch in hand, produce, commit, exit.

The loop knows adapters only through their contract (predict a batch); it does not know which one.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from confluent_kafka import Consumer, KafkaException, Message, TopicPartition

from adapters.base import Adapter
from harness.kafka.config import KafkaTarget
from harness.scoring import wire
from harness.scoring.consumer_errors import TransientLog, classify
from harness.scoring.errors import EngineOutage, LoopError
from harness.scoring.isolation import BatchScorer, EngineDown, Outcome
from harness.scoring.models import H_MODEL
from harness.scoring.operations import Operations
from harness.scoring.outage import Backoff, Watchdog
from harness.scoring.output import AtLeastOnce, ExactlyOnce, Offsets, Output, Rewound
from harness.scoring.settings import LoopConfig
from harness.signals import on_stop_signals


@dataclass
class LoopStats:
    consumed: int = 0
    scored: int = 0
    dead_lettered: int = 0
    batches: int = 0
    committed_batches: int = 0
    delivery_errors: int = 0
    predict_seconds: float = 0.0
    outages: int = 0
    outage_seconds: float = 0.0
    transient_errors: int = 0
    aborted_transactions: int = 0
    started_at: float = field(default_factory=time.time)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _stderr(message: str) -> None:
    print(f"harness score: {message}", file=sys.stderr, flush=True)


class _Stopped(Exception):
    """A stop was asked for while the engine was down: the batch in hand is left uncommitted."""


class ScoringLoop:
    def __init__(
        self,
        target: KafkaTarget,
        adapter: Adapter,
        feature_names: list[str],
        cfg: LoopConfig,
        on_assigned: Callable[[list[int]], None] | None = None,
        canary: np.ndarray | None = None,
        log: Callable[[str], None] = _stderr,
        ops: Operations | None = None,
    ) -> None:
        self.cfg = cfg
        self.adapter = adapter
        self.ops = ops or Operations(adapter.bundle.model_id, adapter.name, log=log)
        self.log = log
        self.codec = wire.FeatureCodec.for_bundle(adapter.bundle, cfg.encoding)
        self.results = wire.ResultCodec(adapter.task, cfg.encoding)  # what a result's value carries, by task
        self.stats = LoopStats()
        self._stop = threading.Event()
        self._on_assigned = on_assigned
        self._held: collections.deque[Message] = collections.deque()  # polled while paused, scored next
        self._paused = False
        self._owned: set[tuple[str, int]] = set()
        self._generation = 0  # bumped whenever partitions are revoked or lost
        self._polled_generation = 0  # the generation when the batch in hand started to be polled
        self._active_at = time.monotonic()  # the last batch or assignment (for idle_exit_s)
        self._buf = np.empty((cfg.batch_max, len(feature_names)), dtype=np.float64)
        self._scorer_header = (wire.H_SCORER, (cfg.scorer_name or "loop").encode())
        self._transient = TransientLog(log)
        self.scorer = self._batch_scorer(adapter, canary)
        exactly_once = cfg.guarantee == "exactly-once"
        client_id = f"{cfg.scorer_name or 'loop'}-loop"
        self.consumer = Consumer(target.client_config(**self._consumer_config(client_id, exactly_once)))
        self.output: Output
        if exactly_once:
            self.output = ExactlyOnce(
                target, self.consumer, client_id, cfg.group, cfg.instance_id, cfg.transaction_ms, log=log
            )
        else:
            self.output = AtLeastOnce(target, self.consumer, client_id, cfg.max_in_flight_batches, log=log)

    def _batch_scorer(self, adapter: Adapter, canary: np.ndarray | None) -> BatchScorer:
        predict: Callable[[np.ndarray], np.ndarray] = adapter.predict
        if self.cfg.engine_timeout_s > 0:
            predict = functools.partial(Watchdog(self.cfg.engine_timeout_s).call, adapter.predict)
        return BatchScorer(adapter, canary, predict)

    def _swap_model(self) -> None:
        """A new model version, checked by the model updates' thread, takes over between two batches."""
        got = self.ops.next_model()
        if got is None:
            return
        _, adapter = got
        old, seconds = self.adapter, self.scorer.predict_seconds
        self.adapter, self.scorer = adapter, self._batch_scorer(adapter, self.scorer.canary)
        self.scorer.predict_seconds = seconds
        old.close()

    def _consumer_config(self, client_id: str, exactly_once: bool) -> dict[str, Any]:
        guarantee = ExactlyOnce.consumer_config if exactly_once else AtLeastOnce.consumer_config
        static = {"group.instance.id": self.cfg.instance_id} if self.cfg.instance_id else {}
        return {
            **static,
            "group.id": self.cfg.group,
            **guarantee,
            "isolation.level": "read_committed",  # inputs written in aborted transactions are never scored
            "auto.offset.reset": "earliest",
            "partition.assignment.strategy": "range",
            "session.timeout.ms": 10_000,
            "heartbeat.interval.ms": 1_000,
            "max.poll.interval.ms": 300_000,
            "fetch.wait.max.ms": 1,  # latency over fetch efficiency
            "client.id": client_id,
        }

    # ---- lifecycle ----------------------------------------------------------------------------
    def stop(self) -> None:
        self._stop.set()

    def install_signal_handlers(self) -> None:
        on_stop_signals(self._stop.set)

    def run(self, max_records: int | None = None, idle_exit_s: float | None = None) -> LoopStats:
        """Run until stop(), a signal, `max_records` consumed, or `idle_exit_s` without records (counted while
        partitions are assigned)."""
        # no on_lost callback: registering one made every rebalance ~2 s slower; on_revoke also serves a loss
        self.consumer.subscribe([self.cfg.input_topic], on_assign=self._assigned, on_revoke=self._revoked)
        self._active_at = time.monotonic()
        try:
            while not self._stop.is_set():
                self.ops.heartbeat()
                msgs = self._next_batch()
                if msgs:
                    self._handle(msgs)
                    self._active_at = time.monotonic()  # after the batch: an outage in it is not idle time
                    if max_records is not None and self.stats.consumed >= max_records:
                        break
                elif idle_exit_s is not None and self._idle_for() > idle_exit_s:
                    break
                self._service(idle=not msgs)
                self._wait_for_output()
            self._close_output()
        except EngineOutage:
            self._close_output()  # what was scored before the outage is committed; the batch in hand is not
            raise
        finally:
            self._collect_stats()
            self.consumer.close()
        return self.stats

    def _idle_for(self) -> float:
        """Seconds since the last batch or assignment; 0 while no partition is assigned (a new member waits for
        the group to let a crashed one go: that wait is not idleness)."""
        return time.monotonic() - self._active_at if self._owned else 0.0

    def _close_output(self) -> None:
        # a Rewound here: nothing of the last transaction was committed; it is scored again after a restart
        with contextlib.suppress(Rewound):
            self.output.close()

    def _collect_stats(self) -> None:
        self.stats.predict_seconds = self.scorer.predict_seconds
        self.stats.delivery_errors = self.output.delivery_errors
        self.stats.committed_batches = getattr(self.output, "committed_batches", 0)
        self.stats.aborted_transactions = getattr(self.output, "aborted", 0)

    # ---- rebalance ------------------------------------------------------------------------------
    def _assigned(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._active_at = time.monotonic()  # idle time counts from the assignment, not from the start
        self._owned.update((p.topic, p.partition) for p in partitions)
        self.ops.partitions(len(self._owned))
        if self._paused:  # an outage is on: new partitions join paused
            consumer.assign(partitions)
            consumer.pause(partitions)
        if self._on_assigned is not None:
            self._on_assigned([p.partition for p in partitions])

    def _revoked(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Partitions revoked (or lost): drop what is held for them, then finish what is in flight and commit
        before they move (after a loss that commit fails, harmlessly: the new owner scores them again)."""
        gone = {(p.topic, p.partition) for p in partitions}
        self._generation += 1
        self._owned -= gone
        self.ops.partitions(len(self._owned))
        self._held = collections.deque(m for m in self._held if (m.topic(), m.partition()) not in gone)
        self.output.on_revoke()

    # ---- polling ------------------------------------------------------------------------------
    def _next_batch(self) -> list[Message]:
        """Records held during an outage first, else a fresh micro-batch."""
        self._polled_generation = self._generation
        if self._held:
            n = min(self.cfg.batch_max, len(self._held))
            return [self._held.popleft() for _ in range(n)]
        return self._collect_batch()

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
            msgs.extend(self.consumer.consume(cfg.batch_max - len(msgs), timeout=left))
        return msgs

    def _records(self, msgs: list[Message]) -> list[Message]:
        """The records among `msgs`; consumer errors are ridden out (transient) or stop the loop (fatal)."""
        records = []
        for m in msgs:
            err = m.error()
            if err is None:
                records.append(m)
                continue
            verdict = classify(err)
            if verdict == "fatal":
                raise LoopError(f"Kafka error the scorer cannot recover from: {err.name()}: {err.str()}")
            if verdict == "transient":
                self.stats.transient_errors += 1
                self._transient.report(err)
        return records

    def _poll_paused(self, seconds: float) -> None:
        """Keep the consumer in its group while the partitions are paused; hold anything poll returns."""
        deadline = time.monotonic() + seconds
        while not self._stop.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return
            m = self.consumer.poll(min(0.1, left))
            if m is not None:
                self._held.extend(self._records([m]))
            self._service(idle=False)

    def _pause(self) -> None:
        self._paused = True
        self.consumer.pause(self.consumer.assignment())

    def _resume(self) -> None:
        self._paused = False
        self.consumer.resume(self.consumer.assignment())

    # ---- one micro-batch ------------------------------------------------------------------------
    def _handle(self, msgs: list[Message]) -> None:
        records = self._records(msgs)
        if not records:
            return
        self.stats.consumed += len(records)
        self.stats.batches += 1
        generation = self._polled_generation
        self.ops.consumed(len(records))
        self._swap_model()
        t_consumed = wire.now_ns()
        rows, dead = self._decode(records)
        outcome = Outcome(np.empty(0))
        try:
            if rows:
                before = self.scorer.predict_seconds
                outcome = self._score(self._buf[: len(rows)])
                self.ops.scored_batch(self.scorer.predict_seconds - before)
            if generation != self._generation:
                # partitions were revoked since these records were polled (the range assignor revokes all of
                # them): they start again from the committed offsets; producing them now would duplicate them
                self._refetch(records)
                return
            self._emit(records, t_consumed, rows, outcome, dead)
            if rows:
                self._shadow(records, rows)
                if self.ops.learner is not None:
                    self.ops.scored_rows([_ids(records[i]) for i in rows], self._buf[: len(rows)])
        except _Stopped:
            return  # stopped during an outage: nothing produced, nothing committed for this batch
        except Rewound:
            self._held.clear()  # the consumer was sent back to the committed offsets

    def _refetch(self, records: list[Message]) -> None:
        """A dropped batch's partitions that this scorer still owns (a rebalance gave them back, or they came
        with the new assignment in the same poll) go back to their committed offsets, so the dropped records
        are fetched again; without this the consumer's position has moved past them and they would be lost."""
        first: dict[tuple[str, int], int] = {}
        for m in records:
            tp = (str(m.topic()), int(m.partition() or 0))
            first[tp] = min(first.get(tp, int(m.offset() or 0)), int(m.offset() or 0))
        owned = [tp for tp in first if tp in self._owned]
        if not owned:
            return  # the new owners start at the committed offsets
        try:
            committed = self.consumer.committed([TopicPartition(t, p) for t, p in owned], timeout=10)
        except KafkaException:
            committed = [TopicPartition(t, p, -1) for t, p in owned]
        for c in committed:
            if c.offset < 0:  # nothing committed yet (or unknown): the first record this batch held
                c.offset = first[(c.topic, c.partition)]
            with contextlib.suppress(KafkaException):
                self.consumer.seek(c)

    def _decode(self, records: list[Message]) -> tuple[list[int], list[tuple[int, str, str]]]:
        """Decode into the batch buffer: (record index of each buffer row, dead letters (index, stage, reason))."""
        rows, errors = self.codec.decode_batch([m.value() for m in records], self._buf)
        return rows, [(i, "decode", reason) for i, reason in errors]

    def _score(self, X: np.ndarray) -> Outcome:
        """Score the batch, riding out engine outages: pause, back off while polling, try again."""
        backoff = Backoff(self.cfg.outage_backoff_s, self.cfg.outage_backoff_max_s, self.cfg.outage_limit_s)
        while True:
            try:
                outcome = self.scorer.score(X)
            except EngineDown as e:
                self._back_off(backoff, str(e))
                continue
            if backoff.active:
                self._end_outage(backoff)
            return outcome

    def _back_off(self, backoff: Backoff, reason: str) -> None:
        now = time.monotonic()
        delay = backoff.next_delay(now)
        if delay is None:
            raise EngineOutage(
                f"the model engine was unavailable for {backoff.elapsed(now):.0f} s (limit "
                f"{self.cfg.outage_limit_s:g} s): {reason}; stopping without committing the batch in hand"
            )
        if backoff.attempts == 1:
            self.stats.outages += 1
            self.log(f"engine unavailable: {reason}; pausing the partitions, retrying with back-off")
            self.output.settle()
            self._pause()
            self.ops.engine(available=False)
        self._poll_paused(delay)
        if self._stop.is_set():
            raise _Stopped

    def _end_outage(self, backoff: Backoff) -> None:
        seconds = backoff.elapsed(time.monotonic())
        self.stats.outage_seconds += seconds
        self.log(f"engine back after {seconds:.1f} s ({backoff.attempts} retries); resuming the partitions")
        self._resume()
        self.ops.engine(available=True)

    def _emit(
        self,
        records: list[Message],
        t_consumed: int,
        rows: list[int],
        outcome: Outcome,
        dead: list[tuple[int, str, str]],
    ) -> None:
        """One output per record (result or dead letter), then the batch's offsets behind them."""
        out, cfg, ops = self.output, self.cfg, self.ops
        batch = out.open_batch()
        consumed_h = (wire.H_CONSUMED, str(t_consumed).encode())
        now = wire.now_ns()
        scored_h = (wire.H_SCORED, str(now).encode())
        scores, failures = outcome.scores.tolist(), outcome.failures
        send, topic, encode, scorer, model = (
            out.send,
            cfg.output_topic,
            self.results.encode,
            self._scorer_header,
            ops.model_header,
        )
        for k, i in enumerate(rows):
            m = records[i]
            if failures and k in failures:
                dead.append((i, "score", failures[k]))
                continue
            copied, rid, intended = wire.carried(m.headers())
            value = encode(None if rid is None else rid.decode("utf-8", "replace"), scores[k])
            headers = wire.result_headers(
                copied, wire.source(m.topic(), m.partition(), m.offset()), consumed_h, scored_h, scorer
            )
            headers.append(model)
            send(batch, topic, m.key(), value, headers)
            ops.result(intended, now)
        self.stats.scored += len(rows) - len(failures)
        for i, stage, reason in dead:
            m = records[i]
            src = wire.source(m.topic(), m.partition(), m.offset())
            headers = wire.dead_letter_headers(m.headers(), reason, stage, src)
            out.send(batch, cfg.dlq, m.key(), m.value(), headers)
            self.stats.dead_lettered += 1
            self.ops.dead_letter(stage, reason)
        out.close_batch(batch, _next_offsets(records))

    # ---- output housekeeping ----------------------------------------------------------------------
    def _service(self, idle: bool) -> None:
        try:
            self.output.service(idle)
        except Rewound:
            self._held.clear()
        self.ops.lag(self.consumer, self._owned)
        self.ops.service()

    def _shadow(self, records: list[Message], rows: list[int]) -> None:
        """The shadow model scores the same rows; its results go to the shadow topic (best effort: not part of
        the accounting, dropped rather than waited for when the producer's queue is full)."""
        got = self.ops.shadow(self._buf[: len(rows)])
        if got is None or self.ops.shadow_topic is None:
            return
        model, scores = got
        producer, values = self.output.producer, scores.tolist()
        for k, i in enumerate(rows):
            m = records[i]
            h = wire.headers_dict(m.headers())
            rid = h.get(wire.H_RID)
            value = self.results.encode(None if rid is None else rid.decode("utf-8", "replace"), values[k])
            headers: list[Any] = [(name, h[name]) for name in wire.COPIED_HEADERS if name in h]
            headers += [(wire.H_SRC, wire.source(m.topic(), m.partition(), m.offset())), (H_MODEL, model)]
            with contextlib.suppress(BufferError):
                producer.produce(self.ops.shadow_topic, key=m.key(), value=value, headers=headers)

    def _wait_for_output(self) -> None:
        """Too many batches unacknowledged (at-least-once): wait, pausing and polling after a second so the
        consumer keeps its group membership through a long broker hiccup."""
        if not self.output.backlogged():
            return
        started, paused_here = time.monotonic(), False
        while self.output.backlogged() and not self._stop.is_set():
            if not paused_here and not self._paused and time.monotonic() - started > 1.0:
                self._pause()
                paused_here = True
            if paused_here:
                self._poll_paused(0.05)
            else:
                self.output.producer.poll(0.05)
                self._service(idle=False)
        if paused_here:
            self._resume()


def _ids(m: Message) -> list[str]:
    """A scored record's ids for joining its label: its rid (when the producer set one) and its src."""
    ids = [wire.source(m.topic(), m.partition(), m.offset()).decode()]
    rid = wire.headers_dict(m.headers()).get(wire.H_RID)
    if rid is not None:
        ids.append(rid.decode("utf-8", "replace"))
    return ids


def _next_offsets(records: list[Message]) -> Offsets:
    """The offset to commit per partition after `records` (last offset + 1). A batch holds each partition's
    records in offset order, so the last one seen per partition is the highest."""
    offsets: Offsets = {}
    for m in records:
        offsets[(m.topic(), m.partition())] = m.offset() + 1  # type: ignore[index, operator]
    return offsets
