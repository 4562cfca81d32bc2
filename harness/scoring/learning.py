"""Online learning in the scoring loop: labels from a feedback topic, joined to the rows that were scored, teach
an online learner (adapters/online.py) — test, then train: every score is made before its label is known.

    harness score --adapter online -o model=lr --feedback-topic payments.labels \\
        --checkpoint-file /var/lib/scorer/learner.ckpt      (or --checkpoint-topic learners, compacted)

- The join: the loop hands over each scored row with its ids (`rid` and `src`); a label record names one of
  them ({"rid": ..., "label": <label>}, {"src": ..., "label": ...}, or the id as the key). The label is what the
  model's task learns from (harness/scoring/quality.py, `parse_label`): 0 or 1, the true value of a regression,
  or the class of a multiclass model as the manifest names it. Rows wait in a bounded
  window (`--join-window-s`, and at most MAX_ROWS); a label whose row is not there yet waits too. A label that
  never finds its row, or a feedback record that cannot be parsed, is counted — never a stop.
- Exactly once per label: the learner's checkpoint holds its model, the rows still waiting, and the feedback
  topic's offsets up to which labels are in the model. A restarted scorer restores the checkpoint and reads
  the feedback topic from those offsets: labels after the checkpoint are applied again to the state that did
  not have them, labels before it are not applied twice. A checkpoint that is corrupt, or of another model, is
  refused with one clear line; starting cold instead is an explicit choice (`--cold-start`).
"""

from __future__ import annotations

import collections
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from adapters.tasks import TaskSpec
from harness.kafka.config import KafkaTarget
from harness.scoring.errors import ScoringSetupError
from harness.scoring.quality import parse_label

MAX_ROWS = 200_000  # rows waiting for their label, at the most
CHECKPOINT_MAGIC_KEY = b"learner"


@dataclass
class LearningStats:
    labels: int = 0  # labels applied
    unjoined: int = 0  # labels whose row never came within the join window
    malformed: int = 0  # feedback records that could not be parsed
    expired_rows: int = 0  # rows whose label never came within the join window
    checkpoints: int = 0
    restored_from: int | None = None  # labels the restored checkpoint had learnt

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class _Waiting:
    rows: collections.OrderedDict[str, tuple[np.ndarray, float]] = field(default_factory=collections.OrderedDict)
    labels: dict[str, tuple[Any, float]] = field(default_factory=dict)


class CheckpointStore:
    """Where the learner's state goes: a file (written atomically) or a compacted topic (one key)."""

    def __init__(self, target: KafkaTarget, path: Path | None, topic: str | None, key: str) -> None:
        if (path is None) == (topic is None):
            raise ScoringSetupError("give exactly one of --checkpoint-file or --checkpoint-topic")
        self.target, self.path, self.topic, self.key = target, path, topic, key.encode()
        if topic:
            from harness.kafka.topics import ensure_topics

            ensure_topics(target, {topic: 1}, config={"cleanup.policy": "compact"})

    def load(self) -> bytes | None:
        if self.path is not None:
            return self.path.read_bytes() if self.path.is_file() else None
        return self._last_on_topic()

    def save(self, blob: bytes) -> None:
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".ckpt-")
            with os.fdopen(fd, "wb") as f:
                f.write(blob)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
            return
        from confluent_kafka import Producer

        p = Producer(self.target.client_config(**{"acks": "all", "message.max.bytes": 20_000_000}))
        errors: list[str] = []
        p.produce(
            str(self.topic), key=self.key, value=blob, on_delivery=lambda e, m: errors.append(e.str()) if e else None
        )
        p.flush(30)
        if errors:
            raise ScoringSetupError(f"could not write the learner checkpoint to {self.topic}: {errors[0]}")

    def _last_on_topic(self) -> bytes | None:
        from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

        c = Consumer(self.target.client_config(**{"group.id": f"ckpt-read-{os.getpid()}", "enable.auto.commit": False}))
        try:
            low, high = c.get_watermark_offsets(TopicPartition(str(self.topic), 0), timeout=10)
            if high <= low:
                return None
            c.assign([TopicPartition(str(self.topic), 0, OFFSET_BEGINNING)])
            last = None
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                msgs = c.consume(100, timeout=1)
                for m in msgs:
                    if m.error() is None and m.key() == self.key:
                        last = m.value()
                    if m.error() is None and int(m.offset() or 0) >= high - 1:
                        return last
            return last
        finally:
            c.close()


class FeedbackLearner:
    """Joins labels to scored rows and teaches the learner; checkpoints every `checkpoint_every_s`."""

    def __init__(
        self,
        target: KafkaTarget,
        learner: Any,
        feedback_topic: str,
        group: str,
        store: CheckpointStore,
        join_window_s: float = 300.0,
        checkpoint_every_s: float = 10.0,
        cold_start: bool = False,
        log: Any = print,
    ) -> None:
        from confluent_kafka import Consumer

        self.learner, self.store, self.log = learner, store, log
        self.join_window_s, self.checkpoint_every_s = join_window_s, checkpoint_every_s
        self.feedback_topic = feedback_topic
        self.stats = LearningStats()
        self._w = _Waiting()
        self._offsets: dict[int, int] = {}  # feedback partition -> next offset not yet in the model
        self._checkpoint_at = time.monotonic()
        self.consumer = Consumer(
            target.client_config(
                **{
                    "group.id": f"{group}.feedback",
                    "enable.auto.commit": False,
                    "auto.offset.reset": "earliest",
                    "client.id": "harness-feedback",
                }
            )
        )
        self.task = getattr(learner, "task", None) or TaskSpec()
        self._restore(cold_start)
        self.consumer.subscribe([feedback_topic], on_assign=self._assigned)

    # ---- restore -----------------------------------------------------------------------------------
    def _restore(self, cold_start: bool) -> None:
        from adapters.online import CheckpointError

        blob = self.store.load()
        if blob is None:
            return
        try:
            header = self.learner.restore(blob)
        except CheckpointError as e:
            if not cold_start:
                raise ScoringSetupError(
                    f"the learner's checkpoint is refused: {e}; fix or remove it, or start cold with --cold-start"
                ) from None
            self.log(f"checkpoint refused ({e}); starting cold as asked (--cold-start)")
            return
        self._offsets = {int(p): int(o) for p, o in header.get("feedback_offsets", {}).items()}
        for key, row in header.get("waiting_rows", []):
            self._w.rows[key] = (np.asarray(row, dtype=np.float64), time.monotonic())
        self.stats.restored_from = int(header.get("learned", 0))
        self.log(f"learner restored from its checkpoint: {self.stats.restored_from} labels learnt")

    def _assigned(self, consumer: Any, partitions: list[Any]) -> None:
        """Start each feedback partition where the checkpoint left it (its labels are in the model up to there)."""
        for tp in partitions:
            if tp.partition in self._offsets:
                tp.offset = self._offsets[tp.partition]
        consumer.assign(partitions)

    # ---- the loop's side -----------------------------------------------------------------------------
    def scored(self, keys: list[list[str]], X: np.ndarray) -> None:
        """Rows just scored (copied), each under its ids (rid and/or src), to wait for their labels."""
        now = time.monotonic()
        rows = self._w.rows
        for ids, row in zip(keys, X, strict=True):
            kept = row.copy()
            for key in ids:
                rows[key] = (kept, now)
                pending = self._w.labels.pop(key, None)
                if pending is not None:
                    self._learn([kept], [pending[0]])
        while len(rows) > MAX_ROWS:
            rows.popitem(last=False)
            self.stats.expired_rows += 1

    def service(self) -> None:
        """Read labels that arrived, apply the joined ones, expire old waiting rows, checkpoint when due."""
        xs, ys = [], []
        for m in self.consumer.consume(500, timeout=0):
            if m.error() is not None:
                continue
            self._offsets[int(m.partition() or 0)] = int(m.offset() or 0) + 1
            parsed = _parse(m, self.task)
            if parsed is None:
                self.stats.malformed += 1
                continue
            key, label = parsed
            found = self._w.rows.pop(key, None)
            if found is None:
                self._w.labels[key] = (label, time.monotonic())
            else:
                xs.append(found[0])
                ys.append(label)
        if xs:
            self._learn(xs, ys)
        self._expire()
        if time.monotonic() - self._checkpoint_at >= self.checkpoint_every_s:
            self.checkpoint()

    def _learn(self, xs: list[np.ndarray], ys: list[int]) -> None:
        self.learner.learn(np.vstack(xs), np.asarray(ys))
        self.stats.labels += len(ys)

    def _expire(self) -> None:
        cutoff = time.monotonic() - self.join_window_s
        rows, labels = self._w.rows, self._w.labels
        while rows:
            key = next(iter(rows))
            if rows[key][1] >= cutoff:
                break
            rows.popitem(last=False)
            self.stats.expired_rows += 1
        stale = [k for k, (_, t) in labels.items() if t < cutoff]
        for k in stale:
            del labels[k]
        self.stats.unjoined += len(stale)

    def checkpoint(self) -> None:
        """The model, the rows still waiting and the feedback offsets it has learnt up to, in one blob."""
        waiting = [[k, v[0].tolist()] for k, v in list(self._w.rows.items())[-20_000:]]
        blob = self.learner.state({"feedback_offsets": self._offsets, "waiting_rows": waiting})
        self.store.save(blob)
        self.stats.checkpoints += 1
        self._checkpoint_at = time.monotonic()

    def close(self) -> None:
        self.checkpoint()
        self.consumer.close()


def _parse(m: Any, task: TaskSpec) -> tuple[str, Any] | None:
    try:
        obj = orjson.loads(m.value() or b"")
        if not isinstance(obj, dict) or "label" not in obj:
            return None
        label = parse_label(task, obj["label"])
        key = obj.get("rid") or obj.get("src") or (m.key() or b"").decode("utf-8", "replace")
        return (str(key), label) if key else None
    except (orjson.JSONDecodeError, TypeError, ValueError):
        return None
