"""Metrics and health of the production path: what `harness score --metrics-port P` serves.

    GET /metrics        Prometheus text format (prometheus-client, a registry of this process's own)
    GET /health/live    200 while the scoring loop's thread has turned within `stall_s`, else 503
    GET /health/ready   200 when partitions are assigned, the model is loaded and the engine available, else
                        503 with a JSON body saying which is missing

Metric names (all prefixed harness_score_, see deploy/prometheus/alerts.yml):
    records_consumed_total, records_scored_total, records_dead_lettered_total{stage, reason_class}
    batch_size (histogram), scoring_seconds (histogram, one predict call per batch), end_to_end_seconds
    (histogram, from the t_intended_ns header when the producer set it), in_flight_batches (gauge),
    consumer_lag{partition} (gauge), engine_unavailable (gauge 0/1), outages_total, model_info{model_id,
    version, adapter}, model_swaps_total, model_refused_total{reason} (harness/scoring/trust.py's kinds).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol

import numpy as np
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, Info, generate_latest

PREFIX = "harness_score"
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_SCORING_BUCKETS = (0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 2.0)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


def reason_class(reason: str) -> str:
    """A dead letter's reason as a label with few values (the full reason is in the record's header)."""
    r = reason.lower()
    for key, cls in (
        ("not json", "not_json"),
        ("unknown feature", "unknown_feature"),
        ("not a number", "wrong_type"),
        ("no value", "empty"),
        ("bytes, expected", "wrong_size"),
        ("finite", "non_finite"),
        ("infinite", "non_finite"),
    ):
        if key in r:
            return cls
    return "other"


def observe_many(hist: Histogram, values: Sequence[float]) -> None:
    """`hist.observe(v)` for each value, in one pass per batch: the loop hands over a micro-batch's end-to-end
    latencies at once. prometheus-client keeps one (non-cumulative) count per bucket and a sum; when those are
    not where this version of it keeps them, each value is observed alone."""
    bounds = getattr(hist, "_upper_bounds", None)
    buckets = getattr(hist, "_buckets", None)
    total = getattr(hist, "_sum", None)
    if bounds is None or buckets is None or total is None or len(bounds) != len(buckets):
        for v in values:
            hist.observe(v)
        return
    arr = np.asarray(values, dtype=np.float64)
    at = np.searchsorted(np.asarray(bounds, dtype=np.float64), arr, side="left")  # the first bound >= v
    counts = np.bincount(np.minimum(at, len(bounds) - 1), minlength=len(bounds))
    total.inc(float(arr.sum()))
    for i, c in enumerate(counts.tolist()):
        if c:
            buckets[i].inc(c)


class ScoreMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = self.registry = registry or CollectorRegistry()
        self.consumed = Counter(f"{PREFIX}_records_consumed", "Records consumed from the input topic.", registry=r)
        self.scored = Counter(f"{PREFIX}_records_scored", "Results produced.", registry=r)
        self.dead_lettered = Counter(
            f"{PREFIX}_records_dead_lettered", "Dead letters produced.", ["stage", "reason_class"], registry=r
        )
        self.batch_size = Histogram(
            f"{PREFIX}_batch_size", "Records per micro-batch.", buckets=_BATCH_BUCKETS, registry=r
        )
        self.scoring = Histogram(
            f"{PREFIX}_scoring_seconds", "Seconds per batch predict call.", buckets=_SCORING_BUCKETS, registry=r
        )
        self.end_to_end = Histogram(
            f"{PREFIX}_end_to_end_seconds",
            "From the producer's intended send time (t_intended_ns) to the result being produced.",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.in_flight = Gauge(f"{PREFIX}_in_flight_batches", "Batches produced, not yet acknowledged.", registry=r)
        self.lag = Gauge(
            f"{PREFIX}_consumer_lag", "Records behind the end of each partition.", ["partition"], registry=r
        )
        self.engine_unavailable = Gauge(
            f"{PREFIX}_engine_unavailable", "1 while the model engine is unavailable (partitions paused).", registry=r
        )
        self.outages = Counter(f"{PREFIX}_outages", "Engine outages ridden out.", registry=r)
        self.model = Info(f"{PREFIX}_model", "The model scoring now.", registry=r)
        self.swaps = Counter(f"{PREFIX}_model_swaps", "New model versions swapped in.", registry=r)
        self.refused = Counter(
            f"{PREFIX}_model_refused",
            "Model versions refused, by reason (unsigned, untrusted-key, bad-signature, replayed, tampered, ...).",
            ["reason"],
            registry=r,
        )
        self.assigned = Gauge(f"{PREFIX}_assigned_partitions", "Partitions this scorer owns.", registry=r)

    def dead_letter(self, stage: str, reason: str) -> None:
        self.dead_lettered.labels(stage=stage, reason_class=reason_class(reason)).inc()

    def model_in_use(self, model_id: str, adapter: str, version: str = "") -> None:
        self.model.info({"model_id": model_id, "adapter": adapter, "version": version})


class Health:
    """What /health/* answers, fed by the loop: its heartbeat, its partitions, the model, the engine."""

    def __init__(self, stall_s: float = 60.0) -> None:
        self.stall_s = stall_s
        self.beat = time.monotonic()
        self.partitions = 0
        self.model_loaded = False
        self.engine_available = True
        self._lock = threading.Lock()

    def heartbeat(self) -> None:
        self.beat = time.monotonic()

    def live(self) -> tuple[bool, dict[str, Any]]:
        age = time.monotonic() - self.beat
        return age <= self.stall_s, {"live": age <= self.stall_s, "loop_turned_s_ago": round(age, 3)}

    def ready(self) -> tuple[bool, dict[str, Any]]:
        body = {
            "assigned": self.partitions > 0,
            "model_loaded": self.model_loaded,
            "engine_available": self.engine_available,
        }
        return all(body.values()), {"ready": all(body.values()), **body}


class HasRegistry(Protocol):
    registry: CollectorRegistry


class HealthChecks(Protocol):
    def live(self) -> tuple[bool, dict[str, Any]]: ...

    def ready(self) -> tuple[bool, dict[str, Any]]: ...


class MetricsServer:
    """/metrics and /health/* on one port (a daemon thread); the answers never wait for the loop. Serves the
    scorer's metrics and health, and any other service's of the same shape (the retrain service's)."""

    def __init__(self, port: int, metrics: HasRegistry, health: HealthChecks, host: str = "127.0.0.1") -> None:
        self.metrics, self.health = metrics, health
        handler = self._handler()
        self.httpd = ThreadingHTTPServer((host, port), handler)
        self.httpd.daemon_threads = True
        self.port = int(self.httpd.server_address[1])
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="metrics-http", daemon=True)

    def start(self) -> MetricsServer:
        self._thread.start()
        return self

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self
        routes: dict[str, Callable[[], tuple[bool, dict[str, Any]]]] = {
            "/health/live": server.health.live,
            "/health/ready": server.health.ready,
        }

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the http.server API
                path = self.path.split("?", 1)[0]
                if path == "/metrics":
                    self._send(200, CONTENT_TYPE_LATEST, generate_latest(server.metrics.registry))
                elif path in routes:
                    ok, body = routes[path]()
                    self._send(200 if ok else 503, "application/json", json.dumps(body).encode())
                else:
                    self._send(
                        404, "application/json", b'{"error": "not found: /metrics, /health/live, /health/ready"}'
                    )

            def _send(self, code: int, ctype: str, body: bytes) -> None:
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:  # quiet: scrapes are not news
                return

        return Handler
