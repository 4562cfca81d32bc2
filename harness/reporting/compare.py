"""Compare runs side by side and flag regressions, so CI can gate on a benchmark.

`compare([RUN_A, RUN_B, ...], threshold_pct)` lines up every scenario/adapter of the first run with the same
scenario/adapter in each later run. What is gated is what the verdict stands on, judged with the same rule:

- the cost ratio (CPU per record over the identity scorer's in the same round, median [interval] over the
  rounds): a regression when it rose and the two are not tied by the tier rule (harness/reporting/tiers.py:
  intervals apart and medians more than `threshold_pct` apart; the default 10 % is the tiers' own);
- accuracy: predictions that crossed the tolerance, or an AUC (less the reference AUC on the same records)
  lower by more than `AUC_DROP`; for the other tasks their quality figures (harness/scoring/quality.py) against
  the reference's on the same records: a multiclass accuracy lower by more than `AUC_DROP`, a log-loss, or a
  regression's RMSE or MAE, higher than the reference's by `QUALITY_RISE` of it more than in the base run;
- records lost where the base run lost none, or more of them.

The tiers of each run are printed beside each other. This machine's own figures (absolute CPU per record, the
flat-out rate, the highest load fraction whose p99 held the SLO, peak memory) are shown, not gated: they move
with the host from run to run. Runs measured before schema 4 (in trials) are refused with one line.
`main_compare` prints the table and returns 0 (no regression) or 1 (regression).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.table import Table

from harness.reporting.tiers import tied
from harness.reporting.verdict import verdict
from harness.results.errors import ResultsError
from harness.results.fmt import DASH, fmt_diff, fmt_mib, fmt_rate
from harness.results.schema import AdapterResult, Results, ScenarioResult, load_results
from harness.results.stats import Stat

AUC_DROP = 0.005  # an AUC lower (against the reference on the same records) by more than this is a regression
COST = "cost ratio"
AUC_GAP = "AUC − reference AUC"
QUALITY_RISE = 0.01  # log-loss, RMSE or MAE above the reference's on the same records by 1 % of it more than before
# the other tasks' quality rows: figure -> (row name, higher is better, as a share of the reference's)
QUALITY_GAPS = {
    "accuracy": ("accuracy − reference accuracy", True, False),
    "log_loss": ("log-loss / reference − 1", False, True),
    "rmse": ("RMSE / reference − 1", False, True),
    "mae": ("MAE / reference − 1", False, True),
}


@dataclass
class MetricRow:
    """One metric of one adapter across the runs: cells[0] is the base run's."""

    scenario: str
    adapter: str
    metric: str
    cells: list[str]
    gated: bool
    regressed: list[bool] = field(default_factory=list)  # per later run
    why: list[str] = field(default_factory=list)
    moved: list[bool] = field(default_factory=list)  # per later run: medians apart, but tied by the rule

    @property
    def any_regressed(self) -> bool:
        return any(self.regressed)


@dataclass
class CompareResult:
    run_ids: list[str]
    threshold_pct: float
    rows: list[MetricRow] = field(default_factory=list)
    tiers: dict[str, list[list[list[str]]]] = field(default_factory=dict)  # scenario -> per run -> tiers
    warnings: list[str] = field(default_factory=list)

    @property
    def regressions(self) -> list[str]:
        out = []
        for r in self.rows:
            for i, bad in enumerate(r.regressed):
                if bad:
                    out.append(f"{r.scenario}/{r.adapter} {r.metric}: {r.why[i]} ({self.run_ids[i + 1]})")
        return out

    @property
    def regressed(self) -> bool:
        return any(r.any_regressed for r in self.rows)


def _ratio_text(st: Stat | None) -> str:
    return st.fmt(lambda x: f"{x:.2f}") + "×" if st else DASH


def _auc_gap(a: AdapterResult | None) -> float | None:
    if a is None:
        return None
    auc, ref = a.auc()
    return auc - ref if auc is not None and ref is not None else None


def _quality_gap(a: AdapterResult | None, figure: str, relative: bool) -> float | None:
    """A quality figure against the reference's on the same records: the difference, or the relative rise."""
    if a is None:
        return None
    v, ref = a.quality()[1].get(figure, (None, None))
    if v is None or ref is None:
        return None
    if relative:
        return v / ref - 1 if ref else None
    return v - ref


def _quality_rows(scenario: str, per: list[AdapterResult | None]) -> list[MetricRow]:
    """The task's quality gaps to the reference (multiclass, regression), one row per figure the runs have."""
    base = per[0]
    assert base is not None
    rows = []
    for figure, (metric, higher, relative) in QUALITY_GAPS.items():
        gaps = [_quality_gap(a, figure, relative) for a in per]
        if all(g is None for g in gaps):
            continue
        text = (lambda g: f"{g:+.2%}") if relative else (lambda g: f"{g:+.4f}")
        row = MetricRow(scenario, base.adapter, metric, [DASH if g is None else text(g) for g in gaps], gated=True)
        g0 = gaps[0]
        for g in gaps[1:]:
            bad = g is not None and g0 is not None and (g < g0 - AUC_DROP if higher else g > g0 + QUALITY_RISE)
            row.regressed.append(bad)
            row.why.append(f"{text(g0)} → {text(g)}" if bad and g0 is not None and g is not None else "")
            row.moved.append(False)
        rows.append(row)
    return rows


def _tolerance(a: AdapterResult) -> float | None:
    tols = [w.accuracy.tolerance for w in a.counted("load") if w.accuracy and w.accuracy.tolerance is not None]
    return max(tols) if tols else None


def _cost_rows(scenario: str, per: list[AdapterResult | None], t_pct: float) -> list[MetricRow]:
    base = per[0]
    assert base is not None
    rows = []
    ratios = [a.cost.ratio if a and a.cost else None for a in per]
    row = MetricRow(scenario, base.adapter, COST, [_ratio_text(r) for r in ratios], gated=not base.is_baseline)
    for r in ratios[1:]:
        a, b = ratios[0], r
        bad, why, moved = False, "", False
        if a is not None and b is None:
            bad, why = True, "no cost measured"
        elif a is not None and b is not None:
            apart = not tied(a, b, t_pct)
            rel = b.median / a.median - 1.0 if a.median else 0.0
            bad = apart and rel > 0 and row.gated
            why = f"{a.median:.2f}× → {b.median:.2f}× (up {rel:.0%}, intervals apart)" if bad else ""
            moved = not apart and abs(rel) * 100 > t_pct
        row.regressed.append(bad)
        row.why.append(why)
        row.moved.append(moved)
    rows.append(row)
    if not base.is_baseline:
        # accuracy
        diffs = [a.max_abs_diff() if a else None for a in per]
        tol = _tolerance(base)
        acc = MetricRow(scenario, base.adapter, "max abs diff", [fmt_diff(d) for d in diffs], gated=True)
        for d in diffs[1:]:
            bad = d is not None and tol is not None and d > tol >= (diffs[0] or 0.0)
            acc.regressed.append(bad)
            acc.why.append(f"{fmt_diff(diffs[0])} → {fmt_diff(d)}, beyond the tolerance {tol:g}" if bad else "")
            acc.moved.append(False)
        rows.append(acc)
        rows += _quality_rows(scenario, per)
        gaps = [_auc_gap(a) for a in per]
        if all(g is None for g in gaps) and base.quality()[0] != "binary":
            gaps = []  # another task: its quality rows above
        auc = MetricRow(scenario, base.adapter, AUC_GAP, [DASH if g is None else f"{g:+.4f}" for g in gaps], gated=True)
        for g in gaps[1:]:
            bad = g is not None and gaps[0] is not None and g < gaps[0] - AUC_DROP
            auc.regressed.append(bad)
            auc.why.append(f"{gaps[0]:+.4f} → {g:+.4f}" if bad and gaps[0] is not None and g is not None else "")
            auc.moved.append(False)
        if gaps:
            rows.append(auc)
    lost = [a.lost() if a else None for a in per]
    lr = MetricRow(scenario, base.adapter, "records lost", [DASH if x is None else f"{x:,}" for x in lost], True)
    for x in lost[1:]:
        bad = x is not None and x > (lost[0] or 0)
        lr.regressed.append(bad)
        lr.why.append(f"{lost[0]} → {x}" if bad else "")
        lr.moved.append(False)
    rows.append(lr)
    # this machine's figures: shown, not gated
    for metric, cells in (
        ("CPU µs/record (this machine)", [_stat(a.cost.cpu_us_per_record if a and a.cost else None, 2) for a in per]),
        ("flat out rows/s (this machine)", [_rate(a) for a in per]),
        ("p99 ≤ SLO up to (this machine)", [_slo(a) for a in per]),
        ("peak RSS MiB", [fmt_mib(a.peak_rss_mib()[0]) if a else DASH for a in per]),
    ):
        rows.append(MetricRow(scenario, base.adapter, metric, cells, gated=False, regressed=[False] * (len(per) - 1)))
    return rows


def _stat(st: Stat | None, digits: int) -> str:
    return st.fmt(lambda x: f"{x:.{digits}f}") if st else DASH


def _rate(a: AdapterResult | None) -> str:
    st = a.cost.flat_out_per_s if a and a.cost else None
    return st.fmt(fmt_rate) if st else DASH


def _slo(a: AdapterResult | None) -> str:
    c = a.cost if a else None
    if c is None or c.highest_fraction_passed is None:
        return DASH
    return f"{c.highest_fraction_passed:.0%}"


def _machine(r: Results) -> tuple[str | None, str | None, int | None]:
    e = r.environment
    return e.hostname, e.cpu_model, e.cpu_count


def _rounds_only(r: Results) -> None:
    old = [s.name for s in r.scenarios if s.adapters and s.method != "rounds"]
    if old:
        raise ResultsError(
            f"{r.run_id}: scenario {old[0]} was measured before schema 4 (in trials): compare needs runs measured "
            "in rounds; run it again"
        )


def compare(runs: list[Path], threshold_pct: float) -> CompareResult:
    """Compare each later run with the first; see the module docstring for what counts as a regression."""
    if len(runs) < 2:
        raise ResultsError("compare needs at least two runs: RUN_A RUN_B [...]")
    if threshold_pct < 0:
        raise ResultsError(f"--threshold-pct must be >= 0, got {threshold_pct:g}")
    loaded = [load_results(Path(r)) for r in runs]
    for r in loaded:
        _rounds_only(r)
    ids = [r.run_id for r in loaded]
    out = CompareResult(ids, threshold_pct)
    base = loaded[0]
    for i, other in enumerate(loaded[1:], 1):
        if _machine(other) != _machine(base):
            out.warnings.append(
                f"runs come from different machines: {ids[0]} on {base.environment.machine()}, {ids[i]} on "
                f"{other.environment.machine()}; ratios travel between machines better than absolute figures, "
                "but not perfectly"
            )
    for sc in base.scenarios:
        others: list[ScenarioResult | None] = [
            next((s for s in r.scenarios if s.name == sc.name), None) for r in loaded[1:]
        ]
        for i, o in enumerate(others, 1):
            if o is None:
                out.warnings.append(f"scenario {sc.name} is missing from {ids[i]}")
        out.tiers[sc.name] = [verdict(s).tier_names() if s else [] for s in (sc, *others)]
        for a in sc.adapters:
            per: list[AdapterResult | None] = [a]
            for i, o in enumerate(others, 1):
                oa = o.adapter(a.adapter) if o else None
                if o is not None and oa is None:
                    out.warnings.append(f"{sc.name}/{a.adapter} is missing from {ids[i]}")
                per.append(oa)
            out.rows += _cost_rows(sc.name, per, threshold_pct)
    return out


def compare_table(res: CompareResult) -> Table:
    letters = [chr(ord("A") + i) if i < 26 else f"R{i + 1}" for i in range(len(res.run_ids))]
    t = Table(
        title=f"Runs compared with A (cost ratios judged by the tier rule, {res.threshold_pct:g} %)",
        caption=", ".join(f"{x} = {rid}" for x, rid in zip(letters, res.run_ids, strict=True)),
        title_justify="left",
        caption_justify="left",
    )
    for col in ("Scenario", "Adapter", "Metric"):
        t.add_column(col)
    for x, rid in zip(letters, res.run_ids, strict=True):
        t.add_column(f"{x}: {rid}", justify="right")
    t.add_column("Flag")
    for r in res.rows:
        cells = [r.scenario, r.adapter, r.metric]
        for i, c in enumerate(r.cells):
            bad = i > 0 and i - 1 < len(r.regressed) and r.regressed[i - 1]
            cells.append(f"[bold red]{c}[/]" if bad else c)
        flag = (
            "[bold red]REGRESSION[/]"
            if r.any_regressed
            else "moved, tied by the rule"
            if any(r.moved)
            else ""
            if r.gated
            else "[dim]not gated[/]"
        )
        t.add_row(*cells, flag)
    return t


def main_compare(runs: list[Path], threshold_pct: float, console: Console | None = None) -> int:
    """Print the comparison; return 0 when no regression, 1 otherwise (for CI)."""
    con = console or Console()
    res = compare(runs, threshold_pct)
    for w in res.warnings:
        con.print(f"[yellow]warning:[/] {w}", highlight=False, soft_wrap=True)
    con.print(compare_table(res))
    for name, per_run in res.tiers.items():
        texts = [" | ".join(", ".join(g) for g in tiers) or "none" for tiers in per_run]
        same = len({str([sorted(g) for g in tiers]) for tiers in per_run}) == 1  # members, not their order
        for i, text in enumerate(texts):
            con.print(f"{name} tiers in {res.run_ids[i]}: {text}", highlight=False, soft_wrap=True)
        con.print(f"{name}: tiers {'the same' if same else '[bold]differ[/]'}", highlight=False)
    regs = res.regressions
    if regs:
        con.print(f"[bold red]{len(regs)} regression(s):[/]", highlight=False)
        for line in regs:
            con.print(f"  {line}", highlight=False, soft_wrap=True)
        return 1
    moved = sum(sum(r.moved) for r in res.rows)
    extra = f" ({moved} cost ratio(s) moved more than {threshold_pct:g} % but stay tied by the rule)" if moved else ""
    con.print(f"[green]no regression[/]{extra}", highlight=False)
    return 0
