"""`harness monitor` as a service: open the bundle (reference predictions, model id, task, the reference's quality
figures), resolve
Kafka, create the alerts topic, serve /metrics, run the monitor and log one line per window."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from harness.monitoring.errors import MonitorError


@dataclass
class MonitorSettings:
    bundle: Path
    results_topic: str
    dlq_topic: str | None = None
    feedback_topic: str | None = None
    alerts_topic: str | None = None
    encoding: str = "json"
    window_s: float = 10.0
    join_window_s: float = 300.0
    rules: Path | None = None
    slo_p99_ms: float = 50.0
    metrics_port: int | None = None
    max_windows: int | None = None
    group: str | None = None
    bootstrap: str | None = None
    client_config: Path | None = None


def describe(f: object) -> str:
    from harness.monitoring.monitor import WindowFigures

    assert isinstance(f, WindowFigures)

    def num(v: float | None, spec: str) -> str:
        return "-" if v is None else format(v, spec)

    alerts = f" ALERT {','.join(f.alerts)}" if f.alerts else ""
    if f.task == "regression":
        live = f"rmse {num(f.live_rmse, '.4g')} mae {num(f.live_mae, '.4g')} (x{num(f.rmse_ratio, '.2f')} ref)"
    elif f.task == "multiclass":
        live = f"accuracy {num(f.live_accuracy, '.3f')} logloss {num(f.live_logloss, '.3f')}"
    else:
        live = f"auc {num(f.live_auc, '.3f')}"
    return (
        f"window: {f.results} results {f.throughput_per_s:.0f}/s  psi {num(f.score_psi, '.3f')}  "
        f"ks {num(f.score_ks, '.3f')}  p99 {num(f.latency_p99_ms, '.1f')} ms  dlq {f.dead_letters}  "
        f"{live} ({f.labels} labels, {f.feedback_unjoined} unjoined, "
        f"{f.feedback_malformed} malformed){alerts}"
    )


def run_monitor(s: MonitorSettings, log: Callable[[str], None]) -> None:
    from adapters.bundle import Bundle
    from harness.kafka.config import resolve_kafka
    from harness.kafka.topics import ensure_topics, partitions_of
    from harness.monitoring.metrics import MonitorMetrics
    from harness.monitoring.monitor import Monitor, MonitorConfig
    from harness.monitoring.rules import default_rules, load_rules
    from harness.scoring import quality, wire

    try:
        enc = wire.check_encoding(s.encoding)
    except ValueError as e:
        raise MonitorError(str(e)) from None
    b = Bundle.open(s.bundle)
    _, y, p = b.reference()
    task = b.task
    reference_quality = quality.quality(task.task, y, p)  # the reference predictions on the reference labels
    rules = load_rules(s.rules) if s.rules else default_rules(s.slo_p99_ms, task.task)
    target = resolve_kafka(s.bootstrap, s.client_config)
    if partitions_of(target, s.results_topic) is None:
        raise MonitorError(f"results topic {s.results_topic!r} does not exist at {target.bootstrap}")
    if s.alerts_topic:
        ensure_topics(target, {s.alerts_topic: 1})
    metrics = MonitorMetrics()
    if s.metrics_port is not None:
        metrics.serve(s.metrics_port)
    cfg = MonitorConfig(
        results_topic=s.results_topic,
        dlq_topic=s.dlq_topic,
        feedback_topic=s.feedback_topic,
        alerts_topic=s.alerts_topic,
        encoding=enc,
        window_s=s.window_s,
        join_window_s=s.join_window_s,
        group=s.group,
    )
    mon = Monitor(
        target,
        cfg,
        p,
        reference_quality.get("auc"),
        b.model_id,
        rules,
        metrics,
        on_window=lambda f: log(describe(f)),
        task=task,
        reference_quality=reference_quality,
    )
    mon.install_signal_handlers()
    shown = ", ".join(f"{k} {v:.4g}" for k, v in reference_quality.items() if v is not None) or "no labels"
    log(
        f"monitoring {s.results_topic} for model {b.model_id} ({task.task}; reference {shown}): {len(rules)} rules, "
        f"windows of {s.window_s:g} s"
    )
    mon.run(max_windows=s.max_windows)
