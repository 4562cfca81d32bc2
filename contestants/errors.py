"""A contestant that could not be built, started or run: one line a user can act on."""

from __future__ import annotations

from harness.errors import HarnessError


class ContestantError(HarnessError):
    """A contestant application could not be built, started or run."""


class KStreamsError(ContestantError):
    """The Kafka Streams app could not be built, started or run."""
