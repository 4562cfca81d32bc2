"""Riding out an engine that is down or hung: the back-off policy (no I/O) and the hung-call watchdog.

backoff = Backoff(initial_s=0.5, max_s=10, limit_s=300)
delay = backoff.next_delay(now)      # 0.5, 1, 2, 4, ... capped at 10 s; None once the outage
                                     # has lasted limit_s: give up (exit non-zero, commit nothing)

watchdog = Watchdog(timeout_s=120)
p = watchdog.call(adapter.predict, X)    # a call that has not returned after timeout_s ends the
                                         # process (a hung engine cannot be interrupted from Python)
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

EXIT_ENGINE = 3  # `harness score` gave up on the engine (down beyond the limit, or hung)


@dataclass
class Backoff:
    """Bounded exponential back-off over one outage; `limit_s` bounds the whole outage."""

    initial_s: float = 0.5
    max_s: float = 10.0
    limit_s: float = 300.0
    started_at: float | None = None
    attempts: int = 0

    def next_delay(self, now: float) -> float | None:
        """How long to wait before the next attempt, or None when the outage has lasted limit_s."""
        if self.started_at is None:
            self.started_at = now
        elapsed = now - self.started_at
        if elapsed >= self.limit_s:
            return None
        delay = min(self.max_s, self.initial_s * 2**self.attempts)
        self.attempts += 1
        return min(delay, self.limit_s - elapsed)

    @property
    def active(self) -> bool:
        return self.started_at is not None

    def elapsed(self, now: float) -> float:
        return 0.0 if self.started_at is None else now - self.started_at

    def reset(self) -> None:
        self.started_at = None
        self.attempts = 0


def exit_hung(message: str) -> None:
    """The default reaction to a hung engine: say so on stderr and end the process at once, committing
    nothing more (the batch in hand and anything unacknowledged is delivered again after a restart)."""
    print(f"error: {message}", file=sys.stderr, flush=True)
    os._exit(EXIT_ENGINE)


class Watchdog:
    """Watches predict calls from a background thread; one that runs past `timeout_s` calls `on_hang`.

    Arming and disarming are two attribute writes (no lock, no thread switch), so the watchdog costs
    nothing measurable per batch; it notices a hang within a second of the timeout."""

    def __init__(self, timeout_s: float, on_hang: Callable[[str], None] = exit_hung) -> None:
        self.timeout_s = timeout_s
        self.on_hang = on_hang
        self._started: float | None = None
        self._rows = 0
        self._thread = threading.Thread(target=self._watch, name="engine-watchdog", daemon=True)
        self._thread.start()

    def call(self, fn: Callable[[Any], Any], X: Any) -> Any:
        self._rows = len(X)
        self._started = time.monotonic()
        try:
            return fn(X)
        finally:
            self._started = None

    def _watch(self) -> None:
        tick = min(1.0, max(0.05, self.timeout_s / 4))
        while True:
            time.sleep(tick)
            started = self._started
            if started is not None and time.monotonic() - started > self.timeout_s:
                self.on_hang(
                    f"the model engine has not returned from predict ({self._rows} rows) for "
                    f"{self.timeout_s:g} s; stopping without committing the batch (it is delivered again)"
                )
                return
