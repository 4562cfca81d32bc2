"""`harness score` accounts for every record on a real broker: each consumed record ends as one result, one
dead letter, or uncommitted — whatever the engine does (NaN, exceptions, outages) and however the scorer
dies (kill -9 in exactly-once mode). Misbehaviour comes from harness/faults/chaos.py."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import numpy as np
import orjson
from confluent_kafka import Producer

from adapters.bundle import Bundle
from harness.bench.loadgen import send
from harness.faults import chaos
from harness.scoring import wire
from tests.conftest import committed_offsets, consume_all, create_topic, finish_loop, start_loop

CHAOS = "harness.faults.chaos:ChaosAdapter"


def _feature_names(bundle: Path) -> list[str]:
    return Bundle.open(bundle).feature_names


def _value(names: list[str], kind: float, x: float) -> bytes:
    return orjson.dumps({names[0]: kind, names[1]: x})


def _by_src(msgs: list) -> dict[str, list]:  # type: ignore[type-arg]
    out: dict[str, list] = {}  # type: ignore[type-arg]
    for m in msgs:
        out.setdefault(wire.headers_dict(m.headers())["src"].decode(), []).append(m)
    return out


def test_every_record_ends_as_one_result_or_one_dead_letter(broker: str, small_bundle: Path, topic_name: str) -> None:
    """NaN and inf scores, an engine that raises ValueError on some rows and RuntimeError on some batches,
    undecodable values and records without headers, all in one stream: the loop lives, and each input offset
    has exactly one output, with the right score or the right stage."""
    create_topic(broker, topic_name, partitions=2)
    names = _feature_names(small_bundle)
    plan: list[tuple[bytes | None, str | None]] = []  # (value, expected: "ok" | "score" | "decode")
    kinds = {0.0: "ok", chaos.FRAGILE: "ok", chaos.NAN: "score", chaos.INF: "score", chaos.RAISE: "score"}
    rng = np.random.default_rng(5)
    for i in range(400):
        kind = list(kinds)[int(rng.integers(len(kinds)))] if i % 3 == 0 else 0.0
        plan.append((_value(names, kind, i / 100), kinds[kind]))
        if i % 50 == 0:
            plan.append((b"{not json", "decode"))
    p = Producer({"bootstrap.servers": broker})
    for i, (value, _) in enumerate(plan):
        headers = None if i % 7 == 0 else [("rid", f"r-{i}".encode())]  # a production producer sends no rid
        p.produce(topic_name, key=str(i).encode(), value=value, headers=headers)  # the key names the plan row
    assert p.flush(30) == 0
    group = f"g-{topic_name}"
    proc = start_loop(broker, small_bundle, CHAOS, topic_name, group, "--idle-exit-s", "4", "--batch-max", "16")
    stats = finish_loop(proc)
    n = len(plan)
    expect_dlq = sum(1 for _, e in plan if e != "ok")
    assert stats["consumed"] == n and stats["scored"] == n - expect_dlq and stats["dead_lettered"] == expect_dlq
    results = _by_src(consume_all(broker, f"{topic_name}.out", n - expect_dlq))
    dead = _by_src(consume_all(broker, f"{topic_name}.dlq", expect_dlq))
    assert len(results) + len(dead) == n and not set(results) & set(dead)  # one output per input offset
    assert all(len(v) == 1 for v in (*results.values(), *dead.values()))  # and exactly one
    for src, (m,) in results.items():
        i = int(m.key())
        value, expected = plan[i]
        assert expected == "ok", (i, src)
        body = orjson.loads(m.value())
        assert body["score"] == chaos.expected_score(orjson.loads(value)[names[1]])  # type: ignore[arg-type]
        h = wire.headers_dict(m.headers())
        assert ("rid" in body) == ("rid" in h) == (i % 7 != 0)  # a record without rid is scored all the same
    for src, (m,) in dead.items():
        value, expected = plan[int(m.key())]
        h = wire.headers_dict(m.headers())
        assert h["dlq_stage"].decode() == expected and h["dlq_source"].decode() == src
        assert m.value() == value  # the input, unchanged
    reasons = {wire.headers_dict(v[0].headers())["dlq_reason"].decode() for v in dead.values()}
    assert any("ValueError: Input contains a value too large" in r for r in reasons)
    assert any("nan" in r for r in reasons) and any("inf" in r for r in reasons)
    committed, ends = committed_offsets(broker, group, topic_name)
    assert committed == ends == n


def _send_rows(broker: str, topic: str, bundle: Path, n: int, rate: float, prefix: str = "p") -> None:
    b = Bundle.open(bundle)
    X, _, _ = b.reference()
    codec = wire.FeatureCodec(b.feature_names, "json")
    payloads = [codec.encode(r) for r in X]
    rep = send({"bootstrap.servers": broker}, topic, payloads, np.arange(n) / rate, prefix, time.time_ns(), 50)
    assert rep.sent == n and rep.delivery_errors == 0


def test_engine_outage_pauses_dead_letters_nothing_and_gives_up_without_committing(
    broker: str, small_bundle: Path, topic_name: str, tmp_path: Path
) -> None:
    create_topic(broker, topic_name, partitions=2)
    group = f"g-{topic_name}"
    down = tmp_path / "engine-down"
    down.touch()  # the model server is down from the start
    options = ("--option", f"down_file={down}")
    # 1. the outage outlasts the limit: exit code 3, one error line, nothing committed, nothing dead-lettered
    proc = start_loop(broker, small_bundle, CHAOS, topic_name, group, *options, "--outage-limit-s", "3")
    _send_rows(broker, topic_name, small_bundle, 300, rate=3000)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 3, err
    assert "Traceback" not in err
    errors = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "unavailable for" in errors[0] and "without committing" in errors[0], err
    assert committed_offsets(broker, group, topic_name) == (0, 300)
    # 2. a new scorer rides the outage out: paused, nothing dead-lettered or committed, then every record scored
    proc = start_loop(broker, small_bundle, CHAOS, topic_name, group, *options, "--idle-exit-s", "3")
    time.sleep(4)
    assert proc.poll() is None  # still there, waiting for the engine
    assert committed_offsets(broker, group, topic_name) == (0, 300)
    down.unlink()  # the server is back
    stats = finish_loop(proc)
    assert stats["outages"] == 1 and stats["outage_seconds"] > 2 and stats["dead_lettered"] == 0
    results = consume_all(broker, f"{topic_name}.out", 300)
    assert {wire.headers_dict(m.headers())["rid"].decode() for m in results} == {f"p-{i}" for i in range(300)}
    assert consume_all(broker, f"{topic_name}.dlq", 0, timeout_s=3) == []
    assert committed_offsets(broker, group, topic_name) == (300, 300)


def test_exactly_once_kill_9_twice_during_a_backlog_loses_nothing_and_duplicates_nothing(
    broker: str, small_bundle: Path, topic_name: str
) -> None:
    create_topic(broker, topic_name, partitions=2)
    group = f"g-{topic_name}"
    n = 4000
    args = (
        "--guarantee", "exactly-once", "--instance-id", "scorer-0",
        "--batch-max", "16", "--option", "per_batch_ms=10", "--option", "stall_ms=0",
    )  # fmt: skip
    slow = "tests.stall_adapter:StallAdapter"  # ~1,500 records/s: the backlog lasts a few seconds
    _send_rows(broker, topic_name, small_bundle, n, rate=20_000)
    for _ in range(2):
        proc = start_loop(broker, small_bundle, slow, topic_name, group, *args)
        time.sleep(1.5)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        assert committed_offsets(broker, group, topic_name)[0] < n  # killed mid-backlog
    proc = start_loop(broker, small_bundle, slow, topic_name, group, *args, "--idle-exit-s", "4")
    finish_loop(proc, timeout=120)
    results = consume_all(broker, f"{topic_name}.out", n)  # read_committed: aborted transactions are invisible
    rids = [wire.headers_dict(m.headers())["rid"].decode() for m in results]
    assert set(rids) == {f"p-{i}" for i in range(n)}  # nothing lost
    assert len(rids) == n  # nothing duplicated
    srcs = {wire.headers_dict(m.headers())["src"].decode() for m in results}
    assert len(srcs) == n
    assert committed_offsets(broker, group, topic_name) == (n, n)
