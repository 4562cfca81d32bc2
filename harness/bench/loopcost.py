"""Where the scoring loop's own time goes, per record: `python -m harness.bench.loopcost [--records N]`.

A backlog of N records (the fraud bundle's rows, JSON, with the load generator's headers) is written to a
fresh topic first; then the loop scores it in this process with the identity adapter (no model) under
cProfile, and the figures printed are the loop's alone: wall and CPU µs per record, records/s, and the
functions that take the time. The broker runs on the same machine (the embedded one unless --bootstrap),
so its share of the CPU is not in these figures but competes for the cores.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import resource
import sys
import time
import uuid

import numpy as np


def _cpu_s() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m harness.bench.loopcost", description=__doc__.split("\n\n")[0])
    ap.add_argument("--records", type=int, default=200_000)
    ap.add_argument("--bundle", default=None, help="a bundle (default: the fraud scenario's, built if needed)")
    ap.add_argument("--batch-max", type=int, default=64)
    ap.add_argument("--encoding", default="json")
    ap.add_argument("--bootstrap", default=None)
    ap.add_argument("--top", type=int, default=25)
    a = ap.parse_args(argv)

    from adapters.bundle import Bundle
    from adapters.identity import IdentityAdapter
    from harness.bench.loadgen import send
    from harness.kafka.config import resolve_kafka
    from harness.kafka.topics import delete_topics, ensure_topics
    from harness.scoring import wire
    from harness.scoring.loop import ScoringLoop
    from harness.scoring.settings import LoopConfig

    bundle_dir = a.bundle or _fraud_bundle()
    b = Bundle.open(bundle_dir)
    X, _, _ = b.reference()
    codec = wire.FeatureCodec.for_bundle(b, a.encoding)
    payloads = [codec.encode(r) for r in X]
    target = resolve_kafka(a.bootstrap)
    topic = f"h.loopcost.{uuid.uuid4().hex[:6]}"
    ensure_topics(target, {topic: 2, f"{topic}.out": 2, f"{topic}.dlq": 2})
    try:
        t = time.perf_counter()
        rep = send(target.client_config(), topic, payloads, np.zeros(a.records), "c", time.time_ns(), 1e9)
        print(f"backlog: {rep.sent:,} records written in {time.perf_counter() - t:.1f} s", file=sys.stderr)
        cfg = LoopConfig(
            input_topic=topic,
            output_topic=f"{topic}.out",
            group=f"{topic}.g",
            encoding=a.encoding,
            batch_max=a.batch_max,
        )
        loop = ScoringLoop(target, IdentityAdapter.load(b), b.feature_names, cfg, log=lambda m: None)
        prof = cProfile.Profile()
        cpu0, t0 = _cpu_s(), time.perf_counter()
        prof.enable()
        stats = loop.run(max_records=a.records)
        prof.disable()
        wall, cpu = time.perf_counter() - t0, _cpu_s() - cpu0
    finally:
        delete_topics(target, [topic, f"{topic}.out", f"{topic}.dlq"])
    n = stats.consumed
    print(
        f"loop: {n:,} records, {n / wall:,.0f} records/s, {wall / n * 1e6:.1f} µs wall and {cpu / n * 1e6:.1f} µs "
        f"CPU per record (identity adapter, batch {a.batch_max}, {a.encoding}; the profiler adds to both)"
    )
    out = io.StringIO()
    pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(a.top)
    print(out.getvalue())


def _fraud_bundle() -> str:
    from harness.modelbuild.pipeline import build
    from harness.scenario import load_scenario

    return str(build(load_scenario("scenarios/fraud.yaml"), log=lambda m: None).bundle_dir)


if __name__ == "__main__":
    main()
