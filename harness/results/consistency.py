"""Figures of one strategy that cannot all be true. The benchmark reads these to decide whether to measure
again, and the report to flag the strategy: one definition for both."""

from __future__ import annotations

from harness.results.fmt import fmt_rate
from harness.results.schema import AdapterResult, ScenarioResult
from harness.results.stats import judge


def consistency_problems(sc: ScenarioResult, a: AdapterResult) -> list[str]:
    """Figures of `a` that cannot all be true: a sustainable rate above its own flat-out capacity, or above the
    Kafka-only ceiling by more than this run's noise floor (the intervals apart, too). That ceiling is the Python
    loop's with no model: a strategy with its own Kafka client (`client == "own"`) is not bounded by it."""
    out = []
    sus, cap = a.sustainable_stat, a.capacity_stat
    if sus is not None and cap is not None and sus.median > cap.median:
        out.append(f"sustainable {fmt_rate(sus.median)}/s is above its own flat-out capacity {fmt_rate(cap.median)}/s")
    base = sc.baseline()
    if base is not None and base is not a and not a.is_baseline and a.client != "own":
        ceil = base.sustainable_stat
        if sus is not None and ceil is not None and ceil.median > 0:
            noise = (sc.noise.sustainable_pct if sc.noise else None) or 0.0
            above = (sus.median / ceil.median - 1.0) * 100.0
            if above > noise and judge(ceil, sus, "higher") == "better":
                out.append(
                    f"sustainable {fmt_rate(sus.median)}/s is {above:.0f}% above the Kafka-only ceiling "
                    f"{fmt_rate(ceil.median)}/s (noise floor {noise:.0f}%)"
                )
    return out
