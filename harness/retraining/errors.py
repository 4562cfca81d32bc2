"""Errors of the retrain service: one line a user can act on (a missing topic, a bundle without a recipe)."""

from __future__ import annotations

from harness.errors import HarnessError


class RetrainError(HarnessError):
    """`harness retrain` cannot start or train as configured."""
