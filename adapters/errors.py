"""The one root error of the adapters: every user-actionable failure raises a subclass of AdapterError."""

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
    """The engine behind the adapter failed on a valid batch (JVM exception, server error)."""

    status_code = 500
