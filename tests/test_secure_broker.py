"""The secured embedded broker (`harness broker start --secure`, a real Apache Kafka broker): SASL/SCRAM over TLS
with certificates made for the run and StandardAuthorizer ACLs. A client with the scorer's credentials cannot
write to the model topic (the broker answers with an authorization error), an unauthenticated client or a wrong
password cannot connect, and the harness's commands work against it through --client-config: publish (signed)
as the publisher, score as the scorer, following the model topic."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from adapters.bundle import Bundle
from harness.bench.loadgen import send
from harness.kafka.broker import Broker, BrokerState, metadata_answers
from harness.kafka.config import read_client_properties
from harness.scoring import wire
from tests.conftest import HARNESS, ROOT, publisher_keys, trusted
from tests.test_operations import _payloads

pytestmark = pytest.mark.kafka
MODELS = "secure-models"  # the model topics' prefix only the publisher may write


@pytest.fixture(scope="module")
def secure(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerState]:
    root = tmp_path_factory.mktemp("secure-state")
    b = Broker(root, secure=True, model_topics=(MODELS,))
    st = b.start(timeout_s=180)
    try:
        yield st
    finally:
        b.stop()


def _props(st: BrokerState, principal: str) -> dict[str, Any]:
    assert st.client_configs is not None
    return dict(read_client_properties(Path(st.client_configs[principal])))


def _config(st: BrokerState, principal: str) -> str:
    assert st.client_configs is not None
    return st.client_configs[principal]


def _create(st: BrokerState, *names: str) -> None:
    admin = AdminClient(_props(st, "admin"))
    for fut in admin.create_topics([NewTopic(n, num_partitions=1, replication_factor=1) for n in names]).values():
        fut.result(timeout=30)


def _produce(props: dict[str, Any], topic: str) -> list[Any]:
    errors: list[Any] = []
    p = Producer({**props, "acks": "all", "message.timeout.ms": 20000})
    p.produce(topic, key=b"k", value=b"v", on_delivery=lambda err, msg: errors.append(err))
    p.flush(30)
    return errors


def test_the_scorer_principal_cannot_write_the_model_topic(secure: BrokerState) -> None:
    models, results = f"{MODELS}.acl", f"results-{time.time_ns()}"
    _create(secure, models, results)
    as_scorer = _produce(_props(secure, "scorer"), models)
    assert len(as_scorer) == 1 and as_scorer[0] is not None
    assert as_scorer[0].name() == "TOPIC_AUTHORIZATION_FAILED", as_scorer
    assert _produce(_props(secure, "scorer"), results) == [None]  # results and dead letters: allowed
    assert _produce(_props(secure, "publisher"), models) == [None]  # the publisher writes the model topic
    # the scorer reads the model topic
    c = Consumer({**_props(secure, "scorer"), "group.id": f"g-{time.time_ns()}", "enable.auto.commit": False})
    c.assign([TopicPartition(models, 0, OFFSET_BEGINNING)])
    got = [m for m in c.consume(10, timeout=10) if m.error() is None]
    c.close()
    assert [m.value() for m in got] == [b"v"]


def test_an_unauthenticated_client_cannot_connect(secure: BrokerState) -> None:
    assert not metadata_answers(secure.bootstrap, timeout_s=5)  # plaintext: no TLS, no SASL
    tls_only = {k: v for k, v in _props(secure, "scorer").items() if not k.startswith("sasl.")}
    tls_only["security.protocol"] = "SSL"
    assert not metadata_answers(secure.bootstrap, timeout_s=5, properties=tls_only)  # TLS without credentials
    errors: list[Any] = []
    wrong = {**_props(secure, "scorer"), "sasl.password": "not-the-password", "error_cb": errors.append}
    p = Producer(wrong)
    deadline = time.monotonic() + 30
    while not errors and time.monotonic() < deadline:
        p.poll(0.5)  # the error callback is served here
    assert any(e.code() == KafkaError._AUTHENTICATION for e in errors), errors
    assert "invalid credentials" in errors[0].str()
    assert not metadata_answers(secure.bootstrap, timeout_s=5, properties=wrong)
    assert metadata_answers(secure.bootstrap, timeout_s=10, properties=_props(secure, "scorer"))


def test_harness_commands_work_through_client_config(
    secure: BrokerState, small_bundle: Path, second_bundle: Path, tmp_path: Path
) -> None:
    topic = f"in-{time.time_ns()}"
    models = f"{MODELS}.fraud"
    _create(secure, topic)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*HARNESS, *args], capture_output=True, text=True, timeout=300, env=env, cwd=ROOT,
                              stdin=subprocess.DEVNULL)  # fmt: skip

    ping = cli("ping", "--client-config", _config(secure, "scorer"))
    assert ping.returncode == 0 and ping.stdout.startswith(f"ok {secure.bootstrap}"), ping.stderr
    key = str(publisher_keys()[0])
    pub = cli("publish", "--bundle", str(small_bundle), "--model-topic", models, "--name", "fraud",
              "--signing-key", key, "--client-config", _config(secure, "publisher"))  # fmt: skip
    assert pub.returncode == 0, pub.stderr
    denied = cli("publish", "--bundle", str(second_bundle), "--model-topic", models, "--name", "fraud",
                 "--signing-key", key, "--client-config", _config(secure, "scorer"))  # fmt: skip
    assert denied.returncode == 1 and "authorization failed" in denied.stderr.lower(), denied.stderr
    assert denied.stderr.count("error:") == 1 and "Traceback" not in denied.stderr
    proc = subprocess.Popen(
        [*HARNESS, "score", "--adapter", "native", "--input-topic", topic, "--output-topic", f"{topic}.out",
         "--group", f"g-{topic}", "--client-config", _config(secure, "scorer"), "--model-topic", models,
         "--model-name", "fraud", "--model-cache-dir", str(tmp_path / "models"), *trusted()],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("READY"), (line, proc.stderr.read() if proc.poll() is not None else "")
        send(_props(secure, "publisher"), topic, _payloads(small_bundle, 40), np.arange(40) / 200, "s",
             time.time_ns(), 40)  # fmt: skip
        c = Consumer({**_props(secure, "admin"), "group.id": f"r-{time.time_ns()}", "enable.auto.commit": False})
        c.assign([TopicPartition(f"{topic}.out", 0, OFFSET_BEGINNING)])
        out: list[Any] = []
        deadline = time.monotonic() + 90
        while len(out) < 40 and time.monotonic() < deadline:
            out += [m for m in c.consume(100, timeout=1) if m.error() is None]
        c.close()
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    assert len(out) == 40, err[-2000:]
    old = Bundle.open(small_bundle).model_id
    assert {wire.headers_dict(m.headers())["model"].decode() for m in out} == {old}
    assert f"starting with {old}" in err
