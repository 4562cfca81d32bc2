"""The soak: `harness faults --soak 30m`. Both guarantees' pipelines run side by side on the suite's three-node
cluster at a fixed rate for the whole duration, and every ~`fault_every_s` a fault of the replication matrix
strikes, dealt from a shuffled deck (every kind once before any comes again; seeded: the same seed, the same
schedule; printed before the run). With each fault a scorer joins each pipeline's group; once the cluster is
whole again (restore: stopped nodes started, every partition fully replicated, preferred leaders back) the
oldest scorer leaves, so every fault comes with two rebalances.

At the end: the account per guarantee (lost must be 0, exactly-once duplicates 0), the latency timeline
(10-s buckets of intended send time) with every fault marked, and the recovery time per fault kind (from the
fault's start until latency stayed under a threshold for 10 s: timeline.recovery_s). A fault starts at its
planned time or, when the one before is still being undone (five bounces take minutes), `MIN_CALM_S` after
the cluster is whole again, and the first no sooner than `BASELINE_S` after both pipelines are steady; the
faults that no longer fit before the end are listed as not run. Written to `<results>/<soak-id>/` as soak.json,
soak.md and timeline.png.
"""

from __future__ import annotations

import json
import random
import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from harness.faults.cluster_faults import FAULTS, FaultRecord, Stage, restore
from harness.faults.ledger import Ledger
from harness.faults.pipeline import ClusterEnv, Pipeline
from harness.faults.processes import FaultError
from harness.faults.timeline import Bucket, buckets, percentile, recovery_s
from harness.scoring.settings import GUARANTEES

BUCKET_S = 10.0
HOLD_S = 15.0  # a node a fault stopped stays down this long before the cluster is restored
MIN_CALM_S = 15.0  # a fault starts at its planned time, but no sooner than this after the cluster is whole again
BASELINE_S = 30.0  # ... and no sooner than this after both pipelines are steady: the baseline p99 is read there


@dataclass
class SoakPlan:
    duration_s: float = 1800.0
    rate_per_s: float = 200.0  # per pipeline (two pipelines: one per guarantee)
    fault_every_s: float = 60.0
    seed: int = 1
    warm_s: float = 60.0  # before the first fault: the baseline latency
    tail_s: float = 90.0  # no fault starts later than this before the end


@dataclass(frozen=True)
class Planned:
    at_s: float  # seconds after the start
    kind: str
    guarantee: str  # whose topics the victim is picked from (input/output leader, group coordinator)


def parse_duration(text: str) -> float:
    """'30m', '90s', '1h', '1h30m' or plain seconds -> seconds; ValueError otherwise."""
    s = text.strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", s):
        return float(s)
    parts = re.findall(r"(\d+(?:\.\d+)?)([hms])", s)
    if not parts or "".join(n + u for n, u in parts) != s:
        raise ValueError(f"cannot read duration {text!r}: use e.g. 30m, 90s, 1h30m")
    unit = {"h": 3600.0, "m": 60.0, "s": 1.0}
    return sum(float(n) * unit[u] for n, u in parts)


def schedule(plan: SoakPlan, kinds: list[str]) -> list[Planned]:
    """The faults and when they strike: every fault_every_s ± 25% from warm_s on, the kind and the pipeline
    drawn with the seed. Kinds are dealt from a shuffled deck (every kind once, in a random order, before any
    comes again): a fault that takes minutes (five bounces on a busy machine took 3-6 min) delays the ones
    after it, and with independent draws a half-hour soak repeated the slow kinds and never reached the frozen
    or the isolated broker (a soak of 2026-12-03: 11 of 28 planned faults run, 7 kinds of 12)."""
    rng = random.Random(plan.seed)
    out: list[Planned] = []
    deck: list[str] = []
    t = plan.warm_s
    while t <= plan.duration_s - plan.tail_s:
        if not deck:
            deck = rng.sample(kinds, len(kinds))
        out.append(Planned(round(t, 1), deck.pop(0), rng.choice(GUARANTEES)))
        t += plan.fault_every_s * rng.uniform(0.75, 1.25)
    return out


@dataclass
class Struck:
    """A fault as it happened."""

    planned: Planned
    started_s: float  # seconds after the start
    restored_s: float  # when the cluster was whole again
    what: str
    recovery_s: dict[str, float | None] = field(default_factory=dict)  # per guarantee
    error: str | None = None


@dataclass
class SoakResult:
    plan: SoakPlan
    started_at: float
    finished_at: float
    schedule: list[Planned]
    struck: list[Struck]
    accounts: dict[str, Ledger]
    timeline: dict[str, list[Bucket]]
    not_run: list[Planned]
    baseline_p99_ms: dict[str, float | None]
    threshold_ms: dict[str, float]
    machine: str

    def holds(self) -> bool:
        return all(led.holds(g == "exactly-once") for g, led in self.accounts.items()) and all(
            s.error is None for s in self.struck
        )

    def recovery_by_kind(self) -> dict[str, dict[str, Any]]:
        """Per fault kind: how often, and the median and longest recovery over both pipelines."""
        out: dict[str, dict[str, Any]] = {}
        for s in self.struck:
            d = out.setdefault(s.planned.kind, {"count": 0, "values": [], "unsettled": 0})
            d["count"] += 1
            for v in s.recovery_s.values():
                if v is None:
                    d["unsettled"] += 1
                else:
                    d["values"].append(v)
        for d in out.values():
            vals = d.pop("values")
            d["median_s"] = None if not vals else round(percentile(vals, 0.5) or 0.0, 1)
            d["max_s"] = None if not vals else round(max(vals), 1)
        return out


def run_soak(env: ClusterEnv, plan: SoakPlan, log: Callable[[str], None]) -> SoakResult:
    kinds = [k for k, f in FAULTS.items() if not (f.needs_isolation and env.isolation is None)]
    sched = schedule(plan, kinds)
    log(f"soak: {plan.duration_s / 60:g} min at {plan.rate_per_s:g} records/s per guarantee, seed {plan.seed}; "
        f"{len(sched)} faults scheduled:")  # fmt: skip
    for f in sched:
        log(f"  {_mmss(f.at_s)}  {f.kind:<30} (victim picked from the {f.guarantee} pipeline's topics)")
    pipes = {g: Pipeline(env, "soak", g, plan.rate_per_s) for g in GUARANTEES}
    struck: list[Struck] = []
    not_run: list[Planned] = []
    accounts: dict[str, Ledger] = {}
    try:
        for p in pipes.values():
            p.start()
        t0 = min(p.sender.started_at for p in pipes.values() if p.sender)
        for p in pipes.values():
            p.wait_steady(timeout_s=plan.warm_s)
        # the baseline: the first fault waits until both pipelines have been steady BASELINE_S (the second
        # pipeline's scorer starts after the first's, and a fresh exactly-once pipeline took up to a minute to
        # drain its start-up backlog here: planned at warm_s alone, the first kept soak had no baseline at all)
        steady_at = time.time()
        whole_at = steady_at + BASELINE_S - MIN_CALM_S
        for planned in sched:
            start_at = max(t0 + planned.at_s, whole_at + MIN_CALM_S)
            if start_at > t0 + plan.duration_s - plan.tail_s:
                not_run.append(planned)
                continue
            _sleep_until(start_at)
            struck.append(_strike(env, pipes, planned, t0, log))
            whole_at = t0 + struck[-1].restored_s
        if not_run:
            log(f"{len(not_run)} planned faults did not fit before the end: {', '.join(p.kind for p in not_run)}")
        _sleep_until(t0 + plan.duration_s)
        for g, p in pipes.items():
            accounts[g] = p.finish(settle_idle_s=90)
    finally:
        for p in pipes.values():
            p.close()
    finished = time.time()
    timeline, base, threshold = {}, {}, {}
    for g, p in pipes.items():
        ss = p.samples()
        timeline[g] = buckets(ss, t0, BUCKET_S)
        first_fault = t0 + struck[0].started_s if struck else t0 + plan.duration_s
        warm = [s.latency_s for s in ss if steady_at <= s.intended < first_fault - 2.0]
        b = percentile(warm, 0.99)
        base[g] = None if b is None else round(b * 1000, 1)
        thr = max(3 * (b or 0.0), 1.0)
        threshold[g] = round(thr * 1000, 1)
        for i, s in enumerate(struck):
            until = t0 + (struck[i + 1].started_s if i + 1 < len(struck) else plan.duration_s)
            r = recovery_s(ss, t0 + s.started_s, until, thr)
            s.recovery_s[g] = None if r is None else round(r, 1)
    return SoakResult(plan, t0, finished, sched, struck, accounts, timeline, not_run, base, threshold, _machine())


def _strike(env: ClusterEnv, pipes: dict[str, Pipeline], planned: Planned, t0: float,
            log: Callable[[str], None]) -> Struck:  # fmt: skip
    fault = FAULTS[planned.kind]
    chosen = pipes[planned.guarantee].topics
    stage = Stage(env.cluster, env.target, chosen.input, chosen.output, chosen.group, env.isolation, log)
    rec = FaultRecord(planned.kind)
    started = time.time() - t0
    log(f"{_mmss(started)} {fault.title} (victim from the {planned.guarantee} pipeline)")
    error = None
    for p in pipes.values():
        p.join()
    try:
        fault.action(stage, rec)
        if any(not env.cluster.node_alive(n) for n in _nodes(env)):
            time.sleep(HOLD_S)
    except (FaultError, Exception) as e:  # a fault that could not be carried out is reported, the soak goes on
        error = f"{type(e).__name__}: {e}"
        log(f"  the fault failed: {error}")
    try:
        restore(stage)
    except Exception as e:
        error = (error + "; " if error else "") + f"the cluster was not restored: {e}"
        log(f"  {error}")
    for p in pipes.values():
        p.wait_joined()
        p.leave()
    restored = time.time() - t0
    log(f"  cluster whole again at {_mmss(restored)}")
    return Struck(planned, round(started, 1), round(restored, 1), rec.summary(), error=error)


def _nodes(env: ClusterEnv) -> list[int]:
    st = env.cluster.state()
    return [n.node_id for n in st.nodes] if st else []


def _sleep_until(t: float) -> None:
    delay = t - time.time()
    if delay > 0:
        time.sleep(delay)


def _mmss(seconds: float) -> str:
    return f"{int(seconds // 60):02d}:{int(seconds % 60):02d}"


def _machine() -> str:
    import os
    import platform
    import socket

    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{socket.gethostname()} · {cpu}, {os.cpu_count()} cores · {platform.platform()}"


# ---- the report -----------------------------------------------------------------------------------------
def account_lines(r: SoakResult) -> list[str]:
    out = [f"{'guarantee':<14} {'sent':>9} {'scored':>9} {'dead-lettered':>13} {'lost':>6} {'duplicates':>10}  verdict"]
    for g, led in r.accounts.items():
        verdict = "ok" if led.holds(g == "exactly-once") else "FAIL"
        out.append(f"{g:<14} {led.sent:>9,} {led.scored:>9,} {led.dead_lettered:>13,} {led.lost:>6,} "
                   f"{led.duplicates:>10,}  {verdict}")  # fmt: skip
    return out


def recovery_lines(r: SoakResult) -> list[str]:
    out = [f"{'fault kind':<30} {'times':>5} {'median recovery':>15} {'longest':>8} {'unsettled':>9}"]
    for kind, d in sorted(r.recovery_by_kind().items()):
        med = "–" if d["median_s"] is None else f"{d['median_s']:.1f} s"
        mx = "–" if d["max_s"] is None else f"{d['max_s']:.1f} s"
        out.append(f"{kind:<30} {d['count']:>5} {med:>15} {mx:>8} {d['unsettled']:>9}")
    return out


def fault_lines(r: SoakResult) -> list[str]:
    out = []
    for s in r.struck:
        rec = ", ".join(f"{g}: {'–' if v is None else f'{v:.1f} s'}" for g, v in s.recovery_s.items())
        out.append(f"{_mmss(s.started_s)}  {s.planned.kind:<30} recovery {rec}; whole again {_mmss(s.restored_s)}")
        out.append(f"       {s.what}" + (f" — ERROR {s.error}" if s.error else ""))
    return out


def timeline_lines(r: SoakResult) -> list[str]:
    """One line per bucket: both guarantees' p50/p99/max, and the faults that began in it."""
    marks: dict[int, list[str]] = {}
    for s in r.struck:
        marks.setdefault(int(s.started_s // BUCKET_S), []).append(s.planned.kind)
    gs = list(r.timeline)
    head = f"{'t':>5} " + " ".join(f"{g + ' p50/p99/max ms':>30}" for g in gs) + "  fault"
    out = [head]
    n = max((len(v) for v in r.timeline.values()), default=0)
    for k in range(n):
        cells = []
        for g in gs:
            b = r.timeline[g][k] if k < len(r.timeline[g]) else None
            if b is None or not b.count:
                cells.append(f"{'–':>30}")
            else:
                cells.append(f"{f'{b.p50_ms:,.0f} / {b.p99_ms:,.0f} / {b.max_ms:,.0f}':>30}")
        out.append(
            f"{_mmss(k * BUCKET_S):>5} " + " ".join(cells) + ("  ◀ " + ", ".join(marks[k]) if k in marks else "")
        )
    return out


def write(r: SoakResult, folder: Path) -> Path:
    """soak.json, soak.md and (matplotlib permitting) timeline.png in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    doc = {
        "plan": asdict(r.plan),
        "machine": r.machine,
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(r.started_at)),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(r.finished_at)),
        "holds": r.holds(),
        "accounts": {g: {k: v for k, v in asdict(led).items() if k != "timing"} for g, led in r.accounts.items()},
        "baseline_p99_ms": r.baseline_p99_ms,
        "recovery_threshold_ms": r.threshold_ms,
        "schedule": [asdict(p) for p in r.schedule],
        "faults": [asdict(s) for s in r.struck],
        "not_run": [asdict(p) for p in r.not_run],
        "recovery_by_kind": r.recovery_by_kind(),
        "timeline": {g: [asdict(b) for b in bs] for g, bs in r.timeline.items()},
    }
    (folder / "soak.json").write_text(json.dumps(doc, indent=1))
    chart = _chart(r, folder / "timeline.png")
    md = [
        f"# Soak {folder.name}",
        "",
        f"`harness faults --soak {r.plan.duration_s / 60:g}m --seed {r.plan.seed} --rate {r.plan.rate_per_s:g}` "
        f"on {r.machine}, {doc['started_at']} to {doc['finished_at']}.",
        "",
        "## The account",
        "",
        "```text",
        *account_lines(r),
        "```",
        "",
        "## Recovery per fault kind",
        "",
        f"Recovery: from the fault's start until latency stayed under {', '.join(f'{v:,.0f} ms ({g})' for g, v in r.threshold_ms.items())} "  # noqa: E501
        f"(3× the baseline p99 — from the pipelines' steady start to the first fault — at least 1 s) for 10 s "
        "of records.",
        "",
        "```text",
        *recovery_lines(r),
        "```",
        "",
        "## The faults, in order",
        "",
        f"Planned (seed {r.plan.seed}): "
        + ", ".join(f"{_mmss(p.at_s)} {p.kind}" for p in r.schedule)
        + (f". Not run (no time left): {', '.join(p.kind for p in r.not_run)}." if r.not_run else "."),
        "",
        "```text",
        *fault_lines(r),
        "```",
        "",
        "## Latency timeline (10-s buckets of intended send time; ◀ a fault began)",
        "",
        *([f"![latency timeline]({chart.name})", ""] if chart else []),
        "```text",
        *timeline_lines(r),
        "```",
        "",
    ]
    (folder / "soak.md").write_text("\n".join(md))
    return folder


def _chart(r: SoakResult, path: Path) -> Path | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, ax = plt.subplots(figsize=(12, 4.5))
    for g, bs in r.timeline.items():
        xs = [b.start / 60 for b in bs if b.count]
        ax.plot(xs, [b.p99_ms / 1000 for b in bs if b.count and b.p99_ms is not None], label=f"{g} p99")
        ax.plot(xs, [b.p50_ms / 1000 for b in bs if b.count and b.p50_ms is not None], ":", label=f"{g} p50")
    for s in r.struck:
        ax.axvline(s.started_s / 60, color="grey", alpha=0.4, lw=0.8)
        ax.text(s.started_s / 60, ax.get_ylim()[1] if ax.get_ylim()[1] > 0 else 1, s.planned.kind, rotation=90,
                fontsize=6, va="top", ha="right", alpha=0.7)  # fmt: skip
    ax.set_yscale("log")
    ax.set_xlabel("minutes since the start")
    ax.set_ylabel("latency from intended send time, s")
    ax.set_title("Soak: latency per 10 s, faults marked")
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
