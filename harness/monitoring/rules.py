"""Alert rules of the model monitor and the alert event it writes to the alerts topic.

A rule compares one figure of a window (`WindowFigures`) with a threshold and fires when the comparison
holds for `for_windows` windows in a row, on windows with at least `min_results` results (a drift statistic
on 30 scores is noise). The same conditions ship as Prometheus alerting rules (deploy/prometheus/), for a
team that scrapes the monitor instead of reading the alerts topic.

Rules file (YAML, `harness monitor --rules FILE`): a list of {name, figure, op, threshold, min_results,
for_windows}; unknown keys are errors.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from harness.errors import HarnessError, first_validation_error

Figure = Literal[
    "score_psi",
    "score_ks",
    "latency_p99_ms",
    "dead_letter_rate",
    "throughput_per_s",
    "auc_drop",
    "live_auc",
    "live_accuracy",
    "accuracy_drop",
    "live_logloss",
    "live_rmse",
    "live_mae",
    "rmse_ratio",
]


class RulesError(HarnessError):
    exit_code = 2


class Rule(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    figure: Figure
    op: Literal[">", "<"] = ">"
    threshold: float
    min_results: int = Field(200, ge=0, description="windows with fewer results are not judged")
    for_windows: int = Field(1, ge=1, description="fire when the condition held this many windows in a row")

    def holds(self, value: float | None) -> bool:
        if value is None or not math.isfinite(value):
            return False
        return value > self.threshold if self.op == ">" else value < self.threshold


def default_rules(slo_p99_ms: float = 50.0, task: str = "binary") -> list[Rule]:
    """Score drift (PSI > 0.2, a moderate-to-major shift; KS > 0.15: of P(class 1), of a regression's predicted
    values, of the class probabilities that moved most), the latency SLO broken, more than 1% of records
    dead-lettered, and once labels arrive the task's quality against the reference's: live AUC more than 0.05
    below (binary), live RMSE more than 1.25x (regression), live accuracy more than 0.05 below (multiclass)."""
    quality = {
        "binary": Rule(name="LiveAUCDropped", figure="auc_drop", threshold=0.05, min_results=0),
        "regression": Rule(name="LiveRMSERose", figure="rmse_ratio", threshold=1.25, min_results=0),
        "multiclass": Rule(name="LiveAccuracyDropped", figure="accuracy_drop", threshold=0.05, min_results=0),
    }[task]
    return [
        Rule(name="ScoreDriftPSI", figure="score_psi", threshold=0.2),
        Rule(name="ScoreDriftKS", figure="score_ks", threshold=0.15),
        Rule(name="LatencySLOBroken", figure="latency_p99_ms", threshold=slo_p99_ms, for_windows=2),
        Rule(name="DeadLetterRateHigh", figure="dead_letter_rate", threshold=0.01, min_results=100),
        quality,
    ]


def load_rules(path: Path) -> list[Rule]:
    if not path.is_file():
        raise RulesError(f"rules file {path} does not exist")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise RulesError(f"{path}: not valid YAML: {e}") from None
    if not isinstance(raw, list):
        raise RulesError(f"{path}: expected a list of rules")
    rules = []
    for i, item in enumerate(raw):
        try:
            rules.append(Rule.model_validate(item))
        except ValidationError as e:
            loc, msg, _ = first_validation_error(e)
            raise RulesError(f"{path}: rule {i + 1}: key '{loc}': {msg}") from None
    return rules


class RuleState:
    """How many windows in a row each rule's condition has held (a rule fires once per streak)."""

    def __init__(self, rules: list[Rule]) -> None:
        self.rules = rules
        self.streak = {r.name: 0 for r in rules}

    def judge(self, figures: dict[str, float | None], results: int) -> list[Rule]:
        """The rules that fire on this window."""
        fired = []
        for r in self.rules:
            if results < r.min_results:
                continue  # not judged: the streak neither grows nor breaks
            if r.holds(figures.get(r.figure)):
                self.streak[r.name] += 1
                if self.streak[r.name] == r.for_windows:
                    fired.append(r)
            else:
                self.streak[r.name] = 0
        return fired
