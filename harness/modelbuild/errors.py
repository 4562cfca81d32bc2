"""Errors of `harness build` and `harness import`: one line naming what failed (a format, a row, a file)."""

from __future__ import annotations

from harness.errors import HarnessError


class BuildError(HarnessError):
    """The model could not be trained, exported, or held to the native model."""


class ImportInputError(BuildError):
    """Bad input to `harness import`: an artifact that does not parse or cannot be served, a reference table that
    lacks a feature or holds a wrong type, a pickle without --trust-pickle. One `error:` line, exit 2."""

    exit_code = 2
