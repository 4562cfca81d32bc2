"""Model updates through Kafka: versions published on a compacted model topic, verified and loaded beside the
model in use, and handed to the scoring loop to swap between two batches.

    harness publish --bundle artifacts/fraud/<id> --model-topic models --name fraud [--shadow]
      -> key = name, value = ModelVersion JSON (the bundle's folder, its manifest's sha256, live or shadow)

A scorer started with `--model-topic T --model-name N` reads T from the beginning (the topic is compacted:
the last version per name is what a new scorer starts with) and for each new version of N:

    parse the record ─► open the bundle ─► manifest sha256 = the published one ─► every file's sha256
    ─► load the adapter ─► score the bundle's own reference rows: every row within the format's parity
    tolerance ─► ready: the loop swaps between two batches (live), or scores beside it (shadow)

A record that is not a version, a bundle that fails a check, or a candidate that does not load or score is
refused: one log line, an alert event on the alerts topic (rule "ModelVersionRefused"), and the model in
use keeps scoring. Loading and checking run on a background thread; the loop only picks up what is ready.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from adapters.base import Adapter
from adapters.bundle import Bundle
from harness.kafka.config import DURABLE_PRODUCER, KafkaTarget

H_MODEL = "model"  # result header: the model id that scored the record


class ModelVersion(BaseModel):
    """One published version of a model (the value of a model-topic record, JSON)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    model_id: str = Field(min_length=1)
    bundle: str = Field(min_length=1, description="the bundle's folder, as the scorer sees it")
    manifest_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    mode: Literal["live", "shadow"] = "live"
    published_at: float = Field(default_factory=time.time)


def manifest_sha256(bundle_dir: Path) -> str:
    return hashlib.sha256((Path(bundle_dir) / "manifest.json").read_bytes()).hexdigest()


def version_of(bundle_dir: Path, name: str, mode: str = "live") -> ModelVersion:
    b = Bundle.open(bundle_dir)
    return ModelVersion.model_validate(
        {
            "name": name,
            "model_id": b.model_id,
            "bundle": str(Path(bundle_dir).resolve()),
            "manifest_sha256": manifest_sha256(bundle_dir),
            "mode": mode,
        }
    )


def publish(target: KafkaTarget, topic: str, version: ModelVersion) -> None:
    """Write a version to the model topic (created compacted when missing) and wait for the broker's ack."""
    from confluent_kafka import Producer

    from harness.kafka.topics import ensure_topics

    ensure_topics(target, {topic: 1}, config={"cleanup.policy": "compact"})
    p = Producer(target.client_config(**DURABLE_PRODUCER))
    errors: list[str] = []
    p.produce(
        topic,
        key=version.name.encode(),
        value=version.model_dump_json().encode(),
        on_delivery=lambda err, msg: errors.append(err.str()) if err else None,
    )
    p.flush(30)
    if errors:
        from harness.scoring.errors import ScoringSetupError

        raise ScoringSetupError(f"could not publish to {topic}: {errors[0]}")


class Refused(Exception):
    """A version that must not score: why, in one line."""


def check_candidate(version: ModelVersion, load: Callable[[Bundle], Adapter]) -> Adapter:
    """Open, verify, load and parity-check a candidate; raises Refused with the reason."""
    root = Path(version.bundle)
    try:
        actual = manifest_sha256(root)
    except OSError as e:
        raise Refused(f"bundle {root} cannot be read: {e.strerror or e}") from None
    if actual != version.manifest_sha256:
        raise Refused(
            f"bundle {root}: manifest sha256 {actual[:12]}… is not the published {version.manifest_sha256[:12]}…"
        )
    try:
        b = Bundle.open(root)
        if b.model_id != version.model_id:
            raise Refused(f"bundle {root} holds model {b.model_id}, not the published {version.model_id}")
        for fmt in b.formats():
            b.verified_bytes(fmt)
        X, _, p = b.reference()
        adapter = load(b)
    except Refused:
        raise
    except Exception as e:  # a bundle error, an adapter that cannot load: the candidate is refused
        raise Refused(f"{type(e).__name__}: {e}") from None
    try:
        _parity(adapter, b, X, p)
    except BaseException:
        adapter.close()
        raise
    return adapter


def _parity(adapter: Adapter, b: Bundle, X: np.ndarray, p: np.ndarray) -> None:
    """The candidate scores the bundle's own reference rows like the native model did (within the format's
    parity tolerance; rows the build excluded as float32 threshold flips may differ)."""
    fmt = getattr(adapter, "format", None)
    info = b.manifest.get("formats", {}).get(fmt or "", {}).get("parity", {}) if fmt else {}
    if fmt and not info and fmt != "native":
        return  # a format without a parity record (none is built without one): nothing to hold it to
    tol = float(info.get("tolerance", 1e-9))
    allowed = int(info.get("excluded_rows", 0))
    try:
        scores = adapter.predict(X)
    except Exception as e:
        raise Refused(f"the candidate cannot score its own reference rows: {type(e).__name__}: {e}") from None
    beyond = int(np.sum(~(np.abs(scores - p) <= tol)))
    if beyond > allowed:
        worst = float(np.nanmax(np.abs(scores - p)))
        raise Refused(
            f"the candidate's scores differ from its reference on {beyond} rows (max |diff| {worst:.3g} > {tol:g})"
        )


class ModelUpdates:
    """Follows the model topic on a background thread; `take()` hands the loop a checked live candidate,
    `shadow()` the checked shadow candidate (or None)."""

    def __init__(
        self,
        target: KafkaTarget,
        topic: str,
        name: str,
        load: Callable[[Bundle], Adapter],
        current_model_id: str | None,
        on_refused: Callable[[ModelVersion | None, str], None],
        on_accepted: Callable[[ModelVersion], None] | None = None,
    ) -> None:
        from confluent_kafka import Consumer

        self.topic = topic
        self.name = name
        self.load = load
        self.current_model_id = current_model_id
        self.on_refused = on_refused
        self.on_accepted = on_accepted
        self._lock = threading.Lock()
        self._live: tuple[ModelVersion, Adapter] | None = None
        self._shadow: tuple[ModelVersion, Adapter] | None = None
        self._stop = threading.Event()
        self.consumer = Consumer(
            target.client_config(
                **{
                    "group.id": f"model-updates-{name}-{id(self)}",
                    "enable.auto.commit": False,
                    "auto.offset.reset": "earliest",
                    "client.id": "harness-model-updates",
                }
            )
        )
        self.consumer.subscribe([topic])
        self._thread = threading.Thread(target=self._run, name="model-updates", daemon=True)

    def start(self) -> ModelUpdates:
        self._thread.start()
        return self

    def close(self) -> None:
        self._stop.set()
        self._thread.join(10)
        with self._lock:
            for slot in (self._live, self._shadow):
                if slot is not None:
                    slot[1].close()
            self._live = self._shadow = None
        self.consumer.close()

    def take(self) -> tuple[ModelVersion, Adapter] | None:
        """A checked live version that is not the one in use (the caller now owns the adapter), or None."""
        with self._lock:
            got, self._live = self._live, None
        if got is not None:
            self.current_model_id = got[0].model_id
        return got

    def shadow(self) -> tuple[ModelVersion, Adapter] | None:
        """The checked shadow candidate (owned by this object; it scores beside the live model)."""
        with self._lock:
            return self._shadow

    def _run(self) -> None:
        while not self._stop.is_set():
            m = self.consumer.poll(0.2)
            if m is None or m.error() is not None:
                continue
            if (m.key() or b"").decode("utf-8", "replace") != self.name:
                continue
            self._consider(m.value())

    def _consider(self, raw: Any) -> None:
        try:
            version = ModelVersion.model_validate_json(raw or b"")
        except ValidationError as e:
            first = e.errors()[0]
            self.on_refused(None, f"not a model version: {'.'.join(str(x) for x in first['loc'])}: {first['msg']}")
            return
        if version.model_id == self.current_model_id and version.mode == "live":
            return  # the version in use (a restart reads the compacted topic from the start)
        try:
            adapter = check_candidate(version, self.load)
        except Refused as e:
            self.on_refused(version, str(e))
            return
        with self._lock:
            slot = "_live" if version.mode == "live" else "_shadow"
            old = getattr(self, slot)
            setattr(self, slot, (version, adapter))
        if old is not None:
            old[1].close()
        if self.on_accepted is not None:
            self.on_accepted(version)
