"""Where results and dead letters go, and when input offsets are committed: the two delivery guarantees.

Both produce with acks=all and idempotence, and both keep the accounting invariant: an input's offset is
committed only together with, or after, the output (result or dead letter) of that input.

    AtLeastOnce   an input's offset is stored once the broker acknowledged its output and the output of
                  every earlier input of its partition; librdkafka auto-commits stored offsets every
                  200 ms, and synchronously before partitions are revoked and at exit. After a crash the
                  inputs since the last commit are scored again: duplicates, never a loss (`src` tells
                  them apart downstream).
    ExactlyOnce   outputs and input offsets in one Kafka transaction (transactional producer,
                  send_offsets_to_transaction), committed every `transaction_ms` or when the input runs
                  dry. A read_committed consumer sees each output once. On an abortable error the
                  transaction is aborted and the consumer rewound to the committed offsets (raises
                  Rewound: the loop drops what it holds); on a fatal producer error the producer is
                  rebuilt with the same transactional.id, which fences the old one.

Usage by the loop, per micro-batch:  b = out.open_batch(); out.emit(b, batch, ...) writes every output of
the micro-batch in one native call (harness_native.Producer.emit: results and dead letters with their
headers); out.close_batch(b, offsets); out.service(idle) each turn; out.settle() before pausing for an
outage; out.on_revoke() in the rebalance callback; out.close() at exit. The clients are harness_native's
(librdkafka in native code); offsets and errors are confluent_kafka's TopicPartition and KafkaException.
"""

from __future__ import annotations

import collections
import contextlib
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NoReturn, Protocol

import numpy as np
from confluent_kafka import OFFSET_BEGINNING, KafkaError, KafkaException, TopicPartition
from harness_native import Batch, Consumer, Producer, Results, Tracker

from harness.kafka.config import DURABLE_PRODUCER, KafkaTarget
from harness.scoring.errors import LoopError

Offsets = dict[tuple[str, int], int]  # (topic, partition) -> next offset to commit
AUTO_COMMIT_MS = 200


class Rewound(Exception):
    """The open transaction was aborted and the consumer sent back to the committed offsets."""


@dataclass(slots=True)
class Emit:
    """What one micro-batch's outputs are written with (besides the batch and its scores)."""

    topic: str
    dlq: str
    results: Results | None  # the native encoder of each row's value (result_values.py), or None: `values`
    scorer: bytes
    model: bytes
    consumed_ns: int
    scored_ns: int
    latencies: bool = False  # return the end-to-end seconds of results carrying t_intended_ns (for metrics)
    values: list[bytes | None] | None = None  # each decoded row's value, encoded in Python (None: a failed row)


class Output(Protocol):
    producer: Producer
    delivery_errors: int

    def open_batch(self) -> Any: ...

    def emit(
        self, handle: Any, batch: Batch, scores: np.ndarray, failures: dict[int, str], how: Emit
    ) -> list[float] | None: ...

    def close_batch(self, batch: Any, offsets: Offsets) -> None: ...

    def service(self, idle: bool) -> None: ...

    def backlogged(self) -> bool: ...

    def settle(self) -> None: ...

    def on_revoke(self) -> None: ...

    def close(self) -> None: ...


def producer_config(client_id: str) -> dict[str, Any]:
    return {
        **DURABLE_PRODUCER,
        "linger.ms": 1,
        "batch.num.messages": 10_000,
        "client.id": client_id,
    }


def _emit(
    producer: Producer, batch: Batch, scores: np.ndarray, failures: dict[int, str], how: Emit, tracker: Tracker | None
) -> list[float] | None:
    """Every output of one micro-batch in one native call (waits, GIL released, while the local queue is full)."""
    return producer.emit(
        batch,
        scores,
        failures or None,
        how.topic,
        how.dlq,
        how.results,
        how.scorer,
        how.model,
        how.consumed_ns,
        how.scored_ns,
        tracker,
        how.latencies,
        how.values,
    )


# ------------------------------------------------------------------------------------------- at-least-once


class _Batch:
    """One micro-batch's outputs in flight: the native tracker counts the unacknowledged ones (the delivery
    reports are served in native code) and keeps the first failure."""

    __slots__ = ("offsets", "tracker")

    def __init__(self) -> None:
        self.offsets: Offsets = {}
        self.tracker = Tracker()


class AtLeastOnce:
    """Offsets stored only behind acknowledged outputs, in order per partition; background auto-commit."""

    consumer_config = {
        "enable.auto.commit": True,
        "auto.commit.interval.ms": AUTO_COMMIT_MS,
        "enable.auto.offset.store": False,
    }

    def __init__(
        self,
        target: KafkaTarget,
        consumer: Consumer,
        client_id: str,
        max_in_flight: int = 64,
        log: Callable[[str], None] = print,
    ) -> None:
        self.consumer = consumer
        self.log = log
        self.producer = Producer(target.client_config(**producer_config(client_id)), delivery_thread=True)
        self.max_in_flight = max_in_flight
        self.delivery_errors = 0
        self.committed_batches = 0
        self._inflight: collections.deque[_Batch] = collections.deque()
        self._fatal: str | None = None

    def open_batch(self) -> _Batch:
        return _Batch()

    def emit(
        self, handle: _Batch, batch: Batch, scores: np.ndarray, failures: dict[int, str], how: Emit
    ) -> list[float] | None:
        try:
            return _emit(self.producer, batch, scores, failures, how, handle.tracker)
        except KafkaException as e:
            raise LoopError(f"cannot produce to {how.topic}: {e}") from None

    def close_batch(self, batch: _Batch, offsets: Offsets) -> None:
        batch.offsets = offsets
        self._inflight.append(batch)

    def service(self, idle: bool) -> None:
        self.producer.poll(0)
        self._store_completed()

    def backlogged(self) -> bool:
        return len(self._inflight) > self.max_in_flight

    def settle(self) -> None:
        """Nothing to do before an outage pause: acknowledged outputs keep being committed meanwhile."""

    def on_revoke(self) -> None:
        self._drain()

    def close(self) -> None:
        self._drain()

    def _store_completed(self) -> None:
        """Store offsets for the acknowledged prefix of the in-flight batches."""
        to_store: Offsets = {}
        while self._inflight and self._inflight[0].tracker.pending == 0:
            b = self._inflight[0]
            self.delivery_errors += b.tracker.take_errors()
            failed = b.tracker.failed
            if failed is not None:
                self._fatal = f"the broker refused an output ({failed}); stopping without committing it"
                break
            self._inflight.popleft()
            for tp, off in b.offsets.items():
                to_store[tp] = max(to_store.get(tp, -1), off)
            self.committed_batches += 1
        if to_store:
            try:
                self.consumer.store_offsets(offsets=to_store)
            except KafkaException as e:
                # a partition we no longer own: its records are delivered again to the new owner
                if "UNKNOWN_PARTITION" not in str(e) and "_STATE" not in str(e):
                    raise
        if self._fatal:
            raise LoopError(self._fatal)

    def _drain(self, timeout_s: float = 30.0) -> None:
        """Wait for every in-flight output to be acknowledged, store, then commit synchronously."""
        deadline = time.monotonic() + timeout_s
        while self._inflight and time.monotonic() < deadline:
            self.producer.poll(0.05)
            self._store_completed()
        self.producer.flush(max(0.0, deadline - time.monotonic()))
        self._store_completed()
        try:
            self.consumer.commit(asynchronous=False)
        except KafkaException as e:
            err: KafkaError = e.args[0]
            if err.code() != KafkaError._NO_OFFSET:  # nothing new to commit is fine
                # the group moved on (a lost assignment) or the broker is away: what was not committed is
                # delivered again, to this process or to the partitions' next owner
                self.log(f"could not commit offsets ({err.name()}: {err.str()}); those records are scored again")


# -------------------------------------------------------------------------------------------- exactly-once


class ExactlyOnce:
    """Outputs and input offsets committed atomically in Kafka transactions (KIP-447 style: the consumer
    group's metadata fences zombies, so the transactional.id only has to be unique per instance).

    Every Kafka call here is bounded (CALL_TIMEOUT_S; retriable errors retried for RETRY_FOR_S), so a broker
    that goes away costs a bounded wait, never a hang. A transaction that cannot be committed is aborted;
    a producer that cannot abort (or hit a fatal error) is marked stale and replaced by a new one with the
    same transactional.id, whose init_transactions fences the old one and aborts its transaction.

    librdkafka's send_offsets_to_transaction can ignore its timeout and block for good after a broker
    restart (confluentinc/librdkafka#5456, #5511), so the transaction calls run in a helper thread and one
    that outlives its timeout is treated like a fatal producer error: the stuck producer is abandoned."""

    consumer_config = {"enable.auto.commit": False, "enable.auto.offset.store": False}
    CALL_TIMEOUT_S = 10.0
    RETRY_FOR_S = 30.0
    MAX_REBUILDS = 5  # new producers within REBUILD_WINDOW_S before the loop gives up
    REBUILD_WINDOW_S = 120.0

    def __init__(
        self,
        target: KafkaTarget,
        consumer: Consumer,
        client_id: str,
        group: str,
        instance_id: str | None = None,
        transaction_ms: float = 100.0,
        transaction_timeout_ms: int = 10_000,
        log: Callable[[str], None] = print,
    ) -> None:
        self.target = target
        self.consumer = consumer
        self.client_id = client_id
        # KIP-447: the consumer group's metadata fences zombies, so a random id per process is safe; a stable
        # one (from the instance id) also fences a crashed predecessor's open transaction at once
        self.transactional_id = f"{group}-{instance_id or uuid.uuid4().hex[:12]}"
        self.transaction_ms = transaction_ms
        self.transaction_timeout_ms = transaction_timeout_ms
        self.log = log
        self.delivery_errors = 0
        self.committed_batches = 0
        self.aborted = 0
        self._rebuilds: list[float] = []
        self._stale = False  # the producer failed and must be replaced before the next transaction
        self._abandoned: list[Producer] = []  # producers stuck in a call (kept: destroying one could block)
        self._open = False
        self._opened_at = 0.0
        self._batches = 0
        self._offsets: Offsets = {}
        self.producer = self._new_producer()

    def _new_producer(self) -> Producer:
        conf = producer_config(self.client_id)
        conf["transactional.id"] = self.transactional_id
        conf["transaction.timeout.ms"] = self.transaction_timeout_ms
        producer = Producer(self.target.client_config(**conf), delivery_thread=True)
        try:
            producer.init_transactions(60)
        except KafkaException as e:
            raise LoopError(f"cannot start transactions as {self.transactional_id!r}: {e.args[0].str()}") from None
        return producer

    # ---- the loop's side -------------------------------------------------------------------------
    def open_batch(self) -> None:
        return None

    def emit(
        self, handle: None, batch: Batch, scores: np.ndarray, failures: dict[int, str], how: Emit
    ) -> list[float] | None:
        try:
            self._begin()
            return _emit(self.producer, batch, scores, failures, how, None)
        except KafkaException as e:
            self._recover(e.args[0], f"producing to {how.topic}")

    def close_batch(self, batch: None, offsets: Offsets) -> None:
        if not offsets:
            return
        try:
            self._begin()  # a batch with no output (all dropped) still has offsets to commit
        except KafkaException as e:
            self._recover(e.args[0], "beginning a transaction")
        for tp, off in offsets.items():
            self._offsets[tp] = max(self._offsets.get(tp, -1), off)
        self._batches += 1

    def service(self, idle: bool) -> None:
        if self._stale and not self._open:
            self._rebuild()
        self.producer.poll(0)
        if self._open and (idle or (time.monotonic() - self._opened_at) * 1000 >= self.transaction_ms):
            self.commit()

    def backlogged(self) -> bool:
        return False

    def settle(self) -> None:
        """Commit what is done before pausing for an outage (an open transaction would time out)."""
        if self._open:
            self.commit()

    def on_revoke(self) -> None:
        """In the rebalance callback: one bounded attempt to commit before the partitions move; if it fails the
        transaction is aborted and the new owner starts at the committed offsets (nothing to rewind here)."""
        if self._open:
            with contextlib.suppress(Rewound):
                self.commit(rewind=False, retry_for_s=0.0)

    def close(self) -> None:
        if self._open:
            self.commit()

    # ---- transactions ------------------------------------------------------------------------------
    def _begin(self) -> None:
        if self._open:
            return
        if self._stale:
            self._rebuild()
        self.producer.begin_transaction()
        self._open, self._opened_at = True, time.monotonic()

    def commit(self, rewind: bool = True, retry_for_s: float = RETRY_FOR_S) -> None:
        """send_offsets_to_transaction + commit_transaction; retriable errors are retried for retry_for_s."""
        offsets = [TopicPartition(t, p, o) for (t, p), o in self._offsets.items()]
        deadline = time.monotonic() + retry_for_s
        step = "sending offsets"
        while True:
            try:
                if offsets and step == "sending offsets":
                    metadata = self.consumer.consumer_group_metadata()
                    self._bounded(self.producer.send_offsets_to_transaction, offsets, metadata, self.CALL_TIMEOUT_S)
                step = "committing"
                self._bounded(self.producer.commit_transaction, self.CALL_TIMEOUT_S)
                break
            except KafkaException as e:
                err: KafkaError = e.args[0]
                if err.retriable() and time.monotonic() < deadline:
                    continue
                self._recover(err, f"{step} the transaction", rewind)
        self.committed_batches += self._batches
        self._reset()

    def _bounded(self, call: Callable[..., Any], *args: Any) -> None:
        """`call(*args)` in a helper thread; a KafkaException it raises is raised here. One still running
        CALL_TIMEOUT_S after its own timeout raises a fatal KafkaError (_TIMED_OUT): the producer is stuck."""
        done = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            try:
                call(*args)
            except BaseException as e:  # handed to the caller's thread
                failure.append(e)
            finally:
                done.set()

        threading.Thread(target=run, name="txn-call", daemon=True).start()
        if not done.wait(2 * self.CALL_TIMEOUT_S + 5):
            stuck = KafkaError(KafkaError._TIMED_OUT, f"{call.__name__} did not return: producer stuck", fatal=True)
            raise KafkaException(stuck)
        if failure:
            raise failure[0]

    def _reset(self) -> None:
        self._open = False
        self._offsets = {}
        self._batches = 0

    def _recover(self, err: KafkaError, doing: str, rewind: bool = True) -> NoReturn:
        """Abort the transaction (or mark the producer stale), rewind the consumer, raise Rewound."""
        self.aborted += 1
        self.log(
            f"transaction failed while {doing} ({err.name()}: {err.str()}); scoring again from the committed offsets"
        )
        if err.txn_requires_abort():
            try:
                self._bounded(self.producer.abort_transaction, self.CALL_TIMEOUT_S)
            except KafkaException:
                self._stale = True
        else:  # fatal, or still failing after the retries: a new producer fences this one and its transaction
            self._stale = True
        self._reset()
        if rewind:
            if self._stale:
                self._rebuild()
            self._rewind()
        raise Rewound(err.str())

    def _rebuild(self) -> None:
        now = time.monotonic()
        self._rebuilds = [t for t in self._rebuilds if now - t < self.REBUILD_WINDOW_S] + [now]
        if len(self._rebuilds) > self.MAX_REBUILDS:
            raise LoopError(f"the transactional producer failed {len(self._rebuilds)} times in a row; stopping")
        self.log("a new transactional producer fences the failed one (its transaction is aborted)")
        self._abandoned.append(self.producer)  # not purged or destroyed: a call may still be stuck in it
        self.producer = self._new_producer()
        self._stale = False

    # the group coordinator moving (its broker died, froze or was cut off) answers committed() with these for a
    # while; the scorer must wait for the new coordinator, not die (found by the replication matrix's isolation)
    COORDINATOR_MOVING = frozenset(
        {
            KafkaError.NOT_COORDINATOR,
            KafkaError.COORDINATOR_NOT_AVAILABLE,
            KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
            KafkaError.UNSTABLE_OFFSET_COMMIT,
            KafkaError.REQUEST_TIMED_OUT,
            KafkaError._TIMED_OUT,
            KafkaError._TRANSPORT,
            KafkaError._WAIT_COORD,
            KafkaError._ALL_BROKERS_DOWN,
        }
    )

    def _committed(self, assigned: list[TopicPartition], retry_for_s: float = 2 * RETRY_FOR_S) -> list[TopicPartition]:
        """The committed offsets of `assigned`, retried while the coordinator moves (up to `retry_for_s`)."""
        deadline = time.monotonic() + retry_for_s
        while True:
            try:
                return list(self.consumer.committed(assigned, timeout=self.CALL_TIMEOUT_S))
            except KafkaException as e:
                err: KafkaError = e.args[0]
                if (err.code() in self.COORDINATOR_MOVING or err.retriable()) and time.monotonic() < deadline:
                    time.sleep(0.5)
                    continue
                raise LoopError(f"cannot read the committed offsets after an aborted transaction: {e}") from None

    def _rewind(self) -> None:
        """Send every assigned partition back to its committed offset (the start when none is committed)."""
        assigned = self.consumer.assignment()
        if not assigned:
            return
        committed = self._committed(assigned)
        for tp in committed:
            if tp.offset < 0:
                tp.offset = OFFSET_BEGINNING
            try:
                self.consumer.seek(tp)
            except KafkaException as e:
                raise LoopError(f"cannot rewind {tp.topic}/{tp.partition} after an aborted transaction: {e}") from None
