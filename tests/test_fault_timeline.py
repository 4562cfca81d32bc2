"""The figures the replication matrix and the soak print, on scripted numbers (no broker): the longest output
gap, the p99 around a fault, the recovery time, the timeline's buckets; the soak's seeded schedule and its
duration argument; the placement of a row's topics."""

from __future__ import annotations

import pytest

from harness.faults.pipeline import placement
from harness.faults.soak import SoakPlan, parse_duration, schedule
from harness.faults.timeline import Sample, Timing, buckets, longest_gap, percentile, recovery_s, samples


def steady(t0: float, t1: float, rate: float, latency: float) -> list[Sample]:
    n = int((t1 - t0) * rate)
    return [Sample(t0 + i / rate, latency) for i in range(n)]


def test_percentile_is_nearest_rank() -> None:
    assert percentile([], 0.99) is None
    assert percentile([3.0, 1.0, 2.0], 0.5) == 2.0
    assert percentile(list(range(1, 101)), 0.99) == 99
    assert percentile([5.0], 0.99) == 5.0


def test_longest_gap_and_when() -> None:
    assert longest_gap([]) == (0.0, None)
    assert longest_gap([4.0]) == (0.0, None)
    gap, at = longest_gap([1.0, 1.1, 1.2, 9.2, 9.3, 3.0])
    assert gap == pytest.approx(6.2) and at == 3.0


def test_samples_pair_intended_and_arrival_and_skip_what_never_came() -> None:
    ss = samples({"a": 10.0, "b": 11.0, "c": 12.0}, {"b": 11.5, "a": 10.2})
    assert [(s.intended, round(s.latency_s, 3)) for s in ss] == [(10.0, 0.2), (11.0, 0.5)]


def test_a_stall_shows_in_every_record_due_during_it() -> None:
    """Open loop: a 10-s outage at t=100 gives the records due during it latencies falling from 10 s to 0."""
    before = steady(90, 100, 100, 0.05)
    during = [Sample(100 + i / 100, 10.0 - i / 100 + 0.05) for i in range(1000)]
    after = steady(110, 130, 100, 0.05)
    ss = before + during + after
    t = Timing.of(ss, [s.intended + s.latency_s for s in ss], 100.0, 100.0)
    assert t.p99_before_ms == pytest.approx(50.0)
    assert t.p99_around_ms is not None and t.p99_around_ms > 9000
    # the last output before the stall came at 100.04, the next (every record due during it, at once) at 110.05
    assert t.longest_gap_s == pytest.approx(10.01, abs=0.005) and t.gap_at_s == pytest.approx(0.0, abs=0.1)
    assert recovery_s(ss, 100.0, 130.0, threshold_s=1.0) == pytest.approx(9.06, abs=0.05)


def test_recovery_is_zero_without_harm_and_none_when_latency_never_settles() -> None:
    calm = steady(0, 60, 50, 0.05)
    assert recovery_s(calm, 10.0, 60.0, threshold_s=1.0) == 0.0
    never = steady(0, 10, 50, 0.05) + steady(10, 60, 50, 5.0)
    assert recovery_s(never, 10.0, 60.0, threshold_s=1.0) is None
    # a short calm in the middle of the disruption is not recovery: 10 s of calm are needed
    flappy = steady(10, 15, 50, 5.0) + steady(15, 18, 50, 0.05) + steady(18, 25, 50, 5.0) + steady(25, 60, 50, 0.05)
    assert recovery_s(flappy, 10.0, 60.0, threshold_s=1.0) == pytest.approx(15.0)


def test_buckets_cover_every_interval_even_empty_ones() -> None:
    ss = steady(0, 10, 10, 0.1) + steady(20, 30, 10, 0.3)
    bs = buckets(ss, 0.0, 10.0)
    assert [b.count for b in bs] == [100, 0, 100]
    assert bs[0].p99_ms == pytest.approx(100.0) and bs[1].p99_ms is None and bs[2].max_ms == pytest.approx(300.0)


def test_soak_schedule_is_seeded_spaced_and_leaves_a_tail() -> None:
    kinds = ["a", "b", "c"]
    plan = SoakPlan(duration_s=1800, fault_every_s=60, seed=7)
    one, two = schedule(plan, kinds), schedule(plan, kinds)
    assert one == two and one != schedule(SoakPlan(duration_s=1800, fault_every_s=60, seed=8), kinds)
    assert one[0].at_s == plan.warm_s and one[-1].at_s <= plan.duration_s - plan.tail_s
    gaps = [b.at_s - a.at_s for a, b in zip(one, one[1:], strict=False)]
    assert all(44.9 <= g <= 75.1 for g in gaps)
    assert 22 <= len(one) <= 35
    assert {p.kind for p in one} <= set(kinds) and {p.guarantee for p in one} == {"at-least-once", "exactly-once"}


def test_soak_deals_every_kind_before_any_comes_again() -> None:
    """The first len(kinds) faults are every kind once (a shuffled deck), and so is each later hand."""
    kinds = [f"k{i}" for i in range(12)]
    for seed in range(5):
        one = [p.kind for p in schedule(SoakPlan(duration_s=1800, fault_every_s=60, seed=seed), kinds)]
        assert sorted(one[:12]) == sorted(kinds) and len(set(one[12:24])) == len(one[12:24])
        assert one[:12] != kinds  # shuffled, not in the matrix's order


@pytest.mark.parametrize(("text", "seconds"), [("30m", 1800), ("90s", 90), ("1h30m", 5400), ("45", 45), ("2.5m", 150)])
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["", "30x", "m30", "30 m", "1h-2m"])
def test_bad_durations(bad: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(bad)


def test_placement_leads_each_topic_from_another_node() -> None:
    for first in range(6):
        p = placement(3, first)
        leaders = {name: {r[0] for r in reps} for name, reps in p.items()}
        assert all(len(v) == 1 for v in leaders.values())  # both partitions of a topic led by one node
        assert len({next(iter(v)) for v in leaders.values()}) == 3  # input, output, dlq: three nodes
        assert all(sorted(r) == [1, 2, 3] for reps in p.values() for r in reps)
