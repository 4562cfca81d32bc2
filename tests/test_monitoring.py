"""The model monitor: drift statistics and rules without a broker; the Prometheus rules with promtool; and
`harness monitor` on the real broker behind a real scoring loop, drifting the stream and reading the alert
from the alerts topic, with /metrics scraped and parsed by prometheus_client's own parser."""

from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
from prometheus_client.parser import text_string_to_metric_families

from adapters.bundle import Bundle
from harness.bench.loadgen import send
from harness.datagen import fraud
from harness.kafka.broker import free_port
from harness.kafka.config import KafkaTarget
from harness.kafka.topics import wait_group_stable
from harness.monitoring.drift import ks, psi
from harness.monitoring.rules import Rule, RulesError, RuleState, load_rules
from harness.scoring import wire
from tests.conftest import HARNESS, ROOT, create_topic, start_loop

PROMETHEUS = ROOT / "deploy" / "prometheus"

# ---- drift statistics and rules (no broker) -------------------------------------------------------------


def test_psi_and_ks_are_near_zero_for_the_same_distribution_and_large_for_a_shift() -> None:
    rng = np.random.default_rng(1)
    ref = rng.beta(2, 8, 5000)
    same = rng.beta(2, 8, 2000)
    shifted = rng.beta(4, 6, 2000)
    assert psi(ref, same) < 0.02 and ks(ref, same) < 0.05
    assert psi(ref, shifted) > 0.5 and ks(ref, shifted) > 0.3
    assert psi(ref, ref) == pytest.approx(0.0, abs=1e-12) and ks(ref, ref) == 0.0


def test_a_rule_fires_once_per_streak_and_skips_thin_windows() -> None:
    state = RuleState([Rule(name="Drift", figure="score_psi", threshold=0.2, for_windows=2, min_results=100)])
    assert state.judge({"score_psi": 0.5}, results=1000) == []  # one window: not yet
    assert [r.name for r in state.judge({"score_psi": 0.5}, results=1000)] == ["Drift"]  # two in a row
    assert state.judge({"score_psi": 0.5}, results=1000) == []  # still firing: not again
    assert state.judge({"score_psi": 0.9}, results=10) == []  # too few results to judge
    assert state.judge({"score_psi": 0.1}, results=1000) == []  # streak broken
    assert state.judge({"score_psi": None}, results=1000) == []  # nothing to judge


def test_a_bad_rules_file_is_one_clear_error(tmp_path: Path) -> None:
    f = tmp_path / "rules.yaml"
    f.write_text("- {name: X, figure: score_psi, threshold: 0.2, severity: high}\n")
    with pytest.raises(RulesError, match=r"rule 1: key 'severity': unknown key"):
        load_rules(f)
    with pytest.raises(RulesError, match="does not exist"):
        load_rules(tmp_path / "nope.yaml")


# ---- the Prometheus alerting rules, checked by Prometheus's own tool ------------------------------------


def test_promtool_checks_and_tests_the_alerting_rules() -> None:
    check = subprocess.run(
        ["promtool", "check", "rules", str(PROMETHEUS / "alerts.yml")], capture_output=True, text=True
    )
    assert check.returncode == 0, check.stdout + check.stderr
    assert "SUCCESS: 14 rules found" in check.stdout
    test = subprocess.run(
        ["promtool", "test", "rules", "alerts_test.yml"], cwd=PROMETHEUS, capture_output=True, text=True
    )
    assert test.returncode == 0, test.stdout + test.stderr


# ---- the monitor on the real broker -----------------------------------------------------------------------

WINDOW_S = 2.0
RATE = 500.0


def _payloads(bundle: Path, drift: float) -> tuple[list[bytes], np.ndarray]:
    b = Bundle.open(bundle)
    codec = wire.FeatureCodec(b.feature_names, "json")
    if drift == 0.0:
        X, y, _ = b.reference()
    else:
        frame = fraud.generate(3000, 11, positive_rate=0.05, drift=drift)
        X, y = frame[b.feature_names].to_numpy(dtype=np.float64), frame["label"].to_numpy()
    return [codec.encode(r) for r in X], y


def _feedback(broker: str, topic: str, prefix: str, labels: np.ndarray, n: int) -> None:
    """Labels for records prefix-0..n-1 (row seq % len(labels)), plus one unknown id and one malformed record."""
    p = Producer({"bootstrap.servers": broker})
    for seq in range(n):
        rid = wire.record_id(prefix, seq)
        p.produce(topic, key=rid.encode(), value=json.dumps({"rid": rid, "label": int(labels[seq % len(labels)])}))
    p.produce(topic, value=b'{"rid": "nobody-1", "label": 1}')
    p.produce(topic, value=b"not json")
    p.flush(10)


def test_monitor_alerts_on_a_drifting_stream(broker: str, small_bundle: Path, topic_name: str) -> None:
    create_topic(broker, topic_name, partitions=2)
    alerts, feedback = f"{topic_name}.alerts", f"{topic_name}.feedback"
    create_topic(broker, alerts)
    create_topic(broker, feedback)
    loop = start_loop(broker, small_bundle, "native", topic_name, f"g-{topic_name}")
    port = free_port()
    monitor = subprocess.Popen(
        [*HARNESS, "monitor", "--bundle", str(small_bundle), "--results-topic", f"{topic_name}.out",
         "--dlq-topic", f"{topic_name}.dlq", "--feedback-topic", feedback, "--alerts-topic", alerts,
         "--window-s", str(WINDOW_S), "--metrics-port", str(port), "--max-windows", "9", "--bootstrap", broker,
         "--join-window-s", "3"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        # the scorer holds its partitions before anything is sent: a scorer still starting on a busy machine would
        # score the reference and drifted records in one late burst, and the windows would mix them
        wait_group_stable(KafkaTarget(broker), f"g-{topic_name}", 1, 90)
        time.sleep(3.0)  # the monitor joins its group and opens its first window
        conf = {"bootstrap.servers": broker}
        before, _ = _payloads(small_bundle, 0.0)
        after, labels = _payloads(small_bundle, 1.0)
        offsets = np.arange(int(RATE * 4)) / RATE
        send(conf, topic_name, before, offsets, "ref", time.time_ns() + 100_000_000, 50)
        drift_at_ns = time.time_ns()
        drift_offsets = np.arange(int(RATE * 6)) / RATE
        send(conf, topic_name, after, drift_offsets, "drift", time.time_ns() + 100_000_000, 50)
        _feedback(broker, feedback, "drift", labels, len(drift_offsets))
        metrics = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        out, err = monitor.communicate(timeout=60)
        assert monitor.returncode == 0, err[-2000:]
    finally:
        if monitor.poll() is None:
            monitor.kill()
        loop.terminate()
        loop.communicate(timeout=30)

    c = Consumer({"bootstrap.servers": broker, "group.id": f"read-{topic_name}", "enable.auto.commit": False})
    c.assign([TopicPartition(alerts, 0, OFFSET_BEGINNING)])
    events = [json.loads(m.value()) for m in c.consume(100, timeout=5) if m.error() is None]
    c.close()
    by_rule = {e["rule"]: e for e in events}
    assert "ScoreDriftPSI" in by_rule, (events, err[-2000:])
    drift = by_rule["ScoreDriftPSI"]
    model_id = Bundle.open(small_bundle).model_id
    assert drift["value"] > 0.2 and drift["threshold"] == 0.2 and drift["model_id"] == model_id
    # the alert came in the first windows after the drift began, not before it
    start = time.mktime(time.strptime(drift["window_start"][:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone
    assert drift_at_ns / 1e9 - WINDOW_S - 1 <= start <= drift_at_ns / 1e9 + 2 * WINDOW_S, (drift, drift_at_ns)
    assert "LiveAUCDropped" in by_rule, (events, err[-2000:])  # the labels show the static model ranks worse
    # every window is logged; the unknown id and the malformed record are counted, never a stop
    assert err.count("window:") == 9
    families = {f.name: f for f in text_string_to_metric_families(metrics)}
    psi_now = families["harness_monitor_score_psi"].samples[0].value
    assert psi_now > 0.2
    alerts_by_rule = {
        s.labels["rule"]: s.value for s in families["harness_monitor_alerts"].samples if s.name.endswith("_total")
    }
    assert alerts_by_rule.get("ScoreDriftPSI", 0) >= 1
    assert families["harness_monitor_results"].samples[0].value > 0
    assert families["harness_monitor_model_info"].samples[0].labels["model_id"] == model_id
    assert sum(int(x) for x in re.findall(r"(\d+) malformed", err)) == 1
    assert sum(int(x) for x in re.findall(r"(\d+) unjoined", err)) == 1


def test_promtool_accepts_the_prometheus_config_of_the_compose_set_up() -> None:
    check = subprocess.run(
        ["promtool", "check", "config", "prometheus.yml"], cwd=PROMETHEUS, capture_output=True, text=True
    )
    assert check.returncode == 0, check.stdout + check.stderr
    assert "is valid prometheus config file syntax" in check.stdout
