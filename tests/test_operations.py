"""Operating the scorer (real broker): /metrics scraped and parsed with prometheus_client's own parser,
health endpoints, every option from the environment, a model hot-swapped under load without losing a record,
a tampered version refused with an alert while the old model keeps scoring, and the V2 server's /metrics."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

import httpx
import numpy as np
from confluent_kafka import Producer
from prometheus_client.parser import text_string_to_metric_families

from adapters.bundle import Bundle
from harness.bench.loadgen import send
from harness.bench.measure import Measurer, PointSpec
from harness.kafka.broker import free_port
from harness.kafka.config import KafkaTarget
from harness.scoring import wire
from harness.scoring.models import publish, version_of
from tests.conftest import HARNESS, ROOT, alert_events, consume_all, create_topic, publisher_key, trusted


def _scorer(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [*HARNESS, "score", *args],
        cwd=ROOT,
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.startswith("READY"), (line, proc.stderr.read() if proc.poll() is not None else "")
    return proc


def _payloads(bundle: Path, n: int = 200) -> list[bytes]:
    b = Bundle.open(bundle)
    X, _, _ = b.reference()
    codec = wire.FeatureCodec(b.feature_names, "json")
    return [codec.encode(r) for r in X[:n]]


def _families(port: int) -> dict:  # type: ignore[type-arg]
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    return {f.name: f for f in text_string_to_metric_families(text)}


def _sample(families: dict, family: str, suffix: str = "_total", **labels: str) -> float:  # type: ignore[type-arg]
    return sum(
        s.value
        for s in families[family].samples
        if s.name.endswith(suffix) and all(s.labels.get(k) == v for k, v in labels.items())
    )


def test_metrics_health_and_options_from_the_environment(broker: str, small_bundle: Path, topic_name: str) -> None:
    create_topic(broker, topic_name, partitions=2)
    port = free_port()
    env = {
        "HARNESS_BUNDLE": str(small_bundle),
        "HARNESS_ADAPTER": "native",
        "HARNESS_INPUT_TOPIC": topic_name,
        "HARNESS_OUTPUT_TOPIC": f"{topic_name}.out",
        "HARNESS_GROUP": f"g-{topic_name}",
        "HARNESS_BOOTSTRAP": broker,
        "HARNESS_METRICS_PORT": str(port),
        "HARNESS_BATCH_MAX": "32",
    }
    proc = _scorer(env)  # not one command-line option: all from the environment
    try:
        live = httpx.get(f"http://127.0.0.1:{port}/health/live", timeout=5)
        ready = httpx.get(f"http://127.0.0.1:{port}/health/ready", timeout=5)
        assert live.status_code == 200 and ready.status_code == 200, (live.text, ready.text)
        assert ready.json() == {"ready": True, "assigned": True, "model_loaded": True, "engine_available": True}
        offsets = np.arange(600) / 300.0
        send({"bootstrap.servers": broker}, topic_name, _payloads(small_bundle), offsets, "m", time.time_ns(), 50)
        p = Producer({"bootstrap.servers": broker})
        for bad in (b"not json", b'{"amount_eur": "many"}', b"[1, 2]"):
            p.produce(topic_name, value=bad)
        p.flush(10)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            fam = _families(port)
            if (
                _sample(fam, "harness_score_records_scored") >= 600
                and _sample(fam, "harness_score_records_dead_lettered") >= 3
            ):
                break
            time.sleep(0.5)
        time.sleep(5.5)  # one more lag reading (every 5 s)
        fam = _families(port)
    finally:
        proc.terminate()
        proc.communicate(timeout=30)
    assert _sample(fam, "harness_score_records_consumed") == 603
    assert _sample(fam, "harness_score_records_scored") == 600
    assert _sample(fam, "harness_score_records_dead_lettered", stage="decode") == 3
    assert _sample(fam, "harness_score_records_dead_lettered", reason_class="not_json") == 1
    assert _sample(fam, "harness_score_end_to_end_seconds", "_count") == 600  # the records with t_intended_ns
    assert _sample(fam, "harness_score_batch_size", "_count") >= 1
    assert _sample(fam, "harness_score_engine_unavailable", "") == 0
    info = fam["harness_score_model_info"].samples[0].labels
    assert info["model_id"] == Bundle.open(small_bundle).model_id and info["adapter"] == "native"
    lags = {s.labels["partition"]: s.value for s in fam["harness_score_consumer_lag"].samples}
    assert set(lags) == {"0", "1"} and all(v == 0 for v in lags.values())


def test_hot_swap_under_load_loses_nothing_and_switches_in_order(
    broker: str, small_bundle: Path, second_bundle: Path, topic_name: str
) -> None:
    create_topic(broker, topic_name, partitions=2)
    models = f"{topic_name}.models"
    target = KafkaTarget(broker)
    proc = _scorer(
        {},
        "--bundle", str(small_bundle), "--adapter", "native", "--input-topic", topic_name,
        "--output-topic", f"{topic_name}.out", "--group", f"g-{topic_name}", "--bootstrap", broker,
        "--model-topic", models, "--model-name", "fraud", *trusted(),
    )  # fmt: skip
    old, new = Bundle.open(small_bundle).model_id, Bundle.open(second_bundle).model_id
    X, y, p = Bundle.open(small_bundle).reference()
    m = Measurer(target, f"{topic_name}.out", f"{topic_name}.dlq", "json", p, y)
    m.start()
    try:
        rate, seconds = 2000.0, 6.0
        offsets = np.arange(int(rate * seconds)) / rate
        t0 = time.time_ns() + 300_000_000
        m.add_point(PointSpec("swap", t0, 0.0, seconds, len(offsets), offsets))
        timer = threading.Timer(
            2.5, lambda: publish(target, models, version_of(second_bundle, "fraud", signing_key=publisher_key()))
        )
        timer.start()
        rep = send(target.client_config(), topic_name, _payloads(small_bundle, 500), offsets, "swap", t0, 50)
        m.wait_drained("swap", rep.sent, 15)
        s = m.summary("swap", 1.0, 1.0, 3, 100, sent=rep.sent)
        timeline = m.model_timeline("swap", 1.0)
        breaks = m.model_order_breaks("swap", old, new)
    finally:
        m.close()
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    assert s.counts.sent == 12000 and s.counts.lost == 0 and s.counts.scored == 12000, s.counts
    seen = {model for _, counts, _ in timeline for model in counts}
    assert seen == {old, new}, (timeline, err[-2000:])
    assert timeline[0][1].get(old) and timeline[-1][1].get(new) and not timeline[-1][1].get(old)
    assert breaks == 0  # per partition: the old model's results, then the new model's, never mixed
    assert "checked and swapped in between two batches" in err


def test_a_tampered_version_is_refused_with_an_alert(
    broker: str, small_bundle: Path, second_bundle: Path, topic_name: str, tmp_path: Path
) -> None:
    create_topic(broker, topic_name, partitions=1)
    models, alerts = f"{topic_name}.models", f"{topic_name}.alerts"
    port = free_port()
    proc = _scorer(
        {},
        "--bundle", str(small_bundle), "--adapter", "native", "--input-topic", topic_name,
        "--output-topic", f"{topic_name}.out", "--group", f"g-{topic_name}", "--bootstrap", broker,
        "--model-topic", models, "--model-name", "fraud", "--alerts-topic", alerts, "--metrics-port", str(port),
        *trusted(),
    )  # fmt: skip
    tampered = tmp_path / "tampered"
    shutil.copytree(second_bundle, tampered)
    native = Bundle.open(tampered).format_info("native")["file"]
    (tampered / native).write_bytes((tampered / native).read_bytes() + b"\n# changed")
    try:
        publish(KafkaTarget(broker), models, version_of(tampered, "fraud", signing_key=publisher_key()))
        events = alert_events(broker, alerts, 1, timeout_s=30)
        send(
            {"bootstrap.servers": broker},
            topic_name,
            _payloads(small_bundle, 50),
            np.arange(50) / 100,
            "t",
            time.time_ns(),
            50,
        )
        results = consume_all(broker, f"{topic_name}.out", 50, timeout_s=30)
        fam = _families(port)
    finally:
        proc.terminate()
        proc.communicate(timeout=30)
    assert events and events[0]["rule"] == "ModelVersionRefused" and "was changed" in events[0]["message"], events
    old = Bundle.open(small_bundle).model_id.encode()
    assert len(results) == 50 and all(wire.headers_dict(r.headers())["model"] == old for r in results)
    assert _sample(fam, "harness_score_model_refused", reason="tampered") == 1
    assert _sample(fam, "harness_score_model_swaps") == 0


def test_the_v2_server_exposes_metrics_on_its_own_port(small_bundle: Path, tmp_path: Path) -> None:
    from tests.test_rest import subprocess_server

    with subprocess_server(small_bundle, "native", tmp_path) as url:
        b = Bundle.open(small_bundle)
        X, _, _ = b.reference()
        body = {"inputs": [{"name": "input", "shape": [3, X.shape[1]], "datatype": "FP64", "data": X[:3].tolist()}]}
        body = json.loads(json.dumps(body).replace("NaN", "null"))
        r = httpx.post(f"{url}/v2/models/{b.model_id}/infer", json=body, timeout=10)
        assert r.status_code == 200, r.text
        httpx.get(f"{url}/v2/health/ready", timeout=5)
        fam = {f.name: f for f in text_string_to_metric_families(httpx.get(f"{url}/metrics", timeout=5).text)}
    assert _sample(fam, "harness_serve_requests", route="infer", code="200") == 1
    assert _sample(fam, "harness_serve_rows") == 3
    assert _sample(fam, "harness_serve_request_seconds", "_count") == 1
    assert fam["harness_serve_model_info"].samples[0].labels["model_id"] == b.model_id
