"""The report's content, declared once: each scenario is a list of sections, each section a list of blocks
(text, a call-out, a list, a table, a chart). report.py renders the same sections as markdown and as HTML, so a
section added here appears in both."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from harness.reporting.charts import Chart
from harness.reporting.tables import (
    TableData,
    lifecycle_table,
    online_table,
    online_verdict,
    parity_table,
    rebalance_table,
    scale_out_table,
)
from harness.reporting.verdict import (
    Verdict,
    latency_table,
    machine_table,
    saturation_table,
    tier_table,
    windows_table,
)
from harness.results.schema import Results, ScenarioResult

BlockKind = Literal["text", "callout", "list", "table", "chart"]


@dataclass
class Block:
    kind: BlockKind
    text: str = ""  # text and call-out (markdown **bold** allowed); a list's title
    label: str = ""  # call-out label
    items: list[str] = field(default_factory=list)  # list
    table: TableData | None = None
    chart: Chart | None = None
    role: str = ""  # a hint for the HTML renderer ("tiers": rows of the recommended strategies highlighted)


@dataclass
class Section:
    title: str
    blocks: list[Block]
    folded: bool = False  # HTML: behind a <details> (long tables a reader opens when needed)


def run_facts(res: Results) -> list[tuple[str, str]]:
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


def scenario_facts(sc: ScenarioResult) -> list[tuple[str, str]]:
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
    if sc.method == "rounds" and sc.round_orders:
        rs = sc.round_settings
        fr = ", ".join(f"{f:.0%}" for f in rs.get("fractions", []))
        minutes = f"; {sc.minutes:.1f} min in all" if sc.minutes else ""
        facts.append(
            (
                "Rounds",
                f"{sc.counted_rounds} counted after a warm-up round, each in a fresh random order (seed "
                f"{rs.get('seed', '?')}): a backlog window of about {rs.get('backlog_s', '?')} s per contestant, then "
                f"load windows of {rs.get('load_window_s', '?')} s at {fr} of its flat-out rate{minutes}",
            )
        )
        orders = "; ".join(f"{r.round}: {', '.join(r.backlog_order)}" for r in sc.round_orders if not r.warmup)
        facts.append(("Backlog order by round", orders))
    c = sc.ceilings
    if c is not None and (c.generator_per_s or c.loop_cpu_us_per_record):
        parts = []
        if c.loop_cpu_us_per_record:
            parts.append(f"the loop's own CPU {c.loop_cpu_us_per_record:.2f} µs per record (identity, flat out)")
        if c.loop_capacity_per_s:
            parts.append(f"its flat-out rate {c.loop_capacity_per_s:,.0f}/s")
        if c.generator_per_s:
            parts.append(f"load generator {c.generator_per_s:,.0f}/s")
        if c.measurer_per_s:
            parts.append(f"measurer {c.measurer_per_s:,.0f}/s flat out")
        if c.pipeline_per_s:
            parts.append(f"the whole pipeline end to end {c.pipeline_per_s:,.0f}/s (identity)")
        if c.relay_per_s and c.relay_cpu_us_per_record:
            parts.append(
                f"the native relay (the Kafka client's own limit) {c.relay_per_s:,.0f}/s, "
                f"{c.relay_cpu_us_per_record:.2f} µs CPU per record"
            )
        facts.append(("This machine's ceilings", "; ".join(parts)))
    return facts


def _table(title: str, t: TableData, folded: bool = False, role: str = "") -> Section | None:
    return Section(title, [Block("table", table=t, role=role)], folded) if t.rows else None


def scenario_sections(sc: ScenarioResult, v: Verdict, charts: list[Chart]) -> list[Section]:
    by_key = {c.key: c for c in charts}

    def chart(key: str) -> list[Block]:
        return [Block("chart", chart=by_key[key])] if key in by_key else []

    out: list[Section | None] = []
    online = online_verdict(sc)
    if online:
        out.append(Section("Online learning", [Block("callout", label="Online learning", text=online)]))
    if sc.adapters and sc.method != "rounds":
        out.append(Section("Verdict", [Block("callout", label="Recommendation", text=v.recommendation)]))
    elif sc.adapters:
        blocks = [Block("callout", label="Recommendation", text=v.recommendation)]
        if v.caveats:
            blocks.append(Block("list", text="Caveats", items=v.caveats))
        if v.tiers or v.unplaced:
            blocks.append(Block("table", table=tier_table(v), role="tiers"))
        out.append(Section("Verdict: tiers by cost", blocks + chart("cost-ratios")))
        lat = latency_table(sc)
        if lat.rows:
            out.append(Section("Latency at fractions of the flat-out rate", [Block("table", table=lat)]))
            out[-1].blocks += chart("latency-fractions")  # type: ignore[union-attr]
        mach = machine_table(sc)
        if mach.rows:
            out.append(Section("This machine's figures", [Block("table", table=mach), *chart("rounds")]))
        out.append(_table("Saturation point on this machine (--thorough)", saturation_table(sc)))
    for title, t, key in (
        ("Scale-out: capacity per cell", scale_out_table(sc), "scale-out"),
        ("Rebalance under load: p99 around each event", rebalance_table(sc), "rebalance"),
        ("Model lifecycle", lifecycle_table(sc), "lifecycle"),
        ("Online learning: the strategies", online_table(sc), "online-learning"),
    ):
        if t.rows or key in by_key:
            out.append(Section(title, ([Block("table", table=t)] if t.rows else []) + chart(key)))
    out.append(_table("Bundle parity", parity_table(sc), folded=True))
    if sc.method == "rounds":
        out.append(_table("Every window", windows_table(sc), folded=True))
    return [s for s in out if s is not None]
