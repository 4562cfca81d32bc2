"""Do identical runs agree? `harness repeatability RUN_1 RUN_2 ...` reads runs of the same scenario (made one
after another on one machine, e.g. `make repeatability`) and prints, per adapter, each run's median
sustainable throughput and flat-out capacity and their spread across the runs, and whether the runs'
recommendations agree (the same winner, or the same tied group).

The spread is max/min of the runs' medians, as ± around their midpoint; an adapter is consistent when it
stays within `tolerance_pct` (default ±15 %). Exit 0 when every run recommends the same thing and every
adapter is consistent, 1 otherwise: a benchmark whose verdict flips between identical runs is not to be used.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table

from harness.reporting.analysis import analyse
from harness.results.errors import ResultsError
from harness.results.fmt import DASH, fmt_rate
from harness.results.schema import ScenarioResult, load_results


@dataclass
class Spread:
    adapter: str
    sustainable: list[float | None]
    capacity: list[float | None]

    @staticmethod
    def pct(values: list[float | None]) -> float | None:
        """± half the range of the values around their midpoint, in percent (None with a missing value)."""
        if not values or any(v is None or v <= 0 for v in values):
            return None
        lo, hi = min(v for v in values if v is not None), max(v for v in values if v is not None)
        return (hi - lo) / (hi + lo) * 100.0


def verdict(sc: ScenarioResult) -> str:
    """A run's recommendation in one phrase: "winner X", "tied: X, Y" or "none"."""
    an = analyse(sc)
    if an.best is not None:
        return f"winner {an.best.adapter}"
    if an.tied:
        return "tied: " + ", ".join(sorted(a.adapter for a in an.tied))
    return "none"


def repeatability(runs: list[Path], tolerance_pct: float = 15.0, console: Console | None = None) -> int:
    con = console or Console()
    if len(runs) < 2:
        raise ResultsError("repeatability needs at least two runs of the same scenario")
    loaded = [load_results(r) for r in runs]
    names = {s.name for r in loaded for s in r.scenarios}
    if len(names) != 1 or any(len(r.scenarios) != 1 for r in loaded):
        raise ResultsError(f"repeatability compares runs of one scenario; these hold {', '.join(sorted(names))}")
    scs = [r.scenarios[0] for r in loaded]
    adapters = [a.adapter for a in scs[0].adapters]
    spreads = []
    for name in adapters:
        per = [sc.adapter(name) for sc in scs]
        spreads.append(
            Spread(
                name,
                [a.sustainable_rate if a else None for a in per],
                [a.capacity_stat.median if a and a.capacity_stat else None for a in per],
            )
        )
    t = Table(title=f"{scs[0].name}: {len(runs)} runs ({', '.join(r.run_id for r in loaded)})", title_justify="left")
    t.add_column("Adapter")
    for i in range(len(runs)):
        t.add_column(f"run {i + 1} sustainable", justify="right")
    t.add_column("spread", justify="right")
    t.add_column(f"within ±{tolerance_pct:g}%")
    t.add_column("capacity spread", justify="right")
    consistent = True
    for s in spreads:
        pct = Spread.pct(s.sustainable)
        # a run without a figure (failed, or every trial's search met a busy machine) shows no agreement
        ok = pct is not None and pct <= tolerance_pct and all(v is not None for v in s.sustainable)
        consistent &= ok
        cap = Spread.pct(s.capacity)
        t.add_row(
            s.adapter,
            *["no figure" if v is None else fmt_rate(v) if v else "none" for v in s.sustainable],
            f"±{pct:.1f}%" if pct is not None else DASH,
            "yes" if ok else "[bold red]no[/]",
            f"±{cap:.1f}%" if cap is not None else DASH,
        )
    con.print(t)
    verdicts = [verdict(sc) for sc in scs]
    for i, v in enumerate(verdicts):
        con.print(f"run {i + 1} ({loaded[i].run_id}): {v}", highlight=False)
    agree = len(set(verdicts)) == 1 and verdicts[0] != "none"  # three runs that recommend nothing show nothing
    said = (
        "recommendations agree"
        if agree
        else "[bold red]no run made a recommendation[/]"
        if set(verdicts) == {"none"}
        else "recommendations [bold red]disagree[/]"
    )
    con.print(
        f"{said}; sustainable medians {'all' if consistent else '[bold red]not all[/]'} within ±{tolerance_pct:g}%",
        highlight=False,
    )
    return 0 if agree and consistent else 1
