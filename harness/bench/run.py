"""`harness run`: the whole suite for a scenario, measured the same way for every deployment strategy.

    broker (embedded unless --bootstrap) -> build (cached) -> warm the broker up -> the harness's own ceilings
    -> every contestant started once and kept warm (the identity scorer, the control, first; its A/A twin)
    -> each strategy's in-process micro-benchmark
    -> randomized rounds (harness/bench/rounds.py): per round, in a fresh random order, a backlog window per
       contestant (CPU per record) and load windows at fractions of its flat-out rate (latency)
    -> `--thorough`: this machine's saturation point per contestant (the bisecting search)
    -> results/<run-id>/results.json (typed: harness/results/), rewritten after every round

The verdict (harness/reporting/) ranks on cost ratios to the control in the same round, in tiers.
"""

from __future__ import annotations

import contextlib
import gc
import time
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from harness.bench.environment import environment
from harness.bench.errors import RunError
from harness.bench.experiments import RebalancePlan, ScaleOutPlan
from harness.bench.lifecycle import LifecyclePlan, lifecycle
from harness.bench.online import OnlinePlan, online
from harness.bench.rounds import AA_TWIN, CONTROL, Entrant, RoundRunner
from harness.bench.session import RunContext
from harness.errors import HarnessError
from harness.kafka.config import KafkaTarget
from harness.kafka.embedded import embedded
from harness.kafka.topics import delete_topics, ensure_topics
from harness.modelbuild.pipeline import build, lib_versions
from harness.results.schema import (
    AdapterResult,
    BundleParity,
    Ceilings,
    LoopConfig,
    Results,
    ScenarioResult,
)
from harness.scenario import AdapterSpec, Scenario

LOAD_CEILING_SHARE = 0.8  # load windows stay under this share of the generator's and the measurer's ceilings


FRESH_BROKER_S = 600.0  # a broker started less than this long ago still runs partly interpreted code
WARM_FRESH_S = 30.0  # ... so it is given this much traffic before anything is measured


def warm_seconds(target: KafkaTarget) -> float:
    """How long to push traffic through the broker before measuring: `WARM_FRESH_S` for an embedded broker
    started less than `FRESH_BROKER_S` ago that no run has warmed yet (`mark_warmed`), else 0 (one pass of
    records only). In three runs that began on a just-started broker, the first round's trials ran at
    0.47-0.6 of the later rounds' rates (its JVM was still compiling its hot paths); runs on a broker that
    had served a run before did not."""
    e = embedded(target)
    if e is None or time.time() - e.started_at >= FRESH_BROKER_S:
        return 0.0
    marker = e.root / "warmed"
    return 0.0 if marker.exists() and marker.read_text().strip() == e.ident else WARM_FRESH_S


def mark_warmed(target: KafkaTarget) -> None:
    """Remember that the running embedded broker has had its warm-up (once per broker process)."""
    e = embedded(target)
    if e is not None:
        (e.root / "warmed").write_text(e.ident)


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


def with_overrides(sc: Scenario, rounds: int | None = None, quick: bool = False) -> Scenario:
    """The scenario with `--rounds N` and `--quick` applied: N rounds exactly (no budget adds any). Quick is a
    smoke run: one counted round, no A/A pair, one load fraction. Its figures are not for ranking."""
    exact = {"budget_min": None, "max_count": max(sc.rounds.max_count, rounds or 1)}
    r = sc.rounds.model_copy(update={"count": rounds, **exact} if rounds else {})
    if quick:
        r = r.model_copy(update={"count": rounds or 1, "aa_identity": False, "fractions": r.fractions[:1], **exact})
    return sc.model_copy(update={"rounds": r})


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
    if with_identity and sc.rounds.aa_identity:
        specs.append(AdapterSpec(name="identity", label=AA_TWIN))
    return specs


def scenario_header(ctx: RunContext, bundle_dir: Path) -> ScenarioResult:
    sc, manifest = ctx.sc, ctx.bundle.manifest
    return ScenarioResult(
        name=sc.name,
        description=sc.description,
        model_id=ctx.bundle.model_id,
        bundle=str(bundle_dir),
        trainer=f"{manifest['trainer']['name']}/{manifest['trainer']['algorithm']}",
        task=ctx.bundle.task.task,
        outputs=manifest.get("output"),
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
    thorough: bool = False,
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
    gc_logs, broker_pids = _broker_facts(target)
    ctx = RunContext(sc, target, res.bundle_dir, run_id, log, gc_logs, broker_pids)
    # the measurer runs in this process: keep full garbage collections off the long-lived objects
    # (a full pass over them took ~60 ms; see harness/scoring/service.py)
    gc.collect()
    gc.freeze()
    log(f"warming the broker up: {warm_broker(ctx, warm_seconds(target)):.1f} s")
    mark_warmed(target)
    scenario = scenario_header(ctx, res.bundle_dir)
    scenario.method, scenario.control = "rounds", CONTROL if with_identity else None
    scenario.round_settings = sc.rounds.model_dump()
    scenario.confidence = sc.rounds.confidence
    scenario.ceilings = _ceilings(ctx)
    results = Results(
        run_id=run_id, started_at=started, environment=environment(target, lib_versions()), scenarios=[scenario]
    )
    entrants = [Entrant(spec, i, AdapterResult(adapter=spec.display, name=spec.name)) for i, spec in enumerate(specs)]
    scenario.adapters = [e.result for e in entrants]

    def save() -> None:
        results.finished_at = _now()
        scenario.minutes = round((time.monotonic() - t0) / 60, 2)
        results.write(run_dir)

    c = scenario.ceilings
    cap = min(v for v in (c.generator_per_s, c.measurer_per_s) if v) * LOAD_CEILING_SHARE if c else None
    with _progress(console) as progress, contextlib.ExitStack() as stack:
        runner = RoundRunner(ctx, scenario, entrants, progress, save, load_cap_per_s=cap, started=t0)
        runner.start(stack)
        runner.inprocess()
        runner.run()
        runner.finish()
        if thorough:
            runner.saturation()
    _record_loop_ceiling(scenario)
    save()
    counted = sum(1 for ro in scenario.round_orders if not ro.warmup)
    log(f"{len(entrants)} contestants × {counted} rounds in {(time.monotonic() - t0) / 60:.1f} min")
    return run_dir


def _record_loop_ceiling(scenario: ScenarioResult) -> None:
    """The control's figures as the Python loop's own ceiling: its flat-out rate and CPU per record."""
    control = scenario.adapter(scenario.control) if scenario.control else None
    if control is None or control.cost is None or scenario.ceilings is None:
        return
    if control.cost.flat_out_per_s is not None:
        scenario.ceilings.loop_capacity_per_s = control.cost.flat_out_per_s.median
    if control.cost.cpu_us_per_record is not None:
        scenario.ceilings.loop_cpu_us_per_record = control.cost.cpu_us_per_record.median


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


def _broker_facts(target: KafkaTarget) -> tuple[list[Path], list[int]]:
    """The embedded broker's (or cluster's) GC logs and pids (for the interference monitor); nothing for an
    external cluster."""
    e = embedded(target)
    return (e.gc_logs, e.pids) if e is not None else ([], [])


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
    from harness.results.experiments import Experiments

    console = console or Console(stderr=True)

    def log(m: str) -> None:
        console.print(m, highlight=False)

    kinds = {ScaleOutPlan: "scale-out", RebalancePlan: "rebalance", LifecyclePlan: "lifecycle", OnlinePlan: "online"}
    kind = kinds[type(plan)]

    started = _now()
    run_id = time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + f"-{sc.name}-{kind}"
    res = build(sc, artifacts=artifacts, log=log)
    gc_logs, broker_pids = _broker_facts(target)
    ctx = RunContext(sc, target, res.bundle_dir, run_id, log, gc_logs, broker_pids)
    if kind in ("lifecycle", "online") and ctx.bundle.task.task != "binary":
        raise RunError(
            f"the {kind} experiment drifts fraud data and follows a binary model's AUC; scenario {sc.name!r} is a "
            f"{ctx.bundle.task.task} model (its drift and live quality are in `harness monitor`)"
        )
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
