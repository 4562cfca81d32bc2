"""The harness's root error: one clear line for the user, a non-zero exit, no traceback."""

from __future__ import annotations


class HarnessError(Exception):
    """A failure the user can act on. The CLI prints `error: <message>` and exits with `exit_code`."""

    exit_code = 1
