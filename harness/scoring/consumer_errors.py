"""What the scoring loop does with an error the consumer hands it instead of a record.

librdkafka reports transient trouble — a broker restarting (_TRANSPORT, _ALL_BROKERS_DOWN), a coordinator
moving (NOT_COORDINATOR, COORDINATOR_NOT_AVAILABLE), a timed-out request — as consumer errors, and then
recovers by itself. Stopping on them turned every broker restart into a dead scorer. Only two kinds stop
the loop: an error librdkafka marks fatal, and one no retry can fix (credentials, authorisation, an invalid
configuration). Everything else is logged — the first of each kind at once, then at most one line per
kind per interval with the count — and ridden out.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Literal

from confluent_kafka import KafkaError

Verdict = Literal["ignore", "transient", "fatal"]

# Errors a retry cannot fix: the user must change credentials, ACLs or configuration.
PERMANENT: frozenset[int] = frozenset(
    {
        KafkaError._AUTHENTICATION,
        KafkaError._SSL,
        KafkaError._INVALID_ARG,
        KafkaError._UNSUPPORTED_FEATURE,
        KafkaError._FENCED,
        KafkaError._FATAL,
        KafkaError.SASL_AUTHENTICATION_FAILED,
        KafkaError.UNSUPPORTED_SASL_MECHANISM,
        KafkaError.ILLEGAL_SASL_STATE,
        KafkaError.TOPIC_AUTHORIZATION_FAILED,
        KafkaError.GROUP_AUTHORIZATION_FAILED,
        KafkaError.CLUSTER_AUTHORIZATION_FAILED,
        KafkaError.INVALID_GROUP_ID,
        KafkaError.INCONSISTENT_GROUP_PROTOCOL,
        KafkaError.FENCED_INSTANCE_ID,
        KafkaError.UNSUPPORTED_VERSION,
    }
)


def classify(err: KafkaError) -> Verdict:
    """ "ignore" (end of partition), "fatal" (stop the loop) or "transient" (log and carry on)."""
    if err.code() == KafkaError._PARTITION_EOF:
        return "ignore"
    if err.fatal() or err.code() in PERMANENT:
        return "fatal"
    return "transient"


class TransientLog:
    """Logs transient errors without flooding: each kind (error code) at its first occurrence, then at most
    once per `interval_s`, with how many of that kind came since the last line."""

    def __init__(
        self, log: Callable[[str], None], interval_s: float = 30.0, clock: Callable[[], float] = time.monotonic
    ):
        self.log = log
        self.interval_s = interval_s
        self.clock = clock
        self._last: dict[int, float] = {}
        self._suppressed: dict[int, int] = {}

    def report(self, err: KafkaError) -> None:
        code, now = err.code(), self.clock()
        last = self._last.get(code)
        if last is not None and now - last < self.interval_s:
            self._suppressed[code] = self._suppressed.get(code, 0) + 1
            return
        more = self._suppressed.pop(code, 0)
        since = f" ({more} more since the last report)" if more else ""
        self._last[code] = now
        self.log(f"Kafka reports {err.name()}: {err.str()}{since}; carrying on (librdkafka retries by itself)")
