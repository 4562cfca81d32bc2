"""The model lifecycle over Kafka, end to end, as an experiment:

constant load of reference-like rows ─► at drift_at_s the rows come from the drifted generator
─► the monitor (harness monitor, in this process) alerts on the alerts topic: time to alert
─► a retrained model (the same scenario trained on drifted data) is published on the model topic
─► the scorer verifies it and swaps between two batches: time to swap, p99 around it
─► every record accounted for (lost 0), and per partition the old model's results never follow the new's

harness experiment scenarios/drift.yaml lifecycle
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from rich.progress import Progress

from harness.bench.session import START_DELAY_NS, AdapterSession, RunContext
from harness.errors import HarnessError
from harness.kafka.topics import ensure_topics
from harness.monitoring.monitor import Monitor, MonitorConfig, WindowFigures
from harness.monitoring.rules import Rule
from harness.results.experiments import Lifecycle, LifecycleWindow
from harness.scenario import AdapterSpec, LoadProfile
from harness.scoring.models import publish, version_of

DRIFT_RULES = ("ScoreDriftPSI", "ScoreDriftKS")


@dataclass
class LifecyclePlan:
    rate_per_s: float = 2000.0
    duration_s: float = 60.0
    drift_at_s: float = 15.0
    drift: float = 1.0
    monitor_window_s: float = 5.0
    window_s: float = 1.0
    model_name: str = "model"


def drifted_rows(ctx: RunContext, drift: float, rows: int = 5000) -> tuple[np.ndarray, np.ndarray]:
    """(X in the bundle's feature order, labels) from the scenario's generator with its drift parameter set."""
    from harness.datagen import generate

    ds = ctx.sc.dataset
    if ds is None or ds.generator is None:
        raise HarnessError("this experiment drifts a generated dataset; this scenario has none")
    params = {**ds.params, "drift": drift}
    X, y, names = generate(ds.generator, rows, ds.seed + 101, **params)
    order = [names.index(f) for f in ctx.bundle.feature_names]
    return X[:, order], y


def drifted_payloads(ctx: RunContext, drift: float, rows: int = 5000) -> list[bytes]:
    """Rows from the scenario's generator with its drift parameter set (the stream after the drift)."""
    X, _ = drifted_rows(ctx, drift, rows)
    return [ctx.codec.encode(row) for row in X]


def _schedule_payloads(ctx: RunContext, plan: LifecyclePlan) -> list[bytes]:
    before = int(plan.rate_per_s * plan.drift_at_s)
    after = int(plan.rate_per_s * plan.duration_s) - before
    drifted = drifted_payloads(ctx, plan.drift)
    ref = ctx.payloads
    return [ref[i % len(ref)] for i in range(before)] + [drifted[j % len(drifted)] for j in range(after)]


def lifecycle(
    ctx: RunContext, spec: AdapterSpec, plan: LifecyclePlan, retrained_bundle: object, progress: Progress
) -> Lifecycle:
    from pathlib import Path

    from sklearn.metrics import roc_auc_score

    new_dir = Path(str(retrained_bundle))
    old_id, new_id = ctx.bundle.model_id, version_of(new_dir, plan.model_name).model_id
    topics = {"models": f"h.{ctx.tag}.models", "alerts": f"h.{ctx.tag}.alerts"}
    ensure_topics(ctx.target, {topics["alerts"]: 1})
    ensure_topics(ctx.target, {topics["models"]: 1}, config={"cleanup.policy": "compact"})
    loop_args = ["--model-topic", topics["models"], "--model-name", plan.model_name, "--alerts-topic", topics["alerts"]]
    events: list[tuple[float, str]] = []
    monitor_windows: list[WindowFigures] = []
    started = {"t": 0.0, "wall_ns": 0}
    published = threading.Event()

    def at() -> float:
        return round(time.monotonic() - started["t"], 2)

    def on_window(f: WindowFigures) -> None:
        monitor_windows.append(f)
        fired = [a for a in f.alerts if a in DRIFT_RULES]
        if fired and not published.is_set():
            events.append((at(), f"monitor alert: {fired[0]}"))
            publish(ctx.target, topics["models"], version_of(new_dir, plan.model_name))
            published.set()
            events.append((at(), "retrained model published on the model topic"))

    profile = LoadProfile(
        name="lifecycle", pattern="constant", rate_per_s=plan.rate_per_s, duration_s=plan.duration_s, warmup_s=0.0
    )
    payloads = _schedule_payloads(ctx, plan)
    with AdapterSession(ctx, spec, 300, progress, payloads=payloads, loop_args=loop_args) as s:
        _, y, p = ctx.bundle.reference()
        monitor = Monitor(
            ctx.target,
            MonitorConfig(
                results_topic=s.topics.output,
                dlq_topic=s.topics.dlq,
                alerts_topic=topics["alerts"],
                encoding=ctx.sc.encoding,  # type: ignore[arg-type]
                window_s=plan.monitor_window_s,
                group=f"{s.topics.group}.monitor",
            ),
            p,
            float(roc_auc_score(y, p)),
            old_id,
            [Rule(name="ScoreDriftPSI", figure="score_psi", threshold=0.2)],
            on_window=on_window,
        )
        runner = threading.Thread(target=monitor.run, name="monitor", daemon=True)
        runner.start()
        started["t"] = time.monotonic() + START_DELAY_NS / 1e9
        started["wall_ns"] = time.time_ns() + START_DELAY_NS
        delay = plan.drift_at_s + START_DELAY_NS / 1e9
        drift_timer = threading.Timer(delay, lambda: events.append((at(), "drift starts")))
        drift_timer.start()
        point = s.run_point(profile, "lc", "load")
        monitor.stop()
        runner.join(30)
        assert s.measurer is not None
        timeline = s.measurer.model_timeline("lc", plan.window_s)
        latency = s.measurer.timeline("lc", plan.window_s)
        breaks = s.measurer.model_order_breaks("lc", old_id, new_id)
        first_ns = s.measurer.first_scored_by("lc", new_id)
    first_new = round((first_ns - started["wall_ns"]) / 1e9, 2) if first_ns else None
    figures = [
        {"t_end_s": round((f.end_ns - started["wall_ns"]) / 1e9, 2), "psi": f.score_psi, "ks": f.score_ks,
         "results": f.results, "alerts": f.alerts}
        for f in monitor_windows
    ]  # fmt: skip
    return _summary(plan, spec, old_id, new_id, events, figures, timeline, latency, point.counts, breaks, first_new)


def _summary(
    plan: LifecyclePlan,
    spec: AdapterSpec,
    old_id: str,
    new_id: str,
    events: list[tuple[float, str]],
    monitor: list[dict[str, Any]],
    timeline: list[tuple[float, dict[str, int], float | None]],
    latency: list[tuple[float, int, float | None, float | None]],
    counts: object,
    breaks: int,
    first_new: float | None,
) -> Lifecycle:
    """`first_new`: when the first result of the new model was scored (seconds since the load started); the
    windows are by intended send time, so a window's start is not when the swap happened."""
    windows = []
    for (t, models, mean), (_, n, _, p99) in zip(timeline, latency, strict=False):
        windows.append(LifecycleWindow(t_s=t, results=n, p99_ms=p99, mean_score=mean, models=models))
    if first_new is not None:
        events.append((first_new, "first result from the retrained model"))
    events.sort()
    drift_at = next((t for t, what in events if what == "drift starts"), plan.drift_at_s)
    alert_at = next((t for t, what in events if what.startswith("monitor alert")), None)
    publish_at = next((t for t, what in events if what.startswith("retrained model published")), None)
    before = [w.p99_ms for w in windows if w.t_s < drift_at and w.p99_ms is not None]
    around = [w.p99_ms for w in windows if first_new is not None and abs(w.t_s - first_new) <= 2 and w.p99_ms]
    return Lifecycle(
        adapter=spec.display,
        rate_per_s=plan.rate_per_s,
        drift_at_s=plan.drift_at_s,
        old_model=old_id,
        new_model=new_id,
        events=events,
        time_to_alert_s=round(alert_at - drift_at, 2) if alert_at is not None else None,
        time_to_swap_s=round(first_new - publish_at, 2) if first_new is not None and publish_at is not None else None,
        monitor=monitor,
        windows=windows,
        counts=counts,  # type: ignore[arg-type]
        p99_ms_before=round(float(np.median(before)), 2) if before else None,
        p99_ms_around_swap=round(max(around), 2) if around else None,
        out_of_order=breaks,
    )
