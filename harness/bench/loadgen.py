"""Open-loop load generator: the send schedule is laid out in advance and sending never waits for results.

Each record carries its intended send time (`t_intended_ns`) and its actual send time (`t_sent_ns`).
When the sender falls behind (the client's queue is full, the process was descheduled), it sends late
rather than skipping, and the lateness is recorded: latency is always measured from the intended time,
so a slow scorer cannot hide behind a slow sender (no coordinated omission; see wrk2, MLPerf LoadGen).
A load point whose sends fall behind by more than a set share is INVALID.

Records are the bundle's held-out rows, replayed as often as needed; record `seq` uses row
`seq % n_rows`, and its id is `wire.record_id(prefix, seq)`.
"""

from __future__ import annotations

import multiprocessing as mp
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from harness.scenario import LoadProfile
from harness.scoring import wire


def schedule_s(p: LoadProfile) -> np.ndarray:
    """Intended send offsets in seconds from the start, sorted, all < duration_s."""
    rng = np.random.default_rng(p.seed)
    d = p.duration_s
    if p.pattern == "constant":
        n = int(p.rate_per_s * d)
        return np.arange(n, dtype=np.float64) / p.rate_per_s
    if p.pattern == "poisson":
        n_guess = int(p.rate_per_s * d * 1.2) + 100
        t = np.cumsum(rng.exponential(1.0 / p.rate_per_s, n_guess))
        while t[-1] < d:
            t = np.concatenate([t, t[-1] + np.cumsum(rng.exponential(1.0 / p.rate_per_s, n_guess))])
        return t[t < d] - t[0] if len(t) else t
    if p.pattern == "steps":
        rates = p.steps or [p.rate_per_s]
        step = d / len(rates)
        parts = [i * step + np.arange(int(r * step)) / r for i, r in enumerate(rates)]
        return np.concatenate(parts)
    # burst: the base rate, plus bursts of burst_rate_per_s for burst_length_s every burst_every_s
    base = np.arange(int(p.rate_per_s * d)) / p.rate_per_s
    burst_rate = p.burst_rate_per_s or p.rate_per_s * 10
    starts = np.arange(p.burst_every_s / 2, d, p.burst_every_s)
    bursts = [s + np.arange(int(burst_rate * p.burst_length_s)) / burst_rate for s in starts]
    allt = np.concatenate([base, *bursts]) if bursts else base
    return np.sort(allt[allt < d])


def offered_rate(p: LoadProfile) -> float:
    return len(schedule_s(p)) / p.duration_s


@dataclass
class GeneratorReport:
    sent: int
    duration_s: float
    achieved_per_s: float
    lag_p50_ms: float
    lag_p99_ms: float
    lag_max_ms: float
    behind_share: float  # share of sends later than max_send_lag_ms
    t0_ns: int
    delivery_errors: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "sent": self.sent,
            "achieved_per_s": round(self.achieved_per_s, 2),
            "send_lag_ms": {"p50": self.lag_p50_ms, "p99": self.lag_p99_ms, "max": self.lag_max_ms},
            "behind_share": self.behind_share,
            "delivery_errors": self.delivery_errors,
        }


def make_producer(conf: dict[str, Any]) -> Any:
    from confluent_kafka import Producer

    from harness.kafka.config import DURABLE_PRODUCER

    return Producer({**conf, **DURABLE_PRODUCER, "linger.ms": 1, "client.id": "loadgen"})


def send(
    conf: dict[str, Any],
    topic: str,
    payloads: list[bytes],
    offsets_s: np.ndarray,
    prefix: str,
    start_at_ns: int,
    max_send_lag_ms: float,
    n_keys: int = 1024,
    producer: Any = None,
    key_is_rid: bool = False,
    extra_headers: tuple[tuple[str, bytes], ...] = (),
) -> GeneratorReport:
    """Send one record per offset at start_at_ns + offset (wall clock), open loop (on `producer`, or a new one).

    Keys cycle over `n_keys` entities unless `key_is_rid` (a peer that takes the key as the request id);
    `extra_headers` go on every record (e.g. the model-name header a peer routes by)."""
    producer = producer or make_producer(conf)
    errors = [0]

    def delivered(err: Any, msg: Any) -> None:
        if err is not None:
            errors[0] += 1

    n_rows = len(payloads)
    intended = start_at_ns + (offsets_s * 1e9).astype(np.int64)
    lags = np.empty(len(intended), dtype=np.int64)
    keys = [str(i).encode() for i in range(n_keys)]
    now = time.time_ns
    for seq in range(len(intended)):
        t_int = int(intended[seq])
        # sleep until the intended time; no busy-waiting: on a 2-core machine a spinning sender steals the
        # CPU the broker and the scorer need. Sleep overshoots by ~0.1 ms, which the lag figures record.
        wait = t_int - now()
        if wait > 50_000:
            time.sleep(wait / 1e9)
        t_sent = now()
        rid = wire.record_id(prefix, seq).encode()
        headers: list[Any] = [
            (wire.H_RID, rid),
            (wire.H_INTENDED, str(t_int).encode()),
            (wire.H_SENT, str(t_sent).encode()),
            *extra_headers,
        ]
        key = rid if key_is_rid else keys[seq % n_keys]
        while True:
            try:
                producer.produce(topic, value=payloads[seq % n_rows], key=key, headers=headers, on_delivery=delivered)
                break
            except BufferError:
                producer.poll(0.01)
        lags[seq] = t_sent - t_int
        if seq % 64 == 0:
            producer.poll(0)
    end = now()
    producer.flush(60)
    n = len(intended)
    lag_ms = lags / 1e6 if n else np.zeros(1)
    dur = max((end - start_at_ns) / 1e9, 1e-9)
    return GeneratorReport(
        sent=n,
        duration_s=dur,
        achieved_per_s=n / dur,
        lag_p50_ms=float(np.percentile(lag_ms, 50)),
        lag_p99_ms=float(np.percentile(lag_ms, 99)),
        lag_max_ms=float(lag_ms.max()),
        behind_share=float((lag_ms > max_send_lag_ms).mean()) if n else 0.0,
        t0_ns=start_at_ns,
        delivery_errors=errors[0],
    )


def _serve(
    conn: Any, conf: dict[str, Any], topic: str, payloads: list[bytes], max_send_lag_ms: float, options: dict[str, Any]
) -> None:
    """The generator process: one producer for its life, one schedule per command, a report per schedule."""
    import gc

    producer = make_producer(conf)
    gc.collect()
    gc.freeze()  # no long collector pauses in the middle of a schedule
    while True:
        try:
            cmd = conn.recv()
        except EOFError:
            return
        if cmd is None:
            return
        offsets, prefix, start_at_ns = cmd
        try:
            rep = send(
                conf, topic, payloads, offsets, prefix, start_at_ns, max_send_lag_ms, producer=producer, **options
            )
            conn.send(("ok", rep))
        except Exception as e:  # reported to the parent, which raises it as one line
            conn.send(("error", f"{type(e).__name__}: {e}"))


class Generator:
    """An open-loop load generator in its own process (spawned: no inherited librdkafka threads, no shared
    GIL), kept for a whole session so that a load point costs no process start and no new connection."""

    def __init__(
        self,
        conf: dict[str, Any],
        topic: str,
        payloads: list[bytes],
        max_send_lag_ms: float,
        key_is_rid: bool = False,
        extra_headers: tuple[tuple[str, bytes], ...] = (),
    ) -> None:
        ctx = mp.get_context("spawn")
        self._conn, child = ctx.Pipe()
        options = {"key_is_rid": key_is_rid, "extra_headers": extra_headers}
        self.proc = ctx.Process(
            target=_serve, args=(child, conf, topic, payloads, max_send_lag_ms, options), daemon=True, name="loadgen"
        )
        self.proc.start()
        child.close()
        self._busy = False

    @property
    def pid(self) -> int | None:
        return self.proc.pid

    def start(self, offsets_s: np.ndarray, prefix: str, start_at_ns: int) -> None:
        """Begin sending one schedule; `result()` waits for its report."""
        if self._busy:
            raise RuntimeError("the load generator is still sending the previous schedule")
        self._conn.send((offsets_s, prefix, start_at_ns))
        self._busy = True

    def sending(self) -> bool:
        return self._busy and not self._conn.poll() and self.proc.is_alive()

    def result(self, timeout_s: float) -> GeneratorReport:
        if not self._conn.poll(timeout_s):
            raise RuntimeError(f"load generator gave no report within {timeout_s:.0f} s")
        kind, value = self._conn.recv()
        self._busy = False
        if kind != "ok":
            raise RuntimeError(f"load generator failed: {value}")
        assert isinstance(value, GeneratorReport)
        return value

    def close(self) -> None:
        if self.proc.is_alive():
            try:
                self._conn.send(None)
                self.proc.join(5)
            except (BrokenPipeError, OSError):
                pass
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join(5)
        self._conn.close()
