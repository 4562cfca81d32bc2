"""One measured point (a load window's or a search step's): counts, latency, throughput, accuracy, cost,
and its validity checks, each one method (as MLPerf LoadGen's PerformanceSummary carries its own checks).
Whether a point held the SLO is defined once, in `Point.outcome()`, used by the rate search and the report.
Also the search's steps (`--thorough`) and the in-process micro-benchmark's figures."""

from __future__ import annotations

import math
from typing import Literal

from pydantic import Field

from harness.results.base import Interference, Model
from harness.results.fmt import DASH

SAME_THROUGHPUT_BAND = 0.05  # ratios within ±5 % are reported as "about the same"
BACKLOG_RATIO = 0.9  # a point whose scored rate is below this share of the offered rate built a backlog
NOT_SEARCHED = "not searched"
# limited_by of a trial's search whose last rate failed three times while something outside the run used the
# machine (harness/bench/search.py): the trial measured the machine, and its sustainable rate is not booked
MACHINE_BUSY = "machine busy"

# why a point did or did not hold; the rate search stops on anything but HELD
Outcome = Literal["held", "load generator", "backlog", "slo"]
HELD: Outcome = "held"

# the validity checks, by name (the names are part of results.json)
SCHEDULE_KEPT = "schedule kept"
MIN_MEASURED = "min measured events"
NO_LOST = "no lost records"
THROUGHPUT_STABLE = "throughput stable"


def _finite(v: float | None) -> float | None:
    return v if v is not None and math.isfinite(v) else None


# ---------------------------------------------------------------------------------------------------------
# One load point
# ---------------------------------------------------------------------------------------------------------


class Percentiles(Model):
    p50: float | None = None
    p90: float | None = None
    p95: float | None = None
    p99: float | None = None
    p999: float | None = None
    max: float | None = None
    mean: float | None = None


class SendLag(Model):
    p50: float | None = None
    p99: float | None = None
    max: float | None = None


class GeneratorStats(Model):
    """What the load generator did: records sent, the rate achieved and how late the sends were."""

    sent: int | None = None
    achieved_per_s: float | None = None
    send_lag_ms: SendLag = Field(default_factory=SendLag)
    behind_share: float | None = None
    delivery_errors: int = 0


class Counts(Model):
    sent: int = 0
    scored: int = 0
    duplicates: int = 0
    lost: int = 0
    dead_lettered: int = 0
    measured: int = 0


class Throughput(Model):
    mean_per_s: float | None = None
    windows_per_s: list[float] = Field(default_factory=list)
    offered_windows_per_s: list[float] = Field(default_factory=list)
    window_s: float = 1.0
    stable: bool | None = None


class Accuracy(Model):
    """Each timed event's outputs against the bundle's reference prediction of its row (max_abs_diff over every
    output), and the task's quality figures on the labels of the same events, for the scorer and for the
    reference (harness/scoring/quality.py): AUC (binary), log-loss and accuracy (multiclass), RMSE and MAE
    (regression). `task` absent: a binary model (results written before tasks existed)."""

    max_abs_diff: float | None = None
    share_beyond_tolerance: float | None = None
    tolerance: float | None = None
    auc: float | None = None
    auc_reference: float | None = None
    task: str | None = None
    log_loss: float | None = None
    log_loss_reference: float | None = None
    accuracy: float | None = None
    accuracy_reference: float | None = None
    rmse: float | None = None
    rmse_reference: float | None = None
    mae: float | None = None
    mae_reference: float | None = None
    note: str | None = None  # e.g. "accuracy does not apply" for the identity adapter

    def figures(self) -> dict[str, tuple[float | None, float | None]]:
        """The task's quality figures: name -> (the scorer's, the reference's on the same events)."""
        names = {"multiclass": ("log_loss", "accuracy"), "regression": ("rmse", "mae")}.get(self.task or "", ("auc",))
        return {n: (getattr(self, n), getattr(self, f"{n}_reference")) for n in names}


class Cost(Model):
    cpu_s_per_1000: float | None = None
    peak_rss_mib: float | None = None
    server_cpu_s_per_1000: float | None = None
    server_peak_rss_mib: float | None = None

    def total_cpu_s_per_1000(self) -> float | None:
        """Scorer plus model server, when there is one."""
        if self.cpu_s_per_1000 is None:
            return None
        return self.cpu_s_per_1000 + (self.server_cpu_s_per_1000 or 0.0)


class Check(Model):
    name: str = ""
    passed: bool = True
    detail: str = ""
    recommendation: str = ""


class Measurement(Model):
    """What the measurer saw of one point: counts, latency, throughput over time, accuracy."""

    counts: Counts = Field(default_factory=Counts)
    latency_ms: Percentiles = Field(default_factory=Percentiles)
    queueing_ms: Percentiles | None = None
    scoring_ms: Percentiles | None = None
    delivery_ms: Percentiles | None = None
    hdr_percentiles: list[tuple[float, float | None]] = Field(default_factory=list)
    throughput: Throughput | None = None
    accuracy: Accuracy | None = None
    dead_letter_reasons: dict[str, int] = Field(default_factory=dict)


class ValidityLimits(Model):
    """The thresholds the checks apply (the scenario's `validity` section)."""

    max_behind_schedule_share: float = 0.05
    max_send_lag_ms: float = 10.0
    stable_tolerance_pct: float = 25.0
    stable_windows: int = 3
    window_s: float = 1.0
    min_measured_events: int = 200


class Point(Measurement):
    """One load point or search step: the offered load, the measurement, the cost, the checks and verdict."""

    name: str = ""
    kind: Literal["load", "search", "capacity"] | str = "load"
    pattern: str | None = None
    offered_per_s: float | None = None
    duration_s: float | None = None
    warmup_s: float | None = None
    generator: GeneratorStats | None = None
    cost: Cost | None = None
    slo_p99_ms: float | None = None
    interference: Interference | None = None
    checks: list[Check] = Field(default_factory=list)
    verdict: str | None = None

    # ---- the validity checks: one method each --------------------------------------------------------
    def check_schedule_kept(self, v: ValidityLimits) -> Check:
        g = self.generator or GeneratorStats()
        behind = g.behind_share or 0.0
        lag99 = g.send_lag_ms.p99
        return Check(
            name=SCHEDULE_KEPT,
            passed=behind <= v.max_behind_schedule_share and g.delivery_errors == 0,
            detail=f"{behind * 100:.2f}% of sends were more than {v.max_send_lag_ms:g} ms late "
            f"(allowed {v.max_behind_schedule_share * 100:g}%); send lag p99 "
            + (f"{lag99:.2f} ms" if lag99 is not None else DASH)
            + (f"; {g.delivery_errors} delivery errors" if g.delivery_errors else ""),
            recommendation="lower the offered rate or run the load generator on another machine",
        )

    def check_min_measured(self, v: ValidityLimits) -> Check:
        return Check(
            name=MIN_MEASURED,
            passed=self.counts.measured >= v.min_measured_events,
            detail=f"{self.counts.measured} events after warm-up (minimum {v.min_measured_events})",
            recommendation="lengthen duration_s or raise the rate",
        )

    def check_no_lost(self) -> Check:
        c = self.counts
        return Check(
            name=NO_LOST,
            passed=c.lost == 0,
            detail=f"{c.lost} of {c.sent} records had no result or dead letter after the drain timeout",
            recommendation="the scorer cannot keep up or failed: see its log; lower the rate",
        )

    def check_throughput_stable(self, v: ValidityLimits) -> Check:
        t = self.throughput or Throughput()
        n = v.stable_windows
        return Check(
            name=THROUGHPUT_STABLE,
            passed=bool(t.stable),
            detail=f"last {n} windows of {t.window_s:g} s scored {t.windows_per_s[-n:]}/s against "
            f"{t.offered_windows_per_s[-n:]}/s offered "
            f"(tolerance {v.stable_tolerance_pct:g}% in sum, {2 * v.stable_tolerance_pct:g}% per window)",
            recommendation="lengthen duration_s; a backlog that grows means the rate is above capacity",
        )

    def evaluate(self, v: ValidityLimits, slo_p99_ms: float) -> Point:
        """Run every check, set the verdict (VALID when all pass) and the SLO this point is held to."""
        self.slo_p99_ms = slo_p99_ms
        self.checks = [
            self.check_schedule_kept(v),
            self.check_min_measured(v),
            self.check_no_lost(),
            self.check_throughput_stable(v),
        ]
        self.verdict = "VALID" if all(c.passed for c in self.checks) else "INVALID"
        return self

    # ---- what the checks mean ------------------------------------------------------------------------
    def failed_checks(self) -> list[str]:
        return [c.name for c in self.checks if not c.passed]

    @property
    def invalid(self) -> bool:
        return (self.verdict or "").upper() == "INVALID"

    def achieved_per_s(self) -> float | None:
        return self.throughput.mean_per_s if self.throughput else None

    def outcome(self) -> Outcome:
        """Whether this point held the SLO, and if not, what gave way first: the load generator could not keep
        the schedule, the scorer built a backlog (lost records, or scored under 90% of the offered rate), or
        the p99 broke the SLO (or nothing was measured). The verdict (VALID/INVALID) is a separate matter: it
        says whether the figures can be trusted, this says whether the scorer kept up."""
        failed = self.failed_checks()
        if SCHEDULE_KEPT in failed:
            return "load generator"
        achieved = self.achieved_per_s()
        if self.counts.lost > 0 or (
            self.offered_per_s and achieved is not None and achieved < BACKLOG_RATIO * self.offered_per_s
        ):
            return "backlog"
        p99 = _finite(self.latency_ms.p99)
        if p99 is None or (self.slo_p99_ms is not None and p99 > self.slo_p99_ms):
            return "slo"
        return HELD

    @property
    def held(self) -> bool:
        return self.outcome() == HELD

    def hdr(self) -> list[tuple[float, float]]:
        return [(q, ms) for q, ms in self.hdr_percentiles if ms is not None]


class SearchStep(Model):
    offered_per_s: float
    achieved_per_s: float | None = None
    p99_ms: float | None = None
    ok: bool | None = None
    reason: str | None = None
    verdict: str | None = None
    point: str | None = None  # the name of the search point this step measured


class Sustainable(Model):
    rows_per_s: float | None = None
    limited_by: str | None = None
    steps: list[SearchStep] = Field(default_factory=list)


class InProcess(Model):
    batch1_rows_per_s: float | None = None
    batch1_latency_us: float | None = None
    batch_size: int | None = None
    batch_rows_per_s: float | None = None
    batch_call_us: float | None = None


class Capacity(Model):
    """The loop's throughput with a backlog (records sent all at once, scored as fast as it can)."""

    records: int | None = None
    scored: int | None = None
    rows_per_s: float | None = None
    generator_per_s: float | None = None
    cpu_us_per_record: float | None = None  # the scorer's CPU (µs) per record while it worked off the backlog
    note: str | None = None
