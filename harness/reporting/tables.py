"""Tables of a run that are not the verdict: the bundle's parity, and the experiments' own tables
(scale-out, rebalance, the model lifecycle, online learning). Each is data (`TableData`); report.py renders it
as markdown and HTML."""

from __future__ import annotations

from dataclasses import dataclass

from harness.results.fmt import DASH, fmt_diff, fmt_mib, fmt_ms, fmt_num, fmt_rate, fmt_ratio
from harness.results.schema import ScenarioResult


@dataclass
class TableData:
    header: list[str]
    rows: list[list[str]]
    note: str = ""


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
