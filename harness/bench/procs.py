"""Child processes of a run: scoring loops and model servers, started, watched and stopped cleanly."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from pathlib import Path

import psutil

from harness.bench.errors import RunError

HARNESS = [sys.executable, "-m", "harness.cli"]


def cpu_seconds(pid: int | None) -> float:
    """User + system CPU seconds of a process so far (NaN when it is gone)."""
    try:
        t = psutil.Process(pid).cpu_times()
        return float(t.user + t.system)
    except (psutil.Error, TypeError, ValueError):
        return float("nan")


def process_tree(pids: Iterable[int]) -> list[int]:
    """These processes and all their descendants (gone ones left out)."""
    out: list[int] = []
    for pid in pids:
        try:
            p = psutil.Process(pid)
            out += [pid, *(c.pid for c in p.children(recursive=True))]
        except (psutil.Error, ValueError):
            continue
    return list(dict.fromkeys(out))


def cpu_ns(pids: Iterable[int]) -> int:
    """CPU time in nanoseconds of these processes, every thread of each (/proc/PID/task/TID/schedstat: the
    scheduler's own run time, ns resolution; on a paravirtualised kernel it excludes time stolen by the
    hypervisor and time spent waiting for a core). /proc/PID/stat's utime+stime holds the same time in
    10 ms ticks, too coarse for a one-second window. A thread that exits between two readings takes its time
    with it: the scorers' threads (librdkafka's, the JVM's) live as long as the process."""
    total = 0
    for pid in pids:
        try:
            tids = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for tid in tids:
            try:
                with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                    total += int(f.read().split()[0])
            except (OSError, ValueError, IndexError):
                continue
    return total


def cpu_halves() -> tuple[set[int], set[int]] | None:
    """The CPUs this process may run on, split in two (the first half, the second), or None with fewer than 2."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return None
    k = len(cpus) // 2
    return set(cpus[:k]), set(cpus[k:])


def cpu_affinity(pid: int) -> set[int] | None:
    """The CPUs a process's main thread may run on (None when it is gone)."""
    try:
        return set(os.sched_getaffinity(pid))
    except OSError:
        return None


def pin(pids: Iterable[int], cpus: set[int]) -> int:
    """Let every thread of these processes run only on `cpus` (threads they start later inherit it); returns
    the threads pinned (gone processes and threads are skipped)."""
    n = 0
    for pid in pids:
        try:
            tids = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for tid in tids:
            with contextlib.suppress(OSError, ValueError):
                os.sched_setaffinity(int(tid), cpus)
                n += 1
    return n


def freeze(pids: Iterable[int]) -> list[int]:
    """SIGSTOP each process (a backlog builds while they are stopped); returns those stopped, for `thaw`."""
    stopped = []
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGSTOP)
            stopped.append(pid)
    return stopped


def thaw(pids: Iterable[int]) -> None:
    """SIGCONT each process (always after `freeze`, also when a window fails)."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGCONT)


def peak_rss_mib(pid: int | None) -> float:
    """A process's peak resident set size (VmHWM) in MiB (NaN when it is gone)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return float("nan")


def _die_with_parent() -> None:
    """In the child, before exec: get SIGTERM when the parent dies (Linux), so a run that is killed
    leaves no scoring loop or model server behind."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class Child:
    """A child process whose stdout lines are collected in the background (last 200 kept)."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str] | None = None, cwd: Path | None = None) -> None:
        self.name = name
        self.argv = argv
        e = dict(os.environ)
        e.update(env or {})
        self.proc = subprocess.Popen(
            argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            env=e,
            cwd=cwd,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        self.lines: deque[str] = deque(maxlen=200)
        self._cond = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._cond:
                self.lines.append(line.rstrip("\n"))
                self._cond.notify_all()

    @classmethod
    def serving(
        cls, name: str, argv: list[str], ready_url: str, timeout_s: float, env: dict[str, str] | None = None
    ) -> Child:
        """Start a child that serves HTTP and wait until GET `ready_url` answers 200; one that exits first or does
        not answer within `timeout_s` is stopped and RunError raised (wait_http_ok)."""
        child = cls(name, argv, env=env)
        try:
            wait_http_ok(ready_url, child.alive, timeout_s, name, child.tail)
        except BaseException:
            child.stop()
            raise
        return child

    @property
    def pid(self) -> int:
        return self.proc.pid

    def wait_for_line(self, prefix: str, timeout_s: float) -> str:
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while True:
                for ln in self.lines:
                    if ln.startswith(prefix):
                        return ln
                if self.proc.poll() is not None:
                    raise RunError(f"{self.name} exited (code {self.proc.returncode}): {self.tail()}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise RunError(f"{self.name} did not print {prefix!r} within {timeout_s:.0f} s: {self.tail()}")
                self._cond.wait(min(left, 0.2))

    def tail(self, n: int = 3) -> str:
        lines = [ln for ln in list(self.lines) if ln.strip()]
        return " | ".join(lines[-n:]) or "no output"

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.pid)

    def peak_rss_mib(self) -> float:
        return peak_rss_mib(self.pid)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, timeout_s: float = 20.0) -> int | None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self._reader.join(2)
        return self.proc.returncode


def wait_http_ok(url: str, alive: Callable[[], bool], timeout_s: float, what: str, tail: Callable[[], str]) -> None:
    """Until GET `url` answers 200; RunError when the process behind it exits (`alive()` turns False) or after
    `timeout_s`, with the last lines it printed (`tail()`)."""
    import httpx

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not alive():
            raise RunError(f"{what} exited: {tail()}")
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise RunError(f"{what} did not answer {url} within {timeout_s:.0f} s: {tail()}")
