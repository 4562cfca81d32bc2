"""The monitor's Prometheus metrics (prometheus-client, on a registry of its own): the window figures as
gauges, counts as counters, the model as an info metric. Names match deploy/prometheus/alerts.yml."""

from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Info, start_http_server

if TYPE_CHECKING:
    from harness.monitoring.monitor import WindowFigures

PREFIX = "harness_monitor"


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
        self.psi = Gauge(f"{PREFIX}_score_psi", "PSI of the last window's scores against the reference.", registry=r)
        self.ks = Gauge(f"{PREFIX}_score_ks", "KS statistic of the last window's scores.", registry=r)
        self.latency_p99 = Gauge(
            f"{PREFIX}_latency_p99_seconds", "End-to-end p99 of the last window (from t_intended_ns).", registry=r
        )
        self.dead_letter_ratio = Gauge(f"{PREFIX}_dead_letter_ratio", "Dead letters / records.", registry=r)
        self.throughput = Gauge(f"{PREFIX}_throughput_per_second", "Results per second.", registry=r)
        self.live_auc = Gauge(f"{PREFIX}_live_auc", "ROC AUC on the labels joined in the last window.", registry=r)
        self.auc_drop = Gauge(f"{PREFIX}_auc_drop", "Reference AUC minus live AUC.", registry=r)
        self.live_accuracy = Gauge(
            f"{PREFIX}_live_accuracy", "Multiclass: share of joined labels that are the top class.", registry=r
        )
        self.accuracy_drop = Gauge(f"{PREFIX}_accuracy_drop", "Reference accuracy minus live accuracy.", registry=r)
        self.live_rmse = Gauge(f"{PREFIX}_live_rmse", "Regression: RMSE on the labels joined.", registry=r)
        self.live_mae = Gauge(f"{PREFIX}_live_mae", "Regression: MAE on the labels joined.", registry=r)
        self.rmse_ratio = Gauge(f"{PREFIX}_rmse_ratio", "Live RMSE / the reference RMSE.", registry=r)
        self.window_end = Gauge(f"{PREFIX}_window_end_timestamp_seconds", "When the last window closed.", registry=r)
        self.info = Info(f"{PREFIX}_model", "The model whose results are monitored.", registry=r)

    def model_info(self, model_id: str) -> None:
        self.info.info({"model_id": model_id})

    def observe(self, f: WindowFigures) -> None:
        def put(g: Gauge, v: float | None) -> None:
            g.set(float("nan") if v is None else v)

        put(self.psi, f.score_psi)
        put(self.ks, f.score_ks)
        put(self.latency_p99, None if f.latency_p99_ms is None else f.latency_p99_ms / 1000)
        put(self.dead_letter_ratio, f.dead_letter_rate)
        put(self.throughput, f.throughput_per_s)
        put(self.live_auc, f.live_auc)
        put(self.auc_drop, f.auc_drop)
        put(self.live_accuracy, f.live_accuracy)
        put(self.accuracy_drop, f.accuracy_drop)
        put(self.live_rmse, f.live_rmse)
        put(self.live_mae, f.live_mae)
        put(self.rmse_ratio, f.rmse_ratio)
        self.window_end.set(f.end_ns / 1e9)

    def serve(self, port: int, addr: str = "0.0.0.0") -> None:
        """/metrics on `port` (a daemon thread)."""
        start_http_server(port, addr=addr, registry=self.registry)
