"""Model versions that carry the model (real broker): every format's bundle travels as compressed,
content-addressed chunks and arrives bit for bit; a corrupted or partial upload is refused with an alert while
the old model keeps scoring; superseded chunks are tombstoned; the model topic's settings are enforced; two
scorers that share no folder both receive a new version from Kafka alone and swap, in order per partition."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

from adapters.bundle import Bundle
from adapters.registry import adapter_class
from harness.bench.loadgen import send
from harness.bench.measure import Measurer, PointSpec
from harness.kafka.broker import free_port
from harness.kafka.config import KafkaTarget
from harness.modelbuild.parity import EVALUATOR
from harness.scoring import wire
from harness.scoring.bundle_transfer import (
    MODEL_TOPIC_CONFIG,
    chunk_key,
    ensure_model_topic,
    model_topic_limit,
    pack,
    read_index,
    version_key,
)
from harness.scoring.errors import ScoringSetupError
from harness.scoring.models import ModelCache, ModelVersion, check_candidate, publish_bundle, read_current
from tests.conftest import HARNESS, ROOT, create_topic
from tests.test_operations import _families, _payloads, _sample


def _scorer(cwd: Path, broker: str, topic: str, models: str, *extra: str) -> subprocess.Popen[str]:
    """A scorer with a working directory of its own and no --bundle: its model comes from the model topic."""
    cwd.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(
        [*HARNESS, "score", "--adapter", "native", "--input-topic", topic, "--output-topic", f"{topic}.out",
         "--group", f"g-{topic}", "--bootstrap", broker, "--model-topic", models, "--model-name", "fraud",
         "--model-cache-dir", str(cwd / "models"), *extra],
        cwd=cwd, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.startswith("READY"), (line, proc.stderr.read() if proc.poll() is not None else "")
    return proc


def _alerts(broker: str, topic: str, n: int, timeout_s: float = 60.0) -> list[dict]:  # type: ignore[type-arg]
    c = Consumer({"bootstrap.servers": broker, "group.id": f"a-{time.time_ns()}", "enable.auto.commit": False})
    c.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    events: list[dict] = []  # type: ignore[type-arg]
    deadline = time.monotonic() + timeout_s
    while len(events) < n and time.monotonic() < deadline:
        events += [json.loads(m.value()) for m in c.consume(10, timeout=1) if m.error() is None]
    c.close()
    return events


def _results(broker: str, topic: str, n: int, timeout_s: float = 60.0) -> list:  # type: ignore[type-arg]
    c = Consumer({"bootstrap.servers": broker, "group.id": f"r-{time.time_ns()}", "enable.auto.commit": False})
    md = c.list_topics(topic, timeout=10)
    c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in md.topics[topic].partitions])
    out: list = []  # type: ignore[type-arg]
    deadline = time.monotonic() + timeout_s
    while len(out) < n and time.monotonic() < deadline:
        out += [m for m in c.consume(500, timeout=1) if m.error() is None]
    c.close()
    return out


def _models_of(results: list) -> list[str]:  # type: ignore[type-arg]
    return [wire.headers_dict(r.headers())["model"].decode() for r in results]


def test_every_format_travels_over_kafka_and_arrives_intact(
    broker: str, bundles: dict[str, Path], tmp_path: Path, topic_name: str
) -> None:
    """LightGBM (native, ONNX, the compiled C library, PMML, PFA) and H2O (the MOJO, ...) bundles, in 64 KiB chunks:
    each received bundle loads in every format's own evaluator and scores its reference rows as built."""
    target = KafkaTarget(broker)
    for scenario in ("fraud", "maintenance"):
        src = bundles[scenario]
        done = publish_bundle(target, topic_name, src, "fraud", chunk_bytes=64 * 1024)
        assert done.chunks_sent == done.chunks > len(done.version.files or [])  # the larger files span chunks
        assert done.bytes_sent < done.bundle_bytes  # compressed
        cache = ModelCache(tmp_path / scenario)
        version, root = read_current(target, topic_name, "fraud", cache)
        assert version.model_id == Bundle.open(src).model_id and root.parent == tmp_path / scenario
        received = Bundle.open(root)
        for fmt in received.formats():
            if fmt == "ir":
                continue
            assert (root / received.format_info(fmt)["file"]).read_bytes() == (
                src / received.format_info(fmt)["file"]
            ).read_bytes()
            adapter = check_candidate(version, lambda b, f=fmt: adapter_class(EVALUATOR[f]).load(b), root)
            adapter.close()
        mojo = {"h2o-mojo"} if scenario == "maintenance" else set()
        expected = {"native", "onnx", "codegen-c", "pmml", "pfa"} | mojo
        assert expected <= set(received.formats())
    again = publish_bundle(target, topic_name, bundles["maintenance"], "fraud", chunk_bytes=64 * 1024)
    assert again.chunks_sent == 0  # content-addressed: every chunk is already on the topic
    # the fraud bundle's chunks are superseded: tombstoned, so compaction removes them
    idx = read_index(target, topic_name)
    _, maintenance_chunks = pack(bundles["maintenance"], 64 * 1024)
    assert set(idx.chunks) == set(maintenance_chunks)
    assert set(idx.versions) == {"fraud"}


def test_the_model_topic_is_one_compacted_partition(broker: str, topic_name: str) -> None:
    target = KafkaTarget(broker)
    chunk = ensure_model_topic(target, topic_name)
    limit, policy = model_topic_limit(target, topic_name)
    assert policy == MODEL_TOPIC_CONFIG["cleanup.policy"] and chunk == limit - 4096
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": broker})
    bad = {
        f"{topic_name}-del": NewTopic(f"{topic_name}-del", 1, 1, config={"cleanup.policy": "compact,delete"}),
        f"{topic_name}-two": NewTopic(f"{topic_name}-two", 2, 1, config={"cleanup.policy": "compact"}),
    }
    for fut in admin.create_topics(list(bad.values())).values():
        fut.result(30)
    with pytest.raises(ScoringSetupError, match="cleanup.policy=compact,delete"):
        ensure_model_topic(target, f"{topic_name}-del")
    with pytest.raises(ScoringSetupError, match="2 partitions"):
        ensure_model_topic(target, f"{topic_name}-two")


def test_a_version_record_names_its_files_and_has_canonical_identity_bytes(small_bundle: Path) -> None:
    files, _ = pack(small_bundle, 4096)
    manifest = next(f for f in files if f.name == "manifest.json")
    v = ModelVersion(name="fraud", model_id="m", manifest_sha256=manifest.sha256, files=files, published_at=1.0)
    signed = v.model_copy(update={"signature": "sig"})
    assert v.identity_bytes() == signed.identity_bytes()  # the signature is not part of what it signs
    assert v.identity_bytes() == ModelVersion.model_validate_json(v.model_dump_json()).identity_bytes()
    assert json.loads(v.identity_bytes())["files"][0]["chunks"]
    with pytest.raises(ValueError, match="exactly one"):
        ModelVersion(name="fraud", model_id="m", manifest_sha256=manifest.sha256, files=files, bundle="/b")
    with pytest.raises(ValueError, match="manifest.json"):
        ModelVersion(name="fraud", model_id="m", manifest_sha256="0" * 64, files=files)
    with pytest.raises(ValueError, match="model_id"):  # it names the folder a scorer assembles into
        ModelVersion(name="fraud", model_id="../../home", manifest_sha256=manifest.sha256, files=files)
    evil = [f.model_dump() for f in files]
    evil[0]["name"] = "../../etc/passwd"
    with pytest.raises(ValueError, match="plain name"):
        ModelVersion.model_validate({"name": "f", "model_id": "m", "manifest_sha256": manifest.sha256, "files": evil})


def _upload(broker: str, topic: str, bundle: Path, chunk_bytes: int, corrupt: int | None, drop: int | None) -> str:
    """The records of a version written by hand: one chunk's bytes changed under its key, or one chunk left out."""
    from harness.scoring.models import manifest_sha256

    files, chunks = pack(bundle, chunk_bytes)
    order = [sha for f in sorted(files, key=lambda f: -len(f.chunks)) for sha in f.chunks]
    p = Producer({"bootstrap.servers": broker, "acks": "all"})
    for i, sha in enumerate(order):
        value = chunks[sha]
        if i == drop:
            continue
        if i == corrupt:
            value = value[:100] + bytes([value[100] ^ 0xFF]) + value[101:]
        p.produce(topic, key=chunk_key(sha), value=value)
    p.flush(30)
    v = ModelVersion(
        name="fraud", model_id=Bundle.open(bundle).model_id, manifest_sha256=manifest_sha256(bundle), files=files
    )
    p.produce(topic, key=version_key("fraud", "live"), value=v.model_dump_json(exclude_none=True).encode())
    p.flush(30)
    return v.model_id


def test_a_corrupted_or_partial_upload_is_refused_with_an_alert(
    broker: str, small_bundle: Path, second_bundle: Path, topic_name: str, tmp_path: Path
) -> None:
    create_topic(broker, topic_name, partitions=1)
    models, alerts = f"{topic_name}.models", f"{topic_name}.alerts"
    target = KafkaTarget(broker)
    publish_bundle(target, models, small_bundle, "fraud")
    old, new = Bundle.open(small_bundle).model_id, Bundle.open(second_bundle).model_id
    port = free_port()
    proc = _scorer(tmp_path / "host", broker, topic_name, models, "--alerts-topic", alerts, "--metrics-port", str(port))
    try:
        _upload(broker, models, second_bundle, 4096, corrupt=0, drop=None)
        _upload(broker, models, second_bundle, 5000, corrupt=None, drop=1)
        events = _alerts(broker, alerts, 2)
        send({"bootstrap.servers": broker}, topic_name, _payloads(small_bundle, 50), np.arange(50) / 200, "a",
             time.time_ns(), 50)  # fmt: skip
        before = _results(broker, f"{topic_name}.out", 50)
        # the same version published properly: the corrupted chunk is sent again (its key held bad bytes)
        done = publish_bundle(target, models, second_bundle, "fraud", chunk_bytes=4096)
        deadline = time.monotonic() + 60
        while _sample(_families(port), "harness_score_model_swaps") < 1 and time.monotonic() < deadline:
            time.sleep(0.2)
        send({"bootstrap.servers": broker}, topic_name, _payloads(small_bundle, 50), np.arange(50) / 200, "b",
             time.time_ns(), 50)  # fmt: skip
        after = _results(broker, f"{topic_name}.out", 100)
        fam = _families(port)
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    assert [e["rule"] for e in events] == ["ModelVersionRefused", "ModelVersionRefused"], events
    assert "corrupted upload" in events[0]["message"] and "partial upload" in events[1]["message"], events
    assert "refused: corrupted upload" in err and "the model in use keeps scoring" in err
    assert len(before) == 50 and set(_models_of(before)) == {old}  # scoring went on with the old model
    assert 1 <= done.chunks_sent < done.chunks  # only what was missing or corrupted was sent again
    assert _models_of(after)[50:] == [new] * 50, err[-2000:]
    assert _sample(fam, "harness_score_model_refused") == 2 and _sample(fam, "harness_score_model_swaps") == 1
    kept = {p.name.rsplit("-", 1)[0] for p in (tmp_path / "host" / "models").iterdir()}
    assert kept == {old, new}  # the refused uploads left nothing behind


def test_two_scorers_without_a_shared_folder_both_swap_in_order(
    broker: str, small_bundle: Path, second_bundle: Path, topic_name: str, tmp_path: Path
) -> None:
    """Two scorers as on two hosts: each its own working directory and model cache, no --bundle, one consumer
    group over two partitions. A new version published under load reaches both from Kafka alone; every record is
    scored once, and per partition the old model's results never follow the new model's."""
    create_topic(broker, topic_name, partitions=2)
    models = f"{topic_name}.models"
    target = KafkaTarget(broker)
    publish_bundle(target, models, small_bundle, "fraud")
    old, new = Bundle.open(small_bundle).model_id, Bundle.open(second_bundle).model_id
    hosts = [tmp_path / "host-a", tmp_path / "host-b"]
    procs = [_scorer(h, broker, topic_name, models, "--scorer-name", h.name) for h in hosts]
    _, y, p = Bundle.open(small_bundle).reference()
    m = Measurer(target, f"{topic_name}.out", f"{topic_name}.dlq", "json", p, y)
    m.start()
    try:
        from harness.kafka.topics import wait_group_stable

        wait_group_stable(target, f"g-{topic_name}", 2, 60)
        rate, seconds = 1000.0, 8.0
        offsets = np.arange(int(rate * seconds)) / rate
        t0 = time.time_ns() + 300_000_000
        m.add_point(PointSpec("two", t0, 0.0, seconds, len(offsets), offsets))
        timer = threading.Timer(2.5, lambda: publish_bundle(target, models, second_bundle, "fraud"))
        timer.start()
        rep = send(target.client_config(), topic_name, _payloads(small_bundle, 500), offsets, "two", t0, 50)
        timer.join()
        m.wait_drained("two", rep.sent, 20)
        s = m.summary("two", 1.0, 1.0, 3, 100, sent=rep.sent)
        breaks = m.model_order_breaks("two", old, new)
    finally:
        m.close()
        errs = []
        for proc in procs:
            proc.terminate()
            errs.append(proc.communicate(timeout=30)[1])
    results = _results(broker, f"{topic_name}.out", rep.sent)
    by_scorer: dict[str, list[str]] = {}
    for r in results:
        h = wire.headers_dict(r.headers())
        by_scorer.setdefault(h["scorer"].decode(), []).append(h["model"].decode())
    assert s.counts.sent == 8000 and s.counts.scored == 8000 and s.counts.lost == 0 and s.counts.duplicates == 0
    assert set(by_scorer) == {"host-a", "host-b"}, by_scorer.keys()
    for name, seen in by_scorer.items():
        assert seen[0] == old and seen[-1] == new, (name, errs)  # each scorer started old and ended new
    assert breaks == 0  # per partition: old results, then new ones, never mixed
    for host, err in zip(hosts, errs, strict=True):
        assert f"starting with {old}" in err and "checked and swapped in between two batches" in err, err[-1500:]
        assert (host / "models").is_dir()
