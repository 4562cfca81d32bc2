"""Do identical runs agree? `harness repeatability RUN_1 RUN_2 ...` reads runs of the same scenario (made one
after another on one machine, e.g. `make repeatability`) and prints, per strategy, each run's median cost
ratio (CPU per record over the identity scorer's in the same round) and their spread across the runs, each
run's tiers, and whether the tiers hold the same members in every run.

The spread is max/min of the runs' medians, as ± around their midpoint; a strategy is consistent when it stays
within `tolerance_pct` (default ±10 %, the tier rule's own band). Exit 0 when every run has the same tiers and
every strategy is consistent, 1 otherwise: a benchmark whose verdict flips between identical runs is not to be
used. This machine's own figures (absolute CPU, flat-out rate) are shown beside, for what they are.
"""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.table import Table

from harness.reporting.verdict import verdict
from harness.results.errors import ResultsError
from harness.results.fmt import DASH
from harness.results.schema import load_results


def spread_pct(values: list[float | None]) -> float | None:
    """± half the range of the values around their midpoint, in percent (None with a missing value)."""
    if not values or any(v is None or v <= 0 for v in values):
        return None
    vs = [v for v in values if v is not None]
    lo, hi = min(vs), max(vs)
    return (hi - lo) / (hi + lo) * 100.0


def repeatability(runs: list[Path], tolerance_pct: float = 10.0, console: Console | None = None) -> int:
    con = console or Console()
    if len(runs) < 2:
        raise ResultsError("repeatability needs at least two runs of the same scenario")
    loaded = [load_results(r) for r in runs]
    names = {s.name for r in loaded for s in r.scenarios}
    if len(names) != 1 or any(len(r.scenarios) != 1 for r in loaded):
        raise ResultsError(f"repeatability compares runs of one scenario; these hold {', '.join(sorted(names))}")
    scs = [r.scenarios[0] for r in loaded]
    old = [r.run_id for r, sc in zip(loaded, scs, strict=True) if sc.method != "rounds"]
    if old:
        raise ResultsError(f"{old[0]} was measured before schema 4 (in trials): repeatability needs runs in rounds")
    verdicts = [verdict(sc) for sc in scs]
    t = Table(title=f"{scs[0].name}: {len(runs)} runs ({', '.join(r.run_id for r in loaded)})", title_justify="left")
    t.add_column("Adapter")
    for i in range(len(runs)):
        t.add_column(f"run {i + 1} cost ratio (tier)", justify="right")
    t.add_column("spread", justify="right")
    t.add_column(f"within ±{tolerance_pct:g}%")
    t.add_column("CPU µs/record spread (this machine)", justify="right")
    consistent = True
    for a0 in scs[0].adapters:
        per = [sc.adapter(a0.adapter) for sc in scs]
        medians = [a.cost.ratio.median if a and a.cost and a.cost.ratio else None for a in per]
        pct = spread_pct(medians)
        ok = pct is not None and pct <= tolerance_pct
        consistent &= ok
        cells = []
        for a, v in zip(per, verdicts, strict=True):
            r = a.cost.ratio if a and a.cost else None
            tier = v.tier(a) if a else None
            cells.append(f"{r.median:.2f}× ({tier})" if r and tier else "no figure")
        cpu = [a.cost.cpu_us_per_record.median if a and a.cost and a.cost.cpu_us_per_record else None for a in per]
        cpu_pct = spread_pct(cpu)
        t.add_row(
            a0.adapter,
            *cells,
            f"±{pct:.1f}%" if pct is not None else DASH,
            "yes" if ok else "[bold red]no[/]",
            f"±{cpu_pct:.1f}%" if cpu_pct is not None else DASH,
        )
    con.print(t)
    tiers = [v.tier_names() for v in verdicts]
    for i, (run, tr) in enumerate(zip(loaded, tiers, strict=True)):
        text = " | ".join(", ".join(sorted(g)) for g in tr) or "none"
        aa = verdicts[i].aa_same_tier
        con.print(
            f"run {i + 1} ({run.run_id}): {text}"
            + ("" if aa is None else f"; A/A pair {'in one tier' if aa else '[bold red]split[/]'}"),
            highlight=False,
            soft_wrap=True,
        )
    same = all(t_ and [sorted(g) for g in t_] == [sorted(g) for g in tiers[0]] for t_ in tiers)
    con.print(
        f"tiers {'the same in every run' if same else '[bold red]differ[/]'}; cost ratios "
        f"{'all' if consistent else '[bold red]not all[/]'} within ±{tolerance_pct:g}%",
        highlight=False,
    )
    return 0 if same and consistent else 1
