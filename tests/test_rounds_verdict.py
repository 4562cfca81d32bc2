"""The verdict's rules without a broker: randomized round orders, ratios within a round, the tier rule and the
early-stopping bound."""

from __future__ import annotations

import random
import time

import pytest

from harness.reporting.tiers import Ranked, tied, tier_of, tiers
from harness.results import early_stopping
from harness.results.cost import LatencySample, Window, judge_fraction, summarize, within_round
from harness.results.stats import stat


def st(*values: float):  # type: ignore[no-untyped-def]
    s = stat(list(values), 0.9)
    assert s is not None
    return s


# ---- randomized rounds --------------------------------------------------------------------------------------
def test_every_round_is_a_fresh_random_order_reproducible_from_its_seed() -> None:
    from harness.bench.rounds import round_orders

    orders = round_orders(8, 200, seed=5)
    assert all(sorted(o) == list(range(8)) for o in orders)  # every contestant once per round
    assert orders == round_orders(8, 200, seed=5) and orders != round_orders(8, 200, seed=6)
    assert len({tuple(o) for o in orders}) > 190  # fresh each round, not a rotation
    # over many rounds every contestant takes every position about equally often (uniform permutations)
    for who in range(8):
        firsts = sum(1 for o in orders if o[0] == who)
        assert 8 <= firsts <= 45, (who, firsts)


def test_the_control_windows_are_spread_through_the_round_first_and_last_among_them() -> None:
    from harness.bench.rounds import control_slots

    assert control_slots(8, 3) == [0, 4, 8]  # before the first, in the middle, after the last
    assert control_slots(8, 2) == [0, 8]
    assert control_slots(3, 3) == [0, 2, 3]
    assert control_slots(2, 9) == [0, 1, 2]  # never more windows than places
    assert control_slots(0, 3) == [0]


def test_load_fractions_take_turns_so_each_is_measured_as_often_as_the_others() -> None:
    from harness.bench.rounds import fractions_for

    fr = [0.5, 0.7, 0.85]
    for who in range(4):
        seen = [f for r in range(1, 13) for f in fractions_for(fr, 1, who, r, seed=5)]
        assert sorted(seen.count(f) for f in fr) == [4, 4, 4]  # 12 rounds, one fraction a round: 4 each
        # within one of each other after any number of rounds
        for k in range(1, 13):
            head = seen[:k]
            counts = [head.count(f) for f in fr]
            assert max(counts) - min(counts) <= 1, (who, k, counts)
    # each contestant its own random rotation; every fraction every round when per_round is None
    rotations = {tuple(fractions_for(fr, 1, who, r, seed=5)[0] for r in (1, 2, 3)) for who in range(12)}
    assert len(rotations) > 1
    assert sorted(fractions_for(fr, None, 0, 1, seed=5)) == fr
    two = [f for r in (1, 2, 3) for f in fractions_for(fr, 2, 0, r, seed=5)]  # two a round: each twice in 3
    assert sorted(two.count(f) for f in fr) == [2, 2, 2]


def test_a_budget_adds_rounds_while_the_run_is_projected_to_end_within_it() -> None:
    """At least `count` rounds; then another while now + the longest round + the finish fit the budget."""
    from types import SimpleNamespace

    from harness.bench.rounds import RoundRunner
    from harness.scenario import Rounds

    def runner(elapsed_s: float, **plan: object) -> RoundRunner:
        r = RoundRunner.__new__(RoundRunner)
        r.plan = Rounds(**plan)  # type: ignore[arg-type]
        r.started = time.monotonic() - elapsed_s
        r.planned = r.plan.count
        r.backlogs_per_round, r.loads_per_round = 10, 7
        r.clock = SimpleNamespace(left={"backlog": 0, "load": 0})  # type: ignore[assignment]
        return r

    # no budget: exactly `count`
    r = runner(0, count=5)
    assert [r.another_round(k, [30.0] * (k - 1)) for k in range(1, 8)] == [True] * 5 + [False] * 2
    # 4 minutes gone, 40 s rounds, 30 s to finish, 6 minutes budget: 70 s more fit, round 6 runs
    r = runner(240, count=5, budget_min=6)
    assert r.another_round(6, [40.0] * 5) and r.planned == 6 and r.clock.left == {"backlog": 10, "load": 7}
    # the longest round so far counts, not the mean
    assert not runner(240, count=5, budget_min=6).another_round(6, [20.0] * 4 + [100.0])
    # the minimum runs even past the budget (a busy machine gets its 5 rounds); max_count caps the rest
    assert runner(900, count=5, budget_min=6).another_round(5, [40.0] * 4)
    assert not runner(0, count=5, budget_min=60, max_count=6).another_round(7, [1.0] * 6)
    with pytest.raises(ValueError):
        Rounds(count=5, max_count=4)


def test_rounds_and_quick_on_the_command_line_mean_that_many_rounds_and_no_budget() -> None:
    from harness.bench.run import with_overrides
    from harness.scenario import load_scenario

    sc = load_scenario("scenarios/fraud.yaml")
    assert sc.rounds.count == 5 and sc.rounds.budget_min is not None  # the demo: at least 5, within a budget
    r = with_overrides(sc, rounds=60).rounds
    assert (r.count, r.budget_min, r.max_count) == (60, None, 60)
    q = with_overrides(sc, quick=True).rounds
    assert (q.count, q.budget_min, q.aa_identity, len(q.fractions)) == (1, None, False, 1)
    assert with_overrides(sc).rounds == sc.rounds


# ---- early stopping (MLPerf LoadGen's rule) ---------------------------------------------------------------
def test_early_stopping_needs_459_clean_samples_for_a_p99_at_99_percent() -> None:
    assert early_stopping.min_samples(0) == 459  # 0.99^459 < 0.01 < 0.99^458
    assert early_stopping.holds(459, 0) and not early_stopping.holds(458, 0)
    # each sample over the SLO raises the count needed
    needs = [early_stopping.min_samples(k) for k in range(6)]
    assert needs == sorted(needs) and len(set(needs)) == 6
    assert early_stopping.holds(needs[3], 3) and not early_stopping.holds(needs[3] - 1, 3)


def test_a_p99_from_few_samples_is_not_a_pass() -> None:
    """300 samples with none over the SLO: the observed p99 is under it, but the bound does not hold yet."""
    assert judge_fraction(LatencySample(measured=300, over_slo=0)) == (None, 459)
    assert judge_fraction(LatencySample(measured=5000, over_slo=20))[0] is True
    # 5% over: clearly missed, and said so rather than "too few samples"
    assert judge_fraction(LatencySample(measured=1000, over_slo=50))[0] is False
    with pytest.raises(ValueError):
        early_stopping.holds(10, 11)


# ---- ratios within a round ---------------------------------------------------------------------------------
def backlog(round_: int, cost: float, **kw: object) -> Window:
    return Window(round=round_, position=0, kind="backlog", records=1000, cpu_us_per_record=cost, **kw)


def test_a_strategy_is_judged_against_the_control_windows_around_it() -> None:
    """The host halves its speed between rounds 1 and 2: costs double for everyone, the ratios do not move."""
    ws = [
        backlog(1, 10.5, control_us_per_record=7.0),
        backlog(2, 21.0, control_us_per_record=14.0),
        backlog(3, 10.8, control_us_per_record=7.2),
    ]
    ratios, diffs = within_round(ws)
    assert ratios == pytest.approx([1.5, 1.5, 1.5])
    assert diffs == pytest.approx([3.5, 7.0, 3.6])
    # a window without a control measured around it is not compared with another round's control
    ratios, _ = within_round([backlog(4, 30.0)])
    assert ratios == []
    # nor are the control's own windows, warm-up windows or windows with problems
    assert within_round([backlog(5, 7.0, control=True, control_us_per_record=7.0)]) == ([], [])
    assert within_round([backlog(0, 9.0, warmup=True, control_us_per_record=7.0)]) == ([], [])


def test_busy_windows_measured_again_count_once_and_problems_not_at_all() -> None:
    ws = [
        backlog(1, 20.0, busy=True, superseded=True, control_us_per_record=5.0),
        backlog(1, 10.0, repeat=True, control_us_per_record=5.0),
        backlog(2, 11.0, control_us_per_record=5.5),
        backlog(3, 99.0, problems=["12 records lost"], control_us_per_record=5.0),
    ]
    s = summarize(ws, 0.9)
    assert s.rounds == 2 and s.remeasured == 1
    assert s.ratio is not None and s.ratio.values == pytest.approx([2.0, 2.0])
    assert s.cpu_us_per_record is not None and s.cpu_us_per_record.median == pytest.approx(10.5)
    assert s.records_per_s_per_core == pytest.approx(1e6 / 10.5, rel=1e-3)


# ---- the tier rule -----------------------------------------------------------------------------------------
def test_overlapping_intervals_or_close_medians_share_a_tier() -> None:
    assert tied(st(1.0, 1.1, 1.2), st(1.15, 1.3, 1.4))  # overlap
    assert tied(st(1.00, 1.00, 1.01), st(1.08, 1.08, 1.09))  # apart, but 8% < 10%
    assert not tied(st(1.00, 1.00, 1.01), st(1.12, 1.12, 1.13))  # apart and 12%


def test_tiers_are_led_by_their_cheapest_member() -> None:
    items = [
        Ranked("identity", st(1.0, 1.0, 1.0)),
        Ranked("identity (A/A)", st(0.97, 1.01, 1.04)),
        Ranked("codegen-c", st(1.28, 1.3, 1.33)),
        Ranked("onnx", st(1.52, 1.55, 1.6)),
        Ranked("native", st(1.6, 1.66, 1.7)),
        Ranked("pmml", st(4.0, 4.2, 4.5)),
    ]
    groups = tiers(items)
    assert groups == [["identity", "identity (A/A)"], ["codegen-c"], ["onnx", "native"], ["pmml"]]
    assert tier_of(groups, "native") == 3 and tier_of(groups, "nope") is None
    # a chain of small steps does not stretch one tier: each within 10% of the next, the last 21% off the leader
    chain = [Ranked(f"s{i}", st(1.07**i, 1.07**i, 1.07**i)) for i in range(4)]
    assert tiers(chain) == [["s0", "s1"], ["s2", "s3"]]


def test_tiers_do_not_depend_on_the_order_given() -> None:
    items = [Ranked(n, st(m * 0.98, m, m * 1.02)) for n, m in [("a", 1.0), ("b", 1.05), ("c", 1.5), ("d", 3.0)]]
    want = tiers(items)
    for seed in range(5):
        shuffled = items[:]
        random.Random(seed).shuffle(shuffled)
        assert tiers(shuffled) == want


def test_a_paired_drain_is_costed_over_the_moments_both_sides_drained_in_full() -> None:
    """paired_backlog_window: the span runs from the first reading at which both sides had passed 10% of their
    backlog to the first at which either passed 90%; start-up and either side's tail are left out."""
    from harness.bench.windows import Sample, common_span

    def at(t: float, a: int, b: int) -> Sample:
        return Sample(t, (a, b), ((a * 10, 0), (b * 5, 0)))

    n = (1000, 2000)
    samples = [at(0, 0, 0), at(1, 50, 300), at(2, 150, 500), at(3, 400, 900), at(4, 600, 1300), at(5, 800, 1700)]
    samples += [at(6, 950, 1900), at(7, 1000, 2000)]
    assert common_span(samples, n) == (2, 6)  # both past 10% at t=2; the first past 90% at t=6 (both, here)
    samples[5] = at(5, 920, 1700)  # the strategy passes 90% first: the span ends there
    assert common_span(samples, n) == (2, 5)
    # too short to measure: fewer than 3 readings between the ends
    assert common_span([at(0, 0, 0), at(1, 200, 400), at(2, 950, 1900)], n) is None
    # one side never starts: no common span
    assert common_span([at(t, 100 * t, 0) for t in range(10)], n) is None


def test_a_drain_keeps_its_sub_spans_costs_however_short() -> None:
    """span_costs: sub-spans of at least SPAN_S; a short tail joins the sub-span before it, and a drain shorter
    than one sub-span is costed as one (the window's record keeps how the cost moved, never nothing)."""
    from harness.bench.windows import Sample, span_costs

    def at(t: float, done: int, cpu_ns: int) -> Sample:
        return Sample(t, (done,), ((cpu_ns, 0),))

    # 10 readings 0.02 s apart, 100 records and 200 µs of CPU each: 2 µs a record throughout
    samples = [at(0.02 * x, 100 * x, 200_000 * x) for x in range(11)]
    assert span_costs(samples, 0, 0, 10, span_s=0.1) == [2.0, 2.0]
    # 0.14 s: one full sub-span, and its 0.04 s tail (dearer: 6 µs) joins it
    tail = [at(0.02 * x, 100 * x, 200_000 * x) for x in range(6)] + [at(0.12, 600, 2_200_000), at(0.14, 700, 2_800_000)]
    assert span_costs(tail, 0, 0, 7, span_s=0.1) == [4.0]
    # a drain of 0.04 s: one sub-span; nothing scored: no sub-span
    assert span_costs(samples, 0, 0, 2, span_s=0.1) == [2.0]
    assert span_costs([at(0, 0, 0), at(0.2, 0, 100)], 0, 0, 1) == []


def test_pinning_a_process_pins_every_thread_and_can_be_undone() -> None:
    """procs.pin / cpu_affinity / cpu_halves (`rounds.pin_cpus`): every thread of a process, not only its main
    one, runs on the CPUs given; its earlier CPUs can be given back."""
    import os
    import subprocess
    import sys

    from harness.bench.procs import cpu_affinity, cpu_halves, pin

    mine = set(os.sched_getaffinity(0))
    halves = cpu_halves()
    assert (halves is None) == (len(mine) < 2)
    if halves is not None:
        assert halves[0] | halves[1] == mine and not halves[0] & halves[1] and halves[0]
    threads = "import threading, time; [threading.Thread(target=time.sleep, args=(30,)).start() for _ in range(3)]"
    p = subprocess.Popen([sys.executable, "-c", threads + "; time.sleep(30)"])
    try:
        for _ in range(100):  # until its 3 threads have started
            if len(os.listdir(f"/proc/{p.pid}/task")) >= 4:
                break
            time.sleep(0.05)
        before = cpu_affinity(p.pid)
        assert before == mine
        one = {min(mine)}
        assert pin([p.pid], one) >= 4
        tids = os.listdir(f"/proc/{p.pid}/task")
        assert all(os.sched_getaffinity(int(t)) == one for t in tids)
        pin([p.pid], before)
        assert all(os.sched_getaffinity(int(t)) == mine for t in tids)
    finally:
        p.kill()
        p.wait()
    assert cpu_affinity(p.pid) is None and pin([p.pid], mine) == 0  # gone: skipped


def test_a_rounds_divisor_is_every_identity_window_but_the_contestants_own() -> None:
    """round_reference: the median of the round's control windows, and (rounds.reference:
    every-identity-window, the default) of the identity scorer's and its A/A twin's own windows of that round
    — never the contestant's own window, so the A/A pair is still judged against the others."""
    from harness.bench.rounds import round_reference
    from harness.scenario import Rounds

    assert Rounds().reference == "every-identity-window"
    controls, ids = [3.0, 4.0, 9.0], {"identity": 2.0, "identity (A/A)": 2.5}
    assert round_reference(controls, ids, "onnx", every=False) == 4.0  # the control windows alone
    assert round_reference(controls, ids, "onnx", every=True) == 3.0  # median of 2.0, 2.5, 3.0, 4.0, 9.0
    assert round_reference(controls, ids, "identity", every=True) == 3.5  # 2.5, 3.0, 4.0, 9.0: not its own 2.0
    assert round_reference(controls, ids, "identity (A/A)", every=True) == 3.5  # 2.0, 3.0, 4.0, 9.0
    assert round_reference([], {}, "onnx", every=True) is None
    assert round_reference([], {"identity": 2.0}, "identity", every=True) is None
