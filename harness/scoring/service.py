"""`harness score` as a service: resolve Kafka, open and check the bundle, load the adapter, run the loop,
and speak the stdout protocol (harness/scoring/protocol.py) to whoever started the process.

The CLI only parses options into `ScoreSettings`; tests and other programs can call `run_score` directly.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from adapters.base import Adapter
from adapters.bundle import Bundle
from harness.kafka.config import DURABLE_PRODUCER, KafkaTarget
from harness.scoring import protocol, wire
from harness.scoring.errors import ScoringSetupError
from harness.scoring.loop import GUARANTEES, Guarantee, LoopConfig, LoopStats

if TYPE_CHECKING:
    from harness.scoring.learning import FeedbackLearner
    from harness.scoring.operations import Operations


@dataclass
class ScoreSettings:
    bundle: Path
    adapter: str
    input_topic: str
    output_topic: str
    group: str
    dlq_topic: str | None = None
    encoding: str = "json"
    batch_max: int = 64
    batch_wait_ms: float = 5.0
    options: list[str] = field(default_factory=list)
    scorer_name: str | None = None
    max_records: int | None = None
    idle_exit_s: float | None = None
    bootstrap: str | None = None
    client_config: Path | None = None
    guarantee: str = "at-least-once"
    instance_id: str | None = None
    transaction_ms: float = 100.0
    outage_limit_s: float = 300.0
    engine_timeout_s: float = 120.0
    metrics_port: int | None = None
    model_topic: str | None = None
    model_name: str | None = None
    shadow_topic: str | None = None
    alerts_topic: str | None = None
    feedback_topic: str | None = None
    checkpoint_file: Path | None = None
    checkpoint_topic: str | None = None
    checkpoint_every_s: float = 10.0
    join_window_s: float = 300.0
    cold_start: bool = False


def check_guarantee(name: str) -> Guarantee:
    if name not in GUARANTEES:
        raise ScoringSetupError(f"unknown guarantee {name!r}; valid: {', '.join(GUARANTEES)}")
    return name  # type: ignore[return-value]


def loop_config(s: ScoreSettings) -> LoopConfig:
    """The loop's settings from the command's, each checked (one `error:` line for a bad one)."""
    try:
        enc = wire.check_encoding(s.encoding)
    except ValueError as e:
        raise ScoringSetupError(str(e)) from None
    return LoopConfig(
        input_topic=s.input_topic,
        output_topic=s.output_topic,
        group=s.group,
        dlq_topic=s.dlq_topic,
        encoding=enc,
        batch_max=s.batch_max,
        batch_wait_ms=s.batch_wait_ms,
        scorer_name=s.scorer_name or s.adapter,
        guarantee=check_guarantee(s.guarantee),
        instance_id=s.instance_id,
        transaction_ms=s.transaction_ms,
        outage_limit_s=s.outage_limit_s,
        engine_timeout_s=s.engine_timeout_s or None,
    )


def canary_row(bundle: Bundle) -> np.ndarray | None:
    """The bundle's first reference row: a row known to score, to tell a broken engine from broken records."""
    try:
        X, _, _ = bundle.reference()
    except Exception:  # no reference rows in this bundle: the loop uses the first row that scores instead
        return None
    return X[0] if len(X) else None


def operations(
    s: ScoreSettings, target: KafkaTarget, b: Bundle, load: Callable[[Bundle], Adapter], model: Adapter
) -> Operations:
    """Metrics and health (--metrics-port), and model updates from the model topic (--model-topic)."""
    from harness.scoring.metrics import Health, MetricsServer, ScoreMetrics
    from harness.scoring.models import ModelUpdates
    from harness.scoring.operations import Operations

    metrics = health = None
    if s.metrics_port is not None:
        metrics, health = ScoreMetrics(), Health()
        MetricsServer(s.metrics_port, metrics, health).start()
    updates = None
    if s.model_topic:
        if not s.model_name:
            raise ScoringSetupError("--model-topic needs --model-name (the record key this scorer follows)")
        alerts = AlertSink(target, s.alerts_topic, b.model_id)

        def refused(version: object, why: str) -> None:
            if metrics is not None:
                metrics.refused.inc()
            alerts.refused(version, why)

        updates = ModelUpdates(target, s.model_topic, s.model_name, load, b.model_id, on_refused=refused).start()
    learner = None
    if s.feedback_topic:
        learner = _learner(s, target, model)
    return Operations(b.model_id, model.name, metrics, health, updates, s.shadow_topic, log=_log, learner=learner)


def _learner(s: ScoreSettings, target: KafkaTarget, model: Adapter) -> FeedbackLearner:
    from harness.scoring.learning import CheckpointStore, FeedbackLearner

    if not callable(getattr(model, "learn", None)) or not callable(getattr(model, "state", None)):
        raise ScoringSetupError(f"--feedback-topic needs an adapter that learns (online); {s.adapter!r} does not")
    store = CheckpointStore(target, s.checkpoint_file, s.checkpoint_topic, key=f"{s.group}/{s.adapter}")
    return FeedbackLearner(
        target,
        model,
        s.feedback_topic or "",
        s.group,
        store,
        join_window_s=s.join_window_s,
        checkpoint_every_s=s.checkpoint_every_s,
        cold_start=s.cold_start,
        log=_log,
    )


def _log(message: str) -> None:
    import sys

    print(f"harness score: {message}", file=sys.stderr, flush=True)


class AlertSink:
    """A refused model version: one log line, and an alert event on the alerts topic when there is one."""

    def __init__(self, target: KafkaTarget, topic: str | None, model_id: str) -> None:
        self.target, self.topic, self.model_id = target, topic, model_id
        self._producer: Any = None

    def refused(self, version: object, why: str) -> None:
        from harness.monitoring.rules import Alert

        published = getattr(version, "model_id", "?")
        _log(f"model version {published} refused: {why}; the model in use keeps scoring")
        if not self.topic:
            return
        from confluent_kafka import Producer

        if self._producer is None:
            self._producer = Producer(self.target.client_config(**DURABLE_PRODUCER))
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        alert = Alert(
            rule="ModelVersionRefused",
            figure="model_version",
            value=1.0,
            threshold=0.0,
            op=">",
            window_start=now,
            window_end=now,
            window_s=0.0,
            model_id=self.model_id,
            message=f"version {published} refused: {why}",
        )
        self._producer.produce(self.topic, key=b"ModelVersionRefused", value=alert.model_dump_json().encode())
        self._producer.flush(10)


def run_score(s: ScoreSettings) -> LoopStats:
    """Score until a signal, `max_records` or `idle_exit_s`; print READY at each assignment and STATS at exit."""
    from adapters.base import parse_options
    from adapters.registry import adapter_class
    from harness.kafka.config import resolve_kafka
    from harness.kafka.topics import ensure_topics, partitions_of
    from harness.scoring.loop import ScoringLoop

    cfg = loop_config(s)
    target = resolve_kafka(s.bootstrap, s.client_config)
    n_parts = partitions_of(target, s.input_topic)
    if n_parts is None:
        raise ScoringSetupError(f"input topic {s.input_topic!r} does not exist at {target.bootstrap}")
    ensure_topics(target, {s.output_topic: n_parts, cfg.dlq: n_parts})
    if s.shadow_topic:
        ensure_topics(target, {s.shadow_topic: n_parts})
    if s.alerts_topic:
        ensure_topics(target, {s.alerts_topic: 1})
    b = Bundle.open(s.bundle)
    options = parse_options(s.options)
    model = adapter_class(s.adapter).load(b, **options)
    ops = operations(s, target, b, lambda bundle: adapter_class(s.adapter).load(bundle, **options), model)
    loop = ScoringLoop(
        target,
        model,
        b.feature_names,
        cfg,
        on_assigned=lambda parts: protocol.emit(protocol.ready_line(parts)),
        canary=canary_row(b),
        ops=ops,
    )
    # Everything loaded so far (the adapter's libraries: onnx, sklearn, JPype, ...) lives as long as the
    # process. Freezing it keeps the collector's full passes from walking those objects: without it a
    # full collection paused the loop for 100-350 ms (seen as p99 spikes in the queueing time).
    gc.collect()
    gc.freeze()
    loop.install_signal_handlers()
    try:
        stats = loop.run(max_records=s.max_records, idle_exit_s=s.idle_exit_s)
    finally:
        ops.close()
        loop.adapter.close()
    extra = {"learning": ops.learner.stats.as_dict()} if ops.learner is not None else {}
    protocol.emit(protocol.stats_line({**stats.as_dict(), **extra}))
    return stats
