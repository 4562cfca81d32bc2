"""The results of a run (`results/<run-id>/results.json`): one typed model, written by the orchestrator and
read by the report and `harness compare`.

The measurer returns a `Measurement`; the orchestrator makes it a `Point` (adds the offered load, the
generator's figures and the cost) and `Point.evaluate` runs the validity checks, each one method here, as
MLPerf LoadGen's PerformanceSummary carries its own checks. Whether a point held the SLO is defined once,
in `Point.outcome()`, and used by the rate search, the ranking and the charts alike.

Reading is lenient where it must be: JSON null (how NaN is written) reads as the field's default, unknown
fields are ignored, and a results.json of schema 1 (before this model) is migrated on reading. A newer
schema, a missing file or a malformed one is one `error:` line (`ResultsError`).
"""

from __future__ import annotations

import math
import os
import statistics
import tempfile
from pathlib import Path
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from harness.errors import first_validation_error
from harness.results.errors import ResultsError
from harness.results.fmt import DASH, fmt_diff
from harness.results.stats import DEFAULT_CONFIDENCE, Stat, relative_difference, stat

SCHEMA_VERSION = 3
OLDEST_SCHEMA_READ = 1
RESULTS_FILE = "results.json"
CHART_PREFIX = "report-"
BASELINE_FAMILY = "baseline"

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


class Model(BaseModel):
    """Base of every results model: unknown fields ignored, JSON null read as the field's default."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    @model_validator(mode="before")
    @classmethod
    def _null_is_missing(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if v is not None}
        return data


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
    max_abs_diff: float | None = None
    share_beyond_tolerance: float | None = None
    tolerance: float | None = None
    auc: float | None = None
    auc_reference: float | None = None
    note: str | None = None  # e.g. "accuracy does not apply" for the identity adapter


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


class Interference(Model):
    """What else happened on the machine while a point was measured (its measured window)."""

    gc_pause_max_ms: float = 0.0  # the longest broker GC pause that overlapped the window
    gc_pause_total_ms: float = 0.0
    steal_pct: float | None = None  # CPU stolen by the hypervisor, % of the machine's CPU time
    other_cpu_pct: float | None = None  # CPU used by processes outside the run, % of one core
    load_average: float | None = None
    disturbed: bool = False
    busy: bool = False  # disturbed from outside the run (CPU steal, other processes), not by the broker's GC
    reasons: list[str] = Field(default_factory=list)


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


# ---------------------------------------------------------------------------------------------------------
# One adapter
# ---------------------------------------------------------------------------------------------------------


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


class Trial(Model):
    """One independent measurement of one adapter: a fresh deployment, the load points, capacity, search."""

    index: int = 0
    round: int = 0  # the round of the run (every adapter once per round, in a rotated order)
    position: int = 0  # this adapter's place in its round
    error: str | None = None
    capacity: Capacity | None = None
    sustainable: Sustainable | None = None
    points: list[Point] = Field(default_factory=list)

    @property
    def searched(self) -> bool:
        s = self.sustainable
        return s is not None and s.limited_by != NOT_SEARCHED and (s.limited_by is not None or bool(s.steps))

    @property
    def sustainable_rate(self) -> float | None:
        """The highest rate held under the SLO: the search's answer, or without a search the highest load point
        that held (a lower bound). 0 when a search found no rate that held."""
        if self.error:
            return None
        s = self.sustainable
        if self.searched:
            assert s is not None
            if s.limited_by in ("invalid", "error", MACHINE_BUSY):
                return None
            return s.rows_per_s if s.rows_per_s else 0.0
        if s is not None and s.rows_per_s:
            return s.rows_per_s
        held = [p.offered_per_s for p in self.points if p.kind == "load" and p.offered_per_s and p.held]
        return max(held) if held else None

    def counted_points(self) -> list[Point]:
        """The points whose figures stand: every load point, and the search steps that held. The step past the
        sustainable rate fails by design (backlog, lost records, INVALID): that is how the search ends."""
        steps = self.sustainable.steps if self.sustainable else []
        held_names = {s.point for s in steps if s.ok and s.point}
        held_rates = {round(s.offered_per_s, 1) for s in steps if s.ok}
        out = []
        for p in self.points:
            if p.kind == "load":
                out.append(p)
            elif p.kind == "search":
                if steps:
                    if p.name in held_names or (
                        not held_names and p.offered_per_s is not None and round(p.offered_per_s, 1) in held_rates
                    ):
                        out.append(p)
                elif p.held:
                    out.append(p)
        return out

    def load_points(self) -> list[Point]:
        """The fixed load points (search points only when there is nothing else), lowest offered rate first."""
        pts = [p for p in self.points if p.kind == "load"] or self.counted_points()
        return sorted(pts, key=lambda p: (p.offered_per_s is None, p.offered_per_s or 0.0, p.name))

    def point(self, name: str) -> Point | None:
        return next((p for p in self.points if p.name == name), None)

    def cost_point(self) -> Point | None:
        """CPU and memory are read at the highest load point that has them (the most representative)."""
        pts = [p for p in self.load_points() if p.cost is not None and p.cost.cpu_s_per_1000 is not None]
        return pts[-1] if pts else None

    def cpu_s_per_1000(self) -> float | None:
        p = self.cost_point()
        return p.cost.total_cpu_s_per_1000() if p is not None and p.cost is not None else None


class PointStats(Model):
    p50_ms: Stat | None = None
    p99_ms: Stat | None = None


class AdapterStats(Model):
    """Every ranking figure of an adapter over its trials: median, interval, spread."""

    trials: int = 0
    sustainable_rows_per_s: Stat | None = None
    capacity_rows_per_s: Stat | None = None
    cpu_s_per_1000: Stat | None = None
    load_points: dict[str, PointStats] = Field(default_factory=dict)


# built-in strategies that consume and produce with their own Kafka client (not the Python loop's)
OWN_KAFKA_CLIENT = ("kstreams-mojo", "mlserver-kafka")


class AdapterResult(Model):
    adapter: str
    name: str | None = None
    family: str = ""
    # "python-loop": scored by the Python loop, whose Kafka-only ceiling is the identity run; "own": its own Kafka
    # client (a Kafka Streams app, a model server's Kafka mode), not bounded by that ceiling; None before schema 3.1
    client: str | None = None
    error: str | None = None
    inprocess: InProcess | None = None
    trials: list[Trial] = Field(default_factory=list)
    stats: AdapterStats | None = None
    problems: list[str] = Field(default_factory=list)  # inconsistent figures: never recommended on
    loop_vs_inprocess_ratio: float | None = None
    capacity_vs_inprocess_ratio: float | None = None
    vs_kafka_ceiling: float | None = None

    @model_validator(mode="before")
    @classmethod
    def _client_before_it_was_recorded(cls, data: Any) -> Any:
        """Runs written before `client` existed: the built-in strategies with their own Kafka client."""
        if isinstance(data, dict) and data.get("client") is None and data.get("name") in OWN_KAFKA_CLIENT:
            data = {**data, "client": "own"}
        return data

    @model_validator(mode="before")
    @classmethod
    def _one_trial_before_schema_3(cls, data: Any) -> Any:
        """Schemas 1 and 2 held one measurement per adapter (capacity, sustainable, points): one trial."""
        if isinstance(data, dict) and "trials" not in data and any(k in data for k in ("points", "sustainable")):
            data = dict(data)
            data["trials"] = [{k: data.pop(k) for k in ("capacity", "sustainable", "points") if k in data}]
        return data

    @model_validator(mode="after")
    def _stats(self) -> AdapterResult:
        if self.stats is None and self.trials:
            self.stats = self.compute_stats()
        return self

    def compute_stats(self, confidence: float = DEFAULT_CONFIDENCE) -> AdapterStats:
        ok = [t for t in self.trials if not t.error]
        names: list[str] = []
        for t in ok:
            names += [p.name for p in t.points if p.kind == "load" and p.name not in names]
        loads = {}
        for name in names:
            pts = [pt for t in ok if (pt := t.point(name)) is not None]
            loads[name] = PointStats(
                p50_ms=stat([pt.latency_ms.p50 for pt in pts], confidence),
                p99_ms=stat([pt.latency_ms.p99 for pt in pts], confidence),
            )
        return AdapterStats(
            trials=len(ok),
            sustainable_rows_per_s=stat([t.sustainable_rate for t in ok], confidence),
            capacity_rows_per_s=stat([t.capacity.rows_per_s if t.capacity else None for t in ok], confidence),
            cpu_s_per_1000=stat([t.cpu_s_per_1000() for t in ok], confidence),
            load_points=loads,
        )

    # ---- the representative trial (charts, step tables) ------------------------------------------------
    @property
    def rep(self) -> Trial:
        """The trial whose sustainable rate is the median one (the first trial when none has a rate)."""
        ok = [t for t in self.trials if not t.error] or self.trials
        if not ok:
            return Trial()
        rated = [t for t in ok if t.sustainable_rate is not None]
        if not rated:
            return ok[0]
        med = self.sustainable_rate
        return min(rated, key=lambda t: (abs((t.sustainable_rate or 0.0) - (med or 0.0)), t.index))

    @property
    def points(self) -> list[Point]:
        return self.rep.points

    @property
    def sustainable(self) -> Sustainable | None:
        return self.rep.sustainable

    @property
    def capacity(self) -> Capacity | None:
        return self.rep.capacity

    def point(self, name: str) -> Point | None:
        return self.rep.point(name)

    def load_points(self) -> list[Point]:
        return self.rep.load_points()

    def cost_point(self) -> Point | None:
        return self.rep.cost_point()

    # ---- figures over every trial ----------------------------------------------------------------------
    @property
    def is_baseline(self) -> bool:
        return self.family == BASELINE_FAMILY or "identity" in (self.name, self.adapter)

    @property
    def searched(self) -> bool:
        return any(t.searched for t in self.trials)

    @property
    def sustainable_stat(self) -> Stat | None:
        return None if self.error or self.stats is None else self.stats.sustainable_rows_per_s

    @property
    def sustainable_rate(self) -> float | None:
        """The median over the trials of the highest rate held under the SLO (None: nothing measured; 0: no
        tested rate held)."""
        st = self.sustainable_stat
        return st.median if st is not None else None

    @property
    def capacity_stat(self) -> Stat | None:
        return self.stats.capacity_rows_per_s if self.stats else None

    def point_stat(self, name: str) -> PointStats | None:
        return self.stats.load_points.get(name) if self.stats else None

    @property
    def limited_by(self) -> str:
        if self.error:
            return "error"
        if not self.searched:
            return "not searched: highest load point held" if self.sustainable_rate else NOT_SEARCHED
        reasons = [t.sustainable.limited_by for t in self.trials if t.searched and t.sustainable]
        named = [r for r in reasons if r]
        return max(set(named), key=named.count) if named else DASH

    def counted_points(self) -> list[Point]:
        return [p for t in self.trials for p in t.counted_points()]

    def _accuracy_points(self) -> list[tuple[Point, Accuracy]]:
        if self.is_baseline:  # the identity adapter scores nothing: accuracy does not apply
            return []
        return [(p, p.accuracy) for p in self.counted_points() if p.accuracy is not None and not p.accuracy.note]

    def max_abs_diff(self) -> float | None:
        vals = [a.max_abs_diff for _, a in self._accuracy_points() if a.max_abs_diff is not None]
        return max(vals) if vals else None

    def auc(self) -> tuple[float | None, float | None]:
        """(AUC, reference AUC) on the point that measured the most events."""
        pts = [(p, a) for p, a in self._accuracy_points() if a.auc is not None]
        if not pts:
            return None, None
        _, acc = max(pts, key=lambda pa: pa[0].counts.measured)
        return acc.auc, acc.auc_reference

    def accuracy_failures(self) -> list[str]:
        """One phrase per point whose predictions fall outside the tolerance."""
        out = []
        for p, a in self._accuracy_points():
            beyond = (a.share_beyond_tolerance or 0.0) > 0 or (
                a.tolerance is not None and a.max_abs_diff is not None and a.max_abs_diff > a.tolerance
            )
            if beyond:
                share = f"{a.share_beyond_tolerance:.2%} of predictions" if a.share_beyond_tolerance else "predictions"
                tol = f" {a.tolerance:g}" if a.tolerance is not None else ""
                diff = f" (max |diff| {fmt_diff(a.max_abs_diff)})" if a.max_abs_diff is not None else ""
                out.append(f"{p.name}: {share} beyond the tolerance{tol}{diff}")
        return out

    def cpu_s_per_1000(self) -> float | None:
        """CPU seconds per 1000 events at the cost point (median over trials), scorer plus model server."""
        st = self.stats.cpu_s_per_1000 if self.stats else None
        return st.median if st else None

    def peak_rss_mib(self) -> tuple[float | None, float | None]:
        """(client, server) peak RSS at the cost load point, median over trials (`rss_stats_at`: the memory
        to serve that load); without one, the highest peak any counted point saw."""
        cost = self.cost_point()
        if cost is not None:
            client_st, server_st = self.rss_stats_at(cost.name)
            if client_st is not None:
                return client_st.median, (server_st.median if server_st else None)
        costs = [p.cost for p in self.counted_points() if p.cost is not None]
        client = [c.peak_rss_mib for c in costs if c.peak_rss_mib is not None]
        server = [c.server_peak_rss_mib for c in costs if c.server_peak_rss_mib is not None]
        return (max(client) if client else None), (max(server) if server else None)

    def rss_stats_at(self, name: str) -> tuple[Stat | None, Stat | None]:
        """(client, server) peak RSS when load point `name` ended, over trials (each trial a fresh deployment).

        The fixed load points run before the trial's capacity and search, so this is the memory a deployment
        needs to serve that load: model, runtime and client. The process's peak over the whole trial also
        holds what the Kafka consumer prefetched while a 100,000-record backlog waited (up to its
        queued.max.messages.kbytes), which depends on how fast the trial ran, not on the strategy."""
        costs = [p.cost for p in self.load_point_runs(name) if p.cost is not None]
        return stat([c.peak_rss_mib for c in costs]), stat([c.server_peak_rss_mib for c in costs])

    def load_point_runs(self, name: str) -> list[Point]:
        """Load point `name` as each trial that ran it measured it."""
        return [p for t in self.trials if (p := t.point(name)) is not None and p.kind == "load"]

    def load_share(self, name: str) -> float | None:
        """Load point `name`'s offered rate as a share of the strategy's median flat-out capacity in this run
        (None without either): how busy the load point kept it."""
        cap = self.capacity_stat
        offered = [p.offered_per_s for p in self.load_point_runs(name) if p.offered_per_s]
        if cap is None or cap.median <= 0 or not offered:
            return None
        return statistics.median(offered) / cap.median

    def overloaded_at(self, name: str) -> bool:
        """Whether every trial's load point `name` built a backlog (offered above what the strategy can do):
        its latency then measures the queue's growth, not the strategy."""
        pts = self.load_point_runs(name)
        return bool(pts) and all(p.outcome() == "backlog" for p in pts)

    def busy_trials(self) -> int:
        """Trials whose search ended "machine busy": their sustainable rates are not booked."""
        return sum(1 for t in self.trials if not t.error and t.sustainable and t.sustainable.limited_by == MACHINE_BUSY)

    @property
    def short_of_trials(self) -> bool:
        """Whether machine-busy trials left the sustainable median on fewer than two trials (of two or more):
        too few to rank on."""
        ran = sum(1 for t in self.trials if not t.error)
        busy = self.busy_trials()
        return busy > 0 and ran - busy < min(2, ran)

    @property
    def unbooked(self) -> bool:
        """Whether every trial's search met a busy machine: no sustainable rate at all, and not for failing."""
        return not self.error and self.sustainable_stat is None and self.busy_trials() > 0

    def disturbed_steps(self) -> tuple[int, int]:
        """(search steps marked disturbed, search steps) over every trial."""
        steps = [p for t in self.trials for p in t.points if p.kind == "search"]
        return sum(1 for p in steps if p.interference and p.interference.disturbed), len(steps)

    def verdict(self) -> str:
        if self.error:
            return "FAILED"
        pts = self.counted_points()
        if not pts:
            return "no points"
        bad = [p for p in pts if p.invalid]
        if not bad:
            return "VALID" if all(p.verdict for p in pts) else "?"
        return f"INVALID ({len(bad)} of {len(pts)})"


# ---------------------------------------------------------------------------------------------------------
# One scenario, one run
# ---------------------------------------------------------------------------------------------------------


class BundleParity(Model):
    max_abs_diff: float | None = None
    tolerance: float | None = None
    rows: int | None = None
    rows_with_nan: int | None = None
    passed: bool | None = None


class LoopConfig(Model):
    batch_max: int | None = None
    batch_wait_ms: float | None = None
    partitions: int | None = None
    processes: int | None = None


class Ceilings(Model):
    """What frames every loop figure: the load generator's and the measurer's own flat-out rates (each must
    be well above the loop's, or they are what is measured), the loop's own CPU cost per record (the
    identity scorer: decode, produce, commit, no model) and the native relay's (the Kafka client's own limit)."""

    generator_per_s: float | None = None
    measurer_per_s: float | None = None
    loop_cpu_us_per_record: float | None = None
    loop_capacity_per_s: float | None = None
    # the native relay (harness/bench/relay.py: consume, produce the same bytes and headers, commit; no decode,
    # no model, no Python per record) draining a backlog: what the Kafka client itself moves on this machine and
    # broker, records/s from its output's timestamps and the CPU of its process per record
    relay_per_s: float | None = None
    relay_cpu_us_per_record: float | None = None

    def problems(self) -> list[str]:
        out = []
        cap = self.loop_capacity_per_s
        for what, rate in (("load generator", self.generator_per_s), ("measurer", self.measurer_per_s)):
            if cap and rate and rate < 2 * cap:
                out.append(
                    f"the {what} reached {rate:,.0f}/s, less than twice the loop's {cap:,.0f}/s: near the top, it may "
                    "be what is measured"
                )
        return out


class NoiseFloor(Model):
    """The difference between two identical contestants (the identity scorer twice, an A/A pair) in this run:
    differences between strategies smaller than this are this machine's noise, not the strategies'."""

    contestants: list[str] = Field(default_factory=list)
    sustainable_pct: float | None = None  # |A - B| / mean(A, B) of the median sustainable rates, in percent
    capacity_pct: float | None = None
    p99_pct: dict[str, float] = Field(default_factory=dict)  # per load point

    def worst_pct(self) -> float | None:
        vals = [v for v in (self.sustainable_pct, self.capacity_pct) if v is not None]
        return max(vals) if vals else None


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


class ScenarioResult(Model):
    name: str
    description: str = ""
    model_id: str = ""
    bundle: str | None = None
    trainer: str = ""
    slo_p99_ms: float | None = None
    encoding: str | None = None
    loop: LoopConfig | None = None
    validity: dict[str, Any] = Field(default_factory=dict)
    bundle_parity: dict[str, BundleParity] = Field(default_factory=dict)
    trials: int = 1
    confidence: float = DEFAULT_CONFIDENCE
    rounds: list[list[str]] = Field(default_factory=list)  # the adapters in the order each round ran them
    noise: NoiseFloor | None = None
    ceilings: Ceilings | None = None
    experiments: Experiments | None = None
    adapters: list[AdapterResult] = Field(default_factory=list)

    @model_validator(mode="after")
    def _points_know_their_slo(self) -> ScenarioResult:
        """Schemas 1 and 2 kept the SLO on the scenario only: each point is held to it (and the figures that
        depend on it are computed again)."""
        for a in self.adapters:
            missing = [p for t in a.trials for p in t.points if p.slo_p99_ms is None]
            for p in missing:
                p.slo_p99_ms = self.slo_p99_ms
            if missing:
                a.stats = a.compute_stats(self.confidence)
        if self.noise is None:
            self.noise = self.noise_floor()
        return self

    def baselines(self) -> list[AdapterResult]:
        return [a for a in self.adapters if a.is_baseline and not a.error]

    def baseline(self) -> AdapterResult | None:
        return next((a for a in self.adapters if a.is_baseline), None)

    def noise_floor(self) -> NoiseFloor | None:
        """From the first two baseline contestants (the A/A pair), when the run had both."""
        pair = self.baselines()[:2]
        if len(pair) < 2:
            return None
        a, b = pair

        def diff(x: Stat | None, y: Stat | None) -> float | None:
            return round(relative_difference(x.median, y.median) * 100, 1) if x and y else None

        p99 = {}
        for name in self.load_point_names():
            pa, pb = a.point_stat(name), b.point_stat(name)
            d = diff(pa.p99_ms if pa else None, pb.p99_ms if pb else None)
            if d is not None:
                p99[name] = d
        return NoiseFloor(
            contestants=[a.adapter, b.adapter],
            sustainable_pct=diff(a.sustainable_stat, b.sustainable_stat),
            capacity_pct=diff(a.capacity_stat, b.capacity_stat),
            p99_pct=p99,
        )

    def adapter(self, name: str) -> AdapterResult | None:
        return next((a for a in self.adapters if a.adapter == name), None)

    def load_point_names(self) -> list[str]:
        """Every load point name any adapter ran, lowest offered rate first."""
        seen: dict[str, float] = {}
        for a in self.adapters:
            for t in a.trials:
                for p in t.load_points():
                    seen.setdefault(p.name, p.offered_per_s if p.offered_per_s is not None else math.inf)
        return sorted(seen, key=lambda n: (seen[n], n))


class Environment(Model):
    hostname: str | None = None
    cpu_model: str | None = None
    cpu_count: int | None = None
    memory_gib: float | None = None
    os: str | None = None
    python: str | None = None
    kafka_version: str | None = None
    bootstrap: str | None = None
    embedded_broker: bool | None = None
    libraries: dict[str, str] = Field(default_factory=dict)
    load_average_at_start: list[float] = Field(default_factory=list)
    machine_note: str | None = None

    def machine(self) -> str:
        """One line naming the machine: host, CPU, cores, memory, OS."""
        parts = [self.hostname or "unknown host"]
        cpu = self.cpu_model or "unknown CPU"
        if self.cpu_count:
            cpu += f", {self.cpu_count} cores"
        parts.append(cpu)
        if self.memory_gib:
            parts.append(f"{self.memory_gib:g} GiB")
        if self.os:
            parts.append(self.os)
        return " · ".join(parts)

    def kafka(self) -> str:
        if not self.kafka_version and not self.bootstrap:
            return "unknown"
        where = "embedded single-node broker" if self.embedded_broker else (self.bootstrap or "external cluster")
        return f"Apache Kafka {self.kafka_version or '?'} ({where})"


class Results(Model):
    schema_version: int = Field(SCHEMA_VERSION, alias="schema")
    run_id: str = ""
    started_at: str | None = None
    finished_at: str | None = None
    environment: Environment = Field(default_factory=Environment)
    scenarios: list[ScenarioResult] = Field(default_factory=list)

    def to_json(self) -> bytes:
        """results.json as written: the current schema, NaN and infinities as null."""
        self.schema_version = SCHEMA_VERSION
        return self.model_dump_json(by_alias=True, indent=1).encode()

    def write(self, run_dir: Path) -> Path:
        """Write results.json into `run_dir` atomically (a reader never sees half a file)."""
        run_dir.mkdir(parents=True, exist_ok=True)
        path = run_dir / RESULTS_FILE
        fd, tmp = tempfile.mkstemp(dir=run_dir, prefix=".results-", suffix=".json")
        with os.fdopen(fd, "wb") as f:
            f.write(self.to_json())
        os.replace(tmp, path)
        return path


def results_path(run: Path) -> Path:
    """A run directory or its results.json."""
    return run / RESULTS_FILE if run.is_dir() else run


def parse_results(data: Any, source: str = "results") -> Results:
    if isinstance(data, Results):
        return data
    if isinstance(data, dict):
        version = data.get("schema", 1)
        if isinstance(version, int) and version > SCHEMA_VERSION:
            raise ResultsError(
                f"{source}: schema {version} is newer than this harness reads ({SCHEMA_VERSION}); upgrade it"
            )
        if isinstance(version, int) and version < OLDEST_SCHEMA_READ:
            raise ResultsError(f"{source}: schema {version} is older than this harness reads ({OLDEST_SCHEMA_READ})")
        data = {**data, "schema": version}
    try:
        res = Results.model_validate(data)
    except ValidationError as e:
        where, msg, _ = first_validation_error(e)
        raise ResultsError(f"{source}: {where}: {msg}") from None
    if not res.run_id:
        res.run_id = Path(source).parent.name if source.endswith(RESULTS_FILE) else source
    return res


def load_results(run: Path) -> Results:
    path = results_path(run)
    if not path.is_file():
        raise ResultsError(f"no {RESULTS_FILE} at {path}: give a run directory (results/<run-id>) or its results.json")
    try:
        data = orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError as e:
        raise ResultsError(f"{path}: not valid JSON ({e})") from None
    return parse_results(data, str(path))
