"""The experiments of `harness experiment`: scale-out, rebalance, the model lifecycle, online learning."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from harness.results.base import Model
from harness.results.point import Counts, Percentiles
from harness.results.stats import Stat


class ScaleOutCell(Model):
    """One (partitions, scorer processes) cell of a scale-out experiment: flat-out capacity over trials."""

    partitions: int
    processes: int
    capacity_rows_per_s: Stat | None = None
    cpu_s_per_1000: Stat | None = None


class TimelineWindow(Model):
    t_s: float
    results: int = 0
    p50_ms: float | None = None
    p99_ms: float | None = None


class Rebalance(Model):
    """A scorer joins and later leaves the group under a constant load: latency around each rebalance."""

    adapter: str = ""
    partitions: int = 0
    rate_per_s: float = 0.0
    events: list[tuple[float, str]] = Field(default_factory=list)  # (seconds since the start, what happened)
    windows: list[TimelineWindow] = Field(default_factory=list)
    counts: Counts = Field(default_factory=Counts)
    p99_ms_steady: float | None = None  # before the first event
    p99_ms_around: dict[str, float] = Field(default_factory=dict)  # event -> worst window p99 within ±2 windows


class LifecycleWindow(Model):
    t_s: float
    results: int = 0
    p99_ms: float | None = None
    mean_score: float | None = None
    models: dict[str, int] = Field(default_factory=dict)  # results per model id in the window


class Lifecycle(Model):
    """Drift starts, the monitor alerts, the retrain service builds a training set from the stream, trains and
    gates a challenger and publishes it on the model topic, the scorer swaps between two batches, live AUC
    recovers: when each happened, AUC and latency through it, every record accounted for."""

    adapter: str = ""
    rate_per_s: float = 0.0
    drift_at_s: float = 0.0
    old_model: str = ""
    new_model: str = ""
    events: list[tuple[float, str]] = Field(default_factory=list)
    time_to_alert_s: float | None = None  # drift start -> the first drift alert on the alerts topic
    time_to_swap_s: float | None = None  # publish -> the first result from the new model
    monitor: list[dict[str, Any]] = Field(default_factory=list)  # the monitor's windows (t_s, psi, ks, auc, ...)
    windows: list[LifecycleWindow] = Field(default_factory=list)
    counts: Counts = Field(default_factory=Counts)
    p99_ms_before: float | None = None
    p99_ms_around_swap: float | None = None
    out_of_order: int = 0  # results of the old model after one of the new, per partition (must be 0)
    # the closed loop (harness retrain): stage times, each from the previous stage
    label_delay_s: float | None = None  # each record's label reaches the feedback topic this long after it was sent
    time_to_training_set_s: float | None = None  # alert -> the training set saved (enough labels since the alert)
    time_to_gated_s: float | None = None  # training set -> challenger trained, exported, parity-gated and judged
    time_to_publish_s: float | None = None  # judged -> published on the model topic (its chunks and record)
    time_to_recovered_s: float | None = None  # first new result -> the first monitor window with AUC recovered
    auc_before: float | None = None  # median live AUC of the monitor windows before the drift
    auc_worst: float | None = None  # lowest live AUC of a window after the drift
    auc_after: float | None = None  # median live AUC of the windows that ended after the swap (labels included)
    p99_ms_overall: float | None = None  # p99 of every record of the run, drift, retrain and swap included
    retrain: dict[str, Any] = Field(default_factory=dict)  # the retrain service's RETRAIN line


class LearningWindow(Model):
    t_s: float  # end of the window, seconds since the load started
    auc: float | None = None
    logloss: float | None = None
    labels: int = 0


class OnlineStrategy(Model):
    """One strategy on the drifting stream, scored prequentially (each score made before its label arrived)."""

    adapter: str
    learns: bool = False
    windows: list[LearningWindow] = Field(default_factory=list)
    auc_before: float | None = None  # median window AUC before the drift
    auc_after: float | None = None  # median window AUC over the last third of the run
    counts: Counts = Field(default_factory=Counts)
    latency_ms: Percentiles = Field(default_factory=Percentiles)
    throughput_per_s: float | None = None
    cpu_s_per_1000: float | None = None
    peak_rss_mib: float | None = None


class OnlineExperiment(Model):
    rate_per_s: float = 0.0
    duration_s: float = 0.0
    drift_at_s: float = 0.0
    label_delay_s: float = 0.0
    strategies: list[OnlineStrategy] = Field(default_factory=list)


class Experiments(Model):
    online: OnlineExperiment | None = None
    scale_out_adapter: str | None = None
    scale_out: list[ScaleOutCell] = Field(default_factory=list)
    rebalance: Rebalance | None = None
    lifecycle: Lifecycle | None = None
