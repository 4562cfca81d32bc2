"""Tiers, not orders: strategies whose costs cannot be told apart share a tier.

Two strategies are tied when their cost-ratio intervals overlap, or when their medians differ by less than
`tie_pct` (10% by default: closer than that, an order between them does not repeat from run to run on a
shared machine). Strategies are taken cheapest first; each tier is led by its cheapest member, and a strategy
joins the current tier when it is tied with that leader, else it leads a new tier. Leader-based, so a chain of
small steps (A ~ B ~ C with A and C apart) cannot stretch one tier without limit.

One definition, used by the report, `harness compare` and `harness repeatability` alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from harness.results.stats import Stat

TIE_PCT = 10.0


@dataclass(frozen=True)
class Ranked:
    name: str
    ratio: Stat


def tied(a: Stat, b: Stat, tie_pct: float = TIE_PCT) -> bool:
    """Whether two cost ratios cannot be told apart: intervals overlap, or medians within `tie_pct`."""
    if a.lo <= b.hi and b.lo <= a.hi:
        return True
    low, high = sorted((a.median, b.median))
    return low > 0 and (high / low - 1.0) * 100.0 < tie_pct


def tiers(items: Sequence[Ranked], tie_pct: float = TIE_PCT) -> list[list[str]]:
    """The names grouped into tiers, cheapest tier first; within a tier, cheapest first."""
    ordered = sorted(items, key=lambda r: (r.ratio.median, r.name))
    out: list[list[str]] = []
    leader: Stat | None = None
    for r in ordered:
        if leader is None or not tied(leader, r.ratio, tie_pct):
            out.append([r.name])
            leader = r.ratio
        else:
            out[-1].append(r.name)
    return out


def tier_of(groups: Sequence[Sequence[str]], name: str) -> int | None:
    """1-based tier of `name`, or None when it was not placed."""
    for i, g in enumerate(groups):
        if name in g:
            return i + 1
    return None
