"""Randomized multiple interleaved trials (RMIT; Abedi & Brecht, ICPE 2017): how `harness run` measures.

Every contestant's processes are started once and kept warm for the whole run. First a warm-up: each
contestant drains backlogs until its CPU per record settles (two windows in a row within `WARM_SETTLED`, a
JVM's JIT included) and its flat-out rate sizes its backlog for the whole run (`rounds.backlog_s` of work).
Then at least `rounds.count` rounds — more while the whole run is projected to end within
`rounds.budget_min` — each measuring every contestant once, in a fresh random order (seeded, recorded in
results.json):

    phase 1  control, A, B, C, control, D, E, F, control: a backlog window per contestant
             (harness/bench/windows.py) and `rounds.controls` windows of the control (the identity scorer: the
             loop with no model) spread evenly through the round; or, with `rounds.pairing: concurrent`, each
             contestant's backlog drained at the same time as one of the control's (the control's own slot
             beside its A/A twin)
    phase 2  load windows per contestant (random order), at each fraction of its flat-out rate, or at
             `rounds.fractions_per_round` of them taking turns round by round

A contestant's cost in a round is its CPU per record over the median of the control's windows in the same
round — seconds apart, so whatever the host does to a core's speed for minutes falls on both; the order is
random, so drift within a round falls on all contestants alike. (The median of the round's control windows
gave ratios as tight as the mean of the two windows just around each contestant, measured on this VM's runs
of 2026-12-03, with a third of the control windows.) harness/results/cost.py adds the rounds up.

A window during which CPU steal or other processes passed the thresholds is measured again once in
the same round, and counted; when the repeat is busy too, the machine is busy throughout and the rest of the
round is not repeated (repeating would only double the run).
"""

from __future__ import annotations

import contextlib
import random
import statistics
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
from rich.progress import Progress

from harness.bench.interference import InterferenceMonitor, Thresholds
from harness.bench.procs import cpu_affinity, cpu_halves, pin
from harness.bench.session import AdapterSession, RunContext, search_start
from harness.bench.windows import EndOffsets, backlog_window, latency_sample, load_window, paired_backlog_window
from harness.errors import HarnessError
from harness.results.cost import (
    FractionResult,
    RoundOrder,
    Window,
    highest_passed,
    judge_fraction,
    summarize,
)
from harness.results.schema import AdapterResult, ScenarioResult
from harness.results.stats import stat
from harness.scenario import AdapterSpec, LoadProfile

CONTROL = "identity"  # the display name of the contestant every ratio is taken to
AA_TWIN = "identity (A/A)"
WARM_SETTLED = 0.15  # the warm-up ends when two windows in a row cost within this share of each other
WARM_MAX_WINDOWS = 8
WARM_MAX_S = 15.0  # ... or after this long for one contestant
WARM_BACKLOG_S = 0.5  # a warm-up window's backlog lasts about this long (it only has to settle the JIT and size)
# ... and not before this many records have been scored: a JVM compiles a method after ~10,000 calls; two short
# windows of a cold PMML evaluator (185 and 168 µs a record) had "settled" while the warm cost was 35 µs
WARM_MIN_RECORDS = 20_000


def round_orders(n: int, rounds: int, seed: int) -> list[list[int]]:
    """A fresh uniformly random order of the n contestants for each round (RMIT), reproducible from `seed`
    (the first k orders do not depend on how many rounds are asked for)."""
    rng = random.Random(seed)
    return [rng.sample(range(n), n) for _ in range(rounds)]


def control_slots(n: int, k: int) -> list[int]:
    """Where a round's k control windows go among its n contestants' windows: before the contestant at each
    returned position (n: after the last), spread evenly, the first and the last among them."""
    if n == 0:
        return [0]
    return sorted({round(i * n / (k - 1)) for i in range(k)}) if k > 1 else [0]


def round_reference(controls: list[float], identities: dict[str, float], name: str, every: bool) -> float | None:
    """What a contestant's backlog window in a round is divided by: the median of the round's control windows
    (`controls`, CPU µs per record), with `every` also of the identity scorer's other windows in that round —
    the control's own contestant window and its A/A twin's (`identities`, by contestant) — except the
    contestant's own, so that the A/A pair stays a test. None when the round has none."""
    ref = controls + ([c for n, c in identities.items() if n != name] if every else [])
    return statistics.median(ref) if ref else None


def fractions_for(fractions: list[float], per_round: int | None, contestant: int, r: int, seed: int) -> list[float]:
    """The load fractions one contestant is measured at in round r (1-based), in a random order: every
    fraction, or `per_round` of them taking turns — each contestant's own random rotation, so that every
    fraction is measured in as many rounds as the others (within one)."""
    if per_round is None or per_round >= len(fractions):
        return random.Random(seed * 7919 + contestant * 101 + r).sample(fractions, len(fractions))
    rotation = random.Random(seed * 7919 + contestant).sample(fractions, len(fractions))
    start = ((r - 1) * per_round) % len(fractions)
    return [rotation[(start + i) % len(fractions)] for i in range(per_round)]


@dataclass
class Entrant:
    """One contestant of a run: its spec, its result, its warm session, and what the rounds learnt of it."""

    spec: AdapterSpec
    index: int
    result: AdapterResult
    session: AdapterSession | None = None
    flat_out: float | None = None  # the median flat-out rate measured so far (sizes the loads)
    n: int = 0  # records per backlog window, fixed by the warm-up
    rates: list[float] = field(default_factory=list)  # flat-out rates of the backlog windows
    latencies: dict[float, list[np.ndarray]] = field(default_factory=dict)  # fraction -> measured latencies
    offered: dict[float, list[float]] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.spec.display

    def s(self) -> AdapterSession:
        assert self.session is not None, f"{self.name} has no session"
        return self.session


@dataclass
class Clock:
    """Windows left and how long each kind has taken so far: the time left, for the progress lines."""

    left: dict[str, int]
    took: dict[str, list[float]] = field(default_factory=lambda: {"backlog": [], "load": []})
    guess: dict[str, float] = field(default_factory=lambda: {"backlog": 4.0, "load": 2.5})

    def done(self, kind: str, seconds: float) -> None:
        self.left[kind] = max(0, self.left[kind] - 1)
        self.took[kind].append(seconds)

    def seconds_left(self) -> float:
        total = 0.0
        for kind, n in self.left.items():
            seen = self.took[kind]
            total += n * (sum(seen) / len(seen) if seen else self.guess[kind])
        return total


def _mmss(seconds: float) -> str:
    m, s = divmod(int(round(seconds)), 60)
    return f"{m}m{s:02d}s"


class RoundRunner:
    """Runs the rounds of one scenario on warm sessions and fills each contestant's AdapterResult."""

    def __init__(
        self,
        ctx: RunContext,
        scenario: ScenarioResult,
        entrants: list[Entrant],
        progress: Progress,
        save: Callable[[], None],
        load_cap_per_s: float | None = None,
        started: float | None = None,
    ) -> None:
        self.ctx = ctx
        self.plan = ctx.sc.rounds
        self.scenario = scenario
        self.entrants = entrants
        self.progress = progress
        self.save = save
        self.load_cap = load_cap_per_s
        self.started = time.monotonic() if started is None else started  # the run's start (for the budget)
        self.offsets: dict[str, EndOffsets] = {}
        th = ctx.sc.interference
        self.monitor = InterferenceMonitor(
            ctx.broker_gc_logs, self._run_pids, Thresholds(th.gc_pause_ms, th.other_cpu_pct, th.steal_pct)
        )
        n = len(entrants)
        # the warm-up takes about two windows per contestant; each round a window per contestant and the
        # control's windows
        controls = len(control_slots(n, self.plan.controls))
        self.backlogs_per_round = n if self.plan.pairing == "concurrent" else n + controls
        f = len(self.plan.fractions)
        self.loads_per_round = n * (min(f, self.plan.fractions_per_round) if self.plan.fractions_per_round else f)
        self.planned = self.plan.count
        self.clock = Clock(
            {"backlog": 2 * n + self.planned * self.backlogs_per_round, "load": self.loads_per_round * self.planned}
        )

    # ---- the processes of the run ----------------------------------------------------------------------
    def _run_pids(self) -> list[int]:
        """Every process of the run (all contestants, their generators, the broker or each node of the
        cluster): not 'other processes'."""
        pids: list[int] = []
        for e in self.entrants:
            if e.session is not None:
                pids += e.session.deployment.pids()
                gen = e.session.generator
                if gen is not None and gen.pid:
                    pids.append(gen.pid)
        pids += self.ctx.broker_pids  # the broker's, or every node's of the embedded cluster
        return pids

    def start(self, stack: contextlib.ExitStack) -> None:
        """Start every contestant's deployment (in parallel, a few at a time); a contestant that fails to
        start is reported and left out of the rounds."""

        def open_one(e: Entrant) -> None:
            s = AdapterSession(self.ctx, e.spec, e.index, self.progress)
            s.__enter__()
            e.session = s

        t0 = time.monotonic()
        # The pool's threads must outlive the processes they start: a child is started with PR_SET_PDEATHSIG
        # (harness/bench/procs.py), which fires when the *thread* that forked it ends. So the pool is shut down
        # last, after every session has stopped its processes (the stack unwinds in reverse order).
        pool = ThreadPoolExecutor(max_workers=3, thread_name_prefix="start")
        stack.callback(pool.shutdown)
        futures = {pool.submit(open_one, e): e for e in self.entrants}
        for fut in futures:
            fut.exception()  # waits
        for fut, e in futures.items():
            if e.session is not None:
                stack.callback(e.session.__exit__)
            exc = fut.exception()
            if isinstance(exc, HarnessError):
                e.result.error = str(exc)
                self.ctx.log(f"  {e.name} did not start: {exc}")
            elif exc is not None:
                raise exc
        live = [e for e in self.entrants if e.session is not None and not e.result.error]
        for e in live:
            s = e.s()
            e.result.family, e.result.client = s.family, s.deployment.client
            if s.measurer is not None:
                s.measurer.pause()
            s.monitor = self.monitor
            self.offsets[e.name] = EndOffsets(self.ctx.target, [s.topics.output, s.topics.dlq])
            stack.callback(self.offsets[e.name].close)
        self.ctx.log(f"{len(live)} contestants started in {time.monotonic() - t0:.0f} s; kept warm for every round")
        if self.plan.pin_cpus:
            self._pin(stack, live)

    def _pin(self, stack: contextlib.ExitStack, live: list[Entrant]) -> None:
        """`rounds.pin_cpus`: the broker on one half of the CPUs, the contestants on the other, so that a
        contestant and the broker do not take turns on one core's caches; the broker's own CPUs are given back
        when the run ends (the embedded broker outlives it). Recorded in the round settings as `pinned`."""
        halves, broker = cpu_halves(), list(self.ctx.broker_pids)
        if halves is None or not broker:
            why = "fewer than 2 CPUs" if halves is None else "the broker is not this machine's embedded one"
            self.ctx.log(f"CPUs not pinned: {why}")
            return
        ours, theirs = halves
        before = {pid: cpus for pid in broker if (cpus := cpu_affinity(pid)) is not None}
        for pid, cpus in before.items():
            stack.callback(pin, [pid], cpus)
        pin(broker, theirs)
        contestants = [pid for e in live for side in e.s().deployment.process_tree() for pid in side]
        pin(contestants, ours)
        self.scenario.round_settings["pinned"] = {"broker": sorted(theirs), "contestants": sorted(ours)}
        self.ctx.log(f"CPUs pinned: the broker on {sorted(theirs)}, the contestants' processes on {sorted(ours)}")

    def live(self) -> list[Entrant]:
        return [e for e in self.entrants if e.session is not None and not e.result.error]

    # ---- the rounds --------------------------------------------------------------------------------------
    def inprocess(self) -> None:
        """Each strategy's in-process micro-benchmark (the model alone, no Kafka), once."""
        for e in self.live():
            if e.name != AA_TWIN:
                e.result.inprocess = e.s().inprocess()
            rate = e.result.inprocess.batch_rows_per_s if e.result.inprocess else None
            # the first backlog: about a second of the loop at the model's in-process speed (the loop
            # itself costs about as much as a fast model), or a guess for the identity and the apps
            e.flat_out = min(rate / 3, 50_000.0) if rate else (50_000.0 if e.spec.name == "identity" else 2_000.0)

    def control(self) -> Entrant | None:
        return next((e for e in self.live() if e.name == CONTROL), None)

    def _size(self, e: Entrant, seconds: float | None = None) -> int:
        """Records for a backlog of `seconds` (default `rounds.backlog_s`) at the contestant's flat-out rate."""
        plan = self.plan
        rate = e.flat_out or 2_000.0
        s = plan.backlog_s if seconds is None else seconds
        return int(min(plan.backlog_max_records, max(plan.backlog_min_records, rate * s)))

    FINISH_S = 30.0  # what the run takes after its last round: the summaries, the report, stopping the processes

    def another_round(self, r: int, took: list[float]) -> bool:
        """Whether round r (1-based) runs: the first `rounds.count` always; then, with `rounds.budget_min`, while
        the run is projected to end within it (a round as long as the longest so far), up to `rounds.max_count`."""
        plan = self.plan
        if r <= plan.count:
            return True
        if plan.budget_min is None or r > plan.max_count or not took:
            return False
        end = time.monotonic() - self.started + max(took) + self.FINISH_S
        if end > plan.budget_min * 60:
            return False
        self.planned = max(self.planned, r)
        self.clock.left["backlog"] += self.backlogs_per_round
        self.clock.left["load"] += self.loads_per_round
        return True

    def run(self) -> None:
        plan = self.plan
        self.warm_up()
        self.calibrate()
        load_rng = random.Random(plan.seed + 1)
        took: list[float] = []
        for r, order in enumerate(round_orders(len(self.entrants), plan.max_count, plan.seed), start=1):
            if not self.another_round(r, took):
                break
            t0 = time.monotonic()
            field_ = [self.entrants[i] for i in order if self.entrants[i] in self.live()]
            ro = RoundOrder(round=r, backlog_order=[e.name for e in field_])
            self.scenario.round_orders.append(ro)
            if plan.pairing == "concurrent":
                self._paired_phase(r, field_)
            else:
                self._backlog_phase(r, field_)
            # the A/A twin is there for the cost tiers; its latency would repeat the control's
            loaded = [e for e in field_ if e.name != AA_TWIN]
            load_order = load_rng.sample(loaded, len(loaded))
            ro.load_order = [e.name for e in load_order]
            for pos, e in enumerate(load_order):
                for f in fractions_for(plan.fractions, plan.fractions_per_round, e.index, r, plan.seed):
                    self._load(e, r, pos, f)
            ro.seconds = round(time.monotonic() - t0, 1)
            took.append(ro.seconds)
            self.save()

    def warm_up(self) -> None:
        """Round 0: every contestant (random order) drains backlogs until its CPU per record settles; its
        flat-out rate then fixes its backlog size for every counted round."""
        t0 = time.monotonic()
        field_ = random.Random(self.plan.seed - 1).sample(self.live(), len(self.live()))
        self.scenario.round_orders.append(RoundOrder(round=0, warmup=True, backlog_order=[e.name for e in field_]))
        for pos, e in enumerate(field_):
            started, prev, scored = time.monotonic(), None, 0
            for k in range(WARM_MAX_WINDOWS):
                w = self._measure_backlog(e, 0, pos, self._size(e, WARM_BACKLOG_S), f"w{k}")
                scored += w.scored
                w.warmup = True
                e.result.windows.append(w)
                if w.rows_per_s and not w.problems:
                    e.flat_out = w.rows_per_s
                self._log(e, 0, w)
                cost = w.cpu_us_per_record if not w.problems else None
                settled = prev is not None and cost is not None and abs(cost / prev - 1.0) <= WARM_SETTLED
                settled = settled and scored >= WARM_MIN_RECORDS
                if settled or time.monotonic() - started > WARM_MAX_S:
                    break
                prev = cost
            e.n = self._size(e)
            e.rates = [e.flat_out] if e.flat_out else []
        self.scenario.round_orders[0].seconds = round(time.monotonic() - t0, 1)
        self.save()

    def _control_window(self, r: int, slot: int, repeats_allowed: bool) -> tuple[float | None, bool]:
        """One backlog window of the control among the contestants' (measured again once when busy); its CPU
        per record, and whether repeats are still allowed this round."""
        c = self.control()
        if c is None:
            return None, repeats_allowed
        w, repeats_allowed = self._backlog_once_more_if_busy(c, r, slot, f"c{slot}", repeats_allowed, control=True)
        c.result.windows.append(w)
        self._log(c, r, w, "control")
        return (w.cpu_us_per_record if not w.problems else None), repeats_allowed

    def _backlog_once_more_if_busy(
        self, e: Entrant, r: int, pos: int, suffix: str, repeats_allowed: bool, control: bool = False
    ) -> tuple[Window, bool]:
        """One backlog window of `e`; when it was busy and repeats are still allowed this round, it is kept as
        superseded and measured again once. The window that counts (not yet appended), and whether repeats
        are still allowed (a busy repeat means the machine is busy throughout: no more this round)."""
        w = self._measure_backlog(e, r, pos, e.n or self._size(e), suffix)
        w.control = control
        if not (w.busy and repeats_allowed):
            return w, repeats_allowed
        w.superseded = True
        e.result.windows.append(w)
        self._log(e, r, w, "control, busy: measuring again" if control else "busy: measuring again")
        w = self._measure_backlog(e, r, pos, e.n or self._size(e), suffix + "b")
        w.control, w.repeat = control, True
        return w, not w.busy

    def _backlog_phase(self, r: int, field_: list[Entrant]) -> None:
        """control, A, B, ..., control, ..., control (`control_slots`): a window per contestant and
        `rounds.controls` of the control; each contestant's ratio is to the median of the round's control
        windows, and with `rounds.reference: every-identity-window` of the identity scorers' own windows too
        (`round_reference`)."""
        slots = control_slots(len(field_), self.plan.controls)
        controls: list[float] = []
        measured: list[Window] = []
        repeats_allowed = True
        for pos in range(len(field_) + 1):
            if pos in slots:
                cost, repeats_allowed = self._control_window(r, pos, repeats_allowed)
                if cost:
                    controls.append(cost)
            if pos == len(field_):
                break
            e = field_[pos]
            w, repeats_allowed = self._backlog_once_more_if_busy(e, r, pos, "", repeats_allowed)
            e.result.windows.append(w)
            measured.append(w)
            if w.rows_per_s and not w.problems:
                e.rates.append(w.rows_per_s)
                e.flat_out = statistics.median(e.rates)
            self._log(e, r, w)
        identities = {
            e.name: w.cpu_us_per_record
            for e, w in zip(field_, measured, strict=True)
            if e.name in (CONTROL, AA_TWIN) and w.cpu_us_per_record and not w.problems
        }
        every = self.plan.reference == "every-identity-window"
        for e, w in zip(field_, measured, strict=True):
            w.control_us_per_record = round_reference(controls, identities, e.name, every)

    def _paired_phase(self, r: int, field_: list[Entrant]) -> None:
        """Each contestant drains its backlog at the same time as the control (harness/bench/windows.py
        `paired_backlog_window`); the control's own slot pairs it with its A/A twin. A busy pair is measured
        again once. The flat-out rates that size the loads stay the warm-up's (measured alone): a paired drain
        shares the cores."""
        c = self.control()
        twin = next((e for e in self.live() if e.name == AA_TWIN), None)
        repeats_allowed = True
        for pos, e in enumerate(field_):
            partner = twin if e is c else c
            if partner is None:  # the control without a twin: measured alone, its ratio left out
                w = self._measure_backlog(e, r, pos, e.n or self._size(e), "")
                e.result.windows.append(w)
                self._log(e, r, w)
                continue
            w, wc = self._measure_pair(e, partner, r, pos, "")
            if w.busy and repeats_allowed:
                w.superseded = wc.superseded = True
                e.result.windows.append(w)
                partner.result.windows.append(wc)
                self._log(e, r, w, "busy: measuring again")
                w, wc = self._measure_pair(e, partner, r, pos, "b")
                w.repeat = wc.repeat = True
                repeats_allowed = not w.busy
            e.result.windows.append(w)
            partner.result.windows.append(wc)
            self._log(e, r, w, f"with {partner.name}: {wc.cpu_us_per_record or 0:.2f} µs/record")

    def _measure_pair(self, e: Entrant, partner: Entrant, r: int, pos: int, suffix: str) -> tuple[Window, Window]:
        t0 = time.monotonic()
        n = e.n or self._size(e)
        # the partner's backlog lasts about as long as the contestant's at their flat-out rates
        share = n / e.flat_out if e.flat_out else self.plan.backlog_s
        plan = self.plan
        n_partner = int(min(plan.backlog_max_records, max(plan.backlog_min_records, (partner.flat_out or 0) * share)))
        prefixes = (f"{e.index}r{r}p{suffix}", f"{partner.index}r{r}q{e.index}{suffix}")
        try:
            w, wc = paired_backlog_window(
                e.s(),
                partner.s(),
                self.monitor,
                (self.offsets[e.name], self.offsets[partner.name]),
                prefixes,
                (n, n_partner),
                r,
                pos,
            )
        except (HarnessError, RuntimeError) as exc:
            w = Window(round=r, position=pos, kind="backlog", records=n, problems=[f"failed: {exc}"])
            wc = Window(round=r, position=pos, kind="backlog", records=n_partner, control=True, problems=w.problems)
        if suffix != "b":
            self.clock.done("backlog", time.monotonic() - t0)
        return w, wc

    def _label(self, r: int) -> str:
        more = "+" if self.plan.budget_min is not None and self.planned < self.plan.max_count else ""
        return "warm-up" if r == 0 else f"round {r}/{self.planned}{more}"

    def seconds_left(self) -> float:
        """The windows planned so far at the pace seen; with a budget, at least what is left of it (rounds are
        added while they fit)."""
        left = self.clock.seconds_left()
        if self.plan.budget_min is not None:
            left = max(left, self.started + self.plan.budget_min * 60 - time.monotonic())
        return left

    def _measure_backlog(self, e: Entrant, r: int, pos: int, n: int, suffix: str) -> Window:
        t0 = time.monotonic()
        prefix = f"{e.index}r{r}b{suffix}"
        try:
            w = backlog_window(e.s(), self.monitor, self.offsets[e.name], prefix, n, r, pos)
        except (HarnessError, RuntimeError) as exc:
            w = Window(round=r, position=pos, kind="backlog", records=n, problems=[f"failed: {exc}"])
        if not suffix.endswith("b"):  # a repeat ("b", "c4b") is extra time the clock did not plan for
            self.clock.done("backlog", time.monotonic() - t0)
        return w

    def calibrate(self) -> None:
        """The whole pipeline at full stretch, once: the control under open-loop load at the harness's own
        ceiling. What it carries end to end (generator → broker → loop → broker → measurer, all on these cores)
        is the most any strategy can be offered here; a strategy whose flat-out rate alone is higher is loaded
        at fractions of this instead (a fraction of a rate the pipeline cannot carry only measures a queue)."""
        c = self.control()
        if c is None or self.load_cap is None:
            return
        plan = self.plan
        profile = LoadProfile(
            name="pipeline",
            pattern="poisson",
            rate_per_s=round(self.load_cap, 1),
            duration_s=1.0,
            warmup_s=0.2,
            seed=plan.seed * 1000 + 999,
        )
        t0 = time.monotonic()
        try:
            w, _ = load_window(c.s(), f"{c.index}cal", 1.0, self.load_cap, profile, 0, 0)
        except (HarnessError, RuntimeError) as exc:
            self.ctx.log(f"  the pipeline's ceiling: not measured ({exc})")
            return
        finally:
            m = c.s().measurer
            if m is not None:
                m.pause()
        # every result in, from the first send to the drain's end (the window's set-up counts against it: a
        # conservative figure)
        carried = (w.scored or 0) / max(time.monotonic() - t0, 1e-3)
        if carried > 0:
            offered = self.load_cap
            self.load_cap = min(self.load_cap, carried)
            if self.scenario.ceilings is not None:
                self.scenario.ceilings.pipeline_per_s = round(carried, 1)
            self.ctx.log(
                f"  the pipeline end to end (identity offered {offered:,.0f}/s): it carried {carried:,.0f}/s; "
                "load windows are fractions of at most this"
            )

    def _load(self, e: Entrant, r: int, pos: int, fraction: float) -> None:
        plan = self.plan
        base = e.flat_out or 0.0
        # a fraction of what this strategy can do in this pipeline: its own flat-out rate, or the pipeline's
        # end-to-end ceiling when that is lower (the harness's own processes share the cores)
        capped = self.load_cap is not None and base > self.load_cap
        if capped and self.load_cap is not None:
            base = self.load_cap
        rate = fraction * base
        t0 = time.monotonic()
        if rate < 1.0:
            self.clock.done("load", 0.0)
            return
        profile = LoadProfile(
            name=f"{fraction:.0%} r{r}",
            pattern="poisson",
            rate_per_s=round(rate, 1),
            duration_s=plan.load_window_s,
            warmup_s=plan.load_warmup_s,
            seed=plan.seed * 1000 + r * 10 + int(fraction * 100),
        )
        prefix = f"{e.index}r{r}f{int(fraction * 100)}"
        try:
            w, lat = load_window(e.s(), prefix, fraction, rate, profile, r, pos)
        except (HarnessError, RuntimeError) as exc:
            w, lat = Window(round=r, position=pos, kind="load", fraction=fraction, problems=[f"failed: {exc}"]), None
        finally:
            m = e.s().measurer
            if m is not None:
                m.pause()
        w.capped = capped
        e.result.windows.append(w)
        if w.counts and lat is not None:
            e.latencies.setdefault(fraction, []).append(lat)
            e.offered.setdefault(fraction, []).append(w.offered_per_s or rate)
        self.clock.done("load", time.monotonic() - t0)
        self._log(e, r, w, "of the pipeline's ceiling" if capped else "")

    def _log(self, e: Entrant, r: int, w: Window, note: str = "") -> None:
        what = (
            f"backlog {w.records:,}: {w.cpu_us_per_record or 0:.2f} µs/record, {w.rows_per_s or 0:,.0f}/s flat out"
            if w.kind == "backlog"
            else f"load {w.fraction:.0%} ({w.offered_per_s or 0:,.0f}/s): p99 "
            + (f"{w.latency.p99_ms:.1f} ms" if w.latency and w.latency.p99_ms is not None else "-")
            + f", {w.cpu_us_per_record or 0:.2f} µs/record"
        )
        flags = [*w.problems, *(["busy: " + "; ".join(w.interference.reasons)] if w.busy and w.interference else [])]
        extra = f"  [{'; '.join(flags)}]" if flags else ""
        extra += f"  ({note})" if note else ""
        self.ctx.log(
            f"  {self._label(r)} · {e.name:<16} {what}{extra} · ~{_mmss(self.seconds_left())} left",
        )

    # ---- `--thorough`: this machine's saturation point ----------------------------------------------------
    def saturation(self) -> None:
        """The bisecting search (harness/bench/search.py) once per contestant: the highest constant rate whose
        p99 held the SLO on this machine. A machine figure, not a ranking one."""
        ss = self.ctx.sc.sustainable
        for e in random.Random(self.plan.seed + 2).sample(self.live(), len(self.live())):
            s = e.s()
            if s.measurer is not None:
                s.measurer.resume()
            start, _ = search_start(ss, e.flat_out)
            self.ctx.log(f"{e.name}: searching this machine's saturation point from {start:,.0f}/s")
            try:
                e.result.saturation = s.search([], f"{e.index}sat", e.flat_out)
            except (HarnessError, RuntimeError) as exc:
                self.ctx.log(f"  {e.name}: search failed: {exc}")
            finally:
                if s.measurer is not None:
                    s.measurer.pause()
            self.save()

    # ---- what the windows add up to ------------------------------------------------------------------------
    def finish(self) -> None:
        conf = self.plan.confidence
        for e in self.entrants:
            if e.result.error:
                continue
            a = e.result
            a.cost = summarize(a.windows, conf)
            if e.session is not None:
                rss, server_rss = e.session.deployment.peak_rss_mib()
                a.cost.peak_rss_mib = round(rss, 1) if rss == rss else None  # NaN: the process is gone
                a.cost.server_peak_rss_mib = round(server_rss, 1) if server_rss and server_rss == server_rss else None
            a.fractions = []
            for f in self.plan.fractions if e.name != AA_TWIN else []:
                lats = e.latencies.get(f, [])
                pooled = np.concatenate(lats) if lats else np.empty(0)
                fr = FractionResult(
                    fraction=f,
                    offered_per_s=stat(e.offered.get(f, []), conf),
                    latency=latency_sample(pooled, self.ctx.sc.slo.p99_ms),
                    windows=sum(1 for w in a.windows if w.kind == "load" and w.fraction == f),
                    invalid_windows=sum(1 for w in a.windows if w.kind == "load" and w.fraction == f and w.problems),
                )
                fr.passed, fr.min_samples = judge_fraction(fr.latency)
                a.fractions.append(fr)
            best = highest_passed(a.fractions)
            if best is not None:
                a.cost.highest_fraction_passed = best.fraction
                a.cost.rate_at_highest_fraction = best.offered_per_s.median if best.offered_per_s else None
        self.save()
