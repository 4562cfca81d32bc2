"""The loop's native hot path (harness_native) against the Python definitions it must match, and the native
relay on the real broker:

- the native decoder refuses a record exactly when the Python codec (wire.FeatureCodec) does, with the same
  reason class, and decodes the same float64 bits otherwise (any JSON document, any f64le value);
- a result's and a dead letter's headers are wire.result_headers / wire.dead_letter_headers of the input, in
  that order, and a JSON result's value is the bytes orjson writes;
- the relay copies every record (key, value, headers) and commits behind the copies;
- a bad client setting is one KafkaException, and histogram batches count like single observations.
"""

from __future__ import annotations

import math
import struct
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import harness_native
import numpy as np
import orjson
import pytest
from confluent_kafka import KafkaException, Producer
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.bundle import Bundle
from harness.faults import chaos
from harness.kafka.config import KafkaTarget
from harness.scoring import wire
from harness.scoring.loop import ScoringLoop
from harness.scoring.metrics import reason_class
from harness.scoring.settings import LoopConfig
from tests.conftest import committed_offsets, consume_all, create_topic

NAMES = ["amount", "age", "café", 'q"uote']


def _python(codec: wire.FeatureCodec, value: bytes | None) -> tuple[list[float] | None, str | None]:
    try:
        return [float(x) for x in codec.decode(value)], None
    except wire.DecodeError as e:
        return None, str(e)


def _native(dec: harness_native.Decoder, value: bytes | None) -> tuple[list[float] | None, str | None]:
    try:
        return dec.decode_value(value), None
    except ValueError as e:
        return None, str(e)


def _bits(row: list[float] | None) -> list[bytes] | None:
    return None if row is None else [struct.pack("<d", x) for x in row]


def _same(value: bytes | None, encoding: str) -> None:
    codec = wire.FeatureCodec(NAMES, encoding)  # type: ignore[arg-type]
    dec = harness_native.Decoder(NAMES, encoding)
    (prow, perr), (nrow, nerr) = _python(codec, value), _native(dec, value)
    assert (perr is None) == (nerr is None), (value, perr, nerr)
    if perr is None:
        assert _bits(prow) == _bits(nrow), (value, prow, nrow)
    else:
        assert reason_class(perr) == reason_class(str(nerr)), (value, perr, nerr)
        for what in ("unknown feature", "is not a number", "is infinite"):
            assert (what in perr) == (what in str(nerr)), (value, perr, nerr)
        if "feature" in perr and "'" in perr:  # the same feature named first
            assert perr.split(" is ")[0].split(": ")[0] == str(nerr).split(" is ")[0].split(": ")[0], (perr, nerr)


numbers = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.integers(min_value=-(10**30), max_value=10**30).map(str),
    st.sampled_from(["-0", "-0.0", "0.1", "1e22", "1e23", "1e400", "-1e400", "4.9e-324", "1e-400", "1E+2", "2e-5"]),
    st.from_regex(r"-?(0|[1-9][0-9]{0,24})(\.[0-9]{1,24})?([eE][+-]?[0-9]{1,3})?", fullmatch=True),
)
json_values = st.one_of(
    numbers,
    st.sampled_from(["null", "true", "false", '"x"', '"NA"', "[1, 2]", "{}", '{"a": 1}', "NaN", "Infinity", "01"]),
)
keys = st.one_of(st.sampled_from(NAMES), st.sampled_from(["other", "amount ", "caf\\u00e9", 'q\\"uote']))
documents = st.one_of(
    st.lists(st.tuples(keys, json_values), max_size=6).map(
        lambda kv: "{" + ", ".join(f'"{k}": {v}' for k, v in kv) + "}"
    ),
    st.sampled_from(["", " ", "[]", '"s"', "1", "null", "{", '{"amount": 1,}', '{"amount" 1}', "{} x", "\ufeff{}"]),
)


@settings(max_examples=600, deadline=None, database=None)
@given(doc=documents, trailing=st.sampled_from(["", " ", "\n", "x", ","]))
def test_native_json_decoding_is_the_python_codecs(doc: str, trailing: str) -> None:
    _same((doc + trailing).encode(), "json")


@settings(max_examples=200, deadline=None, database=None)
@given(raw=st.one_of(st.binary(max_size=40), st.just(None)))
def test_native_decoding_of_any_bytes_is_the_python_codecs(raw: bytes | None) -> None:
    _same(raw, "json")
    _same(raw, "f64le")


@settings(max_examples=200, deadline=None, database=None)
@given(row=st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=4, max_size=4))
def test_native_f64le_decoding_is_the_python_codecs(row: list[float]) -> None:
    _same(np.asarray(row, dtype="<f8").tobytes(), "f64le")


def test_a_bad_client_setting_is_one_kafka_error() -> None:
    with pytest.raises(KafkaException) as e:
        harness_native.Consumer({"bootstrap.servers": "127.0.0.1:1", "group.id": "g", "no.such.setting": 1})
    assert "no.such.setting" in e.value.args[0].str()
    with pytest.raises(KafkaException):
        harness_native.Producer({"bootstrap.servers": "127.0.0.1:1", "acks": "sometimes"})


def test_a_batch_of_observations_counts_like_single_ones() -> None:
    from prometheus_client import CollectorRegistry

    from harness.scoring.metrics import ScoreMetrics, observe_many

    def samples(m: ScoreMetrics) -> list[tuple[str, dict[str, str], float]]:
        (family,) = [f for f in m.registry.collect() if f.name.endswith("end_to_end_seconds")]
        return [(s.name, s.labels, s.value) for s in family.samples if not s.name.endswith("_created")]

    values = [0.0, 0.001, 0.0011, 0.02, 3.0, 99.0, 0.5, 0.5]
    one, many = ScoreMetrics(CollectorRegistry()), ScoreMetrics(CollectorRegistry())
    for v in values:
        one.end_to_end.observe(v)
    observe_many(many.end_to_end, values)
    assert samples(one) == samples(many)
    assert ("harness_score_end_to_end_seconds_count", {}, 8.0) in samples(many)


# ------------------------------------------------------------------------------------- on the real broker


def _inputs(names: list[str]) -> list[tuple[bytes | None, bytes | None, list[tuple[str, str | bytes | None]] | None]]:
    """(key, value, headers): headers in every shape a producer may send, scores that print in many forms."""

    def row(kind: float, x: float) -> bytes:
        return orjson.dumps({names[0]: kind, names[1]: x})

    return [
        (b"k0", row(0.0, 0.25), [("rid", b"r-0"), ("t_intended_ns", b"1700000000000000000"), ("t_sent_ns", b"17")]),
        (None, row(0.0, -3.0), None),  # no key, no headers
        (b"k2", row(0.0, 1e-7), [("x-trace", b"abc"), ("rid", b'q"uo\\te\x01'), ("rid", b"r-2b")]),  # rid twice
        (b"k3", row(0.0, 40.0), [("t_sent_ns", b"5"), ("nullish", None), ("rid", "é".encode())]),
        (b"k4", row(chaos.NAN, 0.0), [("rid", b"r-4")]),  # scores NaN: a dead letter at stage "score"
        (b"k5", b"{broken", [("rid", b"r-5"), ("h", b"v")]),  # a dead letter at stage "decode"
        (b"k6", None, [("rid", b"r-6")]),  # no value
        (b"k7", b"", None),  # an empty value
        (b"k8", row(0.0, float("nan")), [("rid", b"\xff\xfe")]),  # NaN feature (missing), a rid not UTF-8
    ]


def _read(broker: str, topic: str, n: int) -> list[Any]:
    return consume_all(broker, topic, n) if n else []


def test_outputs_carry_the_headers_and_values_wire_defines(broker: str, small_bundle: Path) -> None:
    topic = f"nat-{uuid.uuid4().hex[:6]}"
    for t in (topic, f"{topic}.out", f"{topic}.dlq"):
        create_topic(broker, t, partitions=1)
    b = Bundle.open(small_bundle)
    sent = _inputs(b.feature_names)
    p = Producer({"bootstrap.servers": broker})
    for key, value, headers in sent:
        p.produce(topic, key=key, value=value, headers=headers)
    p.flush(10)
    cfg = LoopConfig(input_topic=topic, output_topic=f"{topic}.out", group=f"g-{topic}", scorer_name="chaos-test")
    loop = ScoringLoop(KafkaTarget(broker), chaos.ChaosAdapter.load(b), b.feature_names, cfg, log=lambda m: None)
    thread = threading.Thread(target=loop.run, kwargs={"max_records": len(sent), "idle_exit_s": 20}, daemon=True)
    thread.start()
    thread.join(60)
    assert not thread.is_alive()
    results, dead = _read(broker, f"{topic}.out", 5), _read(broker, f"{topic}.dlq", 4)
    assert [m.offset() for m in results] == list(range(5)) and len(dead) == 4
    by_src = {wire.headers_dict(m.headers())["src"]: m for m in results + dead}
    model = b.model_id.encode()
    for offset, (key, value, headers) in enumerate(sent):
        src = wire.source(topic, 0, offset)
        out = by_src[src]
        assert out.key() == key
        got = out.headers()
        if out.topic() == f"{topic}.dlq":
            stage = dict(got)["dlq_stage"].decode()
            reason = dict(got)["dlq_reason"].decode()
            assert got == wire.dead_letter_headers(headers, reason, stage, src)
            assert out.value() == value  # the input unchanged (None stays None, b"" stays b"")
            assert stage == ("score" if offset == 4 else "decode")
            continue
        copied, rid, _ = wire.carried(headers)
        h = dict(got)
        expected = wire.result_headers(
            copied, src, (wire.H_CONSUMED, h[wire.H_CONSUMED]), (wire.H_SCORED, h[wire.H_SCORED]),
            (wire.H_SCORER, b"chaos-test"),
        ) + [("model", model)]  # fmt: skip
        assert got == expected
        x = orjson.loads(value or b"")[b.feature_names[1]]
        score = chaos.expected_score(float("nan") if x is None else x)
        rid_text = None if rid is None else rid.decode("utf-8", "replace")
        assert out.value() == wire.encode_score(rid_text, score, "json")  # orjson's bytes, to the last digit
        assert int(h[wire.H_CONSUMED]) <= int(h[wire.H_SCORED])
    committed, ends = committed_offsets(broker, f"g-{topic}", topic)
    assert committed == ends == len(sent)


def test_f64le_results_are_one_little_endian_float(broker: str, small_bundle: Path) -> None:
    topic = f"natf-{uuid.uuid4().hex[:6]}"
    for t in (topic, f"{topic}.out", f"{topic}.dlq"):
        create_topic(broker, t, partitions=1)
    b = Bundle.open(small_bundle)
    codec = wire.FeatureCodec(b.feature_names, "f64le")
    xs = [0.1, -2.0, float("nan")]
    p = Producer({"bootstrap.servers": broker})
    for x in xs:
        row = np.zeros(len(b.feature_names))
        row[1] = x
        p.produce(topic, value=codec.encode(row))
    p.produce(topic, value=b"\x00" * 7)  # wrong size: a dead letter
    p.flush(10)
    cfg = LoopConfig(input_topic=topic, output_topic=f"{topic}.out", group=f"g-{topic}", encoding="f64le")
    loop = ScoringLoop(KafkaTarget(broker), chaos.ChaosAdapter.load(b), b.feature_names, cfg, log=lambda m: None)
    stats = loop.run(max_records=4, idle_exit_s=20)
    assert stats.scored == 3 and stats.dead_lettered == 1
    got = [wire.decode_score(m.value(), "f64le") for m in _read(broker, f"{topic}.out", 3)]
    assert got == [chaos.expected_score(x) for x in xs]
    (d,) = _read(broker, f"{topic}.dlq", 1)
    assert b"7 bytes" in wire.headers_dict(d.headers())["dlq_reason"]


def test_the_relay_copies_every_record_and_commits_behind_it(broker: str) -> None:
    from harness.bench.relay import output_rate, write_backlog
    from harness.scoring.loop import consumer_config
    from harness.scoring.output import producer_config

    topic = f"relay-{uuid.uuid4().hex[:6]}"
    target = KafkaTarget(broker)
    n = 3000
    write_backlog(target, topic, [b'{"a": 1}', b"\x00\x01", b""], n)
    create_topic(broker, f"{topic}.out", partitions=2)
    cfg = LoopConfig(input_topic=topic, output_topic=f"{topic}.out", group=f"g-{topic}")
    t0 = time.time()
    st = harness_native.relay(
        target.client_config(**consumer_config(cfg, "relay")),
        target.client_config(**producer_config("relay")),
        topic,
        f"{topic}.out",
        n,
    )
    assert st["error"] is None and st["consumed"] == st["produced"] == n and st["delivery_errors"] == 0
    assert st["cpu_s"] > 0 and 0 < st["wall_s"] < time.time() - t0 + 1
    src = {(m.key(), m.value(), tuple(m.headers() or ())) for m in consume_all(broker, topic, n)}
    out = consume_all(broker, f"{topic}.out", n)
    assert len(out) == n and {(m.key(), m.value(), tuple(m.headers() or ())) for m in out} == src
    committed, ends = committed_offsets(broker, f"g-{topic}", topic)
    assert committed == ends == n
    count, rate = output_rate(target, f"{topic}.out")
    assert count == n and (rate > 0 or math.isnan(rate))
