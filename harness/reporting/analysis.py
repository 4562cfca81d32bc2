"""What a run means: ranking, the recommendation (a winner, or a tied group), its caveats, and the tables.

`analyse(scenario)` ranks the strategies by their median sustainable throughput under the SLO over the
trials. One strategy is recommended only when its interval clears the runner-up's (and the gap exceeds
this run's noise floor, the A/A difference); otherwise the recommendation names the tied group and how to
choose within it. Strategies whose figures are inconsistent (`consistency_problems`) are never
recommended. `summary_table(results)` is the compact table the CLI prints at the end of a run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rich.table import Table

from harness.results.consistency import consistency_problems
from harness.results.fmt import DASH, fmt_diff, fmt_mib, fmt_ms, fmt_num, fmt_pct, fmt_rate, fmt_ratio
from harness.results.schema import AdapterResult, Check, Results, ScenarioResult, parse_results
from harness.results.stats import Stat, judge, relative_difference

WIDE_INTERVAL_PCT = 15.0  # an interval wider than ± this share of its median gets a caveat explaining it

# how each family runs in production, for choosing within a tied group
OPERATIONS = {
    "native": "in the scoring process, the training library's own runtime",
    "onnx": "in the scoring process (onnxruntime)",
    "generated-code": "in the scoring process (generated code, no model runtime)",
    "pmml": "in the scoring process on a JVM (pypmml)",
    "pfa": "in the scoring process (titus2)",
    "external-server": "a separate model server to deploy, scale and monitor",
}

OWN_CLIENT_OPERATIONS = "a separate application with its own Kafka client and runtime to deploy, scale and monitor"


def _operations(a: AdapterResult) -> str:
    return OWN_CLIENT_OPERATIONS if a.client == "own" else OPERATIONS.get(a.family, a.family)


# ---------------------------------------------------------------------------------------------------------
# Analysis: ranking, recommendation, caveats (pure functions of the results)
# ---------------------------------------------------------------------------------------------------------


@dataclass
class Ranked:
    adapter: AdapterResult
    rank: int | None  # None for the Kafka-only baseline
    qualifies: bool
    why_not: str = ""


@dataclass
class Analysis:
    scenario: ScenarioResult
    ranked: list[Ranked]
    best: AdapterResult | None  # the one winner, when its interval clears the runner-up's
    recommendation: str
    tied: list[AdapterResult] = field(default_factory=list)  # the leading group when it is a tie
    caveats: list[str] = field(default_factory=list)

    @property
    def ceiling(self) -> float | None:
        b = self.scenario.baseline()
        return b.sustainable_rate if b else None

    @property
    def leaders(self) -> list[AdapterResult]:
        """The winner, or the tied group."""
        return [self.best] if self.best is not None else self.tied


def rank(sc: ScenarioResult) -> list[Ranked]:
    """Strategies by median sustainable throughput under the SLO. Those that met the SLO at no tested rate,
    whose predictions fall outside the tolerance, or whose figures are inconsistent rank after the others;
    the Kafka-only baseline(s) come last, unranked."""
    rows = []
    for a in sc.adapters:
        if a.is_baseline:
            continue
        why = []
        if a.error:
            why.append("failed")
        elif a.unbooked:
            why.append("not measured: the machine was busy in every trial's search")
        elif not a.sustainable_rate:
            why.append("met the SLO at no tested rate")
        if a.accuracy_failures():
            why.append("accuracy beyond tolerance")
        if consistency_problems(sc, a):
            why.append("inconsistent figures")
        rows.append(Ranked(a, None, not why, "; ".join(why)))
    rows.sort(key=lambda r: (not r.qualifies, -(r.adapter.sustainable_rate or 0.0), r.adapter.adapter))
    for i, r in enumerate(rows, 1):
        r.rank = i
    rows += [Ranked(a, None, False, "Kafka-only ceiling") for a in sc.adapters if a.is_baseline]
    return rows


def tied_with(sc: ScenarioResult, leader: AdapterResult, other: AdapterResult) -> bool:
    """True when `other` cannot be told apart from `leader`: their intervals overlap, or their medians differ
    by no more than this run's noise floor."""
    a, b = leader.sustainable_stat, other.sustainable_stat
    if a is None or b is None:
        return False
    if judge(b, a, "higher") == "tie":
        return True
    noise = sc.noise.sustainable_pct if sc.noise else None
    return noise is not None and relative_difference(a.median, b.median) * 100.0 <= noise


def _interval(st: Stat | None) -> str:
    """A rate as "median [lo–hi]"; "none" when no tested rate held in any trial."""
    if st is None or st.hi == 0:
        return "none"
    return st.fmt(fmt_rate)


def _sustainable_cell(a: AdapterResult) -> str:
    """The sustainable rate's cell: "not booked" when every trial's search ended with the machine busy."""
    if a.unbooked:
        return "not booked (machine busy)"
    return _interval(a.sustainable_stat)


def _choose_within(group: list[AdapterResult]) -> str:
    """How to choose inside a tied group: CPU per event, memory, operations — with the figures."""
    parts = []
    cpu = [(a, a.cpu_s_per_1000()) for a in group if a.cpu_s_per_1000() is not None]
    if cpu:
        cpu.sort(key=lambda ac: ac[1] or 0.0)
        parts.append(
            "CPU per 1,000 events: "
            + ", ".join(f"{a.adapter} {fmt_num(c)} s" for a, c in cpu)
            + f" ({cpu[0][0].adapter} least)"
        )
    mem = [(a, a.peak_rss_mib()) for a in group]
    mem_known = [(a, c + (s or 0.0)) for a, (c, s) in mem if c is not None]
    if mem_known:
        mem_known.sort(key=lambda am: am[1])
        parts.append("peak memory: " + ", ".join(f"{a.adapter} {fmt_mib(m)} MiB" for a, m in mem_known))
    ops = sorted({_operations(a) + f" ({a.adapter})" for a in group})
    parts.append("operations: " + "; ".join(ops))
    return "; ".join(parts)


def analyse(sc: ScenarioResult) -> Analysis:
    ranked = rank(sc)
    qualified = [r.adapter for r in ranked if r.qualifies]
    strategies = [r.adapter for r in ranked if r.rank is not None]
    slo = f"the {sc.slo_p99_ms:g} ms p99 SLO" if sc.slo_p99_ms is not None else "the SLO"
    best: AdapterResult | None = None
    tied: list[AdapterResult] = []
    if not strategies:
        text = "No deployment strategy was measured in this scenario."
    elif short := [a for a in strategies if a.short_of_trials]:
        text = (
            "No recommendation from this run: the machine was busy (CPU steal or other processes in every failed "
            "step at a rate) during the searches of "
            + ", ".join(f"{a.adapter} ({a.busy_trials()} of {len(a.trials)} trials not booked)" for a in short)
            + ", so their sustainable throughput rests on fewer than two trials. Run it again on a quieter "
            "machine; the table shows what was booked."
        )
    elif not qualified:
        text = f"No strategy meets {slo} at any tested rate with predictions within tolerance: none to recommend."
    else:
        leader = qualified[0]
        group = [leader] + [o for o in qualified[1:] if tied_with(sc, leader, o)]
        ceiling = sc.baseline()
        crate = ceiling.sustainable_rate if ceiling else None
        of = (
            f", {leader.sustainable_rate / crate:.0%} of the Kafka-only ceiling"
            if crate and leader.sustainable_rate
            else ""
        )
        trials = f" over {sc.trials} trials" if sc.trials > 1 else ""
        if len(group) == 1:
            best = leader
            runner = qualified[1] if len(qualified) > 1 else None
            family = f" ({leader.family})" if leader.family and leader.family != leader.adapter else ""
            what = "sustainable throughput" if leader.searched else "tested rate"
            text = (
                f"Use **{leader.adapter}**{family}: it meets {slo} at the highest {what}{trials}, "
                f"{_interval(leader.sustainable_stat)} rows/s{of}"
            )
            if runner is not None:
                text += f"; its interval clears the runner-up's, {runner.adapter} {_interval(runner.sustainable_stat)}"
            text += "."
        else:
            tied = group
            names = ", ".join(f"**{a.adapter}**" for a in group)
            text = (
                f"Tied on sustainable throughput under {slo}{trials}: {names} "
                f"({'; '.join(f'{a.adapter} {_interval(a.sustainable_stat)}' for a in group)} rows/s): their "
                "intervals overlap or differ by less than this run's noise floor, so this machine cannot rank "
                f"them. Choose within the group by cost and operations: {_choose_within(group)}."
            )
        text += _others_phrase(sc, group, strategies)
    return Analysis(sc, ranked, best, text, tied, _caveats(sc))


def _others_phrase(sc: ScenarioResult, group: list[AdapterResult], strategies: list[AdapterResult]) -> str:
    """How the leader compares with the strategies behind it: throughput and CPU per event, as ratios."""
    lead = group[0]
    top = lead.sustainable_rate or 0.0
    phrases: list[str] = []
    never: list[str] = []
    failed: list[str] = []
    for o in strategies:
        if o in group:
            continue
        orate = o.sustainable_rate
        if not orate:
            if not o.unbooked:
                (failed if o.error else never).append(o.adapter)
            continue
        phrase = f"{fmt_ratio(top / orate)} the throughput of {o.adapter}"
        if o.accuracy_failures():
            phrase += " (whose predictions fall outside tolerance)"
        elif consistency_problems(sc, o):
            phrase += " (whose figures are inconsistent)"
        phrases.append(phrase)
    text = f" {lead.adapter} sustains " + ", ".join(phrases) + "." if phrases else ""
    if never:
        text += f" {', '.join(never)} met the SLO at no tested rate."
    if failed:
        text += f" {', '.join(failed)} failed to run (see the caveats)."
    lcpu = lead.cpu_s_per_1000()
    cpu = [
        f"{o.adapter} {fmt_ratio(c / lcpu)}" for o in strategies if o is not lead and lcpu and (c := o.cpu_s_per_1000())
    ]
    if cpu:
        text += f" CPU per event relative to {lead.adapter}: " + ", ".join(cpu) + "."
    return text


def _noise_caveats(sc: ScenarioResult) -> list[str]:
    out = []
    if sc.noise is not None and sc.noise.sustainable_pct is not None:
        n = sc.noise
        cap = f", flat-out capacity {n.capacity_pct:.0f}%" if n.capacity_pct is not None else ""
        out.append(
            f"noise floor of this run (A/A: {' vs '.join(n.contestants)}, the same scorer twice): sustainable "
            f"throughput differs by {n.sustainable_pct:.0f}%{cap}; smaller differences between strategies are noise"
        )
    coverages = {st.coverage for a in sc.adapters if (st := a.sustainable_stat) is not None and st.n > 1}
    if coverages and min(coverages) < 0.95:
        out.append(
            f"with {sc.trials} trials an interval is [min–max] of the trials and holds the median with "
            f"{min(coverages):.0%} confidence; `--trials 6` gives 95%"
        )
    return out


def _wide_interval_caveat(a: AdapterResult) -> str | None:
    st = a.sustainable_stat
    if st is None or st.n < 2 or st.half_width_pct <= WIDE_INTERVAL_PCT:
        return None
    disturbed, steps = a.disturbed_steps()
    why = (
        f"{disturbed} of {steps} search steps were disturbed (a broker GC pause or another process during the step)"
        if disturbed
        else "no step was marked disturbed: the rate sits where this machine's shared cores make the loop's "
        "headroom vary from trial to trial"
    )
    values = ", ".join(fmt_rate(v) for v in st.values)
    return f"{a.adapter}: sustainable throughput varies ±{st.half_width_pct:.0f}% over the trials ({values}); {why}"


def _machine_busy_caveat(a: AdapterResult) -> str | None:
    """Trials whose search ended "machine busy" (harness/bench/search.py): not in the sustainable median."""
    busy = a.busy_trials()
    if not busy:
        return None
    st = a.sustainable_stat
    rest = f"the median is over the other {st.n}" if st is not None else "no trial's sustainable rate stands"
    return (
        f"{a.adapter}: {busy} of {len(a.trials)} trials' searches ended with the machine busy (a rate failed "
        f"three times with CPU steal or other processes in every step): those trials measured the machine, and "
        f"their sustainable rates are not booked; {rest}"
    )


def _counts_caveats(a: AdapterResult) -> list[str]:
    out = []
    counted = a.counted_points()
    for p in counted:
        if p.invalid:
            failed = [c.name for c in p.checks if not c.passed]
            why = f" (failed: {', '.join(failed)})" if failed else ""
            out.append(f"{a.adapter} @ {p.name}: INVALID{why}")
    out += [f"{a.adapter} @ {msg}" for msg in a.accuracy_failures()]
    for what, label in (
        ("lost", "lost"),
        ("dead_lettered", "dead-lettered"),
        ("duplicates", "duplicate (at-least-once redelivery)"),
    ):
        per_point = [(p.name, getattr(p.counts, what)) for p in counted if getattr(p.counts, what)]
        if per_point:
            total = sum(n for _, n in per_point)
            where = ", ".join(f"{n} @ {name}" for name, n in per_point)
            out.append(f"{a.adapter}: {total:,} record{'s' if total != 1 else ''} {label} ({where})")
    reasons: dict[str, int] = {}
    for p in counted:
        for reason, n in p.dead_letter_reasons.items():
            reasons[reason] = reasons.get(reason, 0) + n
    if reasons:
        top = sorted(reasons.items(), key=lambda kv: -kv[1])[:3]
        out.append(f"{a.adapter}: dead-letter reasons: " + "; ".join(f"{r} ({n:,})" for r, n in top))
    unstable = [p.name for p in counted if p.throughput and p.throughput.stable is False and not p.invalid]
    if unstable:
        out.append(f"{a.adapter}: throughput not stable over the windows @ {', '.join(unstable)}")
    return out


def _caveats(sc: ScenarioResult) -> list[str]:
    out = _noise_caveats(sc)
    if sc.ceilings is not None:
        out += sc.ceilings.problems()
    for fmt, par in sc.bundle_parity.items():
        if par.passed is False:
            out.append(
                f"bundle parity: the {fmt} export differs from the native model by {fmt_diff(par.max_abs_diff)} "
                f"(tolerance {fmt_diff(par.tolerance)})"
            )
    base = sc.baseline()
    ceiling = base.sustainable_rate if base else None
    for a in _ordered(sc):
        if a.error:
            out.append(f"{a.adapter} failed: {a.error}")
        for problem in consistency_problems(sc, a):  # by today's rules (results.json keeps the run's own)
            out.append(f"{a.adapter}: inconsistent figures, not recommended: {problem}")
        if a.client == "own" and ceiling and (a.sustainable_rate or 0) > ceiling:
            out.append(
                f"{a.adapter} consumes and produces with its own Kafka client: the Kafka-only ceiling (the Python "
                "loop with no model) does not bound it, so its share of that ceiling can exceed 100%"
            )
        busy = _machine_busy_caveat(a)
        if busy:
            out.append(busy)
        wide = _wide_interval_caveat(a)
        if wide:
            out.append(wide)
        out += _counts_caveats(a)
        lim = a.limited_by
        if a.sustainable_rate and lim in ("load generator", "max rate"):
            out.append(
                f"{a.adapter}: the sustainable rate was limited by the {lim}, not the SLO: its ceiling is higher"
            )
    disturbed = [(a.adapter, *a.disturbed_steps()) for a in sc.adapters]
    total = sum(d for _, d, _ in disturbed)
    if total:
        steps = sum(n for _, _, n in disturbed)
        out.append(
            f"{total} of {steps} search steps were disturbed (broker GC pause, CPU steal or another process "
            "during the step) and run again before they counted: "
            + ", ".join(f"{name} {d}" for name, d, _ in disturbed if d)
        )
    if any(not a.searched and not a.error for a in sc.adapters):
        out.append(
            "the sustainable throughput was not searched for every adapter: those rates are the highest fixed "
            "load point that held, a lower bound"
        )
    return out


# ---------------------------------------------------------------------------------------------------------
# Tables
# ---------------------------------------------------------------------------------------------------------


@dataclass
class TableData:
    header: list[str]
    rows: list[list[str]]
    note: str = ""


def _stat_ms(st: Stat | None) -> str:
    return st.fmt(fmt_ms) if st is not None else DASH


def _latency_cell(a: AdapterResult, name: str) -> str:
    ps = a.point_stat(name)
    if ps is None or (ps.p50_ms is None and ps.p99_ms is None):
        return DASH
    pts = [p for t in a.trials if (p := t.point(name)) is not None]
    bad = [p for p in pts if p.invalid or not p.held]
    mark = "" if not bad else " ✗" if len(bad) == len(pts) else f" ✗ {len(bad)}/{len(pts)}"
    return f"{_stat_ms(ps.p50_ms)} / {_stat_ms(ps.p99_ms)}{mark}"


def ranking_table(an: Analysis) -> TableData:
    sc = an.scenario
    names = sc.load_point_names()
    header = ["#", "Adapter", "Family", "Sustainable rows/s", "Limited by", "% of ceiling"]
    header += [f"p50 / p99 ms @ {n}" for n in names]
    header += ["max abs diff", "AUC / reference", "CPU s / 1000 ev", "Peak RSS MiB", "Verdict"]
    ceiling = an.ceiling
    rows = []
    for r in an.ranked:
        a = r.adapter
        rate = a.sustainable_rate
        row = [
            str(r.rank) if r.rank is not None else "ceiling",
            a.adapter,
            a.family or DASH,
            _sustainable_cell(a),
            a.limited_by,
            fmt_pct(rate / ceiling) if (rate is not None and ceiling) else DASH,
        ]
        row += [_latency_cell(a, n) for n in names]
        auc, auc_ref = a.auc()
        row.append("n/a" if a.is_baseline else fmt_diff(a.max_abs_diff()))
        if a.is_baseline or auc is None:
            row.append("n/a" if a.is_baseline else DASH)
        else:
            row.append(f"{auc:.4f}" + (f" / {auc_ref:.4f}" if auc_ref is not None else ""))
        row.append(_cpu_cell(a))
        rss, srv = a.peak_rss_mib()
        row.append(fmt_mib(rss) + (f" + {fmt_mib(srv)} server" if srv is not None else ""))
        verdict = a.verdict()
        if r.why_not and r.rank is not None and not a.error:
            verdict += f"; {r.why_not}"
        row.append(verdict)
        rows.append(row)
    trials = f"over {sc.trials} trials" if sc.trials > 1 else "in one trial"
    note = (
        f"Figures are medians {trials} with their interval [low–high] (see the caveats for its confidence). "
        "Ranked by median sustainable throughput under the SLO; strategies that met it at no tested rate, whose "
        "predictions fall outside the tolerance, or whose figures are inconsistent rank after the others. "
        "✗ marks a load point that missed the SLO or was INVALID (✗ N/M: in N of M trials). CPU and memory are "
        "read at each adapter's highest load point (memory: the process's peak RSS by then, before the trial's "
        "capacity backlog, whose consumer prefetch depends on how fast the trial ran, not on the strategy)."
    )
    return TableData(header, rows, note)


def _cpu_cell(a: AdapterResult) -> str:
    st = a.stats.cpu_s_per_1000 if a.stats else None
    if st is None:
        return DASH
    cp = a.cost_point()
    server = cp.cost.server_cpu_s_per_1000 if cp and cp.cost else None
    return st.fmt(fmt_num) + (f" (incl. {fmt_num(server)} server)" if server is not None else "")


def _ordered(sc: ScenarioResult) -> list[AdapterResult]:
    return [r.adapter for r in rank(sc)]


def framing_table(sc: ScenarioResult) -> TableData:
    header = ["Adapter", "In-process rows/s (batch 1)", "In-process rows/s (batch)", "Batch-1 latency µs"]
    header += ["Sustainable (SLO) / in process", "Loop capacity (backlog) rows/s", "Capacity / in process"]
    rows = []
    for a in _ordered(sc):
        ip = a.inprocess
        if ip is None and a.loop_vs_inprocess_ratio is None:
            continue
        batch = DASH
        if ip and ip.batch_rows_per_s is not None:
            batch = fmt_rate(ip.batch_rows_per_s) + (f" (×{ip.batch_size})" if ip.batch_size else "")
        rows.append(
            [
                a.adapter,
                fmt_rate(ip.batch1_rows_per_s) if ip else DASH,
                batch,
                fmt_num(ip.batch1_latency_us) if ip else DASH,
                fmt_pct(a.loop_vs_inprocess_ratio),
                a.capacity_stat.fmt(fmt_rate) if a.capacity_stat else DASH,
                fmt_pct(a.capacity_vs_inprocess_ratio),
            ]
        )
    note = (
        "What each adapter does alone, outside Kafka, and how much of it survives inside the scoring loop: "
        "under the latency SLO (sustainable) and flat out with a backlog (capacity, full batches)."
    )
    return TableData(header, rows, note)


def parity_table(sc: ScenarioResult) -> TableData:
    header = ["Format", "max abs diff", "Tolerance", "Rows", "Rows with NaN", "Passed"]
    rows = [
        [
            fmt,
            fmt_diff(p.max_abs_diff),
            fmt_diff(p.tolerance),
            DASH if p.rows is None else f"{p.rows:,}",
            DASH if p.rows_with_nan is None else f"{p.rows_with_nan:,}",
            {True: "yes", False: "NO", None: DASH}[p.passed],
        ]
        for fmt, p in sc.bundle_parity.items()
    ]
    return TableData(header, rows, "Each exported format against the native model on the held-out rows.")


def search_table(sc: ScenarioResult) -> TableData:
    header = ["Adapter", "Trial", "Offered /s", "Achieved /s", "p99 ms", "OK", "Reason", "Disturbed"]
    rows = []
    for a in _ordered(sc):
        for t in a.trials:
            for s in t.sustainable.steps if t.sustainable else []:
                p = t.point(s.point) if s.point else None
                inter = p.interference if p else None
                disturbed = "; ".join(inter.reasons) if inter and inter.disturbed else ""
                ok = {True: "yes", False: "no", None: DASH}[s.ok]
                rows.append(
                    [
                        a.adapter,
                        str(t.index + 1),
                        fmt_rate(s.offered_per_s),
                        fmt_rate(s.achieved_per_s),
                        fmt_ms(s.p99_ms),
                        ok,
                        s.reason or "",
                        disturbed,
                    ]
                )
    note = (
        "The throughput search of every trial: each step offered a rate and kept it only if the SLO held; a failure "
        "counts once a repeat confirms it, and a disturbed step that failed is run again."
    )
    return TableData(header, rows, note)


def scale_out_table(sc: ScenarioResult) -> TableData:
    exp = sc.experiments
    cells = exp.scale_out if exp else []
    base = next((c for c in cells if c.partitions == 1 and c.processes == 1 and c.capacity_rows_per_s), None)
    header = ["Partitions", "Processes", "Capacity rows/s", "vs 1 × 1", "CPU s / 1000 ev"]
    rows = []
    for c in cells:
        cap = c.capacity_rows_per_s
        ratio = cap.median / base.capacity_rows_per_s.median if cap and base and base.capacity_rows_per_s else None
        rows.append(
            [
                str(c.partitions),
                str(c.processes),
                cap.fmt(fmt_rate) if cap else DASH,
                f"{ratio:.2f}x" if ratio else DASH,
                c.cpu_s_per_1000.fmt(fmt_num) if c.cpu_s_per_1000 else DASH,
            ]
        )
    note = "Flat-out capacity with a backlog (median [interval] over the trials) for each cell of the grid."
    return TableData(header, rows, note)


def rebalance_table(sc: ScenarioResult) -> TableData:
    rb = sc.experiments.rebalance if sc.experiments else None
    if rb is None:
        return TableData([], [])
    c = rb.counts
    rows = [["steady (before the first event)", fmt_ms(rb.p99_ms_steady)]]
    rows += [[f"around: {what}", fmt_ms(v)] for what, v in rb.p99_ms_around.items()]
    rows.append(
        ["records sent / scored / lost / duplicates", f"{c.sent:,} / {c.scored:,} / {c.lost:,} / {c.duplicates:,}"]
    )
    note = (
        f"{rb.adapter} on {rb.partitions} partitions at {rb.rate_per_s:,.0f} records/s; worst 1 s window p99 within "
        "two windows of each event. Duplicates are at-least-once redelivery after a partition moved."
    )
    return TableData(["", "p99 ms"], rows, note)


def lifecycle_table(sc: ScenarioResult) -> TableData:
    lc = sc.experiments.lifecycle if sc.experiments else None
    if lc is None:
        return TableData([], [])
    c = lc.counts

    def secs(v: float | None, none: str = "not reached") -> str:
        return f"{v} s" if v is not None else none

    def auc(v: float | None) -> str:
        return DASH if v is None else f"{v:.3f}"

    rows = [[f"{t:.2f} s", what] for t, what in lc.events]
    rows += [
        ["time to alert (drift → monitor alert)", secs(lc.time_to_alert_s, "no alert")],
        ["time to a training set (alert → snapshot saved)", secs(lc.time_to_training_set_s)],
        ["time to a trained, gated model (snapshot → judged)", secs(lc.time_to_gated_s)],
        ["time to publish (judged → on the model topic)", secs(lc.time_to_publish_s)],
        ["time to swap (publish → first new result)", secs(lc.time_to_swap_s, "no swap")],
        ["time to recovered AUC (first new result → window back)", secs(lc.time_to_recovered_s)],
        [
            "live AUC before the drift / at its worst / after the swap",
            f"{auc(lc.auc_before)} / {auc(lc.auc_worst)} / {auc(lc.auc_after)}",
        ],
        [
            "p99 before the drift / around the swap / whole run",
            f"{fmt_ms(lc.p99_ms_before)} / {fmt_ms(lc.p99_ms_around_swap)} / {fmt_ms(lc.p99_ms_overall)} ms",
        ],  # fmt: skip
        ["records sent / scored / lost / duplicates", f"{c.sent:,} / {c.scored:,} / {c.lost:,} / {c.duplicates:,}"],
        ["old-model results after a new one, same partition", str(lc.out_of_order)],
    ]
    r = lc.retrain or {}
    v = r.get("verdict") or {}
    if v:
        rows.append(
            [
                "the gate (holdout of the window)",
                f"{r.get('outcome')}: AUC {_fig(v['challenger_auc'])} vs the champion's {_fig(v['champion_auc'])}; "
                f"log-loss {_fig(v['challenger_logloss'])} vs {_fig(v['champion_logloss'])}; {v['rows']:,} rows, "
                f"{v['positives']:,} positive",
            ]
        )
    elif r:
        rows.append(["the retrain", f"{r.get('outcome')}: {r.get('error', '')}"])
    note = (
        f"{lc.adapter} at {lc.rate_per_s:,.0f} records/s; labels {lc.label_delay_s} s after their records; "
        f"{lc.old_model} → {lc.new_model or 'no new model'} (trained by harness retrain on the stream)."
    )
    return TableData(["", ""], rows, note)


def _fig(f: dict[str, float]) -> str:
    return f"{f['value']:.3f} [{f['lo']:.3f}–{f['hi']:.3f}]"


def online_table(sc: ScenarioResult) -> TableData:
    ol = sc.experiments.online if sc.experiments else None
    if ol is None:
        return TableData([], [])
    header = ["Strategy", "Learns", "AUC before the drift", "AUC at the end", "Throughput /s", "p50 / p99 ms"]
    header += ["CPU s / 1000 ev", "Peak RSS MiB", "Lost"]
    rows = []
    for st in ol.strategies:
        lat = st.latency_ms
        rows.append(
            [
                st.adapter,
                "yes" if st.learns else "no",
                DASH if st.auc_before is None else f"{st.auc_before:.3f}",
                DASH if st.auc_after is None else f"{st.auc_after:.3f}",
                fmt_rate(st.throughput_per_s),
                f"{fmt_ms(lat.p50)} / {fmt_ms(lat.p99)}",
                fmt_num(st.cpu_s_per_1000),
                fmt_mib(st.peak_rss_mib),
                str(st.counts.lost),
            ]
        )
    note = (
        f"{ol.rate_per_s:,.0f} records/s for {ol.duration_s:g} s; the stream drifts at {ol.drift_at_s:g} s; labels "
        f"arrive {ol.label_delay_s:g} s after their records. AUC: median of the window AUCs before the drift and over "
        "the last third of the run."
    )
    return TableData(header, rows, note)


def online_verdict(sc: ScenarioResult) -> str | None:
    """When online learning pays, and what it costs, in one paragraph (None without the experiment)."""
    ol = sc.experiments.online if sc.experiments else None
    if ol is None or not ol.strategies:
        return None
    static = next((s for s in ol.strategies if not s.learns), None)
    learners = [s for s in ol.strategies if s.learns and s.auc_after is not None]
    if static is None or static.auc_after is None or not learners:
        return None
    best = max(learners, key=lambda s: s.auc_after or 0.0)
    gain = (best.auc_after or 0.0) - static.auc_after
    cpu = (
        f"{fmt_ratio(best.cpu_s_per_1000 / static.cpu_s_per_1000)} the CPU per event"
        if best.cpu_s_per_1000 and static.cpu_s_per_1000
        else "its CPU"
    )
    if gain > 0.02:
        return (
            f"After the drift the offline model's AUC stays at {static.auc_after:.3f} while {best.adapter} recovers to "
            f"{best.auc_after:.3f} (+{gain:.3f}): online learning pays when the stream drifts and labels come back "
            f"within seconds. It costs {cpu} of the offline model, p99 {fmt_ms(best.latency_ms.p99)} ms against "
            f"{fmt_ms(static.latency_ms.p99)} ms, and a learner state to checkpoint; before the drift the offline "
            f"model ranks {'better' if (static.auc_before or 0) > (best.auc_before or 0) else 'as well'} "
            f"({static.auc_before} against {best.auc_before})."
        )
    return (
        f"Online learning did not pay here: after the drift the best learner, {best.adapter}, reaches AUC "
        f"{best.auc_after:.3f} against the offline model's {static.auc_after:.3f}, at {cpu}."
    )


def failed_checks(sc: ScenarioResult) -> list[tuple[str, Check]]:
    return [
        (f"{a.adapter} @ {p.name}", c)
        for a in _ordered(sc)
        for p in a.counted_points()
        for c in p.checks
        if not c.passed
    ]


def summary_table(results: Results | dict[str, Any]) -> Table:
    """Compact end-of-run table: one row per scenario and adapter, best strategy first."""
    res = parse_results(results)
    t = Table(title=f"Run {res.run_id}" if res.run_id else None, title_justify="left")
    for col, kw in (
        ("Scenario", {}),
        ("Adapter", {}),
        ("Family", {}),
        ("Sustainable rows/s [interval]", {"justify": "right"}),
        ("p99 ms @ top load", {"justify": "right"}),
        ("max abs diff", {"justify": "right"}),
        ("CPU s/1000", {"justify": "right"}),
        ("Peak MiB", {"justify": "right"}),
        ("Verdict", {}),
    ):
        t.add_column(col, **kw)  # type: ignore[arg-type]
    for sc in res.scenarios:
        an = analyse(sc)
        for r in an.ranked:
            a = r.adapter
            pts = a.load_points()
            top = pts[-1] if pts else None
            ps = a.point_stat(top.name) if top else None
            p99 = f"{_stat_ms(ps.p99_ms if ps else None)} @ {top.name}" if top else DASH
            verdict = a.verdict()
            style = "green" if verdict == "VALID" else "red" if verdict.startswith("INVALID") else "yellow"
            name = f"[bold]{a.adapter}[/]" if a in an.leaders else a.adapter
            t.add_row(
                sc.name,
                name,
                a.family or DASH,
                _sustainable_cell(a),
                p99,
                "n/a" if a.is_baseline else fmt_diff(a.max_abs_diff()),
                _cpu_cell(a),
                fmt_mib(a.peak_rss_mib()[0]),
                f"[{style}]{verdict}[/]",
            )
        if an.best is not None:
            t.add_row(sc.name, f"→ use {an.best.adapter}", "", "", "", "", "", "", "", style="dim")
        elif an.tied:
            t.add_row(
                sc.name, "→ tied: " + ", ".join(a.adapter for a in an.tied), "", "", "", "", "", "", "", style="dim"
            )
        if sc.noise and sc.noise.sustainable_pct is not None:
            t.add_row(
                sc.name, f"noise floor (A/A) {sc.noise.sustainable_pct:.0f}%", "", "", "", "", "", "", "", style="dim"
            )
    return t
