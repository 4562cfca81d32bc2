"""A model bundle as records on the model topic, so that a scorer with nothing but Kafka access receives it.

    harness publish --bundle B --model-topic models --name fraud
      1. every file of the bundle (manifest.json and each file it names) is compressed (zlib, or stored as it
         is when that is not smaller) and cut into chunks of at most the topic's message limit
      2. each chunk is one record, key "chunk/<sha256 of the chunk>": content-addressed, so a chunk already on
         the topic (an unchanged file of an earlier version) is not sent again, and a chunk whose bytes do not
         hash to its key is corrupted, whoever wrote it
      3. once the broker acknowledged every chunk, the version record (key "<name>", or "<name>@shadow"): the
         model id, the manifest's sha256, and per file its name, size, sha256, compression and ordered chunks
      4. chunks no retained version record names any more are tombstoned (value None), so compaction removes
         them: see "The model topic's settings" below

    A scorer reads the topic from the start: chunks go into a bounded buffer (ChunkStore), and a version record
    is assembled from it (`ChunkStore.assemble`): every chunk present and hashing to its key, every file
    decompressing to its size and sha256; then the bundle's own checks (models.check_candidate). A version whose
    chunks are missing (a partial upload) or corrupted is refused, like any other refused version.

The model topic's settings (MODEL_TOPIC_CONFIG; `harness publish` creates the topic with them and refuses a
topic that deletes by time):
    partitions 1                 a version record must follow its chunks: one partition keeps the order
    cleanup.policy=compact       never "delete" (nor "compact,delete"): time-based retention removes the oldest
                                 segments first, and a version's chunks are older than its record, so chunks
                                 could vanish while their version is still the one in use
    segment.ms=3600000           compaction only cleans closed segments; a model topic gets few records, so its
                                 segment is rolled every hour for superseded chunks to go within hours, not days
    min.cleanable.dirty.ratio=0.1, delete.retention.ms=86400000 (a tombstone is kept a day: a scorer reading the
                                 topic meanwhile sees the chunk dropped, not a stale copy)
    max.message.bytes            the chunk size follows it (less room for the record's key and framing)
Chunks never outlive their version: the publisher tombstones a chunk once no retained version record (the
latest per key) names it — chunks of a superseded version, and orphans of an upload that died before its
version record (after `ORPHAN_GRACE_S`, so a concurrent upload is not swept away). Chunks never vanish before
their version: only a tombstone removes a chunk, and none is written for a chunk a retained version names.
One publisher per model topic at a time (the retrain service, or a person with `harness publish`).
"""

from __future__ import annotations

import hashlib
import time
import zlib
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from adapters.bundle import Bundle
from harness.kafka.config import KafkaTarget
from harness.scoring.errors import ScoringSetupError

CHUNK_PREFIX = "chunk/"
SHADOW_SUFFIX = "@shadow"
DEFAULT_MAX_MESSAGE_BYTES = 1_048_588  # Kafka's default max.message.bytes
RECORD_OVERHEAD_BYTES = 4096  # key, headers and the record batch's framing, with room to spare
MAX_BUFFERED_BYTES = 1 << 30  # chunks a receiver holds while it waits for their version record
ORPHAN_GRACE_S = 3600.0  # a chunk no version ever named is swept only after this long (an upload in progress)
MODEL_TOPIC_CONFIG = {
    "cleanup.policy": "compact",
    "segment.ms": "3600000",
    "min.cleanable.dirty.ratio": "0.1",
    "delete.retention.ms": "86400000",
}
ZLIB_LEVEL = 6


class StoredFile(BaseModel):
    """One bundle file as the version record lists it."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="of the file's own bytes")
    bytes: int = Field(ge=0)
    compression: Literal["zlib", "none"]
    chunks: list[str] = Field(description="sha256 of each stored chunk, in order (its record key: chunk/<sha>)")

    @field_validator("name")
    @classmethod
    def _plain(cls, v: str) -> str:
        p = PurePosixPath(v)
        if p.is_absolute() or len(p.parts) != 1 or v in (".", "..") or "\\" in v:
            raise ValueError(f"a bundle file name is a plain name, got {v!r}")
        return v

    @field_validator("chunks")
    @classmethod
    def _hashes(cls, v: list[str]) -> list[str]:
        for h in v:
            if len(h) != 64 or any(c not in "0123456789abcdef" for c in h):
                raise ValueError(f"a chunk is named by its sha256 (64 hex digits), got {h[:70]!r}")
        return v


class Incomplete(Exception):
    """A version whose bundle cannot be assembled from the topic: a chunk missing or corrupted, a file that does
    not decompress to its sha256. The message says which, in one line."""


def chunk_key(sha: str) -> bytes:
    return f"{CHUNK_PREFIX}{sha}".encode()


def version_key(name: str, mode: str) -> bytes:
    return (name + (SHADOW_SUFFIX if mode == "shadow" else "")).encode()


def bundle_files(bundle_dir: Path) -> list[str]:
    """manifest.json and every file the manifest names (each format's file, the reference rows), once each."""
    b = Bundle.open(bundle_dir)
    names = {"manifest.json"}
    for fmt in b.formats():
        names.add(str(b.format_info(fmt)["file"]))
    ref = b.manifest.get("reference", {}).get("file")
    if ref:
        names.add(str(ref))
    for name in names:
        if not (Path(bundle_dir) / name).is_file():
            raise ScoringSetupError(f"bundle {bundle_dir}: {name} is missing")
    return sorted(names)


def pack(bundle_dir: Path, chunk_bytes: int) -> tuple[list[StoredFile], dict[str, bytes]]:
    """The bundle's files as (what the version record lists, the chunks by sha256)."""
    if chunk_bytes < 1024:
        raise ScoringSetupError(f"a chunk of {chunk_bytes} bytes is too small (at least 1024)")
    files: list[StoredFile] = []
    chunks: dict[str, bytes] = {}
    for name in bundle_files(bundle_dir):
        raw = (Path(bundle_dir) / name).read_bytes()
        packed = zlib.compress(raw, ZLIB_LEVEL)
        compression: Literal["zlib", "none"] = "zlib" if len(packed) < len(raw) else "none"
        stored = packed if compression == "zlib" else raw
        order = []
        for start in range(0, max(len(stored), 1), chunk_bytes):
            piece = stored[start : start + chunk_bytes]
            sha = hashlib.sha256(piece).hexdigest()
            chunks[sha] = piece
            order.append(sha)
        files.append(
            StoredFile(
                name=name,
                sha256=hashlib.sha256(raw).hexdigest(),
                bytes=len(raw),
                compression=compression,
                chunks=order,
            )
        )
    return files, chunks


@dataclass
class ChunkStore:
    """Chunks read from the model topic, by sha256, until a version record needs them (bounded: the oldest go
    first past `max_bytes`). A chunk whose bytes do not hash to its key is kept out and remembered as corrupted."""

    max_bytes: int = MAX_BUFFERED_BYTES
    _chunks: OrderedDict[str, bytes] = field(default_factory=OrderedDict)
    _corrupted: dict[str, str] = field(default_factory=dict)  # sha -> the sha its bytes actually have
    _size: int = 0
    evicted: int = 0

    def take(self, key: bytes, value: bytes | None) -> bool:
        """A model-topic record; True when it was a chunk (or a chunk's tombstone)."""
        k = key.decode("utf-8", "replace")
        if not k.startswith(CHUNK_PREFIX):
            return False
        sha = k[len(CHUNK_PREFIX) :]
        if value is None:
            self._drop(sha)
            return True
        actual = hashlib.sha256(value).hexdigest()
        if actual != sha:
            self._corrupted[sha] = actual
            return True
        self._corrupted.pop(sha, None)
        if sha not in self._chunks:
            self._chunks[sha] = value
            self._size += len(value)
        while self._size > self.max_bytes and self._chunks:
            _, old = self._chunks.popitem(last=False)
            self._size -= len(old)
            self.evicted += 1
        return True

    def _drop(self, sha: str) -> None:
        old = self._chunks.pop(sha, None)
        if old is not None:
            self._size -= len(old)
        self._corrupted.pop(sha, None)

    def assemble(self, files: Iterable[StoredFile], dest: Path) -> None:
        """Write every file into `dest` after checking each chunk and each file's size and sha256."""
        dest.mkdir(parents=True, exist_ok=True)
        for f in files:
            parts = []
            for i, sha in enumerate(f.chunks):
                if sha in self._corrupted and sha not in self._chunks:
                    raise Incomplete(
                        f"corrupted upload: {f.name} chunk {i + 1} of {len(f.chunks)} (chunk/{sha[:12]}…) holds bytes "
                        f"whose sha256 is {self._corrupted[sha][:12]}…"
                    )
                piece = self._chunks.get(sha)
                if piece is None:
                    raise Incomplete(
                        f"partial upload: {f.name} chunk {i + 1} of {len(f.chunks)} (chunk/{sha[:12]}…) is not on "
                        "the model topic"
                    )
                parts.append(piece)
            stored = b"".join(parts)
            try:
                raw = zlib.decompress(stored) if f.compression == "zlib" else stored
            except zlib.error as e:
                raise Incomplete(f"{f.name} does not decompress: {e}") from None
            actual = hashlib.sha256(raw).hexdigest()
            if len(raw) != f.bytes or actual != f.sha256:
                raise Incomplete(
                    f"{f.name} reassembled to {len(raw)} bytes with sha256 {actual[:12]}…, not the published "
                    f"{f.bytes} bytes {f.sha256[:12]}…"
                )
            (dest / f.name).write_bytes(raw)


# ---- the publisher's side --------------------------------------------------------------------------------------


def model_topic_limit(target: KafkaTarget, topic: str) -> tuple[int, str]:
    """(max.message.bytes, cleanup.policy) of the model topic, as the broker reports them."""
    from confluent_kafka.admin import ConfigResource

    from harness.kafka.topics import admin

    res = ConfigResource(ConfigResource.Type.TOPIC, topic)
    client = admin(target)  # held until the answer came: a client collected meanwhile cancels the request
    try:
        configs = client.describe_configs([res])[res].result(timeout=30)
    except Exception as e:  # the broker could not tell: the defaults, said once
        raise ScoringSetupError(f"cannot read the configuration of model topic {topic}: {e}") from None
    limit = configs.get("max.message.bytes")
    policy = configs.get("cleanup.policy")
    return (
        int(limit.value) if limit is not None and limit.value else DEFAULT_MAX_MESSAGE_BYTES,
        str(policy.value) if policy is not None else "",
    )


def ensure_model_topic(target: KafkaTarget, topic: str) -> int:
    """Create the model topic (one partition, MODEL_TOPIC_CONFIG) when missing; refuse one whose cleanup policy
    deletes by time. Returns the chunk size its message limit allows."""
    from harness.kafka.topics import ensure_topics, partitions_of

    ensure_topics(target, {topic: 1}, config=MODEL_TOPIC_CONFIG)
    parts, deadline = partitions_of(target, topic), time.monotonic() + 15
    while parts is None and time.monotonic() < deadline:  # a topic just created: its metadata is on its way
        time.sleep(0.2)
        parts = partitions_of(target, topic)
    if parts != 1:
        raise ScoringSetupError(
            f"model topic {topic} has {parts} partitions: it needs exactly 1 (a version record must follow its chunks)"
        )
    limit, policy = model_topic_limit(target, topic)
    if "delete" in policy.split(","):
        raise ScoringSetupError(
            f"model topic {topic} has cleanup.policy={policy}: time-based deletion would remove a version's chunks "
            "before its record; set cleanup.policy=compact"
        )
    return max(1024, limit - RECORD_OVERHEAD_BYTES)


@dataclass
class TopicIndex:
    """What the model topic holds now (read from the start to its end): the latest record per version key, the
    chunks present (not tombstoned) with the time of their record, and the chunks any version record named."""

    versions: dict[str, bytes] = field(default_factory=dict)
    chunks: dict[str, float] = field(default_factory=dict)
    ever_named: set[str] = field(default_factory=set)

    def named_now(self) -> set[str]:
        """Chunks the retained version records (the latest per key) name."""
        return {sha for raw in self.versions.values() for sha in _chunks_of(raw)}

    def sweepable(self, now: float, grace_s: float = ORPHAN_GRACE_S) -> list[str]:
        """Chunks to tombstone: no retained version names them, and a superseded version named them or they are
        orphans older than `grace_s`."""
        keep = self.named_now()
        return sorted(
            sha for sha, at in self.chunks.items() if sha not in keep and (sha in self.ever_named or now - at > grace_s)
        )


def _chunks_of(raw: bytes) -> list[str]:
    import orjson

    try:
        obj = orjson.loads(raw)
        return [sha for f in obj.get("files") or [] for sha in f.get("chunks", [])]
    except (orjson.JSONDecodeError, AttributeError, TypeError):
        return []


def read_index(target: KafkaTarget, topic: str, timeout_s: float = 60.0) -> TopicIndex:
    """Read the model topic from its start to its current end."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    idx = TopicIndex()
    c = Consumer(
        target.client_config(
            **{"group.id": f"model-index-{time.time_ns()}", "enable.auto.commit": False, "client.id": "harness-publish"}
        )
    )
    try:
        low, high = c.get_watermark_offsets(TopicPartition(topic, 0), timeout=30)
        if high <= low:
            return idx
        c.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for m in c.consume(500, timeout=1.0):
                if m.error() is not None:
                    continue
                _index_record(idx, m)
                if int(m.offset() or 0) >= high - 1:
                    return idx
        raise ScoringSetupError(f"could not read model topic {topic} to its end within {timeout_s:.0f} s")
    finally:
        c.close()


def _index_record(idx: TopicIndex, m: Any) -> None:
    key = (m.key() or b"").decode("utf-8", "replace")
    value = m.value()
    if key.startswith(CHUNK_PREFIX):
        sha = key[len(CHUNK_PREFIX) :]
        if value is None:
            idx.chunks.pop(sha, None)
        elif hashlib.sha256(value).hexdigest() == sha:
            _, ts = m.timestamp()
            idx.chunks[sha] = ts / 1000.0 if ts and ts > 0 else time.time()
        return
    if value is None:
        idx.versions.pop(key, None)
        return
    idx.versions[key] = value
    idx.ever_named.update(_chunks_of(value))
