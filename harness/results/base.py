"""The base of every results model, and what the models of several modules share."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator


class Model(BaseModel):
    """Base of every results model: unknown fields ignored, JSON null read as the field's default."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    @model_validator(mode="before")
    @classmethod
    def _null_is_missing(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if v is not None}
        return data


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
