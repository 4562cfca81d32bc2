"""Model versions on a compacted model topic (real broker): a good version is checked and handed over, a
broken, tampered or malformed one is refused with a reason, the version in use is not loaded again."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from adapters.bundle import Bundle
from adapters.registry import adapter_class
from harness.kafka.config import KafkaTarget
from harness.scoring.models import ModelUpdates, ModelVersion, publish, version_of


def _follow(broker: str, topic: str, current: str | None) -> tuple[ModelUpdates, list[str]]:
    refused: list[str] = []
    updates = ModelUpdates(
        KafkaTarget(broker),
        topic,
        "fraud",
        lambda b: adapter_class("native").load(b),
        current,
        on_refused=lambda v, why, kind: refused.append(why),
    ).start()
    return updates, refused


def _wait(pred: object, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if callable(pred) and pred():
            return
        time.sleep(0.1)
    raise AssertionError("condition not met in time")


def test_a_good_version_is_checked_and_handed_over(
    broker: str, small_bundle: Path, second_bundle: Path, topic_name: str
) -> None:
    target = KafkaTarget(broker)
    current = Bundle.open(small_bundle).model_id
    updates, refused = _follow(broker, topic_name, current)
    try:
        publish(target, topic_name, version_of(small_bundle, "fraud"))  # the version in use: ignored
        publish(target, topic_name, version_of(second_bundle, "fraud"))
        got: list[object] = []
        _wait(lambda: got.append(updates.take()) or got[-1] is not None)
        version, adapter = got[-1]  # type: ignore[misc]
        assert version.model_id == Bundle.open(second_bundle).model_id and refused == []
        X, _, p = Bundle.open(second_bundle).reference()
        assert abs(adapter.predict(X[:5]) - p[:5]).max() < 1e-9
        adapter.close()
        assert updates.take() is None  # handed over once
    finally:
        updates.close()


def test_broken_tampered_and_malformed_versions_are_refused(
    broker: str, second_bundle: Path, tmp_path: Path, topic_name: str
) -> None:
    target = KafkaTarget(broker)
    tampered = tmp_path / "tampered"
    shutil.copytree(second_bundle, tampered)
    native = Bundle.open(tampered).format_info("native")["file"]
    (tampered / native).write_bytes((tampered / native).read_bytes() + b"\n# changed")
    updates, refused = _follow(broker, topic_name, None)
    try:
        publish(target, topic_name, version_of(tampered, "fraud"))  # the manifest matches; a file does not
        wrong = version_of(second_bundle, "fraud").model_copy(update={"manifest_sha256": "0" * 64})
        publish(target, topic_name, wrong)
        missing = version_of(second_bundle, "fraud").model_copy(update={"bundle": str(tmp_path / "gone")})
        publish(target, topic_name, missing)
        from confluent_kafka import Producer

        p = Producer({"bootstrap.servers": broker})
        p.produce(topic_name, key=b"fraud", value=b'{"name": "fraud", "bundle": 3}')
        p.produce(topic_name, key=b"other-model", value=b"ignored: another model's key")
        p.flush(10)
        _wait(lambda: len(refused) >= 4)
        time.sleep(1.0)
        assert len(refused) == 4, refused
        assert "was changed" in refused[0]
        assert "is not the published 000000000000" in refused[1]
        assert "cannot be read" in refused[2]
        assert refused[3].startswith("not a model version:")
        assert updates.take() is None  # nothing refused is ever handed over
    finally:
        updates.close()


def test_a_shadow_version_scores_beside_the_live_one(broker: str, second_bundle: Path, topic_name: str) -> None:
    updates, refused = _follow(broker, topic_name, None)
    try:
        publish(KafkaTarget(broker), topic_name, version_of(second_bundle, "fraud", mode="shadow"))
        _wait(lambda: updates.shadow() is not None)
        shadow = updates.shadow()
        assert shadow is not None and shadow[0].mode == "shadow" and updates.take() is None and refused == []
    finally:
        updates.close()


def test_a_version_record_is_strict() -> None:
    with pytest.raises(ValueError):
        ModelVersion.model_validate({"name": "x", "model_id": "m", "bundle": "/b", "manifest_sha256": "abc"})
