"""Errors of the model monitor: one line a user can act on (a missing topic, a bad rules file)."""

from __future__ import annotations

from harness.errors import HarnessError


class MonitorError(HarnessError):
    """The monitor cannot start as configured."""
