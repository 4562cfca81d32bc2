"""The report's charts (matplotlib, object API, no global backend): latency against offered load, the HDR
percentile distribution, throughput over time, and sustainable throughput against the Kafka-only ceiling.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from harness.reporting.analysis import Analysis
from harness.results.errors import ResultsError
from harness.results.fmt import fmt_rate
from harness.results.schema import Point, ScenarioResult

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

# ---------------------------------------------------------------------------------------------------------
# Charts (matplotlib, object API only: no pyplot, no global backend)
# ---------------------------------------------------------------------------------------------------------

_PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#bcbd22", "#17becf"]
_BASELINE_COLOR = "#7f7f7f"
_HDR_TICKS = [(0.0, "0%"), (90.0, "90%"), (99.0, "99%"), (99.9, "99.9%"), (99.99, "99.99%"), (99.999, "99.999%")]


@dataclass
class Chart:
    key: str  # file name part, e.g. "latency-vs-load"
    title: str
    caption: str
    figure: Figure


def _colors(an: Analysis) -> dict[str, str]:
    out, i = {}, 0
    for r in an.ranked:
        if r.adapter.is_baseline:
            out[r.adapter.adapter] = _BASELINE_COLOR
        else:
            out[r.adapter.adapter] = _PALETTE[i % len(_PALETTE)]
            i += 1
    return out


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


def chart_latency_vs_load(an: Analysis, colors: dict[str, str]) -> Chart | None:
    sc = an.scenario
    fig, ax = _new_figure()
    drawn = False
    for r in an.ranked:
        a = r.adapter
        by_rate: dict[float, tuple[float | None, float | None, bool]] = {}
        for s in a.sustainable.steps if a.sustainable else []:
            by_rate[s.offered_per_s] = (None, s.p99_ms, s.ok is not False)
        for p in a.points:  # load points and search points carry the full distribution
            if p.offered_per_s is None:
                continue
            ok = p.held and not p.invalid
            by_rate[p.offered_per_s] = (p.latency_ms.p50, p.latency_ms.p99, ok)
        if not by_rate:
            continue
        xs = sorted(by_rate)
        c = colors[a.adapter]
        p99 = [(x, by_rate[x][1]) for x in xs if by_rate[x][1] is not None]
        p50 = [(x, by_rate[x][0]) for x in xs if by_rate[x][0] is not None]
        if p99:
            ax.plot(*zip(*p99, strict=True), color=c, marker="o", linewidth=1.8, label=f"{a.adapter} p99")
            bad = [(x, by_rate[x][1]) for x in xs if by_rate[x][1] is not None and not by_rate[x][2]]
            if bad:
                bx, by = zip(*bad, strict=True)
                ax.plot(bx, by, "X", color=c, markersize=10, markeredgecolor="black", zorder=5)
            drawn = True
        if p50:
            ax.plot(
                *zip(*p50, strict=True), color=c, marker=".", linestyle="--", linewidth=1.2, label=f"{a.adapter} p50"
            )
            drawn = True
    if not drawn:
        return None
    _slo_line(ax, sc)
    ax.set_yscale("log")
    ax.set_xscale("log")
    _plain_ticks(ax.xaxis)
    _plain_ticks(ax.yaxis)
    ax.set_xlabel("offered load (events/s)")
    ax.set_ylabel("latency from intended send time (ms)")
    ax.set_title(f"{sc.name}: latency against offered load")
    ax.legend(fontsize=8, ncols=2, loc="upper left")
    return Chart(
        "latency-vs-load",
        "Latency against offered load",
        "p99 (solid) and p50 (dashed) per adapter, from the fixed load points and the throughput search; "
        "× marks a rate that missed the SLO or was INVALID.",
        fig,
    )


def _chart_point(sc: ScenarioResult, needs: Callable[[Point], bool]) -> dict[str, Point]:
    """Per adapter, the point to show: the highest load point every adapter ran (a fair comparison), else each
    adapter's own highest."""
    have = {a.adapter: [p for p in a.load_points() if needs(p)] for a in sc.adapters}
    have = {k: v for k, v in have.items() if v}
    if not have:
        return {}
    common = set.intersection(*({p.name for p in v} for v in have.values()))
    for name in reversed(sc.load_point_names()):
        if name in common:
            return {k: next(p for p in v if p.name == name) for k, v in have.items()}
    return {k: v[-1] for k, v in have.items()}


def _at(chosen: dict[str, Point]) -> str:
    names = {p.name for p in chosen.values()}
    if len(names) == 1:
        p = next(iter(chosen.values()))
        rate = f" ({fmt_rate(p.offered_per_s)}/s offered)" if p.offered_per_s is not None else ""
        return f" at {p.name}{rate}"
    return " at each adapter's highest load point"


def _hdr_xy(pairs: Sequence[tuple[float, float]]) -> tuple[list[float], list[float]]:
    scale = 100.0 if pairs and max(p for p, _ in pairs) <= 1.0 and len(pairs) > 2 else 1.0
    xs, ys = [], []
    for pct, ms in pairs:
        q = pct * scale / 100.0
        if q >= 1.0 or q < 0.0:
            continue
        xs.append(1.0 / (1.0 - q))
        ys.append(ms)
    return xs, ys


def chart_hdr(an: Analysis, colors: dict[str, str]) -> Chart | None:
    sc = an.scenario
    chosen = _chart_point(sc, lambda p: bool(p.hdr()))
    if not chosen:
        return None
    fig, ax = _new_figure()
    multi = len({p.name for p in chosen.values()}) > 1
    for r in an.ranked:
        p = chosen.get(r.adapter.adapter)
        if p is None:
            continue
        xs, ys = _hdr_xy(p.hdr())
        label = f"{r.adapter.adapter} @ {p.name}" if multi else r.adapter.adapter
        ax.plot(xs, ys, color=colors[r.adapter.adapter], linewidth=1.6, label=label)
    _slo_line(ax, sc)
    ys_all = [ms for p in chosen.values() for _, ms in p.hdr() if ms > 0]
    if ys_all and max(ys_all) / min(ys_all) > 30:
        ax.set_yscale("log")
        _plain_ticks(ax.yaxis)
    else:
        ax.set_ylim(bottom=0)
    ax.set_xscale("log")
    ax.set_xticks([1.0 / (1.0 - t / 100.0) for t, _ in _HDR_TICKS], [lbl for _, lbl in _HDR_TICKS])
    ax.minorticks_off()
    ax.set_xlim(left=1.0)
    ax.set_xlabel("percentile")
    ax.set_ylabel("latency (ms)")
    ax.set_title(f"{sc.name}: latency by percentile{_at(chosen)}")
    ax.legend(fontsize=8, loc="upper left")
    return Chart(
        "hdr-percentiles",
        "Latency percentile distribution",
        f"HdrHistogram percentile distribution{_at(chosen)}; the x axis is 1/(1-p), so each step right is one "
        "more nine.",
        fig,
    )


def chart_throughput_windows(an: Analysis, colors: dict[str, str]) -> Chart | None:
    sc = an.scenario
    chosen = _chart_point(sc, lambda p: bool(p.throughput and p.throughput.windows_per_s))
    if not chosen:
        return None
    fig, ax = _new_figure()
    multi = len({p.name for p in chosen.values()}) > 1
    offered = set()
    drawn = [r for r in an.ranked if r.adapter.adapter in chosen]
    for i, r in enumerate(drawn):
        p = chosen[r.adapter.adapter]
        if p.throughput is None:
            continue
        # scorers that keep up produce the same windows: wider lines underneath keep each one visible
        width = 1.4 + 1.2 * (len(drawn) - 1 - i)
        w = p.throughput.window_s or 1.0
        ys = p.throughput.windows_per_s
        xs = [i * w for i in range(len(ys) + 1)]
        label = f"{r.adapter.adapter} @ {p.name}" if multi else r.adapter.adapter
        ax.step(xs, [*ys, ys[-1]], where="post", color=colors[r.adapter.adapter], linewidth=width, label=label)
        if p.offered_per_s is not None:
            offered.add(p.offered_per_s)
    for i, rate in enumerate(sorted(offered)):
        ax.axhline(rate, color="black", linestyle="--", linewidth=0.9, label="offered" if i == 0 else None)
    ax.set_ylim(bottom=0)
    ax.set_xlabel("time into the measured window (s)")
    ax.set_ylabel("scored events/s")
    ax.set_title(f"{sc.name}: throughput over time{_at(chosen)}")
    ax.legend(fontsize=8, loc="lower right")
    return Chart(
        "throughput-windows",
        "Throughput over time",
        f"Scored events per window{_at(chosen)}; a flat line at the offered rate is a stable, keeping-up scorer.",
        fig,
    )


def chart_sustainable(an: Analysis, colors: dict[str, str]) -> Chart | None:
    sc = an.scenario
    strategies = [r.adapter for r in an.ranked if r.rank is not None]
    if not strategies:
        return None
    fig, ax = _new_figure(height=max(2.6, 0.55 * len(strategies) + 1.6))
    shown = strategies[::-1]
    labels = [a.adapter for a in shown]
    values = [a.sustainable_rate or 0.0 for a in shown]
    stats = [a.sustainable_stat for a in shown]
    lo = [max(0.0, v - st.lo) if st else 0.0 for v, st in zip(values, stats, strict=True)]
    hi = [max(0.0, st.hi - v) if st else 0.0 for v, st in zip(values, stats, strict=True)]
    bars = ax.barh(labels, values, color=[colors[a] for a in labels], xerr=[lo, hi], capsize=4, ecolor="#333")
    ceiling = an.ceiling
    top = max([*(st.hi for st in stats if st), *values, ceiling or 0.0]) or 1.0
    for bar, a, st in zip(bars, shown, stats, strict=True):
        rate = a.sustainable_rate
        text = "none met the SLO" if not rate else fmt_rate(rate)
        if st is not None and st.n > 1 and rate:
            text += f" [{fmt_rate(st.lo)}–{fmt_rate(st.hi)}]"
        if rate and ceiling:
            text += f" ({rate / ceiling:.0%} of ceiling)"
        right = max(bar.get_width(), st.hi if st else 0.0)
        ax.text(right + top * 0.01, bar.get_y() + bar.get_height() / 2, text, va="center", fontsize=8)
    handles: list[Any] = []
    names: list[str] = []
    if ceiling:
        handles.append(ax.axvline(ceiling, color=_BASELINE_COLOR, linestyle="--", linewidth=1.5))
        names.append(f"Kafka-only ceiling (identity): {fmt_rate(ceiling)}/s")
        noise = sc.noise.sustainable_pct if sc.noise else None
        if noise:
            band = ax.axvspan(
                ceiling * (1 - noise / 100), ceiling * (1 + noise / 100), color=_BASELINE_COLOR, alpha=0.12
            )
            handles.append(band)
            names.append(f"noise floor (A/A): ±{noise:.0f}%")
    if handles:
        ax.legend(handles=handles, labels=names, fontsize=8, loc="lower right")
    ax.set_xlim(0, top * 1.45)
    ax.grid(True, axis="x", alpha=0.3)
    ax.grid(False, axis="y")
    ax.set_xlabel("sustainable throughput under the SLO (events/s)")
    trials = f", median of {sc.trials} trials with its interval" if sc.trials > 1 else ""
    ax.set_title(f"{sc.name}: sustainable throughput per strategy{trials}")
    return Chart(
        "sustainable-throughput",
        "Sustainable throughput",
        "The highest offered rate each strategy sustained with p99 under the SLO (median over the trials; the "
        "whiskers are its interval), against the Kafka-only ceiling (the identity adapter: the loop with no "
        "model) and this run's noise floor.",
        fig,
    )


def chart_scale_out(an: Analysis, colors: dict[str, str]) -> Chart | None:
    exp = an.scenario.experiments
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
    ax.set_title(f"{an.scenario.name}: scale-out of {exp.scale_out_adapter} (median and interval over trials)")
    return Chart(
        "scale-out",
        "Scale-out",
        "Flat-out capacity of the scoring loop by the number of scorer processes in one consumer group, one line "
        "per partition count. A process beyond the partition count idles; processes beyond the machine's cores "
        "share them with the broker and the load generator.",
        fig,
    )


def chart_rebalance(an: Analysis, colors: dict[str, str]) -> Chart | None:
    exp = an.scenario.experiments
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
    _slo_line(ax, an.scenario)
    ax.set_yscale("log")
    _plain_ticks(ax.yaxis)
    ax.set_xlabel("seconds since the load started (by intended send time)")
    ax.set_ylabel("latency (ms)")
    ax.legend(fontsize=8, loc="upper left")
    c = rb.counts
    ax.set_title(
        f"{an.scenario.name}: a scorer joins and leaves at {rb.rate_per_s:,.0f}/s "
        f"({c.sent:,} sent, {c.lost} lost, {c.duplicates} duplicates)"
    )
    return Chart(
        "rebalance",
        "Rebalance under load",
        "Latency per window while a second scorer joins the consumer group and later leaves it (SIGTERM); the "
        "dotted lines mark when each began and ended.",
        fig,
    )


def chart_lifecycle(an: Analysis, colors: dict[str, str]) -> Chart | None:
    exp = an.scenario.experiments
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
    _slo_line(low, an.scenario)
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
        f"{an.scenario.name}: drift → alert ({lc.time_to_alert_s} s) → training set ({lc.time_to_training_set_s} s) "
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


def chart_online(an: Analysis, colors: dict[str, str]) -> Chart | None:
    exp = an.scenario.experiments
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
    ax.set_title(f"{an.scenario.name}: online learners against the offline model, prequentially")
    return Chart(
        "online-learning",
        "Online learning on a drifting stream",
        "Rolling AUC per window of labels: every score was made before its label arrived (test, then train). The "
        "offline model is dashed.",
        fig,
    )


def build_charts(an: Analysis) -> list[Chart]:
    colors = _colors(an)
    makers = (
        chart_latency_vs_load,
        chart_hdr,
        chart_throughput_windows,
        chart_sustainable,
        chart_scale_out,
        chart_rebalance,
        chart_lifecycle,
        chart_online,
    )
    return [c for c in (m(an, colors) for m in makers) if c is not None]


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
