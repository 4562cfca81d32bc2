"""Compare runs side by side and flag regressions, so CI can gate on a benchmark.

`compare([RUN_A, RUN_B, ...], threshold_pct)` lines up every scenario/adapter present in the first run with the
same scenario/adapter in each later run and computes RUN_X / RUN_A for: sustainable throughput, flat-out
capacity, p50 and p99 at each load point the runs share (not gated at a point above the strategy's capacity in
every run, where the latency measures the backlog, nor at `QUEUEING_SHARE` of its capacity or more in any run,
where it is mostly queueing for the strategy's own speed: `latency_not_gated`), CPU per 1000 events and peak RSS
at the highest load point (per trial: each trial is a fresh deployment), accuracy, lost records and the
VALID/INVALID verdict.

The figures measured in repeated trials (throughput, capacity, latency, CPU) are judged with the same
statistics as the report: a change is a regression only when the two runs' intervals are apart and the gap
between them exceeds the threshold (harness/results/stats.py `judge`); medians that moved beyond the
threshold while the intervals overlap are "within noise". The bar is also never below the runs' own noise
floor (the difference between the two identical contestants of the A/A pair, `NoiseFloor`): when two
identical scorers measured in run A or in run B differ by 29 % on sustainable throughput, a strategy that
moved 25 % between the runs has not shown a change the runs can tell from noise. The larger of the two runs'
floors for the metric (sustainable, capacity, p99 at that load point) raises the threshold for that row; runs
without an A/A pair keep the plain threshold. Runs of one trial have intervals of one point, so for them this
is the plain ratio test. Accuracy gets worse when predictions cross the tolerance or the AUC (less the
reference AUC on the same records) drops by more than `AUC_DROP`; for the other tasks, the same for their quality
figures (harness/scoring/quality.py) against the reference's on the same records: multiclass accuracy lower by more
than `AUC_DROP`, log-loss, and a regression's RMSE and MAE, higher by more than `QUALITY_RISE` of the reference's;
records lost, or a point that was VALID turning INVALID, are regressions too.
CPU per 1,000 events is a cost a machine's speed moves as much as code does: between two runs of identical code
on the shared 2-core VM, pmml's and rest(onnx)'s rose 13-14% while the identity scorer's (the Kafka-only
baseline: the loop with no model) rose 5%. So a strategy's CPU row is judged as its ratio to the same run's
baseline (`CPU_CONTROL`); the baseline's own row is judged as measured, so a slower loop still shows.
`main_compare` prints the table and returns 0 (no regression) or 1 (regression).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from rich.console import Console
from rich.table import Table

from harness.results.errors import ResultsError
from harness.results.fmt import DASH, fmt_diff, fmt_mib, fmt_ms, fmt_num, fmt_rate
from harness.results.schema import AdapterResult, NoiseFloor, Point, Results, ScenarioResult, load_results
from harness.results.stats import Stat, judge

QUEUEING_SHARE = 0.5  # at or above this share of its capacity, a strategy's latency is mostly queueing
OVERLOADED = (
    "above the strategy's capacity in every trial of every run (a backlog), so its p50/p99 measure how long the "
    "queue grew, not the strategy: not compared (its sustainable rate and capacity are)"
)
NEAR_CAPACITY = (
    "at {share:.0%} of the strategy's flat-out capacity in {run}: there its p50/p99 are mostly the time records "
    "wait for the strategy itself, and waiting grows as 1/(1 - load share), so a few per cent of speed (within the "
    "capacity noise) moves them by tens of per cent: not gated (its capacity and sustainable rate are)"
)
AUC_DROP = 0.005  # an AUC lower (against the reference on the same records) by more than this is a regression
AUC_GAP = "AUC − reference AUC"
QUALITY_RISE = 0.01  # log-loss, RMSE or MAE above the reference's on the same records by more than 1 % of it
# the other tasks' quality rows: (figure, row name, higher is better, as a share of the reference's)
QUALITY_GAPS = {
    "accuracy": ("accuracy − reference accuracy", True, False),
    "log_loss": ("log-loss / reference − 1", False, True),
    "rmse": ("RMSE / reference − 1", False, True),
    "mae": ("MAE / reference − 1", False, True),
}

Better = Literal["higher", "lower", "accuracy", "count", "verdict", "quality_up", "quality_down"]


@dataclass
class MetricRow:
    """One metric of one adapter across the runs: values[0] is the base run."""

    scenario: str
    adapter: str
    metric: str
    better: Better
    values: list[float | str | None]
    ratios: list[float | None]  # per later run: value / base (None when not computable)
    regressed: list[bool]  # per later run
    why: list[str]  # per later run, "" when not regressed
    intervals: list[Stat | None] = field(default_factory=list)  # per run, for figures from repeated trials
    within_noise: list[bool] = field(default_factory=list)  # per later run: moved, but the intervals overlap
    bars: list[float] = field(default_factory=list)  # per later run: the threshold applied (share), noise floor incl.
    relative: bool = False  # judged (and its ratios shown) relative to each run's Kafka-only baseline

    @property
    def any_regressed(self) -> bool:
        return any(self.regressed)


@dataclass
class CompareResult:
    run_ids: list[str]
    paths: list[Path]
    threshold_pct: float
    rows: list[MetricRow] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    floors: dict[str, list[NoiseFloor | None]] = field(default_factory=dict)  # per scenario, per run
    notes: list[str] = field(default_factory=list)

    @property
    def regressions(self) -> list[str]:
        """One line per regression: `scenario/adapter metric: why (run id)`."""
        out = []
        for r in self.rows:
            for i, bad in enumerate(r.regressed):
                if bad:
                    out.append(f"{r.scenario}/{r.adapter} {r.metric}: {r.why[i]} ({self.run_ids[i + 1]})")
        return out

    @property
    def regressed(self) -> bool:
        return any(r.any_regressed for r in self.rows)


def _ratio(base: float | str | None, v: float | str | None) -> float | None:
    if not isinstance(base, int | float) or not isinstance(v, int | float) or base == 0:
        return None
    return v / base


def _judge(better: Better, base: float | str | None, v: float | str | None, t: float, tol: float | None) -> str:
    """Why `v` is a regression against `base`, or "" when it is not."""
    if better == "verdict":
        return f"{base} → {v}" if base == "VALID" and v == "INVALID" else ""
    if better == "higher":
        if isinstance(base, int | float) and base > 0 and v is None:
            return f"{fmt_rate(base)} → none"
        r = _ratio(base, v)
        return f"{r:.2f}x (down {1 - r:.0%})" if r is not None and r < 1 - t else ""
    if better == "lower":
        r = _ratio(base, v)
        return f"{r:.2f}x (up {r - 1:.0%})" if r is not None and r > 1 + t else ""
    if better == "count":
        b = base if isinstance(base, int | float) else 0
        return f"{b:g} → {v:g}" if isinstance(v, int | float) and v > b else ""
    if better in ("quality_up", "quality_down"):  # a gap to the reference on the same records
        if not isinstance(v, int | float) or not isinstance(base, int | float):
            return ""
        if better == "quality_up":
            return f"{base:+.4f} → {v:+.4f}" if v < base - AUC_DROP else ""
        return f"{base:+.2%} → {v:+.2%}" if v > base + QUALITY_RISE else ""
    # accuracy: "max abs diff" (with tolerance) or "AUC"
    if not isinstance(v, int | float) or not isinstance(base, int | float):
        return ""
    if tol is None:  # AUC
        return f"{base:.4f} → {v:.4f}" if v < base - AUC_DROP else ""
    if v > tol >= base:
        return f"{fmt_diff(base)} → {fmt_diff(v)}, beyond the tolerance {tol:g}"
    return ""


def _top_common_point(adapters: list[AdapterResult]) -> str | None:
    names = [{p.name for p in a.load_points() if p.cost is not None} for a in adapters]
    common = set.intersection(*names) if names else set()
    order = [p.name for p in adapters[0].load_points()]
    for name in reversed(order):
        if name in common:
            return name
    return None


def _point_verdict(p: Point | None) -> str | None:
    if p is None or not p.verdict:
        return None
    return p.verdict.upper()


def latency_not_gated(runs: list[AdapterResult | None], name: str, run_ids: list[str]) -> str | None:
    """Why p50/p99 at load point `name` are not judged for this strategy, or None when they are: the point is
    above the strategy's capacity in every run (a backlog), or at `QUEUEING_SHARE` of its capacity or more in
    any run (queueing for the strategy's own speed dominates there)."""
    if all(a is None or a.overloaded_at(name) for a in runs):
        return OVERLOADED
    shares = [(a.load_share(name), rid) for a, rid in zip(runs, run_ids, strict=True) if a is not None]
    busy = [(sh, rid) for sh, rid in shares if sh is not None and sh >= QUEUEING_SHARE]
    if busy:
        share, rid = max(busy)
        return NEAR_CAPACITY.format(share=share, run=rid)
    return None


def noise_bar(metric: str, floors: list[NoiseFloor | None]) -> float | None:
    """The larger of the runs' A/A noise floors for `metric` (a share), or None when no run has one."""
    pcts: list[float | None] = []
    for f in floors:
        if f is None:
            continue
        if metric.startswith("sustainable"):
            pcts.append(f.sustainable_pct)
        elif metric.startswith("capacity"):
            pcts.append(f.capacity_pct)
        elif metric.startswith("p99 ms @ "):
            pcts.append(f.p99_pct.get(metric.removeprefix("p99 ms @ ")))
    known = [p for p in pcts if p is not None]
    return max(known) / 100.0 if known else None


def _judge_stat(better: Better, a: Stat | None, b: Stat | None, t: float) -> tuple[str, bool]:
    """(why `b` is a regression against `a` or "", whether it moved beyond the threshold within the noise).

    `t` is the bar for this row: the threshold, raised to the runs' noise floor where they have one."""
    if a is None or b is None:
        if better == "higher" and a is not None and a.median > 0 and b is None:
            return f"{fmt_rate(a.median)} → none", False
        return "", False
    if a.median == 0:
        return "", False
    r = b.median / a.median
    moved = r < 1 - t if better == "higher" else r > 1 + t
    if judge(a, b, "higher" if better == "higher" else "lower", t) == "worse":
        return (f"{r:.2f}x (down {1 - r:.0%})" if better == "higher" else f"{r:.2f}x (up {r - 1:.0%})"), False
    return "", moved


def _auc_gap(a: AdapterResult | None) -> float | None:
    auc, ref = a.auc() if a else (None, None)
    return round(auc - ref, 6) if auc is not None and ref is not None else None


def _quality_gap(a: AdapterResult | None, figure: str, relative: bool) -> float | None:
    """A quality figure against the reference's on the same records: the difference, or the relative rise."""
    if a is None:
        return None
    v, ref = a.quality()[1].get(figure, (None, None))
    if v is None or ref is None:
        return None
    if relative:
        return round(v / ref - 1, 6) if ref else None
    return round(v - ref, 6)


def _adapter_specs(
    runs: list[AdapterResult | None], run_ids: list[str]
) -> list[tuple[str, Better, list[Any], float | None]]:
    """(metric, which way is better, per-run values — Stats for figures from trials — and a tolerance)."""
    base = runs[0]
    assert base is not None
    specs: list[tuple[str, Better, list[Any], float | None]] = []

    def add(metric: str, better: Better, values: list[Any], tol: float | None = None) -> None:
        specs.append((metric, better, values, tol))

    add("sustainable rows/s", "higher", [a.sustainable_stat if a else None for a in runs])
    if any(a and a.capacity_stat for a in runs):
        add("capacity rows/s", "higher", [a.capacity_stat if a else None for a in runs])
    shared = [p.name for p in base.load_points() if all(a is None or a.point_stat(p.name) for a in runs)]
    for name in shared:
        if latency_not_gated(runs, name, run_ids):
            continue  # a backlog, or mostly queueing: compare() says so in a note
        pts = [a.point_stat(name) if a else None for a in runs]
        add(f"p50 ms @ {name}", "lower", [p.p50_ms if p else None for p in pts])
        add(f"p99 ms @ {name}", "lower", [p.p99_ms if p else None for p in pts])
    cost = base.cost_point()
    if cost is not None:
        add(f"CPU s/1000 @ {cost.name}", "lower", [a.stats.cpu_s_per_1000 if a and a.stats else None for a in runs])
    if cost is not None:  # the memory to serve that load (see AdapterResult.rss_stats_at), per trial
        rss = [a.rss_stats_at(cost.name) if a else (None, None) for a in runs]  # (client, server) per run
        add(f"peak RSS MiB @ {cost.name}", "lower", [c for c, _ in rss])
        if any(sv is not None for _, sv in rss):
            add(f"server peak RSS MiB @ {cost.name}", "lower", [sv for _, sv in rss])
    tols = [p.accuracy.tolerance for p in base.counted_points() if p.accuracy and p.accuracy.tolerance is not None]
    if any(a and a.max_abs_diff() is not None for a in runs):
        add("max abs diff", "accuracy", [a.max_abs_diff() if a else None for a in runs], min(tols) if tols else None)
    if any(a and a.auc()[0] is not None for a in runs):
        # the AUC lost against the reference scorer on the same records: each run scores its own subset of the
        # holdout (~1% positives), so raw AUCs of identical predictions differed by 0.007 between two runs
        add(AUC_GAP, "accuracy", [_auc_gap(a) for a in runs])
    for figure, (row, higher, relative) in QUALITY_GAPS.items():
        gaps = [_quality_gap(a, figure, relative) for a in runs]
        if any(g is not None for g in gaps):
            add(row, "quality_up" if higher else "quality_down", gaps)
    add(
        "lost + dead-lettered",
        "count",
        [sum(p.counts.lost + p.counts.dead_lettered for p in a.counted_points()) if a else None for a in runs],
    )
    for name in shared:
        add(f"verdict @ {name}", "verdict", [_point_verdict(a.point(name)) if a else None for a in runs])
    return specs


CPU_METRIC = "CPU s/1000"
CPU_CONTROL = (
    "CPU s/1000 of each strategy is judged relative to the same run's Kafka-only baseline (the identity scorer's "
    "CPU per 1,000 events at the same load point; ratios marked *): a machine that runs slower in one run raises "
    "every strategy's CPU per event alike. The baseline's own row is judged as measured"
)


def _scaled(st: Stat, k: float) -> Stat:
    """`st` with every figure multiplied by `k` (a ratio to a control)."""
    return st.model_copy(
        update={
            "median": st.median * k,
            "lo": st.lo * k,
            "hi": st.hi * k,
            "min": st.min * k,
            "max": st.max * k,
            "values": [v * k for v in st.values],
        }
    )


def _relative_to_control(values: list[Any], controls: list[float | None]) -> list[Any] | None:
    """Each run's Stat divided by that run's control median, or None when a run lacks one."""
    if any(isinstance(v, Stat) and not c for v, c in zip(values, controls, strict=True)):
        return None
    return [_scaled(v, 1.0 / c) if isinstance(v, Stat) and c else v for v, c in zip(values, controls, strict=True)]


def _adapter_rows(
    scenario: str,
    runs: list[AdapterResult | None],
    t: float,
    floors: list[NoiseFloor | None] | None = None,
    run_ids: list[str] | None = None,
    cpu_controls: list[float | None] | None = None,
) -> list[MetricRow]:
    """`floors`: each run's A/A noise floor for this scenario (None where a run has none); `cpu_controls`: each
    run's Kafka-only baseline CPU per 1,000 events (CPU rows of other strategies are judged relative to it)."""
    base = runs[0]
    assert base is not None
    fl = floors or [None] * len(runs)
    rows = []
    ids = run_ids or [f"run {i + 1}" for i in range(len(runs))]
    for metric, better, values, tol in _adapter_specs(runs, ids):
        if all(v is None for v in values):
            continue
        stats = [v for v in values if isinstance(v, Stat)]
        if stats:
            medians: list[float | str | None] = [v.median if isinstance(v, Stat) else None for v in values]
            judged_values = values
            if metric.startswith(CPU_METRIC) and cpu_controls and not base.is_baseline:
                judged_values = _relative_to_control(values, cpu_controls) or values
            relative = judged_values is not values
            bars = [max(t, noise_bar(metric, [fl[0], fl[i + 1]]) or 0.0) for i in range(len(values) - 1)]
            judged = [
                _judge_stat(better, judged_values[0], v, bars[i]) if runs[i + 1] is not None else ("", False)
                for i, v in enumerate(judged_values[1:])
            ]
            # "within noise": the median moved beyond the plain threshold, but the intervals overlap or the
            # move is inside the runs' noise floor
            moved = [any(_judge_stat(better, judged_values[0], v, t)) for v in judged_values[1:]]
            why = [
                w
                + (" relative to each run's Kafka-only baseline" if w and relative else "")
                + (f", beyond the runs' A/A noise floor {bars[i]:.0%}" if w and bars[i] > t else "")
                for i, (w, _) in enumerate(judged)
            ]
            judged_medians = [v.median if isinstance(v, Stat) else None for v in judged_values]
            ratios = [_ratio(judged_medians[0], m) for m in judged_medians[1:]]
            row = MetricRow(scenario, base.adapter, metric, better, medians, ratios, [bool(w) for w in why], why)
            row.intervals = list(values)
            row.within_noise = [m and not w for (w, _), m in zip(judged, moved, strict=True)]
            row.bars = bars
            row.relative = relative
            rows.append(row)
            continue
        better_eff: Better = "lower" if better == "accuracy" and metric == "max abs diff" and tol is None else better
        later = values[1:]
        why = [_judge(better_eff, values[0], v, t, tol) if runs[i + 1] is not None else "" for i, v in enumerate(later)]
        ratios = [_ratio(values[0], v) if better in ("higher", "lower", "accuracy") else None for v in later]
        rows.append(MetricRow(scenario, base.adapter, metric, better, values, ratios, [bool(w) for w in why], why))
    return rows


def _baseline_cpu(sc: ScenarioResult | None) -> float | None:
    """The Kafka-only baseline's median CPU per 1,000 events in this run (None without one)."""
    b = sc.baseline() if sc is not None else None
    return b.cpu_s_per_1000() if b is not None and not b.error else None


def _machine(r: Results) -> tuple[str | None, str | None, int | None]:
    e = r.environment
    return e.hostname, e.cpu_model, e.cpu_count


def compare(runs: list[Path], threshold_pct: float) -> CompareResult:
    """Compare each later run with the first; see the module docstring for what counts as a regression."""
    if len(runs) < 2:
        raise ResultsError("compare needs at least two runs: RUN_A RUN_B [...]")
    if threshold_pct < 0:
        raise ResultsError(f"--threshold-pct must be >= 0, got {threshold_pct:g}")
    loaded = [load_results(Path(r)) for r in runs]
    ids = [r.run_id for r in loaded]
    out = CompareResult(ids, [Path(r) for r in runs], threshold_pct)
    t = threshold_pct / 100.0

    base = loaded[0]
    for i, other in enumerate(loaded[1:], 1):
        if _machine(other) != _machine(base):
            env_a, env_b = base.environment, other.environment
            out.warnings.append(
                f"runs come from different machines: {ids[0]} on {env_a.machine()}, {ids[i]} on {env_b.machine()}; "
                "the ratios compare machines as much as code"
            )
    for sc in base.scenarios:
        others = [next((s for s in r.scenarios if s.name == sc.name), None) for r in loaded[1:]]
        for i, o in enumerate(others, 1):
            if o is None:
                out.warnings.append(f"scenario {sc.name} is missing from {ids[i]}")
        floors = [sc.noise, *(o.noise if o else None for o in others)]
        out.floors[sc.name] = floors
        cpu_controls = [_baseline_cpu(s) for s in (sc, *others)]
        for a in sc.adapters:
            per_run: list[AdapterResult | None] = [a]
            for i, o in enumerate(others, 1):
                oa = o.adapter(a.adapter) if o else None
                if o is not None and oa is None:
                    out.warnings.append(f"{sc.name}/{a.adapter} is missing from {ids[i]}")
                per_run.append(oa)
            rows = _adapter_rows(sc.name, per_run, t, floors, ids, cpu_controls)
            out.rows += rows
            if any(r.relative for r in rows) and CPU_CONTROL not in out.notes:
                out.notes.append(CPU_CONTROL)
            for name in [p.name for p in a.load_points()]:
                why = latency_not_gated(per_run, name, ids)
                if why:
                    out.notes.append(f"{sc.name}/{a.adapter} @ {name}: {why}")
    for i, r in enumerate(loaded[1:], 1):
        known = {(s.name, a.adapter) for s in base.scenarios for a in s.adapters}
        new = [f"{s.name}/{a.adapter}" for s in r.scenarios for a in s.adapters if (s.name, a.adapter) not in known]
        if new:
            out.warnings.append(f"{ids[i]} has results the base run lacks (not compared): {', '.join(new)}")
    return out


def _fmt(metric: str, v: float | str | None) -> str:
    if v is None:
        return DASH
    if isinstance(v, str):
        return v
    if metric.startswith(("p50", "p99")):
        return fmt_ms(v)
    if "RSS" in metric:
        return fmt_mib(v)
    if metric.startswith("sustainable"):
        return fmt_rate(v)
    if metric == "max abs diff":
        return fmt_diff(v)
    if metric == AUC_GAP or metric == QUALITY_GAPS["accuracy"][0]:
        return f"{v:+.4f}"
    if metric in {row for row, _, relative in QUALITY_GAPS.values() if relative}:
        return f"{v:+.2%}" if isinstance(v, float) else str(v)
    return fmt_num(v, 4)


def compare_table(res: CompareResult) -> Table:
    """Side by side: one row per scenario/adapter/metric, each later run's value and its ratio to the first."""
    letters = [chr(ord("A") + i) if i < 26 else f"R{i + 1}" for i in range(len(res.run_ids))]
    t = Table(
        title=f"Runs compared with A (threshold {res.threshold_pct:g} %)",
        caption=", ".join(f"{x} = {rid}" for x, rid in zip(letters, res.run_ids, strict=True)),
        title_justify="left",
        caption_justify="left",
    )
    t.add_column("Scenario")
    t.add_column("Adapter")
    t.add_column("Metric")
    t.add_column(f"A: {res.run_ids[0]}", justify="right")
    for x, rid in zip(letters[1:], res.run_ids[1:], strict=True):
        t.add_column(f"{x}: {rid}", justify="right")
        t.add_column(f"{x} / A", justify="right")
    t.add_column("Flag")
    for r in res.rows:
        cells = [r.scenario, r.adapter, r.metric, _cell(r, 0)]
        for i in range(len(r.values) - 1):
            ratio = r.ratios[i]
            text = DASH if ratio is None else f"{ratio:.2f}x" + ("*" if r.relative else "")
            if r.regressed[i]:
                text = f"[bold red]{text}[/]"
            cells += [_cell(r, i + 1), text]
        flag = "[bold red]REGRESSION[/]" if r.any_regressed else "within noise" if any(r.within_noise) else ""
        cells.append(flag)
        t.add_row(*cells)
    return t


def _cell(r: MetricRow, i: int) -> str:
    st = r.intervals[i] if i < len(r.intervals) else None
    if isinstance(st, Stat) and st.n > 1:
        return st.fmt(lambda v: _fmt(r.metric, v))
    return _fmt(r.metric, r.values[i])


def main_compare(runs: list[Path], threshold_pct: float, console: Console | None = None) -> int:
    """Print the comparison; return 0 when no regression beyond the threshold, 1 otherwise (for CI)."""
    con = console or Console()
    res = compare(runs, threshold_pct)
    for w in res.warnings:
        con.print(f"[yellow]warning:[/] {w}", highlight=False, soft_wrap=True)
    con.print(compare_table(res))
    for note in res.notes:
        con.print(f"note: {note}", highlight=False, soft_wrap=True)
    for name, floors in res.floors.items():
        if any(f is not None and f.sustainable_pct is not None for f in floors):
            con.print(f"{name}: A/A noise floor per run — {_floors_text(floors)}", highlight=False, soft_wrap=True)
    regs = res.regressions
    if regs:
        con.print(f"[bold red]{len(regs)} regression(s) beyond {threshold_pct:g} %:[/]", highlight=False)
        for line in regs:
            con.print(f"  {line}", highlight=False, soft_wrap=True)
        return 1
    noise = sum(sum(r.within_noise) for r in res.rows)
    extra = (
        f" ({noise} change(s) beyond {threshold_pct:g} % within noise: the intervals overlap, or the move is"
        " inside the runs' A/A noise floor)"
        if noise
        else ""
    )
    con.print(f"[green]no regression beyond {threshold_pct:g} %[/]{extra}", highlight=False)
    return 0


def _floors_text(floors: list[NoiseFloor | None]) -> str:
    def pct(v: float | None) -> str:
        return DASH if v is None else f"{v:.0f}%"

    parts = []
    for i, f in enumerate(floors):
        x = chr(ord("A") + i) if i < 26 else f"R{i + 1}"
        if f is None:
            parts.append(f"{x}: none (no A/A pair)")
        else:
            parts.append(f"{x}: sustainable {pct(f.sustainable_pct)}, capacity {pct(f.capacity_pct)}")
    return "; ".join(parts) + " (a change must clear the larger of the two runs' floors as well as the threshold)"
