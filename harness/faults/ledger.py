"""Accounting for every record a fault case sent: what came out of the output and dead-letter topics.

Records are told apart by their `rid` header ("<prefix>-<i>"); each was sent expecting a result or a dead
letter at a stage ("decode" or "score"). Reading is read_committed, as a downstream consumer of an
exactly-once scorer reads.

    lost         sent, and neither a result nor a dead letter came out
    duplicates   outputs beyond the first for a record (results and dead letters)
    misrouted    a result where a dead letter was expected, or the other way round, or the wrong stage
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass, field

from confluent_kafka import Consumer

from harness.faults.processes import FaultError
from harness.faults.timeline import Timing
from harness.kafka.config import KafkaTarget
from harness.kafka.errors import KafkaSetupError
from harness.kafka.topics import partitions_from_start
from harness.scoring import wire

RESULT = "result"


@dataclass
class Ledger:
    sent: int = 0
    scored: int = 0
    dead_lettered: int = 0
    lost: int = 0
    duplicates: int = 0
    misrouted: int = 0
    expected_dead_letters: int = 0
    notes: list[str] = field(default_factory=list)
    timing: Timing | None = None  # the replication matrix's rows: output gap and p99 around the fault

    def holds(self, exactly_once: bool) -> bool:
        """Nothing lost or misrouted, and no duplicates when exactly-once."""
        return self.lost == 0 and self.misrouted == 0 and (self.duplicates == 0 or not exactly_once)


class Outcomes:
    """Reads a case's output and dead-letter topics from the start, in the background of `wait_settled` (or,
    after `follow()`, in a thread of its own, so that each record's arrival time is when it became readable)."""

    def __init__(self, target: KafkaTarget, output_topic: str, dlq_topic: str) -> None:
        self.consumer = Consumer(
            target.client_config(
                **{
                    "group.id": f"ledger-{uuid.uuid4().hex[:8]}",
                    "enable.auto.commit": False,
                    "isolation.level": "read_committed",
                    "fetch.wait.max.ms": 10,  # an output is read as soon as it is readable (its arrival time)
                    "log_level": 0,
                }
            )
        )
        try:
            self.consumer.assign(partitions_from_start(self.consumer, [output_topic, dlq_topic]))
        except KafkaSetupError as e:
            raise FaultError(f"the ledger cannot read the outputs: {e}") from None
        self.dlq_topic = dlq_topic
        self.results: dict[str, int] = {}
        self.dead: dict[str, list[str]] = {}
        self.arrived: dict[str, float] = {}  # rid -> wall-clock time its first output was read
        self._read = 0
        self._taken = 0
        self._follower: threading.Thread | None = None
        self._stop = threading.Event()

    def follow(self) -> Outcomes:
        """Read continuously from a thread of its own until close(); poll() then only waits."""
        self._follower = threading.Thread(target=self._follow, name="ledger", daemon=True)
        self._follower.start()
        return self

    def _follow(self) -> None:
        while not self._stop.is_set():
            self._consume(0.1)

    def poll(self, timeout_s: float = 0.2) -> int:
        """Read what is there; the number of records read (since the last call, when following)."""
        if self._follower is None:
            return self._consume(timeout_s)
        time.sleep(timeout_s)
        read, self._taken = self._read - self._taken, self._read
        return read

    def _consume(self, timeout_s: float) -> int:
        msgs = self.consumer.consume(5000, timeout=timeout_s)
        now = time.time()
        for m in msgs:
            if m.error() is not None:
                continue
            h = wire.headers_dict(m.headers())
            rid = h.get(wire.H_RID, b"").decode()
            if m.topic() == self.dlq_topic:
                self.dead.setdefault(rid, []).append(h.get(wire.H_DLQ_STAGE, b"").decode())
            else:
                self.results[rid] = self.results.get(rid, 0) + 1
            self.arrived.setdefault(rid, now)
        self._read += len(msgs)
        return len(msgs)

    def accounted(self) -> int:
        return len(set(self.results) | set(self.dead))

    def wait_settled(self, expected: int, idle_s: float, timeout_s: float) -> None:
        """Until `expected` records are accounted for and nothing new came for a second, or nothing came for
        idle_s (the rest is lost, or stuck), or timeout_s passed."""
        start = last = time.monotonic()
        while time.monotonic() - start < timeout_s:
            if self.poll():
                last = time.monotonic()
            idle = time.monotonic() - last
            if (self.accounted() >= expected and idle > 1.0) or idle > idle_s:
                return

    def ledger(self, expected: dict[str, str]) -> Ledger:
        """`expected`: rid -> "result" or the dead letter's stage."""
        led = Ledger(sent=len(expected), expected_dead_letters=sum(1 for e in expected.values() if e != RESULT))
        for rid, want in expected.items():
            n_res, stages = self.results.get(rid, 0), self.dead.get(rid, [])
            if n_res:
                led.scored += 1
            if stages:
                led.dead_lettered += 1
            if not n_res and not stages:
                led.lost += 1
                continue
            led.duplicates += n_res + len(stages) - 1
            got = RESULT if n_res and not stages else stages[0] if stages and not n_res else "both"
            if got != want or any(s != stages[0] for s in stages):
                led.misrouted += 1
                if len(led.notes) < 3:
                    led.notes.append(f"{rid}: expected {want}, got {got}")
        return led

    def close(self) -> None:
        if self._follower is not None:
            self._stop.set()
            self._follower.join(10)
        self.consumer.close()
