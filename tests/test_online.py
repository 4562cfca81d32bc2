"""Online learning in the scoring loop, on the real broker: labels from a feedback topic teach the learner;
a scorer killed mid-stream resumes from its checkpoint, each label applied once; bad feedback is counted and
never stops the loop; a corrupt checkpoint is refused, a cold start is an explicit choice."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
from confluent_kafka import Producer

from adapters.bundle import Bundle
from adapters.online import OnlineAdapter
from harness.bench.loadgen import send
from harness.scoring import wire
from tests.conftest import HARNESS, ROOT, create_topic, stats_of


def _start(args: list[str]) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [*HARNESS, "score", *args], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        stdin=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.startswith("READY"), (line, proc.stderr.read() if proc.poll() is not None else "")
    return proc


def _args(broker: str, bundle: Path, topic: str, ckpt: Path, *extra: str) -> list[str]:
    return [
        "--bundle", str(bundle), "--adapter", "online", "-o", "model=lr", "--input-topic", topic,
        "--output-topic", f"{topic}.out", "--group", f"g-{topic}", "--bootstrap", broker,
        "--feedback-topic", f"{topic}.labels", "--checkpoint-file", str(ckpt), "--checkpoint-every-s", "0.5", *extra,
    ]  # fmt: skip


def _records_and_labels(broker: str, bundle: Path, topic: str, prefix: str, n: int) -> None:
    b = Bundle.open(bundle)
    X, y, _ = b.reference()
    codec = wire.FeatureCodec(b.feature_names, "json")
    payloads = [codec.encode(r) for r in X]
    send({"bootstrap.servers": broker}, topic, payloads, np.arange(n) / 2000.0, prefix, time.time_ns(), 100)
    p = Producer({"bootstrap.servers": broker})
    for seq in range(n):
        rid = wire.record_id(prefix, seq)
        p.produce(f"{topic}.labels", key=rid.encode(), value=json.dumps({"rid": rid, "label": int(y[seq % len(y)])}))
    p.flush(10)


def _topics(broker: str, topic: str) -> None:
    """The input topic and its feedback topic (the one _args names), one partition each."""
    create_topic(broker, topic, partitions=1)
    create_topic(broker, f"{topic}.labels", partitions=1)


def _learned(ckpt: Path) -> int:
    if not ckpt.is_file():
        return -1
    header, _ = OnlineAdapter.read_header(ckpt.read_bytes())
    return int(header["learned"])


def _wait_learned(ckpt: Path, at_least: int, timeout_s: float = 60.0) -> int:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        n = _learned(ckpt)
        if n >= at_least:
            return n
        time.sleep(0.2)
    raise AssertionError(f"the checkpoint has {_learned(ckpt)} labels learnt, expected {at_least}")


def test_a_killed_learner_resumes_from_its_checkpoint_each_label_once(
    broker: str, small_bundle: Path, topic_name: str, tmp_path: Path
) -> None:
    _topics(broker, topic_name)
    ckpt = tmp_path / "learner.ckpt"
    warm = len(Bundle.open(small_bundle).reference()[1])  # the reference rows the learner starts from
    first = _start(_args(broker, small_bundle, topic_name, ckpt))
    _records_and_labels(broker, small_bundle, topic_name, "a", 1500)
    _wait_learned(ckpt, warm + 1500)
    os.killpg(first.pid, signal.SIGKILL)  # kill -9: no goodbye checkpoint
    first.communicate(timeout=30)
    second = _start(_args(broker, small_bundle, topic_name, ckpt))
    _records_and_labels(broker, small_bundle, topic_name, "b", 1000)
    _wait_learned(ckpt, warm + 2500)
    time.sleep(2.0)  # a few more checkpoints: nothing is learnt twice
    second.terminate()
    out, err = second.communicate(timeout=60)
    assert f"learner restored from its checkpoint: {warm + 1500} labels learnt" in err, err[-2000:]
    assert _learned(ckpt) == warm + 2500  # every label exactly once, across the kill
    stats = stats_of(out)
    assert stats["learning"]["restored_from"] == warm + 1500 and stats["learning"]["labels"] == 1000


def test_bad_feedback_is_counted_and_never_stops_the_loop(
    broker: str, small_bundle: Path, topic_name: str, tmp_path: Path
) -> None:
    _topics(broker, topic_name)
    proc = _start(_args(broker, small_bundle, topic_name, tmp_path / "c.ckpt", "--join-window-s", "1"))
    p = Producer({"bootstrap.servers": broker})
    for bad in (b"not json", b'{"rid": "x", "label": "yes"}', b'{"label": 1}', b'{"rid": "nobody-7", "label": 1}'):
        p.produce(f"{topic_name}.labels", value=bad)
    p.flush(10)
    _records_and_labels(broker, small_bundle, topic_name, "c", 300)
    time.sleep(4.0)
    proc.terminate()
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err[-2000:]
    stats = stats_of(out)
    assert stats["scored"] == 300
    assert stats["learning"]["malformed"] == 3 and stats["learning"]["unjoined"] == 1
    assert stats["learning"]["labels"] == 300


def test_a_corrupt_checkpoint_is_refused_and_a_cold_start_is_explicit(
    broker: str, small_bundle: Path, topic_name: str, tmp_path: Path
) -> None:
    _topics(broker, topic_name)
    ckpt = tmp_path / "bad.ckpt"
    ckpt.write_bytes(b"HRLS" + b"\x01\x00" + b"garbage")
    r = subprocess.run(
        [*HARNESS, "score", *_args(broker, small_bundle, topic_name, ckpt), "--max-records", "1"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert r.returncode != 0 and "Traceback" not in r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and "checkpoint is refused" in lines[0] and "--cold-start" in lines[0], r.stderr
    proc = _start(_args(broker, small_bundle, topic_name, ckpt, "--cold-start"))
    proc.terminate()
    _, err = proc.communicate(timeout=60)
    assert "starting cold as asked" in err
