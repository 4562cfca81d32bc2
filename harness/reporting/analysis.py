"""What a run means: formatting, ranking, the recommendation and its caveats, and the tables.

`analyse(scenario)` ranks the strategies by sustainable throughput under the SLO and writes the one-line
recommendation; `summary_table(results)` is the compact table the CLI prints at the end of a run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rich.table import Table

from harness.reporting.fmt import DASH, fmt_diff, fmt_mib, fmt_ms, fmt_num, fmt_pct, fmt_rate, fmt_ratio
from harness.reporting.results import SAME_THROUGHPUT_BAND, AdapterResult, Check, Results, ScenarioResult, parse_results

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
    best: AdapterResult | None
    recommendation: str
    caveats: list[str] = field(default_factory=list)

    @property
    def ceiling(self) -> float | None:
        b = self.scenario.baseline()
        return b.sustainable_rate if b else None


def rank(sc: ScenarioResult) -> list[Ranked]:
    """Strategies by sustainable throughput under the SLO. Those that met the SLO at no tested rate, or whose
    predictions fall outside the tolerance, rank after the others; the Kafka-only baseline comes last, unranked."""
    rows = []
    for a in sc.adapters:
        if a.is_baseline:
            continue
        why = []
        if a.error:
            why.append("failed")
        elif a.sustainable_rate is None:
            why.append("met the SLO at no tested rate")
        if a.accuracy_failures():
            why.append("accuracy beyond tolerance")
        rows.append(Ranked(a, None, not why, "; ".join(why)))
    rows.sort(key=lambda r: (not r.qualifies, -(r.adapter.sustainable_rate or 0.0), r.adapter.adapter))
    for i, r in enumerate(rows, 1):
        r.rank = i
    rows += [Ranked(a, None, False, "Kafka-only ceiling") for a in sc.adapters if a.is_baseline]
    return rows


def _caveats(sc: ScenarioResult) -> list[str]:
    out = []
    base = sc.baseline()
    ceiling = base.sustainable_rate if base else None
    above = [a.adapter for a in sc.adapters if a is not base and ceiling and (a.sustainable_rate or 0) > ceiling]
    if above:
        out.append(
            f"{', '.join(above)} sustained more than the Kafka-only ceiling ({fmt_rate(ceiling)}/s): the ceiling's "
            "search met a latency spike (on a shared machine, typically a broker GC pause; see "
            ".harness/broker/gc.log). "
            "Differences of one search step are within this run's noise"
        )
    for fmt, par in sc.bundle_parity.items():
        if par.passed is False:
            out.append(
                f"bundle parity: the {fmt} export differs from the native model by {fmt_diff(par.max_abs_diff)} "
                f"(tolerance {fmt_diff(par.tolerance)})"
            )
    for a in _ordered(sc):
        if a.error:
            out.append(f"{a.adapter} failed: {a.error}")
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
        lim = a.sustainable.limited_by if a.sustainable else None
        if a.sustainable_rate is not None and lim in ("load generator", "max rate"):
            out.append(
                f"{a.adapter}: the sustainable rate was limited by the {lim}, not the SLO: its ceiling is higher"
            )
    if any(not a.searched and not a.error for a in sc.adapters):
        out.append(
            "the sustainable throughput was not searched for every adapter: those rates are the highest fixed "
            "load point that held, a lower bound"
        )
    return out


def analyse(sc: ScenarioResult) -> Analysis:
    ranked = rank(sc)
    qualified = [r.adapter for r in ranked if r.qualifies]
    best = qualified[0] if qualified else None
    slo = f"the {sc.slo_p99_ms:g} ms p99 SLO" if sc.slo_p99_ms is not None else "the SLO"
    strategies = [r.adapter for r in ranked if r.rank is not None]
    if not strategies:
        text = "No deployment strategy was measured in this scenario."
    elif best is None:
        text = f"No strategy meets {slo} at any tested rate with predictions within tolerance: none to recommend."
    else:
        rate = best.sustainable_rate
        assert rate is not None
        base = sc.baseline()
        ceiling = base.sustainable_rate if base else None
        of_ceiling = f", {rate / ceiling:.0%} of the Kafka-only ceiling" if ceiling else ""
        family = f" ({best.family})" if best.family and best.family != best.adapter else ""
        what = "sustainable throughput" if best.searched else "tested rate"
        text = (
            f"Use **{best.adapter}**{family}: it meets {slo} at the highest {what}, "
            f"{fmt_rate(rate)} rows/s{of_ceiling}."
        )
        others = [a for a in strategies if a is not best]
        phrases: list[str] = []
        never: list[str] = []
        failed: list[str] = []
        for o in others:
            orate = o.sustainable_rate
            if orate is None:
                (failed if o.error else never).append(o.adapter)
                continue
            ratio = rate / orate
            if abs(ratio - 1.0) <= SAME_THROUGHPUT_BAND:
                phrases.append(f"about the same throughput as {o.adapter}")
            else:
                phrases.append(f"{fmt_ratio(ratio)} the throughput of {o.adapter}")
            if o.accuracy_failures():
                phrases[-1] += " (whose predictions fall outside tolerance)"
        if phrases:
            text += f" {best.adapter} sustains " + ", ".join(phrases) + "."
        if never:
            text += f" {', '.join(never)} met the SLO at no tested rate."
        if failed:
            text += f" {', '.join(failed)} failed to run (see the caveats)."
        bcpu = best.cpu_s_per_1000()
        cpu_phrases = []
        for o in others:
            ocpu = o.cpu_s_per_1000()
            if bcpu and ocpu:
                cpu_phrases.append(f"{o.adapter} {fmt_ratio(ocpu / bcpu)}")
        if cpu_phrases:
            text += f" CPU per event relative to {best.adapter}: " + ", ".join(cpu_phrases) + "."
    return Analysis(sc, ranked, best, text, _caveats(sc))


# ---------------------------------------------------------------------------------------------------------
# Tables
# ---------------------------------------------------------------------------------------------------------


@dataclass
class TableData:
    header: list[str]
    rows: list[list[str]]
    note: str = ""


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
        lim = a.limited_by
        row = [
            str(r.rank) if r.rank is not None else "ceiling",
            a.adapter,
            a.family or DASH,
            fmt_rate(rate) if rate is not None else "none",
            lim,
            fmt_pct(rate / ceiling) if (rate is not None and ceiling) else DASH,
        ]
        for n in names:
            p = a.point(n)
            if p is None:
                row.append(DASH)
                continue
            mark = " ✗" if p.invalid or not p.held else ""
            row.append(f"{fmt_ms(p.latency_ms.p50)} / {fmt_ms(p.latency_ms.p99)}{mark}")
        auc, auc_ref = a.auc()
        row.append("n/a" if a.is_baseline else fmt_diff(a.max_abs_diff()))
        if a.is_baseline or auc is None:
            row.append("n/a" if a.is_baseline else DASH)
        else:
            row.append(f"{auc:.4f}" + (f" / {auc_ref:.4f}" if auc_ref is not None else ""))
        cp = a.cost_point()
        cost = cp.cost if cp else None
        cpu = fmt_num(cost.cpu_s_per_1000) if cost else DASH
        if cost and cost.server_cpu_s_per_1000 is not None:
            cpu += f" + {fmt_num(cost.server_cpu_s_per_1000)} server"
        row.append(cpu)
        rss, srv = a.peak_rss_mib()
        mem = fmt_mib(rss)
        if srv is not None:
            mem += f" + {fmt_mib(srv)} server"
        row.append(mem)
        verdict = a.verdict()
        if r.why_not and r.rank is not None and not a.error:
            verdict += f"; {r.why_not}"
        row.append(verdict)
        rows.append(row)
    note = (
        "Ranked by sustainable throughput under the SLO; strategies that met it at no tested rate, or whose "
        "predictions fall outside the tolerance, rank after the others. ✗ marks a load point that missed the SLO "
        "or was INVALID. CPU is read at each adapter's highest load point; memory is the peak over the load points "
        "and the search steps that held. AUC is the adapter's on the events it scored, beside the native "
        "model's on the same events."
    )
    return TableData(header, rows, note)


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
                fmt_rate(a.capacity.rows_per_s) if a.capacity and a.capacity.rows_per_s else DASH,
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
    header = ["Adapter", "Offered /s", "Achieved /s", "p99 ms", "OK", "Reason"]
    rows = []
    for a in _ordered(sc):
        for s in a.sustainable.steps if a.sustainable else []:
            ok = {True: "yes", False: "no", None: DASH}[s.ok]
            rows.append(
                [a.adapter, fmt_rate(s.offered_per_s), fmt_rate(s.achieved_per_s), fmt_ms(s.p99_ms), ok, s.reason or ""]
            )
    return TableData(header, rows, "The throughput search: each step offered a rate and kept it only if the SLO held.")


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
        ("Sustainable rows/s", {"justify": "right"}),
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
            p99 = f"{fmt_ms(top.latency_ms.p99)} @ {top.name}" if top else DASH
            verdict = a.verdict()
            style = "green" if verdict == "VALID" else "red" if verdict.startswith("INVALID") else "yellow"
            name = f"[bold]{a.adapter}[/]" if a is an.best else a.adapter
            t.add_row(
                sc.name,
                name,
                a.family or DASH,
                fmt_rate(a.sustainable_rate) if a.sustainable_rate is not None else "none",
                p99,
                "n/a" if a.is_baseline else fmt_diff(a.max_abs_diff()),
                fmt_num(a.cpu_s_per_1000()),
                fmt_mib(a.peak_rss_mib()[0]),
                f"[{style}]{verdict}[/]",
            )
        if an.best is not None:
            t.add_row(sc.name, f"→ use {an.best.adapter}", "", "", "", "", "", "", "", style="dim")
    return t
