"""Only trusted models run (real broker): a scorer that trusts the publisher's key refuses a version signed by
another key, an unsigned one, one whose files were changed after signing, one whose signature was altered, and an
old version sent again, each with an alert and a metric by reason, while the model in use keeps scoring; a signed
version swaps in. Keys, rotation (two trusted keys), formats that run code (--model-formats) and the scorer's
refusal to follow a model topic without trusted keys are checked too."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from confluent_kafka import Producer

from adapters.bundle import Bundle
from harness.bench.loadgen import send
from harness.kafka.broker import free_port
from harness.kafka.config import KafkaTarget
from harness.scoring.bundle_transfer import chunk_key, pack, version_key
from harness.scoring.models import ModelVersion, manifest_sha256, publish, publish_bundle
from harness.scoring.signing import (
    KeyFileError,
    SignatureRefused,
    TrustedKeys,
    create_key_pair,
    inline,
    load_private,
    load_public,
    sign,
)
from harness.scoring.trust import ModelTrust, Refused
from tests.conftest import alert_events, consume_all, create_topic, publisher_key, publisher_keys, run_cli
from tests.test_model_transfer import _models_of, _scorer
from tests.test_operations import _families, _payloads, _sample


def _raw(broker: str, topic: str, key: bytes, value: bytes) -> None:
    p = Producer({"bootstrap.servers": broker, "acks": "all"})
    p.produce(topic, key=key, value=value)
    p.flush(30)


def _last_version_record(broker: str, topic: str) -> bytes:
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": broker, "group.id": f"v-{time.time_ns()}", "enable.auto.commit": False})
    c.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    found: bytes | None = None
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        msgs = c.consume(100, timeout=1)
        if not msgs and found is not None:
            break
        for m in msgs:
            if m.error() is None and m.key() == version_key("fraud", "live") and m.value():
                found = m.value()
    c.close()
    assert found is not None
    return found


def test_keys_sign_verify_and_rotate(tmp_path: Path) -> None:
    old_priv, old_pub = create_key_pair(tmp_path, "old")
    new_priv, new_pub = create_key_pair(tmp_path, "new")
    assert old_priv.stat().st_mode & 0o777 == 0o600
    with pytest.raises(KeyFileError, match="never overwritten"):
        create_key_pair(tmp_path, "old")
    with pytest.raises(KeyFileError, match="is a private key"):
        load_public(old_priv)  # a scorer is given the .pub only
    identity = b'{"name": "fraud"}'
    by_old, by_new = sign(identity, load_private(old_priv)), sign(identity, load_private(new_priv))
    rotating = TrustedKeys.load([old_pub, inline(load_public(new_pub))])  # a file and the inline form
    assert {rotating.verify(identity, by_old), rotating.verify(identity, by_new)} == set(rotating.ids())
    after = TrustedKeys.load([new_pub])  # the old key retired
    with pytest.raises(SignatureRefused, match="does not trust") as e:
        after.verify(identity, by_old)
    assert e.value.kind == "untrusted-key"
    with pytest.raises(SignatureRefused) as e:
        after.verify(b'{"name": "other"}', by_new)
    assert e.value.kind == "bad-signature"
    with pytest.raises(SignatureRefused) as e:
        after.verify(identity, None)
    assert e.value.kind == "unsigned"


def test_keys_on_the_command_line(tmp_path: Path) -> None:
    r = run_cli("keys", "create", "publisher", "--dir", str(tmp_path))
    assert r.returncode == 0, r.stderr
    kid, pub_inline = r.stdout.split()
    assert (tmp_path / "publisher.key").is_file() and pub_inline.startswith("ed25519:")
    r = run_cli("keys", "id", str(tmp_path / "publisher.pub"))
    assert r.stdout.split() == [kid, pub_inline]
    r = run_cli("keys", "create", "publisher", "--dir", str(tmp_path))
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and "never overwritten" in r.stderr


class _Formats:
    """A bundle's manifest as check_format reads it."""

    def __init__(self, formats: dict[str, dict[str, object]]) -> None:
        self.manifest = {"formats": formats}


def test_formats_that_run_code_are_refused_when_the_scorer_is_limited() -> None:
    limited = ModelTrust(keys=None, formats=frozenset({"native", "onnx", "pmml"}), adapter_format="codegen-c")
    with pytest.raises(Refused, match="runs code: a C shared library") as e:
        limited.check_format(_Formats({"codegen-c": {"runs_code": True}}))  # type: ignore[arg-type]
    assert e.value.kind == "format"
    pickle = ModelTrust(keys=None, formats=frozenset({"native"}), adapter_format="native")
    pickle.check_format(_Formats({"native": {"flavor": "lightgbm", "runs_code": False}}))  # type: ignore[arg-type]
    with pytest.raises(Refused, match="native:sklearn is not among") as e:  # `native` never lets a pickle in
        pickle.check_format(_Formats({"native": {"flavor": "sklearn", "runs_code": True}}))  # type: ignore[arg-type]
    with pytest.raises(Refused, match="marks format native as running no code") as e:  # a manifest that lies
        ModelTrust(keys=None, adapter_format="native").check_format(
            _Formats({"native": {"flavor": "sklearn", "runs_code": False}})  # type: ignore[arg-type]
        )
    assert e.value.kind == "tampered"


def test_a_built_manifest_marks_the_formats_that_run_code(small_bundle: Path) -> None:
    formats = Bundle.open(small_bundle).manifest["formats"]
    assert formats["onnx"]["runs_code"] is False and formats["native"]["runs_code"] is False


def test_a_scorer_without_trusted_keys_will_not_follow_a_model_topic(
    broker: str, small_bundle: Path, topic_name: str
) -> None:
    create_topic(broker, topic_name)
    base = ["score", "--bundle", str(small_bundle), "--adapter", "native", "--input-topic", topic_name,
            "--output-topic", f"{topic_name}.out", "--group", f"g-{topic_name}", "--bootstrap", broker]  # fmt: skip
    r = run_cli(*base, "--model-topic", f"{topic_name}.models", "--model-name", "fraud", timeout=120)
    assert r.returncode != 0 and "trusts no key" in r.stderr and "--allow-unsigned-models" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr
    r = run_cli(*base, "--model-formats", "onnx,pmml", timeout=120)  # the --bundle's native format is not listed
    assert r.returncode != 0 and "format native is not among this scorer's --model-formats (onnx, pmml)" in r.stderr
    r = run_cli(*base, "--model-formats", "onnx,exe", timeout=120)
    assert r.returncode == 2 or r.returncode == 1
    assert "unknown format 'exe'" in r.stderr and "Traceback" not in r.stderr


def test_only_versions_signed_by_a_trusted_key_swap_in(
    broker: str, small_bundle: Path, second_bundle: Path, topic_name: str, tmp_path: Path
) -> None:
    """The attacks, each against a scorer that trusts the publisher's key, while it scores: a version signed by
    the attacker's own key, an unsigned one, the publisher's signed version with a file changed after signing, the
    same with its signature's bytes changed; then the publisher's new version (swapped in) and the old one sent
    again (replayed)."""
    create_topic(broker, topic_name, partitions=1)
    models, alerts = f"{topic_name}.models", f"{topic_name}.alerts"
    target = KafkaTarget(broker)
    publish_bundle(target, models, small_bundle, "fraud", signing_key=publisher_key())
    first = _last_version_record(broker, models)  # the champion's signed record, kept to replay it
    old, new = Bundle.open(small_bundle).model_id, Bundle.open(second_bundle).model_id
    port = free_port()
    proc = _scorer(tmp_path / "host", broker, topic_name, models, "--alerts-topic", alerts, "--metrics-port", str(port))
    attacker_priv, _ = create_key_pair(tmp_path / "attacker", "attacker")
    try:
        # 1. signed by a key the scorer does not trust
        publish_bundle(target, models, second_bundle, "fraud", signing_key=load_private(attacker_priv))
        # 2. unsigned
        publish_bundle(target, models, second_bundle, "fraud")
        # 3. a file changed after signing: the bundle packed again with one changed file, the signature kept
        evil = tmp_path / "evil"
        shutil.copytree(second_bundle, evil)
        native = Bundle.open(evil).format_info("native")["file"]
        (evil / native).write_bytes((evil / native).read_bytes() + b"\n# changed")
        files, chunks = pack(evil, 1 << 20)
        good = ModelVersion(
            name="fraud",
            model_id=new,
            manifest_sha256=manifest_sha256(second_bundle),
            files=pack(second_bundle, 1 << 20)[0],
        ).signed(publisher_key())
        changed = good.model_copy(update={"files": files, "published_at": good.published_at})
        p = Producer({"bootstrap.servers": broker, "acks": "all"})
        for sha, value in chunks.items():
            p.produce(models, key=chunk_key(sha), value=value)
        p.flush(30)
        _raw(broker, models, version_key("fraud", "live"), changed.model_dump_json(exclude_none=True).encode())
        # 4. the signature's bytes changed
        kind, kid, sig = str(good.signature).split(":")
        flipped = sig[:10] + ("A" if sig[10] != "A" else "B") + sig[11:]
        forged = good.model_copy(update={"signature": f"{kind}:{kid}:{flipped}"})
        _raw(broker, models, version_key("fraud", "live"), forged.model_dump_json(exclude_none=True).encode())
        events = alert_events(broker, alerts, 4)
        send({"bootstrap.servers": broker}, topic_name, _payloads(small_bundle, 50), np.arange(50) / 200, "a",
             time.time_ns(), 50)  # fmt: skip
        before = consume_all(broker, f"{topic_name}.out", 50)
        # 5. the publisher's new version: checked at once, swapped in before the next batch
        publish_bundle(target, models, second_bundle, "fraud", signing_key=publisher_key())
        marks_file, t_first = tmp_path / "host" / "models" / "accepted.json", json.loads(first)["published_at"]
        deadline = time.monotonic() + 60
        while json.loads(marks_file.read_text())["fraud"] == t_first and time.monotonic() < deadline:
            time.sleep(0.2)  # the new version accepted (its publication time is the mark now)
        # 6. the champion's own signed record sent again: a rollback by replay
        _raw(broker, models, version_key("fraud", "live"), first)
        events += alert_events(broker, alerts, 5)[4:]
        send({"bootstrap.servers": broker}, topic_name, _payloads(small_bundle, 50), np.arange(50) / 200, "b",
             time.time_ns(), 50)  # fmt: skip
        after = consume_all(broker, f"{topic_name}.out", 100)
        fam = _families(port)
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    reasons = [e.get("reason") for e in events]
    assert reasons == ["untrusted-key", "unsigned", "bad-signature", "bad-signature", "replayed"], (reasons, err)
    assert all(e["rule"] == "ModelVersionRefused" for e in events)
    assert "which this scorer does not trust" in events[0]["message"]
    assert "changed after signing" in events[2]["message"] and "replayed" in events[4]["message"]
    for kind, n in {"untrusted-key": 1, "unsigned": 1, "bad-signature": 2, "replayed": 1}.items():
        assert _sample(fam, "harness_score_model_refused", reason=kind) == n, kind
    assert _sample(fam, "harness_score_model_swaps") == 1
    assert set(_models_of(before)) == {old}  # scoring went on with the model in use
    assert _models_of(after)[50:] == [new] * 50, err[-2000:]  # the new version, not rolled back
    # refused before any file was loaded: nothing of the refused versions was assembled
    kept = {p.name.rsplit("-", 1)[0] for p in (tmp_path / "host" / "models").iterdir() if p.is_dir()}
    assert kept == {old, new}, kept


def test_a_restarted_scorer_does_not_take_an_old_version_sent_again(
    broker: str, small_bundle: Path, second_bundle: Path, topic_name: str, tmp_path: Path
) -> None:
    """The replay attack against a scorer that starts after it: the topic's last record is the old signed version,
    sent after the new one; the scorer starts with the newest signed version and reports the replay."""
    models = f"{topic_name}.models"
    create_topic(broker, topic_name)
    target = KafkaTarget(broker)
    publish_bundle(target, models, small_bundle, "fraud", signing_key=publisher_key())
    first = _last_version_record(broker, models)
    publish_bundle(target, models, second_bundle, "fraud", signing_key=publisher_key())
    _raw(broker, models, version_key("fraud", "live"), first)
    proc = _scorer(tmp_path / "host", broker, topic_name, models)
    proc.terminate()
    _, err = proc.communicate(timeout=30)
    new = Bundle.open(second_bundle).model_id
    assert f"starting with {new}" in err and "refused (replayed)" in err, err[-2000:]
    marks = json.loads((tmp_path / "host" / "models" / "accepted.json").read_text())
    assert set(marks) == {"fraud"}


def test_a_version_by_reference_is_signed_too(broker: str, small_bundle: Path, topic_name: str) -> None:
    from harness.scoring.models import version_of

    v = version_of(small_bundle, "fraud", signing_key=publisher_key())
    trust = ModelTrust.build([str(publisher_keys()[1])], allow_unsigned=False)
    assert trust.admit(v, version_key("fraud", "live")) is not None
    moved = v.model_copy(update={"bundle": "/tmp/elsewhere"})  # the folder it names changed
    with pytest.raises(Refused) as e:
        trust.admit(moved, None)
    assert e.value.kind == "bad-signature"
    with pytest.raises(Refused) as e:
        trust.admit(v, version_key("fraud", "shadow"))  # a live version moved to the shadow key
    assert e.value.kind == "mismatch"
    publish(KafkaTarget(broker), f"{topic_name}.models", v)


def test_publish_signs_on_the_command_line(broker: str, small_bundle: Path, topic_name: str) -> None:
    models = f"{topic_name}.models"
    r = run_cli("publish", "--bundle", str(small_bundle), "--model-topic", models, "--name", "fraud",
                "--signing-key", str(publisher_keys()[0]), "--bootstrap", broker)  # fmt: skip
    assert r.returncode == 0, r.stderr
    v = ModelVersion.model_validate_json(_last_version_record(broker, models))
    trust = ModelTrust.build([str(publisher_keys()[1])], allow_unsigned=False)
    assert trust.signer(v) == str(v.signature).split(":")[1]
    r = run_cli("publish", "--bundle", str(small_bundle), "--model-topic", models, "--name", "fraud",
                "--signing-key", str(publisher_keys()[1]), "--bootstrap", broker)  # fmt: skip
    assert r.returncode == 1 and "not an unencrypted PEM private key" in r.stderr, r.stderr
