"""`harness run`: the whole suite for a scenario, measured the same way for every deployment strategy.

    broker (embedded unless --bootstrap) -> build (cached) -> warm the broker up
    -> for each adapter (the identity ceiling first), in an AdapterSession:
         topics -> deployment (loop processes, model server, Kafka Streams app) -> in-process micro-benchmark
         -> each load point: open-loop send, measure, verdict -> capacity -> sustainable-throughput search
    -> results/<run-id>/results.json (typed: harness/reporting/results.py), rewritten after each adapter

Each figure is framed by the Kafka-only ceiling (identity adapter) and by the adapter's own in-process
micro-benchmark: the report gives ratios, since absolute times on a shared machine are noisy.
"""

from __future__ import annotations

import gc
import time
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from harness.bench.environment import environment
from harness.bench.scorers import FAMILY
from harness.bench.session import AdapterSession, RunContext
from harness.build.pipeline import build, lib_versions
from harness.errors import HarnessError
from harness.kafka.config import KafkaTarget
from harness.kafka.topics import delete_topics, ensure_topics
from harness.reporting.results import (
    AdapterResult,
    BundleParity,
    LoopConfig,
    Results,
    ScenarioResult,
    Sustainable,
)
from harness.scenario import AdapterSpec, Scenario


def run_adapter(ctx: RunContext, spec: AdapterSpec, index: int, progress: Progress) -> AdapterResult:
    sc = ctx.sc
    with AdapterSession(ctx, spec, index, progress) as s:
        result = AdapterResult(adapter=spec.display, name=spec.name, family=s.family)
        result.inprocess = s.inprocess()
        points = [s.run_point(prof, f"{index}p{i}", "load") for i, prof in enumerate(sc.load)]
        if sc.sustainable.enabled:
            result.capacity = s.capacity(result.inprocess)
            result.sustainable = s.search(points)
        else:
            result.sustainable = Sustainable(limited_by="not searched")
        result.points = points
    ref = result.inprocess.batch_rows_per_s if result.inprocess else None
    best = result.sustainable.rows_per_s
    cap = result.capacity.rows_per_s if result.capacity else None
    result.loop_vs_inprocess_ratio = round(best / ref, 4) if best and ref else None
    result.capacity_vs_inprocess_ratio = round(cap / ref, 4) if cap and ref else None
    return result


def warm_broker(ctx: RunContext, records: int = 30_000) -> float:
    """Push traffic through the broker before anything is measured: a freshly started JVM compiles its hot
    paths and sizes its heap in the first seconds (young-GC pauses of 100-250 ms were seen then)."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

    t = time.perf_counter()
    topic = f"h.{ctx.tag}.warmup"
    ensure_topics(ctx.target, {topic: ctx.sc.loop.partitions})
    prod = Producer(ctx.target.client_config(**{"linger.ms": 2, "acks": "all"}))
    for i in range(records):
        while True:
            try:
                prod.produce(topic, value=ctx.payloads[i % len(ctx.payloads)], key=str(i % 64).encode())
                break
            except BufferError:
                prod.poll(0.01)
    prod.flush(60)
    cons = Consumer(ctx.target.client_config(**{"group.id": f"{topic}.g", "enable.auto.commit": False}))
    cons.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(ctx.sc.loop.partitions)])
    got, deadline = 0, time.monotonic() + 60
    while got < records and time.monotonic() < deadline:
        got += len(cons.consume(5000, timeout=0.5))
    cons.close()
    delete_topics(ctx.target, [topic])
    return time.perf_counter() - t


def select_adapters(sc: Scenario, only: list[str] | None, with_identity: bool) -> list[AdapterSpec]:
    """The scenario's adapters (or those named in `only`), the identity ceiling first."""
    specs = list(sc.adapters)
    if only:
        known = {s.name for s in specs} | {s.display for s in specs} | {"identity"}
        unknown = [a for a in only if a not in known]
        if unknown:
            raise HarnessError(
                f"adapter {unknown[0]!r} is not in scenario {sc.name} (it has: {', '.join(s.display for s in specs)})"
            )
        specs = [s for s in specs if s.name in only or s.display in only]
    if with_identity and not any(s.name == "identity" for s in specs):
        specs.insert(0, AdapterSpec(name="identity"))
    return specs


def scenario_header(ctx: RunContext, bundle_dir: Path) -> ScenarioResult:
    sc, manifest = ctx.sc, ctx.bundle.manifest
    return ScenarioResult(
        name=sc.name,
        description=sc.description,
        model_id=ctx.bundle.model_id,
        bundle=str(bundle_dir),
        trainer=f"{manifest['trainer']['name']}/{manifest['trainer']['algorithm']}",
        slo_p99_ms=sc.slo.p99_ms,
        encoding=sc.encoding,
        loop=LoopConfig.model_validate(sc.loop.model_dump()),
        validity=sc.validity.model_dump(),
        bundle_parity={
            k: BundleParity.model_validate(v["parity"]) for k, v in manifest["formats"].items() if "parity" in v
        },
    )


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed:>7.0f}/{task.total:.0f} events"),
        TextColumn("p99 {task.fields[p99]}"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def run_suite(
    sc: Scenario,
    target: KafkaTarget,
    artifacts: Path,
    results_root: Path,
    only: list[str] | None = None,
    console: Console | None = None,
    with_identity: bool = True,
) -> Path:
    console = console or Console(stderr=True)

    def log(m: str) -> None:
        console.print(m, highlight=False)

    started = _now()
    run_id = time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + f"-{sc.name}"
    run_dir = results_root / run_id
    specs = select_adapters(sc, only, with_identity)
    res = build(sc, artifacts=artifacts, log=log)
    log(f"bundle {res.bundle_dir} ({'cache hit' if res.cache_hit else 'built'} in {res.seconds:.1f} s)")
    ctx = RunContext(sc, target, res.bundle_dir, run_id, log)
    # the measurer runs in this process: keep full garbage collections off the long-lived objects
    # (a full pass over them took ~60 ms; see harness/scoring/service.py)
    gc.collect()
    gc.freeze()
    log(f"warming the broker up: {warm_broker(ctx):.1f} s")
    scenario = scenario_header(ctx, res.bundle_dir)
    results = Results(
        run_id=run_id, started_at=started, environment=environment(target, lib_versions()), scenarios=[scenario]
    )
    with _progress(console) as progress:
        for i, spec in enumerate(specs):
            log(f"[bold]{spec.display}[/]")
            try:
                scenario.adapters.append(run_adapter(ctx, spec, i, progress))
            except HarnessError as e:
                log(f"  {spec.display} failed: {e}")
                scenario.adapters.append(
                    AdapterResult(
                        adapter=spec.display,
                        name=spec.name,
                        family=FAMILY.get(spec.name, "other"),
                        error=str(e),
                        sustainable=Sustainable(limited_by="error"),
                    )
                )
            results.finished_at = _now()
            results.write(run_dir)
    ceiling = scenario.baseline()
    cap = ceiling.sustainable.rows_per_s if ceiling and ceiling.sustainable else None
    if cap:
        for a in scenario.adapters:
            best = a.sustainable.rows_per_s if a.sustainable else None
            a.vs_kafka_ceiling = round(best / cap, 4) if best else None
    results.write(run_dir)
    return run_dir
