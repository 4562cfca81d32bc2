"""The results of a run (`results/<run-id>/results.json`): one typed model, written by the benchmark
(harness/bench) and read by reporting (the report, `harness compare`, `harness repeatability`).

A run measures each strategy in randomized rounds (harness/results/cost.py: the windows and what they add up
to); each load window's figures are a `Point` (harness/results/point.py) with its validity checks as methods.
`harness experiment` runs hold their own figures (harness/results/experiments.py).

Reading is lenient where it must be: JSON null (how NaN is written) reads as the field's default and unknown
fields are ignored, so a results.json of an older schema still opens; runs measured before schema 4 (in
trials, ranked on a searched rate) keep their header and experiments, not a verdict. A newer schema, a
missing file or a malformed one is one `error:` line (`ResultsError`).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, Literal

import orjson
from pydantic import Field, ValidationError, model_validator

from harness.errors import first_validation_error
from harness.results.base import Model
from harness.results.cost import CostSummary, FractionResult, RoundOrder, Window
from harness.results.errors import ResultsError
from harness.results.experiments import Experiments
from harness.results.fmt import fmt_diff
from harness.results.point import Accuracy, InProcess, Sustainable
from harness.results.stats import DEFAULT_CONFIDENCE

SCHEMA_VERSION = 4
OLDEST_SCHEMA_READ = 1
RESULTS_FILE = "results.json"
CHART_PREFIX = "report-"
BASELINE_FAMILY = "baseline"

# built-in strategies that consume and produce with their own Kafka client (not the Python loop's)
OWN_KAFKA_CLIENT = ("kstreams-mojo", "mlserver-kafka")


class AdapterResult(Model):
    """One contestant of a run: every window it was measured in, and what they add up to."""

    adapter: str  # as shown ("rest(onnx)", "identity (A/A)")
    name: str | None = None  # the adapter ("rest", "identity")
    family: str = ""
    # "python-loop": scored by the Python loop, whose own cost the identity scorer measures; "own": its own
    # Kafka client (a Kafka Streams app, a model server's Kafka mode)
    client: str | None = None
    error: str | None = None
    inprocess: InProcess | None = None
    windows: list[Window] = Field(default_factory=list)
    cost: CostSummary | None = None
    fractions: list[FractionResult] = Field(default_factory=list)
    saturation: Sustainable | None = None  # `--thorough`: this machine's saturation point (the bisecting search)

    @model_validator(mode="before")
    @classmethod
    def _client_before_it_was_recorded(cls, data: Any) -> Any:
        """Runs written before `client` existed: the built-in strategies with their own Kafka client."""
        if isinstance(data, dict) and data.get("client") is None and data.get("name") in OWN_KAFKA_CLIENT:
            data = {**data, "client": "own"}
        return data

    @property
    def is_baseline(self) -> bool:
        return self.family == BASELINE_FAMILY or "identity" in (self.name, self.adapter)

    def counted(self, kind: str | None = None) -> list[Window]:
        return [w for w in self.windows if w.counts and (kind is None or w.kind == kind)]

    def lost(self) -> int:
        """Records lost in any window (superseded ones included: a record lost is lost)."""
        return sum(w.lost for w in self.windows if not w.warmup)

    def _accuracy(self) -> list[tuple[Window, Accuracy]]:
        """Every load window's accuracy, those that do not count for timing included (disturbed by other processes,
        or measured again): what a strategy predicted does not depend on how busy the machine was."""
        if self.is_baseline:  # the identity adapter scores nothing: accuracy does not apply
            return []
        return [
            (w, w.accuracy)
            for w in self.windows
            if w.kind == "load" and not w.warmup and w.accuracy is not None and not w.accuracy.note
        ]

    def max_abs_diff(self) -> float | None:
        vals = [a.max_abs_diff for _, a in self._accuracy() if a.max_abs_diff is not None]
        return max(vals) if vals else None

    def auc(self) -> tuple[float | None, float | None]:
        """(AUC, reference AUC on the same records) of the window that scored the most records."""
        ws = [(w, a) for w, a in self._accuracy() if a.auc is not None]
        if not ws:
            return None, None
        _, acc = max(ws, key=lambda wa: wa[0].scored)
        return acc.auc, acc.auc_reference

    def quality(self) -> tuple[str, dict[str, tuple[float | None, float | None]]]:
        """(the model's task, {figure: (the scorer's, the reference's on the same events)}) of the window that scored
        the most records: AUC (binary), log-loss and accuracy (multiclass), RMSE and MAE (regression)."""
        acc = self._accuracy()
        ws = [(w, a) for w, a in acc if any(v is not None for v, _ in a.figures().values())]
        if not ws:
            return next((a.task for _, a in acc if a.task), None) or "binary", {}
        _, best = max(ws, key=lambda wa: wa[0].scored)
        return best.task or "binary", best.figures()

    def accuracy_failures(self) -> list[str]:
        """One phrase per window whose predictions fall outside the tolerance."""
        out = []
        for w, a in self._accuracy():
            beyond = (a.share_beyond_tolerance or 0.0) > 0 or (
                a.tolerance is not None and a.max_abs_diff is not None and a.max_abs_diff > a.tolerance
            )
            if beyond:
                share = f"{a.share_beyond_tolerance:.2%} of predictions" if a.share_beyond_tolerance else "predictions"
                tol = f" {a.tolerance:g}" if a.tolerance is not None else ""
                diff = f" (max |diff| {fmt_diff(a.max_abs_diff)})" if a.max_abs_diff is not None else ""
                out.append(f"round {w.round} at {w.fraction:.0%}: {share} beyond the tolerance{tol}{diff}")
        return out

    def peak_rss_mib(self) -> tuple[float | None, float | None]:
        """(scorer, model server) peak resident memory over the run (MiB)."""
        c = self.cost
        return (c.peak_rss_mib, c.server_peak_rss_mib) if c else (None, None)


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
    # the whole pipeline end to end (the identity scorer under open-loop load above what it can carry: generator,
    # broker, loop and measurer on the same cores); load windows are fractions of at most this
    pipeline_per_s: float | None = None

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


class ScenarioResult(Model):
    name: str
    description: str = ""
    model_id: str = ""
    bundle: str | None = None
    trainer: str = ""
    task: str | None = None  # binary, regression, multiclass (adapters/tasks.py); None: written before tasks
    outputs: str | None = None  # what a result means, in words (the manifest's "output")
    slo_p99_ms: float | None = None
    encoding: str | None = None
    loop: LoopConfig | None = None
    validity: dict[str, Any] = Field(default_factory=dict)
    bundle_parity: dict[str, BundleParity] = Field(default_factory=dict)
    # "rounds": randomized rounds ranked on cost (schema 4); "trials": measured before schema 4 (no verdict read)
    method: Literal["trials", "rounds"] = "trials"
    control: str | None = None  # the contestant every ratio is taken to (the identity scorer)
    round_orders: list[RoundOrder] = Field(default_factory=list)
    round_settings: dict[str, Any] = Field(default_factory=dict)  # the scenario's `rounds` section as run
    confidence: float = DEFAULT_CONFIDENCE
    minutes: float | None = None
    ceilings: Ceilings | None = None
    experiments: Experiments | None = None
    adapters: list[AdapterResult] = Field(default_factory=list)

    def baselines(self) -> list[AdapterResult]:
        return [a for a in self.adapters if a.is_baseline and not a.error]

    def adapter(self, name: str) -> AdapterResult | None:
        return next((a for a in self.adapters if a.adapter == name), None)

    def control_result(self) -> AdapterResult | None:
        return self.adapter(self.control) if self.control else None

    @property
    def tie_pct(self) -> float:
        return float(self.round_settings.get("tie_pct", 10.0))

    @property
    def counted_rounds(self) -> int:
        return sum(1 for r in self.round_orders if not r.warmup)


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
    brokers: int | None = None  # how many brokers the cluster had (the embedded cluster: 3)
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
        if self.embedded_broker:
            where = f"embedded {self.brokers}-node cluster" if (self.brokers or 1) > 1 else "embedded single-node broker"
        else:
            where = self.bootstrap or "external cluster"
            where += f", {self.brokers} brokers" if self.brokers else ""
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
