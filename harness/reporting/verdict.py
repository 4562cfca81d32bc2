"""What a run means: the strategies in tiers by cost, the recommendation, its caveats, and the verdict's tables.

Every strategy with a cost is placed in a tier (harness/reporting/tiers.py) by the median over the rounds of
its CPU time per record as a ratio to the control (the identity scorer) in the same round. The recommendation
names the first tier holding a strategy fit to use (no lost record, predictions within the tolerance) and how to
choose inside it: latency at the load fractions, memory, operations. The two identity contestants (the A/A
pair) must share a tier: when they do not, the run's noise is larger than the differences the tiers claim, and
the run says it cannot rank.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rich.table import Table

from harness.reporting.tables import TableData
from harness.reporting.tiers import Ranked, tier_of, tiers
from harness.results.fmt import DASH, fmt_diff, fmt_mib, fmt_ms, fmt_num, fmt_rate
from harness.results.schema import AdapterResult, Results, ScenarioResult, parse_results
from harness.results.stats import Stat

AA_LABEL = "identity (A/A)"

# how each family runs in production, for choosing within a tier
OPERATIONS = {
    "baseline": "the loop with no model",
    "native": "in the scoring process, the training library's own runtime",
    "onnx": "in the scoring process (onnxruntime)",
    "generated-code": "in the scoring process (generated code, no model runtime)",
    "pmml": "in the scoring process on a JVM (pypmml)",
    "pfa": "in the scoring process (titus2)",
    "external-server": "a separate model server to deploy, scale and monitor",
}
OWN_CLIENT_OPERATIONS = "a separate application with its own Kafka client and runtime to deploy, scale and monitor"


def operations(a: AdapterResult) -> str:
    return OWN_CLIENT_OPERATIONS if a.client == "own" else OPERATIONS.get(a.family, a.family or "?")


@dataclass
class Verdict:
    scenario: ScenarioResult
    tiers: list[list[AdapterResult]] = field(default_factory=list)
    unplaced: list[tuple[AdapterResult, str]] = field(default_factory=list)
    unfit: dict[str, str] = field(default_factory=dict)  # adapter -> why it is not recommended
    recommended: list[AdapterResult] = field(default_factory=list)
    recommendation: str = ""
    caveats: list[str] = field(default_factory=list)
    aa_same_tier: bool | None = None

    @property
    def can_rank(self) -> bool:
        return bool(self.tiers) and self.aa_same_tier is not False

    def tier(self, a: AdapterResult) -> int | None:
        return tier_of([[x.adapter for x in t] for t in self.tiers], a.adapter)

    def placed(self) -> list[AdapterResult]:
        return [a for t in self.tiers for a in t]

    def tier_names(self) -> list[list[str]]:
        return [[a.adapter for a in t] for t in self.tiers]


def ratio_of(a: AdapterResult) -> Stat | None:
    return a.cost.ratio if a.cost is not None else None


def unfit_reason(a: AdapterResult) -> str | None:
    """Why a placed strategy must not be recommended, whatever its cost."""
    if a.lost():
        return f"{a.lost():,} records lost"
    if a.accuracy_failures():
        return "predictions beyond the tolerance"
    return None


def _not_placed(a: AdapterResult) -> str:
    if a.error:
        return f"failed: {a.error}"
    problems = sorted({p for w in a.windows if w.kind == "backlog" and not w.warmup for p in w.problems})
    if problems:
        return "no backlog window counted: " + "; ".join(problems[:2])
    return "no cost measured"


def verdict(sc: ScenarioResult) -> Verdict:
    v = Verdict(sc)
    if sc.method != "rounds":
        if sc.adapters:
            v.recommendation = (
                "This run was measured before schema 4 (in trials, ranked on a searched rate): it has no cost "
                "tiers. Run it again with this harness for a verdict."
            )
        return v
    ranked, by_name = [], {}
    for a in sc.adapters:
        r = ratio_of(a)
        if r is None or a.error:
            v.unplaced.append((a, _not_placed(a)))
            continue
        ranked.append(Ranked(a.adapter, r))
        by_name[a.adapter] = a
    v.tiers = [[by_name[n] for n in group] for group in tiers(ranked, sc.tie_pct)]
    for a in v.placed():
        why = unfit_reason(a)
        if why:
            v.unfit[a.adapter] = why
    control, aa = sc.control_result(), sc.adapter(AA_LABEL)
    if control is not None and aa is not None and control in v.placed() and aa in v.placed():
        v.aa_same_tier = v.tier(control) == v.tier(aa)
    v.recommendation = _recommend(v)
    v.caveats = _caveats(v)
    return v


def _cost_phrase(a: AdapterResult) -> str:
    r = ratio_of(a)
    return f"{a.adapter} {r.fmt(lambda x: f'{x:.2f}')}×" if r else a.adapter


def _list(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _recommend(v: Verdict) -> str:
    sc = v.scenario
    if not v.tiers:
        return "No recommendation: no strategy has a cost measured in this run."
    n = sc.counted_rounds
    if v.aa_same_tier is False:
        control, aa = sc.control_result(), sc.adapter(AA_LABEL)
        r = ratio_of(aa) if aa else None
        return (
            "No ranking from this run: the two identical identity contestants landed in different tiers "
            f"({AA_LABEL} costs {r.fmt(lambda x: f'{x:.2f}') if r else '?'}× the control around it, the identity "
            f"{_ratio_cell(ratio_of(control)) if control else '?'}), so "
            "this run's noise is larger than the differences its tiers would claim. "
            + ("Run it again; " if control is not None else "")
            + "see the caveats for what disturbed the rounds."
        )
    for i, tier in enumerate(v.tiers):
        fit = [a for a in tier if not a.is_baseline and a.adapter not in v.unfit]
        if not fit:
            continue
        v.recommended = fit
        how = (
            f"CPU time per record of every process the strategy runs, as a ratio to the loop with no model (the "
            f"identity scorer) measured in the same round; median over {n} round{'s' if n != 1 else ''} [interval]"
        )
        costs = ", ".join(_cost_phrase(a) for a in fit)
        where = f"tier {i + 1}" + (" (with the loop alone)" if any(a.is_baseline for a in tier) else "")
        per_core = [
            f"{a.adapter} {fmt_rate(a.cost.records_per_s_per_core)}"
            for a in fit
            if a.cost and a.cost.records_per_s_per_core
        ]
        core = f" One core scores {_list(per_core)} records/s." if per_core else ""
        if len(fit) == 1:
            a = fit[0]
            return f"**Use {a.adapter}** ({where}): it costs {costs} ({how}).{core} {_latency_phrase([a])}".strip()
        return (
            f"**{_list([a.adapter for a in fit])} share {where}**: they cost {costs} ({how}), closer than the "
            f"tier rule can tell apart.{core} Choose within it by {_choose_within(fit)}"
        )
    return "No recommendation: every placed strategy lost records or predicted beyond the tolerance."


def _latency_phrase(group: list[AdapterResult]) -> str:
    parts = []
    for a in group:
        c = a.cost
        if c is None:
            continue
        if c.highest_fraction_passed is not None:
            rate = f" = {fmt_rate(c.rate_at_highest_fraction)}/s on this machine" if c.rate_at_highest_fraction else ""
            parts.append(f"{a.adapter} up to {c.highest_fraction_passed:.0%} of its flat-out rate{rate}")
        else:
            parts.append(f"{a.adapter} at no tested fraction")
    if not parts:
        return ""
    return f"The p99 held the SLO (at 99% confidence, early stopping): {'; '.join(parts)}."


def _choose_within(group: list[AdapterResult]) -> str:
    lat = _latency_phrase(group)
    mem = []
    for a in group:
        rss, srv = a.peak_rss_mib()
        if rss is not None:
            mem.append(f"{a.adapter} {fmt_mib(rss)}" + (f" + {fmt_mib(srv)} server" if srv else "") + " MiB")
    ops = "; ".join(f"{a.adapter}: {operations(a)}" for a in group)
    out = "latency, memory and operations."
    if lat:
        out += " " + lat
    if mem:
        out += f" Peak memory: {', '.join(mem)}."
    return out + f" Operations: {ops}."


def _caveats(v: Verdict) -> list[str]:
    sc = v.scenario
    out = []
    n = sc.counted_rounds
    conf = [a.cost.ratio.coverage for a in v.placed() if a.cost and a.cost.ratio and a.cost.ratio.n > 1]
    if conf:
        out.append(
            f"Intervals are the order-statistic interval of the median over the rounds (distribution-free): with "
            f"{n} rounds it covers the median with {min(conf):.0%} probability. Tiers: intervals that overlap, or "
            f"medians within {sc.tie_pct:g}%, share a tier, led by the tier's cheapest member."
        )
    for a, why in v.unplaced:
        out.append(f"{a.adapter} is not placed: {why}.")
    for name, why in v.unfit.items():
        out.append(f"{name} is not recommended: {why}.")
    repeated = sum(a.cost.remeasured for a in v.placed() if a.cost)
    busy = sum(1 for a in sc.adapters for w in a.windows if w.busy and not w.warmup)
    windows = sum(1 for a in sc.adapters for w in a.windows if not w.warmup)
    if busy:
        out.append(
            f"{busy} of {windows} windows ran while CPU steal or other processes passed the thresholds; {repeated} "
            "backlog windows were measured again in their round (a repeat that was busy too stops repeats for the "
            "rest of that round). CPU time excludes steal on this kernel, and every ratio is taken within a round."
        )
    capped = sorted({a.adapter for a in sc.adapters for w in a.windows if w.capped})
    if capped:
        out.append(
            f"Load windows of {_list(capped)} are fractions of the whole pipeline's end-to-end ceiling, not of "
            "their own flat-out rate, which is higher: the load generator, the broker and the measurer share these "
            "cores (their latency is the harness's as much as theirs)."
        )
    undecided = [
        f"{a.adapter} at {f.fraction:.0%}"
        for a in sc.adapters
        for f in a.fractions
        if f.passed is None and f.latency.measured
    ]
    if undecided:
        out.append(
            "Too few samples to tell whether the p99 held (early stopping needs more): " + "; ".join(undecided) + "."
        )
    own = [a.adapter for a in v.placed() if a.client == "own"]
    if own:
        out.append(
            f"{_list(own)} {'runs' if len(own) == 1 else 'run'} with its own Kafka client: its cost is that whole "
            "application's, against the Python loop's identity scorer."
        )
    return out


# ---------------------------------------------------------------------------------------------------------
# Tables
# ---------------------------------------------------------------------------------------------------------


def _ratio_cell(st: Stat | None) -> str:
    return st.fmt(lambda x: f"{x:.2f}") + "×" if st else DASH


def _us_cell(st: Stat | None) -> str:
    return st.fmt(lambda x: f"{x:.2f}") if st else DASH


def _slo_cell(a: AdapterResult) -> str:
    c = a.cost
    if c is None or not a.fractions:
        return DASH
    if c.highest_fraction_passed is None:
        return "none held" if any(f.passed is False for f in a.fractions) else "undecided"
    rate = f" ({fmt_rate(c.rate_at_highest_fraction)}/s)" if c.rate_at_highest_fraction else ""
    return f"{c.highest_fraction_passed:.0%}{rate}"


QUALITY_NAMES = {"auc": "AUC", "log_loss": "log-loss", "accuracy": "accuracy", "rmse": "RMSE", "mae": "MAE"}
QUALITY_HEADERS = {
    "binary": "max abs diff · AUC",
    "regression": "max abs diff · RMSE · MAE",
    "multiclass": "max abs diff · log-loss · accuracy",
}


def quality_cells(a: AdapterResult) -> list[str]:
    """The task's quality figures (harness/scoring/quality.py), each beside the reference's on the same records:
    "AUC 0.9452/0.9452", "RMSE 11.8/11.8", "log-loss 0.4210/0.4210"."""
    _, figures = a.quality()
    out = []
    for name, (v, ref) in figures.items():
        if v is None:
            continue
        spec = ".4f" if name in ("auc", "accuracy", "log_loss") else ".4g"
        out.append(f"{QUALITY_NAMES[name]} {format(v, spec)}" + (f"/{format(ref, spec)}" if ref is not None else ""))
    return out


def quality_header(sc: ScenarioResult) -> str:
    """The accuracy column's name for the scenario's task."""
    return QUALITY_HEADERS.get(sc.task or "binary", QUALITY_HEADERS["binary"])


def _accuracy_cell(a: AdapterResult) -> str:
    if a.is_baseline:
        return "n/a"
    return " · ".join([fmt_diff(a.max_abs_diff()), *quality_cells(a)])


def tier_table(v: Verdict) -> TableData:
    header = ["Tier", "Adapter", "Family", "Cost ratio", "Model µs/record", "Records/s per core"]
    header += ["p99 ≤ SLO up to", "Peak RSS MiB", quality_header(v.scenario), "Note"]
    rows = []
    for i, tier in enumerate(v.tiers):
        for a in tier:
            c = a.cost
            rss, srv = a.peak_rss_mib()
            note = v.unfit.get(a.adapter, "")
            if a.is_baseline:
                note = note or ("the control" if a.adapter == v.scenario.control else "A/A twin of the control")
            rows.append(
                [
                    str(i + 1),
                    a.adapter,
                    a.family or DASH,
                    _ratio_cell(c.ratio if c else None),
                    "n/a" if a.adapter == v.scenario.control else _us_cell(c.model_us_per_record if c else None),
                    fmt_rate(c.records_per_s_per_core) if c else DASH,
                    _slo_cell(a),
                    fmt_mib(rss) + (f" + {fmt_mib(srv)}" if srv else ""),
                    _accuracy_cell(a),
                    note,
                ]
            )
    for a, why in v.unplaced:
        rows.append(["–", a.adapter, a.family or DASH, DASH, DASH, DASH, DASH, DASH, DASH, why])
    sc = v.scenario
    note = (
        f"Cost ratio: CPU time per record on a backlog (full micro-batches) of every process the strategy runs, "
        f"over the identity scorer's in the same round; median [interval] over {sc.counted_rounds} rounds. Model "
        "µs/record: the strategy's cost minus the identity's in the same round. Records/s per core: 1 / cost. "
        "p99 ≤ SLO up to: the highest share of its own flat-out rate at which the p99 held "
        f"≤ {sc.slo_p99_ms or 0:g} ms at 99% confidence (open-loop Poisson load, every lower share held too), "
        "and the rate that meant on this machine."
    )
    return TableData(header, rows, note)


def latency_table(sc: ScenarioResult) -> TableData:
    fractions = sorted({f.fraction for a in sc.adapters for f in a.fractions})
    header = ["Adapter"] + [f"{f:.0%} of flat out" for f in fractions]
    rows = []
    mark = {True: "✓", False: "✗", None: "?"}
    for a in sc.adapters:
        if not a.fractions:  # the A/A twin is loaded in no window
            continue
        by = {f.fraction: f for f in a.fractions}
        row = [a.adapter]
        for f in fractions:
            fr = by.get(f)
            if fr is None or fr.latency.measured == 0:
                row.append(DASH)
                continue
            lat = fr.latency
            rate = f" @ {fmt_rate(fr.offered_per_s.median)}/s" if fr.offered_per_s else ""
            row.append(
                f"{mark[fr.passed]} p99 {fmt_ms(lat.p99_ms)} ms{rate} ({lat.over_slo:,} of {lat.measured:,} over)"
            )
        rows.append(row)
    note = (
        f"Pooled over the rounds: p99 from the intended send time, the rate offered (median), and how many samples "
        f"exceeded the SLO ({sc.slo_p99_ms or 0:g} ms). ✓ the p99 holds at 99% confidence (MLPerf LoadGen's early "
        "stopping), ✗ it is missed at 99% confidence, ? too few samples to tell."
    )
    return TableData(header, rows, note)


def machine_table(sc: ScenarioResult) -> TableData:
    header = ["Adapter", "CPU µs/record", "Flat-out rows/s", "In-process rows/s (batch)", "Backlog windows"]
    header += ["Busy windows", "Measured again", "Load windows"]
    rows = []
    for a in sc.adapters:
        c = a.cost
        ip = a.inprocess
        back = [w for w in a.windows if w.kind == "backlog" and not w.warmup]
        load = [w for w in a.windows if w.kind == "load"]
        batch = DASH
        if ip and ip.batch_rows_per_s is not None:
            batch = fmt_rate(ip.batch_rows_per_s) + (f" (×{ip.batch_size})" if ip.batch_size else "")
        rows.append(
            [
                a.adapter,
                _us_cell(c.cpu_us_per_record if c else None),
                c.flat_out_per_s.fmt(fmt_rate) if c and c.flat_out_per_s else DASH,
                batch,
                f"{sum(1 for w in back if w.counts)} of {len(back)}",
                str(sum(1 for w in a.windows if w.busy and not w.warmup)),
                str(c.remeasured if c else 0),
                f"{sum(1 for w in load if w.counts)} of {len(load)}",
            ]
        )
    note = (
        "This machine's own figures: absolute CPU per record and the flat-out rate on a backlog move with the host "
        "(its speed, steal, neighbours) from run to run; the ratios above are taken within each round so that "
        "they do not. Busy: CPU steal or other processes over the thresholds during the window."
    )
    return TableData(header, rows, note)


def windows_table(sc: ScenarioResult) -> TableData:
    header = ["Round", "#", "Adapter", "Window", "Records", "CPU µs/record", "Rows/s", "p99 ms", "Steal %"]
    header += ["Other CPU %", "Note"]
    rows = []
    ws = sorted(
        ((w, a) for a in sc.adapters for w in a.windows), key=lambda wa: (wa[0].round, wa[0].kind, wa[0].position)
    )
    for w, a in ws:
        inter = w.interference
        notes = [*w.problems]
        if w.warmup:
            notes.append("warm-up")
        if w.superseded:
            notes.append("busy: measured again")
        if w.capped:
            notes.append("a fraction of the pipeline's ceiling")
        rows.append(
            [
                str(w.round),
                str(w.position + 1),
                a.adapter,
                w.kind if w.kind == "backlog" else f"load {w.fraction:.0%}",
                f"{w.records:,}",
                fmt_num(w.cpu_us_per_record),
                fmt_rate(w.rows_per_s),
                fmt_ms(w.latency.p99_ms) if w.latency else DASH,
                fmt_num(inter.steal_pct) if inter and inter.steal_pct is not None else DASH,
                fmt_num(inter.other_cpu_pct) if inter and inter.other_cpu_pct is not None else DASH,
                "; ".join(notes),
            ]
        )
    return TableData(header, rows, "Every window of the run, in the order the rounds measured them.")


def saturation_table(sc: ScenarioResult) -> TableData:
    header = ["Adapter", "Saturation rows/s", "Limited by", "Steps"]
    rows = [
        [
            a.adapter,
            fmt_rate(a.saturation.rows_per_s),
            a.saturation.limited_by or DASH,
            " → ".join(f"{fmt_rate(s.offered_per_s)}{'✓' if s.ok else '✗'}" for s in a.saturation.steps),
        ]
        for a in sc.adapters
        if a.saturation is not None
    ]
    note = (
        "`--thorough`: the highest constant rate whose p99 held the SLO, found by bisection, once per strategy. "
        "This machine's saturation point at the time of its search: not a ranking figure."
    )
    return TableData(header, rows, note)


# ---------------------------------------------------------------------------------------------------------
# The end-of-run table the CLI prints
# ---------------------------------------------------------------------------------------------------------


def summary_table(results: Results | dict[str, Any]) -> Table:
    res = parse_results(results)
    t = Table(title=f"Run {res.run_id}" if res.run_id else None, title_justify="left")
    for col, kw in (
        ("Scenario", {}),
        ("Tier", {"justify": "right"}),
        ("Adapter", {}),
        ("Cost ratio [interval]", {"justify": "right"}),
        ("Model µs/record", {"justify": "right"}),
        ("p99 ≤ SLO up to", {"justify": "right"}),
        ("max abs diff", {"justify": "right"}),
        ("Quality / reference", {"justify": "right"}),
        ("Note", {}),
    ):
        t.add_column(col, **kw)  # type: ignore[arg-type]
    for sc in res.scenarios:
        if not sc.adapters:
            continue
        v = verdict(sc)
        for i, tier in enumerate(v.tiers):
            for a in tier:
                c = a.cost
                name = f"[bold]{a.adapter}[/]" if a in v.recommended else a.adapter
                t.add_row(
                    sc.name,
                    str(i + 1),
                    name,
                    _ratio_cell(c.ratio if c else None),
                    "n/a" if a.adapter == sc.control else _us_cell(c.model_us_per_record if c else None),
                    _slo_cell(a),
                    "n/a" if a.is_baseline else fmt_diff(a.max_abs_diff()),
                    "n/a" if a.is_baseline else (" · ".join(quality_cells(a)) or DASH),
                    v.unfit.get(a.adapter, ""),
                )
        for a, why in v.unplaced:
            t.add_row(sc.name, "–", a.adapter, DASH, DASH, DASH, DASH, DASH, f"[red]{why}[/]")
        if v.recommended:
            t.add_row(sc.name, "", "→ " + ", ".join(a.adapter for a in v.recommended), *([""] * 6), style="dim")
        elif v.recommendation:
            t.add_row(sc.name, "", "→ " + v.recommendation[:80], *([""] * 6), style="dim")
    return t
