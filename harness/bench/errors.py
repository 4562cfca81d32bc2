"""Errors of benchmark runs: one line a user can act on (a scorer that would not start, a consumer group
that would not settle), raised as HarnessError subclasses so the CLI prints them without a traceback."""

from __future__ import annotations

from harness.errors import HarnessError


class RunError(HarnessError):
    """A suite could not run an adapter: its scorer did not start, its consumer group did not settle."""
