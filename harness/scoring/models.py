"""Model updates through Kafka: versions published on a compacted model topic, verified and loaded beside the
model in use, and handed to the scoring loop to swap between two batches.

    harness publish --bundle artifacts/fraud/<id> --model-topic models --name fraud [--shadow] [--by-reference]
      -> the bundle's files as content-addressed chunks (bundle_transfer.py), then key = name (or name@shadow),
         value = ModelVersion JSON: the model id, the manifest's sha256, every file's name, size, sha256 and
         chunks; with --by-reference the bundle's folder instead (one every scorer can read)

A scorer started with `--model-topic T --model-name N` reads T from the beginning (the topic is compacted:
the last version per name is what a new scorer starts with; without --bundle it starts with that version) and
for each new version of N:

    parse the record ─► assemble the bundle from its chunks (each chunk's sha256, each file's size and sha256)
    into the scorer's own model cache, or open the referenced folder ─► manifest sha256 = the published one
    ─► every file's sha256 against the manifest ─► load the adapter ─► score the bundle's own reference rows:
    every row within the format's parity tolerance ─► ready: the loop swaps between two batches (live), or
    scores beside it (shadow)

A record that is not a version, an upload with a chunk missing or corrupted, a bundle that fails a check, or a
candidate that does not load or score is refused: one log line, an alert event on the alerts topic (rule
"ModelVersionRefused"), and the model in use keeps scoring. Loading and checking run on a background thread;
the loop only picks up what is ready.

Signing (a later issue) signs `ModelVersion.identity_bytes()`: the canonical bytes of everything that says
which model this is and what it is made of (name, mode, model id, manifest sha256, every file's sha256 and
chunks, publication time); the `signature` field is reserved for it and is not part of those bytes.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import numpy as np
import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from adapters.base import Adapter
from adapters.bundle import Bundle
from harness.kafka.config import KafkaTarget
from harness.scoring.bundle_transfer import (
    SHADOW_SUFFIX,
    ChunkStore,
    Incomplete,
    StoredFile,
    chunk_key,
    ensure_model_topic,
    pack,
    read_index,
    version_key,
)
from harness.scoring.errors import ScoringSetupError

H_MODEL = "model"  # result header: the model id that scored the record


class ModelVersion(BaseModel):
    """One published version of a model (the value of a model-topic record, JSON): the bundle itself (`files`,
    its chunks on the same topic) or a folder every scorer can read (`bundle`), exactly one of the two."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    # a plain name: it names the folder a scorer assembles the bundle in
    model_id: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    manifest_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    mode: Literal["live", "shadow"] = "live"
    published_at: float = Field(default_factory=time.time)
    files: list[StoredFile] | None = Field(None, description="the bundle on the topic: each file and its chunks")
    bundle: str | None = Field(None, min_length=1, description="the bundle's folder, as the scorer sees it")
    signature: str | None = Field(None, description="reserved: a signature over identity_bytes() (not checked yet)")

    @model_validator(mode="after")
    def _one_source(self) -> ModelVersion:
        if (self.files is None) == (self.bundle is None):
            raise ValueError("a version carries its files or names a bundle folder (exactly one of the two)")
        if self.files is not None:
            names = [f.name for f in self.files]
            if len(set(names)) != len(names):
                raise ValueError("a file is listed twice")
            manifest = next((f for f in self.files if f.name == "manifest.json"), None)
            if manifest is None or manifest.sha256 != self.manifest_sha256:
                raise ValueError("the files must hold manifest.json with the published manifest sha256")
        return self

    @property
    def carried(self) -> bool:
        """The bundle travels on the model topic (not a folder reference)."""
        return self.files is not None

    def identity_bytes(self) -> bytes:
        """The canonical bytes of this version's identity (sorted keys, no spaces; `signature` left out): what a
        signature covers, so the same version always gives the same bytes wherever it is checked."""
        return orjson.dumps(self.model_dump(mode="json", exclude={"signature"}), option=orjson.OPT_SORT_KEYS)

    def describe(self) -> str:
        where = f"{len(self.files or [])} files on the topic" if self.carried else f"folder {self.bundle}"
        return f"{self.model_id} ({self.mode}, {where})"


def manifest_sha256(bundle_dir: Path) -> str:
    return hashlib.sha256((Path(bundle_dir) / "manifest.json").read_bytes()).hexdigest()


def version_of(bundle_dir: Path, name: str, mode: str = "live") -> ModelVersion:
    """A version that names the bundle's folder (`harness publish --by-reference`): every scorer must see it."""
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


def _producer(target: KafkaTarget, max_message_bytes: int | None = None) -> Any:
    from confluent_kafka import Producer

    extra: dict[str, Any] = {"acks": "all", "enable.idempotence": True, "client.id": "harness-publish"}
    if max_message_bytes:
        extra["message.max.bytes"] = max(1_000_000, max_message_bytes)
    return Producer(target.client_config(**extra))


def _flush(p: Any, errors: list[str], topic: str, what: str) -> None:
    left = p.flush(60)
    if errors or left:
        raise ScoringSetupError(f"could not publish {what} to {topic}: {errors[0] if errors else 'not acknowledged'}")


def publish(target: KafkaTarget, topic: str, version: ModelVersion) -> None:
    """Write a version record to the model topic (created compacted when missing) and wait for the broker's ack.
    A version that carries files needs its chunks on the topic first: use `publish_bundle`."""
    ensure_model_topic(target, topic)
    p = _producer(target)
    errors: list[str] = []
    p.produce(
        topic,
        key=version_key(version.name, version.mode),
        value=version.model_dump_json(exclude_none=True).encode(),
        on_delivery=lambda err, msg: errors.append(err.str()) if err else None,
    )
    _flush(p, errors, topic, f"version {version.model_id}")


class Published(BaseModel):
    """What `publish_bundle` did: the version, and the chunks it sent, found already there, and swept."""

    version: ModelVersion
    chunks: int
    chunks_sent: int
    bytes_sent: int
    bundle_bytes: int
    chunk_bytes: int
    swept: int
    seconds: float


def publish_bundle(
    target: KafkaTarget,
    topic: str,
    bundle_dir: Path,
    name: str,
    mode: str = "live",
    chunk_bytes: int | None = None,
) -> Published:
    """Put the bundle itself on the model topic: its chunks (those not already there), then — once the broker
    acknowledged every chunk — the version record; then tombstones for chunks no retained version names."""
    t0 = time.perf_counter()
    limit = ensure_model_topic(target, topic)
    size = min(chunk_bytes or limit, limit)
    b = Bundle.open(bundle_dir)
    files, chunks = pack(Path(bundle_dir), size)
    version = ModelVersion(
        name=name,
        model_id=b.model_id,
        manifest_sha256=manifest_sha256(bundle_dir),
        mode=mode,  # type: ignore[arg-type]
        files=files,
    )
    index = read_index(target, topic)
    p = _producer(target, size + 8192)
    errors: list[str] = []

    def delivered(err: Any, msg: Any) -> None:
        if err:
            errors.append(err.str())

    todo = [sha for sha in chunks if sha not in index.chunks]
    for sha in todo:
        p.produce(topic, key=chunk_key(sha), value=chunks[sha], on_delivery=delivered)
        p.poll(0)
    _flush(p, errors, topic, f"the chunks of {version.model_id}")  # no version record names an unacknowledged chunk
    key = version_key(name, mode)
    record = version.model_dump_json(exclude_none=True).encode()
    p.produce(topic, key=key, value=record, on_delivery=delivered)
    _flush(p, errors, topic, f"version {version.model_id}")
    index.versions[key.decode()] = record
    for sha in chunks:
        index.chunks.setdefault(sha, time.time())
    swept = index.sweepable(time.time())
    for sha in swept:
        p.produce(topic, key=chunk_key(sha), value=None, on_delivery=delivered)
    _flush(p, errors, topic, "tombstones of superseded chunks")
    return Published(
        version=version,
        chunks=len(chunks),
        chunks_sent=len(todo),
        bytes_sent=sum(len(chunks[s]) for s in todo),
        bundle_bytes=sum(f.bytes for f in files),
        chunk_bytes=size,
        swept=len(swept),
        seconds=round(time.perf_counter() - t0, 3),
    )


class Refused(Exception):
    """A version that must not score: why, in one line."""


def check_candidate(version: ModelVersion, load: Callable[[Bundle], Adapter], root: Path | None = None) -> Adapter:
    """Open, verify, load and parity-check a candidate (at `root`: where its files were assembled, or the folder
    it names); raises Refused with the reason."""
    root = root if root is not None else Path(str(version.bundle))
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
    rtol = float(info.get("tolerance_rtol", 0.0))  # a regression's: relative to the largest reference value
    allowed = int(info.get("excluded_rows", 0))
    try:
        scores = adapter.predict(X)
    except Exception as e:
        raise Refused(f"the candidate cannot score its own reference rows: {type(e).__name__}: {e}") from None
    if scores.shape != p.shape:
        raise Refused(f"the candidate returns outputs of shape {scores.shape[1:]}, its reference {p.shape[1:]}")
    if rtol:
        tol += rtol * float(np.nanmax(np.abs(p))) if p.size else 0.0
    within = np.abs(scores - p) <= tol
    beyond = int(np.sum(~within.reshape(len(p), -1).all(axis=1)))
    if beyond > allowed:
        worst = float(np.nanmax(np.abs(scores - p)))
        raise Refused(
            f"the candidate's scores differ from its reference on {beyond} rows (max |diff| {worst:.3g} > {tol:g})"
        )


class ModelCache:
    """Where a scorer assembles the bundles it receives over Kafka: a folder of its own (`--model-cache-dir`), or a
    private temporary one removed at exit. Nothing in it is trusted: every file is checked when assembled and
    again when loaded."""

    def __init__(self, root: Path | None = None) -> None:
        self._temporary = root is None
        self.root = Path(tempfile.mkdtemp(prefix="harness-models-")) if root is None else Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def folder(self, version: ModelVersion) -> Path:
        return self.root / f"{version.model_id}-{version.manifest_sha256[:12]}"

    def assemble(self, version: ModelVersion, store: ChunkStore) -> Path:
        """The version's bundle written from the chunks in `store`; raises Refused when it cannot be."""
        dest = self.folder(version)
        shutil.rmtree(dest, ignore_errors=True)
        try:
            store.assemble(version.files or [], dest)
        except Incomplete as e:
            shutil.rmtree(dest, ignore_errors=True)
            raise Refused(str(e)) from None
        except OSError as e:
            shutil.rmtree(dest, ignore_errors=True)
            raise Refused(f"cannot write the bundle into {dest}: {e.strerror or e}") from None
        return dest

    def discard(self, version: ModelVersion) -> None:
        shutil.rmtree(self.folder(version), ignore_errors=True)

    def close(self) -> None:
        if self._temporary:
            shutil.rmtree(self.root, ignore_errors=True)


def _parse_version(raw: Any) -> ModelVersion:
    try:
        return ModelVersion.model_validate_json(raw or b"")
    except ValidationError as e:
        first = e.errors()[0]
        raise Refused(f"not a model version: {'.'.join(str(x) for x in first['loc'])}: {first['msg']}") from None


def _follows(key: bytes | None, name: str) -> bool:
    k = (key or b"").decode("utf-8", "replace")
    return k == name or k == name + SHADOW_SUFFIX


def read_current(
    target: KafkaTarget, topic: str, name: str, cache: ModelCache, timeout_s: float = 60.0
) -> tuple[ModelVersion, Path]:
    """The live version of `name` the model topic holds now (read from its start to its end), its bundle
    assembled into `cache` (or its folder): what a scorer started without --bundle scores with."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    c = Consumer(
        target.client_config(
            **{"group.id": f"model-read-{time.time_ns()}", "enable.auto.commit": False, "client.id": "harness-models"}
        )
    )
    store = ChunkStore()
    last: ModelVersion | None = None
    why = ""
    try:
        md = c.list_topics(topic, timeout=30)
        if topic not in md.topics or md.topics[topic].error is not None:
            raise ScoringSetupError(f"model topic {topic!r} does not exist at {target.bootstrap}")
        low, high = c.get_watermark_offsets(TopicPartition(topic, 0), timeout=30)
        if high > low:
            c.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
            deadline, done = time.monotonic() + timeout_s, False
            while not done:
                if time.monotonic() > deadline:
                    raise ScoringSetupError(f"could not read model topic {topic} to its end within {timeout_s:.0f} s")
                for m in c.consume(500, timeout=1.0):
                    if m.error() is not None:
                        continue
                    done = done or int(m.offset() or 0) >= high - 1
                    if store.take(m.key() or b"", m.value()) or m.key() != name.encode():
                        continue
                    try:
                        v = _parse_version(m.value())
                    except Refused as e:
                        why = str(e)
                        continue
                    if v.mode == "live":
                        last = v
    finally:
        c.close()
    if last is None:
        extra = f" (the last record was refused: {why})" if why else ""
        raise ScoringSetupError(f"model topic {topic} holds no live version of {name!r}{extra}")
    try:
        root = cache.assemble(last, store) if last.carried else Path(str(last.bundle))
    except Refused as e:
        raise ScoringSetupError(f"the current version {last.model_id} of {name!r} on {topic} is refused: {e}") from None
    return last, root


def _position(consumer: Any, topic: str) -> int:
    from confluent_kafka import TopicPartition

    try:
        return int(consumer.position([TopicPartition(topic, 0)])[0].offset)
    except Exception:  # not assigned yet
        return -1


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
        cache: ModelCache | None = None,
    ) -> None:
        from confluent_kafka import Consumer

        self.topic = topic
        self.name = name
        self.load = load
        self.current_model_id = current_model_id
        self.on_refused = on_refused
        self.on_accepted = on_accepted
        self.cache = cache or ModelCache()
        self._own_cache = cache is None
        self.chunks = ChunkStore()
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
        if self._own_cache:
            self.cache.close()

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
        """Catch up with the topic first — only the latest version record per key that was there when the scorer
        started counts (older ones, not compacted away yet, are history, not updates) — then every new record."""
        from confluent_kafka import TopicPartition

        try:
            _, end = self.consumer.get_watermark_offsets(TopicPartition(self.topic, 0), timeout=30)
        except Exception:  # the topic does not exist yet: nothing to catch up with
            end = 0
        latest: dict[bytes, Any] = {}
        caught_up = end <= 0
        while not self._stop.is_set():
            m = self.consumer.poll(0.2)
            if m is None and not caught_up and _position(self.consumer, self.topic) >= end:
                m, caught_up = None, True  # the end was compacted away: caught up all the same
                for raw in latest.values():
                    self._consider(raw)
                latest.clear()
            if m is None or m.error() is not None:
                continue
            if self.chunks.take(m.key() or b"", m.value()) or not _follows(m.key(), self.name):
                pass
            elif caught_up:
                self._consider(m.value())
            else:
                latest[m.key() or b""] = m.value()
            if not caught_up and int(m.offset() or 0) >= end - 1:
                caught_up = True
                for raw in latest.values():
                    self._consider(raw)
                latest.clear()

    def _consider(self, raw: Any) -> None:
        try:
            version = _parse_version(raw)
        except Refused as e:
            self.on_refused(None, str(e))
            return
        if version.model_id == self.current_model_id and version.mode == "live":
            return  # the version in use (a restart reads the compacted topic from the start)
        try:
            root = self.cache.assemble(version, self.chunks) if version.carried else None
            adapter = check_candidate(version, self.load, root)
        except Refused as e:
            if version.carried:
                self.cache.discard(version)
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
