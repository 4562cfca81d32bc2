"""Errors of the production path: the scorer cannot start (no input topic, a bad encoding) or the loop
must stop (the broker refused a result, the engine stayed down). One line each, as HarnessError subclasses."""

from __future__ import annotations

from harness.errors import HarnessError


class ScoringSetupError(HarnessError):
    """`harness score` or `harness serve` cannot start as configured."""


class LoopError(HarnessError):
    """The scoring loop must stop; nothing past the last acknowledged result was committed."""


class EngineOutage(LoopError):
    """The model engine stayed unavailable past the outage limit; the batch in hand was not committed."""

    exit_code = 3
