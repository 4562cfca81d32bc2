"""The rate search without a broker: scripted outcomes in, the next rate and the answer out."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from harness.bench.search import RateSearch, SearchPolicy, nice_rate
from harness.results.point import MACHINE_BUSY, Outcome


def drive(search: RateSearch, outcome: Callable[[float, int], Outcome | tuple[Outcome, bool]]) -> list[float]:
    """Run the search to the end; `outcome(rate, step_index)` scripts each step. Returns the rates offered."""
    offered = []
    while (rate := search.next_rate()) is not None:
        got = outcome(rate, len(offered))
        offered.append(rate)
        if isinstance(got, tuple):
            search.record(rate, got[0], disturbed=got[1])
        else:
            search.record(rate, got)
        assert len(offered) < 100, "the search does not end"
    return offered


def capacity(limit: float, reason: Outcome = "slo") -> Callable[[float, int], Outcome]:
    return lambda rate, _i: "held" if rate <= limit else reason


def test_brackets_then_bisects_to_within_the_precision() -> None:
    s = RateSearch(SearchPolicy(start_rate_per_s=2000, factor=2, max_rate_per_s=64000, precision=0.05))
    offered = drive(s, capacity(23_000))
    assert offered[:5] == [2000, 4000, 8000, 16000, 32000]  # doubling until the first failure
    assert offered[5] == 32000  # the failure is confirmed by a repeat before it counts
    assert s.best_rate_per_s is not None and s.failed_rate_per_s is not None
    assert s.best_rate_per_s <= 23_000 < s.failed_rate_per_s
    assert s.failed_rate_per_s / s.best_rate_per_s <= 1.05
    assert s.limited_by == "slo"
    assert {st.role for st in s.steps} >= {"bracket", "confirm", "bisect"}
    assert s.resolution is not None and s.resolution <= 0.05


def test_one_hiccup_does_not_end_the_bracket() -> None:
    """A single failed step below capacity (a GC pause) holds on its repeat and the search goes on up."""
    hiccup_at = 8000.0
    seen = {"hiccup": False}

    def outcome(rate: float, i: int) -> Outcome:
        if rate == hiccup_at and not seen["hiccup"]:
            seen["hiccup"] = True
            return "slo"
        return "held" if rate <= 23_000 else "slo"

    s = RateSearch(SearchPolicy(start_rate_per_s=2000, factor=2, max_rate_per_s=64000))
    offered = drive(s, outcome)
    assert offered.count(hiccup_at) == 2
    assert s.best_rate_per_s is not None and s.best_rate_per_s > 16_000


def test_a_failure_counts_only_when_confirmed() -> None:
    s = RateSearch(SearchPolicy(start_rate_per_s=1000, factor=2, max_rate_per_s=8000))
    assert s.next_rate() == 1000
    s.record(1000, "held")
    assert s.next_rate() == 2000
    s.record(2000, "backlog")
    assert s.failed_rate_per_s is None and s.next_rate() == 2000  # repeat
    s.record(2000, "backlog")
    assert s.failed_rate_per_s == 2000 and s.limited_by == "backlog"
    assert s.next_rate() == nice_rate((1000 * 2000) ** 0.5)


def test_without_confirmation_the_first_failure_counts() -> None:
    s = RateSearch(SearchPolicy(start_rate_per_s=1000, factor=2, max_rate_per_s=8000, confirm_failures=False))
    offered = drive(s, capacity(3000))
    assert offered.count(4000) == 1


def test_steps_down_when_the_first_rate_already_fails() -> None:
    s = RateSearch(SearchPolicy(start_rate_per_s=2000, factor=2, max_rate_per_s=64000))
    offered = drive(s, capacity(300))
    assert offered[:4] == [2000, 2000, 1000, 1000]  # each failure confirmed, then one factor down
    assert s.best_rate_per_s is not None and 300 / 1.05 <= s.best_rate_per_s <= 300
    assert [st.role for st in s.steps if st.rate_per_s == 250][0] == "step down"


def test_no_rate_holds_down_to_the_minimum() -> None:
    s = RateSearch(SearchPolicy(start_rate_per_s=200, factor=2, max_rate_per_s=64000, min_rate_per_s=25))
    offered = drive(s, capacity(0, reason="slo"))
    assert s.best_rate_per_s is None and s.limited_by == "slo"
    assert min(offered) >= 25 and s.done


def test_everything_holds_up_to_the_max_rate() -> None:
    s = RateSearch(SearchPolicy(start_rate_per_s=2000, factor=2, max_rate_per_s=10000))
    offered = drive(s, capacity(1e9))
    assert offered == [2000, 4000, 8000, 10000]  # the last step is capped at the max rate
    assert s.best_rate_per_s == 10000 and s.limited_by == "max rate"


def test_the_load_generator_limit_is_named() -> None:
    s = RateSearch(SearchPolicy(start_rate_per_s=2000, factor=2, max_rate_per_s=64000))
    drive(s, capacity(20_000, reason="load generator"))
    assert s.limited_by == "load generator"


def test_a_disturbed_failure_is_run_again_without_counting() -> None:
    calls: list[float] = []

    def outcome(rate: float, i: int) -> tuple[Outcome, bool]:
        calls.append(rate)
        if rate == 4000 and calls.count(4000) == 1:
            return "slo", True  # interference seen during this step
        return ("held" if rate <= 5000 else "slo"), False

    s = RateSearch(SearchPolicy(start_rate_per_s=2000, factor=2, max_rate_per_s=64000))
    drive(s, outcome)
    disturbed = [st for st in s.steps if st.disturbed]
    assert len(disturbed) == 1 and not disturbed[0].counted
    assert s.best_rate_per_s is not None and s.best_rate_per_s >= 4000


def test_max_steps_bounds_the_search() -> None:
    s = RateSearch(SearchPolicy(start_rate_per_s=1000, factor=2, max_rate_per_s=1e9, max_steps=5))
    offered = drive(s, capacity(1e12))
    assert len(offered) == 5 and s.done


def test_start_below_a_known_failure() -> None:
    s = RateSearch(SearchPolicy(start_rate_per_s=2000, factor=2, max_rate_per_s=64000))
    s.start_below(500)  # a fixed load point at 500/s already broke the SLO
    assert s.next_rate() == 250


def test_recording_a_rate_that_was_not_asked_for_is_refused() -> None:
    s = RateSearch(SearchPolicy(start_rate_per_s=2000))
    with pytest.raises(ValueError, match="asked for 2000"):
        s.record(3000, "held")
    drive(s, capacity(5000))
    with pytest.raises(RuntimeError, match="over"):
        s.record(1000, "held")


def test_bad_policies_are_refused() -> None:
    with pytest.raises(ValueError, match="factor"):
        SearchPolicy(start_rate_per_s=100, factor=1.0)
    with pytest.raises(ValueError, match="start rate"):
        SearchPolicy(start_rate_per_s=0)


def test_a_rate_takes_at_most_three_steps_however_busy_the_machine() -> None:
    """Two failures confirm a rate when one was undisturbed; three when all were (busy throughout)."""
    s = RateSearch(SearchPolicy(start_rate_per_s=1000, factor=2, max_rate_per_s=64000))
    offered = drive(s, lambda rate, i: ("held", False) if rate <= 1500 else ("slo", True))
    assert offered.count(2000) == 3 and s.failed_rate_per_s is not None
    s2 = RateSearch(SearchPolicy(start_rate_per_s=1000, factor=2, max_rate_per_s=64000))
    calls: list[float] = []

    def mixed(rate: float, i: int) -> tuple[Outcome, bool]:
        calls.append(rate)
        if rate <= 1500:
            return "held", False
        return "slo", calls.count(rate) == 1  # the first failure at a rate disturbed, the second not

    drive(s2, mixed)
    assert calls.count(2000) == 2


def test_three_failures_on_a_busy_machine_end_the_search_unbooked() -> None:
    """Every failure at a rate with CPU steal or other processes in the step: the search measured the machine,
    and it ends "machine busy" rather than booking the machine's failure as the strategy's."""
    s = RateSearch(SearchPolicy(start_rate_per_s=1000, factor=2, max_rate_per_s=64000))
    for rate, outcome, busy in [(1000, "held", False), (2000, "slo", True), (2000, "slo", True)]:
        assert s.next_rate() == rate
        s.record(rate, outcome, busy=busy)
    assert not s.done  # two busy failures confirm nothing
    s.record(2000, "slo", busy=True)
    assert s.done and s.limited_by == MACHINE_BUSY and s.failed_rate_per_s is None
    assert [st.counted for st in s.steps] == [True, False, False, False]

    # a broker GC pause is the pipeline's own: three failures with one of them GC-disturbed count as a failure
    s2 = RateSearch(SearchPolicy(start_rate_per_s=1000, factor=2, max_rate_per_s=64000))
    s2.record(1000, "held")
    s2.record(2000, "slo", busy=True)
    s2.record(2000, "slo", disturbed=True)
    s2.record(2000, "slo", busy=True)
    assert not s2.done and s2.failed_rate_per_s == 2000 and s2.limited_by == "slo"


def test_a_step_whose_load_generator_fell_behind_is_disturbed_not_the_scorers_failure() -> None:
    from harness.bench.session import step_disturbed
    from harness.results.point import Point
    from tests.test_report import _point

    clean = Point.model_validate(_point("search-10800", 10800.0, 9.0, 61.0, kind="search") | {"slo_p99_ms": 50.0})
    assert clean.outcome() == "slo" and not step_disturbed(clean)  # the scorer's own failure counts
    late = _point("search-10800", 10800.0, 9.0, 148.0, kind="search") | {"slo_p99_ms": 50.0}
    next(c for c in late["checks"] if c["name"] == "schedule kept")["passed"] = False
    behind = Point.model_validate(late)
    assert behind.outcome() == "load generator" and step_disturbed(behind)
    # and so the search offers the rate again, counting nothing: a failure then still needs its repeat
    search = RateSearch(SearchPolicy(start_rate_per_s=10800, factor=1.25))
    search.record(10800, behind.outcome(), disturbed=step_disturbed(behind))
    search.record(10800, "slo", disturbed=False)
    assert search.next_rate() == 10800 and search.failed_rate_per_s is None
    search.record(10800, "held")
    assert search.best_rate_per_s == 10800 and [s.counted for s in search.steps] == [False, True, True]


def test_a_rate_the_load_generator_cannot_offer_twice_ends_the_bracket_there() -> None:
    search = RateSearch(SearchPolicy(start_rate_per_s=1000, factor=2))
    search.record(1000, "held")
    search.record(2000, "load generator", disturbed=True)
    assert search.next_rate() == 2000 and search.steps[-1].role == "bracket"
    search.record(2000, "load generator", disturbed=True)
    assert search.failed_rate_per_s == 2000 and search.limited_by == "load generator"
    assert search.next_rate() == nice_rate((1000 * 2000) ** 0.5)  # bisects below it


def test_a_search_starts_from_the_flat_out_rate_the_rounds_measured() -> None:
    from harness.bench.session import CAPACITY_FACTOR, search_start
    from harness.scenario import SustainableSearch

    ss = SustainableSearch(start_rate_per_s=2000, factor=2.0)
    assert search_start(ss, 25_000) == (nice_rate(25_000 * 0.4), CAPACITY_FACTOR)
    assert search_start(ss, None) == (2000, 2.0)  # no flat-out rate: the scenario's own start
    assert search_start(SustainableSearch(start_rate_per_s=2000, warm_start=False), 25_000)[0] == 2000


def test_a_step_is_busy_only_for_interference_from_outside_the_run() -> None:
    """A process outside the run spinning on a core makes the window "busy" (and disturbed); with thresholds
    it cannot reach, nothing is flagged. The broker's GC (no log here) never makes a window busy."""
    import subprocess
    import sys
    import time

    from harness.bench.interference import InterferenceMonitor, Thresholds

    spin = subprocess.Popen([sys.executable, "-c", "import time\nt=time.time()\nwhile time.time()-t<3: pass"])
    try:
        time.sleep(0.3)
        for th, busy in ((Thresholds(other_cpu_pct=5.0, steal_pct=1e9), True), (Thresholds(1e9, 1e9, 1e9), False)):
            mon = InterferenceMonitor(None, lambda: [], th)
            mon.begin()
            time.sleep(0.8)
            inter = mon.end((time.time_ns() - 800_000_000, time.time_ns()))
            assert inter.busy is busy and inter.disturbed is busy, inter
            assert any(r.startswith("other processes") for r in inter.reasons) is busy
    finally:
        spin.kill()
        spin.wait()
