"""`harness run`: the whole suite for a scenario, measured the same way for every deployment strategy.

    broker (embedded unless --bootstrap) -> build (cached) -> warm the broker up
    -> k rounds; each round runs one trial of every contestant, in a rotated (or shuffled) order, so that
       machine drift falls on all of them alike. A trial is an AdapterSession: fresh topics and deployment
       (loop processes, model server, Kafka Streams app) -> load points -> capacity -> sustainable search.
       The identity scorer runs twice (an A/A pair): its difference is this run's noise floor.
    -> an adapter whose figures are inconsistent (sustainable above its own capacity, or above the Kafka-only
       ceiling beyond the noise floor) gets one more trial, and keeps the flag if it stays inconsistent
    -> results/<run-id>/results.json (typed: harness/results/schema.py), rewritten after every trial

Each figure is a median over the trials with an interval, framed by the Kafka-only ceiling (identity) and
the adapter's own in-process micro-benchmark: the report gives ratios, since absolute times on a shared
machine are noisy.
"""

from __future__ import annotations

import gc
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from harness.bench.environment import environment
from harness.bench.experiments import RebalancePlan, ScaleOutPlan
from harness.bench.lifecycle import LifecyclePlan, lifecycle
from harness.bench.online import OnlinePlan, online
from harness.bench.session import AdapterSession, RunContext
from harness.errors import HarnessError
from harness.kafka.config import KafkaTarget
from harness.kafka.topics import delete_topics, ensure_topics
from harness.modelbuild.pipeline import build, lib_versions
from harness.results.schema import (
    AdapterResult,
    BundleParity,
    Ceilings,
    LoopConfig,
    Results,
    ScenarioResult,
    Trial,
)
from harness.scenario import AdapterSpec, Scenario

if TYPE_CHECKING:
    from harness.kafka.broker import Broker, BrokerState

AA_LABEL = "identity (A/A)"


@dataclass
class Contestant:
    index: int
    spec: AdapterSpec
    result: AdapterResult


def round_orders(n: int, rounds: int, order: str = "rotate", seed: int = 5) -> list[list[int]]:
    """The order of the n contestants in each round: rotated by one each round (every contestant is first
    once in n rounds), or shuffled with a seed."""
    if order == "shuffle":
        rng = random.Random(seed)
        return [rng.sample(range(n), n) for _ in range(rounds)]
    return [[(r + i) % n for i in range(n)] for r in range(rounds)]


def run_trial(ctx: RunContext, c: Contestant, round_: int, position: int, progress: Progress) -> None:
    """One trial of one contestant, appended to its result (an error is a trial too: it is reported)."""
    a = c.result
    index = len(a.trials)
    ctx.log(f"[bold]{c.spec.display}[/] · trial {index + 1} of {ctx.sc.trials.count} (round {round_ + 1})")
    try:
        with AdapterSession(ctx, c.spec, c.index, progress) as s:
            a.family = s.family
            a.client = s.deployment.client
            if a.inprocess is None and c.spec.display != AA_LABEL:
                a.inprocess = s.inprocess()
            # the A/A identity has no micro-benchmark of its own: size its backlog like the identity's (the
            # largest), not like an unknown adapter's, or its first capacity is a start-up figure
            unknown = float("inf") if c.spec.display == AA_LABEL else 2000.0
            expected = (a.capacity_stat.median if a.capacity_stat else None) or (
                a.inprocess.batch_rows_per_s if a.inprocess and a.inprocess.batch_rows_per_s else unknown
            )
            trial = s.trial(index, round_, position, expected)
    except HarnessError as e:
        ctx.log(f"  {c.spec.display} failed: {e}")
        trial = Trial(index=index, round=round_, position=position, error=str(e))
    a.trials.append(trial)
    a.error = trial.error if all(t.error for t in a.trials) else None
    a.stats = a.compute_stats(ctx.sc.trials.confidence)


def _finish_adapter(a: AdapterResult, ceiling: float | None) -> None:
    ref = a.inprocess.batch_rows_per_s if a.inprocess else None
    best = a.sustainable_rate
    cap = a.capacity_stat.median if a.capacity_stat else None
    a.loop_vs_inprocess_ratio = round(best / ref, 4) if best and ref else None
    a.capacity_vs_inprocess_ratio = round(cap / ref, 4) if cap and ref else None
    a.vs_kafka_ceiling = round(best / ceiling, 4) if best and ceiling else None


FRESH_BROKER_S = 600.0  # a broker started less than this long ago still runs partly interpreted code
WARM_FRESH_S = 30.0  # ... so it is given this much traffic before anything is measured


def warm_seconds(target: KafkaTarget) -> float:
    """How long to push traffic through the broker before measuring: `WARM_FRESH_S` for an embedded broker
    started less than `FRESH_BROKER_S` ago that no run has warmed yet (`mark_warmed`), else 0 (one pass of
    records only). In three runs that began on a just-started broker, the first round's trials ran at
    0.47-0.6 of the later rounds' rates (its JVM was still compiling its hot paths); runs on a broker that
    had served a run before did not."""
    b, st = _embedded_broker(target)
    if b is None or st is None or time.time() - st.started_at >= FRESH_BROKER_S:
        return 0.0
    marker = b.root / "warmed"
    return 0.0 if marker.exists() and marker.read_text().strip() == str(st.pid) else WARM_FRESH_S


def mark_warmed(target: KafkaTarget) -> None:
    """Remember that the running embedded broker has had its warm-up (once per broker process)."""
    b, st = _embedded_broker(target)
    if b is not None and st is not None:
        (b.root / "warmed").write_text(str(st.pid))


def warm_broker(ctx: RunContext, seconds: float = 0.0, records: int = 30_000) -> float:
    """Push traffic through the broker before anything is measured: `records` at least, and for `seconds`
    (`warm_seconds`). A freshly started JVM compiles its hot paths and sizes its heap in its first minutes
    (young-GC pauses of 100-250 ms were seen then)."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

    t = time.perf_counter()
    topic = f"h.{ctx.tag}.warmup"
    ensure_topics(ctx.target, {topic: ctx.sc.loop.partitions})
    prod = Producer(ctx.target.client_config(**{"linger.ms": 2, "acks": "all"}))
    cons = Consumer(ctx.target.client_config(**{"group.id": f"{topic}.g", "enable.auto.commit": False}))
    cons.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(ctx.sc.loop.partitions)])
    sent = got = 0
    while sent < records or time.perf_counter() - t < seconds:
        for _ in range(records if sent == 0 else 5_000):
            while True:
                try:
                    prod.produce(topic, value=ctx.payloads[sent % len(ctx.payloads)], key=str(sent % 64).encode())
                    break
                except BufferError:
                    prod.poll(0.01)
            sent += 1
        prod.flush(60)
        deadline = time.monotonic() + 60
        while got < sent and time.monotonic() < deadline:
            got += len(cons.consume(5000, timeout=0.5))
    cons.close()
    delete_topics(ctx.target, [topic])
    return time.perf_counter() - t


def with_overrides(sc: Scenario, trials: int | None = None, quick: bool = False) -> Scenario:
    """The scenario with `--trials N` and `--quick` applied. Quick is a smoke run: one trial, no A/A pair,
    a coarse search (25%) on short steps. Its figures are not for ranking."""
    t = sc.trials.model_copy(update={"count": trials} if trials else {})
    ss = sc.sustainable
    if quick:
        t = t.model_copy(update={"count": trials or 1, "aa_identity": False})
        ss = ss.model_copy(
            update={"precision": 0.25, "min_step_samples": 500, "step_duration_s": min(ss.step_duration_s, 2.0)}
        )
    return sc.model_copy(update={"trials": t, "sustainable": ss})


def select_adapters(sc: Scenario, only: list[str] | None, with_identity: bool) -> list[AdapterSpec]:
    """The scenario's adapters (or those named in `only`), the identity ceiling first, and its A/A twin last
    when the scenario measures a noise floor."""
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
    if with_identity and sc.trials.aa_identity:
        specs.append(AdapterSpec(name="identity", label=AA_LABEL))
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
    t0 = time.monotonic()
    run_id = time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + f"-{sc.name}"
    run_dir = results_root / run_id
    specs = select_adapters(sc, only, with_identity)
    res = build(sc, artifacts=artifacts, log=log)
    log(f"bundle {res.bundle_dir} ({'cache hit' if res.cache_hit else 'built'} in {res.seconds:.1f} s)")
    gc_log, broker_pid = _broker_facts(target)
    ctx = RunContext(sc, target, res.bundle_dir, run_id, log, gc_log, broker_pid)
    # the measurer runs in this process: keep full garbage collections off the long-lived objects
    # (a full pass over them took ~60 ms; see harness/scoring/service.py)
    gc.collect()
    gc.freeze()
    log(f"warming the broker up: {warm_broker(ctx, warm_seconds(target)):.1f} s")
    mark_warmed(target)
    scenario = scenario_header(ctx, res.bundle_dir)
    scenario.trials, scenario.confidence = sc.trials.count, sc.trials.confidence
    scenario.ceilings = _ceilings(ctx)
    results = Results(
        run_id=run_id, started_at=started, environment=environment(target, lib_versions()), scenarios=[scenario]
    )
    contestants = [
        Contestant(i, spec, AdapterResult(adapter=spec.display, name=spec.name)) for i, spec in enumerate(specs)
    ]
    scenario.adapters = [c.result for c in contestants]

    def save() -> None:
        scenario.noise = scenario.noise_floor()
        results.finished_at = _now()
        results.write(run_dir)

    with _progress(console) as progress:
        for r, order in enumerate(round_orders(len(contestants), sc.trials.count, sc.trials.order, sc.trials.seed)):
            scenario.rounds.append([contestants[i].spec.display for i in order])
            for pos, i in enumerate(order):
                run_trial(ctx, contestants[i], r, pos, progress)
                save()
        _remeasure_inconsistent(ctx, scenario, contestants, progress, save)
    ceiling = scenario.baseline()
    for a in scenario.adapters:
        _finish_adapter(a, ceiling.sustainable_rate if ceiling else None)
    if ceiling is not None and scenario.ceilings is not None:
        scenario.ceilings.loop_capacity_per_s = ceiling.capacity_stat.median if ceiling.capacity_stat else None
        costs = [t.capacity.cpu_us_per_record for b in scenario.baselines() for t in b.trials if t.capacity]
        known = sorted(c for c in costs if c)
        scenario.ceilings.loop_cpu_us_per_record = known[len(known) // 2] if known else None
    save()
    log(f"{len(contestants)} contestants × {sc.trials.count} trials in {(time.monotonic() - t0) / 60:.1f} min")
    return run_dir


def _remeasure_inconsistent(
    ctx: RunContext, scenario: ScenarioResult, field: list[Contestant], progress: Progress, save: Callable[[], None]
) -> None:
    """One more trial for each adapter whose figures are inconsistent; the flag stays if they still are."""
    from harness.results.consistency import consistency_problems

    flagged = [c for c in field if not c.result.error and consistency_problems(scenario, c.result)]
    for c in flagged:
        why = "; ".join(consistency_problems(scenario, c.result))
        ctx.log(f"{c.spec.display}: inconsistent figures ({why}); one more trial")
        run_trial(ctx, c, len(scenario.rounds), 0, progress)
        save()
    for c in field:
        c.result.problems = consistency_problems(scenario, c.result) if not c.result.error else []


def _ceilings(ctx: RunContext) -> Ceilings:
    """The load generator's and the measurer's own flat-out rates on this machine and broker."""
    from harness.bench.ceilings import generator_ceiling, measurer_ceiling
    from harness.bench.relay import relay_ceiling

    c = Ceilings(generator_per_s=round(generator_ceiling(ctx), 1), measurer_per_s=round(measurer_ceiling(ctx), 1))
    ctx.log(f"harness ceilings: load generator {c.generator_per_s:,.0f}/s, measurer {c.measurer_per_s:,.0f}/s")
    relay = relay_ceiling(ctx.target, ctx.payloads, ctx.tag)
    if relay.error:
        ctx.log(f"native relay: no figure ({relay.error})")
    else:
        c.relay_per_s = round(relay.rate_per_s, 1)
        c.relay_cpu_us_per_record = round(relay.cpu_us_per_record, 3)
        ctx.log(f"native relay: {c.relay_per_s:,.0f}/s, {c.relay_cpu_us_per_record:.2f} µs CPU per record")
    return c


def _broker_facts(target: KafkaTarget) -> tuple[Path | None, int | None]:
    """The embedded broker's GC log and pid (for the interference monitor); nothing for an external cluster."""
    b, st = _embedded_broker(target)
    if b is None:
        return None, None
    return b.gc_log, (st.pid if st else None)


def _embedded_broker(target: KafkaTarget) -> tuple[Broker | None, BrokerState | None]:
    """The embedded broker and its state when it runs; (None, None) for an external cluster."""
    if not target.embedded:
        return None, None
    from harness.kafka.broker import Broker

    b = Broker()
    return b, b.running()


def run_experiment(
    sc: Scenario,
    target: KafkaTarget,
    artifacts: Path,
    results_root: Path,
    plan: ScaleOutPlan | RebalancePlan | LifecyclePlan | OnlinePlan,
    adapter: str,
    console: Console | None = None,
) -> Path:
    """`harness experiment`: scale-out (capacity over partitions × processes) or rebalance (a scorer joins
    and leaves under load), written as results.json with the scenario header and `experiments`."""
    from harness.bench.experiments import rebalance, scale_out
    from harness.results.schema import Experiments

    console = console or Console(stderr=True)

    def log(m: str) -> None:
        console.print(m, highlight=False)

    kinds = {ScaleOutPlan: "scale-out", RebalancePlan: "rebalance", LifecyclePlan: "lifecycle", OnlinePlan: "online"}
    kind = kinds[type(plan)]
    started = _now()
    run_id = time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + f"-{sc.name}-{kind}"
    res = build(sc, artifacts=artifacts, log=log)
    gc_log, broker_pid = _broker_facts(target)
    ctx = RunContext(sc, target, res.bundle_dir, run_id, log, gc_log, broker_pid)
    log(f"warming the broker up: {warm_broker(ctx):.1f} s")
    scenario = scenario_header(ctx, res.bundle_dir)
    spec = next((s for s in sc.adapters if adapter in (s.name, s.display)), AdapterSpec(name=adapter))
    exp = scenario.experiments = Experiments()
    with _progress(console) as progress:
        if isinstance(plan, ScaleOutPlan):
            exp.scale_out_adapter = spec.display
            exp.scale_out = scale_out(ctx, spec, plan, progress)
        elif isinstance(plan, RebalancePlan):
            exp.rebalance = rebalance(ctx, spec, plan, progress)
        elif isinstance(plan, OnlinePlan):
            exp.online = online(ctx, plan, progress)
        else:
            exp.lifecycle = lifecycle(ctx, spec, plan, progress)
    results = Results(
        run_id=run_id,
        started_at=started,
        finished_at=_now(),
        environment=environment(target, lib_versions()),
        scenarios=[scenario],
    )
    run_dir = results_root / run_id
    results.write(run_dir)
    return run_dir
