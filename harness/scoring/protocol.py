"""What `harness score` prints on stdout: the contract between a scoring-loop process and whoever started it
(`harness run`, the tests, a supervisor). Logs and errors go to stderr; stdout carries only these lines.

    READY partitions=[0, 1]      the consumer group assigned partitions (printed at every assignment);
                                 from here on, records sent to the input topic are scored
    STATS {"consumed": ..., ...} once, at a clean exit: the loop's counters as one JSON object
                                 (see harness.scoring.loop.LoopStats)

A reader takes the first word: `READY` or `STATS`; anything else on stdout is not part of the contract.
The Kafka Streams app (contestants/kstreams_mojo) prints a bare `READY` line when its stream is RUNNING.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, TextIO

READY = "READY"
STATS = "STATS"


def ready_line(partitions: list[int]) -> str:
    return f"{READY} partitions={sorted(partitions)}"


def stats_line(stats: dict[str, Any]) -> str:
    return f"{STATS} {json.dumps(stats, sort_keys=True)}"


def emit(line: str, out: TextIO | None = None) -> None:
    """Print one protocol line and flush it (the reader waits for it)."""
    import sys

    print(line, file=out or sys.stdout, flush=True)


@dataclass
class Line:
    kind: str  # READY or STATS
    partitions: list[int] | None = None
    stats: dict[str, Any] | None = None


def parse_line(line: str) -> Line | None:
    """A protocol line, or None for any other output."""
    word, _, rest = line.strip().partition(" ")
    if word == READY:
        parts = None
        if rest.startswith("partitions="):
            try:
                parts = [int(p) for p in json.loads(rest[len("partitions=") :])]
            except (ValueError, TypeError):
                parts = None
        return Line(READY, partitions=parts)
    if word == STATS:
        try:
            data = json.loads(rest)
        except ValueError:
            return None
        return Line(STATS, stats=data if isinstance(data, dict) else None)
    return None
