"""The scoring loop on a real broker: exactly-once in a normal run, nothing lost on SIGTERM, poison records
dead-lettered, partitions split across processes, and committed offsets only behind acknowledged results."""

from __future__ import annotations

import signal
import time
import uuid
from pathlib import Path

import numpy as np
import orjson
from confluent_kafka import Producer

from adapters.bundle import Bundle
from harness.bench.loadgen import send
from harness.kafka.config import KafkaTarget
from harness.scoring import wire
from tests.conftest import committed_offsets, consume_all, create_topic, finish_loop, start_loop


def _send_rows(bootstrap: str, topic: str, bundle: Path, n: int, rate: float, prefix: str = "p") -> np.ndarray:
    b = Bundle.open(bundle)
    X, _, _ = b.reference()
    codec = wire.FeatureCodec(b.feature_names, "json")
    payloads = [codec.encode(r) for r in X]
    offsets = np.arange(n) / rate
    rep = send({"bootstrap.servers": bootstrap}, topic, payloads, offsets, prefix, time.time_ns() + 100_000_000, 50)
    assert rep.sent == n and rep.delivery_errors == 0
    return X


def test_normal_run_scores_every_record_exactly_once(broker: str, small_bundle: Path, topic_name: str) -> None:
    create_topic(broker, topic_name, partitions=2)
    group = f"g-{topic_name}"
    proc = start_loop(broker, small_bundle, "native", topic_name, group, "--idle-exit-s", "4")
    n = 1500
    X = _send_rows(broker, topic_name, small_bundle, n, rate=3000)
    stats = finish_loop(proc)
    assert stats["consumed"] == n and stats["scored"] == n and stats["dead_lettered"] == 0
    out = consume_all(broker, f"{topic_name}.out", n)
    rids = [wire.headers_dict(m.headers())["rid"].decode() for m in out]
    assert len(rids) == n and len(set(rids)) == n
    _, _, p_ref = Bundle.open(small_bundle).reference()
    for m in out:
        h = wire.headers_dict(m.headers())
        seq = int(h["rid"].decode().rsplit("-", 1)[1])
        body = orjson.loads(m.value())
        assert body["rid"] == h["rid"].decode()
        assert abs(body["score"] - p_ref[seq % len(X)]) < 1e-12
        assert m.key() == str(seq % 1024).encode()
        assert int(h["t_intended_ns"]) <= int(h["t_consumed_ns"]) <= int(h["t_scored_ns"])
        assert h["scorer"] == b"native"
    committed, ends = committed_offsets(broker, group, topic_name)
    assert committed == ends == n


def test_sigterm_mid_run_loses_nothing(broker: str, small_bundle: Path, topic_name: str) -> None:
    create_topic(broker, topic_name, partitions=2)
    group = f"g-{topic_name}"
    slow = ("--adapter", "tests.stall_adapter:StallAdapter")
    args = ("--batch-max", "16", "--option", "per_batch_ms=20", "--option", "stall_ms=0")
    proc = start_loop(broker, small_bundle, slow[1], topic_name, group, *args)
    n = 2000
    _send_rows(broker, topic_name, small_bundle, n, rate=5000)
    time.sleep(1.0)  # the loop is mid-way: ~16 records per 20 ms
    proc.send_signal(signal.SIGTERM)
    first = finish_loop(proc, timeout=30)
    assert 0 < first["consumed"] < n, first
    assert first["scored"] == first["consumed"]  # the batch in hand was finished, not dropped
    # a new member of the group picks up from the committed offsets
    proc2 = start_loop(broker, small_bundle, slow[1], topic_name, group, *args, "--idle-exit-s", "3")
    second = finish_loop(proc2, timeout=120)
    out = consume_all(broker, f"{topic_name}.out", n)
    rids = [wire.headers_dict(m.headers())["rid"].decode() for m in out]
    assert set(rids) == {f"p-{i}" for i in range(n)}  # nothing lost
    duplicates = len(rids) - len(set(rids))
    assert duplicates == first["consumed"] + second["consumed"] - n  # and every duplicate accounted for


def test_poison_records_go_to_the_dead_letter_topic(broker: str, small_bundle: Path, topic_name: str) -> None:
    create_topic(broker, topic_name, partitions=1)
    b = Bundle.open(small_bundle)
    X, _, _ = b.reference()
    codec = wire.FeatureCodec(b.feature_names, "json")
    f0 = b.feature_names[0]
    poison = {
        "bad-json": b"{not json",
        "unknown": orjson.dumps({"no_such_feature": 1.0}),
        "string": orjson.dumps({f0: "twelve"}),
        "array": b"[1, 2, 3]",
    }
    p = Producer({"bootstrap.servers": broker})
    for i in range(50):
        p.produce(topic_name, key=b"k", value=codec.encode(X[i]), headers=[("rid", f"good-{i}".encode())])
        if i % 10 == 0:
            name = list(poison)[i // 10 % len(poison)]
            p.produce(topic_name, key=b"bad", value=poison[name], headers=[("rid", f"bad-{name}".encode())])
    assert p.flush(10) == 0
    proc = start_loop(broker, small_bundle, "native", topic_name, f"g-{topic_name}", "--idle-exit-s", "3")
    stats = finish_loop(proc)
    assert stats["scored"] == 50 and stats["dead_lettered"] == 5
    out = consume_all(broker, f"{topic_name}.out", 50)
    assert sorted(wire.headers_dict(m.headers())["rid"].decode() for m in out) == sorted(f"good-{i}" for i in range(50))
    dlq = consume_all(broker, f"{topic_name}.dlq", 5)
    assert len(dlq) == 5
    reasons = {}
    for m in dlq:
        h = wire.headers_dict(m.headers())
        assert h["dlq_stage"] == b"decode"
        assert h["dlq_source"].decode().startswith(f"{topic_name}/0/")
        assert m.value() == poison[h["rid"].decode().removeprefix("bad-")]  # the original value, unchanged
        reasons[h["rid"].decode()] = h["dlq_reason"].decode()
    assert "not JSON" in reasons["bad-bad-json"]
    assert "unknown feature 'no_such_feature'" in reasons["bad-unknown"]
    assert "not a number" in reasons["bad-string"]
    assert "JSON object" in reasons["bad-array"]


def test_two_processes_split_the_partitions(broker: str, small_bundle: Path, topic_name: str) -> None:
    from harness.kafka.topics import wait_group_stable

    create_topic(broker, topic_name, partitions=4)
    group = f"g-{topic_name}"
    # 20 s idle: on a busy machine the second process can take many seconds to start, and the first, alone in
    # the group with every partition and nothing to read, must not give up before it joins
    a = start_loop(broker, small_bundle, "native", topic_name, group, "--idle-exit-s", "20")
    b = start_loop(broker, small_bundle, "native", topic_name, group, "--idle-exit-s", "20")
    wait_group_stable(KafkaTarget(broker), group, 2, 60)
    n = 4000
    _send_rows(broker, topic_name, small_bundle, n, rate=4000)
    sa, sb = finish_loop(a), finish_loop(b)
    assert sa["consumed"] > 0 and sb["consumed"] > 0, (sa, sb)
    out = consume_all(broker, f"{topic_name}.out", n)
    rids = {wire.headers_dict(m.headers())["rid"].decode() for m in out}
    assert rids == {f"p-{i}" for i in range(n)}
    assert sa["consumed"] + sb["consumed"] >= n


def test_bad_cli_input_is_one_line(broker: str, small_bundle: Path) -> None:
    from tests.conftest import run_cli

    missing = f"missing-{uuid.uuid4().hex[:6]}"
    common = ("--output-topic", "x", "--group", "g", "--bootstrap", broker)
    r = run_cli("score", "--bundle", str(small_bundle), "--adapter", "native", "--input-topic", missing, *common)
    assert r.returncode != 0 and "does not exist" in r.stderr and "Traceback" not in r.stderr
    r = run_cli(
        "score", "--bundle", str(small_bundle), "--adapter", "nope", "--input-topic", "x", *common, "--encoding", "xml"
    )
    assert r.returncode != 0 and "unknown encoding 'xml'" in r.stderr and "Traceback" not in r.stderr
    r = run_cli(
        "score", "--bundle", str(small_bundle), "--adapter", "native", "--input-topic", "x", *common,
        "--guarantee", "exactly-twice",
    )  # fmt: skip
    assert r.returncode != 0 and "unknown guarantee 'exactly-twice'" in r.stderr and "Traceback" not in r.stderr
    help_text = run_cli("score", "--help").stdout
    assert "--guarantee" in help_text and "exactly-once" in help_text
