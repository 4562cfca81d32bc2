"""Errors of `harness build` and `harness import`: one line naming what failed (a format, a row, a file)."""

from __future__ import annotations

from harness.errors import HarnessError


class BuildError(HarnessError):
    """The model could not be trained, exported, or held to the native model."""
