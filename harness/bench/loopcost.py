"""The scoring loop's own cost per record, beside the native relay's, and where the loop's time goes per
micro-batch: `python -m harness.bench.loopcost [--records N] [--trials K] [--encoding json|f64le]`.

A backlog of N records (the fraud bundle's rows with the load generator's headers) is written once to a
fresh topic. Then K rounds, each draining the whole backlog once with the native relay (harness_native.relay:
consume, produce the same bytes and headers, commit; the Kafka client's own limit) and once with the scoring
loop and the identity adapter (no model), in a random order per round, each on a fresh consumer group and
output topic, in this process. Per drain: records/s from the output records' timestamps, and CPU µs per
record from the process's own accounting (every thread; it excludes steal) from the first partition
assignment to the end. Printed: each drain, the medians, and the loop/relay ratios.

Then one more loop drain with a timer on each phase of the loop (not in the medians: the timers cost a
little): CPU µs per micro-batch and per record in each phase of the loop's thread (native poll, decode,
the adapter, the native produce, the Python bookkeeping), and in librdkafka's own threads.

The broker runs on the same machine (the embedded one unless --bootstrap): its CPU is not in these figures
but competes for the cores; say what else was running when you quote them.
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import statistics
import sys
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.bench.relay import Drain, output_rate, relay_drain, write_backlog
from harness.kafka.config import KafkaTarget


@dataclass
class Breakdown:
    """Thread-CPU ns per phase of the loop's thread, and per librdkafka thread group, over one drain."""

    records: int = 0
    batches: int = 0
    phases: dict[str, int] = field(default_factory=dict)
    main_ns: int = 0
    threads: dict[str, int] = field(default_factory=dict)
    process_ns: int = 0


def loop_drain(
    target: KafkaTarget,
    bundle_dir: Path,
    topic: str,
    records: int,
    batch_max: int = 64,
    encoding: str = "json",
    profile: bool = False,
) -> tuple[Drain, Breakdown | None]:
    """Drain `records` of `topic` with the scoring loop and the identity adapter in this process."""
    from adapters.bundle import Bundle
    from adapters.identity import IdentityAdapter
    from harness.kafka.topics import delete_topics, ensure_topics
    from harness.scoring import wire
    from harness.scoring.loop import ScoringLoop
    from harness.scoring.settings import LoopConfig

    out = f"{topic}.loop-{uuid.uuid4().hex[:6]}"
    ensure_topics(target, {out: 2, f"{out}.dlq": 2})
    b = Bundle.open(bundle_dir)
    cfg = LoopConfig(
        input_topic=topic, output_topic=out, group=f"loop-{uuid.uuid4().hex[:8]}", dlq_topic=f"{out}.dlq",
        encoding=wire.check_encoding(encoding), batch_max=batch_max, scorer_name="identity",
    )  # fmt: skip
    loop = ScoringLoop(target, IdentityAdapter.load(b), b.feature_names, cfg, log=lambda m: None)
    prof = _instrument(loop) if profile else None
    tasks0 = _task_ns() if profile else {}
    main0 = time.thread_time_ns()
    try:
        stats = loop.run(max_records=records, idle_exit_s=10)
        cpu_end = _process_cpu_s()
        main_ns = time.thread_time_ns() - main0
        tasks1 = _task_ns() if profile else {}
        first = loop.consumer.first_assignment()
        n, rate = output_rate(target, out)
    finally:
        loop.adapter.close()
        del loop
        gc.collect()
        delete_topics(target, [out, f"{out}.dlq"])
    cpu = cpu_end - first[0] if first else float("nan")
    error = None if n >= records and stats.consumed >= records else f"{n} of {records} records reached the output"
    drain = Drain("loop", stats.consumed, rate, cpu, error)
    if prof is None:
        return drain, None
    prof.records, prof.batches, prof.main_ns = stats.consumed, stats.batches, main_ns
    prof.process_ns = int(cpu * 1e9)
    pid = os.getpid()
    for tid, (name, ns) in tasks1.items():
        if tid == pid:
            continue
        grown = ns - tasks0.get(tid, (name, 0))[1]
        if grown > 0:
            group = "rdk:broker*" if name.startswith("rdk:broker") else name
            prof.threads[group] = prof.threads.get(group, 0) + grown
    return drain, prof


def _instrument(loop: Any) -> Breakdown:
    """Thread-CPU timers on the loop's phases (instance attributes: the class is untouched)."""
    prof = Breakdown()
    acc: dict[str, int] = defaultdict(int)
    prof.phases = acc

    def timed(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        clock = time.thread_time_ns

        def wrapper(*args: Any, **kw: Any) -> Any:
            t0 = clock()
            try:
                return fn(*args, **kw)
            finally:
                acc[name] += clock() - t0

        return wrapper

    out = loop.output
    out.emit = timed("produce: results and dead letters (native)", out.emit)
    out.service = timed("delivery reports, offsets stored (native + Python)", out.service)
    loop._next_batch = timed("poll a micro-batch (native)", loop._next_batch)
    loop._decode = timed("decode into the float64 matrix (native)", loop._decode)
    loop._score = timed("score: the adapter, isolation, canary (Python)", loop._score)
    return prof


def _task_ns() -> dict[int, tuple[str, int]]:
    """This process's threads: tid -> (name, CPU ns so far) from /proc (schedstat: ns on the CPU)."""
    out = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            name = Path(f"/proc/self/task/{tid}/comm").read_text().strip()
            ns = int(Path(f"/proc/self/task/{tid}/schedstat").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            continue
        out[int(tid)] = (name, ns)
    return out


def _process_cpu_s() -> float:
    import resource

    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def print_breakdown(p: Breakdown, write: Callable[[str], None] = print) -> None:
    per_batch = p.records / p.batches if p.batches else 0.0
    write(
        f"\nwhere the loop's time goes (one instrumented drain: {p.records:,} records in {p.batches:,} micro-batches, "
        f"{per_batch:.1f} records each; CPU of each thread, steal excluded)"
    )
    write(f"  {'':<58} {'µs/batch':>9} {'µs/record':>10} {'share':>6}")
    total = max(p.process_ns, 1)

    def row(name: str, ns: float) -> None:
        per_batch, per_record = ns / max(p.batches, 1) / 1e3, ns / max(p.records, 1) / 1e3
        write(f"  {name:<58} {per_batch:>9.1f} {per_record:>10.3f} {ns / total:>6.0%}")

    write("  the loop's thread:")
    timed = sum(p.phases.values())
    for name, ns in sorted(p.phases.items(), key=lambda kv: -kv[1]):
        row("    " + name, ns)
    row("    the rest of the loop: bookkeeping, hooks (Python)", p.main_ns - timed)
    row("    the loop's thread in all", p.main_ns)
    write("  librdkafka's threads (fetch, produce, acks; consumer and producer):")
    for name, ns in sorted(p.threads.items(), key=lambda kv: -kv[1]):
        row("    " + name, ns)
    row("the process (from the first assignment)", p.process_ns)


def fraud_bundle() -> str:
    """The fraud scenario's bundle (built into artifacts/, or reused from there)."""
    from harness.modelbuild.pipeline import build
    from harness.scenario import load_scenario

    return str(build(load_scenario("scenarios/fraud.yaml"), log=lambda m: None).bundle_dir)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m harness.bench.loopcost", description=__doc__.split("\n\n")[0])
    ap.add_argument("--records", type=int, default=300_000)
    ap.add_argument("--trials", type=int, default=5, help="rounds of (relay, loop) in a random order")
    ap.add_argument("--bundle", default=None, help="a bundle (default: the fraud scenario's, built if needed)")
    ap.add_argument("--batch-max", type=int, default=64)
    ap.add_argument("--encoding", default="json", choices=["json", "f64le"])
    ap.add_argument("--bootstrap", default=None)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--no-breakdown", action="store_true", help="skip the instrumented drain")
    a = ap.parse_args(argv)

    from adapters.bundle import Bundle
    from harness.kafka.config import resolve_kafka
    from harness.kafka.topics import delete_topics
    from harness.scoring import wire

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    bundle_dir = a.bundle or fraud_bundle()
    b = Bundle.open(bundle_dir)
    X, _, _ = b.reference()
    codec = wire.FeatureCodec.for_bundle(b, a.encoding)
    target = resolve_kafka(a.bootstrap)
    topic = f"h.loopcost.{uuid.uuid4().hex[:6]}"
    t = time.perf_counter()
    write_backlog(target, topic, [codec.encode(r) for r in X], a.records)
    log(f"backlog: {a.records:,} records ({a.encoding}) written in {time.perf_counter() - t:.1f} s")
    gc.collect()
    gc.freeze()  # as `harness score` does
    rng = random.Random(a.seed)
    drains: dict[str, list[Drain]] = {"relay": [], "loop": []}
    try:
        for r in range(a.trials):
            order = ["relay", "loop"]
            rng.shuffle(order)
            for who in order:
                if who == "relay":
                    d = relay_drain(target, topic, a.records, a.batch_max)
                else:
                    d, _ = loop_drain(target, Path(bundle_dir), topic, a.records, a.batch_max, a.encoding)
                drains[who].append(d)
                print(
                    f"round {r + 1} {who:<5} {d.records:>9,} records  {d.rate_per_s:>10,.0f} records/s  "
                    f"{d.cpu_us_per_record:>6.2f} µs CPU/record" + (f"  error: {d.error}" if d.error else ""),
                    flush=True,
                )
        prof = None
        if not a.no_breakdown:
            _, prof = loop_drain(target, Path(bundle_dir), topic, a.records, a.batch_max, a.encoding, profile=True)
    finally:
        delete_topics(target, [topic])
    med = {w: (statistics.median(d.rate_per_s for d in ds), statistics.median(d.cpu_us_per_record for d in ds))
           for w, ds in drains.items() if ds}  # fmt: skip
    print(f"\nmedians of {a.trials} interleaved trials (batch {a.batch_max}, {a.encoding}, identity adapter):")
    for who, (rate, cpu) in med.items():
        print(f"  {who:<5} {rate:>10,.0f} records/s  {cpu:>6.2f} µs CPU per record")
    if len(med) == 2:
        (rr, rc), (lr, lc) = med["relay"], med["loop"]
        print(f"  loop/relay: CPU per record {lc / rc:.2f}x, rate {lr / rr:.2f}x (ratio of the medians)")
        pairs = list(zip(drains["relay"], drains["loop"], strict=False))
        cpu_ratios = [lp.cpu_us_per_record / rp.cpu_us_per_record for rp, lp in pairs]
        rate_ratios = [lp.rate_per_s / rp.rate_per_s for rp, lp in pairs]
        print(
            f"  loop/relay within each round: CPU per record {', '.join(f'{x:.2f}' for x in cpu_ratios)} (median "
            f"{statistics.median(cpu_ratios):.2f}x); rate {', '.join(f'{x:.2f}' for x in rate_ratios)} (median "
            f"{statistics.median(rate_ratios):.2f}x)"
        )
    if prof is not None:
        print_breakdown(prof)
    return 1 if any(d.error for ds in drains.values() for d in ds) else 0


if __name__ == "__main__":
    raise SystemExit(main())
