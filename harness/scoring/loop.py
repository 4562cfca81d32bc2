"""The Kafka scoring loop: consume feature records, score them in micro-batches, produce one output each.

    poll (up to batch_max records or batch_wait_ms) -> decode -> score (isolation.py) -> produce a result
    or a dead letter per record -> commit offsets behind the outputs (output.py: at-least-once or
    exactly-once)

The per-record work runs in native code, one call per micro-batch (harness_native, docs/native-loop.md):
polling the batch, decoding it into one float64 matrix, writing every result and dead letter with its
headers, and the delivery reports and offsets behind them. This module keeps the loop's logic — what
happens per batch, on a rebalance, an outage, a stop — and calls the adapter once per micro-batch.

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
from confluent_kafka import KafkaException, TopicPartition
from harness_native import Batch, Consumer, Decoder

from adapters.base import Adapter
from harness.kafka.config import KafkaTarget
from harness.scoring import wire
from harness.scoring.consumer_errors import TransientLog, classify
from harness.scoring.errors import EngineOutage, LoopError
from harness.scoring.isolation import BatchScorer, EngineDown, Outcome
from harness.scoring.operations import Operations
from harness.scoring.outage import Backoff, Watchdog
from harness.scoring.output import AtLeastOnce, Emit, ExactlyOnce, Output, Rewound
from harness.scoring.result_values import ResultValues
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


def consumer_config(cfg: LoopConfig, client_id: str) -> dict[str, Any]:
    """The loop's consumer settings (the native relay consumes with the same ones)."""
    exactly_once = cfg.guarantee == "exactly-once"
    guarantee = ExactlyOnce.consumer_config if exactly_once else AtLeastOnce.consumer_config
    static = {"group.instance.id": cfg.instance_id} if cfg.instance_id else {}
    return {
        **static,
        "group.id": cfg.group,
        **guarantee,
        "isolation.level": "read_committed",  # inputs written in aborted transactions are never scored
        "auto.offset.reset": "earliest",
        "partition.assignment.strategy": "range",
        "session.timeout.ms": 10_000,
        "heartbeat.interval.ms": 1_000,
        "max.poll.interval.ms": 300_000,
        # a fetch waits on the broker until a record arrives (fetch.min.bytes 1): the wait costs no latency, and a
        # 1 ms wait had every idle loop fetch 1,000 times a second (2.6% of a core on the client alone, measured
        # 2026-12-03 on the 2-core VM; p99 on loopback 3.0-10.0 ms with 100 ms, 6.9-7.1 ms with 1 ms)
        "fetch.wait.max.ms": 100,
        "client.id": client_id,
    }


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
        # the native decoder for numbers (JSON or f64le); a JSON schema with categorical features decodes
        # through the codec (adapters/schema.py holds those rules once)
        self.decoder = Decoder(feature_names, cfg.encoding) if self._native_decode() else None
        self.values = ResultValues(adapter.task, cfg.encoding, log)  # what a result's value carries, by task
        self.stats = LoopStats()
        self._stop = threading.Event()
        self._on_assigned = on_assigned
        self._held: collections.deque[Batch] = collections.deque()  # polled while paused, scored next
        self._paused = False
        self._owned: set[tuple[str, int]] = set()
        self._generation = 0  # bumped whenever partitions are revoked or lost
        self._polled_generation = 0  # the generation when the batch in hand started to be polled
        self._active_at = time.monotonic()  # the last batch or assignment (for idle_exit_s)
        self._buf = np.empty((cfg.batch_max, len(feature_names)), dtype=np.float64)
        self._scorer_name = (cfg.scorer_name or "loop").encode()
        self._transient = TransientLog(log)
        self.scorer = self._batch_scorer(adapter, canary)
        exactly_once = cfg.guarantee == "exactly-once"
        client_id = f"{cfg.scorer_name or 'loop'}-loop"
        self.consumer = Consumer(
            target.client_config(**consumer_config(cfg, client_id)),
            on_assign=self._assigned,
            on_revoke=self._revoked,
        )
        self.output: Output
        if exactly_once:
            self.output = ExactlyOnce(
                target, self.consumer, client_id, cfg.group, cfg.instance_id, cfg.transaction_ms, log=log
            )
        else:
            self.output = AtLeastOnce(target, self.consumer, client_id, cfg.max_in_flight_batches, log=log)

    def _native_decode(self) -> bool:
        return self.cfg.encoding == "f64le" or self.codec.schema_numeric

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
        if adapter.task != self.values.codec.task:  # refused before it gets here (service.py): never a wrong value
            self.values = ResultValues(adapter.task, self.cfg.encoding, self.log)
        old.close()

    # ---- lifecycle ----------------------------------------------------------------------------
    def stop(self) -> None:
        self._stop.set()

    def install_signal_handlers(self) -> None:
        on_stop_signals(self._stop.set)

    def run(self, max_records: int | None = None, idle_exit_s: float | None = None) -> LoopStats:
        """Run until stop(), a signal, `max_records` consumed, or `idle_exit_s` without records (counted while
        partitions are assigned)."""
        # the revoke callback also serves a lost assignment
        self.consumer.subscribe([self.cfg.input_topic])
        self._active_at = time.monotonic()
        try:
            while not self._stop.is_set():
                self.ops.heartbeat()
                batch = self._next_batch()
                if batch is not None:
                    self._handle(batch)
                    self._active_at = time.monotonic()  # after the batch: an outage in it is not idle time
                    if max_records is not None and self.stats.consumed >= max_records:
                        break
                elif idle_exit_s is not None and self._idle_for() > idle_exit_s:
                    break
                self._service(idle=batch is None)
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
        kept = (b.without(gone) for b in self._held)
        self._held = collections.deque(b for b in kept if b is not None)
        self.output.on_revoke()

    # ---- polling ------------------------------------------------------------------------------
    def _next_batch(self) -> Batch | None:
        """A batch held during an outage first, else a fresh micro-batch (records only: its consumer errors
        are ridden out or stop the loop here)."""
        self._polled_generation = self._generation
        if self._held:
            return self._held.popleft()
        # wait up to 0.1 s for the first record, then up to batch_wait_ms for the batch to fill
        batch = self.consumer.poll_batch(self.cfg.batch_max, 0.1, max(0.0, self.cfg.batch_wait_ms) / 1000.0)
        if batch is None:
            return None
        self._check_errors(batch)
        return batch if len(batch) else None

    def _check_errors(self, batch: Batch) -> None:
        """Consumer errors polled with a batch are ridden out (transient) or stop the loop (fatal)."""
        for err in batch.errors():
            verdict = classify(err)
            if verdict == "fatal":
                raise LoopError(f"Kafka error the scorer cannot recover from: {err.name()}: {err.str()}")
            if verdict == "transient":
                self.stats.transient_errors += 1
                self._transient.report(err)

    def _poll_paused(self, seconds: float) -> None:
        """Keep the consumer in its group while the partitions are paused; hold anything poll returns."""
        deadline = time.monotonic() + seconds
        while not self._stop.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return
            batch = self.consumer.poll_batch(self.cfg.batch_max, min(0.1, left), 0.0)
            if batch is not None:
                self._check_errors(batch)
                if len(batch):
                    self._held.append(batch)
            self._service(idle=False)

    def _pause(self) -> None:
        self._paused = True
        self.consumer.pause(self.consumer.assignment())

    def _resume(self) -> None:
        self._paused = False
        self.consumer.resume(self.consumer.assignment())

    # ---- one micro-batch ------------------------------------------------------------------------
    def _handle(self, batch: Batch) -> None:
        self.stats.consumed += len(batch)
        self.stats.batches += 1
        generation = self._polled_generation
        self.ops.consumed(len(batch))
        self._swap_model()
        t_consumed = wire.now_ns()
        n, dead = self._decode(batch)
        outcome = _NO_OUTCOME
        try:
            if n:
                before = self.scorer.predict_seconds
                outcome = self._score(self._buf[:n])
                self.ops.scored_batch(self.scorer.predict_seconds - before)
            if generation != self._generation:
                # partitions were revoked since these records were polled (the range assignor revokes all of
                # them): they start again from the committed offsets; producing them now would duplicate them
                self._refetch(batch)
                return
            self._emit(batch, t_consumed, n, outcome, dead)
            if n:
                self._shadow(batch, n)
                if self.ops.learner is not None:
                    self.ops.scored_rows(batch.ids(), self._buf[:n])
        except _Stopped:
            return  # stopped during an outage: nothing produced, nothing committed for this batch
        except Rewound:
            self._held.clear()  # the consumer was sent back to the committed offsets

    def _refetch(self, batch: Batch) -> None:
        """A dropped batch's partitions that this scorer still owns (a rebalance gave them back, or they came
        with the new assignment in the same poll) go back to their committed offsets, so the dropped records
        are fetched again; without this the consumer's position has moved past them and they would be lost."""
        first: dict[tuple[str, int], int] = batch.first_offsets()
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

    def _decode(self, batch: Batch) -> tuple[int, list[tuple[int, str]]]:
        """Decode into the batch buffer: (rows decoded, records refused as (index, reason)); the batch keeps
        the record index of each row."""
        if self.decoder is not None:
            return self.decoder.decode(batch, self._buf)
        rows, errors = self.codec.decode_batch(batch.values(), self._buf)
        batch.set_decoded(rows, errors)
        return len(rows), errors

    def _score(self, X: np.ndarray) -> Outcome:
        """Score the batch, riding out engine outages: pause, back off while polling, try again."""
        try:
            return self.scorer.score(X)
        except EngineDown as e:
            down = str(e)
        backoff = Backoff(self.cfg.outage_backoff_s, self.cfg.outage_backoff_max_s, self.cfg.outage_limit_s)
        while True:
            self._back_off(backoff, down)
            try:
                outcome = self.scorer.score(X)
            except EngineDown as e:
                down = str(e)
                continue
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

    def _emit(self, batch: Batch, t_consumed: int, n: int, outcome: Outcome, dead: list[tuple[int, str]]) -> None:
        """One output per record (result or dead letter, in one native call), then the batch's offsets."""
        out, ops = self.output, self.ops
        handle = out.open_batch()
        now = wire.now_ns()
        failures = outcome.failures
        native = self.values.native
        how = Emit(
            self.cfg.output_topic,
            self.cfg.dlq,
            native,
            self._scorer_name,
            ops.model_header[1],
            t_consumed,
            now,
            latencies=ops.metrics is not None,
            values=None if native is not None else self.values.python(batch, outcome.scores, failures),
        )
        latencies = out.emit(handle, batch, outcome.scores, failures, how)
        self.stats.scored += n - len(failures)
        ops.results(n - len(failures), latencies)
        for _, reason in dead:
            ops.dead_letter("decode", reason)
        for reason in failures.values():
            ops.dead_letter("score", reason)
        self.stats.dead_lettered += len(dead) + len(failures)
        out.close_batch(handle, batch.next_offsets())

    # ---- output housekeeping ----------------------------------------------------------------------
    def _service(self, idle: bool) -> None:
        try:
            self.output.service(idle)
        except Rewound:
            self._held.clear()
        self.ops.lag(self.consumer, self._owned)
        self.ops.service()

    def _shadow(self, batch: Batch, n: int) -> None:
        """The shadow model scores the same rows; its results go to the shadow topic (best effort: not part of
        the accounting, dropped rather than waited for when the producer's queue is full)."""
        got = self.ops.shadow(self._buf[:n])
        if got is None or self.ops.shadow_topic is None:
            return
        model, scores = got
        values = self.values
        try:
            scores = values.codec.task.shape_of(scores, n)  # the live model's task: checked when it was loaded
            if values.native is not None:
                self.output.producer.emit_shadow(batch, scores, self.ops.shadow_topic, model, values.native)
            else:
                encoded = values.python(batch, scores)
                self.output.producer.emit_shadow(batch, None, self.ops.shadow_topic, model, None, encoded)
        except (ValueError, KafkaException) as e:  # a shadow never costs the live path anything but this line
            self.log(f"shadow results not written: {e}")

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


_NO_SCORES = np.empty(0)
_NO_OUTCOME = Outcome(_NO_SCORES)  # a batch with no decoded row (never changed: emit only reads it)
