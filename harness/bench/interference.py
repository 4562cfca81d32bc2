"""What else used the machine while a point was measured: broker GC pauses, CPU steal, other processes.

On a shared 2-core machine a latency step can fail for reasons that are not the scorer's: the broker's
JVM paused for a young collection (its GC log says when and how long), the hypervisor stole CPU (steal
time in /proc/stat), or a process outside the run took a core. `InterferenceMonitor.measure()` brackets
a measured window and returns an `Interference` record; a step it marks disturbed that failed is run
again by the search rather than booked as the adapter's failure.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import psutil

from harness.results.base import Interference

# [2026-12-01T10:53:14.303+0000][1.001s] GC(0) Pause Young (Normal) (G1 Evacuation Pause) 51M->7M(1024M) 8.859ms
_PAUSE = re.compile(r"^\[([^\]]+)\]\[[^\]]*\] GC\(\d+\) Pause (?:Young|Full|Remark|Cleanup)\b.* ([\d.]+)ms$")


@dataclass(frozen=True)
class Thresholds:
    gc_pause_ms: float = 25.0  # a broker pause at least this long inside the window disturbs it
    other_cpu_pct: float = 30.0  # processes outside the run used at least this much of one core
    steal_pct: float = 10.0  # the hypervisor took at least this share of the machine's CPU


def gc_pauses(log: Path, start_ns: int, end_ns: int) -> list[float]:
    """Durations (ms) of the GC pauses in `log` that overlap [start_ns, end_ns] (wall clock). The log stamps
    a pause when it ends; it started `duration` earlier. Reads only the log's tail (the last few MiB)."""
    try:
        size = log.stat().st_size
        with open(log, "rb") as f:
            f.seek(max(0, size - 4 * 1024 * 1024))
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return []
    out = []
    for line in text.splitlines():
        m = _PAUSE.match(line)
        if not m:
            continue
        try:
            end = int(datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S.%f%z").timestamp() * 1e9)
        except ValueError:
            continue
        dur_ms = float(m.group(2))
        if end >= start_ns and end - dur_ms * 1e6 <= end_ns:
            out.append(dur_ms)
    return out


def _cpu_of(pids: Iterable[int]) -> float:
    """User + system CPU seconds of these processes and their children's threads (gone ones count 0)."""
    total = 0.0
    for pid in pids:
        try:
            t = psutil.Process(pid).cpu_times()
            total += t.user + t.system
        except (psutil.Error, ValueError):
            pass
    return total


@dataclass
class _Snapshot:
    t: float
    busy_s: float
    steal_s: float
    total_s: float
    ours_s: float


class InterferenceMonitor:
    """Brackets measured windows: `begin()` before, `end(window)` after, with the pids that belong to the run
    (broker, scorers, model server, load generator, this process) given by `pids()` each time."""

    def __init__(self, gc_log: Path | None, pids: Callable[[], list[int]], thresholds: Thresholds | None = None):
        self.gc_log = gc_log
        self.pids = pids
        self.thresholds = thresholds or Thresholds()
        self._start: _Snapshot | None = None

    def _snap(self) -> _Snapshot:
        ct = psutil.cpu_times()
        steal = float(getattr(ct, "steal", 0.0))
        idle = float(ct.idle + getattr(ct, "iowait", 0.0))
        total = float(sum(ct))
        ours = _cpu_of({os.getpid(), *self.pids()})
        return _Snapshot(time.monotonic(), total - idle - steal, steal, total, ours)

    def begin(self) -> None:
        self._start = self._snap()

    def end(self, window_ns: tuple[int, int]) -> Interference:
        """The interference over the time since begin(); GC pauses only inside `window_ns` (wall clock)."""
        a, b = self._start or self._snap(), self._snap()
        th = self.thresholds
        wall = max(b.t - a.t, 1e-6)
        total = max(b.total_s - a.total_s, 1e-6)
        steal_pct = (b.steal_s - a.steal_s) / total * 100.0
        other = max(0.0, (b.busy_s - a.busy_s) - (b.ours_s - a.ours_s))
        other_pct = other / wall * 100.0
        pauses = gc_pauses(self.gc_log, *window_ns) if self.gc_log is not None else []
        reasons = []
        if pauses and max(pauses) >= th.gc_pause_ms:
            reasons.append(f"broker GC pause {max(pauses):.0f} ms")
        others, stolen = other_pct >= th.other_cpu_pct, steal_pct >= th.steal_pct
        if others:
            reasons.append(f"other processes used {other_pct:.0f}% of a core")
        if stolen:
            reasons.append(f"CPU steal {steal_pct:.0f}%")
        return Interference(
            gc_pause_max_ms=round(max(pauses, default=0.0), 1),
            gc_pause_total_ms=round(sum(pauses), 1),
            steal_pct=round(steal_pct, 1),
            other_cpu_pct=round(other_pct, 1),
            load_average=round(os.getloadavg()[0], 2),
            disturbed=bool(reasons),
            busy=others or stolen,
            reasons=reasons,
        )
