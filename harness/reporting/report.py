"""Reports: `results/<run-id>/results.json` turned into what people choose a deployment strategy from.

`write_report(run_dir)` writes `report.md` (with PNG charts beside it) and a self-contained `report.html`
(charts inlined as SVG, no external reference, opens offline). The content is declared once
(harness/reporting/sections.py: sections of text, call-outs, lists, tables and charts); this module only
renders those sections, as markdown and as HTML.
"""

from __future__ import annotations

import html
import re
from pathlib import Path

from harness.reporting.charts import Chart, build_charts, figure_svg
from harness.reporting.sections import Block, Section, run_facts, scenario_facts, scenario_sections
from harness.reporting.tables import TableData
from harness.reporting.verdict import Verdict, verdict
from harness.results.schema import CHART_PREFIX, Results, load_results

LEFT_COLUMNS = frozenset({"Adapter", "Family", "Note", "Window", "Limited by", "Steps", "Format", "Passed", ""})


def _slug(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", s).strip("-") or "scenario"


# ---------------------------------------------------------------------------------------------------------
# Markdown
# ---------------------------------------------------------------------------------------------------------


def _md_cell(s: str) -> str:
    return s.replace("|", "\\|").replace("\n", " ")


def _md_table(t: TableData) -> list[str]:
    out = ["| " + " | ".join(_md_cell(h) for h in t.header) + " |"]
    out.append("|" + "|".join("---" if h in LEFT_COLUMNS else "--:" for h in t.header) + "|")
    out += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in t.rows]
    if t.note:
        out += ["", f"_{t.note}_"]
    return out + [""]


def _md_block(b: Block, files: dict[int, str]) -> list[str]:
    if b.kind == "text":
        return [b.text, ""]
    if b.kind == "callout":
        return [f"**{b.label}:** {b.text}", ""]
    if b.kind == "list":
        return [f"**{b.text}:**", "", *(f"- {i}" for i in b.items), ""]
    if b.kind == "table" and b.table is not None:
        return _md_table(b.table)
    if b.kind == "chart" and b.chart is not None:
        ch = b.chart
        return [f"![{ch.title}]({files[id(ch)]})", "", f"_{ch.title}. {ch.caption}_", ""]
    return []


def render_markdown(res: Results, scenarios: list[tuple[Verdict, list[Section]]], files: dict[int, str]) -> str:
    lines = [f"# Benchmark report: {res.run_id}", ""]
    lines += [f"- **{k}:** {v}" for k, v in run_facts(res)] + [""]
    for v, sections in scenarios:
        sc = v.scenario
        lines += [f"## Scenario {sc.name}", ""]
        if sc.description:
            lines += [sc.description, ""]
        lines += [f"- **{k}:** {val}" for k, val in scenario_facts(sc)] + [""]
        for s in sections:
            lines += [f"### {s.title}", ""]
            for b in s.blocks:
                lines += _md_block(b, files)
    return "\n".join(lines).rstrip() + "\n"


# ---------------------------------------------------------------------------------------------------------
# HTML
# ---------------------------------------------------------------------------------------------------------

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


def _inline(s: str) -> str:
    """**bold** as <strong>, everything else escaped."""
    return re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", html.escape(s))


def _html_table(t: TableData, highlight: set[str] | None = None) -> str:
    left = {i for i, h in enumerate(t.header) if h in LEFT_COLUMNS}
    adapter_col = t.header.index("Adapter") if "Adapter" in t.header else None

    def cell(i: int, v: str, tag: str) -> str:
        cls = ["l"] if i in left else []
        if tag == "td" and (v.startswith("✗") or v in ("NO",) or v.startswith("failed")):
            cls.append("bad")
        attr = f' class="{" ".join(cls)}"' if cls else ""
        return f"<{tag}{attr}>{html.escape(v)}</{tag}>"

    out = ["<table><thead><tr>", *(cell(i, h, "th") for i, h in enumerate(t.header)), "</tr></thead><tbody>"]
    for row in t.rows:
        best = highlight and adapter_col is not None and row[adapter_col] in highlight
        out.append('<tr class="best">' if best else "<tr>")
        out += [cell(i, v, "td") for i, v in enumerate(row)]
        out.append("</tr>")
    out.append("</tbody></table>")
    if t.note:
        out.append(f'<p class="note">{html.escape(t.note)}</p>')
    return "".join(out)


def _html_block(b: Block, v: Verdict, svg: dict[int, str]) -> str:
    if b.kind == "text":
        return f"<p>{_inline(b.text)}</p>"
    if b.kind == "callout":
        return f'<p class="recommendation"><strong>{html.escape(b.label)}:</strong> {_inline(b.text)}</p>'
    if b.kind == "list":
        items = "".join(f"<li>{_inline(i)}</li>" for i in b.items)
        return f'<div class="caveats"><strong>{html.escape(b.text)}</strong><ul>{items}</ul></div>'
    if b.kind == "table" and b.table is not None:
        return _html_table(b.table, {a.adapter for a in v.recommended} if b.role == "tiers" else None)
    if b.kind == "chart" and b.chart is not None:
        ch = b.chart
        return (
            f'<figure class="chart" data-chart="{html.escape(ch.key)}">{svg[id(ch)]}'
            f"<figcaption><strong>{html.escape(ch.title)}.</strong> {html.escape(ch.caption)}</figcaption></figure>"
        )
    return ""


def _facts_html(facts: list[tuple[str, str]]) -> str:
    items = "".join(f"<dt>{html.escape(k)}</dt><dd>{html.escape(v)}</dd>" for k, v in facts)
    return f'<dl class="facts">{items}</dl>'


def render_html(res: Results, scenarios: list[tuple[Verdict, list[Section]]]) -> str:
    title = f"Benchmark report: {res.run_id}"
    body = [f"<h1>{html.escape(title)}</h1>", _facts_html(run_facts(res))]
    svg: dict[int, str] = {}
    n = 0
    for _v, sections in scenarios:
        for s in sections:
            for b in s.blocks:
                if b.chart is not None:
                    n += 1
                    svg[id(b.chart)] = figure_svg(b.chart.figure, f"c{n}-")
    for v, sections in scenarios:
        sc = v.scenario
        body.append(f'<section class="scenario" id="scenario-{html.escape(_slug(sc.name))}">')
        body.append(f"<h2>Scenario {html.escape(sc.name)}</h2>")
        if sc.description:
            body.append(f"<p>{html.escape(sc.description)}</p>")
        body.append(_facts_html(scenario_facts(sc)))
        for s in sections:
            inner = "".join(_html_block(b, v, svg) for b in s.blocks)
            if s.folded:
                body.append(f"<details><summary>{html.escape(s.title)}</summary>{inner}</details>")
            else:
                body.append(f"<h3>{html.escape(s.title)}</h3>{inner}")
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
    scenarios: list[tuple[Verdict, list[Section]]] = []
    files: dict[int, str] = {}
    for sc in res.scenarios:
        v = verdict(sc)
        charts: list[Chart] = build_charts(v)
        for ch in charts:
            fname = f"{CHART_PREFIX}{_slug(sc.name)}-{ch.key}.png"
            ch.figure.savefig(run_dir / fname, format="png", dpi=110, metadata={"Software": None})
            files[id(ch)] = fname
        scenarios.append((v, scenario_sections(sc, v, charts)))
    md = run_dir / "report.md"
    md.write_text(render_markdown(res, scenarios, files), encoding="utf-8")
    page = run_dir / "report.html"
    page.write_text(render_html(res, scenarios), encoding="utf-8")
    return md, page
