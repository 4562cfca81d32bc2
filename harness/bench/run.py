"""`harness run`: the whole suite for a scenario, measured the same way for every deployment strategy.

    broker (embedded unless --bootstrap) -> build (cached) -> for each adapter (the identity ceiling first):
        topics -> [harness serve for rest] -> loop process(es) -> in-process micro-benchmark
        -> each load point: open-loop send, measure, verdict -> sustainable-throughput search -> tear down
    -> results/<run-id>/results.json (+ report)

Each figure is framed by the Kafka-only ceiling (identity adapter) and by the adapter's own in-process
micro-benchmark: the report gives ratios, since absolute times on a shared machine are noisy.
"""

from __future__ import annotations

import json
import os
import platform
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from adapters.bundle import Bundle
from harness.bench.loadgen import GeneratorProcess, schedule_s
from harness.bench.measure import Measurer, PointSpec
from harness.bench.procs import HARNESS, Child, cpu_seconds, peak_rss_mib
from harness.build.pipeline import build, lib_versions
from harness.errors import HarnessError
from harness.kafka.broker import free_port
from harness.kafka.config import KafkaTarget
from harness.kafka.topics import delete_topics, ensure_topics
from harness.scenario import AdapterSpec, LoadProfile, Scenario
from harness.scoring import wire

MIN_SEARCH_RATE = 25.0  # records/s: below this the search gives up and reports no sustainable rate

FAMILY = {
    "identity": "baseline",
    "native": "native",
    "onnx": "onnx",
    "codegen-c": "generated-code",
    "h2o-mojo": "generated-code",
    "kstreams-mojo": "generated-code",
    "pmml": "pmml",
    "pfa": "pfa",
    "rest": "external-server",
}


@dataclass
class Harnessed:
    """What runs for one adapter: the scorer processes and, for rest, the model server."""

    scorers: list[Any] = field(default_factory=list)
    server: Child | None = None

    def cpu_seconds(self) -> tuple[float, float | None]:
        loop = sum(cpu_seconds(s.pid) for s in self.scorers)
        return loop, (self.server.cpu_seconds() if self.server else None)

    def peak_rss(self) -> tuple[float, float | None]:
        loop = max((peak_rss_mib(s.pid) for s in self.scorers), default=float("nan"))
        return loop, (self.server.peak_rss_mib() if self.server else None)

    def stop(self) -> None:
        for s in self.scorers:
            s.stop()
        if self.server:
            self.server.stop()


def environment(target: KafkaTarget) -> dict[str, Any]:
    import psutil

    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    from harness.kafka.broker import kafka_version

    return {
        "hostname": socket.gethostname(),
        "cpu_model": cpu,
        "cpu_count": os.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "os": platform.platform(),
        "python": platform.python_version(),
        "kafka_version": kafka_version() if target.embedded else "external cluster",
        "bootstrap": target.bootstrap,
        "embedded_broker": target.embedded,
        "libraries": lib_versions(),
        "load_average_at_start": list(os.getloadavg()),
        "machine_note": (
            f"{os.cpu_count()} cores, shared: broker, load generator, measurer and scorer all run on this machine; "
            "compare figures as ratios within one run"
        ),
    }


class RunContext:
    def __init__(
        self,
        sc: Scenario,
        target: KafkaTarget,
        bundle_dir: Path,
        run_id: str,
        console: Console,
        log: Callable[[str], None],
    ) -> None:
        self.sc = sc
        self.target = target
        self.bundle_dir = bundle_dir
        self.bundle = Bundle.open(bundle_dir)
        self.X, self.y, self.p = self.bundle.reference()
        self.codec = wire.FeatureCodec(self.bundle.feature_names, sc.encoding)
        self.payloads = [self.codec.encode(row) for row in self.X]
        self.run_id = run_id
        self.console = console
        self.log = log
        self.tag = uuid.uuid4().hex[:6]


# ------------------------------------------------------------------------------------------------
# starting the scorers
# ------------------------------------------------------------------------------------------------


def _client_props_file(ctx: RunContext, folder: Path) -> Path | None:
    if not ctx.target.properties:
        return None
    f = folder / "client.properties"
    f.write_text("".join(f"{k}={v}\n" for k, v in ctx.target.properties.items()))
    return f


def start_scorers(ctx: RunContext, spec: AdapterSpec, topics: dict[str, str], workdir: Path) -> Harnessed:
    h = Harnessed()
    sc = ctx.sc
    options = dict(spec.options)
    try:
        if spec.name == "rest":
            port = free_port()
            served = spec.serve or "onnx"
            argv = [*HARNESS, "serve", "--bundle", str(ctx.bundle_dir), "--adapter", served, "--port", str(port)]
            argv += [a for k, v in spec.serve_options.items() for a in ("--option", f"{k}={v}")]
            h.server = Child(f"harness serve ({served})", argv)
            _wait_http_ready(h.server, f"http://127.0.0.1:{port}/v2/health/ready", 60)
            options.setdefault("url", f"http://127.0.0.1:{port}")
        if spec.name == "kstreams-mojo":
            from harness.bench.kstreams import KStreamsApp, build_jar

            build_jar()
            app = KStreamsApp()
            mojo = ctx.bundle.verified_path("h2o-mojo")
            app.start(
                bootstrap=ctx.target.bootstrap,
                input_topic=topics["in"],
                output_topic=topics["out"],
                dlq_topic=topics["dlq"],
                application_id=topics["group"],
                mojo_path=mojo,
                feature_names=ctx.bundle.feature_names,
                encoding=sc.encoding,
                mode=str(options.get("mode", "per-record")),  # type: ignore[arg-type]
                batch_size=int(options.get("batch_size", sc.loop.batch_max)),
                batch_max_wait_ms=int(options.get("batch_max_wait_ms", sc.loop.batch_wait_ms)),
                guarantee=str(options.get("guarantee", "at_least_once")),  # type: ignore[arg-type]
                client_config=dict(ctx.target.properties) or None,
            )
            h.scorers.append(app)
            return h
        props = _client_props_file(ctx, workdir)
        for i in range(sc.loop.processes):
            argv = [
                *HARNESS, "score", "--bundle", str(ctx.bundle_dir), "--adapter", spec.name,
                "--input-topic", topics["in"], "--output-topic", topics["out"], "--dlq-topic", topics["dlq"],
                "--group", topics["group"], "--encoding", sc.encoding,
                "--batch-max", str(sc.loop.batch_max), "--batch-wait-ms", str(sc.loop.batch_wait_ms),
                "--bootstrap", ctx.target.bootstrap, "--scorer-name", spec.display,
            ]  # fmt: skip
            if props is not None:
                argv += ["--client-config", str(props)]
            argv += [a for k, v in options.items() for a in ("--option", f"{k}={v}")]
            h.scorers.append(Child(f"scoring loop {spec.display} #{i}", argv))
        for s in h.scorers:
            s.wait_for_line("READY", 120)
        wait_group_stable(ctx.target, topics["group"], len(h.scorers), 60)
    except BaseException:
        h.stop()
        raise
    return h


def _wait_http_ready(child: Child, url: str, timeout_s: float) -> None:
    import httpx

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not child.alive():
            raise HarnessError(f"{child.name} exited: {child.tail()}")
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise HarnessError(f"{child.name} was not ready within {timeout_s:.0f} s: {child.tail()}")


def wait_group_stable(target: KafkaTarget, group: str, members: int, timeout_s: float) -> None:
    """Until the consumer group is Stable with `members` members that all hold partitions."""
    from confluent_kafka import ConsumerGroupState
    from confluent_kafka.admin import AdminClient

    admin = AdminClient(target.client_config())
    deadline = time.monotonic() + timeout_s
    last = "unknown"
    while time.monotonic() < deadline:
        try:
            d = admin.describe_consumer_groups([group])[group].result(timeout=5)
            assigned = [m for m in d.members if m.assignment and m.assignment.topic_partitions]
            last = f"{d.state}, {len(assigned)}/{members} members with partitions"
            if d.state == ConsumerGroupState.STABLE and len(assigned) >= members:
                return
        except Exception as e:  # the group may not exist yet
            last = str(e)
        time.sleep(0.2)
    raise HarnessError(f"consumer group {group} did not settle within {timeout_s:.0f} s ({last})")


# ------------------------------------------------------------------------------------------------
# one load point
# ------------------------------------------------------------------------------------------------


def run_point(
    ctx: RunContext,
    h: Harnessed,
    measurer: Measurer,
    topics: dict[str, str],
    profile: LoadProfile,
    prefix: str,
    kind: str,
    label: str,
    progress: Progress,
    drain_cap_s: float | None = None,
) -> dict[str, Any]:
    sc = ctx.sc
    v = sc.validity
    offsets = schedule_s(profile)
    start_at = time.time_ns() + 400_000_000
    measurer.add_point(PointSpec(prefix, start_at, profile.warmup_s, profile.duration_s, len(offsets)))
    cpu0, scpu0 = h.cpu_seconds()
    gen = GeneratorProcess(
        ctx.target.client_config(), topics["in"], ctx.payloads, offsets, prefix, start_at, v.max_send_lag_ms
    )
    gen.start()
    task = progress.add_task(label, total=len(offsets), p99="-")
    try:
        deadline = time.monotonic() + profile.duration_s + 120
        while gen.proc.is_alive() and time.monotonic() < deadline:
            n, d, p99 = measurer.progress(prefix)
            progress.update(task, completed=n + d, p99=f"{p99:.1f} ms" if p99 is not None else "-")
            time.sleep(0.25)
        rep = gen.result(timeout_s=30)
    finally:
        gen.kill()
    _await_results(measurer, prefix, rep.sent, v.drain_timeout_s, drain_cap_s, progress, task)
    progress.remove_task(task)
    cpu1, scpu1 = h.cpu_seconds()
    rss, srss = h.peak_rss()
    offered_ns = start_at + (offsets * 1e9).astype(np.int64)
    s = measurer.summary(
        prefix, v.accuracy_tolerance, v.window_s, v.stable_windows, v.stable_tolerance_pct, offered_ns=offered_ns
    )
    s["counts"]["sent"] = rep.sent
    s["counts"]["lost"] = max(0, rep.sent - s["counts"]["scored"] - s["counts"]["dead_lettered"])
    events = max(1, s["counts"]["scored"] + s["counts"]["dead_lettered"])
    cost: dict[str, Any] = {
        "cpu_s_per_1000": round((cpu1 - cpu0) / events * 1000, 4),
        "peak_rss_mib": round(rss, 1),
    }
    if scpu0 is not None and scpu1 is not None:
        cost["server_cpu_s_per_1000"] = round((scpu1 - scpu0) / events * 1000, 4)
        cost["server_peak_rss_mib"] = round(srss or float("nan"), 1)
    point: dict[str, Any] = {
        "name": profile.display,
        "kind": kind,
        "pattern": profile.pattern,
        "offered_per_s": round(len(offsets) / profile.duration_s, 2),
        "duration_s": profile.duration_s,
        "warmup_s": profile.warmup_s,
        "generator": rep.as_dict(),
        **s,
        "cost": cost,
    }
    checks = validity_checks(ctx.sc, point)
    point["checks"] = checks
    point["verdict"] = "VALID" if all(c["passed"] for c in checks) else "INVALID"
    lat = point["latency_ms"]["p99"]
    point["slo_met"] = bool(point["counts"]["lost"] == 0 and lat == lat and lat <= sc.slo.p99_ms)
    return point


def _await_results(
    measurer: Measurer,
    prefix: str,
    sent: int,
    idle_timeout_s: float,
    cap_s: float | None,
    progress: Progress,
    task: Any,
) -> None:
    """Until every sent record has a result or a dead letter, nothing arrived for idle_timeout_s, or cap_s
    passed (a search step's backlog is not worth waiting out); the progress bar follows."""
    start = time.monotonic()
    while True:
        n, d, p99 = measurer.progress(prefix)
        progress.update(task, completed=n + d, p99=f"{p99:.1f} ms" if p99 is not None else "-")
        if measurer.drained(prefix, sent, idle_timeout_s):
            return
        if cap_s is not None and time.monotonic() - start > cap_s:
            return
        time.sleep(0.25)


def validity_checks(sc: Scenario, point: dict[str, Any]) -> list[dict[str, Any]]:
    v = sc.validity
    g = point["generator"]
    c = point["counts"]
    checks = [
        {
            "name": "schedule kept",
            "passed": g["behind_share"] <= v.max_behind_schedule_share and g["delivery_errors"] == 0,
            "detail": f"{g['behind_share'] * 100:.2f}% of sends were more than {v.max_send_lag_ms:g} ms late "
            f"(allowed {v.max_behind_schedule_share * 100:g}%); send lag p99 {g['send_lag_ms']['p99']:.2f} ms",
            "recommendation": "lower the offered rate or run the load generator on another machine",
        },
        {
            "name": "min measured events",
            "passed": c["measured"] >= v.min_measured_events,
            "detail": f"{c['measured']} events after warm-up (minimum {v.min_measured_events})",
            "recommendation": "lengthen duration_s or raise the rate",
        },
        {
            "name": "no lost records",
            "passed": c["lost"] == 0,
            "detail": f"{c['lost']} of {c['sent']} records had no result or dead letter after the drain timeout",
            "recommendation": "the scorer cannot keep up or failed: see its log; lower the rate",
        },
        {
            "name": "throughput stable",
            "passed": bool(point["throughput"]["stable"]),
            "detail": f"last {v.stable_windows} windows of {v.window_s:g} s scored "
            f"{point['throughput']['windows_per_s'][-v.stable_windows :]}/s against "
            f"{point['throughput']['offered_windows_per_s'][-v.stable_windows :]}/s offered "
            f"(tolerance {v.stable_tolerance_pct:g}% in sum, {2 * v.stable_tolerance_pct:g}% per window)",
            "recommendation": "lengthen duration_s; a backlog that grows means the rate is above capacity",
        },
    ]
    return checks


# ------------------------------------------------------------------------------------------------
# one adapter
# ------------------------------------------------------------------------------------------------


def run_adapter(ctx: RunContext, spec: AdapterSpec, index: int, progress: Progress, workdir: Path) -> dict[str, Any]:
    sc = ctx.sc
    base = f"h.{ctx.tag}.{index}-{spec.display.replace('(', '-').replace(')', '')}"
    topics = {"in": f"{base}.in", "out": f"{base}.out", "dlq": f"{base}.dlq", "group": f"{base}.g"}
    n = sc.loop.partitions
    ensure_topics(ctx.target, {topics["in"]: n, topics["out"]: n, topics["dlq"]: n})
    result: dict[str, Any] = {"adapter": spec.display, "name": spec.name, "family": FAMILY.get(spec.name, "other")}
    measurer = Measurer(ctx.target, topics["out"], topics["dlq"], sc.encoding, ctx.p, ctx.y)
    measurer.start()
    h = start_scorers(ctx, spec, topics, workdir)
    try:
        result["inprocess"] = inprocess(ctx, spec, h)
        points = []
        for i, prof in enumerate(sc.load):
            label = f"{spec.display} · {prof.display}"
            points.append(run_point(ctx, h, measurer, topics, prof, f"{index}p{i}", "load", label, progress))
            _log_point(ctx, spec.display, points[-1])
        if sc.sustainable.enabled:
            result["capacity"] = capacity(ctx, spec, h, measurer, topics, index, progress, result["inprocess"])
            steps, best, limited = search(ctx, spec, h, measurer, topics, index, progress, points)
            result["sustainable"] = {"rows_per_s": best, "limited_by": limited, "steps": steps}
        else:
            result["sustainable"] = {"rows_per_s": None, "limited_by": "not searched", "steps": []}
        result["points"] = points
        bench = result["inprocess"]
        best = result["sustainable"]["rows_per_s"]
        ref = bench.get("batch_rows_per_s") if bench else None
        result["loop_vs_inprocess_ratio"] = round(best / ref, 4) if best and ref else None
        cap = (result.get("capacity") or {}).get("rows_per_s")
        result["capacity_vs_inprocess_ratio"] = round(cap / ref, 4) if cap and ref else None
        if spec.name == "identity":
            for p in points:
                p["accuracy"]["note"] = "identity returns 0.5 for every row: accuracy does not apply"
    finally:
        h.stop()
        measurer.close()
        delete_topics(ctx.target, [topics["in"], topics["out"], topics["dlq"]])
    return result


def _log_point(ctx: RunContext, name: str, p: dict[str, Any]) -> None:
    lat = p["latency_ms"]
    c = p["counts"]
    ctx.log(
        f"  {name:<16} {p['name']:<14} offered {p['offered_per_s']:>8.0f}/s  p50 {lat['p50']:>8.2f} ms  "
        f"p99 {lat['p99']:>8.2f} ms  scored {c['scored']}/{c['sent']} lost {c['lost']} dup {c['duplicates']} "
        f"dlq {c['dead_lettered']}  {p['verdict']}"
    )


def inprocess(ctx: RunContext, spec: AdapterSpec, h: Harnessed) -> dict[str, Any] | None:
    """The adapter's in-process micro-benchmark at batch 1 and the loop's batch size (a child process)."""
    if spec.name == "kstreams-mojo":
        spec = AdapterSpec(name="h2o-mojo")
    options = dict(spec.options)
    if spec.name == "rest" and h.server is not None:
        url = next((a for a in h.server.argv if a.isdigit()), None)
        options.setdefault("url", f"http://127.0.0.1:{url}")
    argv = [*HARNESS, "microbench", "--bundle", str(ctx.bundle_dir), "--adapter", spec.name]
    argv += ["--batch", str(ctx.sc.loop.batch_max), "--seconds", "1"]
    argv += [a for k, v in options.items() for a in ("--option", f"{k}={v}")]
    child = Child(f"microbench {spec.name}", argv)
    code = child.proc.wait(180)
    child.stop()
    line = next((ln for ln in reversed(child.lines) if ln.startswith("{")), None)
    if code != 0 or line is None:
        ctx.log(f"  micro-benchmark of {spec.display} failed: {child.tail()}")
        return None
    out: dict[str, Any] = json.loads(line)
    return out


def capacity(
    ctx: RunContext,
    spec: AdapterSpec,
    h: Harnessed,
    measurer: Measurer,
    topics: dict[str, str],
    index: int,
    progress: Progress,
    bench: dict[str, Any] | None,
) -> dict[str, Any]:
    """The loop's throughput with a backlog: N records sent at once, scored as fast as the loop can.

    Not a latency figure (every record waits in the backlog): it is what the loop + adapter can do per
    second, to hold against the adapter's in-process micro-benchmark at the same batch size.
    """
    inproc = (bench or {}).get("batch_rows_per_s") or 2000.0
    n = int(min(40_000, max(2_000, inproc * 2.0)))
    prefix = f"{index}c"
    start_at = time.time_ns() + 300_000_000
    measurer.add_point(PointSpec(prefix, start_at, 0.0, 1.0, n))
    gen = GeneratorProcess(ctx.target.client_config(), topics["in"], ctx.payloads, np.zeros(n), prefix, start_at, 1e9)
    task = progress.add_task(f"{spec.display} · capacity ({n:,} at once)", total=n, p99="n/a")
    gen.start()
    try:
        rep = gen.result(timeout_s=180)
    finally:
        gen.kill()
    _await_results(measurer, prefix, rep.sent, ctx.sc.validity.drain_timeout_s, 120.0, progress, task)
    progress.remove_task(task)
    got, first, last = measurer.received_span(prefix)
    rate = (got - 1) / ((last - first) / 1e9) if got > 1 and last > first else None
    out = {
        "records": rep.sent,
        "scored": got,
        "rows_per_s": round(rate, 1) if rate else None,
        "generator_per_s": round(rep.achieved_per_s, 1),
        "note": "records sent all at once; rate = results / (last - first received)",
    }
    ctx.log(f"  {spec.display:<16} capacity       {out['rows_per_s'] or 0:>10,.0f}/s with a backlog of {n:,}")
    return out


def search(
    ctx: RunContext,
    spec: AdapterSpec,
    h: Harnessed,
    measurer: Measurer,
    topics: dict[str, str],
    index: int,
    progress: Progress,
    points: list[dict[str, Any]],
) -> tuple[list[dict[str, Any]], float | None, str]:
    """Raise the offered rate until p99 breaks the SLO or the backlog grows; the last rate that held wins.

    A step that fails on latency alone is run once more before it counts (one scheduler hiccup on a
    shared machine can put a 5-second step's p99 over the SLO); after the first confirmed failure, one
    step halfway (geometric mean) between the last rate that held and the failed one refines the answer.
    """
    ss = ctx.sc.sustainable
    slo = ctx.sc.slo.p99_ms
    rate = ss.start_rate_per_s
    # start below a load point that already broke the SLO or built a backlog
    for p in points:
        held, why = _holds(p, slo)
        if not held and why in ("slo", "backlog"):
            rate = min(rate, _round_rate(p["offered_per_s"] / ss.factor))
    steps: list[dict[str, Any]] = []
    counter = [0]

    def step(r: float) -> tuple[bool, str]:
        prof = LoadProfile(
            name=f"search-{r:g}", pattern="constant", rate_per_s=r, duration_s=ss.step_duration_s, warmup_s=ss.warmup_s
        )
        label = f"{spec.display} · search {r:,.0f}/s"
        prefix = f"{index}s{counter[0]}"
        counter[0] += 1
        p = run_point(ctx, h, measurer, topics, prof, prefix, "search", label, progress, drain_cap_s=ss.step_duration_s)
        ok, reason = _holds(p, slo)
        steps.append(
            {
                "offered_per_s": p["offered_per_s"],
                "achieved_per_s": p["throughput"]["mean_per_s"],
                "p99_ms": p["latency_ms"]["p99"],
                "ok": ok,
                "reason": reason,
                "verdict": p["verdict"],
            }
        )
        points.append(p)
        _log_point(ctx, spec.display, p)
        return ok, reason

    def confirmed(r: float) -> tuple[bool, str]:
        ok, reason = step(r)
        if not ok and reason == "slo":
            ctx.log(f"  {spec.display}: p99 over the SLO at {r:g}/s; running the step once more to confirm")
            ok, reason = step(r)
        return ok, reason

    best: float | None = None
    limited = "max rate"
    while rate <= ss.max_rate_per_s:
        ok, reason = confirmed(rate)
        if not ok:
            limited = reason
            if best is None and reason in ("slo", "backlog"):
                # the first rate was already too much: step down until one holds
                low = _round_rate(rate / ss.factor)
                while low >= MIN_SEARCH_RATE:
                    if confirmed(low)[0]:
                        best = low
                        break
                    rate, low = low, _round_rate(low / ss.factor)
            if best is not None and reason in ("slo", "backlog"):
                mid = _round_rate((best * rate) ** 0.5)
                if best < mid < rate and confirmed(mid)[0]:
                    best = mid
            break
        best = rate
        rate = _round_rate(rate * ss.factor)
    return steps, best, limited


def _round_rate(r: float) -> float:
    """Two significant digits: 1000, 1600, 2600, ... (readable labels, no false precision)."""
    return float(f"{r:.2g}")


def _holds(p: dict[str, Any], slo_ms: float) -> tuple[bool, str]:
    checks = {c["name"]: c["passed"] for c in p["checks"]}
    if not checks.get("schedule kept", True):
        return False, "load generator"
    if p["counts"]["lost"] > 0 or p["throughput"]["mean_per_s"] < 0.9 * p["offered_per_s"]:
        return False, "backlog"
    lat = p["latency_ms"]["p99"]
    if lat != lat or lat > slo_ms:  # NaN: nothing measured
        return False, "slo"
    return True, "held"


# ------------------------------------------------------------------------------------------------
# the suite
# ------------------------------------------------------------------------------------------------


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

    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    run_id = time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + f"-{sc.name}"
    run_dir = results_root / run_id
    run_dir.mkdir(parents=True, exist_ok=True)
    res = build(sc, artifacts=artifacts, log=log)
    log(f"bundle {res.bundle_dir} ({'cache hit' if res.cache_hit else 'built'} in {res.seconds:.1f} s)")
    ctx = RunContext(sc, target, res.bundle_dir, run_id, console, log)
    # the measurer runs in this process: keep full garbage collections off the long-lived objects
    # (a full pass over them took ~60 ms; see the note in `harness score`)
    import gc

    gc.collect()
    gc.freeze()
    specs = list(sc.adapters)
    if only:
        unknown = [a for a in only if a not in {s.name for s in specs} | {s.display for s in specs} | {"identity"}]
        if unknown:
            raise HarnessError(
                f"adapter {unknown[0]!r} is not in scenario {sc.name} (it has: {', '.join(s.display for s in specs)})"
            )
        specs = [s for s in specs if s.name in only or s.display in only]
    if with_identity and not any(s.name == "identity" for s in specs):
        specs.insert(0, AdapterSpec(name="identity"))
    log(f"warming the broker up: {warm_broker(ctx):.1f} s")
    env = environment(target)
    manifest = ctx.bundle.manifest
    scenario_out: dict[str, Any] = {
        "name": sc.name,
        "description": sc.description,
        "model_id": ctx.bundle.model_id,
        "bundle": str(res.bundle_dir),
        "trainer": f"{manifest['trainer']['name']}/{manifest['trainer']['algorithm']}",
        "slo_p99_ms": sc.slo.p99_ms,
        "encoding": sc.encoding,
        "loop": sc.loop.model_dump(),
        "validity": sc.validity.model_dump(),
        "bundle_parity": {
            k: {kk: v["parity"].get(kk) for kk in ("max_abs_diff", "tolerance", "rows", "rows_with_nan", "passed")}
            for k, v in manifest["formats"].items()
            if "parity" in v
        },
        "adapters": [],
    }
    results: dict[str, Any] = {
        "schema": 1,
        "run_id": run_id,
        "started_at": started,
        "environment": env,
        "scenarios": [scenario_out],
    }
    out_file = run_dir / "results.json"
    workdir = run_dir / "work"
    workdir.mkdir(exist_ok=True)
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed:>7.0f}/{task.total:.0f} events"),
        TextColumn("p99 {task.fields[p99]}"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )
    with progress:
        for i, spec in enumerate(specs):
            log(f"[bold]{spec.display}[/]")
            try:
                scenario_out["adapters"].append(run_adapter(ctx, spec, i, progress, workdir))
            except HarnessError as e:
                log(f"  {spec.display} failed: {e}")
                failed: dict[str, Any] = {
                    "adapter": spec.display,
                    "name": spec.name,
                    "family": FAMILY.get(spec.name, "other"),
                }
                failed.update(
                    error=str(e), points=[], sustainable={"rows_per_s": None, "limited_by": "error", "steps": []}
                )
                scenario_out["adapters"].append(failed)
            results["finished_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            out_file.write_text(json.dumps(_clean(results), indent=1))
    ceiling = next((a for a in scenario_out["adapters"] if a["name"] == "identity"), None)
    if ceiling and ceiling.get("sustainable", {}).get("rows_per_s"):
        cap = ceiling["sustainable"]["rows_per_s"]
        for a in scenario_out["adapters"]:
            best = a.get("sustainable", {}).get("rows_per_s")
            a["vs_kafka_ceiling"] = round(best / cap, 4) if best else None
    out_file.write_text(json.dumps(_clean(results), indent=1))
    return run_dir


def _clean(o: Any) -> Any:
    """JSON has no NaN: write null."""
    if isinstance(o, float):
        return None if o != o or o in (float("inf"), float("-inf")) else o
    if isinstance(o, dict):
        return {k: _clean(v) for k, v in o.items()}
    if isinstance(o, list | tuple):
        return [_clean(v) for v in o]
    if isinstance(o, np.generic):
        return _clean(o.item())
    return o
