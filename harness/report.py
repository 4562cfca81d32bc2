"""Reports: `results/<run-id>/results.json` turned into what people choose a deployment strategy from.

`write_report(run_dir)` writes `report.md` (with PNG charts beside it) and a self-contained `report.html`
(charts inlined as SVG, no external reference, opens offline). Per scenario: the machine, a ranking table,
one recommendation line with its caveats, and four charts: p50/p99 latency against offered load, the HDR
percentile distribution, throughput over time, and sustainable throughput against the Kafka-only ceiling.

`summary_table(results)` is the compact table the CLI prints at the end of a run.

The results are read with lenient pydantic models: every field the orchestrator may leave out is optional,
unknown fields are ignored, and a missing or malformed file is one `error:` line (`ResultsError`).
"""

from __future__ import annotations

import html
import io
import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from rich.table import Table

from harness.errors import HarnessError

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

SCHEMA_VERSION = 1
RESULTS_FILE = "results.json"
CHART_PREFIX = "report-"
BASELINE_FAMILY = "baseline"
DASH = "–"
SAME_THROUGHPUT_BAND = 0.05  # ratios within ±5 % are reported as "about the same"


class ResultsError(HarnessError):
    """results.json is missing, unreadable, or not a schema this harness reads."""

    exit_code = 2


# ---------------------------------------------------------------------------------------------------------
# The results.json schema, read leniently
# ---------------------------------------------------------------------------------------------------------


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    @model_validator(mode="before")
    @classmethod
    def _null_is_missing(cls, data: Any) -> Any:
        """JSON null (NaN and infinities are written as null) reads as a field left out: its default."""
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if v is not None}
        return data


class Percentiles(_Lenient):
    p50: float | None = None
    p90: float | None = None
    p95: float | None = None
    p99: float | None = None
    p999: float | None = None
    max: float | None = None
    mean: float | None = None


class GeneratorStats(_Lenient):
    sent: int | None = None
    achieved_per_s: float | None = None
    send_lag_ms: Percentiles | None = None
    behind_share: float | None = None


class Counts(_Lenient):
    sent: int = 0
    scored: int = 0
    duplicates: int = 0
    lost: int = 0
    dead_lettered: int = 0
    measured: int = 0


class Throughput(_Lenient):
    mean_per_s: float | None = None
    windows_per_s: list[float] = Field(default_factory=list)
    window_s: float = 1.0
    stable: bool | None = None


class Accuracy(_Lenient):
    max_abs_diff: float | None = None
    share_beyond_tolerance: float | None = None
    tolerance: float | None = None
    auc: float | None = None
    auc_reference: float | None = None
    note: str | None = None  # e.g. "accuracy does not apply" for the identity adapter


class Cost(_Lenient):
    cpu_s_per_1000: float | None = None
    peak_rss_mib: float | None = None
    server_cpu_s_per_1000: float | None = None
    server_peak_rss_mib: float | None = None


class Check(_Lenient):
    name: str = ""
    passed: bool = True
    detail: str = ""
    recommendation: str = ""


class Point(_Lenient):
    name: str = ""
    kind: str = "load"
    pattern: str | None = None
    offered_per_s: float | None = None
    duration_s: float | None = None
    warmup_s: float | None = None
    generator: GeneratorStats | None = None
    counts: Counts = Field(default_factory=Counts)
    latency_ms: Percentiles = Field(default_factory=Percentiles)
    queueing_ms: Percentiles | None = None
    scoring_ms: Percentiles | None = None
    delivery_ms: Percentiles | None = None
    hdr_percentiles: list[tuple[float, float | None]] = Field(default_factory=list)
    throughput: Throughput | None = None
    accuracy: Accuracy | None = None
    cost: Cost | None = None
    slo_met: bool | None = None
    verdict: str | None = None
    checks: list[Check] = Field(default_factory=list)
    dead_letter_reasons: dict[str, int] = Field(default_factory=dict)

    @property
    def invalid(self) -> bool:
        return (self.verdict or "").upper() == "INVALID"

    @property
    def held(self) -> bool:
        """VALID (or no verdict), the SLO met, something measured."""
        return not self.invalid and self.slo_met is not False and self.latency_ms.p99 is not None

    def hdr(self) -> list[tuple[float, float]]:
        return [(q, ms) for q, ms in self.hdr_percentiles if ms is not None]


class SearchStep(_Lenient):
    offered_per_s: float
    achieved_per_s: float | None = None
    p99_ms: float | None = None
    ok: bool | None = None
    reason: str | None = None


class Sustainable(_Lenient):
    rows_per_s: float | None = None
    limited_by: str | None = None
    steps: list[SearchStep] = Field(default_factory=list)


class InProcess(_Lenient):
    batch1_rows_per_s: float | None = None
    batch_rows_per_s: float | None = None
    batch_size: int | None = None
    batch1_latency_us: float | None = None


NOT_SEARCHED = "not searched"


class Capacity(_Lenient):
    rows_per_s: float | None = None
    records: int | None = None


class AdapterResult(_Lenient):
    adapter: str
    name: str | None = None
    family: str = ""
    error: str | None = None
    inprocess: InProcess | None = None
    sustainable: Sustainable | None = None
    loop_vs_inprocess_ratio: float | None = None
    capacity: Capacity | None = None
    capacity_vs_inprocess_ratio: float | None = None
    points: list[Point] = Field(default_factory=list)

    @property
    def is_baseline(self) -> bool:
        return self.family == BASELINE_FAMILY or "identity" in (self.name, self.adapter)

    @property
    def searched(self) -> bool:
        s = self.sustainable
        return s is not None and s.limited_by != NOT_SEARCHED and (s.limited_by is not None or bool(s.steps))

    @property
    def sustainable_rate(self) -> float | None:
        """The highest rate held under the SLO: the search's answer, or without a search the highest load point
        that held (a lower bound)."""
        if self.error:
            return None
        s = self.sustainable
        if self.searched:
            assert s is not None
            ok = s.rows_per_s is not None and s.rows_per_s > 0 and s.limited_by not in ("invalid", "error")
            return s.rows_per_s if ok else None
        if s is not None and s.rows_per_s:
            return s.rows_per_s
        held = [p.offered_per_s for p in self.points if p.kind == "load" and p.offered_per_s and p.held]
        return max(held) if held else None

    @property
    def limited_by(self) -> str:
        if self.error:
            return "error"
        if not self.searched:
            return "not searched: highest load point held" if self.sustainable_rate else NOT_SEARCHED
        assert self.sustainable is not None
        return self.sustainable.limited_by or DASH

    def counted_points(self) -> list[Point]:
        """The points whose figures stand: every load point, and the search steps that held. The step past the
        sustainable rate fails by design (backlog, lost records, INVALID): that is how the search ends."""
        steps = self.sustainable.steps if self.sustainable else []
        held = {round(s.offered_per_s, 1) for s in steps if s.ok}
        out = []
        for p in self.points:
            if p.kind != "search":
                out.append(p)
            elif steps:
                if p.offered_per_s is not None and round(p.offered_per_s, 1) in held:
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

    def cost_point(self) -> Point | None:
        """CPU and memory are read at the highest load point that has them (the most representative)."""
        pts = [p for p in self.load_points() if p.cost is not None and p.cost.cpu_s_per_1000 is not None]
        return pts[-1] if pts else None

    def peak_rss_mib(self) -> tuple[float | None, float | None]:
        costs = [p.cost for p in self.counted_points() if p.cost is not None]
        client = [c.peak_rss_mib for c in costs if c.peak_rss_mib is not None]
        server = [c.server_peak_rss_mib for c in costs if c.server_peak_rss_mib is not None]
        return (max(client) if client else None), (max(server) if server else None)

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


class BundleParity(_Lenient):
    max_abs_diff: float | None = None
    tolerance: float | None = None
    rows: int | None = None
    rows_with_nan: int | None = None
    passed: bool | None = None


class LoopConfig(_Lenient):
    batch_max: int | None = None
    batch_wait_ms: float | None = None
    partitions: int | None = None
    processes: int | None = None


class ScenarioResult(_Lenient):
    name: str
    description: str = ""
    model_id: str = ""
    trainer: str = ""
    slo_p99_ms: float | None = None
    encoding: str | None = None
    loop: LoopConfig | None = None
    bundle_parity: dict[str, BundleParity] = Field(default_factory=dict)
    adapters: list[AdapterResult] = Field(default_factory=list)

    def baseline(self) -> AdapterResult | None:
        return next((a for a in self.adapters if a.is_baseline), None)

    def adapter(self, name: str) -> AdapterResult | None:
        return next((a for a in self.adapters if a.adapter == name), None)

    def load_point_names(self) -> list[str]:
        """Every load point name any adapter ran, lowest offered rate first."""
        seen: dict[str, float] = {}
        for a in self.adapters:
            for p in a.load_points():
                seen.setdefault(p.name, p.offered_per_s if p.offered_per_s is not None else math.inf)
        return sorted(seen, key=lambda n: (seen[n], n))


class Environment(_Lenient):
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


class Results(_Lenient):
    schema_version: int | None = Field(None, alias="schema")
    run_id: str = ""
    started_at: str | None = None
    finished_at: str | None = None
    environment: Environment = Field(default_factory=Environment)
    scenarios: list[ScenarioResult] = Field(default_factory=list)


def results_path(run: Path) -> Path:
    """A run directory or its results.json."""
    return run / RESULTS_FILE if run.is_dir() else run


def parse_results(data: Any, source: str = "results") -> Results:
    if isinstance(data, Results):
        return data
    try:
        res = Results.model_validate(data)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(x) for x in first["loc"]) or "(top level)"
        raise ResultsError(f"{source}: {where}: {first['msg']}") from None
    if res.schema_version is not None and res.schema_version > SCHEMA_VERSION:
        raise ResultsError(
            f"{source}: schema {res.schema_version} is newer than this harness reads ({SCHEMA_VERSION}); upgrade it"
        )
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


# ---------------------------------------------------------------------------------------------------------
# Numbers as people read them
# ---------------------------------------------------------------------------------------------------------


def fmt_rate(v: float | None) -> str:
    if v is None:
        return DASH
    return f"{v:,.0f}" if abs(v) >= 100 else f"{v:.3g}"


def fmt_ms(v: float | None) -> str:
    if v is None:
        return DASH
    if abs(v) >= 100:
        return f"{v:,.0f}"
    return f"{v:.1f}" if abs(v) >= 10 else f"{v:.2f}"


def fmt_num(v: float | None, sig: int = 3) -> str:
    if v is None:
        return DASH
    return f"{v:,.0f}" if abs(v) >= 10**sig else f"{v:.{sig}g}"


def fmt_mib(v: float | None) -> str:
    return DASH if v is None else f"{v:,.0f}"


def fmt_diff(v: float | None) -> str:
    return DASH if v is None else ("0" if v == 0 else f"{v:.1e}")


def fmt_ratio(v: float) -> str:
    return f"{v:.2g}x" if v < 10 else f"{v:,.0f}x"


def fmt_pct(v: float | None) -> str:
    if v is None:
        return DASH
    return f"{v:.0%}" if v == 0 or abs(v) >= 0.01 else f"{v * 100:.2g}%"


# ---------------------------------------------------------------------------------------------------------
# Analysis: ranking, recommendation, caveats (pure functions of the results)
# ---------------------------------------------------------------------------------------------------------


@dataclass
class Ranked:
    adapter: AdapterResult
    rank: int | None  # None for the Kafka-only baseline
    qualifies: bool
    why_not: str = ""


@dataclass
class Analysis:
    scenario: ScenarioResult
    ranked: list[Ranked]
    best: AdapterResult | None
    recommendation: str
    caveats: list[str] = field(default_factory=list)

    @property
    def ceiling(self) -> float | None:
        b = self.scenario.baseline()
        return b.sustainable_rate if b else None


def _cpu(a: AdapterResult) -> float | None:
    """CPU seconds per 1000 events at the cost point, scorer plus model server when there is one."""
    p = a.cost_point()
    if p is None or p.cost is None or p.cost.cpu_s_per_1000 is None:
        return None
    return p.cost.cpu_s_per_1000 + (p.cost.server_cpu_s_per_1000 or 0.0)


def rank(sc: ScenarioResult) -> list[Ranked]:
    """Strategies by sustainable throughput under the SLO. Those that met the SLO at no tested rate, or whose
    predictions fall outside the tolerance, rank after the others; the Kafka-only baseline comes last, unranked."""
    rows = []
    for a in sc.adapters:
        if a.is_baseline:
            continue
        why = []
        if a.error:
            why.append("failed")
        elif a.sustainable_rate is None:
            why.append("met the SLO at no tested rate")
        if a.accuracy_failures():
            why.append("accuracy beyond tolerance")
        rows.append(Ranked(a, None, not why, "; ".join(why)))
    rows.sort(key=lambda r: (not r.qualifies, -(r.adapter.sustainable_rate or 0.0), r.adapter.adapter))
    for i, r in enumerate(rows, 1):
        r.rank = i
    rows += [Ranked(a, None, False, "Kafka-only ceiling") for a in sc.adapters if a.is_baseline]
    return rows


def _caveats(sc: ScenarioResult) -> list[str]:
    out = []
    base = sc.baseline()
    ceiling = base.sustainable_rate if base else None
    above = [a.adapter for a in sc.adapters if a is not base and ceiling and (a.sustainable_rate or 0) > ceiling]
    if above:
        out.append(
            f"{', '.join(above)} sustained more than the Kafka-only ceiling ({fmt_rate(ceiling)}/s): the ceiling's "
            "search met a latency spike (on a shared machine, typically a broker GC pause; see "
            ".harness/broker/gc.log). "
            "Differences of one search step are within this run's noise"
        )
    for fmt, par in sc.bundle_parity.items():
        if par.passed is False:
            out.append(
                f"bundle parity: the {fmt} export differs from the native model by {fmt_diff(par.max_abs_diff)} "
                f"(tolerance {fmt_diff(par.tolerance)})"
            )
    for a in _ordered(sc):
        if a.error:
            out.append(f"{a.adapter} failed: {a.error}")
        counted = a.counted_points()
        for p in counted:
            if p.invalid:
                failed = [c.name for c in p.checks if not c.passed]
                why = f" (failed: {', '.join(failed)})" if failed else ""
                out.append(f"{a.adapter} @ {p.name}: INVALID{why}")
        out += [f"{a.adapter} @ {msg}" for msg in a.accuracy_failures()]
        for what, label in (
            ("lost", "lost"),
            ("dead_lettered", "dead-lettered"),
            ("duplicates", "duplicate (at-least-once redelivery)"),
        ):
            per_point = [(p.name, getattr(p.counts, what)) for p in counted if getattr(p.counts, what)]
            if per_point:
                total = sum(n for _, n in per_point)
                where = ", ".join(f"{n} @ {name}" for name, n in per_point)
                out.append(f"{a.adapter}: {total:,} record{'s' if total != 1 else ''} {label} ({where})")
        reasons: dict[str, int] = {}
        for p in counted:
            for reason, n in p.dead_letter_reasons.items():
                reasons[reason] = reasons.get(reason, 0) + n
        if reasons:
            top = sorted(reasons.items(), key=lambda kv: -kv[1])[:3]
            out.append(f"{a.adapter}: dead-letter reasons: " + "; ".join(f"{r} ({n:,})" for r, n in top))
        unstable = [p.name for p in counted if p.throughput and p.throughput.stable is False and not p.invalid]
        if unstable:
            out.append(f"{a.adapter}: throughput not stable over the windows @ {', '.join(unstable)}")
        lim = a.sustainable.limited_by if a.sustainable else None
        if a.sustainable_rate is not None and lim in ("load generator", "max rate"):
            out.append(
                f"{a.adapter}: the sustainable rate was limited by the {lim}, not the SLO: its ceiling is higher"
            )
    if any(not a.searched and not a.error for a in sc.adapters):
        out.append(
            "the sustainable throughput was not searched for every adapter: those rates are the highest fixed "
            "load point that held, a lower bound"
        )
    return out


def analyse(sc: ScenarioResult) -> Analysis:
    ranked = rank(sc)
    qualified = [r.adapter for r in ranked if r.qualifies]
    best = qualified[0] if qualified else None
    slo = f"the {sc.slo_p99_ms:g} ms p99 SLO" if sc.slo_p99_ms is not None else "the SLO"
    strategies = [r.adapter for r in ranked if r.rank is not None]
    if not strategies:
        text = "No deployment strategy was measured in this scenario."
    elif best is None:
        text = f"No strategy meets {slo} at any tested rate with predictions within tolerance: none to recommend."
    else:
        rate = best.sustainable_rate
        assert rate is not None
        base = sc.baseline()
        ceiling = base.sustainable_rate if base else None
        of_ceiling = f", {rate / ceiling:.0%} of the Kafka-only ceiling" if ceiling else ""
        family = f" ({best.family})" if best.family and best.family != best.adapter else ""
        what = "sustainable throughput" if best.searched else "tested rate"
        text = (
            f"Use **{best.adapter}**{family}: it meets {slo} at the highest {what}, "
            f"{fmt_rate(rate)} rows/s{of_ceiling}."
        )
        others = [a for a in strategies if a is not best]
        phrases: list[str] = []
        never: list[str] = []
        failed: list[str] = []
        for o in others:
            orate = o.sustainable_rate
            if orate is None:
                (failed if o.error else never).append(o.adapter)
                continue
            ratio = rate / orate
            if abs(ratio - 1.0) <= SAME_THROUGHPUT_BAND:
                phrases.append(f"about the same throughput as {o.adapter}")
            else:
                phrases.append(f"{fmt_ratio(ratio)} the throughput of {o.adapter}")
            if o.accuracy_failures():
                phrases[-1] += " (whose predictions fall outside tolerance)"
        if phrases:
            text += f" {best.adapter} sustains " + ", ".join(phrases) + "."
        if never:
            text += f" {', '.join(never)} met the SLO at no tested rate."
        if failed:
            text += f" {', '.join(failed)} failed to run (see the caveats)."
        bcpu = _cpu(best)
        cpu_phrases = []
        for o in others:
            ocpu = _cpu(o)
            if bcpu and ocpu:
                cpu_phrases.append(f"{o.adapter} {fmt_ratio(ocpu / bcpu)}")
        if cpu_phrases:
            text += f" CPU per event relative to {best.adapter}: " + ", ".join(cpu_phrases) + "."
    return Analysis(sc, ranked, best, text, _caveats(sc))


# ---------------------------------------------------------------------------------------------------------
# Tables
# ---------------------------------------------------------------------------------------------------------


@dataclass
class TableData:
    header: list[str]
    rows: list[list[str]]
    note: str = ""


def ranking_table(an: Analysis) -> TableData:
    sc = an.scenario
    names = sc.load_point_names()
    header = ["#", "Adapter", "Family", "Sustainable rows/s", "Limited by", "% of ceiling"]
    header += [f"p50 / p99 ms @ {n}" for n in names]
    header += ["max abs diff", "AUC / reference", "CPU s / 1000 ev", "Peak RSS MiB", "Verdict"]
    ceiling = an.ceiling
    rows = []
    for r in an.ranked:
        a = r.adapter
        rate = a.sustainable_rate
        lim = a.limited_by
        row = [
            str(r.rank) if r.rank is not None else "ceiling",
            a.adapter,
            a.family or DASH,
            fmt_rate(rate) if rate is not None else "none",
            lim,
            fmt_pct(rate / ceiling) if (rate is not None and ceiling) else DASH,
        ]
        for n in names:
            p = a.point(n)
            if p is None:
                row.append(DASH)
                continue
            mark = " ✗" if p.invalid or p.slo_met is False else ""
            row.append(f"{fmt_ms(p.latency_ms.p50)} / {fmt_ms(p.latency_ms.p99)}{mark}")
        auc, auc_ref = a.auc()
        row.append("n/a" if a.is_baseline else fmt_diff(a.max_abs_diff()))
        if a.is_baseline or auc is None:
            row.append("n/a" if a.is_baseline else DASH)
        else:
            row.append(f"{auc:.4f}" + (f" / {auc_ref:.4f}" if auc_ref is not None else ""))
        cp = a.cost_point()
        cost = cp.cost if cp else None
        cpu = fmt_num(cost.cpu_s_per_1000) if cost else DASH
        if cost and cost.server_cpu_s_per_1000 is not None:
            cpu += f" + {fmt_num(cost.server_cpu_s_per_1000)} server"
        row.append(cpu)
        rss, srv = a.peak_rss_mib()
        mem = fmt_mib(rss)
        if srv is not None:
            mem += f" + {fmt_mib(srv)} server"
        row.append(mem)
        verdict = a.verdict()
        if r.why_not and r.rank is not None and not a.error:
            verdict += f"; {r.why_not}"
        row.append(verdict)
        rows.append(row)
    note = (
        "Ranked by sustainable throughput under the SLO; strategies that met it at no tested rate, or whose "
        "predictions fall outside the tolerance, rank after the others. ✗ marks a load point that missed the SLO "
        "or was INVALID. CPU is read at each adapter's highest load point; memory is the peak over the load points "
        "and the search steps that held. AUC is the adapter's on the events it scored, beside the native "
        "model's on the same events."
    )
    return TableData(header, rows, note)


def _ordered(sc: ScenarioResult) -> list[AdapterResult]:
    return [r.adapter for r in rank(sc)]


def framing_table(sc: ScenarioResult) -> TableData:
    header = ["Adapter", "In-process rows/s (batch 1)", "In-process rows/s (batch)", "Batch-1 latency µs"]
    header += ["Sustainable (SLO) / in process", "Loop capacity (backlog) rows/s", "Capacity / in process"]
    rows = []
    for a in _ordered(sc):
        ip = a.inprocess
        if ip is None and a.loop_vs_inprocess_ratio is None:
            continue
        batch = DASH
        if ip and ip.batch_rows_per_s is not None:
            batch = fmt_rate(ip.batch_rows_per_s) + (f" (×{ip.batch_size})" if ip.batch_size else "")
        rows.append(
            [
                a.adapter,
                fmt_rate(ip.batch1_rows_per_s) if ip else DASH,
                batch,
                fmt_num(ip.batch1_latency_us) if ip else DASH,
                fmt_pct(a.loop_vs_inprocess_ratio),
                fmt_rate(a.capacity.rows_per_s) if a.capacity and a.capacity.rows_per_s else DASH,
                fmt_pct(a.capacity_vs_inprocess_ratio),
            ]
        )
    note = (
        "What each adapter does alone, outside Kafka, and how much of it survives inside the scoring loop: "
        "under the latency SLO (sustainable) and flat out with a backlog (capacity, full batches)."
    )
    return TableData(header, rows, note)


def parity_table(sc: ScenarioResult) -> TableData:
    header = ["Format", "max abs diff", "Tolerance", "Rows", "Rows with NaN", "Passed"]
    rows = [
        [
            fmt,
            fmt_diff(p.max_abs_diff),
            fmt_diff(p.tolerance),
            DASH if p.rows is None else f"{p.rows:,}",
            DASH if p.rows_with_nan is None else f"{p.rows_with_nan:,}",
            {True: "yes", False: "NO", None: DASH}[p.passed],
        ]
        for fmt, p in sc.bundle_parity.items()
    ]
    return TableData(header, rows, "Each exported format against the native model on the held-out rows.")


def search_table(sc: ScenarioResult) -> TableData:
    header = ["Adapter", "Offered /s", "Achieved /s", "p99 ms", "OK", "Reason"]
    rows = []
    for a in _ordered(sc):
        for s in a.sustainable.steps if a.sustainable else []:
            ok = {True: "yes", False: "no", None: DASH}[s.ok]
            rows.append(
                [a.adapter, fmt_rate(s.offered_per_s), fmt_rate(s.achieved_per_s), fmt_ms(s.p99_ms), ok, s.reason or ""]
            )
    return TableData(header, rows, "The throughput search: each step offered a rate and kept it only if the SLO held.")


def failed_checks(sc: ScenarioResult) -> list[tuple[str, Check]]:
    return [
        (f"{a.adapter} @ {p.name}", c)
        for a in _ordered(sc)
        for p in a.counted_points()
        for c in p.checks
        if not c.passed
    ]


def summary_table(results: Results | dict[str, Any]) -> Table:
    """Compact end-of-run table: one row per scenario and adapter, best strategy first."""
    res = parse_results(results)
    t = Table(title=f"Run {res.run_id}" if res.run_id else None, title_justify="left")
    for col, kw in (
        ("Scenario", {}),
        ("Adapter", {}),
        ("Family", {}),
        ("Sustainable rows/s", {"justify": "right"}),
        ("p99 ms @ top load", {"justify": "right"}),
        ("max abs diff", {"justify": "right"}),
        ("CPU s/1000", {"justify": "right"}),
        ("Peak MiB", {"justify": "right"}),
        ("Verdict", {}),
    ):
        t.add_column(col, **kw)  # type: ignore[arg-type]
    for sc in res.scenarios:
        an = analyse(sc)
        for r in an.ranked:
            a = r.adapter
            pts = a.load_points()
            top = pts[-1] if pts else None
            p99 = f"{fmt_ms(top.latency_ms.p99)} @ {top.name}" if top else DASH
            verdict = a.verdict()
            style = "green" if verdict == "VALID" else "red" if verdict.startswith("INVALID") else "yellow"
            name = f"[bold]{a.adapter}[/]" if a is an.best else a.adapter
            t.add_row(
                sc.name,
                name,
                a.family or DASH,
                fmt_rate(a.sustainable_rate) if a.sustainable_rate is not None else "none",
                p99,
                "n/a" if a.is_baseline else fmt_diff(a.max_abs_diff()),
                fmt_num(_cpu(a)),
                fmt_mib(a.peak_rss_mib()[0]),
                f"[{style}]{verdict}[/]",
            )
        if an.best is not None:
            t.add_row(sc.name, f"→ use {an.best.adapter}", "", "", "", "", "", "", "", style="dim")
    return t


# ---------------------------------------------------------------------------------------------------------
# Charts (matplotlib, object API only: no pyplot, no global backend)
# ---------------------------------------------------------------------------------------------------------

_PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#bcbd22", "#17becf"]
_BASELINE_COLOR = "#7f7f7f"
_HDR_TICKS = [(0.0, "0%"), (90.0, "90%"), (99.0, "99%"), (99.9, "99.9%"), (99.99, "99.99%"), (99.999, "99.999%")]


@dataclass
class Chart:
    key: str  # file name part, e.g. "latency-vs-load"
    title: str
    caption: str
    figure: Figure


def _colors(an: Analysis) -> dict[str, str]:
    out, i = {}, 0
    for r in an.ranked:
        if r.adapter.is_baseline:
            out[r.adapter.adapter] = _BASELINE_COLOR
        else:
            out[r.adapter.adapter] = _PALETTE[i % len(_PALETTE)]
            i += 1
    return out


def _new_figure(width: float = 8.0, height: float = 4.6) -> tuple[Figure, Axes]:
    try:
        from matplotlib.figure import Figure
    except ImportError:  # pragma: no cover - matplotlib is in the [report] extra
        raise ResultsError("charts need matplotlib: pip install 'kafka-model-harness[report]'") from None
    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    ax = fig.add_subplot()
    ax.grid(True, which="major", alpha=0.3)
    return fig, ax


def _slo_line(ax: Axes, sc: ScenarioResult) -> None:
    if sc.slo_p99_ms is None:
        return
    ax.axhline(sc.slo_p99_ms, color="#c00000", linestyle=":", linewidth=1.2, label=f"SLO p99 {sc.slo_p99_ms:g} ms")


def _plain_ticks(axis: Any) -> None:
    """Log axes labelled 1, 10, 100 (not 10^0, 10^1, 10^2)."""
    from matplotlib.ticker import FuncFormatter

    axis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:,.0f}" if v >= 1 else f"{v:g}"))


def chart_latency_vs_load(an: Analysis, colors: dict[str, str]) -> Chart | None:
    sc = an.scenario
    fig, ax = _new_figure()
    drawn = False
    for r in an.ranked:
        a = r.adapter
        by_rate: dict[float, tuple[float | None, float | None, bool]] = {}
        for s in a.sustainable.steps if a.sustainable else []:
            by_rate[s.offered_per_s] = (None, s.p99_ms, s.ok is not False)
        for p in a.points:  # load points and search points carry the full distribution
            if p.offered_per_s is None:
                continue
            ok = not p.invalid and p.slo_met is not False
            by_rate[p.offered_per_s] = (p.latency_ms.p50, p.latency_ms.p99, ok)
        if not by_rate:
            continue
        xs = sorted(by_rate)
        c = colors[a.adapter]
        p99 = [(x, by_rate[x][1]) for x in xs if by_rate[x][1] is not None]
        p50 = [(x, by_rate[x][0]) for x in xs if by_rate[x][0] is not None]
        if p99:
            ax.plot(*zip(*p99, strict=True), color=c, marker="o", linewidth=1.8, label=f"{a.adapter} p99")
            bad = [(x, by_rate[x][1]) for x in xs if by_rate[x][1] is not None and not by_rate[x][2]]
            if bad:
                bx, by = zip(*bad, strict=True)
                ax.plot(bx, by, "X", color=c, markersize=10, markeredgecolor="black", zorder=5)
            drawn = True
        if p50:
            ax.plot(
                *zip(*p50, strict=True), color=c, marker=".", linestyle="--", linewidth=1.2, label=f"{a.adapter} p50"
            )
            drawn = True
    if not drawn:
        return None
    _slo_line(ax, sc)
    ax.set_yscale("log")
    ax.set_xscale("log")
    _plain_ticks(ax.xaxis)
    _plain_ticks(ax.yaxis)
    ax.set_xlabel("offered load (events/s)")
    ax.set_ylabel("latency from intended send time (ms)")
    ax.set_title(f"{sc.name}: latency against offered load")
    ax.legend(fontsize=8, ncols=2, loc="upper left")
    return Chart(
        "latency-vs-load",
        "Latency against offered load",
        "p99 (solid) and p50 (dashed) per adapter, from the fixed load points and the throughput search; "
        "× marks a rate that missed the SLO or was INVALID.",
        fig,
    )


def _chart_point(sc: ScenarioResult, needs: Callable[[Point], bool]) -> dict[str, Point]:
    """Per adapter, the point to show: the highest load point every adapter ran (a fair comparison), else each
    adapter's own highest."""
    have = {a.adapter: [p for p in a.load_points() if needs(p)] for a in sc.adapters}
    have = {k: v for k, v in have.items() if v}
    if not have:
        return {}
    common = set.intersection(*({p.name for p in v} for v in have.values()))
    for name in reversed(sc.load_point_names()):
        if name in common:
            return {k: next(p for p in v if p.name == name) for k, v in have.items()}
    return {k: v[-1] for k, v in have.items()}


def _at(chosen: dict[str, Point]) -> str:
    names = {p.name for p in chosen.values()}
    if len(names) == 1:
        p = next(iter(chosen.values()))
        rate = f" ({fmt_rate(p.offered_per_s)}/s offered)" if p.offered_per_s is not None else ""
        return f" at {p.name}{rate}"
    return " at each adapter's highest load point"


def _hdr_xy(pairs: Sequence[tuple[float, float]]) -> tuple[list[float], list[float]]:
    scale = 100.0 if pairs and max(p for p, _ in pairs) <= 1.0 and len(pairs) > 2 else 1.0
    xs, ys = [], []
    for pct, ms in pairs:
        q = pct * scale / 100.0
        if q >= 1.0 or q < 0.0:
            continue
        xs.append(1.0 / (1.0 - q))
        ys.append(ms)
    return xs, ys


def chart_hdr(an: Analysis, colors: dict[str, str]) -> Chart | None:
    sc = an.scenario
    chosen = _chart_point(sc, lambda p: bool(p.hdr()))
    if not chosen:
        return None
    fig, ax = _new_figure()
    multi = len({p.name for p in chosen.values()}) > 1
    for r in an.ranked:
        p = chosen.get(r.adapter.adapter)
        if p is None:
            continue
        xs, ys = _hdr_xy(p.hdr())
        label = f"{r.adapter.adapter} @ {p.name}" if multi else r.adapter.adapter
        ax.plot(xs, ys, color=colors[r.adapter.adapter], linewidth=1.6, label=label)
    _slo_line(ax, sc)
    ys_all = [ms for p in chosen.values() for _, ms in p.hdr() if ms > 0]
    if ys_all and max(ys_all) / min(ys_all) > 30:
        ax.set_yscale("log")
        _plain_ticks(ax.yaxis)
    else:
        ax.set_ylim(bottom=0)
    ax.set_xscale("log")
    ax.set_xticks([1.0 / (1.0 - t / 100.0) for t, _ in _HDR_TICKS], [lbl for _, lbl in _HDR_TICKS])
    ax.minorticks_off()
    ax.set_xlim(left=1.0)
    ax.set_xlabel("percentile")
    ax.set_ylabel("latency (ms)")
    ax.set_title(f"{sc.name}: latency by percentile{_at(chosen)}")
    ax.legend(fontsize=8, loc="upper left")
    return Chart(
        "hdr-percentiles",
        "Latency percentile distribution",
        f"HdrHistogram percentile distribution{_at(chosen)}; the x axis is 1/(1-p), so each step right is one "
        "more nine.",
        fig,
    )


def chart_throughput_windows(an: Analysis, colors: dict[str, str]) -> Chart | None:
    sc = an.scenario
    chosen = _chart_point(sc, lambda p: bool(p.throughput and p.throughput.windows_per_s))
    if not chosen:
        return None
    fig, ax = _new_figure()
    multi = len({p.name for p in chosen.values()}) > 1
    offered = set()
    drawn = [r for r in an.ranked if r.adapter.adapter in chosen]
    for i, r in enumerate(drawn):
        p = chosen[r.adapter.adapter]
        if p.throughput is None:
            continue
        # scorers that keep up produce the same windows: wider lines underneath keep each one visible
        width = 1.4 + 1.2 * (len(drawn) - 1 - i)
        w = p.throughput.window_s or 1.0
        ys = p.throughput.windows_per_s
        xs = [i * w for i in range(len(ys) + 1)]
        label = f"{r.adapter.adapter} @ {p.name}" if multi else r.adapter.adapter
        ax.step(xs, [*ys, ys[-1]], where="post", color=colors[r.adapter.adapter], linewidth=width, label=label)
        if p.offered_per_s is not None:
            offered.add(p.offered_per_s)
    for i, rate in enumerate(sorted(offered)):
        ax.axhline(rate, color="black", linestyle="--", linewidth=0.9, label="offered" if i == 0 else None)
    ax.set_ylim(bottom=0)
    ax.set_xlabel("time into the measured window (s)")
    ax.set_ylabel("scored events/s")
    ax.set_title(f"{sc.name}: throughput over time{_at(chosen)}")
    ax.legend(fontsize=8, loc="lower right")
    return Chart(
        "throughput-windows",
        "Throughput over time",
        f"Scored events per window{_at(chosen)}; a flat line at the offered rate is a stable, keeping-up scorer.",
        fig,
    )


def chart_sustainable(an: Analysis, colors: dict[str, str]) -> Chart | None:
    sc = an.scenario
    strategies = [r.adapter for r in an.ranked if r.rank is not None]
    if not strategies:
        return None
    fig, ax = _new_figure(height=max(2.6, 0.55 * len(strategies) + 1.6))
    labels = [a.adapter for a in strategies][::-1]
    values = [a.sustainable_rate or 0.0 for a in strategies][::-1]
    bars = ax.barh(labels, values, color=[colors[a] for a in labels])
    ceiling = an.ceiling
    top = max([*values, ceiling or 0.0]) or 1.0
    for bar, a in zip(bars, strategies[::-1], strict=True):
        rate = a.sustainable_rate
        text = "none met the SLO" if rate is None else fmt_rate(rate)
        if rate is not None and ceiling:
            text += f" ({rate / ceiling:.0%} of ceiling)"
        ax.text(bar.get_width() + top * 0.01, bar.get_y() + bar.get_height() / 2, text, va="center", fontsize=8)
    if ceiling:
        line = ax.axvline(ceiling, color=_BASELINE_COLOR, linestyle="--", linewidth=1.5)
        label = f"Kafka-only ceiling (identity): {fmt_rate(ceiling)}/s"
        ax.legend(handles=[line], labels=[label], fontsize=8, loc="lower right")
    ax.set_xlim(0, top * 1.35)
    ax.grid(True, axis="x", alpha=0.3)
    ax.grid(False, axis="y")
    ax.set_xlabel("sustainable throughput under the SLO (events/s)")
    ax.set_title(f"{sc.name}: sustainable throughput per strategy")
    return Chart(
        "sustainable-throughput",
        "Sustainable throughput",
        "The highest offered rate each strategy sustained with p99 under the SLO, against the Kafka-only ceiling "
        "(the identity adapter: the loop with no model).",
        fig,
    )


def build_charts(an: Analysis) -> list[Chart]:
    colors = _colors(an)
    makers = (chart_latency_vs_load, chart_hdr, chart_throughput_windows, chart_sustainable)
    return [c for c in (m(an, colors) for m in makers) if c is not None]


_SVG_REF = re.compile(r'(\bid="|href="#|url\(#)([^"\)]+)')


def figure_svg(fig: Figure, prefix: str) -> str:
    """The figure as an inline <svg> element: no XML prolog, no metadata, ids made unique per chart."""
    import matplotlib

    buf = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "path", "svg.hashsalt": prefix}):
        fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None, "Format": None, "Type": None})
    svg = buf.getvalue()
    svg = svg[svg.index("<svg") :]
    svg = re.sub(r"<metadata>.*?</metadata>", "", svg, flags=re.DOTALL)
    svg = _SVG_REF.sub(lambda m: m.group(1) + prefix + m.group(2), svg)
    svg = re.sub(r'<svg ([^>]*?)width="[^"]*" height="[^"]*"', r'<svg \1class="chart-svg" role="img"', svg, count=1)
    return svg


# ---------------------------------------------------------------------------------------------------------
# Writers
# ---------------------------------------------------------------------------------------------------------


LEFT_COLUMNS = frozenset({"Adapter", "Family", "Format", "Verdict", "Reason", "Limited by", "OK", "Passed"})


def _slug(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", s).strip("-") or "scenario"


def _md_cell(s: str) -> str:
    return s.replace("|", "\\|").replace("\n", " ")


def _md_table(t: TableData) -> list[str]:
    if not t.rows:
        return []
    out = ["| " + " | ".join(_md_cell(h) for h in t.header) + " |"]
    out.append("|" + "|".join("---" if h in LEFT_COLUMNS else "--:" for h in t.header) + "|")
    out += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in t.rows]
    if t.note:
        out += ["", f"_{t.note}_"]
    return out + [""]


def _header_facts(res: Results) -> list[tuple[str, str]]:
    env = res.environment
    facts = [("Machine", env.machine()), ("Kafka", env.kafka())]
    if env.python:
        facts.append(("Python", env.python))
    if env.libraries:
        facts.append(("Libraries", ", ".join(f"{k} {v}" for k, v in sorted(env.libraries.items()))))
    if res.started_at or res.finished_at:
        facts.append(("Run", f"{res.started_at or '?'} → {res.finished_at or '?'}"))
    if env.machine_note:
        facts.append(("Note", env.machine_note))
    return facts


def _scenario_facts(sc: ScenarioResult) -> list[tuple[str, str]]:
    facts = []
    if sc.model_id or sc.trainer:
        facts.append(("Model", " ".join(x for x in (sc.model_id, f"({sc.trainer})" if sc.trainer else "") if x)))
    if sc.slo_p99_ms is not None:
        facts.append(("SLO", f"p99 ≤ {sc.slo_p99_ms:g} ms, measured from the intended send time"))
    if sc.loop:
        lp = sc.loop
        parts = [
            f"{k} {v}"
            for k, v in (
                ("encoding", sc.encoding),
                ("batch_max", lp.batch_max),
                ("batch_wait_ms", lp.batch_wait_ms),
                ("partitions", lp.partitions),
                ("processes", lp.processes),
            )
            if v is not None
        ]
        facts.append(("Loop", ", ".join(parts)))
    return facts


def _render_markdown(res: Results, analyses: list[Analysis], charts: dict[str, list[tuple[str, Chart]]]) -> str:
    lines = [f"# Benchmark report: {res.run_id}", ""]
    lines += [f"- **{k}:** {v}" for k, v in _header_facts(res)]
    lines.append("")
    for an in analyses:
        sc = an.scenario
        lines += [f"## Scenario {sc.name}", ""]
        if sc.description:
            lines += [sc.description, ""]
        lines += [f"- **{k}:** {v}" for k, v in _scenario_facts(sc)]
        lines += ["", f"**Recommendation:** {an.recommendation}", ""]
        if an.caveats:
            lines += ["**Caveats:**", ""] + [f"- {c}" for c in an.caveats] + [""]
        lines += ["### Ranking", ""] + _md_table(ranking_table(an))
        for fname, ch in charts[sc.name]:
            lines += [f"### {ch.title}", "", f"![{ch.title}]({fname})", "", f"_{ch.caption}_", ""]
        for title, t in (
            ("In process and in the loop", framing_table(sc)),
            ("Throughput search", search_table(sc)),
            ("Bundle parity", parity_table(sc)),
        ):
            if t.rows:
                lines += [f"### {title}", ""] + _md_table(t)
        failed = failed_checks(sc)
        if failed:
            lines += ["### Failed checks", ""]
            for where, c in failed:
                rec = f" → {c.recommendation}" if c.recommendation else ""
                lines.append(f"- **{where}** `{c.name}`: {c.detail}{rec}")
            lines.append("")
    return "\n".join(lines).rstrip() + "\n"


_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,"Liberation Sans",sans-serif;margin:2rem auto;
max-width:1200px;padding:0 1rem;color:#1b1b1b;line-height:1.45}
h1{font-size:1.6rem;margin-bottom:.3rem}h2{margin-top:2.5rem;border-bottom:2px solid #ddd;padding-bottom:.2rem}
dl.facts{display:grid;grid-template-columns:max-content 1fr;gap:.15rem 1rem;margin:.5rem 0 1rem}
dl.facts dt{font-weight:600}dl.facts dd{margin:0}
table{border-collapse:collapse;font-size:.85rem;margin:.5rem 0;display:block;overflow-x:auto}
th,td{border:1px solid #ccc;padding:.25rem .5rem;text-align:right;white-space:nowrap}
th{background:#f3f3f3;white-space:normal;vertical-align:bottom;min-width:3.5rem}td.l,th.l{text-align:left}
tr.best td{background:#eaf6ea;font-weight:600}tr.baseline td{color:#666;font-style:italic}
td.bad{color:#b00000}p.note{font-size:.8rem;color:#555;margin-top:0}
.recommendation{background:#eef4fb;border-left:4px solid #1f77b4;padding:.6rem .9rem;margin:1rem 0}
.caveats{background:#fff6e5;border-left:4px solid #e0a000;padding:.4rem .9rem .4rem 2rem;margin:1rem 0}
figure.chart{margin:1.5rem 0;max-width:960px}figure.chart svg{width:100%;height:auto;display:block}
figcaption{font-size:.85rem;color:#444}
"""


def _html_table(t: TableData, classes: Callable[[int, list[str]], str] | None = None) -> str:
    if not t.rows:
        return ""
    left = {i for i, h in enumerate(t.header) if h in LEFT_COLUMNS}

    def cell(i: int, v: str, tag: str) -> str:
        cls = []
        if i in left:
            cls.append("l")
        if tag == "td" and (v.startswith("INVALID") or v.endswith("✗") or v == "NO"):
            cls.append("bad")
        attr = f' class="{" ".join(cls)}"' if cls else ""
        return f"<{tag}{attr}>{html.escape(v)}</{tag}>"

    out = ["<table><thead><tr>", *(cell(i, h, "th") for i, h in enumerate(t.header)), "</tr></thead><tbody>"]
    for n, row in enumerate(t.rows):
        cls = classes(n, row) if classes else ""
        out.append(f'<tr class="{cls}">' if cls else "<tr>")
        out += [cell(i, v, "td") for i, v in enumerate(row)]
        out.append("</tr>")
    out.append("</tbody></table>")
    if t.note:
        out.append(f'<p class="note">{html.escape(t.note)}</p>')
    return "".join(out)


def _md_inline(s: str) -> str:
    """The recommendation's **bold** as <strong>, everything else escaped."""
    return re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", html.escape(s))


def _facts_html(facts: Iterable[tuple[str, str]]) -> str:
    items = "".join(f"<dt>{html.escape(k)}</dt><dd>{html.escape(v)}</dd>" for k, v in facts)
    return f'<dl class="facts">{items}</dl>'


def _render_html(res: Results, analyses: list[Analysis], charts: dict[str, list[tuple[str, Chart]]]) -> str:
    title = f"Benchmark report: {res.run_id}"
    body = [f"<h1>{html.escape(title)}</h1>", _facts_html(_header_facts(res))]
    n = 0
    for an in analyses:
        sc = an.scenario
        body.append(f'<section class="scenario" id="scenario-{html.escape(_slug(sc.name))}">')
        body.append(f"<h2>Scenario {html.escape(sc.name)}</h2>")
        if sc.description:
            body.append(f"<p>{html.escape(sc.description)}</p>")
        body.append(_facts_html(_scenario_facts(sc)))
        body.append(f'<p class="recommendation"><strong>Recommendation:</strong> {_md_inline(an.recommendation)}</p>')
        if an.caveats:
            items = "".join(f"<li>{html.escape(c)}</li>" for c in an.caveats)
            body.append(f'<div class="caveats"><strong>Caveats</strong><ul>{items}</ul></div>')
        body.append("<h3>Ranking</h3>")
        best = an.best

        def row_class(i: int, _row: list[str], an: Analysis = an, best: AdapterResult | None = best) -> str:
            a = an.ranked[i].adapter
            return "best" if a is best else "baseline" if a.is_baseline else ""

        body.append(_html_table(ranking_table(an), row_class))
        body.append('<div class="charts"><h3>Charts</h3>')
        for _fname, ch in charts[sc.name]:
            n += 1
            svg = figure_svg(ch.figure, f"c{n}-")
            body.append(
                f'<figure class="chart" data-chart="{html.escape(ch.key)}">{svg}'
                f"<figcaption><strong>{html.escape(ch.title)}.</strong> {html.escape(ch.caption)}</figcaption></figure>"
            )
        body.append("</div>")
        for heading, t in (
            ("In process and in the loop", framing_table(sc)),
            ("Throughput search", search_table(sc)),
            ("Bundle parity", parity_table(sc)),
        ):
            if t.rows:
                body.append(f"<details><summary>{html.escape(heading)}</summary>{_html_table(t)}</details>")
        failed = failed_checks(sc)
        if failed:
            items = "".join(
                f"<li><strong>{html.escape(w)}</strong> <code>{html.escape(c.name)}</code>: {html.escape(c.detail)}"
                + (f" → {html.escape(c.recommendation)}" if c.recommendation else "")
                + "</li>"
                for w, c in failed
            )
            body.append(f"<details open><summary>Failed checks</summary><ul>{items}</ul></details>")
        body.append("</section>")
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head>\n<body>\n"
        + "\n".join(body)
        + "\n</body></html>\n"
    )


def write_report(run_dir: Path) -> tuple[Path, Path]:
    """Write report.md (+ PNG charts) and a self-contained report.html into run_dir; return both paths."""
    run_dir = Path(run_dir)
    res = load_results(run_dir)
    if run_dir.is_file():
        run_dir = run_dir.parent
    for stale in run_dir.glob(f"{CHART_PREFIX}*.png"):
        stale.unlink()
    analyses = [analyse(sc) for sc in res.scenarios]
    charts: dict[str, list[tuple[str, Chart]]] = {}
    for an in analyses:
        written = []
        for ch in build_charts(an):
            fname = f"{CHART_PREFIX}{_slug(an.scenario.name)}-{ch.key}.png"
            ch.figure.savefig(run_dir / fname, format="png", dpi=110, metadata={"Software": None})
            written.append((fname, ch))
        charts[an.scenario.name] = written
    md = run_dir / "report.md"
    md.write_text(_render_markdown(res, analyses, charts), encoding="utf-8")
    page = run_dir / "report.html"
    page.write_text(_render_html(res, analyses, charts), encoding="utf-8")
    return md, page
