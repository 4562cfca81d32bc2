"""`harness retrain` as a service: follow the stream, and on a trigger build the training set, train the
champion's recipe on it, gate the challenger, and publish it on the model topic or keep the champion and say why.

    input topic ──┐   StreamJoin (trainingset.py): feature records × labels, bounded window
    feedback ─────┤
    alerts ───────┘   triggers: an alert of `trigger_rules` (harness monitor's), every `labels_every` new labels,
                      every `every_s` seconds
    on a trigger:     the window's rows (for an alert: those written since the alerting window began) ─► snapshot
                      (Parquet) ─► challenger (challenger.py: the recipe, every format, the parity gate) ─► gate
                      (gate.py) ─► publish_bundle on the model topic, or an alert event "RetrainRefused" + a log line

stdout carries one line per attempt, `RETRAIN {json}` (the trigger, the stage times, the verdict), and `READY`
once the service follows its topics; logs go to stderr. The champion is the model topic's current version at each
attempt (received over Kafka, like a scorer's), or --bundle while the topic holds none.
"""

from __future__ import annotations

import contextlib
import json
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from adapters.bundle import Bundle
from harness.kafka.config import KafkaTarget
from harness.retraining.errors import RetrainError
from harness.retraining.trainingset import StreamJoin, TrainingSet, assemble, read_snapshot, write_snapshot

TRIGGERS = ("alert", "labels", "schedule")
DEFAULT_TRIGGER_RULES = ("ScoreDriftPSI", "ScoreDriftKS", "LiveAUCDropped")


@dataclass
class RetrainSettings:
    input_topic: str
    feedback_topic: str
    model_topic: str
    model_name: str
    alerts_topic: str | None = None
    bundle: Path | None = None
    encoding: str = "json"
    triggers: list[str] = field(default_factory=lambda: ["alert"])
    trigger_rules: list[str] = field(default_factory=lambda: list(DEFAULT_TRIGGER_RULES))
    labels_every: int = 20_000
    every_s: float = 3600.0
    window_rows: int = 20_000
    min_labels: int = 2_000
    min_positives: int = 40
    holdout_fraction: float = 0.3
    margin: float = 0.01
    logloss_slack: float = 0.005
    bootstrap_rounds: int = 500
    join_window_s: float = 300.0
    min_interval_s: float = 60.0
    start: str = "earliest"
    work_dir: Path = Path("retrain")
    metrics_port: int | None = None
    max_attempts: int | None = None
    seed: int = 0
    bootstrap: str | None = None
    client_config: Path | None = None


@dataclass
class Trigger:
    kind: str  # alert, labels, schedule
    why: str
    at_ns: int
    since_ms: int | None = None  # only rows written since then (an alert: since its window began)


def _log(message: str) -> None:
    print(f"harness retrain: {message}", file=sys.stderr, flush=True)


def _emit(kind: str, body: dict[str, Any] | None = None) -> None:
    print(kind if body is None else f"{kind} {json.dumps(body, sort_keys=True)}", flush=True)


def check(s: RetrainSettings) -> None:
    bad = [t for t in s.triggers if t not in TRIGGERS]
    if bad or not s.triggers:
        raise RetrainError(f"unknown trigger {bad[0] if bad else '(none)'!r}; valid: {', '.join(TRIGGERS)}")
    if "alert" in s.triggers and not s.alerts_topic:
        raise RetrainError("the alert trigger needs --alerts-topic (where harness monitor writes its alerts)")
    if not 0.05 <= s.holdout_fraction <= 0.5:
        raise RetrainError(f"--holdout-fraction must be in [0.05, 0.5], got {s.holdout_fraction:g}")
    if s.start not in ("earliest", "latest"):
        raise RetrainError(f"--start is earliest or latest, got {s.start!r}")
    if s.min_labels > s.window_rows:
        raise RetrainError(f"--min-labels {s.min_labels} is more than the window holds (--window-rows {s.window_rows})")


class Retrainer:
    def __init__(
        self,
        target: KafkaTarget,
        s: RetrainSettings,
        log: Callable[[str], None] = _log,
        emit: Callable[[str, dict[str, Any] | None], None] = _emit,
    ) -> None:
        from harness.retraining.metrics import RetrainHealth, RetrainMetrics
        from harness.scoring import wire
        from harness.scoring.models import ModelCache

        check(s)
        self.target, self.s, self.log, self.emit = target, s, log, emit
        self.metrics, self.health = RetrainMetrics(), RetrainHealth()
        self.cache = ModelCache(s.work_dir / "received")
        self.champion_dir, self.champion = self._champion()
        self.health.champion = True
        self.metrics.champion.info({"model_id": self.champion.model_id})
        try:
            enc = wire.check_encoding(s.encoding)
        except ValueError as e:
            raise RetrainError(str(e)) from None
        self.join = StreamJoin(wire.FeatureCodec.for_bundle(self.champion, enc), s.window_rows, s.join_window_s)
        self.pending: Trigger | None = None
        self.attempts: list[dict[str, Any]] = []
        self._stop = threading.Event()
        self._last_attempt = 0.0
        self._labels_at_last = 0
        self._schedule_at = time.monotonic() + s.every_s
        self._waiting_logged = 0.0
        self._alerts: Any = None

    # ---- the champion ------------------------------------------------------------------------------------------
    def _champion(self) -> tuple[Path, Bundle]:
        """The model topic's current version (received over Kafka), else --bundle."""
        from harness.scoring.errors import ScoringSetupError
        from harness.scoring.models import read_current

        try:
            _, root = read_current(self.target, self.s.model_topic, self.s.model_name, self.cache)
            return root, binary_champion(Bundle.open(root))
        except ScoringSetupError as e:
            if self.s.bundle is None:
                raise RetrainError(f"no champion: {e}; give --bundle for the model in use") from None
            return self.s.bundle, binary_champion(Bundle.open(self.s.bundle))

    # ---- the loop ----------------------------------------------------------------------------------------------
    def stop(self) -> None:
        self._stop.set()

    def install_signal_handlers(self) -> None:
        from harness.signals import on_stop_signals

        on_stop_signals(self._stop.set)

    def _consumer(self) -> Any:
        from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, Consumer, TopicPartition

        s = self.s
        c = Consumer(
            self.target.client_config(
                **{
                    "group.id": f"retrain-{s.model_name}-{time.time_ns()}",
                    "enable.auto.commit": False,
                    "isolation.level": "read_committed",
                    "client.id": "harness-retrain",
                }
            )
        )
        start = OFFSET_BEGINNING if s.start == "earliest" else OFFSET_END
        md = c.list_topics(timeout=30)
        assignment = []
        topics = [(s.input_topic, start), (s.feedback_topic, start)]
        if s.alerts_topic:
            topics.append((s.alerts_topic, OFFSET_END))  # alerts from now on: an old alert is no trigger
        for topic, offset in topics:
            t = md.topics.get(topic)
            if t is None or t.error is not None:
                c.close()
                raise RetrainError(f"topic {topic!r} does not exist at {self.target.bootstrap}")
            assignment += [TopicPartition(topic, p, offset) for p in t.partitions]
        c.assign(assignment)
        return c

    def run(self) -> list[dict[str, Any]]:
        """Follow the topics and retrain on triggers until stop(), a signal, or `max_attempts` attempts."""
        s = self.s
        consumer = self._consumer()
        self.health.assigned = True
        self.emit("READY", None)
        self.log(
            f"following {s.input_topic} and {s.feedback_topic}; champion {self.champion.model_id}; triggers "
            f"{', '.join(s.triggers)}; window {s.window_rows} labelled records, at least {s.min_labels} to train"
        )
        last_expire = time.monotonic()
        try:
            while not self._stop.is_set():
                self.health.heartbeat()
                msgs = [m for m in consumer.consume(2000, timeout=0.2) if m.error() is None]
                self.join.features([m for m in msgs if m.topic() == s.input_topic])
                self.join.labels([m for m in msgs if m.topic() == s.feedback_topic])
                for m in msgs:
                    if m.topic() == s.alerts_topic:
                        self._alert(m.value())
                if time.monotonic() - last_expire > 1.0:
                    self.join.expire()
                    last_expire = time.monotonic()
                self.metrics.counts(self.join.stats.as_dict(), len(self.join.window))
                self._count_triggers()
                if self.pending is not None and time.monotonic() - self._last_attempt >= s.min_interval_s:
                    self._try(self.pending)
                if s.max_attempts is not None and len(self.attempts) >= s.max_attempts:
                    break
        finally:
            consumer.close()
        return self.attempts

    # ---- triggers ----------------------------------------------------------------------------------------------
    def _alert(self, raw: bytes | None) -> None:
        if "alert" not in self.s.triggers:
            return
        try:
            alert = json.loads(raw or b"")
            rule = str(alert["rule"])
        except (ValueError, KeyError, TypeError):
            return
        if rule not in self.s.trigger_rules:
            return
        since = _iso_ms(alert.get("window_start"))
        self._trigger(Trigger("alert", f"alert {rule}", time.time_ns(), since))

    def _count_triggers(self) -> None:
        s = self.s
        if "labels" in s.triggers and self.join.joined_total - self._labels_at_last >= s.labels_every:
            self._labels_at_last = self.join.joined_total
            self._trigger(Trigger("labels", f"{s.labels_every} new labels", time.time_ns()))
        if "schedule" in s.triggers and time.monotonic() >= self._schedule_at:
            self._schedule_at = time.monotonic() + s.every_s
            self._trigger(Trigger("schedule", f"every {s.every_s:g} s", time.time_ns()))

    def _trigger(self, t: Trigger) -> None:
        if self.pending is None:
            self.log(f"retrain triggered: {t.why}")
            self.pending = t

    # ---- one attempt -------------------------------------------------------------------------------------------
    def _try(self, t: Trigger) -> None:
        s = self.s
        rows = self.join.rows_since(t.since_ms)[-s.window_rows :]
        positives = sum(r.label for r in rows)
        if len(rows) < s.min_labels or positives < s.min_positives or len(rows) - positives < s.min_positives:
            if time.monotonic() - self._waiting_logged > 10:
                self._waiting_logged = time.monotonic()
                self.log(
                    f"{t.why}: waiting for labels: {len(rows)} labelled records ({positives} positive) in the window, "
                    f"{s.min_labels} ({s.min_positives} of each class) needed"
                )
            return
        self.pending = None
        self._last_attempt = time.monotonic()
        self._labels_at_last = self.join.joined_total
        self.health.busy_until = time.monotonic() + 3600
        try:
            self.attempts.append(self.attempt(t, rows))
        finally:
            self.health.busy_until = 0.0
            self.health.heartbeat()

    def attempt(self, t: Trigger, rows: list[Any]) -> dict[str, Any]:
        """Snapshot, challenger, gate, publish or refuse; the outcome as the RETRAIN line prints it."""
        from harness.modelbuild.errors import BuildError
        from harness.modelbuild.pipeline import Recipe

        s = self.s
        out: dict[str, Any] = {"trigger": t.kind, "why": t.why, "triggered_ns": t.at_ns}
        started = time.monotonic()
        try:
            self.champion_dir, self.champion = self._champion()
            self.metrics.champion.info({"model_id": self.champion.model_id})
            out["champion"] = self.champion.model_id
            recipe = Recipe.from_manifest(self.champion.manifest)
            meta = {
                "champion": self.champion.model_id,
                "recipe": recipe.__dict__,
                "input_topic": s.input_topic,
                "feedback_topic": s.feedback_topic,
                "trigger": t.why,
                "since_ms": t.since_ms,
                "window_rows": s.window_rows,
                "join": self.join.stats.as_dict(),
                "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            }
            ts = assemble(rows, list(self.champion.feature_names), s.holdout_fraction, s.seed, meta)
            snapshot = (
                s.work_dir / "snapshots" / f"{time.strftime('%Y%m%d-%H%M%S')}-{ts.meta['content_sha256'][:12]}.parquet"
            )
            write_snapshot(ts, rows, snapshot)
            out.update(set_ns=time.time_ns(), rows=len(rows), positives=int(ts.y.sum()), snapshot=str(snapshot))
            self.log(f"training set: {len(rows)} labelled records ({int(ts.y.sum())} positive) -> {snapshot}")
            verdict, challenger = self.train_and_judge(ts, recipe, snapshot)
            out.update(
                trained_ns=time.time_ns(), challenger=Bundle.open(challenger).model_id, verdict=verdict.as_dict()
            )
        except (BuildError, RetrainError, ValueError) as e:
            out.update(outcome="failed", error=str(e), seconds=round(time.monotonic() - started, 3))
            self.log(f"retrain failed: {e}; the champion {self.champion.model_id} stays")
            self._alert_out("RetrainFailed", 1.0, 0.0, f"retrain ({t.why}) failed: {e}")
            self._count(out)
            return out
        if verdict.publish:
            from harness.scoring.models import publish_bundle

            done = publish_bundle(self.target, s.model_topic, challenger, s.model_name)
            out.update(outcome="published", published_ns=time.time_ns(), chunks_sent=done.chunks_sent)
            self.log(
                f"published {done.version.model_id} on {s.model_topic}: AUC {verdict.challenger_auc.text()} against "
                f"the champion's {verdict.champion_auc.text()}; {verdict.reason}"
            )
            self.champion_dir, self.champion = challenger, Bundle.open(challenger)
        else:
            out.update(outcome="refused")
            self.log(
                f"challenger {out['challenger']} refused, the champion {self.champion.model_id} stays: "
                f"{verdict.reason} (AUC {verdict.challenger_auc.text()} vs {verdict.champion_auc.text()}; log-loss "
                f"{verdict.challenger_logloss.text()} vs {verdict.champion_logloss.text()}; "
                f"{verdict.rows} holdout rows)"
            )
            self._alert_out("RetrainRefused", verdict.auc_gain.value, s.margin, f"challenger {out['challenger']} "
                            f"refused, champion {self.champion.model_id} kept: {verdict.reason}")  # fmt: skip
        out["seconds"] = round(time.monotonic() - started, 3)
        self._count(out)
        return out

    def train_and_judge(self, ts: TrainingSet, recipe: Any, snapshot: Path | None) -> tuple[Any, Path]:
        from harness.retraining.challenger import evaluate, train_challenger

        s = self.s
        name = str(self.champion.manifest.get("scenario", s.model_name))
        challenger = train_challenger(ts, recipe, name, s.work_dir / "bundles", self.log, snapshot)
        return evaluate(ts, self.champion, challenger, s.margin, s.logloss_slack, s.bootstrap_rounds), challenger

    def _count(self, out: dict[str, Any]) -> None:
        self.metrics.attempts.labels(trigger=out["trigger"], outcome=out["outcome"]).inc()
        self.metrics.seconds.observe(out["seconds"])
        v = out.get("verdict")
        if v:
            self.metrics.last_auc.labels(model="champion").set(v["champion_auc"]["value"])
            self.metrics.last_auc.labels(model="challenger").set(v["challenger_auc"]["value"])
        self.emit("RETRAIN", out)

    def _alert_out(self, rule: str, value: float, threshold: float, message: str) -> None:
        from harness.scoring.alerts import Alert, KafkaAlertSink, iso_now

        if self._alerts is None:
            self._alerts = KafkaAlertSink(self.target, self.s.alerts_topic)
        now = iso_now()
        self._alerts.send(
            Alert(
                rule=rule,
                figure="auc_gain",
                value=round(float(value), 6),
                threshold=threshold,
                op=">=",
                window_start=now,
                window_end=now,
                window_s=0.0,
                model_id=self.champion.model_id,
                message=message,
            )
        )


def _iso_ms(text: object) -> int | None:
    """Milliseconds since the epoch of the monitor's ISO time ("2026-12-01T16:07:03.120Z"), or None."""
    if not isinstance(text, str) or not text:
        return None
    from datetime import datetime

    with contextlib.suppress(ValueError):
        return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)
    return None


def run_retrain(s: RetrainSettings) -> list[dict[str, Any]]:
    from harness.kafka.config import resolve_kafka
    from harness.kafka.topics import ensure_topics

    check(s)
    target = resolve_kafka(s.bootstrap, s.client_config)
    if s.alerts_topic:
        ensure_topics(target, {s.alerts_topic: 1})
    r = Retrainer(target, s)
    if s.metrics_port is not None:
        from harness.scoring.metrics import MetricsServer

        MetricsServer(s.metrics_port, r.metrics, r.health).start()
    r.install_signal_handlers()
    try:
        return r.run()
    finally:
        r.cache.close()


def binary_champion(b: Bundle) -> Bundle:
    """The champion, when retraining can follow its task: today a binary classifier only. The training set reads
    labels as 0/1, waits for `min_positives` of each class, and the gate compares AUC and log-loss; a regression or
    multiclass champion would need its own label join and gate (RMSE, log-loss over the classes), so it is refused
    in one line rather than trained wrong."""
    if b.task.task != "binary":
        raise RetrainError(
            f"model {b.model_id} is a {b.task.task} model: harness retrain trains and gates binary classifiers only "
            "(labels 0/1, AUC and log-loss on the holdout); retrain a regression or multiclass model with harness "
            "build on new data"
        )
    return b


def retrain_snapshot(snapshot: Path, champion: Path, work_dir: Path, margin: float, rounds: int) -> dict[str, Any]:
    """`harness retrain --from-snapshot FILE --bundle CHAMPION`: the same training and gate, offline, from a saved
    training set (the same snapshot trains the same challenger: its model id hashes the snapshot's content)."""
    from harness.modelbuild.pipeline import Recipe
    from harness.retraining.challenger import evaluate, train_challenger

    ts = read_snapshot(snapshot)
    b = binary_champion(Bundle.open(champion))
    recipe = Recipe(**ts.meta["recipe"]) if "recipe" in ts.meta else Recipe.from_manifest(b.manifest)
    name = str(b.manifest.get("scenario", "model"))
    challenger = train_challenger(ts, recipe, name, work_dir / "bundles", _log, snapshot)
    verdict = evaluate(ts, b, challenger, margin, 0.005, rounds)
    return {"challenger": Bundle.open(challenger).model_id, "bundle": str(challenger), "verdict": verdict.as_dict()}
