"""Online learning against the offline model on the same drifting stream, prequentially:

    harness experiment scenarios/drift.yaml online

Each strategy — the static offline model (`native`) and online learners (`online`, river: logistic
regression, adaptive random forest) — runs in a scoring loop on its own topics under the same constant load.
The rows come from the scenario's generator, drifted from `drift_at_s` on; each record's true label is
published on a feedback topic `label_delay_s` after it was sent. The learners learn from those labels in the
loop (harness/scoring/learning.py); every strategy is evaluated by the same model monitor from the same
labels: rolling AUC and log-loss per window, each score having been made before its label arrived (test,
then train). Throughput, latency and CPU come from the same point, like every other strategy's.
"""

from __future__ import annotations

import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from rich.progress import Progress

from harness.bench.lifecycle import drifted_rows
from harness.bench.session import START_DELAY_NS, AdapterSession, RunContext
from harness.kafka.topics import ensure_topics
from harness.monitoring.monitor import Monitor, MonitorConfig, WindowFigures
from harness.results.experiments import LearningWindow, OnlineExperiment, OnlineStrategy
from harness.scenario import AdapterSpec, LoadProfile
from harness.scoring import wire


@dataclass
class OnlinePlan:
    rate_per_s: float = 500.0
    duration_s: float = 90.0
    drift_at_s: float = 25.0
    drift: float = 1.0
    label_delay_s: float = 2.0
    window_s: float = 5.0
    learners: tuple[str, ...] = ("lr", "arf")
    extra: dict[str, Any] = field(default_factory=dict)


def _stream(ctx: RunContext, plan: OnlinePlan) -> tuple[list[bytes], np.ndarray]:
    """Payloads and their labels, one per record of the schedule: reference rows, then drifted ones."""
    n = int(plan.rate_per_s * plan.duration_s)
    before = int(plan.rate_per_s * plan.drift_at_s)
    Xd, yd = drifted_rows(ctx, plan.drift, rows=max(1000, n - before))
    ref_x, ref_y = ctx.X, ctx.y
    payloads = [ctx.codec.encode(ref_x[i % len(ref_x)]) for i in range(before)]
    payloads += [ctx.codec.encode(Xd[j % len(Xd)]) for j in range(n - before)]
    labels = np.concatenate([ref_y[np.arange(before) % len(ref_y)], yd[np.arange(n - before) % len(yd)]])
    return payloads, labels.astype(int)


def _feedback(ctx: RunContext, topic: str, prefix: str, labels: np.ndarray, plan: OnlinePlan, t0: float) -> None:
    """Each record's label on the feedback topic, label_delay_s after the record's intended send time."""
    from confluent_kafka import Producer

    p = Producer(ctx.target.client_config(**{"linger.ms": 5}))
    for seq, label in enumerate(labels.tolist()):
        due = t0 + seq / plan.rate_per_s + plan.label_delay_s
        wait = due - time.monotonic()
        if wait > 0.002:
            time.sleep(wait)
        rid = wire.record_id(prefix, seq)
        p.produce(topic, key=rid.encode(), value=b'{"rid": "%s", "label": %d}' % (rid.encode(), label))
        if seq % 256 == 0:
            p.poll(0)
    p.flush(30)


def _strategy(
    ctx: RunContext, spec: AdapterSpec, learns: bool, plan: OnlinePlan, stream: tuple[list[bytes], np.ndarray],
    index: int, progress: Progress,
) -> OnlineStrategy:  # fmt: skip
    payloads, labels = stream
    feedback = f"h.{ctx.tag}.{index}.labels"
    ensure_topics(ctx.target, {feedback: ctx.sc.loop.partitions})
    ckpt = Path(tempfile.mkdtemp(prefix="harness-learner-")) / "learner.ckpt"
    args = ["--feedback-topic", feedback, "--checkpoint-file", str(ckpt)] if learns else []
    windows: list[WindowFigures] = []
    with AdapterSession(ctx, spec, 400 + index, progress, payloads=payloads, loop_args=args) as s:
        _, y, p = ctx.bundle.reference()
        monitor = Monitor(
            ctx.target,
            MonitorConfig(
                results_topic=s.topics.output,
                feedback_topic=feedback,
                encoding=ctx.sc.encoding,  # type: ignore[arg-type]
                window_s=plan.window_s,
                join_window_s=plan.label_delay_s * 5 + 10,
                group=f"{s.topics.group}.monitor",
            ),
            p,
            None,
            ctx.bundle.model_id,
            [],
            on_window=windows.append,
        )
        runner = threading.Thread(target=monitor.run, name="monitor", daemon=True)
        runner.start()
        profile = LoadProfile(
            name="online", pattern="constant", rate_per_s=plan.rate_per_s, duration_s=plan.duration_s, warmup_s=0.0
        )
        t0 = time.monotonic() + START_DELAY_NS / 1e9
        start_wall = time.time_ns() + START_DELAY_NS
        labeller = threading.Thread(
            target=_feedback, args=(ctx, feedback, f"{s.index}on", labels, plan, t0), name="labels", daemon=True
        )
        labeller.start()
        point = s.run_point(profile, f"{s.index}on", "load")
        labeller.join(plan.label_delay_s + 60)
        time.sleep(plan.window_s + plan.label_delay_s)  # the last labels reach the monitor
        monitor.stop()
        runner.join(30)
    out = [
        LearningWindow(
            t_s=round((f.end_ns - start_wall) / 1e9, 2), auc=f.live_auc, logloss=f.live_logloss, labels=f.labels
        )
        for f in windows
    ]
    before = [w.auc for w in out if w.auc is not None and w.t_s <= plan.drift_at_s]
    late = [w.auc for w in out if w.auc is not None and w.t_s >= plan.duration_s * 2 / 3 and w.t_s <= plan.duration_s]
    cost = point.cost
    return OnlineStrategy(
        adapter=spec.display,
        learns=learns,
        windows=out,
        auc_before=round(float(np.median(before)), 4) if before else None,
        auc_after=round(float(np.median(late)), 4) if late else None,
        counts=point.counts,
        latency_ms=point.latency_ms,
        throughput_per_s=point.achieved_per_s(),
        cpu_s_per_1000=cost.cpu_s_per_1000 if cost else None,
        peak_rss_mib=cost.peak_rss_mib if cost else None,
    )


def online(ctx: RunContext, plan: OnlinePlan, progress: Progress) -> OnlineExperiment:
    stream = _stream(ctx, plan)
    specs: list[tuple[AdapterSpec, bool]] = [(AdapterSpec(name="native", label="static (native)"), False)]
    specs += [(AdapterSpec(name="online", label=f"online-{m}", options={"model": m}), True) for m in plan.learners]
    result = OnlineExperiment(
        rate_per_s=plan.rate_per_s,
        duration_s=plan.duration_s,
        drift_at_s=plan.drift_at_s,
        label_delay_s=plan.label_delay_s,
    )
    for i, (spec, learns) in enumerate(specs):
        ctx.log(f"[bold]online learning[/]: {spec.display}")
        result.strategies.append(_strategy(ctx, spec, learns, plan, stream, i, progress))
    return result
