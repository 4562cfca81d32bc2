"""`harness monitor`: the model monitor as a Kafka application.

    results topic ─┐
    dead letters  ─┼─► per window of `window_s`: PSI and KS of the scores against the bundle's reference
    feedback      ─┘   predictions, results/s, latency p99 (from t_intended_ns), dead-letter rate, live quality
                       ─► rules ─► alert events (JSON) on the alerts topic ─► Prometheus metrics (/metrics)

The figures follow the bundle's task (adapters/tasks.py; quality figures from harness/scoring/quality.py):
    binary      drift of P(class 1); live AUC, auc_drop = reference AUC - live AUC
    regression  drift of the predicted values; live RMSE and MAE, rmse_ratio = live RMSE / reference RMSE
    multiclass  drift of each class's probability (score_psi / score_ks: the largest over the classes); live
                log-loss and accuracy, accuracy_drop = reference accuracy - live accuracy
The reference figures are the bundle's reference predictions against its reference labels.

Feedback records carry a label for a scored record, found by its record id (`rid`) or its source
(`src` = topic/partition/offset, which every result carries): value {"rid": ..., "label": <label>} or
{"src": ..., "label": ...}, or the id as the record key and {"label": ...} as the value. The label is 0 or 1
(binary), the true value (regression), or the class as the manifest names it (multiclass; a number is read as
its text). A label that arrives before its result waits up to `join_window_s`; one that never finds its result,
or that cannot be parsed, is counted (metrics and window figures), never a stop.
"""

from __future__ import annotations

import collections
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

from adapters.tasks import TaskSpec
from harness.kafka.config import KafkaTarget
from harness.monitoring.drift import ks, psi
from harness.monitoring.metrics import MonitorMetrics
from harness.monitoring.rules import Rule, RuleState
from harness.scoring import quality, wire
from harness.scoring.alerts import Alert, KafkaAlertSink
from harness.scoring.quality import parse_label
from harness.signals import on_stop_signals

MAX_REMEMBERED_SCORES = 1_000_000  # scores kept for joining labels (oldest forgotten first)
MIN_AUC_LABELS = 50


@dataclass
class MonitorConfig:
    results_topic: str
    dlq_topic: str | None = None
    feedback_topic: str | None = None
    alerts_topic: str | None = None
    encoding: wire.Encoding = "json"
    window_s: float = 10.0
    join_window_s: float = 300.0
    group: str | None = None

    @property
    def group_id(self) -> str:
        return self.group or f"monitor-{self.results_topic}"


@dataclass
class WindowFigures:
    """What one window saw. Figures without enough data are None."""

    start_ns: int
    end_ns: int
    results: int = 0
    dead_letters: int = 0
    throughput_per_s: float = 0.0
    latency_p99_ms: float | None = None
    dead_letter_rate: float | None = None
    score_psi: float | None = None
    score_ks: float | None = None
    labels: int = 0
    live_auc: float | None = None
    live_logloss: float | None = None  # binary: of P(class 1); multiclass: mean -ln p[true class]
    auc_drop: float | None = None
    live_accuracy: float | None = None
    accuracy_drop: float | None = None
    live_rmse: float | None = None
    live_mae: float | None = None
    rmse_ratio: float | None = None
    feedback_unjoined: int = 0
    feedback_malformed: int = 0
    model_ids: list[str] = field(default_factory=list)
    alerts: list[str] = field(default_factory=list)
    task: str = "binary"

    def figures(self) -> dict[str, float | None]:
        return {
            "score_psi": self.score_psi,
            "score_ks": self.score_ks,
            "latency_p99_ms": self.latency_p99_ms,
            "dead_letter_rate": self.dead_letter_rate,
            "throughput_per_s": self.throughput_per_s,
            "auc_drop": self.auc_drop,
            "live_auc": self.live_auc,
            "live_accuracy": self.live_accuracy,
            "accuracy_drop": self.accuracy_drop,
            "live_logloss": self.live_logloss,
            "live_rmse": self.live_rmse,
            "live_mae": self.live_mae,
            "rmse_ratio": self.rmse_ratio,
        }

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class _Window:
    start_ns: int
    scores: list[Any] = field(default_factory=list)  # floats, or a multiclass model's (k,) probabilities
    latencies_ms: list[float] = field(default_factory=list)
    dead_letters: int = 0
    pairs: list[tuple[Any, Any]] = field(default_factory=list)  # (output, label)
    unjoined: int = 0
    malformed: int = 0
    model_ids: set[str] = field(default_factory=set)


def _iso(ns: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns / 1e9)) + f".{int(ns % 1e9 / 1e6):03d}Z"


class Monitor:
    def __init__(
        self,
        target: KafkaTarget,
        cfg: MonitorConfig,
        reference_scores: np.ndarray,
        reference_auc: float | None,
        model_id: str,
        rules: list[Rule],
        metrics: MonitorMetrics | None = None,
        on_window: Callable[[WindowFigures], None] | None = None,
        task: TaskSpec | None = None,
        reference_quality: dict[str, float | None] | None = None,
    ) -> None:
        from confluent_kafka import Consumer, Producer

        self.cfg = cfg
        self.task = task or TaskSpec()
        self.results = wire.ResultCodec(self.task, cfg.encoding)
        self.reference = np.asarray(reference_scores, dtype=np.float64)
        self.reference_auc = reference_auc
        self.reference_quality = dict(reference_quality or {})
        if reference_auc is not None:
            self.reference_quality.setdefault("auc", reference_auc)
        self._class_index = {c: i for i, c in enumerate(self.task.classes)}
        self.model_id = model_id
        self.state = RuleState(rules)
        self.metrics = metrics or MonitorMetrics()
        self.metrics.model_info(model_id)
        self.on_window = on_window
        self._stop = threading.Event()
        self._scores: collections.OrderedDict[str, Any] = collections.OrderedDict()
        self._pending: dict[str, tuple[Any, float]] = {}  # id -> (label, arrived monotonic)
        self.windows: list[WindowFigures] = []
        self.consumer = Consumer(
            target.client_config(
                **{
                    "group.id": cfg.group_id,
                    "enable.auto.commit": True,
                    "auto.offset.reset": "earliest",
                    "isolation.level": "read_committed",
                    "client.id": "harness-monitor",
                }
            )
        )
        topics = [t for t in (cfg.results_topic, cfg.dlq_topic, cfg.feedback_topic) if t]
        self.consumer.subscribe(topics)
        self.producer = Producer(target.client_config(**{"acks": "all", "client.id": "harness-monitor"}))
        self.alerts = KafkaAlertSink(target, cfg.alerts_topic, producer=self.producer)

    def stop(self) -> None:
        self._stop.set()

    def install_signal_handlers(self) -> None:
        on_stop_signals(self._stop.set)

    # ---- the loop ------------------------------------------------------------------------------------
    def run(self, max_windows: int | None = None) -> list[WindowFigures]:
        """Consume and close a window every `window_s`, until stop(), a signal or `max_windows` windows."""
        window_ns = int(self.cfg.window_s * 1e9)
        w = _Window(start_ns=time.time_ns())
        try:
            while not self._stop.is_set():
                for m in self.consumer.consume(1000, timeout=0.2):
                    self._take(m, w)
                now = time.time_ns()
                if now - w.start_ns >= window_ns:
                    self._close(w, now)
                    w = _Window(start_ns=now)
                    if max_windows is not None and len(self.windows) >= max_windows:
                        break
                self.producer.poll(0)
        finally:
            self.producer.flush(10)
            self.consumer.close()
        return self.windows

    def _take(self, m: Any, w: _Window) -> None:
        if m.error() is not None:
            return
        topic = m.topic()
        if topic == self.cfg.feedback_topic:
            self._feedback(m, w)
            return
        if topic == self.cfg.dlq_topic:
            w.dead_letters += 1
            self.metrics.dead_letters.inc()
            return
        h = wire.headers_dict(m.headers())
        try:
            score = self.results.decode(m.value() or b"")
        except (ValueError, KeyError, TypeError):
            return  # not a result this monitor understands (the loop never writes one)
        now = time.time_ns()
        w.scores.append(score)
        self.metrics.results.inc()
        intended = h.get(wire.H_INTENDED)
        if intended and intended.isdigit():
            w.latencies_ms.append((now - int(intended)) / 1e6)
        model = h.get("model")
        if model:
            w.model_ids.add(model.decode("utf-8", "replace"))
        for key in (h.get(wire.H_RID), h.get("src")):
            if key:
                self._remember(key.decode("utf-8", "replace"), score, w)

    def _remember(self, key: str, score: Any, w: _Window) -> None:
        self._scores[key] = score
        if len(self._scores) > MAX_REMEMBERED_SCORES:
            self._scores.popitem(last=False)
        pending = self._pending.pop(key, None)
        if pending is not None:
            w.pairs.append((score, pending[0]))

    def _feedback(self, m: Any, w: _Window) -> None:
        try:
            obj = orjson.loads(m.value() or b"")
            if not isinstance(obj, dict):
                raise ValueError("not an object")
            label = parse_label(self.task, obj["label"], self._class_index)
            key = obj.get("rid") or obj.get("src") or (m.key() or b"").decode("utf-8", "replace")
            if not key:
                raise ValueError("no rid, src or key")
        except (ValueError, KeyError, TypeError, orjson.JSONDecodeError):
            w.malformed += 1
            self.metrics.feedback_malformed.inc()
            return
        score = self._scores.get(str(key))
        if score is None:
            self._pending[str(key)] = (label, time.monotonic())
        else:
            w.pairs.append((score, label))

    # ---- closing a window ------------------------------------------------------------------------------
    def _close(self, w: _Window, end_ns: int) -> WindowFigures:
        cutoff = time.monotonic() - self.cfg.join_window_s
        expired = [k for k, (_, t) in self._pending.items() if t < cutoff]
        for k in expired:
            del self._pending[k]
        w.unjoined += len(expired)
        self.metrics.feedback_unjoined.inc(len(expired))
        f = self.figures(w, end_ns)
        for rule in self.state.judge(f.figures(), f.results):
            self._alert(rule, f)
        self.metrics.observe(f)
        self.windows.append(f)
        if self.on_window is not None:
            self.on_window(f)
        return f

    def figures(self, w: _Window, end_ns: int) -> WindowFigures:
        seconds = max((end_ns - w.start_ns) / 1e9, 1e-9)
        n = len(w.scores)
        scores = np.asarray(w.scores, dtype=np.float64)
        f = WindowFigures(w.start_ns, end_ns, results=n, dead_letters=w.dead_letters, task=self.task.task)
        f.throughput_per_s = round(n / seconds, 2)
        f.dead_letter_rate = w.dead_letters / (n + w.dead_letters) if n + w.dead_letters else None
        if w.latencies_ms:
            f.latency_p99_ms = round(float(np.percentile(w.latencies_ms, 99)), 3)
        if n:
            f.score_psi, f.score_ks = drift(self.reference, scores)
        f.labels, f.feedback_unjoined, f.feedback_malformed = len(w.pairs), w.unjoined, w.malformed
        self._live_quality(f, w.pairs)
        f.model_ids = sorted(w.model_ids) or [self.model_id]
        return f

    def _live_quality(self, f: WindowFigures, pairs: list[tuple[Any, Any]]) -> None:
        """The task's quality on the labels joined in the window (at least MIN_AUC_LABELS of them), and how far it
        is from the reference's."""
        if len(pairs) < MIN_AUC_LABELS:
            return
        outputs = np.asarray([p[0] for p in pairs], dtype=np.float64)
        labels = np.asarray([p[1] for p in pairs])
        live = quality.quality(self.task.task, labels, outputs)
        ref = self.reference_quality

        def r(v: float | None, digits: int = 4) -> float | None:
            return None if v is None or not math.isfinite(v) else round(float(v), digits)

        if self.task.task == "binary":
            f.live_auc = r(live["auc"])
            f.live_logloss = r(quality.binary_log_loss(labels, outputs), 5)
            reference_auc = ref.get("auc")
            if f.live_auc is not None and reference_auc is not None:
                f.auc_drop = round(reference_auc - f.live_auc, 4)
        elif self.task.task == "multiclass":
            f.live_accuracy, f.live_logloss = r(live["accuracy"]), r(live["log_loss"], 5)
            reference_accuracy = ref.get("accuracy")
            if f.live_accuracy is not None and reference_accuracy is not None:
                f.accuracy_drop = round(reference_accuracy - f.live_accuracy, 4)
        else:
            f.live_rmse, f.live_mae = r(live["rmse"], 6), r(live["mae"], 6)
            reference_rmse = ref.get("rmse")
            if f.live_rmse is not None and reference_rmse:
                f.rmse_ratio = round(f.live_rmse / reference_rmse, 4)

    def _alert(self, rule: Rule, f: WindowFigures) -> None:
        value = f.figures()[rule.figure]
        assert value is not None
        alert = Alert(
            rule=rule.name,
            figure=rule.figure,
            value=round(float(value), 6),
            threshold=rule.threshold,
            op=rule.op,
            window_start=_iso(f.start_ns),
            window_end=_iso(f.end_ns),
            window_s=round((f.end_ns - f.start_ns) / 1e9, 3),
            model_id=",".join(f.model_ids),
            message=f"{rule.figure} {value:.4g} {rule.op} {rule.threshold:g} over {len(f.model_ids)} model(s), "
            f"{f.results} results in the window",
        )
        f.alerts.append(rule.name)
        self.metrics.alerts.labels(rule=rule.name).inc()
        self.alerts.send(alert)


def drift(reference: np.ndarray, live: np.ndarray) -> tuple[float, float]:
    """(PSI, KS) of live outputs against the reference: of the one number per result, or, for class probabilities
    ((n, k)), the largest over the classes (the class whose probability moved most)."""
    if reference.ndim == 1:
        return round(psi(reference, live), 4), round(ks(reference, live), 4)
    live = live.reshape(len(live), reference.shape[1])
    per_class = [(psi(reference[:, c], live[:, c]), ks(reference[:, c], live[:, c])) for c in range(reference.shape[1])]
    return round(max(p for p, _ in per_class), 4), round(max(k for _, k in per_class), 4)
