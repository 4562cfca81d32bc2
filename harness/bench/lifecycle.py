"""The closed loop over Kafka, end to end, as an experiment:

constant load of reference-like rows, each record's label on a feedback topic `label_delay_s` after it was sent
─► at drift_at_s the rows come from the drifted generator
─► the monitor (harness monitor, in this process) alerts on the alerts topic: time to alert; live AUC per window
─► the retrain service (`harness retrain`, a process of its own, triggered by that alert) builds the training set
   from the stream — the feature records on the scorer's input topic joined with the labels since the alerting
   window began — trains the champion's recipe, exports it through the parity gate, judges it against the champion
   on a holdout of the same window, and publishes it on the model topic (the bundle itself, in chunks)
─► the scorer receives it over Kafka, verifies it and swaps between two batches; live AUC recovers
─► every record accounted for (lost 0, duplicates 0), per partition the old model's results never follow the new's

harness experiment scenarios/drift.yaml lifecycle
"""

from __future__ import annotations

import json
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rich.progress import Progress

from harness.bench.procs import HARNESS, Child
from harness.bench.session import START_DELAY_NS, AdapterSession, RunContext
from harness.errors import HarnessError
from harness.kafka.topics import delete_topics, ensure_topics
from harness.monitoring.monitor import Monitor, MonitorConfig, WindowFigures
from harness.monitoring.rules import Rule
from harness.results.experiments import Lifecycle, LifecycleWindow
from harness.scenario import AdapterSpec, LoadProfile
from harness.scoring import wire
from harness.scoring.models import publish_bundle

DRIFT_RULES = ("ScoreDriftPSI", "ScoreDriftKS")
AUC_RECOVERED_WITHIN = 0.05  # the monitor's LiveAUCDropped threshold: recovered = back within it of before


@dataclass
class LifecyclePlan:
    rate_per_s: float = 2000.0
    duration_s: float = 60.0
    drift_at_s: float = 15.0
    drift: float = 1.0
    monitor_window_s: float = 5.0
    window_s: float = 1.0
    model_name: str = "model"
    label_delay_s: float = 2.0
    min_labels: int = 4000  # labelled records since the alert the retrain waits for
    margin: float = 0.01


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


def _stream(ctx: RunContext, plan: LifecyclePlan) -> tuple[list[bytes], np.ndarray]:
    """One payload and its true label per record of the schedule: reference rows, then drifted ones."""
    n = int(plan.rate_per_s * plan.duration_s)
    before = int(plan.rate_per_s * plan.drift_at_s)
    Xd, yd = drifted_rows(ctx, plan.drift, rows=max(5000, n - before))
    payloads = [ctx.payloads[i % len(ctx.payloads)] for i in range(before)]
    payloads += [ctx.codec.encode(Xd[j % len(Xd)]) for j in range(n - before)]
    labels = np.concatenate([ctx.y[np.arange(before) % len(ctx.y)], yd[np.arange(n - before) % len(yd)]])
    return payloads, labels.astype(int)


def _labels(ctx: RunContext, topic: str, prefix: str, labels: np.ndarray, plan: LifecyclePlan, t0: float) -> None:
    """Each record's label on the feedback topic, label_delay_s after the record's intended send time."""
    from confluent_kafka import Producer

    p = Producer(ctx.target.client_config(**{"linger.ms": 5}))
    for seq, label in enumerate(labels.tolist()):
        wait = t0 + seq / plan.rate_per_s + plan.label_delay_s - time.monotonic()
        if wait > 0.002:
            time.sleep(wait)
        rid = wire.record_id(prefix, seq)
        p.produce(topic, key=rid.encode(), value=b'{"rid": "%s", "label": %d}' % (rid.encode(), label))
        if seq % 256 == 0:
            p.poll(0)
    p.flush(30)


def _retrain_service(ctx: RunContext, input_topic: str, topics: dict[str, str], plan: LifecyclePlan) -> Child:
    """`harness retrain` as a process of its own, triggered by the monitor's drift alerts; ready when it says so."""
    work = Path(tempfile.mkdtemp(prefix="harness-retrain-"))
    argv = [
        *HARNESS, "retrain", "--input-topic", input_topic, "--feedback-topic", topics["labels"],
        "--model-topic", topics["models"], "--model-name", plan.model_name, "--alerts-topic", topics["alerts"],
        "--encoding", ctx.sc.encoding, "--trigger", "alert", "--min-labels", str(plan.min_labels),
        "--window-rows", str(max(plan.min_labels, 20_000)), "--min-interval-s", "0", "--margin", str(plan.margin),
        "--max-attempts", "1", "--work-dir", str(work), "--bootstrap", ctx.target.bootstrap,
    ]  # fmt: skip
    for rule in DRIFT_RULES:
        argv += ["--trigger-rule", rule]
    child = Child("harness retrain", argv)
    child.wait_for_line("READY", 120)
    return child


def lifecycle(ctx: RunContext, spec: AdapterSpec, plan: LifecyclePlan, progress: Progress) -> Lifecycle:
    from sklearn.metrics import roc_auc_score

    old_id = ctx.bundle.model_id
    tag = f"h.{ctx.tag}"
    topics = {"models": f"{tag}.models", "alerts": f"{tag}.alerts", "labels": f"{tag}.labels"}
    ensure_topics(ctx.target, {topics["alerts"]: 1, topics["labels"]: ctx.sc.loop.partitions})
    published = publish_bundle(ctx.target, topics["models"], ctx.bundle_dir, plan.model_name)  # the champion
    ctx.log(f"champion {old_id} on {topics['models']}: {published.chunks} chunks, {published.bytes_sent:,} bytes")
    loop_args = ["--model-topic", topics["models"], "--model-name", plan.model_name, "--alerts-topic", topics["alerts"]]
    events: list[tuple[float, str]] = []
    monitor_windows: list[WindowFigures] = []
    started = {"t": 0.0, "wall_ns": 0}
    alerted = threading.Event()

    def at() -> float:
        return round(time.monotonic() - started["t"], 2)

    def on_window(f: WindowFigures) -> None:
        monitor_windows.append(f)
        fired = [a for a in f.alerts if a in DRIFT_RULES]
        if fired and not alerted.is_set():
            alerted.set()
            events.append((at(), f"monitor alert: {fired[0]}"))

    profile = LoadProfile(
        name="lifecycle", pattern="constant", rate_per_s=plan.rate_per_s, duration_s=plan.duration_s, warmup_s=0.0
    )
    payloads, labels = _stream(ctx, plan)
    retrainer: Child | None = None
    try:
        with AdapterSession(ctx, spec, 300, progress, payloads=payloads, loop_args=loop_args) as s:
            retrainer = _retrain_service(ctx, s.topics.input, topics, plan)
            _, y, p = ctx.bundle.reference()
            monitor = Monitor(
                ctx.target,
                MonitorConfig(
                    results_topic=s.topics.output,
                    dlq_topic=s.topics.dlq,
                    feedback_topic=topics["labels"],
                    alerts_topic=topics["alerts"],
                    encoding=ctx.sc.encoding,  # type: ignore[arg-type]
                    window_s=plan.monitor_window_s,
                    join_window_s=plan.label_delay_s * 5 + 10,
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
            prefix = "lc"
            labeller = threading.Thread(
                target=_labels, args=(ctx, topics["labels"], prefix, labels, plan, started["t"]), daemon=True
            )
            labeller.start()
            drift_timer = threading.Timer(
                plan.drift_at_s + START_DELAY_NS / 1e9, lambda: events.append((at(), "drift starts"))
            )
            drift_timer.start()
            point = s.run_point(profile, prefix, "load")
            labeller.join(plan.label_delay_s + 60)
            time.sleep(plan.monitor_window_s + plan.label_delay_s)  # the last labels reach the monitor
            monitor.stop()
            runner.join(30)
            assert s.measurer is not None
            retrain = _retrain_outcome(retrainer)
            new_id = str(retrain.get("challenger", "")) if retrain.get("outcome") == "published" else ""
            timeline = s.measurer.model_timeline(prefix, plan.window_s)
            latency = s.measurer.timeline(prefix, plan.window_s)
            breaks = s.measurer.model_order_breaks(prefix, old_id, new_id) if new_id else 0
            first_ns = s.measurer.first_scored_by(prefix, new_id) if new_id else None
    finally:
        if retrainer is not None:
            retrainer.stop()
        delete_topics(ctx.target, list(topics.values()))
    wall0 = started["wall_ns"]
    for key, what in (
        ("triggered_ns", "retrain triggered (the alert on the alerts topic)"),
        ("set_ns", f"training set from the stream: {retrain.get('rows', 0):,} labelled records"),
        ("trained_ns", "challenger trained, exported, parity-gated and judged"),
        ("published_ns", "challenger published on the model topic"),
    ):
        if retrain.get(key):
            events.append((round((int(retrain[key]) - wall0) / 1e9, 2), what))
    first_new = round((first_ns - wall0) / 1e9, 2) if first_ns else None
    figures = [
        {"t_end_s": round((f.end_ns - wall0) / 1e9, 2), "psi": f.score_psi, "ks": f.score_ks, "auc": f.live_auc,
         "labels": f.labels, "results": f.results, "alerts": f.alerts}
        for f in monitor_windows
    ]  # fmt: skip
    lc = _summary(plan, spec, old_id, new_id, events, figures, timeline, latency, point.counts, breaks, first_new)
    lc.retrain = retrain
    lc.label_delay_s = plan.label_delay_s
    lc.p99_ms_overall = point.latency_ms.p99
    return lc


def _retrain_outcome(child: Child) -> dict[str, Any]:
    """The retrain service's RETRAIN line (it makes one attempt), or what it said when there was none."""
    try:
        line = child.wait_for_line("RETRAIN ", 5)
    except Exception:
        return {"outcome": "none", "error": child.tail(5)}
    try:
        out = json.loads(line[len("RETRAIN ") :])
    except ValueError:
        return {"outcome": "none", "error": line[:300]}
    return out if isinstance(out, dict) else {"outcome": "none"}


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

    def first(prefix: str) -> float | None:
        return next((t for t, what in sorted(events) if what.startswith(prefix)), None)

    drift_at = first("drift starts") or plan.drift_at_s
    alert_at, set_at = first("monitor alert"), first("training set")
    gated_at, publish_at = first("challenger trained"), first("challenger published")
    aucs = [(m["t_end_s"], m["auc"]) for m in monitor if m.get("auc") is not None]
    before = [a for t, a in aucs if t <= drift_at]
    auc_before = round(float(np.median(before)), 4) if before else None
    worst = [a for t, a in aucs if t > drift_at + plan.monitor_window_s]
    after = [a for t, a in aucs if first_new is not None and t > first_new + plan.monitor_window_s + plan.label_delay_s]
    recovered_at = None
    if first_new is not None and auc_before is not None:
        recovered_at = next(
            (t for t, a in aucs if t > first_new + plan.label_delay_s and a >= auc_before - AUC_RECOVERED_WITHIN), None
        )
        if recovered_at is not None:
            events.append((recovered_at, "live AUC recovered (a monitor window within 0.05 of before the drift)"))
    events.sort()
    p99_before = [w.p99_ms for w in windows if w.t_s < drift_at and w.p99_ms is not None]
    around = [w.p99_ms for w in windows if first_new is not None and abs(w.t_s - first_new) <= 2 and w.p99_ms]

    def gap(a: float | None, b: float | None) -> float | None:
        return round(b - a, 2) if a is not None and b is not None else None

    return Lifecycle(
        adapter=spec.display,
        rate_per_s=plan.rate_per_s,
        drift_at_s=plan.drift_at_s,
        old_model=old_id,
        new_model=new_id,
        events=events,
        time_to_alert_s=gap(drift_at, alert_at),
        time_to_training_set_s=gap(alert_at, set_at),
        time_to_gated_s=gap(set_at, gated_at),
        time_to_publish_s=gap(gated_at, publish_at),
        time_to_swap_s=gap(publish_at, first_new),
        time_to_recovered_s=gap(first_new, recovered_at),
        auc_before=auc_before,
        auc_worst=round(min(worst), 4) if worst else None,
        auc_after=round(float(np.median(after)), 4) if after else None,
        monitor=monitor,
        windows=windows,
        counts=counts,  # type: ignore[arg-type]
        p99_ms_before=round(float(np.median(p99_before)), 2) if p99_before else None,
        p99_ms_around_swap=round(max(around), 2) if around else None,
        out_of_order=breaks,
    )
