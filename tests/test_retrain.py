"""`harness retrain` on the real broker: a training set built from the stream (feature records joined with the
labels on the feedback topic), a challenger trained with the champion's recipe and gated on a holdout of the same
window. On a drifted stream the challenger wins and is published (scorers swap to it); with labels flipped for a
share of the records (a poisoned feedback topic) it loses, nothing is published, the refusal is alerted and the
scorer goes on with the champion. The snapshot is reproducible: the same Parquet file trains the same model."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from confluent_kafka import Producer

from adapters.bundle import Bundle
from harness.datagen import generate
from harness.kafka.config import KafkaTarget
from harness.retraining.gate import judge
from harness.retraining.trainingset import read_snapshot
from harness.scoring import wire
from harness.scoring.models import ModelCache, publish_bundle, read_current
from tests.conftest import HARNESS, ROOT, create_topic, start_loop
from tests.test_model_transfer import _alerts, _models_of, _results
from tests.test_operations import _payloads


def _stream(broker: str, topic: str, feedback: str, bundle: Path, n: int, drift: float, flip: float, seed: int) -> None:
    """n feature records from the fraud generator (drifted by `drift`) with a rid each, and each one's label on
    the feedback topic by rid — flipped for a share `flip` of them."""
    b = Bundle.open(bundle)
    X, y, names = generate("fraud", n, seed, positive_rate=0.05, drift=drift)
    X = X[:, [names.index(f) for f in b.feature_names]]
    rng = np.random.default_rng([seed, 99])  # not the generator's own stream: flips independent of the rows
    flipped = rng.random(n) < flip
    labels = np.where(flipped, 1 - y, y)
    codec = wire.FeatureCodec.for_bundle(b, "json")
    p = Producer({"bootstrap.servers": broker, "linger.ms": 5})
    for i in range(n):
        rid = f"r{seed}-{i}"
        p.produce(topic, key=rid.encode(), value=codec.encode(X[i]), headers=[(wire.H_RID, rid.encode())])
        p.produce(feedback, key=rid.encode(), value=json.dumps({"rid": rid, "label": int(labels[i])}).encode())
        if i % 500 == 0:
            p.poll(0)
    p.produce(feedback, value=b"not a label")  # counted, never a stop
    p.flush(30)


def _retrain(broker: str, cwd: Path, topic: str, models: str, alerts: str, n: int) -> tuple[dict, str]:  # type: ignore[type-arg]
    cwd.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(
        [*HARNESS, "retrain", "--input-topic", topic, "--feedback-topic", f"{topic}.labels", "--model-topic", models,
         "--model-name", "fraud", "--alerts-topic", alerts, "--trigger", "labels", "--labels-every", str(n),
         "--min-labels", "2000", "--min-interval-s", "0", "--max-attempts", "1", "--work-dir", str(cwd / "work"),
         "--bootstrap", broker],
        cwd=cwd, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=600,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("RETRAIN ")]
    assert r.stdout.startswith("READY") and len(lines) == 1, r.stdout
    return json.loads(lines[0][8:]), r.stderr


def test_a_drifted_stream_trains_a_challenger_that_wins_and_is_published(
    broker: str, small_bundle: Path, topic_name: str, tmp_path: Path
) -> None:
    models, alerts, feedback = f"{topic_name}.models", f"{topic_name}.alerts", f"{topic_name}.labels"
    create_topic(broker, topic_name, partitions=2)
    create_topic(broker, feedback, partitions=2)
    target = KafkaTarget(broker)
    publish_bundle(target, models, small_bundle, "fraud")
    champion = Bundle.open(small_bundle).model_id
    _stream(broker, topic_name, feedback, small_bundle, 6000, drift=1.0, flip=0.0, seed=5)
    out, err = _retrain(broker, tmp_path / "retrain", topic_name, models, alerts, 6000)
    v = out["verdict"]
    assert out["outcome"] == "published", (v, err[-2000:])
    assert out["champion"] == champion and out["rows"] == 6000 and out["trigger"] == "labels"
    assert v["auc_gain"]["value"] >= 0.01 and v["auc_gain"]["lo"] > 0, v
    assert v["challenger_auc"]["value"] > v["champion_auc"]["value"]
    assert abs(v["rows"] - 1800) <= 1  # a 30% holdout of the window, stratified
    # the model topic's current version is the challenger, carried over Kafka
    version, root = read_current(target, models, "fraud", ModelCache(tmp_path / "check"))
    assert version.model_id == out["challenger"] != champion and version.carried
    manifest = Bundle.open(root).manifest
    assert manifest["trainer"]["params"] == Bundle.open(small_bundle).manifest["trainer"]["params"]  # the recipe
    assert set(manifest["formats"]) == set(Bundle.open(small_bundle).manifest["formats"])  # every format, gated
    assert all(f["parity"]["passed"] for name, f in manifest["formats"].items())
    # the snapshot: the rows, where each came from, the join's statistics
    snap = Path(out["snapshot"])
    table = pq.read_table(snap)
    assert table.num_rows == 6000 and {"src", "rid", "input_offset", "feedback_offset", "holdout"} <= set(
        table.column_names
    )
    meta = read_snapshot(snap).meta
    assert meta["join"]["labels_joined"] == 6000 and meta["join"]["labels_malformed"] == 1, meta["join"]
    assert sum(hi - lo + 1 for lo, hi in meta["offsets"]["input"].values()) == 6000
    # reproducible: the same snapshot trains the same challenger (same model id, same predictions)
    again = subprocess.run(
        [*HARNESS, "retrain", "--input-topic", "x", "--feedback-topic", "x", "--model-topic", "x", "--model-name",
         "x", "--from-snapshot", str(snap), "--bundle", str(small_bundle), "--work-dir", str(tmp_path / "again")],
        cwd=ROOT, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert again.returncode == 0, again.stderr[-2000:]
    redo = json.loads(again.stdout)
    assert redo["challenger"] == out["challenger"]
    assert redo["verdict"]["challenger_auc"] == v["challenger_auc"]


def test_poisoned_labels_are_refused_and_the_champion_keeps_scoring(
    broker: str, small_bundle: Path, topic_name: str, tmp_path: Path
) -> None:
    """No drift, but the feedback topic's labels are flipped for 40% of the records: the challenger learns the
    noise, loses against the champion on the holdout, and is not published; an alert says why."""
    models, alerts, feedback = f"{topic_name}.models", f"{topic_name}.alerts", f"{topic_name}.labels"
    create_topic(broker, topic_name, partitions=2)
    create_topic(broker, feedback, partitions=2)
    target = KafkaTarget(broker)
    publish_bundle(target, models, small_bundle, "fraud")
    champion = Bundle.open(small_bundle).model_id
    scored = f"{topic_name}.live"
    create_topic(broker, scored, partitions=1)
    scorer = start_loop(broker, small_bundle, "native", scored, f"g-{scored}", "--model-topic", models,
                        "--model-name", "fraud")  # fmt: skip
    try:
        _stream(broker, topic_name, feedback, small_bundle, 6000, drift=0.0, flip=0.4, seed=6)
        out, err = _retrain(broker, tmp_path / "retrain", topic_name, models, alerts, 6000)
        events = _alerts(broker, alerts, 1)
        from harness.bench.loadgen import send

        send({"bootstrap.servers": broker}, scored, _payloads(small_bundle, 50), np.arange(50) / 200, "p",
             time.time_ns(), 50)  # fmt: skip
        results = _results(broker, f"{scored}.out", 50)
    finally:
        scorer.terminate()
        scorer.communicate(timeout=30)
    v = out["verdict"]
    assert out["outcome"] == "refused", (v, err[-2000:])
    assert v["auc_gain"]["value"] < 0.01 and "published_ns" not in out
    assert "refused, the champion" in err and "stays" in err
    assert [e["rule"] for e in events] == ["RetrainRefused"] and champion in events[0]["message"], events
    version, _ = read_current(target, models, "fraud", ModelCache(tmp_path / "check"))
    assert version.model_id == champion  # nothing published
    assert len(results) == 50 and set(_models_of(results)) == {champion}


def test_the_gate_judges_with_paired_intervals() -> None:
    rng = np.random.default_rng(0)
    y = (rng.random(4000) < 0.1).astype(int)
    good = np.clip(0.1 + 0.5 * y + rng.normal(0, 0.2, 4000), 0.001, 0.999)
    noisy = np.clip(0.1 + 0.2 * y + rng.normal(0, 0.2, 4000), 0.001, 0.999)
    win = judge(y, noisy, good, margin=0.01)
    assert win.publish and win.auc_gain.lo > 0.01 and win.challenger_auc.lo <= win.challenger_auc.value
    lose = judge(y, good, noisy, margin=0.01)
    assert not lose.publish and "below the margin" in lose.reason
    same = judge(y, good, good + rng.normal(0, 1e-4, 4000), margin=0.0)
    assert not same.publish and "within noise" in same.reason
    with pytest.raises(ValueError, match="both classes"):
        judge(np.zeros(10, dtype=int), good[:10], good[:10])


def test_the_retrain_service_serves_metrics_and_health_and_stops_on_sigterm(
    broker: str, small_bundle: Path, topic_name: str, tmp_path: Path
) -> None:
    import httpx
    from prometheus_client.parser import text_string_to_metric_families

    from harness.kafka.broker import free_port

    models, feedback = f"{topic_name}.models", f"{topic_name}.labels"
    create_topic(broker, topic_name, partitions=1)
    create_topic(broker, feedback, partitions=1)
    publish_bundle(KafkaTarget(broker), models, small_bundle, "fraud")
    _stream(broker, topic_name, feedback, small_bundle, 300, drift=0.0, flip=0.0, seed=7)
    port = free_port()
    settings = {  # every option from the environment, as in a container
        "INPUT_TOPIC": topic_name, "FEEDBACK_TOPIC": feedback, "MODEL_TOPIC": models, "MODEL_NAME": "fraud",
        "TRIGGER": "labels schedule", "METRICS_PORT": str(port), "BOOTSTRAP": broker, "WORK_DIR": str(tmp_path / "w"),
    }  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT), **{f"HARNESS_{k}": v for k, v in settings.items()}}
    proc = subprocess.Popen([*HARNESS, "retrain"], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)  # fmt: skip
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "READY", proc.stderr.read() if proc.poll() is not None else ""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            fam = {
                f.name: f for f in text_string_to_metric_families(httpx.get(f"http://127.0.0.1:{port}/metrics").text)
            }
            if fam["harness_retrain_labels_joined"].samples[0].value >= 300:
                break
            time.sleep(0.3)
        ready = httpx.get(f"http://127.0.0.1:{port}/health/ready", timeout=5)
        live = httpx.get(f"http://127.0.0.1:{port}/health/live", timeout=5)
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err[-2000:]
    assert ready.status_code == 200 and ready.json() == {"ready": True, "champion": True, "assigned": True}
    assert live.status_code == 200
    assert fam["harness_retrain_labels_joined"].samples[0].value == 300
    assert fam["harness_retrain_window_rows"].samples[0].value == 300
    assert fam["harness_retrain_labels_malformed"].samples[0].value == 1
    champion = fam["harness_retrain_champion_info"].samples[0].labels["model_id"]
    assert champion == Bundle.open(small_bundle).model_id  # received from the model topic
    assert "RETRAIN" not in out  # 300 labels: below --min-labels, no attempt
