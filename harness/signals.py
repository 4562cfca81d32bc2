"""SIGTERM and Ctrl-C for long-running commands, handled one way: call `on_stop` (set a flag, raise)."""

from __future__ import annotations

import signal
from collections.abc import Callable


def on_stop_signals(on_stop: Callable[[], None]) -> None:
    """Call `on_stop` on SIGTERM (a container's stop, a supervisor) and SIGINT (Ctrl-C)."""

    def handler(signum: int, frame: object) -> None:
        on_stop()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
