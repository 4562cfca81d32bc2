"""The measurer: consumes the output and dead-letter topics, matches results to inputs by record id.

Latency is end to end from the *intended* send time (HDR histogram, microsecond resolution): a scorer
that stalls shows its stall in every record that queued behind it, as a user would see it. It splits
into queueing (intended -> consumed by the scorer), scoring (consumed -> scored, batch wait included)
and delivery (scored -> received here). Accuracy is measured on the same events: each result against the
bundle's reference prediction for the row it was sent (every output: a multiclass result's every class
probability), and the task's quality figures against the labels, for the results and for the reference
predictions of the same rows (harness/scoring/quality.py: AUC; log-loss and accuracy; RMSE and MAE).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import orjson
from hdrh.histogram import HdrHistogram

from adapters.tasks import TaskSpec
from harness.kafka.config import KafkaTarget
from harness.kafka.topics import partitions_when_listed
from harness.results.point import Accuracy, Counts, Measurement, Percentiles, Throughput
from harness.scoring import quality, wire

HDR_MAX_US = 3_600_000_000  # one hour
PERCENTILES = (0.0, 10.0, 25.0, 50.0, 75.0, 90.0, 95.0, 99.0, 99.5, 99.9, 99.95, 99.99, 99.999, 100.0)


@dataclass
class PointSpec:
    prefix: str
    t0_ns: int
    warmup_s: float
    duration_s: float
    n_sent: int = 0
    offsets_s: np.ndarray | None = None  # the schedule: intended = t0 + offset[seq] when a result lacks the header

    def intended_ns(self, seq: int) -> int | None:
        if self.offsets_s is None or not 0 <= seq < len(self.offsets_s):
            return None
        return self.t0_ns + int(self.offsets_s[seq] * 1e9)


@dataclass
class _Acc:
    spec: PointSpec
    seen: set[int] = field(default_factory=set)
    duplicates: int = 0
    dlq: set[int] = field(default_factory=set)
    dlq_reasons: dict[str, int] = field(default_factory=dict)
    seq: list[int] = field(default_factory=list)
    intended: list[int] = field(default_factory=list)
    consumed: list[int] = field(default_factory=list)
    scored: list[int] = field(default_factory=list)
    received: list[int] = field(default_factory=list)
    score: list[Any] = field(default_factory=list)  # a float, or a multiclass result's (k,) probabilities
    model: list[str] = field(default_factory=list)  # the `model` header of each result ("" without one)
    where: list[tuple[int, int]] = field(default_factory=list)  # (partition, offset) of each result
    last_progress: float = field(default_factory=time.monotonic)


class Measurer:
    def __init__(
        self,
        target: KafkaTarget,
        output_topic: str,
        dlq_topic: str,
        encoding: wire.Encoding,
        reference: np.ndarray,
        labels: np.ndarray,
        result_format: Literal["wire", "v2"] = "wire",
        task: TaskSpec | None = None,
    ) -> None:
        from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

        self.encoding = encoding
        self.task = task or TaskSpec()  # the bundle's (a binary model when not given)
        self.results = wire.ResultCodec(self.task, encoding)
        self.result_format = result_format
        self.reference = reference
        self.labels = labels
        self.n_rows = len(reference)
        self.dlq_topic = dlq_topic
        self._points: dict[str, _Acc] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.consumer = Consumer(
            target.client_config(
                **{
                    "group.id": f"measurer-{output_topic}",
                    "enable.auto.commit": False,
                    "fetch.wait.max.ms": 100,  # the broker answers as soon as a result arrives (loop.py)
                    # after a pause (another contestant's turn) the next fetch must not wait: librdkafka's
                    # default (1,000 ms) delayed the first results of a load window by up to 1.5 s, which
                    # showed as latency of the strategy (delivery p99 450-1,100 ms in half the windows)
                    "fetch.queue.backoff.ms": 1,
                    # an exactly-once scorer's aborted transactions are not results
                    "isolation.level": "read_committed",
                }
            )
        )
        listed = partitions_when_listed(self.consumer, [output_topic, dlq_topic])
        self.consumer.assign([TopicPartition(t, p, OFFSET_BEGINNING) for t, ps in listed.items() for p in ps])
        self._paused = self._want_paused = False
        self._thread = threading.Thread(target=self._run, name="measurer", daemon=True)
        self.errors: list[str] = []

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(10)
        self.consumer.close()

    def pause(self) -> None:
        """Stop fetching (a measurer that waits for another contestant's turn costs the broker nothing). The
        consumer's own thread pauses it: librdkafka's pause, called from another thread while this one polls,
        can block until the poll returns."""
        self._set_paused(True)

    def resume(self) -> None:
        self._set_paused(False)

    def _set_paused(self, paused: bool) -> None:
        if not self._thread.is_alive():  # not started (or closed): apply it here
            parts = self.consumer.assignment()
            (self.consumer.pause if paused else self.consumer.resume)(parts)
            self._paused = paused
            return
        self._want_paused = paused
        deadline = time.monotonic() + 10
        while self._paused != paused and time.monotonic() < deadline:
            time.sleep(0.002)

    def _apply_pause(self) -> None:
        want = self._want_paused
        if want != self._paused:
            parts = self.consumer.assignment()
            (self.consumer.pause if want else self.consumer.resume)(parts)
            self._paused = want

    def add_point(self, spec: PointSpec) -> None:
        with self._lock:
            self._points[spec.prefix] = _Acc(spec)

    # ---- consuming -------------------------------------------------------------------------------
    def _run(self) -> None:
        dlq = self.dlq_topic
        models: dict[bytes, str] = {}  # one str per model id (interned)
        while not self._stop.is_set():
            self._apply_pause()
            first = self.consumer.poll(0.05)  # returns at the first record (consume(n) would wait for n)
            if first is None:
                continue
            msgs = [first, *self.consumer.consume(5000, timeout=0)]
            t_recv = wire.now_ns()
            with self._lock:
                for m in msgs:
                    if m.error() is not None:
                        continue
                    h = wire.headers_dict(m.headers())
                    rid = (h.get(wire.H_RID) or m.key() or b"").decode("utf-8", "replace")
                    parsed = wire.parse_record_id(rid)
                    acc = self._points.get(parsed[0]) if parsed else None
                    if acc is None or parsed is None:
                        continue
                    seq = parsed[1]
                    acc.last_progress = time.monotonic()
                    if m.topic() == dlq:
                        acc.dlq.add(seq)
                        reason = h.get(wire.H_DLQ_REASON, b"").decode("utf-8", "replace")
                        acc.dlq_reasons[reason] = acc.dlq_reasons.get(reason, 0) + 1
                        continue
                    if seq in acc.seen:
                        acc.duplicates += 1
                        continue
                    acc.seen.add(seq)
                    try:
                        score = self._score(m.value() or b"")
                        intended = int(h[wire.H_INTENDED]) if wire.H_INTENDED in h else acc.spec.intended_ns(seq)
                        if intended is None:
                            raise KeyError(wire.H_INTENDED)
                        acc.intended.append(intended)
                        acc.consumed.append(int(h.get(wire.H_CONSUMED, b"-1")))
                        acc.scored.append(int(h.get(wire.H_SCORED, b"-1")))
                    except (KeyError, ValueError, TypeError, IndexError) as e:
                        self.errors.append(f"result {rid} is malformed: {e}")
                        continue
                    acc.seq.append(seq)
                    acc.received.append(t_recv)
                    acc.score.append(score)
                    acc.model.append(models.setdefault(h.get("model", b""), h.get("model", b"").decode()))
                    acc.where.append((int(m.partition() or 0), int(m.offset() or 0)))

    def _score(self, value: bytes) -> Any:
        if self.result_format == "v2":  # an Open Inference Protocol response: the first output's first value
            return float(orjson.loads(value)["outputs"][0]["data"][0])
        return self.results.decode(value)

    # ---- waiting ---------------------------------------------------------------------------------
    def progress(self, prefix: str) -> tuple[int, int, float | None]:
        """(results, dead letters, live p99 ms over the last 2000 results)"""
        with self._lock:
            acc = self._points[prefix]
            n, d = len(acc.seen), len(acc.dlq)
            tail = min(2000, len(acc.received))
            if tail == 0:
                return n, d, None
            rec = np.asarray(acc.received[-tail:], dtype=np.int64)
            it = np.asarray(acc.intended[-tail:], dtype=np.int64)
        return n, d, float(np.percentile((rec - it) / 1e6, 99))

    def timeline(self, prefix: str, window_s: float) -> list[tuple[float, int, float | None, float | None]]:
        """Per window of intended send time since the point's start: (start s, results, p50 ms, p99 ms)."""
        with self._lock:
            acc = self._points[prefix]
            t0 = acc.spec.t0_ns
            it = np.asarray(acc.intended, dtype=np.int64)
            rec = np.asarray(acc.received, dtype=np.int64)
        out: list[tuple[float, int, float | None, float | None]] = []
        if len(it) == 0:
            return out
        idx = ((it - t0) / 1e9 // window_s).astype(np.int64)
        lat = (rec - it) / 1e6
        for w in range(int(idx.max()) + 1):
            sel = lat[idx == w]
            if len(sel):
                out.append((w * window_s, len(sel), float(np.percentile(sel, 50)), float(np.percentile(sel, 99))))
            else:
                out.append((w * window_s, 0, None, None))
        return out

    def model_timeline(self, prefix: str, window_s: float) -> list[tuple[float, dict[str, int], float | None]]:
        """Per window of intended send time: (start s, results per model id, mean score)."""
        with self._lock:
            acc = self._points[prefix]
            t0 = acc.spec.t0_ns
            it = np.asarray(acc.intended, dtype=np.int64)
            models = list(acc.model)
            scores = np.asarray(acc.score, dtype=np.float64)
        if scores.ndim == 2:  # multiclass: the mean probability of the most probable class
            scores = scores.max(axis=1)
        out: list[tuple[float, dict[str, int], float | None]] = []
        if len(it) == 0:
            return out
        idx = ((it - t0) / 1e9 // window_s).astype(np.int64)
        for w in range(int(idx.max()) + 1):
            sel = np.nonzero(idx == w)[0]
            counts: dict[str, int] = {}
            for i in sel:
                counts[models[i]] = counts.get(models[i], 0) + 1
            out.append((w * window_s, counts, float(scores[sel].mean()) if len(sel) else None))
        return out

    def first_scored_by(self, prefix: str, model: str) -> int | None:
        """When the first result of `model` was scored (its t_scored_ns, wall clock), or None."""
        with self._lock:
            acc = self._points[prefix]
            times = [t for t, m in zip(acc.scored, acc.model, strict=False) if m == model and t > 0]
        return min(times) if times else None

    def model_order_breaks(self, prefix: str, old: str, new: str) -> int:
        """Results of `old` that follow one of `new` in the same output partition (a swap must be clean)."""
        with self._lock:
            acc = self._points[prefix]
            rows = sorted(zip(acc.where, acc.model, strict=True))
        breaks, seen_new = 0, set()
        for (partition, _), model in rows:
            if model == new:
                seen_new.add(partition)
            elif model == old and partition in seen_new:
                breaks += 1
        return breaks

    def forget(self, prefix: str) -> None:
        """Drop a point's records once its figures are taken. A run of rounds measures millions of results;
        kept, their Python objects made the collector's full passes in this process last 0.5-1.5 s, during
        which the measurer's thread read nothing — the results of a load window then looked 0.5-1.5 s late
        ("delivery" latency that was the harness's own). Results of a forgotten point are ignored."""
        with self._lock:
            self._points.pop(prefix, None)

    def duplicates(self, prefix: str) -> int:
        with self._lock:
            return self._points[prefix].duplicates

    def latencies_ms(self, prefix: str) -> np.ndarray:
        """End-to-end latency (ms, from the intended send time) of the point's results sent after its warm-up."""
        with self._lock:
            acc = self._points[prefix]
            intended = np.asarray(acc.intended, dtype=np.int64)
            received = np.asarray(acc.received, dtype=np.int64)
            warm_end = acc.spec.t0_ns + int(acc.spec.warmup_s * 1e9)
        keep = intended >= warm_end
        return (received[keep] - intended[keep]) / 1e6

    def received_span(self, prefix: str) -> tuple[int, int, int]:
        """(results, first received ns, last received ns) of a point."""
        with self._lock:
            rec = self._points[prefix].received
            return len(rec), (rec[0] if rec else 0), (rec[-1] if rec else 0)

    def drained(self, prefix: str, n_sent: int, idle_timeout_s: float) -> bool:
        """Every sent record has a result or a dead letter, or nothing arrived for idle_timeout_s."""
        with self._lock:
            acc = self._points[prefix]
            done = len(acc.seen | acc.dlq) >= n_sent
            idle = time.monotonic() - acc.last_progress
        return done or idle > idle_timeout_s

    def wait_drained(self, prefix: str, n_sent: int, drain_timeout_s: float) -> None:
        """Until every sent record has a result or a dead letter, or nothing arrived for drain_timeout_s."""
        while not self.drained(prefix, n_sent, drain_timeout_s):
            time.sleep(0.05)

    # ---- summary ---------------------------------------------------------------------------------
    def summary(
        self,
        prefix: str,
        accuracy_tolerance: float,
        window_s: float,
        stable_windows: int,
        stable_tolerance_pct: float,
        offered_ns: np.ndarray | None = None,
        sent: int | None = None,
    ) -> Measurement:
        """Figures of one point. `offered_ns`: the intended send times of every record sent (default: those
        of the records that came back), to judge whether the scorer kept pace window by window. `sent`: how
        many records the generator actually sent (default: as many as the point planned); records neither
        scored nor dead-lettered are lost."""
        with self._lock:
            acc = self._points[prefix]
            spec = acc.spec
            seq = np.asarray(acc.seq, dtype=np.int64)
            intended = np.asarray(acc.intended, dtype=np.int64)
            consumed = np.asarray(acc.consumed, dtype=np.int64)
            scored = np.asarray(acc.scored, dtype=np.int64)
            received = np.asarray(acc.received, dtype=np.int64)
            score = np.asarray(acc.score, dtype=np.float64).reshape(len(acc.score), *self.reference.shape[1:])
            unique = len(acc.seen)
            dlq = len(acc.dlq - acc.seen)
            dup = acc.duplicates
            reasons = dict(acc.dlq_reasons)
        warm_end = spec.t0_ns + int(spec.warmup_s * 1e9)
        run_end = spec.t0_ns + int(spec.duration_s * 1e9)
        measured = intended >= warm_end
        latency, hdr = latency_figures((received - intended)[measured])
        n_sent = spec.n_sent if sent is None else sent
        return Measurement(
            counts=Counts(
                sent=n_sent,
                scored=unique,
                duplicates=dup,
                dead_lettered=dlq,
                lost=max(0, n_sent - unique - dlq),
                measured=int(measured.sum()),
            ),
            latency_ms=latency,
            queueing_ms=_pct_ms((consumed - intended)[measured & (consumed > 0)]),
            scoring_ms=_pct_ms((scored - consumed)[measured & (consumed > 0) & (scored > 0)]),
            delivery_ms=_pct_ms((received - scored)[measured & (scored > 0)]),
            hdr_percentiles=hdr,
            throughput=throughput_windows(
                received,
                intended if offered_ns is None else offered_ns,
                (warm_end, run_end),
                window_s,
                stable_windows,
                stable_tolerance_pct,
            ),
            accuracy=self._accuracy(seq[measured], score[measured], accuracy_tolerance),
            dead_letter_reasons=reasons,
        )

    def _accuracy(self, seq: np.ndarray, score: np.ndarray, tolerance: float) -> Accuracy:
        """Each result against the reference prediction of the row that was sent (row = seq % rows; every output),
        and the task's quality figures for the results and for the reference on the same rows."""
        return accuracy_of(self.task, score, self.reference[seq % self.n_rows], self.labels[seq % self.n_rows],
                           tolerance) if len(seq) else Accuracy(tolerance=tolerance, task=self.task.task)  # fmt: skip


def latency_figures(e2e_ns: np.ndarray) -> tuple[Percentiles, list[tuple[float, float | None]]]:
    """End-to-end latencies (ns) into an HDR histogram (µs resolution): the percentiles (ms) and the
    percentile distribution."""
    if len(e2e_ns) == 0:
        return Percentiles(), []
    hist = HdrHistogram(1, HDR_MAX_US, 3)
    for v in e2e_ns / 1e3:
        hist.record_value(max(1, int(v)))

    def at(q: float) -> float:
        return round(hist.get_value_at_percentile(q) / 1e3, 4)

    lat = Percentiles(
        p50=at(50),
        p90=at(90),
        p95=at(95),
        p99=at(99),
        p999=at(99.9),
        max=round(hist.get_max_value() / 1e3, 4),
        mean=round(hist.get_mean_value() / 1e3, 4),
    )
    return lat, [(q, hist.get_value_at_percentile(q) / 1e3) for q in PERCENTILES]


def _pct_ms(values_ns: np.ndarray) -> Percentiles:
    if len(values_ns) == 0:
        return Percentiles()
    return Percentiles(
        p50=round(float(np.percentile(values_ns, 50)) / 1e6, 4), p99=round(float(np.percentile(values_ns, 99)) / 1e6, 4)
    )


def throughput_windows(
    received_ns: np.ndarray,
    offered_ns: np.ndarray,
    span_ns: tuple[int, int],
    window_s: float,
    stable_windows: int,
    stable_tolerance_pct: float,
) -> Throughput:
    """Results per window of the measured span, by received time, against what was offered per window.

    Stable = the scorer kept pace with what was offered in each of the last `stable_windows` windows (within
    the tolerance in sum, twice the tolerance per window): for a constant rate that is "the windows agree";
    for steps and bursts the offered rate itself varies."""
    start, end = span_ns
    n_win = max(1, int((end - start) / 1e9 / window_s))
    edges = start + (np.arange(n_win + 1) * window_s * 1e9).astype(np.int64)
    counts, _ = np.histogram(received_ns, bins=edges)
    offered_counts, _ = np.histogram(offered_ns, bins=edges)
    tail = np.asarray(counts[-stable_windows:], dtype=np.float64)
    want = np.asarray(offered_counts[-stable_windows:], dtype=np.float64)
    stable = bool(
        len(tail) >= 2
        and want.sum() > 0
        and (np.abs(tail.sum() - want.sum()) / want.sum() * 100) <= stable_tolerance_pct
        and (np.abs(tail - want) / np.maximum(want, 1) * 100).max() <= 2 * stable_tolerance_pct
    )
    windows = (counts / window_s).tolist()
    return Throughput(
        mean_per_s=round(float(np.mean(windows)), 2) if windows else 0.0,
        windows_per_s=windows,
        offered_windows_per_s=(offered_counts / window_s).tolist(),
        window_s=window_s,
        stable=stable,
    )


def accuracy_of(
    task: TaskSpec, outputs: np.ndarray, reference: np.ndarray, labels: np.ndarray, tolerance: float
) -> Accuracy:
    """The Accuracy of timed events: `outputs` and `reference` ((n,) or (n, k)) of the same rows, their labels.
    share_beyond_tolerance counts rows with any output beyond `tolerance`."""
    if len(outputs) == 0:
        return Accuracy(tolerance=tolerance, task=task.task)
    diff = np.abs(np.asarray(outputs, dtype=np.float64) - np.asarray(reference, dtype=np.float64))
    row_diff = diff if diff.ndim == 1 else diff.max(axis=1)
    mine = quality.quality(task.task, labels, outputs)
    ref = quality.quality(task.task, labels, reference)
    figures: dict[str, float | None] = {}
    for name in mine:
        figures[name] = _round(mine[name])
        figures[f"{name}_reference"] = _round(ref[name])
    return Accuracy(
        max_abs_diff=float(row_diff.max()),
        share_beyond_tolerance=float((row_diff > tolerance).mean()),
        tolerance=tolerance,
        task=task.task,
        **figures,
    )


def _round(v: float | None) -> float | None:
    return None if v is None else round(float(v), 6)
