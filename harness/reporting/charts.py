"""The report's charts (matplotlib, object API only: no pyplot, no global backend).

A rounds run: the cost ratio of every strategy with its interval, coloured by tier; latency at each load
fraction against the SLO; and each round's figures, absolute and as ratios, which shows what taking the ratio
within a round buys on a machine whose speed moves. `harness experiment` runs: their own charts.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from harness.reporting.verdict import Verdict
from harness.results.errors import ResultsError
from harness.results.schema import ScenarioResult

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

_PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#bcbd22", "#17becf"]
_BASELINE_COLOR = "#7f7f7f"


@dataclass
class Chart:
    key: str  # file name part, e.g. "cost-ratios"
    title: str
    caption: str
    figure: Figure


def _new_figure(width: float = 8.0, height: float = 4.6) -> tuple[Figure, Axes]:
    try:
        from matplotlib.figure import Figure
    except ImportError:  # pragma: no cover - matplotlib is in the [report] extra
        raise ResultsError("charts need matplotlib: pip install 'kafka-model-harness[report]'") from None
    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    ax = fig.add_subplot()
    ax.grid(True, which="major", alpha=0.3)
    return fig, ax


def _slo_line(ax: Axes, sc: ScenarioResult) -> None:
    if sc.slo_p99_ms is None:
        return
    ax.axhline(sc.slo_p99_ms, color="#c00000", linestyle=":", linewidth=1.2, label=f"SLO p99 {sc.slo_p99_ms:g} ms")


def _plain_ticks(axis: Any) -> None:
    """Log axes labelled 1, 10, 100 (not 10^0, 10^1, 10^2)."""
    from matplotlib.ticker import FuncFormatter

    axis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:,.0f}" if v >= 1 else f"{v:g}"))


def _strategy_colors(sc: ScenarioResult) -> dict[str, str]:
    out, i = {}, 0
    for a in sc.adapters:
        if a.is_baseline:
            out[a.adapter] = _BASELINE_COLOR
        else:
            out[a.adapter] = _PALETTE[i % len(_PALETTE)]
            i += 1
    return out


def chart_cost_ratios(v: Verdict) -> Chart | None:
    """Each placed strategy's median cost ratio with its interval, one row each, coloured by tier."""
    placed = [(i, a) for i, tier in enumerate(v.tiers) for a in tier if a.cost and a.cost.ratio]
    if not placed:
        return None
    fig, ax = _new_figure(8.0, 0.5 + 0.42 * len(placed))
    labels = []
    for row, (tier, a) in enumerate(reversed(placed)):
        r = a.cost.ratio if a.cost else None
        assert r is not None
        color = _BASELINE_COLOR if a.is_baseline else _PALETTE[tier % len(_PALETTE)]
        ax.errorbar([r.median], [row], xerr=[[r.median - r.lo], [r.hi - r.median]], fmt="o", color=color, capsize=4)
        labels.append(f"{a.adapter}  (tier {tier + 1})")
    ax.axvline(1.0, color=_BASELINE_COLOR, linestyle=":", linewidth=1.2)
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xscale("log")
    _plain_ticks(ax.xaxis)
    ax.set_xlabel("CPU per record ÷ the loop with no model (identity), same round")
    ax.set_title(f"{v.scenario.name}: cost ratio, median and interval over {v.scenario.counted_rounds} rounds")
    return Chart(
        "cost-ratios",
        "Cost ratios with their intervals",
        "Each strategy's CPU time per record on a backlog, over the identity scorer's in the same round; the dot is "
        "the median over the rounds, the bar its order-statistic interval, the colour its tier. The dotted line is "
        "the loop itself.",
        fig,
    )


def chart_latency_fractions(v: Verdict) -> Chart | None:
    sc = v.scenario
    colors = _strategy_colors(sc)
    fig, ax = _new_figure()
    drawn = False
    for a in sc.adapters:
        pts = sorted((f.fraction, f.latency.p99_ms) for f in a.fractions if f.latency.p99_ms is not None)
        if not pts:
            continue
        xs, ys = zip(*pts, strict=True)
        style = ":" if a.is_baseline else "-"
        ax.plot([x * 100 for x in xs], ys, style, marker="o", color=colors[a.adapter], label=a.adapter)
        drawn = True
    if not drawn:
        return None
    _slo_line(ax, sc)
    ax.set_yscale("log")
    _plain_ticks(ax.yaxis)
    ax.set_xlabel("offered load (% of the strategy's own flat-out rate in that round), open-loop Poisson")
    ax.set_ylabel("p99 latency from the intended send time (ms)")
    ax.legend(fontsize=8, loc="upper left")
    ax.set_title(f"{sc.name}: p99 at each load fraction, pooled over the rounds")
    return Chart(
        "latency-fractions",
        "Latency at fractions of each strategy's flat-out rate",
        "p99 of the samples pooled over the rounds at each fraction. Whether it holds the SLO is judged with "
        "MLPerf LoadGen's early-stopping rule (the table above), not by this line alone.",
        fig,
    )


def chart_rounds(v: Verdict) -> Chart | None:
    """Per round: each strategy's absolute CPU per record (it moves with the host) and its ratio to the control
    windows around it (it should not)."""
    sc = v.scenario
    counted = {a.adapter: [w for w in a.counted("backlog") if w.cpu_us_per_record] for a in sc.adapters}
    if sum(len(ws) for ws in counted.values()) < 4:
        return None
    from matplotlib.figure import Figure

    colors = _strategy_colors(sc)
    fig = Figure(figsize=(9.0, 4.2), layout="constrained")
    left, right = fig.subplots(1, 2)
    for a in sc.adapters:
        ws = sorted(counted.get(a.adapter, []), key=lambda w: w.round)
        if not ws:
            continue
        style = ":" if a.is_baseline else "-"
        rounds = [w.round for w in ws]
        color = colors[a.adapter]
        left.plot(rounds, [w.cpu_us_per_record for w in ws], style, marker=".", color=color, label=a.adapter)
        paired = [w for w in ws if w.ratio is not None]
        right.plot([w.round for w in paired], [w.ratio for w in paired], style, marker=".", color=colors[a.adapter])
    for ax in (left, right):
        ax.set_yscale("log")
        _plain_ticks(ax.yaxis)
        ax.set_xlabel("round")
        ax.grid(True, alpha=0.3)
    left.set_ylabel("CPU µs per record (this machine)")
    right.set_ylabel("÷ the control windows around it")
    left.legend(fontsize=7, loc="upper left")
    fig.suptitle(f"{sc.name}: round by round, absolute and as a ratio", fontsize=10)
    return Chart(
        "rounds",
        "Round by round",
        "Left: each strategy's CPU per record in each round's backlog window, as this machine measured it. Right: "
        "the same over the control (the identity scorer) measured just before and just after it: the host's "
        "drift falls on both and cancels.",
        fig,
    )


def chart_scale_out(v: Verdict) -> Chart | None:
    exp = v.scenario.experiments
    if exp is None or not exp.scale_out:
        return None
    fig, ax = _new_figure()
    for i, parts in enumerate(sorted({c.partitions for c in exp.scale_out})):
        cells = sorted(
            (c for c in exp.scale_out if c.partitions == parts and c.capacity_rows_per_s), key=lambda c: c.processes
        )
        if not cells:
            continue
        xs = [c.processes for c in cells]
        ys = [c.capacity_rows_per_s.median for c in cells if c.capacity_rows_per_s]
        lo = [y - c.capacity_rows_per_s.lo for y, c in zip(ys, cells, strict=True) if c.capacity_rows_per_s]
        hi = [c.capacity_rows_per_s.hi - y for y, c in zip(ys, cells, strict=True) if c.capacity_rows_per_s]
        color = _PALETTE[i % len(_PALETTE)]
        ax.errorbar(xs, ys, yerr=[lo, hi], marker="o", capsize=4, color=color, label=f"{parts} partition(s)")
    ax.set_xlabel("scorer processes in the consumer group")
    ax.set_ylabel("flat-out capacity (events/s)")
    ax.set_ylim(bottom=0)
    ax.set_xticks(sorted({c.processes for c in exp.scale_out}))
    _plain_ticks(ax.yaxis)
    ax.legend(fontsize=8)
    ax.set_title(f"{v.scenario.name}: scale-out of {exp.scale_out_adapter} (median and interval over trials)")
    return Chart(
        "scale-out",
        "Scale-out",
        "Flat-out capacity of the scoring loop by the number of scorer processes in one consumer group, one line "
        "per partition count. A process beyond the partition count idles; processes beyond the machine's cores "
        "share them with the broker and the load generator.",
        fig,
    )


def chart_rebalance(v: Verdict) -> Chart | None:
    exp = v.scenario.experiments
    rb = exp.rebalance if exp else None
    if rb is None or not rb.windows:
        return None
    fig, ax = _new_figure()
    shown = [w for w in rb.windows if w.p99_ms is not None and w.p50_ms is not None]
    xs = [w.t_s for w in shown]
    ax.plot(xs, [w.p99_ms or 0.0 for w in shown], marker=".", color="#1f77b4", label="p99")
    ax.plot(xs, [w.p50_ms or 0.0 for w in shown], color="#aec7e8", label="p50")
    for at, what in rb.events:
        ax.axvline(at, color="#d62728", linestyle=":", linewidth=1.2)
        ax.text(at, ax.get_ylim()[1] * 0.95, f" {what}", rotation=90, va="top", fontsize=7, color="#d62728")
    _slo_line(ax, v.scenario)
    ax.set_yscale("log")
    _plain_ticks(ax.yaxis)
    ax.set_xlabel("seconds since the load started (by intended send time)")
    ax.set_ylabel("latency (ms)")
    ax.legend(fontsize=8, loc="upper left")
    c = rb.counts
    ax.set_title(
        f"{v.scenario.name}: a scorer joins and leaves at {rb.rate_per_s:,.0f}/s "
        f"({c.sent:,} sent, {c.lost} lost, {c.duplicates} duplicates)"
    )
    return Chart(
        "rebalance",
        "Rebalance under load",
        "Latency per window while a second scorer joins the consumer group and later leaves it (SIGTERM); the "
        "dotted lines mark when each began and ended.",
        fig,
    )


def chart_lifecycle(v: Verdict) -> Chart | None:
    exp = v.scenario.experiments
    lc = exp.lifecycle if exp else None
    if lc is None or not lc.windows:
        return None
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8.0, 6.2), layout="constrained")
    top, mid, low = fig.subplots(3, 1, sharex=True)
    ts = [w.t_s for w in lc.windows]
    share = [(w.models.get(lc.new_model, 0) / w.results) if w.results else 0.0 for w in lc.windows]
    top.plot(ts, [w.mean_score if w.mean_score is not None else float("nan") for w in lc.windows], color="#1f77b4")
    top.set_ylabel("mean score")
    ax2 = top.twinx()
    ax2.fill_between(ts, share, step="post", color="#2ca02c", alpha=0.2)
    ax2.set_ylim(0, 1.05)
    ax2.set_ylabel("share scored by the\nretrained model", fontsize=8)
    mts = [m["t_end_s"] for m in lc.monitor]
    mid.step(mts, [m.get("psi") if m.get("psi") is not None else float("nan") for m in lc.monitor], where="post",
             color="#ff7f0e", label="PSI (monitor window)")  # fmt: skip
    mid.axhline(0.2, color="#ff7f0e", linestyle=":", linewidth=1, label="alert threshold")
    mid.set_ylabel("score PSI")
    mid.legend(fontsize=7, loc="upper left")
    if any(m.get("auc") is not None for m in lc.monitor):
        auc_ax = mid.twinx()
        auc_ax.step(mts, [m.get("auc") if m.get("auc") is not None else float("nan") for m in lc.monitor],
                    where="post", color="#9467bd", label="live AUC (labels)")  # fmt: skip
        auc_ax.set_ylabel("live AUC", fontsize=8)
        auc_ax.legend(fontsize=7, loc="upper right")
    low.plot(ts, [w.p99_ms if w.p99_ms is not None else float("nan") for w in lc.windows], color="#d62728", label="p99")
    _slo_line(low, v.scenario)
    low.set_yscale("log")
    _plain_ticks(low.yaxis)
    low.set_ylabel("latency (ms)")
    low.set_xlabel("seconds since the load started")
    for ax in (top, mid, low):
        for at, _what in lc.events:
            ax.axvline(at, color="#555", linestyle=":", linewidth=1)
    for at, what in lc.events:
        short = what.split(" (")[0].split(":")[0][:26]  # the table has the whole line
        top.text(at, 1.0, f" {short}", transform=top.get_xaxis_transform(), rotation=90, va="top", fontsize=6)
    c = lc.counts
    fig.suptitle(
        f"{v.scenario.name}: drift → alert ({lc.time_to_alert_s} s) → training set ({lc.time_to_training_set_s} s) "
        f"→ gated ({lc.time_to_gated_s} s) → swap ({lc.time_to_swap_s} s); {c.sent:,} sent, {c.lost} lost",
        fontsize=10,
    )
    return Chart(
        "lifecycle",
        "Model lifecycle over Kafka",
        "The stream drifts; the monitor's PSI crosses its threshold and it alerts; harness retrain builds a training "
        "set from the stream, trains and gates a challenger and publishes it on the model topic; the scorer verifies "
        "it and swaps between two batches (green: the share of results scored by the retrained model; purple: live "
        "AUC from the feedback topic's labels).",
        fig,
    )


def chart_online(v: Verdict) -> Chart | None:
    exp = v.scenario.experiments
    ol = exp.online if exp else None
    if ol is None or not ol.strategies:
        return None
    fig, ax = _new_figure()
    for i, st in enumerate(ol.strategies):
        pts = [(w.t_s, w.auc) for w in st.windows if w.auc is not None and w.t_s <= ol.duration_s + 1]
        if pts:
            style = "-" if st.learns else "--"
            ax.plot(*zip(*pts, strict=True), style, marker=".", color=_PALETTE[i % len(_PALETTE)], label=st.adapter)
    ax.axvline(ol.drift_at_s, color="#d62728", linestyle=":", linewidth=1.5, label="the stream drifts")
    ax.set_xlabel("seconds since the load started")
    ax.set_ylabel(f"ROC AUC (rolling, windows of labels, {ol.label_delay_s:g} s late)")
    ax.legend(fontsize=8, loc="lower left")
    ax.set_title(f"{v.scenario.name}: online learners against the offline model, prequentially")
    return Chart(
        "online-learning",
        "Online learning on a drifting stream",
        "Rolling AUC per window of labels: every score was made before its label arrived (test, then train). The "
        "offline model is dashed.",
        fig,
    )


def build_charts(v: Verdict) -> list[Chart]:
    makers = (
        chart_cost_ratios,
        chart_latency_fractions,
        chart_rounds,
        chart_scale_out,
        chart_rebalance,
        chart_lifecycle,
        chart_online,
    )
    return [c for c in (m(v) for m in makers) if c is not None]


_SVG_REF = re.compile(r'(\bid="|href="#|url\(#)([^"\)]+)')


def figure_svg(fig: Figure, prefix: str) -> str:
    """The figure as an inline <svg> element: no XML prolog, no metadata, ids made unique per chart."""
    import matplotlib

    buf = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "path", "svg.hashsalt": prefix}):
        fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None, "Format": None, "Type": None})
    svg = buf.getvalue()
    svg = svg[svg.index("<svg") :]
    svg = re.sub(r"<metadata>.*?</metadata>", "", svg, flags=re.DOTALL)
    svg = _SVG_REF.sub(lambda m: m.group(1) + prefix + m.group(2), svg)
    svg = re.sub(r'<svg ([^>]*?)width="[^"]*" height="[^"]*"', r'<svg \1class="chart-svg" role="img"', svg, count=1)
    return svg
