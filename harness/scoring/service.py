"""`harness score` as a service: resolve Kafka, open and check the bundle, load the adapter, run the loop,
and speak the stdout protocol (harness/scoring/protocol.py) to whoever started the process.

Its settings are one model (harness/scoring/settings.py, `ScorerSettings`): the CLI generates its flags from
it, the environment fills it (HARNESS_*), and the loop reads its part of the same object. Tests and other
programs can call `run_score` directly.
"""

from __future__ import annotations

import functools
import gc
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from adapters.base import Adapter
from adapters.bundle import Bundle
from adapters.errors import BundleError
from harness.kafka.config import KafkaTarget
from harness.scoring import protocol
from harness.scoring.errors import ScoringSetupError
from harness.scoring.loop import LoopStats
from harness.scoring.outage import Watchdog, exit_hung
from harness.scoring.settings import ScorerSettings

if TYPE_CHECKING:
    from harness.scoring.learning import FeedbackLearner
    from harness.scoring.models import ModelCache
    from harness.scoring.operations import Operations


def warm_model(model: Adapter, bundle: Bundle, batch: int, seconds: float, engine_timeout_s: float = 0.0) -> int:
    """Score the bundle's reference rows in micro-batches of `batch` for `seconds`: a JVM-backed engine
    (PMML, a MOJO) scores 5-10x slower until its JIT has compiled the hot paths (PMML cost 2,800 µs a record
    in its first backlog and under 250 µs once warm). Returns the rows scored; a bundle without reference rows
    or an engine that fails here is left to the loop (its failures are the loop's to route). An engine that
    hangs here meets the loop's watchdog (`engine_timeout_s` > 0): the process exits 3 with one error line,
    as it would on a record, instead of never becoming ready."""
    if seconds <= 0:
        return 0
    try:
        X, _, _ = bundle.reference()
    except Exception:  # no reference rows: nothing to warm with
        return 0
    if not len(X):
        return 0
    predict: Callable[[np.ndarray], np.ndarray] = model.predict
    if engine_timeout_s > 0:
        predict = functools.partial(Watchdog(engine_timeout_s, on_hang=_hung_in_warm_up).call, model.predict)
    rows, i, deadline = 0, 0, time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            chunk = X[i : i + batch]
            if not len(chunk):
                i = 0
                continue
            predict(chunk)
            rows += len(chunk)
            i += batch
    except Exception as e:  # the loop meets the same failure on real records and routes it
        _log(f"warm-up stopped after {rows} rows: {type(e).__name__}: {e}")
    return rows


def _hung_in_warm_up(message: str) -> None:
    exit_hung(f"warming the engine up: {message}")


def canary_row(bundle: Bundle) -> np.ndarray | None:
    """The bundle's first reference row: a row known to score, to tell a broken engine from broken records."""
    try:
        X, _, _ = bundle.reference()
    except Exception:  # no reference rows in this bundle: the loop uses the first row that scores instead
        return None
    return X[0] if len(X) else None


def operations(
    s: ScorerSettings,
    target: KafkaTarget,
    b: Bundle,
    load: Callable[[Bundle], Adapter],
    model: Adapter,
    cache: ModelCache | None = None,
) -> Operations:
    """Metrics and health (--metrics-port), and model updates from the model topic (--model-topic)."""
    from harness.scoring.metrics import Health, MetricsServer, ScoreMetrics
    from harness.scoring.models import ModelUpdates
    from harness.scoring.operations import Operations

    metrics = health = None
    if s.metrics_port is not None:
        metrics, health = ScoreMetrics(), Health()
        MetricsServer(s.metrics_port, metrics, health).start()
    updates = None
    if s.model_topic:
        if not s.model_name:
            raise ScoringSetupError("--model-topic needs --model-name (the record key this scorer follows)")
        from harness.scoring.alerts import KafkaAlertSink, refused_version_alert

        alerts = KafkaAlertSink(target, s.alerts_topic)

        def refused(version: object, why: str) -> None:
            published = str(getattr(version, "model_id", "?"))
            _log(f"model version {published} refused: {why}; the model in use keeps scoring")
            if metrics is not None:
                metrics.refused.inc()
            alerts.send(refused_version_alert(b.model_id, published, why))

        def load_same_task(candidate: Bundle) -> Adapter:
            """A new version must produce what this scorer's results carry: the same task and outputs."""
            if candidate.task != b.task:
                raise BundleError(
                    f"the candidate is a {candidate.task.task} model with outputs {candidate.task.output_names}; "
                    f"this scorer serves a {b.task.task} model ({b.task.output_names}): a new task needs its own "
                    "output topic and scorer"
                )
            return load(candidate)

        updates = ModelUpdates(
            target, s.model_topic, s.model_name, load_same_task, b.model_id, on_refused=refused, cache=cache
        ).start()
    learner = None
    if s.feedback_topic:
        learner = _learner(s, target, model)
    return Operations(b.model_id, model.name, metrics, health, updates, s.shadow_topic, log=_log, learner=learner)


def _learner(s: ScorerSettings, target: KafkaTarget, model: Adapter) -> FeedbackLearner:
    from harness.scoring.learning import CheckpointStore, FeedbackLearner

    if not callable(getattr(model, "learn", None)) or not callable(getattr(model, "state", None)):
        raise ScoringSetupError(f"--feedback-topic needs an adapter that learns (online); {s.adapter!r} does not")
    store = CheckpointStore(target, s.checkpoint_file, s.checkpoint_topic, key=f"{s.group}/{s.adapter}")
    return FeedbackLearner(
        target,
        model,
        s.feedback_topic or "",
        s.group,
        store,
        join_window_s=s.join_window_s,
        checkpoint_every_s=s.checkpoint_every_s,
        cold_start=s.cold_start,
        log=_log,
    )


def _log(message: str) -> None:
    import sys

    print(f"harness score: {message}", file=sys.stderr, flush=True)


def _first_model(
    s: ScorerSettings, target: KafkaTarget, load: Callable[[Bundle], Adapter], cache: ModelCache | None
) -> tuple[Bundle, Adapter]:
    """The bundle folder given (--bundle), or else the model topic's current version, received over Kafka and
    checked like any later version (a scorer that shares no folder with anyone)."""
    from harness.scoring.models import Refused, check_candidate, read_current

    if s.bundle is not None:
        b = Bundle.open(s.bundle)
        return b, load(b)
    if not (s.model_topic and s.model_name) or cache is None:
        raise ScoringSetupError(
            "give --bundle, or --model-topic and --model-name to start with the model topic's current version"
        )
    version, root = read_current(target, s.model_topic, s.model_name, cache)
    try:
        model = check_candidate(version, load, root)
    except Refused as e:
        raise ScoringSetupError(f"the current version {version.model_id} on {s.model_topic} is refused: {e}") from None
    _log(f"starting with {version.describe()} from {s.model_topic}")
    return model.bundle, model


def run_score(s: ScorerSettings) -> LoopStats:
    """Score until a signal, `max_records` or `idle_exit_s`; print READY at each assignment and STATS at exit."""
    from adapters.base import parse_options
    from adapters.registry import adapter_class
    from harness.kafka.config import resolve_kafka
    from harness.kafka.topics import ensure_topics, partitions_of
    from harness.scoring.loop import ScoringLoop
    from harness.scoring.models import ModelCache

    s.scorer_name = s.name_for(s.adapter)
    target = resolve_kafka(s.bootstrap, s.client_config)
    n_parts = partitions_of(target, s.input_topic)
    if n_parts is None:
        raise ScoringSetupError(f"input topic {s.input_topic!r} does not exist at {target.bootstrap}")
    ensure_topics(target, {s.output_topic: n_parts, s.dlq: n_parts})
    if s.shadow_topic:
        ensure_topics(target, {s.shadow_topic: n_parts})
    if s.alerts_topic:
        ensure_topics(target, {s.alerts_topic: 1})
    options = parse_options(s.options)

    def load(bundle: Bundle) -> Adapter:
        return adapter_class(s.adapter).load(bundle, **options)

    cache = ModelCache(s.model_cache_dir) if s.model_topic else None
    try:
        b, model = _first_model(s, target, load, cache)
        warm_model(model, b, s.batch_max, s.warm_s, s.engine_timeout_s)
        ops = operations(s, target, b, load, model, cache)
    except BaseException:
        if cache is not None:
            cache.close()
        raise
    loop = ScoringLoop(
        target,
        model,
        b.feature_names,
        s,
        on_assigned=lambda parts: protocol.emit(protocol.ready_line(parts)),
        canary=canary_row(b),
        ops=ops,
    )
    # Everything loaded so far (the adapter's libraries: onnx, sklearn, JPype, ...) lives as long as the
    # process. Freezing it keeps the collector's full passes from walking those objects: without it a
    # full collection paused the loop for 100-350 ms (seen as p99 spikes in the queueing time).
    gc.collect()
    gc.freeze()
    loop.install_signal_handlers()
    try:
        stats = loop.run(max_records=s.max_records, idle_exit_s=s.idle_exit_s)
    finally:
        ops.close()
        loop.adapter.close()
        if cache is not None:
            cache.close()
    extra = {"learning": ops.learner.stats.as_dict()} if ops.learner is not None else {}
    protocol.emit(protocol.stats_line({**stats.as_dict(), **extra}))
    return stats
