"""Regression and multiclass models through the production path on the real broker: the scoring loop's results
carry what the task produces (a value; the class and every class probability), the V2 server answers with the
task's output, and `harness monitor` alerts when a regression model's predictions drift and its live RMSE rises."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import httpx
import numpy as np
from confluent_kafka import Producer
from prometheus_client.parser import text_string_to_metric_families

from adapters.bundle import Bundle
from harness.bench.loadgen import send
from harness.datagen import maintenance
from harness.kafka.broker import free_port
from harness.scoring import wire
from tests.conftest import (
    HARNESS,
    ROOT,
    alert_events,
    consume_all,
    create_topic,
    finish_loop,
    publisher_key,
    publisher_keys,
    start_loop,
    trusted,
)
from tests.test_monitoring import WINDOW_S, end_monitored, monitored_loop, psi_drift_alert


def test_the_loop_writes_each_tasks_results(broker: str, rul_bundle: Path, type_bundle: Path, topic_name: str) -> None:
    conf = {"bootstrap.servers": broker}
    for bundle, adapter, encoding in ((type_bundle, "codegen-c", "json"), (rul_bundle, "native", "f64le")):
        b = Bundle.open(bundle)
        topic = f"{topic_name}-{b.task.task}"
        create_topic(broker, topic, partitions=2)
        loop = start_loop(broker, bundle, adapter, topic, f"g-{topic}", "--encoding", encoding, "--max-records", "300")
        X, _, p = b.reference()
        codec = wire.FeatureCodec.for_bundle(b, encoding)
        send(conf, topic, [codec.encode(r) for r in X[:300]], np.arange(300) / 2000, "t", time.time_ns(), 50)
        finish_loop(loop)
        results = consume_all(broker, f"{topic}.out", 300)
        assert len(results) == 300
        for m in results:
            seq = wire.parse_record_id(dict(m.headers())[wire.H_RID].decode())[1]  # type: ignore[index]
            if b.task.task == "multiclass":
                body = json.loads(m.value())
                probs = np.array([body["probabilities"][c] for c in b.task.classes])
                assert list(body["probabilities"]) == list(b.task.classes)
                assert body["class"] == b.task.classes[int(np.argmax(p[seq]))]
                assert np.abs(probs - p[seq]).max() < 1e-9 and abs(probs.sum() - 1) < 1e-9
            else:  # eight bytes: the predicted remaining life, as the bundle's reference
                assert len(m.value()) == 8 and abs(wire.decode_score(m.value(), "f64le") - p[seq]) < 1e-9


def test_the_v2_server_answers_with_the_tasks_output(type_bundle: Path, rul_bundle: Path) -> None:
    for bundle, name, width in ((type_bundle, "probabilities", 6), (rul_bundle, "prediction", None)):
        port = free_port()
        server = subprocess.Popen(
            [*HARNESS, "serve", "--bundle", str(bundle), "--adapter", "native", "--port", str(port)],
            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            b = Bundle.open(bundle)
            X, _, p = b.reference()
            base = f"http://127.0.0.1:{port}/v2/models/{b.model_id}"
            for _ in range(300):
                try:
                    meta = httpx.get(base, timeout=2).json()
                    break
                except httpx.TransportError:
                    time.sleep(0.2)
            assert meta["outputs"][0]["name"] == name
            body = {"inputs": [{"name": "input", "shape": [3, X.shape[1]], "datatype": "FP64",
                                "data": [None if np.isnan(v) else v for v in X[:3].reshape(-1)]}]}  # fmt: skip
            out = httpx.post(f"{base}/infer", json=body, timeout=10).json()["outputs"][0]
            assert out["name"] == name
            got = np.asarray(out["data"]).reshape(out["shape"])
            assert got.shape == ((3, width) if width else (3,)) and np.abs(got - p[:3]).max() < 1e-9
            if width:
                assert meta["parameters"]["classes"] == ",".join(b.task.classes)
        finally:
            server.terminate()
            server.communicate(timeout=30)


RATE = 400.0


def test_the_monitor_alerts_when_a_regression_models_predictions_drift(
    broker: str, rul_bundle: Path, topic_name: str
) -> None:
    """Readings from worn tools (tool wear +90 min, as a sensor that drifted would report) move the predicted
    remaining life: the score drift alert fires on the predictions, and the labels that come back (the true
    remaining life) show the live RMSE far above the reference's."""
    b = Bundle.open(rul_bundle)
    port = free_port()
    m = monitored_loop(broker, rul_bundle, topic_name, port, "--join-window-s", "5")
    alerts, feedback, monitor = m.alerts, m.feedback, m.monitor
    try:
        time.sleep(3.0)  # the monitor joins its group and opens its first window
        conf = {"bootstrap.servers": broker}
        codec = wire.FeatureCodec.for_bundle(b, "json")
        X, y, _ = b.reference()
        send(conf, topic_name, [codec.encode(r) for r in X], np.arange(int(RATE * 4)) / RATE, "ref",
             time.time_ns() + 100_000_000, 50)  # fmt: skip
        frame = maintenance.generate(3000, 21, target="rul")
        truth = frame["label"].to_numpy()
        frame["tool_wear_min"] += 90.0
        drifted = frame[b.feature_names].to_numpy(dtype=np.float64)
        drift_at_ns = time.time_ns()
        n = int(RATE * 6)
        send(conf, topic_name, [codec.encode(r) for r in drifted], np.arange(n) / RATE, "drift",
             time.time_ns() + 100_000_000, 50)  # fmt: skip
        p = Producer(conf)
        for seq in range(n):
            rid = wire.record_id("drift", seq)
            p.produce(feedback, value=json.dumps({"rid": rid, "label": float(truth[seq % len(truth)])}))
        p.flush(10)
        metrics = ""
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:  # until a window has seen the labels (the monitor keeps running)
            metrics = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
            ratio = {f.name: f for f in text_string_to_metric_families(metrics)}["harness_monitor_rmse_ratio"]
            if ratio.samples and ratio.samples[0].value > 1.25:
                break
            time.sleep(WINDOW_S)
        monitor.send_signal(signal.SIGTERM)
        out, err = monitor.communicate(timeout=60)
        assert monitor.returncode == 0, err[-2000:]
    finally:
        end_monitored(m)

    by_rule, drift, start = psi_drift_alert(broker, alerts, err)
    assert drift["figure"] == "score_psi" and drift["value"] > 0.2 and drift["model_id"] == b.model_id
    assert start >= drift_at_ns / 1e9 - WINDOW_S - 1, (drift, drift_at_ns)  # not before the drift began
    assert "LiveRMSERose" in by_rule, (by_rule, err[-2000:])
    assert by_rule["LiveRMSERose"]["value"] > 1.25 and "ScoreDriftKS" in by_rule
    log = " ".join(err.split())  # the console wraps long lines
    assert "(regression; reference rmse" in log and " rmse " in log and "ALERT ScoreDriftPSI" in log
    families = {f.name: f for f in text_string_to_metric_families(metrics)}
    assert families["harness_monitor_rmse_ratio"].samples[0].value > 1.25
    assert families["harness_monitor_live_rmse"].samples[0].value > 20  # minutes of remaining life
    print(
        f"ScoreDriftPSI {drift['value']:.3f} (threshold {drift['threshold']}), ScoreDriftKS "
        f"{by_rule['ScoreDriftKS']['value']:.3f}, LiveRMSERose rmse_ratio {by_rule['LiveRMSERose']['value']:.2f}; "
        f"live RMSE {families['harness_monitor_live_rmse'].samples[0].value:.1f} min"
    )


def test_models_of_each_task_travel_over_the_model_topic_and_retrain_refuses_them(
    broker: str, rul_bundle: Path, type_bundle: Path, topic_name: str, tmp_path: Path
) -> None:
    """A regression and a multiclass bundle travel in chunks and arrive scoring as built (the transfer carries files,
    whatever the task); `harness retrain` trains and gates binary classifiers only and says so in one line."""
    from adapters.registry import adapter_class
    from harness.kafka.config import KafkaTarget
    from harness.scoring.models import ModelCache, publish_bundle, read_current

    target = KafkaTarget(broker)
    for name, src in (("rul", rul_bundle), ("type", type_bundle)):
        publish_bundle(target, topic_name, src, name, chunk_bytes=16 * 1024, signing_key=publisher_key())
        version, root = read_current(target, topic_name, name, ModelCache(tmp_path / name))
        received = Bundle.open(root)
        assert version.model_id == received.model_id == Bundle.open(src).model_id
        assert (
            received.task == Bundle.open(src).task
            and received.manifest["outputs"] == Bundle.open(src).task.output_names
        )
        X, _, p = received.reference()
        with adapter_class("codegen-c").load(received) as a:
            got = a.predict(X)
        assert got.shape == p.shape and np.abs(got - p).max() < 1e-9
    create_topic(broker, f"{topic_name}.in")
    create_topic(broker, f"{topic_name}.feedback")
    create_topic(broker, f"{topic_name}.alerts")
    r = subprocess.run(
        [*HARNESS, "retrain", "--input-topic", f"{topic_name}.in", "--feedback-topic", f"{topic_name}.feedback",
         "--model-topic", topic_name, "--model-name", "rul", "--alerts-topic", f"{topic_name}.alerts",
         "--bootstrap", broker, "--work-dir", str(tmp_path / "w"), "--signing-key", str(publisher_keys()[0])],
        cwd=ROOT, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert r.returncode != 0
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "is a regression model: harness retrain trains and gates binary classifiers" in lines[0]
    # a scorer of the regression model refuses a multiclass version published under its name, and keeps scoring
    alerts = f"{topic_name}.alerts"
    loop = start_loop(broker, rul_bundle, "codegen-c", f"{topic_name}.in", f"g-{topic_name}", "--model-topic",
                      topic_name, "--model-name", "rul", "--alerts-topic", alerts, *trusted())  # fmt: skip
    try:
        publish_bundle(target, topic_name, type_bundle, "rul", chunk_bytes=16 * 1024, signing_key=publisher_key())
        events = alert_events(broker, alerts, 1, timeout_s=60)
    finally:
        loop.terminate()
        loop.communicate(timeout=30)
    assert [e["rule"] for e in events] == ["ModelVersionRefused"], events
    assert events[0]["model_id"] == Bundle.open(rul_bundle).model_id
    assert (
        "is a multiclass model" in events[0]["message"]
        and "a new task needs its own output topic" in events[0]["message"]
    )
