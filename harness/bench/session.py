"""One contestant's session: its topics, measurer, load generator and deployment, kept for a whole run, and
the measurements made on them — a load point (`run_point`), the capacity with a backlog (`capacity`, for the
scale-out experiment) and the rate search (`search`, for `--thorough`). The rounds' windows
(harness/bench/windows.py) are made on a session too.

    with AdapterSession(ctx, spec, index, progress) as s:
        point = s.run_point(profile, prefix, "load")

A session owns what these share (topics, measurer, generator, deployment, interference monitor, progress), so
none of them threads it through its arguments.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from rich.progress import Progress

from adapters.bundle import Bundle
from harness.bench.interference import InterferenceMonitor, Thresholds
from harness.bench.loadgen import Generator, GeneratorReport, schedule_s
from harness.bench.measure import Measurer, PointSpec
from harness.bench.peers import MODEL_HEADER
from harness.bench.procs import HARNESS, Child
from harness.bench.scorers import Deployment, ScorerSetup, Topics, deployment
from harness.bench.search import VOID, RateSearch, SearchPolicy, nice_rate
from harness.kafka.config import KafkaTarget
from harness.kafka.topics import delete_topics, ensure_topics
from harness.results.point import (
    MACHINE_BUSY,
    Capacity,
    Cost,
    GeneratorStats,
    InProcess,
    Point,
    SearchStep,
    SendLag,
    Sustainable,
    ValidityLimits,
)
from harness.scenario import AdapterSpec, LoadProfile, Scenario, SustainableSearch
from harness.scoring import wire

START_DELAY_NS = 250_000_000  # a schedule starts this long after it is handed to the generator
# A search (`--thorough`) starts at this share of the flat-out rate the rounds measured, and brackets by this
# factor: sustainable rates here are 0.33-0.5 of the flat-out rate for the Python loop (more for Kafka Streams).
CAPACITY_START_SHARE = 0.4
CAPACITY_FACTOR = 1.25


class RunContext:
    """What every adapter of one scenario run shares: the scenario, Kafka, the bundle and its replayed rows."""

    def __init__(
        self,
        sc: Scenario,
        target: KafkaTarget,
        bundle_dir: Path,
        run_id: str,
        log: Callable[[str], None],
        broker_gc_log: Path | None = None,
        broker_pid: int | None = None,
    ) -> None:
        self.sc = sc
        self.target = target
        self.bundle_dir = bundle_dir
        self.bundle = Bundle.open(bundle_dir)
        self.X, self.y, self.p = self.bundle.reference()
        self.codec = wire.FeatureCodec.for_bundle(self.bundle, sc.encoding)  # categorical values as strings
        self.payloads = [self.codec.encode(row) for row in self.X]
        self.run_id = run_id
        self.log = log
        self.tag = uuid.uuid4().hex[:6]
        self.limits = ValidityLimits.model_validate(sc.validity.model_dump())
        self.broker_gc_log = broker_gc_log
        self.broker_pid = broker_pid
        self._v2: list[bytes] | None = None

    def v2_payloads(self) -> list[bytes]:
        """The same rows as Open Inference Protocol (V2) requests, one row each (for peers that speak V2)."""
        if self._v2 is None:
            import orjson

            n = self.X.shape[1]
            self._v2 = [
                orjson.dumps(
                    {"inputs": [{"name": "input-0", "shape": [1, n], "datatype": "FP64", "data": row}]},
                    option=orjson.OPT_SERIALIZE_NUMPY,
                )
                for row in self.X
            ]
        return self._v2


def generator_stats(rep: GeneratorReport) -> GeneratorStats:
    return GeneratorStats(
        sent=rep.sent,
        achieved_per_s=round(rep.achieved_per_s, 2),
        send_lag_ms=SendLag(p50=rep.lag_p50_ms, p99=rep.lag_p99_ms, max=rep.lag_max_ms),
        behind_share=rep.behind_share,
        delivery_errors=rep.delivery_errors,
    )


class AdapterSession:
    def __init__(
        self,
        ctx: RunContext,
        spec: AdapterSpec,
        index: int,
        progress: Progress,
        payloads: list[bytes] | None = None,
        loop_args: list[str] | None = None,
    ) -> None:
        """`payloads`: what the generator replays (default: the bundle's reference rows); `loop_args`: more
        `harness score` options for the scoring loops."""
        self.ctx = ctx
        self.spec = spec
        self.index = index
        self.progress = progress
        self.payloads = payloads
        self.topics = Topics.for_adapter(ctx.tag, index, spec.display)
        sc = ctx.sc
        setup = ScorerSetup(
            ctx.target, ctx.bundle_dir, ctx.bundle, self.topics, sc.encoding, sc.loop, tuple(loop_args or ())
        )
        self.deployment: Deployment = deployment(spec, setup)
        self.measurer: Measurer | None = None
        self.generator: Generator | None = None
        th = sc.interference
        self.monitor = InterferenceMonitor(
            ctx.broker_gc_log, self._pids, Thresholds(th.gc_pause_ms, th.other_cpu_pct, th.steal_pct)
        )
        self._names: set[str] = set()

    @property
    def family(self) -> str:
        return self.deployment.family

    def _pids(self) -> list[int]:
        pids = list(self.deployment.pids())
        if self.generator is not None and self.generator.pid:
            pids.append(self.generator.pid)
        if self.ctx.broker_pid:
            pids.append(self.ctx.broker_pid)
        return pids

    # ---- lifecycle ---------------------------------------------------------------------------------
    def __enter__(self) -> AdapterSession:
        ctx, sc, t = self.ctx, self.ctx.sc, self.topics
        n = sc.loop.partitions
        ensure_topics(ctx.target, {t.input: n, t.output: n, t.dlq: n})
        try:
            v2 = self.deployment.protocol == "v2"
            self.measurer = Measurer(
                ctx.target,
                t.output,
                t.dlq,
                sc.encoding,
                ctx.p,
                ctx.y,
                result_format="v2" if v2 else "wire",
                task=ctx.bundle.task,
            )
            self.measurer.start()
            self.generator = Generator(
                ctx.target.client_config(),
                t.input,
                ctx.v2_payloads() if v2 else (self.payloads or ctx.payloads),
                ctx.limits.max_send_lag_ms,
                key_is_rid=v2,
                extra_headers=(MODEL_HEADER,) if v2 else (),
            )
            self.deployment.start()
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.deployment.stop()
        if self.generator is not None:
            self.generator.close()
        if self.measurer is not None:
            self.measurer.close()
        delete_topics(self.ctx.target, self.topics.data_topics())

    def _m(self) -> Measurer:
        assert self.measurer is not None, "use the session as a context manager"
        return self.measurer

    def _g(self) -> Generator:
        assert self.generator is not None, "use the session as a context manager"
        return self.generator

    # ---- the in-process micro-benchmark ------------------------------------------------------------
    def inprocess(self) -> InProcess | None:
        """The adapter's rows/s at batch 1 and the loop's batch size, alone (a child process)."""
        dep = self.deployment
        if dep.microbench_adapter is None:
            return None
        argv = [*HARNESS, "microbench", "--bundle", str(self.ctx.bundle_dir), "--adapter", dep.microbench_adapter]
        argv += ["--batch", str(self.ctx.sc.loop.batch_max), "--seconds", "1"]
        argv += [a for k, v in dep.microbench_options.items() for a in ("--option", f"{k}={v}")]
        child = Child(f"microbench {dep.microbench_adapter}", argv)
        code = child.proc.wait(180)
        child.stop()
        line = next((ln for ln in reversed(child.lines) if ln.startswith("{")), None)
        if code != 0 or line is None:
            self.ctx.log(f"  micro-benchmark of {self.spec.display} failed: {child.tail()}")
            return None
        return InProcess.model_validate(json.loads(line))

    # ---- one load point ------------------------------------------------------------------------------
    def run_point(self, profile: LoadProfile, prefix: str, kind: str, drain_cap_s: float | None = None) -> Point:
        """Send `profile` open loop, wait for the results, and return the evaluated point."""
        ctx, m, gen = self.ctx, self._m(), self._g()
        offsets = schedule_s(profile)
        start_at = time.time_ns() + START_DELAY_NS
        m.add_point(PointSpec(prefix, start_at, profile.warmup_s, profile.duration_s, len(offsets), offsets))
        cpu0, scpu0 = self.deployment.cpu_ns()
        self.monitor.begin()
        gen.start(offsets, prefix, start_at)
        task = self.progress.add_task(f"{self.spec.display} · {profile.display}", total=len(offsets), p99="-")
        deadline = time.monotonic() + profile.duration_s + 120
        while gen.sending() and time.monotonic() < deadline:
            self._show(prefix, task)
            time.sleep(0.1)
        rep = gen.result(timeout_s=30)
        self._await_results(prefix, rep.sent, drain_cap_s, task)
        self.progress.remove_task(task)
        window = (start_at + int(profile.warmup_s * 1e9), start_at + int(profile.duration_s * 1e9))
        interference = self.monitor.end(window)
        cpu1, scpu1 = self.deployment.cpu_ns()
        rss, srss = self.deployment.peak_rss_mib()
        v = ctx.limits
        # enough windows for the stability check even on a short search step
        window_s = min(v.window_s, (profile.duration_s - profile.warmup_s) / v.stable_windows)
        measured = m.summary(
            prefix,
            ctx.sc.validity.accuracy_tolerance,
            window_s,
            v.stable_windows,
            v.stable_tolerance_pct,
            offered_ns=start_at + (offsets * 1e9).astype(np.int64),
            sent=rep.sent,
        )
        events = max(1, measured.counts.scored + measured.counts.dead_lettered)
        cost = Cost(cpu_s_per_1000=round((cpu1 - cpu0) / 1e9 / events * 1000, 5), peak_rss_mib=round(rss, 1))
        if self.deployment.server is not None:
            cost.server_cpu_s_per_1000 = round((scpu1 - scpu0) / 1e9 / events * 1000, 5)
            cost.server_peak_rss_mib = round(srss if srss is not None else float("nan"), 1)
        point = Point(
            **measured.model_dump(),
            name=profile.display,
            kind=kind,
            pattern=profile.pattern,
            offered_per_s=round(len(offsets) / profile.duration_s, 2),
            duration_s=profile.duration_s,
            warmup_s=profile.warmup_s,
            generator=generator_stats(rep),
            cost=cost,
            interference=interference,
        )
        point.evaluate(v, ctx.sc.slo.p99_ms)
        if self.family == "baseline" and point.accuracy is not None:
            point.accuracy.note = "identity returns 0.5 for every row: accuracy does not apply"
        self._log_point(point)
        return point

    def _show(self, prefix: str, task: Any) -> None:
        n, d, p99 = self._m().progress(prefix)
        self.progress.update(task, completed=n + d, p99=f"{p99:.1f} ms" if p99 is not None else "-")

    def _await_results(self, prefix: str, sent: int, cap_s: float | None, task: Any) -> None:
        """Until every sent record has a result or a dead letter, nothing arrived for the drain timeout, or
        cap_s passed (a search step's backlog is not worth waiting out); the progress bar follows."""
        start = time.monotonic()
        idle_timeout_s = self.ctx.sc.validity.drain_timeout_s
        while True:
            self._show(prefix, task)
            if self._m().drained(prefix, sent, idle_timeout_s):
                return
            if cap_s is not None and time.monotonic() - start > cap_s:
                return
            time.sleep(0.05)

    def _log_point(self, p: Point) -> None:
        lat, c = p.latency_ms, p.counts
        inter = p.interference
        disturbed = f"  disturbed: {'; '.join(inter.reasons)}" if inter and inter.disturbed else ""
        self.ctx.log(
            f"  {self.spec.display:<16} {p.name:<16} offered {p.offered_per_s or 0:>8.0f}/s  "
            f"p50 {_ms(lat.p50)} ms  p99 {_ms(lat.p99)} ms  scored {c.scored}/{c.sent} lost {c.lost} "
            f"dup {c.duplicates} dlq {c.dead_lettered}  {p.verdict}{disturbed}"
        )

    # ---- capacity with a backlog ---------------------------------------------------------------------
    def capacity(self, prefix: str, n: int) -> Capacity:
        """The loop's throughput with a backlog: `n` records sent at once, scored as fast as the loop can.

        Not a latency figure (every record waits in the backlog): it is what the loop + adapter can do per
        second, to hold against the adapter's in-process micro-benchmark at the same batch size."""
        ctx, m, gen = self.ctx, self._m(), self._g()
        start_at = time.time_ns() + START_DELAY_NS
        m.add_point(PointSpec(prefix, start_at, 0.0, 1.0, n, np.zeros(n)))
        task = self.progress.add_task(f"{self.spec.display} · capacity ({n:,} at once)", total=n, p99="n/a")
        cpu0, _ = self.deployment.cpu_seconds()
        gen.start(np.zeros(n), prefix, start_at)
        rep = gen.result(timeout_s=180)
        self._await_results(prefix, rep.sent, 120.0, task)
        self.progress.remove_task(task)
        cpu1, _ = self.deployment.cpu_seconds()
        got, first, last = m.received_span(prefix)
        rate = (got - 1) / ((last - first) / 1e9) if got > 1 and last > first else None
        out = Capacity(
            records=rep.sent,
            scored=got,
            rows_per_s=round(rate, 1) if rate else None,
            generator_per_s=round(rep.achieved_per_s, 1),
            cpu_us_per_record=round((cpu1 - cpu0) / got * 1e6, 2) if got else None,
            note="records sent all at once; rate = results / (last - first received)",
        )
        ctx.log(f"  {self.spec.display:<16} capacity         {out.rows_per_s or 0:>10,.0f}/s with a backlog of {n:,}")
        return out

    # ---- the sustainable-throughput search ---------------------------------------------------------
    def search(self, points: list[Point], prefix: str, capacity: float | None = None) -> Sustainable:
        """Drive a RateSearch with real steps; each step's point is appended to `points`.

        Where to start: `search_start`. Every answer is measured step by step, never assumed."""
        ss = self.ctx.sc.sustainable
        start, factor = search_start(ss, capacity)
        search = RateSearch(
            SearchPolicy(
                start_rate_per_s=min(start, ss.max_rate_per_s),
                factor=factor,
                max_rate_per_s=ss.max_rate_per_s,
                precision=ss.precision,
                max_steps=ss.max_steps,
            )
        )
        # Without a capacity, start below a load point that already broke the SLO or built a backlog. With
        # one, the capacity is the stronger bound: one load-point step is one sample, which a single broker
        # pause can fail, and starting below it would make the search climb from far too low.
        if not (ss.warm_start and capacity):
            for p in points:
                if p.offered_per_s and p.outcome() in ("slo", "backlog"):
                    search.start_below(p.offered_per_s)
        steps: list[SearchStep] = []
        n = 0
        while (rate := search.next_rate()) is not None:
            p = self.run_point(self._step_profile(rate), f"{prefix}{n}", "search", drain_cap_s=ss.step_duration_s)
            n += 1
            outcome = p.outcome()
            disturbed = step_disturbed(p)
            search.record(rate, outcome, disturbed=disturbed, busy=bool(p.interference and p.interference.busy))
            if search.done and search.limited_by == MACHINE_BUSY:
                self.ctx.log(
                    f"  {self.spec.display}: {outcome} at {rate:g}/s three times with the machine busy (CPU steal or "
                    "other processes): this trial's sustainable rate is not booked"
                )
            if outcome != "held" and not search.done and search.next_rate() == rate:
                why = (
                    "it was disturbed" if search.steps[-1].disturbed and not search.steps[-1].counted else "to confirm"
                )
                self.ctx.log(f"  {self.spec.display}: {outcome} at {rate:g}/s; running the step again ({why})")
            points.append(p)
            steps.append(
                SearchStep(
                    offered_per_s=p.offered_per_s or rate,
                    achieved_per_s=p.achieved_per_s(),
                    p99_ms=p.latency_ms.p99,
                    ok=outcome == "held",
                    reason=outcome if not disturbed or outcome == "held" else f"{outcome} (disturbed)",
                    verdict=p.verdict,
                    point=p.name,
                )
            )
        return Sustainable(rows_per_s=search.best_rate_per_s, limited_by=search.limited_by, steps=steps)

    def _step_profile(self, rate: float) -> LoadProfile:
        ss = self.ctx.sc.sustainable
        name = f"search-{rate:g}"
        repeat = 1
        while name in self._names:  # a confirmation or a bisection back to a rate: each step is its own point
            repeat += 1
            name = f"search-{rate:g} #{repeat}"
        self._names.add(name)
        return LoadProfile(
            name=name, pattern="constant", rate_per_s=rate, duration_s=ss.step_seconds(rate), warmup_s=ss.warmup_s
        )


def search_start(ss: SustainableSearch, capacity: float | None) -> tuple[float, float]:
    """(start rate, bracketing factor) of a trial's search: CAPACITY_START_SHARE of the capacity this trial
    just measured, by CAPACITY_FACTOR (`warm_start`, the default); else the scenario's start rate and factor.
    Nothing from an earlier trial: each trial is an independent measurement."""
    if ss.warm_start and capacity:
        return nice_rate(max(capacity * CAPACITY_START_SHARE, 1.0)), CAPACITY_FACTOR
    return ss.start_rate_per_s, ss.factor


def step_disturbed(p: Point) -> bool:
    """Whether a search step may have measured the run rather than the scorer: something else used the CPU
    or the broker paused (`Interference`), or the load generator fell behind its schedule (a void step).
    Such a step's failure does not confirm a failure on its own (harness/bench/search.py)."""
    return bool(p.interference and p.interference.disturbed) or p.outcome() == VOID


def _ms(v: float | None) -> str:
    return f"{v:>8.2f}" if v is not None else f"{'-':>8}"
