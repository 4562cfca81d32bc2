"""Shared fixtures. Every test that touches Kafka talks to a real Apache Kafka broker (KRaft) started here."""

from __future__ import annotations

import copy
import functools
import os
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
HARNESS = [sys.executable, "-m", "harness.cli"]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A test that uses the broker is marked `kafka`, one that builds the shipped scenarios' bundles (H2O, a
    JVM per format) `heavy`; `make check` runs the others (`-m "not kafka and not heavy ..."`)."""
    for item in items:
        names = getattr(item, "fixturenames", ())
        if "broker" in names:
            item.add_marker(pytest.mark.kafka)
        if "bundles" in names:
            item.add_marker(pytest.mark.heavy)


@pytest.fixture(scope="session")
def state_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("harness-state")
    return d


@pytest.fixture(scope="session")
def broker(state_dir: Path) -> Iterator[str]:
    """One real broker for the whole test session; yields its bootstrap address."""
    from harness.kafka.broker import Broker

    b = Broker(state_dir)
    st = b.start()
    os.environ["HARNESS_STATE_DIR"] = str(state_dir)
    try:
        yield st.bootstrap
    finally:
        b.stop()


@functools.cache
def publisher_keys() -> tuple[Path, Path]:
    """The tests' publisher key pair (private, public): versions are signed with it, scorers trust it."""
    from harness.scoring.signing import create_key_pair

    return create_key_pair(Path(tempfile.mkdtemp(prefix="harness-test-keys-")), "publisher")


def publisher_key() -> Any:
    from harness.scoring.signing import load_private

    return load_private(publisher_keys()[0])


def trusted() -> list[str]:
    """A scorer's flags to trust the tests' publisher key."""
    return ["--trusted-key", str(publisher_keys()[1])]


@pytest.fixture
def topic_name() -> str:
    return f"t-{uuid.uuid4().hex[:10]}"


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    e = dict(os.environ)
    e.update(env or {})
    return subprocess.run(
        [*HARNESS, *args], capture_output=True, text=True, timeout=timeout, env=e, cwd=ROOT, stdin=subprocess.DEVNULL
    )


def end_process(proc: subprocess.Popen, wait_s: float = 10.0) -> None:  # type: ignore[type-arg]
    """Terminate `proc` and wait for it; kill it when it has not ended within `wait_s`."""
    proc.terminate()
    try:
        proc.wait(timeout=wait_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def create_topic(bootstrap: str, name: str, partitions: int = 1) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    fut = admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])[name]
    fut.result(timeout=30)


# The small model's data, trainer and formats: `small_bundle` builds it, and a scenario made of it (small_scenario)
# run with `--artifacts small_bundle.parent.parent` finds that bundle built.
SMALL_MODEL: dict[str, Any] = {
    "dataset": {
        "generator": "fraud",
        "rows": 4000,
        "seed": 3,
        "holdout_max_rows": 500,
        "params": {"positive_rate": 0.05},
    },
    "model": {"trainer": "lightgbm", "params": {"n_estimators": 20, "num_leaves": 15}},
    "formats": ["onnx"],
}


def small_scenario(path: Path, name: str = "small", **rest: Any) -> Path:
    """Write a scenario file of the small model named `name`, with `rest` (adapters, rounds ...); return its path."""
    path.write_text(yaml.safe_dump({"name": name, **copy.deepcopy(SMALL_MODEL), **rest}))
    return path


@pytest.fixture(scope="session")
def small_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small real LightGBM bundle (fraud data, 20 trees) with native and ONNX formats."""
    from harness.modelbuild.pipeline import build
    from harness.scenario import Scenario

    sc = Scenario.model_validate({"name": "small", **copy.deepcopy(SMALL_MODEL)})
    res = build(sc, artifacts=tmp_path_factory.mktemp("artifacts"), log=lambda m: None)
    return res.bundle_dir


@pytest.fixture(scope="session")
def second_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Another small LightGBM bundle (a different seed: a different model id), as a retrained version."""
    from harness.modelbuild.pipeline import build
    from harness.scenario import Scenario

    sc = Scenario.model_validate(
        {
            "name": "small",
            "dataset": {"generator": "fraud", "rows": 3000, "seed": 9, "holdout_max_rows": 300},
            "model": {"trainer": "lightgbm", "params": {"n_estimators": 15, "num_leaves": 7}},
            "formats": ["onnx"],
        }
    )
    return build(sc, artifacts=tmp_path_factory.mktemp("artifacts2"), log=lambda m: None).bundle_dir


def _task_bundle(tmp: Path, task: str, target: str) -> Path:
    """A small LightGBM bundle of the maintenance data with the C model beside the native one."""
    from harness.modelbuild.pipeline import build
    from harness.scenario import Scenario

    sc = Scenario.model_validate(
        {
            "name": f"small-{task}",
            "task": task,
            "dataset": {
                "generator": "maintenance",
                "params": {"target": target},
                "rows": 6000,
                "seed": 4,
                "holdout_max_rows": 400,
            },  # fmt: skip
            "model": {"trainer": "lightgbm", "params": {"n_estimators": 30, "num_leaves": 15}},
            "formats": ["codegen-c"],
        }
    )
    return build(sc, artifacts=tmp, log=lambda m: None).bundle_dir


@pytest.fixture(scope="session")
def rul_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A regression bundle: the remaining useful life."""
    return _task_bundle(tmp_path_factory.mktemp("rul"), "regression", "rul")


@pytest.fixture(scope="session")
def type_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A multiclass bundle: the failure type (6 classes)."""
    return _task_bundle(tmp_path_factory.mktemp("type"), "multiclass", "failure_type")


def start_loop(
    bootstrap: str, bundle: Path, adapter: str, topic: str, group: str, *extra: str
) -> subprocess.Popen[str]:
    """A scoring loop process (harness score) that has its partitions assigned when this returns."""
    proc = subprocess.Popen(
        [*HARNESS, "score", "--bundle", str(bundle), "--adapter", adapter, "--input-topic", topic,
         "--output-topic", f"{topic}.out", "--group", group, "--bootstrap", bootstrap, *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.startswith("READY"), (
        f"loop did not start: {line!r} {proc.stderr.read() if proc.poll() is not None else ''}"
    )
    return proc


def finish_loop(proc: subprocess.Popen[str], timeout: float = 60) -> dict:  # type: ignore[type-arg]
    """Wait for a loop process to exit cleanly; its STATS line as a dict."""
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    return stats_of(out)


def stats_of(out: str) -> dict[str, Any]:
    """The last STATS line of a `harness score` process's stdout (harness/scoring/protocol.py), as a dict."""
    from harness.scoring import protocol

    lines = [p for p in map(protocol.parse_line, out.splitlines()) if p is not None and p.kind == protocol.STATS]
    assert lines and lines[-1].stats is not None, out[-2000:]
    return lines[-1].stats


def committed_offsets(bootstrap: str, group: str, topic: str) -> tuple[int, int]:
    """(sum of the group's committed offsets, sum of end offsets) over the topic's partitions."""
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    md = c.list_topics(topic, timeout=10)
    tps = [TopicPartition(topic, p) for p in md.topics[topic].partitions]
    # read_committed asks for stable offsets: a transaction left open by a killed scorer holds them back
    # until the broker aborts it (the scorer's transaction.timeout.ms, 10 s), so wait longer than that
    committed = c.committed(tps, timeout=30)
    ends = sum(c.get_watermark_offsets(tp, timeout=10)[1] for tp in tps)
    c.close()
    return sum(max(0, tp.offset) for tp in committed), ends


def consume_all(bootstrap: str, topic: str, expected: int, timeout_s: float = 60.0) -> list:  # type: ignore[type-arg]
    """Every record of `topic` from the start, until `expected` arrived or nothing came for a while. A topic that
    does not exist yet (its writer creates it) is waited for."""
    import time

    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    c = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": f"check-{uuid.uuid4().hex[:6]}", "enable.auto.commit": False}
    )
    deadline = time.monotonic() + timeout_s
    partitions: list[int] = []
    while not partitions and time.monotonic() < deadline:
        t = c.list_topics(topic, timeout=10).topics.get(topic)
        partitions = list(t.partitions) if t is not None and t.error is None else []
        if not partitions:
            time.sleep(0.2)
    c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
    out = []
    idle_since = time.monotonic()
    try:
        while time.monotonic() < deadline:
            msgs = c.consume(1000, timeout=0.5)
            for m in msgs:
                if m.error() is None:
                    out.append(m)
            if msgs:
                idle_since = time.monotonic()
            if len(out) >= expected and time.monotonic() - idle_since > 1.0:
                break
    finally:
        c.close()
    return out


def alert_events(bootstrap: str, topic: str, expected: int = 1, timeout_s: float = 60.0) -> list[dict]:  # type: ignore[type-arg]
    """The JSON events on an alerts topic (the monitor's, the scorer's, the retrain service's), from the start:
    all of them once `expected` have arrived and no more come (consume_all)."""
    import json

    return [json.loads(m.value()) for m in consume_all(bootstrap, topic, expected, timeout_s)]


SCENARIOS = ["fraud", "maintenance", "cross_sell"]


@pytest.fixture(scope="session")
def artifacts() -> Path:
    # the repository's own cache: `make demo` and the README example reuse these bundles
    return ROOT / "artifacts"


@pytest.fixture(scope="session")
def bundles(artifacts: Path) -> dict[str, Path]:
    """The three shipped scenarios, built once (cached in artifacts/)."""
    from harness.modelbuild.pipeline import build
    from harness.scenario import load_scenario

    out = {}
    for name in SCENARIOS:
        res = build(load_scenario(ROOT / "scenarios" / f"{name}.yaml"), artifacts=artifacts, log=lambda m: None)
        out[name] = res.bundle_dir
    return out
