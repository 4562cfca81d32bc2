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
    """Drift starts, the monitor alerts, a retrained model is published on the model topic, the scorer swaps
    between two batches: when each happened, the latency around the swap, every record accounted for."""

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
