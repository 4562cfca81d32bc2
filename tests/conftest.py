"""Shared fixtures. Every test that touches Kafka talks to a real Apache Kafka broker (KRaft) started here."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
HARNESS = [sys.executable, "-m", "harness.cli"]


@pytest.fixture(scope="session")
def state_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("harness-state")
    return d


@pytest.fixture(scope="session")
def broker(state_dir: Path) -> Iterator[str]:
    """One real broker for the whole test session; yields its bootstrap address."""
    from harness.broker import Broker

    b = Broker(state_dir)
    st = b.start()
    os.environ["HARNESS_STATE_DIR"] = str(state_dir)
    try:
        yield st.bootstrap
    finally:
        b.stop()


@pytest.fixture
def topic_name() -> str:
    return f"t-{uuid.uuid4().hex[:10]}"


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    e = dict(os.environ)
    e.update(env or {})
    return subprocess.run(
        [*HARNESS, *args], capture_output=True, text=True, timeout=timeout, env=e, cwd=ROOT, stdin=subprocess.DEVNULL
    )


def create_topic(bootstrap: str, name: str, partitions: int = 1) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    fut = admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])[name]
    fut.result(timeout=30)
