"""The harness's root error: one clear line for the user, a non-zero exit, no traceback."""

from __future__ import annotations

from typing import Any


class HarnessError(Exception):
    """A failure the user can act on. The CLI prints `error: <message>` and exits with `exit_code`."""

    exit_code = 1


def first_validation_error(e: Any) -> tuple[str, str, str]:
    """(dotted location, message, "and N more" suffix) of a pydantic ValidationError's first problem; an unknown
    key says "unknown key"."""
    first = e.errors()[0]
    loc = ".".join(str(p) for p in first["loc"]) or "(top level)"
    msg = "unknown key" if first["type"] == "extra_forbidden" else first["msg"]
    more = f" (and {e.error_count() - 1} more problems)" if e.error_count() > 1 else ""
    return loc, msg, more
