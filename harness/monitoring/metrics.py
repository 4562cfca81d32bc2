"""The monitor's Prometheus metrics (prometheus-client, on a registry of its own): the window figures as
gauges, counts as counters, the model as an info metric. Names match deploy/prometheus/alerts.yml."""

from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Info, start_http_server

if TYPE_CHECKING:
    from harness.monitoring.monitor import WindowFigures

PREFIX = "harness_monitor"

# The last window's figures as gauges: (metric name after the prefix, help, the WindowFigures field, its divisor).
# A figure the window had no data for reads NaN.
WINDOW_GAUGES: tuple[tuple[str, str, str, float], ...] = (
    ("score_psi", "PSI of the last window's scores against the reference.", "score_psi", 1.0),
    ("score_ks", "KS statistic of the last window's scores.", "score_ks", 1.0),
    ("latency_p99_seconds", "End-to-end p99 of the last window (from t_intended_ns).", "latency_p99_ms", 1000.0),
    ("dead_letter_ratio", "Dead letters / records.", "dead_letter_rate", 1.0),
    ("throughput_per_second", "Results per second.", "throughput_per_s", 1.0),
    ("live_auc", "ROC AUC on the labels joined in the last window.", "live_auc", 1.0),
    ("auc_drop", "Reference AUC minus live AUC.", "auc_drop", 1.0),
    ("live_accuracy", "Multiclass: share of joined labels that are the top class.", "live_accuracy", 1.0),
    ("accuracy_drop", "Reference accuracy minus live accuracy.", "accuracy_drop", 1.0),
    ("live_rmse", "Regression: RMSE on the labels joined.", "live_rmse", 1.0),
    ("live_mae", "Regression: MAE on the labels joined.", "live_mae", 1.0),
    ("rmse_ratio", "Live RMSE / the reference RMSE.", "rmse_ratio", 1.0),
)


class MonitorMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = self.registry = registry or CollectorRegistry()
        self.results = Counter(f"{PREFIX}_results", "Results read from the results topic.", registry=r)
        self.dead_letters = Counter(f"{PREFIX}_dead_letters", "Dead letters read.", registry=r)
        self.alerts = Counter(f"{PREFIX}_alerts", "Alert events written, by rule.", ["rule"], registry=r)
        self.feedback_unjoined = Counter(
            f"{PREFIX}_feedback_unjoined", "Labels whose result never arrived within the join window.", registry=r
        )
        self.feedback_malformed = Counter(
            f"{PREFIX}_feedback_malformed", "Feedback records that could not be parsed.", registry=r
        )
        self.window = [
            (Gauge(f"{PREFIX}_{name}", doc, registry=r), field, divisor) for name, doc, field, divisor in WINDOW_GAUGES
        ]
        self.window_end = Gauge(f"{PREFIX}_window_end_timestamp_seconds", "When the last window closed.", registry=r)
        self.info = Info(f"{PREFIX}_model", "The model whose results are monitored.", registry=r)

    def model_info(self, model_id: str) -> None:
        self.info.info({"model_id": model_id})

    def observe(self, f: WindowFigures) -> None:
        for gauge, field, divisor in self.window:
            v = getattr(f, field)
            gauge.set(float("nan") if v is None else v / divisor)
        self.window_end.set(f.end_ns / 1e9)

    def serve(self, port: int, addr: str = "127.0.0.1") -> None:
        """/metrics on `port` (a daemon thread)."""
        start_http_server(port, addr=addr, registry=self.registry)
