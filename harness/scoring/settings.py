"""Every setting of `harness score`, declared once.

`LoopConfig` holds what the scoring loop reads; `ScorerSettings` adds what the service around it reads (the
bundle, the adapter, Kafka, metrics, model updates, the online learner). The command line is generated from
`ScorerSettings` (harness/cli_options.py: one `--flag` per field, its help from the field's description), and
pydantic-settings reads the same fields from the environment with the `HARNESS_` prefix (`--batch-max` is
HARNESS_BATCH_MAX). Precedence: a flag on the command line, then the environment, then the default.

Adding an option is one field here (with its description and bounds) plus its test; the loop or the service
reads it from the object it is handed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from harness.scoring.wire import Encoding

Guarantee = Literal["at-least-once", "exactly-once"]
GUARANTEES: tuple[str, ...] = ("at-least-once", "exactly-once")
ENV_PREFIX = "HARNESS_"


class LoopConfig(BaseModel):
    """What the scoring loop reads (harness/scoring/loop.py)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    input_topic: str = Field(description="Topic of feature records.")
    output_topic: str = Field(description="Topic for results (created if missing).")
    group: str = Field(description="Consumer group; loops in one group split the partitions.")
    dlq_topic: str | None = Field(None, description="Dead-letter topic; default INPUT.dlq.")
    encoding: Encoding = Field("json", description="Feature record encoding: json or f64le (harness/scoring/wire.py).")
    batch_max: int = Field(64, ge=1, description="Largest micro-batch; 1 = per-record scoring.")
    batch_wait_ms: float = Field(5.0, ge=0, description="Longest wait to fill a batch.")
    scorer_name: str | None = Field(None, description="Name in the results' scorer header; default: the adapter's.")
    max_in_flight_batches: int = Field(
        64, ge=1, description="at-least-once: batches produced but not yet acknowledged before the loop waits."
    )
    guarantee: Guarantee = Field(
        "at-least-once",
        description="at-least-once (duplicates after a crash, tell them apart by the src header) or exactly-once "
        "(results, dead letters and offsets in Kafka transactions; read the output with read_committed).",
    )
    instance_id: str | None = Field(
        None,
        description="A stable name for this scorer instance (e.g. the pod name): static group membership, and in "
        "exactly-once mode the transactional.id GROUP-NAME, so a restarted instance takes its partitions back and "
        "fences its crashed self at once. Unique per instance.",
    )
    transaction_ms: float = Field(
        100.0, ge=1, description="exactly-once: longest time a transaction stays open (latency)."
    )
    outage_backoff_s: float = Field(
        0.5, gt=0, description="First wait after the engine is found unavailable; doubles each retry."
    )
    outage_backoff_max_s: float = Field(10.0, gt=0, description="Longest wait between two retries of the engine.")
    outage_limit_s: float = Field(
        300.0, ge=0, description="Give up (exit 3, batch in hand uncommitted) after the engine is down this long."
    )
    engine_timeout_s: float = Field(
        120.0, ge=0, description="A predict call hung this long ends the process (exit 3); 0 = never."
    )

    @property
    def dlq(self) -> str:
        return self.dlq_topic or f"{self.input_topic}.dlq"

    def name_for(self, adapter: str) -> str:
        """The scorer's name in the results' header and the Kafka client ids."""
        return self.scorer_name or adapter


class ScorerSettings(BaseSettings, LoopConfig):
    """`harness score`: the loop's settings plus the service's."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, extra="forbid", validate_assignment=True, cli_parse_args=False
    )

    bundle: Path | None = Field(
        None,
        description="Model bundle folder (from `harness build`); without it, the current version on --model-topic "
        "(received over Kafka: no shared folder needed).",
    )
    adapter: str = Field(description="Adapter name: native, onnx, codegen-c, h2o-mojo, pmml, pfa, rest, identity.")
    options: list[str] = Field(
        default_factory=list, description="Adapter option key=value (repeatable: --option a=1 --option b=2)."
    )
    max_records: int | None = Field(None, ge=1, description="Exit after this many records (tests).")
    idle_exit_s: float | None = Field(
        None, ge=0, description="Exit after this long without records, once partitions are assigned."
    )
    bootstrap: str | None = Field(
        None, description="HOST:PORT of an existing Kafka cluster; default: the embedded broker."
    )
    client_config: Path | None = Field(
        None, description="librdkafka properties file (key=value), e.g. SASL/SSL settings."
    )
    metrics_port: int | None = Field(
        None, ge=0, le=65535, description="Serve /metrics (Prometheus), /health/live and /health/ready on this port."
    )
    model_topic: str | None = Field(
        None, description="Follow model versions on this compacted topic (`harness publish`)."
    )
    model_name: str | None = Field(None, description="The model name (record key) to follow there.")
    model_cache_dir: Path | None = Field(
        None, description="Where bundles received on the model topic are assembled; default: a private temp folder."
    )
    shadow_topic: str | None = Field(
        None, description="Where a shadow version's results go (it scores beside the live one)."
    )
    alerts_topic: str | None = Field(None, description="Where a refused model version is reported.")
    feedback_topic: str | None = Field(
        None, description="Labels (by rid or src) that teach an online learner (--adapter online)."
    )
    checkpoint_file: Path | None = Field(None, description="The learner's checkpoint, a file.")
    checkpoint_topic: str | None = Field(None, description="The learner's checkpoint, a compacted topic.")
    checkpoint_every_s: float = Field(10.0, ge=0.1, description="How often the learner checkpoints.")
    join_window_s: float = Field(300.0, ge=0, description="How long a row waits for its label.")
    cold_start: bool = Field(False, description="Start the learner fresh when its checkpoint is refused.")
    warm_s: float = Field(
        2.0,
        ge=0,
        description="Before joining the group, score the bundle's reference rows in micro-batches for this long "
        "(a JVM's JIT, caches), so that the first records do not pay for it; 0 = off.",
    )
