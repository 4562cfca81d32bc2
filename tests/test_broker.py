"""The embedded broker is a real Apache Kafka: topics, partitions, records with keys, values and headers."""

from __future__ import annotations

import os
import shutil
import socket
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer

from harness.kafka import broker as broker_module
from harness.kafka.broker import Broker, metadata_answers, new_cluster_id, pid_alive
from tests.conftest import create_topic, run_cli

pytestmark = pytest.mark.heavy  # starts brokers of its own (Maven, JVMs): not in `make check`


def test_cluster_id_never_starts_with_a_dash(monkeypatch: pytest.MonkeyPatch) -> None:
    """kafka-storage reads '-t -abc...' as a missing argument: a fresh broker failed CI that way (1 in 64)."""
    dash_first = uuid.UUID(bytes=bytes([0xF8]) + bytes(15))  # base64 of 0b111110... is '-'
    drawn = iter([dash_first, uuid.UUID(int=1)])
    monkeypatch.setattr(broker_module.uuid, "uuid4", lambda: next(drawn))
    cid = new_cluster_id()
    assert not cid.startswith("-") and len(cid) == 22, cid
    monkeypatch.undo()
    assert all(not new_cluster_id().startswith("-") for _ in range(2000))


def test_produce_and_consume_10000_records_intact(broker: str, topic_name: str) -> None:
    create_topic(broker, topic_name, partitions=4)
    producer = Producer({"bootstrap.servers": broker, "linger.ms": 5})
    sent = {}
    for i in range(10_000):
        key = f"k{i}".encode()
        value = f"value-{i}-{'x' * (i % 17)}".encode()
        headers = [("rid", str(i).encode()), ("t", (i * 7).to_bytes(8, "little"))]
        sent[key] = (value, headers)
        producer.produce(topic_name, key=key, value=value, headers=headers)
        if i % 1000 == 0:
            producer.poll(0)
    assert producer.flush(30) == 0

    consumer = Consumer(
        {
            "bootstrap.servers": broker,
            "group.id": topic_name,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic_name])
    got = {}
    partitions = set()
    try:
        while len(got) < len(sent):
            msgs = consumer.consume(1000, timeout=10)
            assert msgs, f"consumer stalled after {len(got)} records"
            for m in msgs:
                assert m.error() is None
                got[m.key()] = (m.value(), m.headers())
                partitions.add(m.partition())
    finally:
        consumer.close()
    assert got == sent
    assert partitions == {0, 1, 2, 3}


def test_cli_start_is_idempotent_and_status_reports(broker: str) -> None:
    r = run_cli("broker", "start")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == broker
    s = run_cli("broker", "status")
    assert s.returncode == 0 and broker in s.stdout and s.stdout.startswith("running")


def test_stop_leaves_no_process_and_restart_works(tmp_path: Path) -> None:
    env = {"HARNESS_STATE_DIR": str(tmp_path)}
    r = run_cli("broker", "start", env=env)
    assert r.returncode == 0, r.stderr
    bootstrap = r.stdout.strip()
    st = Broker(tmp_path).running()
    assert st is not None and st.bootstrap == bootstrap
    assert metadata_answers(bootstrap)
    r = run_cli("broker", "stop", env=env)
    assert r.returncode == 0, r.stderr
    assert not pid_alive(st.pid)
    assert not metadata_answers(bootstrap, timeout_s=2)
    assert run_cli("broker", "status", env=env).returncode == 3
    # start after stop: the storage is kept, the broker answers again
    r = run_cli("broker", "start", env=env)
    assert r.returncode == 0, r.stderr
    st2 = Broker(tmp_path).running()
    assert st2 is not None and st2.pid != st.pid and metadata_answers(st2.bootstrap)
    assert run_cli("broker", "stop", env=env).returncode == 0
    assert not pid_alive(st2.pid)


def _one_error_line(r) -> str:  # type: ignore[no-untyped-def]
    assert r.returncode != 0
    assert "Traceback" not in r.stderr + r.stdout
    assert "Exception" not in r.stderr + r.stdout
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("error:")
    return lines[0]


def test_error_port_taken(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        r = run_cli("broker", "start", "--port", str(port), env={"HARNESS_STATE_DIR": str(tmp_path)})
    assert f"port {port} is taken" in _one_error_line(r)


def test_error_java_missing(tmp_path: Path) -> None:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    # a PATH with Python and Maven but without java
    for tool in ("mvn",):
        w = shutil.which(tool)
        if w:
            (bindir / tool).symlink_to(w)
    env = {"HARNESS_STATE_DIR": str(tmp_path), "PATH": str(bindir), "JAVA_HOME": ""}
    assert "Java is not on PATH" in _one_error_line(run_cli("broker", "start", env=env))


def test_error_maven_missing(tmp_path: Path) -> None:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    java = shutil.which("java")
    assert java
    (bindir / "java").symlink_to(java)
    env = {"HARNESS_STATE_DIR": str(tmp_path), "PATH": str(bindir), "HARNESS_CACHE_DIR": str(tmp_path / "cache")}
    assert "Maven (mvn) is not on PATH" in _one_error_line(run_cli("broker", "start", env=env))


def test_error_maven_cannot_resolve(tmp_path: Path) -> None:
    # an empty local repository and offline mode: Maven cannot resolve the Kafka jars
    settings = tmp_path / "settings.xml"
    settings.write_text(
        f"<settings><localRepository>{tmp_path / 'm2'}</localRepository><offline>true</offline></settings>"
    )
    env = {
        "HARNESS_STATE_DIR": str(tmp_path),
        "HARNESS_CACHE_DIR": str(tmp_path / "cache"),
        "HARNESS_MAVEN_ARGS": f"-s {settings}",
    }
    assert "Maven could not resolve" in _one_error_line(run_cli("broker", "start", env=env))


def test_error_broker_not_up_in_time(tmp_path: Path) -> None:
    r = run_cli("broker", "start", "--timeout-s", "0.5", env={"HARNESS_STATE_DIR": str(tmp_path)})
    line = _one_error_line(r)
    assert "did not answer within" in line and "log" in line
    # nothing left running
    assert Broker(tmp_path).running() is None
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue
            assert str(tmp_path).encode() not in cmd


def test_error_bootstrap_does_not_answer() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    r = run_cli("ping", "--bootstrap", f"127.0.0.1:{port}")
    assert "does not answer" in _one_error_line(r)


def test_ping_uses_bootstrap_and_client_config(broker: str, tmp_path: Path) -> None:
    props = tmp_path / "client.properties"
    props.write_text("# comment\nclient.id=harness-test\nsocket.keepalive.enable=true\n")
    r = run_cli("ping", "--bootstrap", broker, "--client-config", str(props))
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(f"ok {broker}")
    props.write_text("not a property line\n")
    r = run_cli("ping", "--bootstrap", broker, "--client-config", str(props))
    assert "expected key=value" in _one_error_line(r)


@pytest.mark.parametrize("bad", ["nonexistent.properties"])
def test_client_config_missing(broker: str, bad: str) -> None:
    r = run_cli("ping", "--bootstrap", broker, "--client-config", bad)
    assert "does not exist" in _one_error_line(r)
