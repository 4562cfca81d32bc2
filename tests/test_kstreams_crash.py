"""kstreams-mojo's batch mode loses nothing when the app is killed (kill -9) while records wait in its buffer:
Kafka Streams has already committed their offsets, and the buffer's change-logged store gives them back to the
restarted app (contestants/kstreams_mojo, PendingRecords.java)."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from adapters.bundle import Bundle
from contestants import kstreams
from harness.kafka.config import KafkaTarget
from harness.kafka.topics import ensure_topics
from harness.scoring import wire
from tests.conftest import committed_offsets, consume_all
from tests.test_accounting import _send_rows

pytestmark = pytest.mark.skipif(
    shutil.which("mvn") is None or shutil.which("java") is None, reason="needs Java 17 and Maven on PATH"
)


def test_batch_mode_kill_9_with_a_full_buffer_loses_nothing(
    broker: str, bundles: dict[str, Path], topic_name: str, tmp_path: Path
) -> None:
    bundle = bundles["maintenance"]
    b = Bundle.open(bundle)
    mojo = tmp_path / "mojo.zip"
    mojo.write_bytes(b.verified_bytes("h2o-mojo"))
    app_id = f"app-{topic_name}"
    ensure_topics(KafkaTarget(broker), {topic_name: 2, f"{topic_name}.out": 2, f"{topic_name}.dlq": 2})
    cfg = kstreams.KStreamsConfig(
        broker, topic_name, f"{topic_name}.out", f"{topic_name}.dlq", app_id, mojo, b.feature_names,
        mode="batch", batch_size=10_000, batch_max_wait_ms=4_000,  # records wait ~4 s in the buffer
        client_config={"commit.interval.ms": 100, "session.timeout.ms": 6000, "heartbeat.interval.ms": 500},
    )  # fmt: skip
    n = 200
    app = kstreams.KStreamsApp().start(cfg)
    try:
        _send_rows(broker, topic_name, bundle, n, rate=2000)
        deadline = time.monotonic() + 20
        while committed_offsets(broker, app_id, topic_name)[0] < n and time.monotonic() < deadline:
            time.sleep(0.2)
        assert committed_offsets(broker, app_id, topic_name) == (n, n)  # committed while still buffered ...
        assert consume_all(broker, f"{topic_name}.out", 0, timeout_s=1) == []  # ... and not scored yet
        assert app._proc is not None
        app._proc.kill()  # kill -9: the buffer in memory is gone
        app._proc.wait(10)
    finally:
        app.stop()
    restarted = kstreams.KStreamsApp().start(cfg, ready_timeout_s=90)
    try:
        results = consume_all(broker, f"{topic_name}.out", n, timeout_s=60)
    finally:
        restarted.stop()
    rids = [wire.headers_dict(m.headers())["rid"].decode() for m in results]
    assert set(rids) == {f"p-{i}" for i in range(n)}  # nothing lost
    assert len(rids) == n
    assert "restored from the store" in restarted.output_tail(200)
