"""Errors of reading runs: one line naming the file and what is wrong with it."""

from __future__ import annotations

from harness.errors import HarnessError


class ResultsError(HarnessError):
    """results.json is missing, unreadable, or not a schema this harness reads."""

    exit_code = 2
