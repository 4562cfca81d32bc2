"""Scenario files (`scenarios/*.yaml`): what data, which model, which adapters, what load, which SLO.

Validated with pydantic; unknown keys are errors. A bad file gets one line naming the key and what
was expected (`ScenarioError`), never a traceback.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from harness.errors import HarnessError, first_validation_error


class ScenarioError(HarnessError):
    exit_code = 2


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Dataset(Strict):
    """Seeded generator (harness/datagen) or a CSV file with a header row."""

    generator: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    csv: Path | None = None
    rows: int = Field(50_000, gt=100, description="rows generated (ignored for csv)")
    seed: int = 7
    holdout_fraction: float = Field(0.2, gt=0.0, lt=0.9)
    holdout_max_rows: int = Field(5_000, gt=10, description="held-out rows kept for parity and replay")

    @model_validator(mode="after")
    def _one_source(self) -> Dataset:
        if (self.generator is None) == (self.csv is None):
            raise ValueError("give exactly one of 'generator' or 'csv'")
        return self


class ModelSpec(Strict):
    trainer: Literal["lightgbm", "sklearn", "h2o", "xgboost"] = "lightgbm"
    algorithm: Literal["gbm", "logistic_regression", "glm", "mlp"] = "gbm"
    params: dict[str, Any] = Field(default_factory=dict)
    seed: int = 1

    @model_validator(mode="after")
    def _valid_pair(self) -> ModelSpec:
        valid = {
            "lightgbm": {"gbm"},
            "sklearn": {"gbm", "logistic_regression", "mlp"},
            "h2o": {"gbm", "glm"},
            "xgboost": {"gbm"},
        }
        if self.algorithm not in valid[self.trainer]:
            raise ValueError(
                f"trainer {self.trainer!r} has no algorithm {self.algorithm!r}; valid: {sorted(valid[self.trainer])}"
            )
        return self


FORMATS = ("onnx", "codegen-c", "pmml", "pfa", "h2o-mojo")


class AdapterSpec(Strict):
    name: str
    label: str | None = Field(None, description="how the adapter is shown in results; default: name")
    options: dict[str, Any] = Field(default_factory=dict)
    serve: str | None = Field(None, description="for 'rest': the adapter `harness serve` hosts (default onnx)")
    serve_options: dict[str, Any] = Field(default_factory=dict)
    guarantee: Literal["at-least-once", "exactly-once"] = Field(
        "at-least-once", description="the scorer's delivery guarantee (`harness score --guarantee`)"
    )

    @property
    def display(self) -> str:
        if self.label:
            return self.label
        base = f"rest({self.serve or 'onnx'})" if self.name == "rest" else self.name
        return f"{base} (exactly-once)" if self.guarantee == "exactly-once" else base


class LoadProfile(Strict):
    """One load point. The schedule is laid out in advance (open loop)."""

    name: str | None = None
    pattern: Literal["constant", "poisson", "steps", "burst"] = "constant"
    rate_per_s: float = Field(..., gt=0, description="mean offered rate (first step for 'steps')")
    duration_s: float = Field(10.0, gt=0)
    warmup_s: float = Field(2.0, ge=0)
    seed: int = 11
    steps: list[float] = Field(default_factory=list, description="'steps': the rates, each for duration_s/len")
    burst_rate_per_s: float | None = Field(None, gt=0, description="'burst': rate inside bursts")
    burst_every_s: float = Field(2.0, gt=0)
    burst_length_s: float = Field(0.2, gt=0)

    @property
    def display(self) -> str:
        return self.name or f"{self.pattern}@{self.rate_per_s:g}/s"


class LoopSpec(Strict):
    batch_max: int = Field(64, ge=1, le=100_000)
    batch_wait_ms: float = Field(5.0, ge=0)
    partitions: int = Field(2, ge=1)
    processes: int = Field(1, ge=1)


class KafkaSpec(Strict):
    """The embedded Kafka a run uses when no --bootstrap is given."""

    brokers: Literal[1, 3] = Field(
        1,
        description="1: the single broker; 3: the three-node cluster (replication factor 3, min.insync.replicas 2, "
        "acks=all): what production pays for durability, measured",
    )


class Slo(Strict):
    p99_ms: float = Field(50.0, gt=0)


class SustainableSearch(Strict):
    """The sustainable-throughput search (harness/bench/search.py): bracket, confirm failures, bisect."""

    start_rate_per_s: float = Field(500.0, gt=0)
    factor: float = Field(1.6, gt=1.0)
    max_rate_per_s: float = Field(50_000.0, gt=0)
    step_duration_s: float = Field(6.0, gt=0, description="shortest step; longer when min_step_samples needs it")
    warmup_s: float = Field(1.5, ge=0)
    precision: float = Field(0.05, gt=0, le=1, description="bisect until failed / held <= 1 + precision")
    min_step_samples: int = Field(2000, ge=1, description="latency samples a step's p99 rests on, at the least")
    max_steps: int = Field(20, ge=1)
    warm_start: bool = Field(
        True, description="start each trial's search from the capacity it just measured (else from start_rate_per_s)"
    )

    def step_seconds(self, rate_per_s: float) -> float:
        """A step's length at `rate_per_s`: at least step_duration_s, and long enough after the warm-up for
        min_step_samples latency samples."""
        return max(self.step_duration_s, self.warmup_s + self.min_step_samples / rate_per_s)


class Rounds(Strict):
    """Randomized multiple interleaved trials (harness/bench/rounds.py): every round measures every contestant
    once, in a fresh random order, in short windows; the processes stay up across rounds."""

    count: int = Field(5, ge=1, le=100, description="counted rounds at least (one warm-up round comes first)")
    budget_min: float | None = Field(
        None,
        gt=0,
        description="after `count` rounds, more rounds while the whole run is projected to end within this many "
        "minutes (its set-up included), up to `max_count`: more ratios per strategy in the time there is",
    )
    max_count: int = Field(40, ge=1, le=200, description="rounds at most when `budget_min` adds rounds")
    controls: int = Field(
        3,
        ge=2,
        le=50,
        description="sequential pairing: control windows per round, spread evenly through it (at its start and "
        "end among them); each contestant's ratio is to the median of its round's control windows",
    )
    seed: int = Field(5, description="the rounds' random orders and the Poisson schedules")
    aa_identity: bool = Field(True, description="measure the identity scorer twice: the A/A pair must share a tier")
    confidence: float = Field(0.9, gt=0, lt=1, description="for the median's order-statistic interval")
    tie_pct: float = Field(10.0, ge=0, description="cost ratios closer than this share one tier")
    pairing: Literal["sequential", "concurrent"] = Field(
        "sequential",
        description="sequential: each contestant's backlog window between two of the control's; concurrent: each "
        "contestant drains its backlog at the same time as the control, its cost taken over the same moments "
        "(an experiment: on the shared 2-core VM two identical scorers drained side by side differed by up to 2x)",
    )
    reference: Literal["control-windows", "every-identity-window"] = Field(
        "every-identity-window",
        description="sequential pairing: a contestant's ratio in a round is to the median of the round's control "
        "windows, or of those and the identity scorer's other windows in the round (the control's own contestant "
        "window, the A/A twin's; never the contestant's own): more windows of the same scorer, a steadier divisor",
    )
    pin_cpus: bool = Field(
        True,
        description="with the embedded broker on this machine: the broker's threads run on one half of the CPUs "
        "and every contestant's on the other, for the whole run (restored after). On the 2-core VM this halved "
        "the window-to-window spread of the cost ratios (docs/methodology.md)",
    )
    backlog_s: float = Field(0.5, gt=0, description="a backlog window holds about this long at the flat-out rate")
    backlog_min_records: int = Field(100, ge=10)
    backlog_max_records: int = Field(200_000, ge=10)
    fractions: list[float] = Field(
        default_factory=lambda: [0.5, 0.85], description="load windows at these shares of the flat-out rate"
    )
    fractions_per_round: int | None = Field(
        None,
        ge=1,
        description="load windows per contestant per round (None: every fraction every round); fewer take turns, "
        "so that each fraction is measured in as many rounds as the others",
    )
    load_window_s: float = Field(1.0, gt=0, description="length of a load window, its warm-up included")
    load_warmup_s: float = Field(0.2, ge=0)

    @model_validator(mode="after")
    def _check(self) -> Rounds:
        bad = [f for f in self.fractions if not 0 < f <= 1.5]
        if bad:
            raise ValueError(f"fractions must be in (0, 1.5], got {bad[0]}")
        if self.load_warmup_s >= self.load_window_s:
            raise ValueError("load_warmup_s must be shorter than load_window_s")
        if self.max_count < self.count:
            raise ValueError("max_count must not be below count")
        if self.backlog_min_records > self.backlog_max_records:
            raise ValueError("backlog_min_records must not exceed backlog_max_records")
        return self


class Interference(Strict):
    """When a step counts as disturbed (harness/bench/interference.py); a disturbed failure is run again."""

    gc_pause_ms: float = Field(25.0, gt=0)
    other_cpu_pct: float = Field(30.0, gt=0)
    steal_pct: float = Field(10.0, gt=0)


class Validity(Strict):
    max_behind_schedule_share: float = Field(0.05, ge=0, le=1, description="sends later than max_send_lag_ms")
    max_send_lag_ms: float = Field(10.0, gt=0)
    stable_tolerance_pct: float = Field(25.0, gt=0)
    stable_windows: int = Field(3, ge=2)
    window_s: float = Field(1.0, gt=0)
    min_measured_events: int = Field(200, ge=1)
    drain_timeout_s: float = Field(15.0, gt=0)
    accuracy_tolerance: float = Field(1e-5, gt=0, description="|score - reference| allowed per event")


class Scenario(Strict):
    name: str = Field(..., pattern=r"^[a-z0-9][a-z0-9_-]*$")
    description: str = ""
    dataset: Dataset | None = None
    bundle: Path | None = Field(
        None, description="an imported bundle (`harness import`) to run instead of training from `dataset`"
    )
    features: list[str] | None = None
    label: str = "label"
    task: Literal["binary", "regression", "multiclass"] = Field(
        "binary",
        description="what the model predicts (adapters/tasks.py): P(label = 1), a value, or the probability of each "
        "class (the label's distinct values)",
    )
    model: ModelSpec = Field(default_factory=lambda: ModelSpec())
    formats: list[str] = Field(default_factory=lambda: ["onnx", "codegen-c", "pmml", "pfa"])
    adapters: list[AdapterSpec] = Field(default_factory=list)
    encoding: Literal["json", "f64le"] = "json"
    loop: LoopSpec = Field(default_factory=lambda: LoopSpec())
    kafka: KafkaSpec = Field(default_factory=lambda: KafkaSpec())
    slo: Slo = Field(default_factory=lambda: Slo())
    sustainable: SustainableSearch = Field(default_factory=lambda: SustainableSearch())
    rounds: Rounds = Field(default_factory=lambda: Rounds())
    interference: Interference = Field(default_factory=lambda: Interference())
    validity: Validity = Field(default_factory=lambda: Validity())

    @model_validator(mode="before")
    @classmethod
    def _renamed(cls, data: Any) -> Any:
        """Keys of scenarios written before schema 4's rounds: one line saying what replaced them."""
        if not isinstance(data, dict):
            return data
        if "trials" in data:
            raise ValueError(
                "'trials' was replaced by 'rounds' (randomized rounds ranked on cost: docs/methodology.md); "
                "e.g. rounds: {count: 5, aa_identity: true}"
            )
        if "load" in data:
            raise ValueError(
                "'load' was replaced by rounds.fractions: load windows at fractions of each strategy's own flat-out "
                "rate (docs/methodology.md); e.g. rounds: {fractions: [0.5, 0.7, 0.85]}"
            )
        sus = data.get("sustainable")
        if isinstance(sus, dict) and "enabled" in sus:
            raise ValueError("'sustainable.enabled' is gone: the search runs with `harness run --thorough`")
        return data

    @model_validator(mode="after")
    def _check(self) -> Scenario:
        if (self.dataset is None) == (self.bundle is None):
            raise ValueError("give exactly one of 'dataset' (train a model) or 'bundle' (an imported bundle)")
        if self.bundle is not None:
            given = sorted(self.model_fields_set & {"model", "formats", "features", "label", "task"})
            if given:
                raise ValueError(f"'{given[0]}' does not go with 'bundle': an imported bundle brings its own model")
            return self
        bad = [f for f in self.formats if f not in FORMATS]
        if bad:
            raise ValueError(f"unknown format {bad[0]!r}; valid: {', '.join(FORMATS)}")
        if "h2o-mojo" in self.formats and self.model.trainer != "h2o":
            raise ValueError("format 'h2o-mojo' needs model.trainer 'h2o'")
        if self.task != "binary" and self.model.algorithm == "logistic_regression":
            raise ValueError(f"model.algorithm 'logistic_regression' is binary; a {self.task} task takes gbm or mlp")
        if self.task == "multiclass" and self.model.trainer == "h2o" and self.model.algorithm == "glm":
            raise ValueError("a multiclass h2o glm (multinomial) is not in the model IR: use algorithm gbm")
        if "codegen-c" in self.formats and self.model.algorithm == "mlp":
            raise ValueError(
                "format 'codegen-c' cannot hold an MLP: the C generator compiles tree ensembles (treelite) and GLMs"
            )
        return self

    def content_hash(self) -> str:
        exclude = {"adapters", "slo", "sustainable", "validity", "loop", "kafka", "rounds", "interference"}
        data = self.model_dump(mode="json", exclude=exclude)
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def _format_error(path: Path, e: ValidationError) -> str:
    loc, msg, more = first_validation_error(e)
    return f"{path}: key '{loc}': {msg}{more}"


def load_scenario(path: str | Path) -> Scenario:
    path = Path(path)
    if not path.is_file():
        raise ScenarioError(f"scenario file {path} does not exist")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ScenarioError(f"{path}: not valid YAML{where}: {getattr(e, 'problem', e)}") from None
    if not isinstance(raw, dict):
        raise ScenarioError(f"{path}: expected a mapping of keys at the top level")
    try:
        sc = Scenario.model_validate(raw)
    except ValidationError as e:
        raise ScenarioError(_format_error(path, e)) from None
    if sc.dataset is not None and sc.dataset.csv is not None and not sc.dataset.csv.is_absolute():
        sc.dataset.csv = (path.parent / sc.dataset.csv).resolve()
    if sc.bundle is not None and not sc.bundle.is_absolute():
        sc.bundle = (path.parent / sc.bundle).resolve()
    return sc
