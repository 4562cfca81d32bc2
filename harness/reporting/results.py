"""The results of a run (`results/<run-id>/results.json`), read with lenient pydantic models.

Every field the orchestrator may leave out is optional, unknown fields are ignored, and a missing or
malformed file is one `error:` line (`ResultsError`). Used by the report and by `harness compare`.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from harness.errors import HarnessError
from harness.reporting.fmt import DASH, fmt_diff

SCHEMA_VERSION = 1
RESULTS_FILE = "results.json"
CHART_PREFIX = "report-"
BASELINE_FAMILY = "baseline"

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
