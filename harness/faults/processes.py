"""What a fault case drives: `harness score` and `harness serve` processes it can kill -9 and restart, and a
sender that produces a plan of records at a steady rate from a thread (riding out a broker restart)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from confluent_kafka import KafkaError, Message, Producer

from harness.kafka.config import DURABLE_PRODUCER, KafkaTarget
from harness.scoring import protocol

HARNESS = [sys.executable, "-m", "harness.cli"]


class FaultError(RuntimeError):
    """A fault case could not be set up (a process that did not start)."""


@dataclass(frozen=True)
class CaseTopics:
    input: str
    output: str
    dlq: str
    group: str

    @classmethod
    def new(cls, case: str, guarantee: str, tag: str) -> CaseTopics:
        base = f"faults.{tag}.{case}.{guarantee}"
        return cls(f"{base}.in", f"{base}.out", f"{base}.dlq", f"{base}.g")


class Process:
    """A child process whose stdout lines are read in the background; stderr goes to a log file."""

    def __init__(self, name: str, argv: Sequence[str], log_dir: Path) -> None:
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self._log: IO[bytes] = open(self.log_path, "ab")  # noqa: SIM115 - closed in wait()
        self.proc = subprocess.Popen(
            list(argv), stdout=subprocess.PIPE, stderr=self._log, stdin=subprocess.DEVNULL, text=True
        )
        self.lines: list[str] = []
        self._ready = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))
            if line.startswith(protocol.READY):
                self._ready.set()

    def wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while not self._ready.wait(0.1):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.kill9()
                raise FaultError(f"{self.name} did not become ready; its log: {self.log_tail()}")

    def log_tail(self, n: int = 3) -> str:
        lines = [ln for ln in self.log_path.read_text(errors="replace").splitlines() if not ln.startswith("%")]
        return " | ".join(lines[-n:]) or "empty"

    def errors(self) -> list[str]:
        return [ln for ln in self.log_path.read_text(errors="replace").splitlines() if ln.startswith("error:")]

    def kill9(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.proc.pid, signal.SIGKILL)
        self.wait(10)

    def stop(self, timeout_s: float = 30) -> int | None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.wait(timeout_s)

    def wait(self, timeout_s: float) -> int | None:
        try:
            code = self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait(10)
        self._log.close()
        return code


def scorer(
    name: str,
    target: KafkaTarget,
    bundle: Path,
    topics: CaseTopics,
    adapter: str,
    guarantee: str,
    log_dir: Path,
    extra: Sequence[str] = (),
) -> Process:
    """`harness score` on the case's topics, started and READY."""
    argv = [
        *HARNESS, "score", "--bundle", str(bundle), "--adapter", adapter, "--input-topic", topics.input,
        "--output-topic", topics.output, "--dlq-topic", topics.dlq, "--group", topics.group,
        "--bootstrap", target.bootstrap, "--guarantee", guarantee, *extra,
    ]  # fmt: skip
    p = Process(name, argv, log_dir)
    p.wait_ready(120)
    return p


def model_server(name: str, bundle: Path, adapter: str, port: int, log_dir: Path) -> Process:
    """`harness serve` on 127.0.0.1:port, answering its health check."""
    import httpx

    p = Process(name, [*HARNESS, "serve", "--bundle", str(bundle), "--adapter", adapter, "--port", str(port)], log_dir)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and p.proc.poll() is None:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"http://127.0.0.1:{port}/v2/health/ready", timeout=1).status_code == 200:
                return p
        time.sleep(0.2)
    p.kill9()
    raise FaultError(f"{name} did not answer on port {port}; its log: {p.log_tail()}")


Record = tuple[bytes, bytes | None, list[tuple[str, str | bytes | None]]]  # key, value, headers


class Sender:
    """Produces `records` at `rate_per_s` (0: all at once) from a thread; the producer's own retries carry it
    through a broker restart (message.timeout.ms 5 minutes)."""

    def __init__(self, target: KafkaTarget, topic: str, records: list[Record], rate_per_s: float = 0.0) -> None:
        self.producer = Producer(
            target.client_config(
                **{
                    "acks": "all",
                    "enable.idempotence": True,
                    "linger.ms": 5,
                    "message.timeout.ms": 300_000,
                    "log_level": 0,
                }
            )
        )
        self.topic = topic
        self.records = records
        self.rate = rate_per_s
        self.acked = 0
        self.errors: list[str] = []
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> Sender:
        self._thread.start()
        return self

    def _delivered(self, err: KafkaError | None, msg: Message) -> None:
        if err is None:
            self.acked += 1
        else:
            self.errors.append(err.str())

    def _run(self) -> None:
        t0 = time.monotonic()
        for i, (key, value, headers) in enumerate(self.records):
            if self.rate:
                delay = t0 + i / self.rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            while True:
                try:
                    self.producer.produce(
                        self.topic, key=key, value=value, headers=headers, on_delivery=self._delivered
                    )
                    break
                except BufferError:
                    self.producer.poll(0.05)
            self.producer.poll(0)
        self.producer.flush(300)

    def join(self, timeout_s: float = 600) -> None:
        self._thread.join(timeout_s)
        if self.errors:
            raise FaultError(f"the sender could not deliver {len(self.errors)} records: {self.errors[0]}")


def options(**kw: Any) -> list[str]:
    return [a for k, v in kw.items() for a in ("--option", f"{k}={v}")]


class SteadySender:
    """Produces records at a fixed rate from a thread until stop(): rid "<prefix>-<i>", the i-th payload
    (cycling), and the intended send time (wall clock, also in the t_intended_ns header). The schedule is
    fixed in advance (open loop): a broker that stalls the producer does not slow the schedule down, the
    records due meanwhile go out as soon as it lets them. acks=all with idempotence; a record is only
    counted as sent once the cluster acknowledged it."""

    def __init__(
        self, target: KafkaTarget, topic: str, payloads: list[bytes], rate_per_s: float, prefix: str = "s"
    ) -> None:
        self.producer = Producer(
            target.client_config(
                **DURABLE_PRODUCER,
                **{"linger.ms": 5, "message.timeout.ms": 300_000, "log_level": 0, "client.id": f"sender-{prefix}"},
            )
        )
        self.topic, self.payloads, self.rate, self.prefix = topic, payloads, rate_per_s, prefix
        self.intended: dict[str, float] = {}  # rid -> intended send time (wall clock, seconds)
        self.acked: set[str] = set()
        self.errors: list[str] = []
        self.started_at = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"sender-{prefix}", daemon=True)

    def start(self) -> SteadySender:
        self.started_at = time.time()
        self._thread.start()
        return self

    def _delivered(self, err: KafkaError | None, msg: Message) -> None:
        if err is None:
            self.acked.add(f"{self.prefix}-{(msg.key() or b'').decode()}")
        else:
            self.errors.append(err.str())

    def _run(self) -> None:
        t0, t0_mono, i = self.started_at, time.monotonic(), 0
        n = len(self.payloads)
        while not self._stop.is_set():
            due = t0_mono + i / self.rate
            delay = due - time.monotonic()
            if delay > 0:
                self.producer.poll(min(delay, 0.05))
                continue
            rid = f"{self.prefix}-{i}"
            intended = t0 + i / self.rate
            headers: list[tuple[str, str | bytes | None]] = [
                ("rid", rid.encode()),
                ("t_intended_ns", str(int(intended * 1e9)).encode()),
            ]
            while True:
                try:
                    self.producer.produce(
                        self.topic, key=str(i).encode(), value=self.payloads[i % n], headers=headers,
                        on_delivery=self._delivered,
                    )  # fmt: skip
                    break
                except BufferError:
                    self.producer.poll(0.05)
            self.intended[rid] = intended
            i += 1
            self.producer.poll(0)
        self.producer.flush(300)

    def stop(self, timeout_s: float = 330) -> None:
        """Stop sending and wait until every record sent was acknowledged (or failed)."""
        self._stop.set()
        self._thread.join(timeout_s)
        if self.errors:
            raise FaultError(f"the sender could not deliver {len(self.errors)} records: {self.errors[0]}")

    @property
    def sent(self) -> int:
        return len(self.intended)
