"""The alerts topic: one JSON event per alert, written by the scorer (a refused model version) and by the
model monitor (harness/monitoring: a rule that fired). Scoring owns the event's shape and the sink that
writes it; monitoring uses both, so the two packages meet here and nowhere else.

    AlertSink        what writes an alert (a protocol: tests and other programs may pass their own)
    KafkaAlertSink   the alerts topic, with a log line for each alert
"""

from __future__ import annotations

import sys
import time
from typing import Any, Protocol

from pydantic import BaseModel, Field

from harness.kafka.config import KafkaTarget


def iso_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class Alert(BaseModel):
    """One alert event, as written (JSON) to the alerts topic; the record key is the rule's name."""

    rule: str
    figure: str
    value: float
    threshold: float
    op: str
    window_start: str
    window_end: str
    window_s: float
    model_id: str
    message: str
    at: str = Field(default_factory=iso_now)


class AlertSink(Protocol):
    def send(self, alert: Alert) -> None: ...


class KafkaAlertSink:
    """Writes each alert to `topic` (when there is one) and waits for it to be acknowledged."""

    def __init__(self, target: KafkaTarget, topic: str | None, producer: Any = None) -> None:
        self.target, self.topic = target, topic
        self._producer = producer

    def send(self, alert: Alert) -> None:
        if not self.topic:
            return
        if self._producer is None:
            from confluent_kafka import Producer

            self._producer = Producer(self.target.client_config(**{"acks": "all"}))
        self._producer.produce(self.topic, key=alert.rule.encode(), value=alert.model_dump_json().encode())
        self._producer.flush(10)


def refused_version_alert(model_id: str, published: str, why: str) -> Alert:
    """The event for a model version the scorer refused (it keeps scoring with the model in use)."""
    now = iso_now()
    return Alert(
        rule="ModelVersionRefused",
        figure="model_version",
        value=1.0,
        threshold=0.0,
        op=">",
        window_start=now,
        window_end=now,
        window_s=0.0,
        model_id=model_id,
        message=f"version {published} refused: {why}",
    )


def log(message: str) -> None:
    print(f"harness score: {message}", file=sys.stderr, flush=True)
