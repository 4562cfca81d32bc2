"""The sustainable-throughput search: which rate to offer next, given what the previous steps did. No I/O.

    search = RateSearch(SearchPolicy(start_rate_per_s=2000, factor=2, max_rate_per_s=64000))
    while (rate := search.next_rate()) is not None:
        search.record(rate, measure_a_step_at(rate))       # "held", "slo", "backlog", ...
    search.best_rate_per_s, search.limited_by, search.steps

1. Bracket: from the start rate, multiply by `factor` while steps hold; the first failure is the upper
   bound. When the very first rate fails, divide by `factor` until one holds (or the rate falls below
   `min_rate_per_s`: no sustainable rate).
2. Confirm: a failure counts only when a repeat of the same rate fails too; a repeat that holds means the
   first step met a hiccup (a broker GC pause, another process), and the rate counts as held.
3. Bisect: between the highest rate that held and the lowest confirmed failure, offer the geometric mean,
   until the two are within `precision` of each other.
4. Disturbed steps (the orchestrator saw interference: CPU steal, another process, a broker GC pause) that
   failed do not confirm a failure on their own: a rate fails when two of its steps failed and at least one
   of them was undisturbed, or when three did. So a rate takes at most three steps, two when nothing
   disturbs it. When all three failed while the machine was busy with something outside the run (CPU
   steal, other processes — `busy`; a broker GC pause is the pipeline's own and does not count), the step
   measured the machine, not the scorer: the search ends "machine busy", and the trial's sustainable rate is
   not booked (it leaves the median; the report says how many trials ended so).
5. Void steps (the load generator fell behind its schedule: the rate was never offered) measured the harness,
   not the scorer: they count for nothing and the rate is offered again; a rate void twice is beyond what
   the load generator can offer here, and the search ends "limited by load generator" there.

`max_steps` bounds the whole search. Like OpenMessaging Benchmark's RateController, the decision is a small
object with no I/O, so tests drive it with scripted outcomes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from harness.results.point import HELD, MACHINE_BUSY, Outcome

VOID: Outcome = "load generator"  # the step never offered its rate (see 5. above)
VOIDS_TO_FAIL = 2


@dataclass(frozen=True)
class SearchPolicy:
    start_rate_per_s: float
    factor: float = 2.0
    max_rate_per_s: float = 64_000.0
    min_rate_per_s: float = 25.0
    precision: float = 0.05  # stop bisecting when failed / held <= 1 + precision
    confirm_failures: bool = True
    max_steps: int = 20

    def __post_init__(self) -> None:
        if self.factor <= 1.0:
            raise ValueError(f"search factor must be > 1, got {self.factor:g}")
        if not 0 < self.start_rate_per_s <= self.max_rate_per_s:
            raise ValueError("search start rate must be > 0 and <= the max rate")
        if self.precision <= 0:
            raise ValueError(f"search precision must be > 0, got {self.precision:g}")


@dataclass
class Step:
    rate_per_s: float
    outcome: Outcome
    role: str  # "bracket", "confirm", "step down", "bisect", "repeat (disturbed)"
    disturbed: bool = False
    counted: bool = True  # False for a disturbed failure (it does not confirm a failure on its own)


def nice_rate(r: float, digits: int = 3) -> float:
    """A readable rate with `digits` significant digits (1000, 1410, 2000, ...)."""
    if r <= 0:
        return r
    return float(f"{r:.{digits}g}")


@dataclass
class RateSearch:
    policy: SearchPolicy
    steps: list[Step] = field(default_factory=list)
    best_rate_per_s: float | None = None  # the highest rate that held
    failed_rate_per_s: float | None = None  # the lowest rate whose failure was confirmed
    limited_by: str = "max rate"
    _next: float | None = None
    _role: str = "bracket"
    _fails: int = 0  # failed steps at the rate on offer
    _clean_fails: int = 0  # of which undisturbed
    _busy_fails: int = 0  # of which the machine was busy with something outside the run
    _voids: int = 0  # void steps at the rate on offer
    _done: bool = False

    def __post_init__(self) -> None:
        self._next = nice_rate(self.policy.start_rate_per_s)

    def start_below(self, rate_per_s: float) -> None:
        """Begin one factor below a rate already known to fail (a load point that broke the SLO)."""
        if not self.steps:
            self._next = nice_rate(min(self._next or rate_per_s, rate_per_s / self.policy.factor))

    @property
    def done(self) -> bool:
        return self._done

    def next_rate(self) -> float | None:
        """The rate to offer next, or None when the search is over."""
        if self._done:
            return None
        if len(self.steps) >= self.policy.max_steps:
            self._finish("max steps" if self.best_rate_per_s is None else self.limited_by)
            return None
        return self._next

    def record(self, rate_per_s: float, outcome: Outcome, disturbed: bool = False, busy: bool = False) -> None:
        """What the step at `rate_per_s` (the rate next_rate() gave) did. `disturbed`: interference of any kind
        (a broker GC pause too); `busy`: interference from outside the run (CPU steal, other processes)."""
        if self._done or self._next is None:
            raise RuntimeError("the search is over: nothing to record")
        if rate_per_s != self._next:
            raise ValueError(f"recorded {rate_per_s:g}/s but the search asked for {self._next:g}/s")
        if outcome == VOID:
            self.steps.append(Step(rate_per_s, outcome, self._role, disturbed=True, counted=False))
            self._voids += 1
            if self._voids >= VOIDS_TO_FAIL:
                self._reset_rate()
                self._failed(rate_per_s, outcome)
            return
        held = outcome == HELD
        disturbed = disturbed or busy
        failed_disturbed = not held and disturbed
        self.steps.append(Step(rate_per_s, outcome, self._role, disturbed=disturbed, counted=not failed_disturbed))
        if held:
            self._reset_rate()
            self._held(rate_per_s)
            return
        self._fails += 1
        self._clean_fails += 0 if disturbed else 1
        self._busy_fails += 1 if busy else 0
        needed = 2 if self.policy.confirm_failures else 1
        confirmed = (self._clean_fails >= 1 and self._fails >= needed) or self._fails >= needed + 1
        if not confirmed:
            self._role = "repeat (disturbed)" if disturbed else "confirm"
            return  # the same rate again
        if self.policy.confirm_failures and self._busy_fails == self._fails:
            self._reset_rate()
            self._finish(MACHINE_BUSY)  # every failure here measured the machine: nothing to book
            return
        self._reset_rate()
        self._failed(rate_per_s, outcome)

    def _reset_rate(self) -> None:
        self._fails = self._clean_fails = self._busy_fails = self._voids = 0

    # ---- transitions -----------------------------------------------------------------------------
    def _held(self, rate: float) -> None:
        self.best_rate_per_s = max(rate, self.best_rate_per_s or 0.0)
        if self.failed_rate_per_s is None:
            if rate >= self.policy.max_rate_per_s:
                self._finish("max rate")
                return
            self._go(nice_rate(min(rate * self.policy.factor, self.policy.max_rate_per_s)), "bracket")
            return
        self._bisect()

    def _failed(self, rate: float, outcome: Outcome) -> None:
        if self.failed_rate_per_s is None or rate < self.failed_rate_per_s:
            self.failed_rate_per_s = rate
            self.limited_by = outcome
        if self.best_rate_per_s is None:
            lower = nice_rate(rate / self.policy.factor)
            if lower < self.policy.min_rate_per_s:
                self._finish(outcome)
                return
            self._go(lower, "step down")
            return
        self._bisect()

    def _bisect(self) -> None:
        lo, hi = self.best_rate_per_s, self.failed_rate_per_s
        assert lo is not None and hi is not None
        if hi / lo <= 1.0 + self.policy.precision:
            self._finish(self.limited_by)
            return
        mid = nice_rate(math.sqrt(lo * hi))
        if not lo < mid < hi:
            self._finish(self.limited_by)
            return
        self._go(mid, "bisect")

    def _go(self, rate: float, role: str) -> None:
        self._next = rate
        self._role = role

    def _finish(self, limited_by: str) -> None:
        self.limited_by = limited_by
        self._done = True
        self._next = None

    @property
    def resolution(self) -> float | None:
        """failed / held - 1 at the end: how close the answer is to the boundary (None when unbracketed)."""
        if self.best_rate_per_s and self.failed_rate_per_s:
            return self.failed_rate_per_s / self.best_rate_per_s - 1.0
        return None
