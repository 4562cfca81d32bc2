"""The retrain service's Prometheus metrics and health (`harness retrain --metrics-port P`: /metrics,
/health/live, /health/ready, served by harness/scoring/metrics.py's MetricsServer).

    harness_retrain_features_read_total, _labels_read_total, _labels_joined_total, _labels_unjoined_total,
    _labels_malformed_total, _labels_duplicate_total     the join, as it goes
    harness_retrain_window_rows                          labelled records in the bounded window now
    harness_retrain_attempts_total{trigger, outcome}     retrains: published, refused (the gate) or failed
    harness_retrain_last_auc{model}                      champion and challenger AUC on the last holdout
    harness_retrain_seconds                              trigger to verdict, per attempt (histogram)
    harness_retrain_champion_info{model_id}              the model the service trains against
"""

from __future__ import annotations

import threading
import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

PREFIX = "harness_retrain"


class RetrainMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = self.registry = registry or CollectorRegistry()
        self.features = Counter(f"{PREFIX}_features_read", "Feature records read from the input topic.", registry=r)
        self.labels = Counter(f"{PREFIX}_labels_read", "Label records read from the feedback topic.", registry=r)
        self.joined = Counter(f"{PREFIX}_labels_joined", "Labels joined with their feature record.", registry=r)
        self.unjoined = Counter(
            f"{PREFIX}_labels_unjoined", "Labels whose record did not come within the join window.", registry=r
        )
        self.malformed = Counter(f"{PREFIX}_labels_malformed", "Feedback records that are not labels.", registry=r)
        self.duplicate = Counter(f"{PREFIX}_labels_duplicate", "Second labels of a labelled record.", registry=r)
        self.window = Gauge(f"{PREFIX}_window_rows", "Labelled records in the window.", registry=r)
        self.attempts = Counter(
            f"{PREFIX}_attempts", "Retrains, by trigger and outcome.", ["trigger", "outcome"], registry=r
        )
        self.last_auc = Gauge(f"{PREFIX}_last_auc", "AUC on the last holdout.", ["model"], registry=r)
        self.seconds = Histogram(
            f"{PREFIX}_seconds",
            "From the trigger to the verdict.",
            buckets=(1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800),
            registry=r,
        )
        self.champion = Info(f"{PREFIX}_champion", "The model the service trains against.", registry=r)
        self._seen: dict[str, int] = {}

    def counts(self, stats: dict[str, int], window_rows: int) -> None:
        """Bring the counters up to the join's statistics (which only grow)."""
        for name, metric in (
            ("features_read", self.features),
            ("labels_read", self.labels),
            ("labels_joined", self.joined),
            ("labels_unjoined", self.unjoined),
            ("labels_malformed", self.malformed),
            ("labels_duplicate", self.duplicate),
        ):
            delta = stats.get(name, 0) - self._seen.get(name, 0)
            if delta > 0:
                metric.inc(delta)
                self._seen[name] = stats[name]
        self.window.set(window_rows)


class RetrainHealth:
    """Live while the service's loop turns; ready once it has a champion and its consumers are assigned."""

    def __init__(self, stall_s: float = 60.0) -> None:
        self.stall_s = stall_s
        self.beat = time.monotonic()
        self.champion = False
        self.assigned = False
        self.busy_until = 0.0  # a retrain in progress may hold the loop: it is not a stall
        self._lock = threading.Lock()

    def heartbeat(self) -> None:
        self.beat = time.monotonic()

    def live(self) -> tuple[bool, dict[str, Any]]:
        age = time.monotonic() - self.beat
        ok = age <= self.stall_s or time.monotonic() < self.busy_until
        return ok, {"live": ok, "loop_turned_s_ago": round(age, 3)}

    def ready(self) -> tuple[bool, dict[str, Any]]:
        body = {"champion": self.champion, "assigned": self.assigned}
        return all(body.values()), {"ready": all(body.values()), **body}
