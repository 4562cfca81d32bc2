"""Reports: `results/<run-id>/results.json` turned into what people choose a deployment strategy from.

`write_report(run_dir)` writes `report.md` (with PNG charts beside it) and a self-contained `report.html`
(charts inlined as SVG, no external reference, opens offline). Per scenario: the machine, a ranking table,
one recommendation line with its caveats, and four charts: p50/p99 latency against offered load, the HDR
percentile distribution, throughput over time, and sustainable throughput against the Kafka-only ceiling.

Read with results.py (the typed schema), analysed in analysis.py (ranking, recommendation, caveats,
tables, and `summary_table`, which the CLI prints at the end of a run), drawn in charts.py; this module
renders markdown and HTML.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Iterable
from pathlib import Path

from harness.reporting.analysis import (
    Analysis,
    TableData,
    analyse,
    failed_checks,
    framing_table,
    lifecycle_table,
    online_table,
    online_verdict,
    parity_table,
    ranking_table,
    rebalance_table,
    scale_out_table,
    search_table,
)
from harness.reporting.charts import Chart, build_charts, figure_svg
from harness.results.schema import CHART_PREFIX, Results, ScenarioResult, load_results

# ---------------------------------------------------------------------------------------------------------
# Writers
# ---------------------------------------------------------------------------------------------------------


LEFT_COLUMNS = frozenset({"Adapter", "Family", "Format", "Verdict", "Reason", "Limited by", "OK", "Passed"})


def _slug(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", s).strip("-") or "scenario"


def _md_cell(s: str) -> str:
    return s.replace("|", "\\|").replace("\n", " ")


def _md_table(t: TableData) -> list[str]:
    if not t.rows:
        return []
    out = ["| " + " | ".join(_md_cell(h) for h in t.header) + " |"]
    out.append("|" + "|".join("---" if h in LEFT_COLUMNS else "--:" for h in t.header) + "|")
    out += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in t.rows]
    if t.note:
        out += ["", f"_{t.note}_"]
    return out + [""]


def _header_facts(res: Results) -> list[tuple[str, str]]:
    env = res.environment
    facts = [("Machine", env.machine()), ("Kafka", env.kafka())]
    if env.python:
        facts.append(("Python", env.python))
    if env.libraries:
        facts.append(("Libraries", ", ".join(f"{k} {v}" for k, v in sorted(env.libraries.items()))))
    if res.started_at or res.finished_at:
        facts.append(("Run", f"{res.started_at or '?'} → {res.finished_at or '?'}"))
    if env.machine_note:
        facts.append(("Note", env.machine_note))
    return facts


def _scenario_facts(sc: ScenarioResult) -> list[tuple[str, str]]:
    facts = []
    if sc.model_id or sc.trainer:
        facts.append(("Model", " ".join(x for x in (sc.model_id, f"({sc.trainer})" if sc.trainer else "") if x)))
    if sc.task:
        facts.append(("Task", sc.task + (f": each result is {sc.outputs}" if sc.outputs else "")))
    if sc.slo_p99_ms is not None:
        facts.append(("SLO", f"p99 ≤ {sc.slo_p99_ms:g} ms, measured from the intended send time"))
    if sc.loop:
        lp = sc.loop
        parts = [
            f"{k} {v}"
            for k, v in (
                ("encoding", sc.encoding),
                ("batch_max", lp.batch_max),
                ("batch_wait_ms", lp.batch_wait_ms),
                ("partitions", lp.partitions),
                ("processes", lp.processes),
            )
            if v is not None
        ]
        facts.append(("Loop", ", ".join(parts)))
    if sc.rounds:
        order = "; ".join(f"round {i + 1}: {', '.join(r)}" for i, r in enumerate(sc.rounds[:3]))
        more = "; …" if len(sc.rounds) > 3 else ""
        facts.append(("Trials", f"{sc.trials} per adapter, interleaved ({order}{more})"))
    elif sc.trials > 1:
        facts.append(("Trials", f"{sc.trials} per adapter"))
    c = sc.ceilings
    if c is not None and (c.generator_per_s or c.loop_cpu_us_per_record):
        parts = []
        if c.loop_cpu_us_per_record:
            parts.append(f"the loop's own CPU {c.loop_cpu_us_per_record:.1f} µs per record (identity, flat out)")
        if c.generator_per_s:
            parts.append(f"load generator {c.generator_per_s:,.0f}/s")
        if c.measurer_per_s:
            parts.append(f"measurer {c.measurer_per_s:,.0f}/s flat out")
        facts.append(("Harness ceilings", "; ".join(parts)))
    if sc.noise is not None and sc.noise.sustainable_pct is not None:
        n = sc.noise
        cap = f", capacity {n.capacity_pct:.0f}%" if n.capacity_pct is not None else ""
        facts.append(("Noise floor", f"A/A difference {n.sustainable_pct:.0f}% on sustainable throughput{cap}"))
    return facts


def _render_markdown(res: Results, analyses: list[Analysis], charts: dict[str, list[tuple[str, Chart]]]) -> str:
    lines = [f"# Benchmark report: {res.run_id}", ""]
    lines += [f"- **{k}:** {v}" for k, v in _header_facts(res)]
    lines.append("")
    for an in analyses:
        sc = an.scenario
        lines += [f"## Scenario {sc.name}", ""]
        if sc.description:
            lines += [sc.description, ""]
        lines += [f"- **{k}:** {v}" for k, v in _scenario_facts(sc)]
        lines.append("")
        verdict = online_verdict(sc)
        if verdict:
            lines += [f"**Online learning:** {verdict}", ""]
        if sc.adapters:
            lines += [f"**Recommendation:** {an.recommendation}", ""]
            if an.caveats:
                lines += ["**Caveats:**", ""] + [f"- {c}" for c in an.caveats] + [""]
            lines += ["### Ranking", ""] + _md_table(ranking_table(an))
        for fname, ch in charts[sc.name]:
            lines += [f"### {ch.title}", "", f"![{ch.title}]({fname})", "", f"_{ch.caption}_", ""]
        for title, t in (
            ("Scale-out: capacity per cell", scale_out_table(sc)),
            ("Rebalance under load: p99 around each event", rebalance_table(sc)),
            ("Model lifecycle", lifecycle_table(sc)),
            ("Online learning", online_table(sc)),
            ("In process and in the loop", framing_table(sc)),
            ("Throughput search", search_table(sc)),
            ("Bundle parity", parity_table(sc)),
        ):
            if t.rows:
                lines += [f"### {title}", ""] + _md_table(t)
        failed = failed_checks(sc)
        if failed:
            lines += ["### Failed checks", ""]
            for where, c in failed:
                rec = f" → {c.recommendation}" if c.recommendation else ""
                lines.append(f"- **{where}** `{c.name}`: {c.detail}{rec}")
            lines.append("")
    return "\n".join(lines).rstrip() + "\n"


_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,"Liberation Sans",sans-serif;margin:2rem auto;
max-width:1200px;padding:0 1rem;color:#1b1b1b;line-height:1.45}
h1{font-size:1.6rem;margin-bottom:.3rem}h2{margin-top:2.5rem;border-bottom:2px solid #ddd;padding-bottom:.2rem}
dl.facts{display:grid;grid-template-columns:max-content 1fr;gap:.15rem 1rem;margin:.5rem 0 1rem}
dl.facts dt{font-weight:600}dl.facts dd{margin:0}
table{border-collapse:collapse;font-size:.85rem;margin:.5rem 0;display:block;overflow-x:auto}
th,td{border:1px solid #ccc;padding:.25rem .5rem;text-align:right;white-space:nowrap}
th{background:#f3f3f3;white-space:normal;vertical-align:bottom;min-width:3.5rem}td.l,th.l{text-align:left}
tr.best td{background:#eaf6ea;font-weight:600}tr.baseline td{color:#666;font-style:italic}
td.bad{color:#b00000}p.note{font-size:.8rem;color:#555;margin-top:0}
.recommendation{background:#eef4fb;border-left:4px solid #1f77b4;padding:.6rem .9rem;margin:1rem 0}
.caveats{background:#fff6e5;border-left:4px solid #e0a000;padding:.4rem .9rem .4rem 2rem;margin:1rem 0}
figure.chart{margin:1.5rem 0;max-width:960px}figure.chart svg{width:100%;height:auto;display:block}
figcaption{font-size:.85rem;color:#444}
"""


def _html_table(t: TableData, classes: Callable[[int, list[str]], str] | None = None) -> str:
    if not t.rows:
        return ""
    left = {i for i, h in enumerate(t.header) if h in LEFT_COLUMNS}

    def cell(i: int, v: str, tag: str) -> str:
        cls = []
        if i in left:
            cls.append("l")
        if tag == "td" and (v.startswith("INVALID") or v.endswith("✗") or v == "NO"):
            cls.append("bad")
        attr = f' class="{" ".join(cls)}"' if cls else ""
        return f"<{tag}{attr}>{html.escape(v)}</{tag}>"

    out = ["<table><thead><tr>", *(cell(i, h, "th") for i, h in enumerate(t.header)), "</tr></thead><tbody>"]
    for n, row in enumerate(t.rows):
        cls = classes(n, row) if classes else ""
        out.append(f'<tr class="{cls}">' if cls else "<tr>")
        out += [cell(i, v, "td") for i, v in enumerate(row)]
        out.append("</tr>")
    out.append("</tbody></table>")
    if t.note:
        out.append(f'<p class="note">{html.escape(t.note)}</p>')
    return "".join(out)


def _md_inline(s: str) -> str:
    """The recommendation's **bold** as <strong>, everything else escaped."""
    return re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", html.escape(s))


def _facts_html(facts: Iterable[tuple[str, str]]) -> str:
    items = "".join(f"<dt>{html.escape(k)}</dt><dd>{html.escape(v)}</dd>" for k, v in facts)
    return f'<dl class="facts">{items}</dl>'


def _html_ranking(an: Analysis) -> str:
    """The recommendation, its caveats and the ranking table (the winner or tied group highlighted)."""
    out = [f'<p class="recommendation"><strong>Recommendation:</strong> {_md_inline(an.recommendation)}</p>']
    if an.caveats:
        items = "".join(f"<li>{html.escape(c)}</li>" for c in an.caveats)
        out.append(f'<div class="caveats"><strong>Caveats</strong><ul>{items}</ul></div>')
    out.append("<h3>Ranking</h3>")
    leaders = an.leaders

    def row_class(i: int, _row: list[str]) -> str:
        a = an.ranked[i].adapter
        return "best" if a in leaders else "baseline" if a.is_baseline else ""

    out.append(_html_table(ranking_table(an), row_class))
    return "\n".join(out)


def _render_html(res: Results, analyses: list[Analysis], charts: dict[str, list[tuple[str, Chart]]]) -> str:
    title = f"Benchmark report: {res.run_id}"
    body = [f"<h1>{html.escape(title)}</h1>", _facts_html(_header_facts(res))]
    n = 0
    for an in analyses:
        sc = an.scenario
        body.append(f'<section class="scenario" id="scenario-{html.escape(_slug(sc.name))}">')
        body.append(f"<h2>Scenario {html.escape(sc.name)}</h2>")
        if sc.description:
            body.append(f"<p>{html.escape(sc.description)}</p>")
        body.append(_facts_html(_scenario_facts(sc)))
        verdict = online_verdict(sc)
        if verdict:
            body.append(f'<p class="recommendation"><strong>Online learning:</strong> {html.escape(verdict)}</p>')
        if sc.adapters:
            body.append(_html_ranking(an))
        body.append('<div class="charts"><h3>Charts</h3>')
        for _fname, ch in charts[sc.name]:
            n += 1
            svg = figure_svg(ch.figure, f"c{n}-")
            body.append(
                f'<figure class="chart" data-chart="{html.escape(ch.key)}">{svg}'
                f"<figcaption><strong>{html.escape(ch.title)}.</strong> {html.escape(ch.caption)}</figcaption></figure>"
            )
        body.append("</div>")
        for heading, t in (
            ("Scale-out: capacity per cell", scale_out_table(sc)),
            ("Rebalance under load: p99 around each event", rebalance_table(sc)),
            ("Model lifecycle", lifecycle_table(sc)),
            ("Online learning", online_table(sc)),
            ("In process and in the loop", framing_table(sc)),
            ("Throughput search", search_table(sc)),
            ("Bundle parity", parity_table(sc)),
        ):
            if t.rows:
                body.append(f"<details><summary>{html.escape(heading)}</summary>{_html_table(t)}</details>")
        failed = failed_checks(sc)
        if failed:
            items = "".join(
                f"<li><strong>{html.escape(w)}</strong> <code>{html.escape(c.name)}</code>: {html.escape(c.detail)}"
                + (f" → {html.escape(c.recommendation)}" if c.recommendation else "")
                + "</li>"
                for w, c in failed
            )
            body.append(f"<details open><summary>Failed checks</summary><ul>{items}</ul></details>")
        body.append("</section>")
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head>\n<body>\n"
        + "\n".join(body)
        + "\n</body></html>\n"
    )


def write_report(run_dir: Path) -> tuple[Path, Path]:
    """Write report.md (+ PNG charts) and a self-contained report.html into run_dir; return both paths."""
    run_dir = Path(run_dir)
    res = load_results(run_dir)
    if run_dir.is_file():
        run_dir = run_dir.parent
    for stale in run_dir.glob(f"{CHART_PREFIX}*.png"):
        stale.unlink()
    analyses = [analyse(sc) for sc in res.scenarios]
    charts: dict[str, list[tuple[str, Chart]]] = {}
    for an in analyses:
        written = []
        for ch in build_charts(an):
            fname = f"{CHART_PREFIX}{_slug(an.scenario.name)}-{ch.key}.png"
            ch.figure.savefig(run_dir / fname, format="png", dpi=110, metadata={"Software": None})
            written.append((fname, ch))
        charts[an.scenario.name] = written
    md = run_dir / "report.md"
    md.write_text(_render_markdown(res, analyses, charts), encoding="utf-8")
    page = run_dir / "report.html"
    page.write_text(_render_html(res, analyses, charts), encoding="utf-8")
    return md, page
