"""The training set, from the stream itself: the feature records the scorers consumed (the input topic) joined
with the labels that arrive on the feedback topic, over a bounded window, each labelled record once; saved as a
reproducible snapshot (Parquet: the rows, where each came from, and the join's statistics).

    input topic    ─► a feature record waits (by its src "topic/partition/offset" and its rid) up to join_window_s
    feedback topic ─► a label {"rid"|"src": ..., "label": 0|1} (or the id as the key) finds its record, or waits
                      for it up to join_window_s
    joined         ─► the window: the most recent `window_rows` labelled records; a record labelled twice is
                      counted (duplicate_labels) and kept once, with its first label

The ids are the scorer's own: `src` is the record's place in the input topic (what every result and dead letter
carries) and `rid` the producer's record id when it set one, so a label written for a result joins the feature
record that result was scored from.
"""

from __future__ import annotations

import collections
import hashlib
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from harness.retraining.errors import RetrainError
from harness.scoring import wire

MAX_WAITING = 500_000  # feature records (and labels) waiting for their other half, at the most


@dataclass
class JoinStats:
    features_read: int = 0
    features_undecodable: int = 0  # feature records that do not decode (the scorer dead-lettered them too)
    features_unlabelled: int = 0  # feature records whose label did not come within the join window
    labels_read: int = 0
    labels_malformed: int = 0
    labels_joined: int = 0
    labels_duplicate: int = 0  # a second label for a record already labelled: the first one counts
    labels_unjoined: int = 0  # labels whose record did not come within the join window
    window_evicted: int = 0  # labelled records that fell out of the bounded window

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


@dataclass
class Labelled:
    """One row of the training set and where it came from."""

    row: np.ndarray
    label: int
    src: str
    rid: str | None
    input_partition: int
    input_offset: int
    input_time_ms: int
    feedback_partition: int
    feedback_offset: int


@dataclass
class _Record:
    row: np.ndarray
    src: str
    rid: str | None
    partition: int
    offset: int
    time_ms: int
    arrived: float


@dataclass
class StreamJoin:
    """Joins feature records and labels as they are read; holds the bounded window of labelled records."""

    codec: wire.FeatureCodec
    window_rows: int = 20_000
    join_window_s: float = 300.0
    stats: JoinStats = field(default_factory=JoinStats)
    window: collections.deque[Labelled] = field(default_factory=collections.deque)
    joined_total: int = 0
    _records: collections.OrderedDict[str, _Record] = field(default_factory=collections.OrderedDict)
    _labels: collections.OrderedDict[str, tuple[int, int, int, float]] = field(default_factory=collections.OrderedDict)
    _labelled: set[str] = field(default_factory=set)  # srcs already in a window (each labelled record once)

    def features(self, msgs: list[Any]) -> None:
        """Feature records read from the input topic (one decode per batch, like the scoring loop)."""
        if not msgs:
            return
        buf = np.empty((len(msgs), len(self.codec.feature_names)), dtype=np.float64)
        rows, errors = self.codec.decode_batch([m.value() for m in msgs], buf)
        self.stats.features_read += len(msgs)
        self.stats.features_undecodable += len(errors)
        now = time.monotonic()
        for k, i in enumerate(rows):
            m = msgs[i]
            src = wire.source(m.topic(), m.partition(), m.offset()).decode()
            rid_b = wire.headers_dict(m.headers()).get(wire.H_RID)
            rid = rid_b.decode("utf-8", "replace") if rid_b is not None else None
            _, ts = m.timestamp()
            rec = _Record(buf[k].copy(), src, rid, int(m.partition() or 0), int(m.offset() or 0), int(ts), now)
            waiting = self._labels.pop(src, None) or (self._labels.pop(rid, None) if rid else None)
            if waiting is not None:
                self._join(rec, *waiting[:3])
                continue
            self._records[src] = rec
            if rid:
                self._records[rid] = rec
        while len(self._records) > MAX_WAITING:
            self._records.popitem(last=False)
            self.stats.features_unlabelled += 1

    def labels(self, msgs: list[Any]) -> None:
        """Label records read from the feedback topic."""
        now = time.monotonic()
        for m in msgs:
            self.stats.labels_read += 1
            parsed = parse_label(m.value(), m.key())
            if parsed is None:
                self.stats.labels_malformed += 1
                continue
            key, label = parsed
            rec = self._records.pop(key, None)
            if rec is None:
                if key in self._labelled:
                    self.stats.labels_duplicate += 1
                else:
                    self._labels[key] = (label, int(m.partition() or 0), int(m.offset() or 0), now)
                continue
            self._forget(rec)
            self._join(rec, label, int(m.partition() or 0), int(m.offset() or 0))
        while len(self._labels) > MAX_WAITING:
            self._labels.popitem(last=False)
            self.stats.labels_unjoined += 1

    def _forget(self, rec: _Record) -> None:
        self._records.pop(rec.src, None)
        if rec.rid:
            self._records.pop(rec.rid, None)

    def _join(self, rec: _Record, label: int, fb_partition: int, fb_offset: int) -> None:
        if rec.src in self._labelled:
            self.stats.labels_duplicate += 1
            return
        self._labelled.add(rec.src)
        self.window.append(
            Labelled(rec.row, label, rec.src, rec.rid, rec.partition, rec.offset, rec.time_ms, fb_partition, fb_offset)
        )
        self.stats.labels_joined += 1
        self.joined_total += 1
        while len(self.window) > self.window_rows:
            gone = self.window.popleft()
            self.stats.window_evicted += 1
            self._labelled.discard(gone.src)

    def expire(self) -> None:
        """Forget feature records and labels that waited longer than the join window."""
        cutoff = time.monotonic() - self.join_window_s
        while self._records:
            key, rec = next(iter(self._records.items()))
            if rec.arrived >= cutoff:
                break
            self._records.popitem(last=False)
            if key == rec.src:
                self.stats.features_unlabelled += 1
        while self._labels:
            key, waiting = next(iter(self._labels.items()))
            if waiting[3] >= cutoff:
                break
            self._labels.popitem(last=False)
            self.stats.labels_unjoined += 1

    def rows_since(self, since_ms: int | None) -> list[Labelled]:
        """The window's labelled records whose feature record was written at or after `since_ms` (all: None)."""
        if since_ms is None:
            return list(self.window)
        return [r for r in self.window if r.input_time_ms >= since_ms]


def parse_label(value: bytes | None, key: bytes | None) -> tuple[str, int] | None:
    """(the id it names, the label) of a feedback record, or None when it is not one."""
    try:
        obj = orjson.loads(value or b"")
    except orjson.JSONDecodeError:
        return None
    if not isinstance(obj, dict):
        return None
    label = obj.get("label")
    if type(label) is bool or label not in (0, 1):
        return None
    ident = obj.get("rid") or obj.get("src") or (key or b"").decode("utf-8", "replace")
    return (str(ident), int(label)) if ident else None


# ---- the snapshot ---------------------------------------------------------------------------------------------

SNAPSHOT_META_KEY = b"harness.training_set"


@dataclass
class TrainingSet:
    """A training set as saved and as trained on: X in the champion's feature order, labels, the split, and what
    it came from (`meta`: topics, offsets, join statistics, the champion, the recipe, the seed)."""

    X: np.ndarray
    y: np.ndarray
    holdout: np.ndarray  # bool per row
    feature_names: list[str]
    meta: dict[str, Any]

    def content_sha256(self) -> str:
        """A hash of what training reads (rows, labels, split, feature names): equal sets train equal models."""
        h = hashlib.sha256(json.dumps(self.feature_names).encode())
        for a in (np.ascontiguousarray(self.X, dtype=np.float64), self.y.astype(np.int8), self.holdout.astype(np.int8)):
            h.update(a.tobytes())
        return h.hexdigest()


def split_holdout(y: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """A stratified random holdout: `fraction` of each class (at least one of each), seeded."""
    rng = np.random.default_rng(seed)
    holdout = np.zeros(len(y), dtype=bool)
    for cls in (0, 1):
        idx = np.flatnonzero(y == cls)
        n = max(1, int(round(len(idx) * fraction))) if len(idx) > 1 else 0
        holdout[rng.choice(idx, size=n, replace=False)] = True
    return holdout


def assemble(rows: list[Labelled], names: list[str], fraction: float, seed: int, meta: dict[str, Any]) -> TrainingSet:
    X = np.vstack([r.row for r in rows]) if rows else np.empty((0, len(names)))
    y = np.asarray([r.label for r in rows], dtype=np.int64)
    holdout = split_holdout(y, fraction, seed)
    offsets: dict[str, dict[str, list[int]]] = {"input": {}, "feedback": {}}
    for r in rows:
        places = (("input", r.input_partition, r.input_offset), ("feedback", r.feedback_partition, r.feedback_offset))
        for kind, p, o in places:
            lo_hi = offsets[kind].setdefault(str(p), [o, o])
            lo_hi[0], lo_hi[1] = min(lo_hi[0], o), max(lo_hi[1], o)
    meta = {
        **meta,
        "feature_names": list(names),
        "rows": len(rows),
        "positives": int(y.sum()),
        "holdout_rows": int(holdout.sum()),
        "holdout_fraction": fraction,
        "split_seed": seed,
        "offsets": offsets,
        "input_time_ms": [min(r.input_time_ms for r in rows), max(r.input_time_ms for r in rows)] if rows else None,
    }
    ts = TrainingSet(X, y, holdout, names, meta)
    ts.meta["content_sha256"] = ts.content_sha256()
    return ts


def write_snapshot(ts: TrainingSet, rows: list[Labelled], path: Path) -> Path:
    """The training set as Parquet: one column per feature, the label, the split, and each row's source (src,
    rid, input partition/offset/time, feedback partition/offset); `meta` as the file's key-value metadata."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    cols: dict[str, Any] = {name: pa.array(ts.X[:, j], type=pa.float64()) for j, name in enumerate(ts.feature_names)}
    cols["label"] = pa.array(ts.y, type=pa.int8())
    cols["holdout"] = pa.array(ts.holdout, type=pa.bool_())
    cols["src"] = pa.array([r.src for r in rows], type=pa.string())
    cols["rid"] = pa.array([r.rid for r in rows], type=pa.string())
    cols["input_partition"] = pa.array([r.input_partition for r in rows], type=pa.int32())
    cols["input_offset"] = pa.array([r.input_offset for r in rows], type=pa.int64())
    cols["input_time_ms"] = pa.array([r.input_time_ms for r in rows], type=pa.int64())
    cols["feedback_partition"] = pa.array([r.feedback_partition for r in rows], type=pa.int32())
    cols["feedback_offset"] = pa.array([r.feedback_offset for r in rows], type=pa.int64())
    table = pa.table(cols).replace_schema_metadata({SNAPSHOT_META_KEY: json.dumps(ts.meta, sort_keys=True).encode()})
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".parquet.partial")
    pq.write_table(table, tmp)
    tmp.replace(path)
    return path


def read_snapshot(path: Path) -> TrainingSet:
    """A snapshot written by `write_snapshot`, as it was (checked against its recorded content hash)."""
    import pyarrow.parquet as pq

    if not path.is_file():
        raise RetrainError(f"training-set snapshot {path} does not exist")
    try:
        table = pq.read_table(path)
    except Exception as e:  # not Parquet, truncated
        raise RetrainError(f"{path} is not a readable Parquet snapshot: {e}") from None
    raw = (table.schema.metadata or {}).get(SNAPSHOT_META_KEY)
    if raw is None:
        raise RetrainError(f"{path} has no training-set metadata: not a snapshot written by harness retrain")
    meta = json.loads(raw)
    names = list(meta["feature_names"])
    X = np.column_stack([table.column(n).to_numpy() for n in names]).astype(np.float64) if names else np.empty((0, 0))
    y = table.column("label").to_numpy().astype(np.int64)
    holdout = table.column("holdout").to_numpy().astype(bool)
    ts = TrainingSet(X, y, holdout, names, meta)
    if ts.content_sha256() != meta.get("content_sha256"):
        raise RetrainError(f"{path}: its rows do not hash to the recorded content_sha256 (the file was changed)")
    return ts
