"""Experiments beside the suite: how the loop scales out on Kafka's own engine, and what a rebalance costs.

    harness experiment scenarios/fraud.yaml scale-out [--adapter identity]
        every (partitions, scorer processes) cell of the grid: flat-out capacity with a backlog, in
        interleaved trials (Crayfish's scalability experiment, on one machine)
    harness experiment scenarios/fraud.yaml rebalance [--adapter native]
        a constant load on P partitions with one scorer; a second scorer joins the group at join_at_s and
        leaves at leave_at_s (SIGTERM: it finishes, commits, leaves): p99 per window around each
        rebalance, and every record accounted for (lost must be 0)

Both write results/<run-id>/results.json (scenario header + `experiments`) and a report with their charts.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import numpy as np
from rich.progress import Progress

from harness.bench.session import START_DELAY_NS, AdapterSession, RunContext
from harness.results.experiments import Rebalance, ScaleOutCell, TimelineWindow
from harness.results.stats import stat
from harness.scenario import AdapterSpec, LoadProfile


@dataclass
class ScaleOutPlan:
    partitions: tuple[int, ...] = (1, 2, 4)
    processes: tuple[int, ...] = (1, 2, 3)
    trials: int = 2
    records: int = 40_000


def _with_loop(ctx: RunContext, partitions: int, processes: int) -> RunContext:
    """The context with the loop's partitions and process count changed (everything else shared)."""
    sc = ctx.sc.model_copy(
        update={"loop": ctx.sc.loop.model_copy(update={"partitions": partitions, "processes": processes})}
    )
    clone = object.__new__(RunContext)
    clone.__dict__.update(ctx.__dict__)
    clone.sc = sc
    return clone


def scale_out(ctx: RunContext, spec: AdapterSpec, plan: ScaleOutPlan, progress: Progress) -> list[ScaleOutCell]:
    """Capacity for every cell, `plan.trials` rounds, the cells in a rotated order each round."""
    cells = [(p, n) for p in plan.partitions for n in plan.processes]
    caps: dict[tuple[int, int], list[float | None]] = {c: [] for c in cells}
    cpus: dict[tuple[int, int], list[float | None]] = {c: [] for c in cells}
    for r in range(plan.trials):
        order = cells[r % len(cells) :] + cells[: r % len(cells)]
        for i, (p, n) in enumerate(order):
            cctx = _with_loop(ctx, p, n)
            ctx.log(f"[bold]scale-out[/] {spec.display}: {p} partitions × {n} processes (round {r + 1})")
            with AdapterSession(cctx, spec, 100 + r * len(cells) + i, progress) as s:
                cpu0, _ = s.deployment.cpu_seconds()
                cap = s.capacity(f"x{r}-{p}-{n}", plan.records)
                cpu1, _ = s.deployment.cpu_seconds()
            caps[(p, n)].append(cap.rows_per_s)
            cpus[(p, n)].append((cpu1 - cpu0) / max(1, cap.scored or 1) * 1000)
    return [
        ScaleOutCell(
            partitions=p, processes=n, capacity_rows_per_s=stat(caps[(p, n)]), cpu_s_per_1000=stat(cpus[(p, n)])
        )
        for p, n in cells
    ]


@dataclass
class RebalancePlan:
    partitions: int = 4
    rate_per_s: float = 4000.0
    duration_s: float = 30.0
    join_at_s: float = 10.0
    leave_at_s: float = 20.0
    window_s: float = 1.0


def rebalance(ctx: RunContext, spec: AdapterSpec, plan: RebalancePlan, progress: Progress) -> Rebalance:
    cctx = _with_loop(ctx, plan.partitions, 1)
    profile = LoadProfile(
        name="rebalance", pattern="constant", rate_per_s=plan.rate_per_s, duration_s=plan.duration_s, warmup_s=0.0
    )
    events: list[tuple[float, str]] = []
    with AdapterSession(cctx, spec, 200, progress) as s:
        scorer = s.deployment.scorer
        add, remove = getattr(scorer, "add_process", None), getattr(scorer, "remove_process", None)
        if add is None or remove is None:
            raise ValueError(f"{spec.display} does not run as loop processes: no rebalance to measure")
        started = time.monotonic() + START_DELAY_NS / 1e9

        def operator() -> None:
            time.sleep(max(0.0, started + plan.join_at_s - time.monotonic()))
            events.append((round(time.monotonic() - started, 2), "a scorer joins"))
            add()
            events.append((round(time.monotonic() - started, 2), "it is READY (partitions assigned)"))
            time.sleep(max(0.0, started + plan.leave_at_s - time.monotonic()))
            events.append((round(time.monotonic() - started, 2), "a scorer leaves (SIGTERM)"))
            remove()
            events.append((round(time.monotonic() - started, 2), "it has left"))

        t = threading.Thread(target=operator, name="operator", daemon=True)
        t.start()
        point = s.run_point(profile, "rb", "load")
        t.join(60)
        assert s.measurer is not None
        timeline = s.measurer.timeline("rb", plan.window_s)
    windows = [TimelineWindow(t_s=w[0], results=w[1], p50_ms=w[2], p99_ms=w[3]) for w in timeline]
    steady = [w.p99_ms for w in windows if w.t_s < plan.join_at_s - plan.window_s and w.p99_ms is not None]
    around = {}
    for at, what in events:
        near = [w.p99_ms for w in windows if abs(w.t_s - at) <= 2 * plan.window_s and w.p99_ms is not None]
        if near:
            around[what] = round(max(near), 2)
    return Rebalance(
        adapter=spec.display,
        partitions=plan.partitions,
        rate_per_s=plan.rate_per_s,
        events=events,
        windows=windows,
        counts=point.counts,
        p99_ms_steady=round(float(np.median(steady)), 2) if steady else None,
        p99_ms_around=around,
    )
