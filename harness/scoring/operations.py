"""What the scoring loop reports and takes while it runs in production: metrics, health, model updates.

The loop calls a few hooks (`Operations`) at fixed points — assignment, each batch, each output, an outage —
and between two batches asks `next_model()` whether a checked new version is ready. With nothing configured
every hook is a cheap no-op, so a benchmark run pays nothing for them.

    metrics + health   harness/scoring/metrics.py (served with --metrics-port)
    model updates      harness/scoring/models.py (followed with --model-topic/--model-name)
    online learning    harness/scoring/learning.py (labels from --feedback-topic teach an online learner)
    shadow scoring     a checked shadow version scores the same rows; its results go to --shadow-topic
                       (best effort: they are not part of the loop's accounting, and never delay it)
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from adapters.base import Adapter
from harness.scoring.learning import FeedbackLearner
from harness.scoring.metrics import Health, ScoreMetrics, observe_many
from harness.scoring.models import H_MODEL, ModelUpdates, ModelVersion

LAG_EVERY_S = 5.0


class Operations:
    def __init__(
        self,
        model_id: str,
        adapter_name: str,
        metrics: ScoreMetrics | None = None,
        health: Health | None = None,
        updates: ModelUpdates | None = None,
        shadow_topic: str | None = None,
        log: Callable[[str], None] = print,
        learner: FeedbackLearner | None = None,
    ) -> None:
        self.learner = learner
        self.metrics = metrics
        self.health = health
        self.updates = updates
        self.shadow_topic = shadow_topic
        self.log = log
        self.adapter_name = adapter_name
        self.model_header = (H_MODEL, model_id.encode())
        self._lag_at = 0.0
        if metrics is not None:
            metrics.model_in_use(model_id, adapter_name)
        if health is not None:
            health.model_loaded = True

    # ---- the loop's life ------------------------------------------------------------------------------
    def heartbeat(self) -> None:
        if self.health is not None:
            self.health.heartbeat()

    def partitions(self, n: int) -> None:
        if self.health is not None:
            self.health.partitions = n
        if self.metrics is not None:
            self.metrics.assigned.set(n)

    def engine(self, available: bool) -> None:
        if self.health is not None:
            self.health.engine_available = available
        if self.metrics is not None:
            self.metrics.engine_unavailable.set(0 if available else 1)
            if not available:
                self.metrics.outages.inc()

    # ---- one batch ------------------------------------------------------------------------------------
    def consumed(self, records: int) -> None:
        if self.metrics is not None:
            self.metrics.consumed.inc(records)
            self.metrics.batch_size.observe(records)

    def scored_batch(self, predict_seconds: float) -> None:
        if self.metrics is not None:
            self.metrics.scoring.observe(predict_seconds)

    def results(self, n: int, latencies: Sequence[float] | None) -> None:
        """`n` results produced; `latencies`: the end-to-end seconds of those whose input carried t_intended_ns
        (from the producer's intended send time to the result), when metrics asked for them."""
        m = self.metrics
        if m is None:
            return
        m.scored.inc(n)
        if latencies:
            observe_many(m.end_to_end, latencies)

    def dead_letter(self, stage: str, reason: str) -> None:
        if self.metrics is not None:
            self.metrics.dead_letter(stage, reason)

    def in_flight(self, batches: int) -> None:
        if self.metrics is not None:
            self.metrics.in_flight.set(batches)

    def lag(self, consumer: Any, owned: set[tuple[str, int]]) -> None:
        """Consumer lag per partition, every LAG_EVERY_S (watermarks from the client's cache: no round trip)."""
        if self.metrics is None or time.monotonic() - self._lag_at < LAG_EVERY_S or not owned:
            return
        self._lag_at = time.monotonic()
        from confluent_kafka import TopicPartition

        try:
            positions = consumer.position([TopicPartition(t, p) for t, p in owned])
            for tp in positions:
                _, high = consumer.get_watermark_offsets(tp, cached=True)
                if high >= 0 and tp.offset >= 0:
                    self.metrics.lag.labels(partition=str(tp.partition)).set(max(0, high - tp.offset))
        except Exception:  # a partition moving away between the two calls: next time
            return

    # ---- online learning ------------------------------------------------------------------------------
    def scored_rows(self, ids: list[list[str]], X: np.ndarray) -> None:
        """Rows just scored, with their ids, for the learner to join with labels (no-op without one)."""
        if self.learner is not None:
            self.learner.scored(ids, X)

    def service(self) -> None:
        if self.learner is not None:
            self.learner.service()

    def close(self) -> None:
        if self.learner is not None:
            self.learner.close()
        if self.updates is not None:
            self.updates.close()

    # ---- model updates --------------------------------------------------------------------------------
    def next_model(self) -> tuple[ModelVersion, Adapter] | None:
        """A checked live version to swap in before the next batch (the caller closes the old adapter)."""
        if self.updates is None:
            return None
        got = self.updates.take()
        if got is not None:
            version, _ = got
            self.model_header = (H_MODEL, version.model_id.encode())
            self.log(f"model {version.model_id} checked and swapped in between two batches")
            if self.metrics is not None:
                self.metrics.swaps.inc()
                self.metrics.model_in_use(version.model_id, self.adapter_name)
        return got

    def shadow(self, X: np.ndarray) -> tuple[bytes, np.ndarray] | None:
        """The shadow version's scores of the batch (and its model header value), or None."""
        if self.updates is None or self.shadow_topic is None:
            return None
        candidate = self.updates.shadow()
        if candidate is None:
            return None
        version, adapter = candidate
        try:
            return version.model_id.encode(), adapter.predict(X)
        except Exception as e:  # a shadow never costs the live path anything but this line
            self.log(f"shadow model {version.model_id} failed on a batch: {type(e).__name__}: {e}")
            return None
