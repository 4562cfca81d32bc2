"""The one root error of the adapters: every user-actionable failure raises a subclass of AdapterError.

Two kinds of scoring failure are kept apart, because a production scorer must treat them differently:
- the record's fault (`BadInput`, `ScoringFailed`, or any other exception from a model library): the
  scoring loop isolates the rows that fail and dead-letters them;
- the engine's fault (`EngineUnavailable`: a model server that does not answer, times out or answers
  5xx, a JVM that is gone): no record is to blame, so the loop pauses, backs off and tries again, and
  dead-letters nothing.
"""

from __future__ import annotations


class AdapterError(Exception):
    """A failure the caller can act on: bad input, a missing format, a closed adapter."""

    status_code = 400


class BadInput(AdapterError):
    """The batch does not match the model: wrong shape, non-numeric values, empty."""


class AdapterClosed(AdapterError):
    """predict() after close()."""


class FormatMissing(AdapterError):
    """The bundle has no file for this adapter's format."""

    status_code = 404


class BundleError(AdapterError):
    """The bundle is missing, unreadable, or a file fails its sha256 check."""

    status_code = 500


class ScoringFailed(AdapterError):
    """The engine behind the adapter failed on a valid batch (JVM exception, a malformed server answer)."""

    status_code = 500


class EngineUnavailable(AdapterError):
    """The engine cannot score anything right now (server down, timeout, 5xx after retries, JVM gone).

    Not the batch's fault: the same batch is expected to score once the engine is back."""

    status_code = 503
