"""The production scorer's rules, without a broker: how a batch is isolated (harness/scoring/isolation.py), the
outage back-off and the hung-call watchdog (outage.py), which consumer errors stop the loop
(consumer_errors.py), and bundle file names (adapters/bundle.py)."""

from __future__ import annotations

import json
import math
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from confluent_kafka import KafkaError

from adapters.base import Adapter
from adapters.bundle import Bundle
from adapters.errors import BundleError, EngineUnavailable
from adapters.identity import IdentityAdapter
from harness.faults import chaos
from harness.scoring.consumer_errors import TransientLog, classify
from harness.scoring.isolation import BatchScorer, EngineDown
from harness.scoring.outage import Backoff, Watchdog


@pytest.fixture
def bundle(tmp_path: Path) -> Bundle:
    return Bundle(root=tmp_path, manifest={"model_id": "m", "feature_names": ["kind", "x", "y"], "formats": {}})


def rows(*kinds: float) -> np.ndarray:
    """One row per kind; the second feature is the row's index (so each good row has its own score)."""
    return np.array([[k, float(i), 0.0] for i, k in enumerate(kinds)])


def counting(adapter: Adapter) -> tuple[list[int], BatchScorer]:
    sizes: list[int] = []

    def predict(X: np.ndarray) -> np.ndarray:
        sizes.append(len(X))
        return adapter.predict(X)

    return sizes, BatchScorer(adapter, predict=predict)


def test_a_good_batch_is_one_call(bundle: Bundle) -> None:
    sizes, scorer = counting(chaos.ChaosAdapter.load(bundle))
    out = scorer.score(rows(0, 0, 0))
    assert sizes == [3] and out.failures == {}
    assert out.scores.tolist() == [chaos.expected_score(i) for i in range(3)]


def test_non_finite_scores_fail_their_rows_only(bundle: Bundle) -> None:
    sizes, scorer = counting(chaos.ChaosAdapter.load(bundle))
    out = scorer.score(rows(0, chaos.NAN, 0, chaos.INF))
    assert sizes == [4]  # no second call: the engine answered, two of its answers are not scores
    assert set(out.failures) == {1, 3}
    assert "nan" in out.failures[1] and "inf" in out.failures[3]
    assert out.scores[0] == chaos.expected_score(0) and out.scores[2] == chaos.expected_score(2)


def test_any_exception_isolates_and_fails_only_rows_that_fail_alone(bundle: Bundle) -> None:
    sizes, scorer = counting(chaos.ChaosAdapter.load(bundle))
    out = scorer.score(rows(0, chaos.RAISE, chaos.FRAGILE, 0))
    assert sizes == [4, 1, 1, 1, 1]
    assert list(out.failures) == [1]
    assert out.failures[1].startswith("ValueError: Input contains a value too large")
    assert [out.scores[i] for i in (0, 2, 3)] == [chaos.expected_score(i) for i in (0, 2, 3)]


def test_engine_unavailable_is_engine_down_and_fails_no_row(bundle: Bundle, tmp_path: Path) -> None:
    down = tmp_path / "down"
    down.touch()
    adapter = chaos.ChaosAdapter.load(bundle, down_file=str(down))
    scorer = BatchScorer(adapter, canary=np.array([0.0, 0.0, 0.0]))
    with pytest.raises(EngineDown, match="chaos engine is down"):
        scorer.score(rows(0, 0))
    down.unlink()
    assert scorer.score(rows(0, 0)).failures == {}  # the same batch scores once the engine is back


class FiveHundredOnOneRow(IdentityAdapter):
    """A model server that answers 5xx (EngineUnavailable after retries) to batches holding a marked row; the
    identity's scores otherwise."""

    name = "five-hundred"

    def _predict(self, X: np.ndarray) -> np.ndarray:
        if (X[:, 0] == 7).any():
            raise EngineUnavailable("V2 server failed POST /infer after 3 attempts: HTTP 500")
        return super()._predict(X)


def test_a_5xx_one_record_provokes_is_isolated_when_the_canary_scores(bundle: Bundle) -> None:
    scorer = BatchScorer(FiveHundredOnOneRow.load(bundle), canary=np.array([0.0, 0.0, 0.0]))
    out = scorer.score(rows(0, 7, 0))
    assert list(out.failures) == [1] and "HTTP 500" in out.failures[1]
    assert out.scores[0] == out.scores[2] == 0.5  # the identity's score of a binary model
    # without a canary (nothing scored yet, no reference row) the loop cannot tell: it assumes the engine
    with pytest.raises(EngineDown):
        BatchScorer(FiveHundredOnOneRow.load(bundle)).score(rows(7))


class BreaksAfterFirstBatch(IdentityAdapter):
    """The identity for one batch, then an engine whose every call fails."""

    name = "breaks"

    def _open(self) -> None:
        self.calls = 0

    def _predict(self, X: np.ndarray) -> np.ndarray:
        self.calls += 1
        if self.calls > 1:
            raise RuntimeError("engine state corrupted")
        return super()._predict(X)


def test_every_row_failing_with_the_canary_failing_too_is_the_engine(bundle: Bundle) -> None:
    scorer = BatchScorer(BreaksAfterFirstBatch.load(bundle))
    assert scorer.score(rows(0)).failures == {}  # this row becomes the canary
    with pytest.raises(EngineDown, match="every row failed, and so does a row that scored before"):
        scorer.score(rows(0, 0, 0))


def test_backoff_is_bounded_exponential_with_a_limit() -> None:
    b = Backoff(initial_s=0.5, max_s=4.0, limit_s=10.0)
    delays = [b.next_delay(t) for t in (100.0, 100.5, 101.5, 103.5, 107.5, 109.0)]
    assert delays == [0.5, 1.0, 2.0, 4.0, 2.5, 1.0]  # capped at max_s, then by what is left of the limit
    assert b.next_delay(110.0) is None
    b.reset()
    assert not b.active and b.next_delay(200.0) == 0.5


def test_watchdog_reports_a_hung_call_and_not_a_quick_one() -> None:
    hung: list[str] = []
    seen = threading.Event()

    def on_hang(msg: str) -> None:
        hung.append(msg)
        seen.set()

    dog = Watchdog(0.2, on_hang=on_hang)
    assert dog.call(lambda X: X * 2, np.ones(3)).tolist() == [2.0, 2.0, 2.0]
    time.sleep(0.5)
    assert hung == []
    threading.Thread(target=dog.call, args=(lambda X: time.sleep(30), np.ones((4, 2))), daemon=True).start()
    assert seen.wait(10)
    assert "has not returned from predict (4 rows)" in hung[0]


@pytest.mark.parametrize(
    ("err", "verdict"),
    [
        (KafkaError(KafkaError._PARTITION_EOF), "ignore"),
        (KafkaError(KafkaError._TRANSPORT), "transient"),
        (KafkaError(KafkaError._ALL_BROKERS_DOWN), "transient"),
        (KafkaError(KafkaError.NOT_COORDINATOR), "transient"),
        (KafkaError(KafkaError.COORDINATOR_NOT_AVAILABLE), "transient"),
        (KafkaError(KafkaError._MAX_POLL_EXCEEDED), "transient"),
        (KafkaError(KafkaError.TOPIC_AUTHORIZATION_FAILED), "fatal"),
        (KafkaError(KafkaError.SASL_AUTHENTICATION_FAILED), "fatal"),
        (KafkaError(KafkaError._TRANSPORT, "x", fatal=True), "fatal"),
    ],
)
def test_only_fatal_or_permanent_consumer_errors_stop_the_loop(err: KafkaError, verdict: str) -> None:
    assert classify(err) == verdict


def test_transient_errors_are_logged_once_per_kind_then_rate_limited() -> None:
    now = [0.0]
    lines: list[str] = []
    log = TransientLog(lines.append, interval_s=30.0, clock=lambda: now[0])
    for t in (0.0, 1.0, 2.0):
        now[0] = t
        log.report(KafkaError(KafkaError._TRANSPORT, "connection refused"))
    log.report(KafkaError(KafkaError.NOT_COORDINATOR, "moved"))
    assert len(lines) == 2 and "_TRANSPORT" in lines[0] and "NOT_COORDINATOR" in lines[1]
    now[0] = 31.0
    log.report(KafkaError(KafkaError._TRANSPORT, "connection refused"))
    assert len(lines) == 3 and "(2 more since the last report)" in lines[2]


@pytest.mark.parametrize("name", ["/etc/passwd", "../outside.onnx", "sub/../../x", "C:\\model.onnx", ""])
def test_bundle_file_names_must_stay_inside_the_bundle(tmp_path: Path, name: str) -> None:
    (tmp_path / "outside.onnx").write_bytes(b"x")
    root = tmp_path / "bundle"
    root.mkdir()
    manifest = {"model_id": "m", "feature_names": ["a"], "formats": {"onnx": {"file": name, "sha256": "0" * 64}}}
    (root / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError) as e:
        Bundle.open(root).verified_bytes("onnx")
    msg = str(e.value)
    assert "\n" not in msg and str(root) in msg
    assert any(w in msg for w in ("absolute", "leaves the bundle", "missing or not a string"))


def test_bundle_file_symlinked_outside_is_refused(tmp_path: Path) -> None:
    (tmp_path / "real.onnx").write_bytes(b"x")
    root = tmp_path / "bundle"
    root.mkdir()
    (root / "model.onnx").symlink_to(tmp_path / "real.onnx")
    manifest = {"model_id": "m", "feature_names": ["a"], "formats": {"onnx": {"file": "model.onnx", "sha256": "0"}}}
    (root / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="resolves outside the bundle folder"):
        Bundle.open(root).verified_bytes("onnx")


def test_expected_score_matches_the_chaos_adapter(bundle: Bundle) -> None:
    a = chaos.ChaosAdapter.load(bundle)
    assert a.predict(np.array([[0.0, math.nan, 0.0]]))[0] == chaos.expected_score(math.nan) == 0.5
