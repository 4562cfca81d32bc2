"""Errors of the Kafka plumbing: the cluster does not answer, a topic cannot be created, a consumer group
does not settle, the embedded broker cannot start. One line each, as HarnessError subclasses."""

from __future__ import annotations

from harness.errors import HarnessError


class KafkaSetupError(HarnessError):
    """The cluster, a topic or a consumer group is not as a command needs it."""


class BrokerError(KafkaSetupError):
    """The embedded broker could not be started, found or stopped."""
