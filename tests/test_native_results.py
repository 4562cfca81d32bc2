"""A result's value written by the loop's native encoder (harness_native.Results) is the bytes wire.ResultCodec
writes, for every task and encoding:

- without a broker, any number (NaN, infinities, 1e+16, subnormals), any rid bytes and any class labels;
- on the real broker, a regression and a multiclass bundle scored by the loop twice, once with the native encoder
  and once with the values encoded in Python (the fallback for a task or encoding native code does not know):
  the same bytes for every record, results and the shadow model's, in JSON and f64le, each also what ResultCodec
  makes of the model's own predictions.
"""

from __future__ import annotations

import math
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import harness_native
import numpy as np
import orjson
import pytest
from confluent_kafka import Producer
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.bundle import Bundle
from adapters.registry import adapter_class
from adapters.tasks import TaskSpec
from harness.kafka.config import KafkaTarget
from harness.scoring import result_values, wire
from harness.scoring.loop import ScoringLoop
from harness.scoring.models import ModelUpdates, publish, version_of
from harness.scoring.operations import Operations
from harness.scoring.settings import LoopConfig
from tests.conftest import committed_offsets, consume_all, create_topic

numbers = st.one_of(
    st.floats(),  # NaN and infinities included: JSON null, as orjson writes them
    st.floats(min_value=-1.0, max_value=1.0),
    st.sampled_from([0.0, -0.0, 1e16, -1e16, 1e15, 123456789012345680.0, 1e-5, 1e-6, 5e-324, 1.7976931348623157e308]),
)
rids = st.one_of(st.none(), st.binary(max_size=24), st.text(max_size=12).map(str.encode))
labels = st.lists(st.text(min_size=1, max_size=10), min_size=3, max_size=7, unique=True)


def _python(task: TaskSpec, encoding: str, rid: bytes | None, row: list[float]) -> bytes:
    codec = wire.ResultCodec(task, encoding)  # type: ignore[arg-type]
    return codec.encode(None if rid is None else rid.decode("utf-8", "replace"), row[0] if task.vector else row)


@settings(max_examples=400, deadline=None)
@given(rid=rids, score=numbers, encoding=st.sampled_from(["json", "f64le"]), regression=st.booleans())
def test_one_number_per_row_is_resultcodecs_bytes(
    rid: bytes | None, score: float, encoding: str, regression: bool
) -> None:
    task = TaskSpec.regression() if regression else TaskSpec.binary()
    native = harness_native.Results(encoding)
    assert native.encode(rid, [score]) == _python(task, encoding, rid, [score])


@settings(max_examples=300, deadline=None)
@given(rid=rids, classes=labels, data=st.data(), encoding=st.sampled_from(["json", "f64le"]))
def test_class_probabilities_are_resultcodecs_bytes(
    rid: bytes | None, classes: list[str], data: st.DataObject, encoding: str
) -> None:
    row = data.draw(
        st.lists(st.one_of(numbers, st.sampled_from([0.25, 0.5])), min_size=len(classes), max_size=len(classes))
    )
    native = harness_native.Results(encoding, classes)
    assert native.width == len(classes)
    assert native.encode(rid, row) == _python(TaskSpec.multiclass(classes), encoding, rid, row)


def test_the_encoder_refuses_what_it_does_not_know() -> None:
    with pytest.raises(ValueError, match="no native encoding"):
        harness_native.Results("avro")
    with pytest.raises(ValueError, match="a row of 2 values, expected 3"):
        harness_native.Results("json", ["a", "b", "c"]).encode(None, [0.5, 0.5])
    enc, why = result_values.native_encoder(wire.ResultCodec(TaskSpec.multiclass(["a", "b", "c"]), "f64le"))
    assert enc is not None and enc.width == 3 and why == ""


# ------------------------------------------------------------------------------------- on the real broker

N = 150


def _send(broker: str, topic: str, bundle: Bundle, encoding: str) -> tuple[np.ndarray, int]:
    """N reference rows with rids of every shape (none, quotes, not UTF-8) and one record that cannot be decoded;
    returns the rows and the count of records sent."""
    X = bundle.reference()[0][:N]
    codec = wire.FeatureCodec.for_bundle(bundle, encoding)  # type: ignore[arg-type]
    p = Producer({"bootstrap.servers": broker})
    for i, row in enumerate(X):
        rid: Any = [b"r-%d" % i, b'q"\\%d\x01' % i, b"\xff\xfe%d" % i, "é-%d".encode() % i, None][i % 5]
        headers = None if rid is None else [("rid", rid), ("t_intended_ns", b"%d" % time.time_ns())]
        p.produce(topic, key=b"%d" % i, value=codec.encode(row), headers=headers, partition=i % 2)
    p.produce(topic, key=b"bad", value=b"{broken" if encoding == "json" else b"\x00" * 7, partition=0)
    p.flush(10)
    return X, N + 1


def _loop(
    broker: str, bundle: Bundle, topic: str, out: str, encoding: str, log: list[str], shadow: tuple[str, str] | None
) -> ScoringLoop:
    cfg = LoopConfig(
        input_topic=topic,
        output_topic=out,
        dlq_topic=f"{out}.dlq",
        group=f"g-{out}",
        encoding=encoding,  # type: ignore[arg-type]
        scorer_name="native-model",
    )
    ops = None
    if shadow is not None:  # the same bundle published as the shadow version: its values are the live ones
        model_topic, shadow_topic = shadow
        load = adapter_class("native").load
        updates = ModelUpdates(
            KafkaTarget(broker), model_topic, "type", load, None, on_refused=lambda v, why: log.append(why)
        ).start()
        deadline = time.monotonic() + 60
        while updates.shadow() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert updates.shadow() is not None, log
        ops = Operations(bundle.model_id, "native", updates=updates, shadow_topic=shadow_topic, log=log.append)
    adapter = adapter_class("native").load(bundle)
    return ScoringLoop(KafkaTarget(broker), adapter, bundle.feature_names, cfg, log=log.append, ops=ops)


def _by_src(msgs: list[Any]) -> dict[bytes, Any]:
    return {wire.headers_dict(m.headers())[wire.H_SRC]: m for m in msgs}


@pytest.mark.parametrize("encoding", ["json", "f64le"])
@pytest.mark.parametrize("which", ["regression", "multiclass"])
def test_the_loops_task_results_are_the_python_encoders_bytes(
    broker: str, rul_bundle: Path, type_bundle: Path, which: str, encoding: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    b = Bundle.open(rul_bundle if which == "regression" else type_bundle)
    assert b.task.task == which
    topic = f"nres-{which}-{encoding}-{uuid.uuid4().hex[:6]}"
    create_topic(broker, topic, partitions=2)
    X, sent = _send(broker, topic, b, encoding)
    shadowed = which == "multiclass"
    if shadowed:
        publish(KafkaTarget(broker), f"{topic}.models", version_of(type_bundle, "type", mode="shadow"))
    logs: dict[str, list[str]] = {"native": [], "python": []}
    loops = {}
    for path in ("native", "python"):
        out = f"{topic}.{path}"
        for t in (out, f"{out}.dlq", f"{out}.shadow"):
            create_topic(broker, t, partitions=2)
        shadow = (f"{topic}.models", f"{out}.shadow") if shadowed else None
        with monkeypatch.context() as m:
            if path == "python":  # as for a task or encoding native code does not know
                m.setattr(result_values, "native_encoder", lambda codec: (None, "forced by the test"))
            loops[path] = _loop(broker, b, topic, out, encoding, logs[path], shadow)
    assert loops["native"].values.native is not None and loops["python"].values.native is None
    threads = [
        threading.Thread(target=lp.run, kwargs={"max_records": sent, "idle_exit_s": 20}, daemon=True)
        for lp in loops.values()
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not any(t.is_alive() for t in threads)
    for lp in loops.values():
        if lp.ops.updates is not None:
            lp.ops.updates.close()
    fallback = [line for line in logs["python"] if "encoded in Python" in line]
    assert len(fallback) == 1 and "forced by the test" in fallback[0] and which in fallback[0], logs["python"]
    assert not [line for line in logs["native"] if "encoded in Python" in line], logs["native"]

    codec = wire.ResultCodec(b.task, encoding)  # type: ignore[arg-type]
    with adapter_class("native").load(b) as model:
        expected = model.predict(X)
    got = {path: _by_src(consume_all(broker, f"{topic}.{path}", N)) for path in loops}
    assert len(got["native"]) == len(got["python"]) == N
    assert set(got["native"]) == set(got["python"])
    for src, nat in got["native"].items():
        py = got["python"][src]
        assert nat.value() == py.value(), (src, nat.value(), py.value())  # byte for byte
        assert nat.key() == py.key()
        hn, hp = nat.headers(), py.headers()
        assert [k for k, _ in hn] == [k for k, _ in hp]
        assert [h for h in hn if h[0] not in (wire.H_CONSUMED, wire.H_SCORED)] == [
            h for h in hp if h[0] not in (wire.H_CONSUMED, wire.H_SCORED)
        ]
        i = int(nat.key())
        rid = wire.headers_dict(hn).get(wire.H_RID)
        value = codec.decode(nat.value())
        assert np.allclose(value, expected[i], rtol=1e-12, atol=0)  # the model's prediction for that row
        # and the bytes are the Python encoder's of that value (the same digits orjson writes)
        rid_text = None if rid is None else rid.decode("utf-8", "replace")
        assert nat.value() == codec.encode(rid_text, value if b.task.vector else value.tolist())
        if encoding == "json" and which == "multiclass":
            assert orjson.loads(nat.value())["class"] == b.task.classes[int(np.argmax(expected[i]))]
    for path in loops:
        (dead,) = consume_all(broker, f"{topic}.{path}.dlq", 1)
        assert dead.key() == b"bad" and wire.headers_dict(dead.headers())["dlq_stage"] == b"decode"
        assert committed_offsets(broker, f"g-{topic}.{path}", topic) == (sent, sent)
    if shadowed:  # the shadow version is the live one: its values are the results' values, both ways encoded
        shadows = {path: _by_src(consume_all(broker, f"{topic}.{path}.shadow", N)) for path in loops}
        assert len(shadows["native"]) == len(shadows["python"]) == N
        for src, nat in got["native"].items():
            assert shadows["native"][src].value() == shadows["python"][src].value() == nat.value()
    assert math.isfinite(loops["native"].stats.predict_seconds)
