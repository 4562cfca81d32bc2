"""What scores during a benchmark, behind one `Scorer` protocol, and how each adapter spec is deployed.

    Scorer        start() / stop() / cpu_seconds() / peak_rss_mib(): one process or a group of processes
      LoopProcesses   N `harness score` processes in one consumer group (the Python scoring loop)
      KStreamsScorer  the Kafka Streams + MOJO application (contestants/kstreams_mojo)
      ModelServer     `harness serve`: the V2 model server behind the `rest` adapter
      MlserverKafka   a peer: MLServer in its Kafka mode (harness/bench/peers.py)
    Deployment    the scorer, optionally the model server it calls, and what the in-process
                  micro-benchmark measures for it

`deployment(spec, setup)` is the one place that knows how an adapter name is deployed (DEPLOYMENTS); the
orchestrator only starts, measures and stops a Deployment.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from adapters.bundle import Bundle
from harness.bench.procs import HARNESS, Child, cpu_ns, cpu_seconds, peak_rss_mib, process_tree, wait_http_ok
from harness.kafka.broker import free_port
from harness.kafka.config import KafkaTarget
from harness.kafka.topics import delete_topics, wait_group_stable
from harness.scenario import AdapterSpec, LoopSpec
from harness.scoring import protocol

# the family each built-in strategy belongs to (plug-in adapters, "module:Class", report their own)
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
    "mlserver-kafka": "peer",
}


class Scorer(Protocol):
    """A process (or group of processes) that consumes the input topic and produces results."""

    name: str

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def cpu_seconds(self) -> float: ...

    def peak_rss_mib(self) -> float: ...

    def pids(self) -> list[int]: ...


@dataclass(frozen=True)
class Topics:
    input: str
    output: str
    dlq: str
    group: str

    @classmethod
    def for_adapter(cls, tag: str, index: int, display: str) -> Topics:
        """Topics named after the run's tag and the adapter's label (Kafka allows [a-zA-Z0-9._-] only):
        "rest(onnx) (exactly-once)" -> "rest-onnx-exactly-once"."""
        safe = "-".join(part for part in re.split(r"[^a-zA-Z0-9._-]+", display) if part)
        base = f"h.{tag}.{index}-{safe}"
        return cls(f"{base}.in", f"{base}.out", f"{base}.dlq", f"{base}.g")

    def data_topics(self) -> list[str]:
        return [self.input, self.output, self.dlq]


@dataclass
class ScorerSetup:
    """What every scorer of a run needs: where Kafka is, the bundle, the topics and the loop settings."""

    target: KafkaTarget
    bundle_dir: Path
    bundle: Bundle
    topics: Topics
    encoding: str
    loop: LoopSpec
    extra_args: tuple[str, ...] = ()  # more `harness score` options (e.g. the model topic to follow)


class SecretFile:
    """librdkafka properties (SASL passwords...) for child processes: a private temporary file (mode 0600),
    deleted when the scorer stops. Never written under results/."""

    def __init__(self, properties: Mapping[str, str]) -> None:
        self.path: Path | None = None
        if properties:
            self.path = private_file("".join(f"{k}={v}\n" for k, v in properties.items()).encode(), ".properties")

    def remove(self) -> None:
        if self.path is not None:
            with contextlib.suppress(OSError):
                self.path.unlink()
            self.path = None


def private_file(data: bytes, suffix: str) -> Path:
    """`data` in a new temporary file only this user can read (0600); the caller deletes it."""
    fd, name = tempfile.mkstemp(prefix="harness-", suffix=suffix)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    return Path(name)


def _option_args(options: Mapping[str, Any]) -> list[str]:
    return [a for k, v in options.items() for a in ("--option", f"{k}={v}")]


class LoopProcesses:
    """`loop.processes` scoring loops (`harness score`) in one consumer group; started when all are READY
    and the group is stable with every member holding partitions."""

    def __init__(
        self,
        setup: ScorerSetup,
        adapter: str,
        options: Mapping[str, Any],
        display: str,
        guarantee: str = "at-least-once",
    ) -> None:
        self.name = f"scoring loop {display}"
        self.setup = setup
        self.adapter = adapter
        self.options = dict(options)
        self.display = display
        self.guarantee = guarantee
        self.children: list[Child] = []
        self._secret: SecretFile | None = None
        self._gone_cpu = 0.0  # CPU of loops removed mid-run

    def argv(self, client_config: Path | None) -> list[str]:
        s, t = self.setup, self.setup.topics
        argv = [
            *HARNESS, "score", "--bundle", str(s.bundle_dir), "--adapter", self.adapter,
            "--input-topic", t.input, "--output-topic", t.output, "--dlq-topic", t.dlq, "--group", t.group,
            "--encoding", s.encoding, "--batch-max", str(s.loop.batch_max),
            "--batch-wait-ms", str(s.loop.batch_wait_ms), "--bootstrap", s.target.bootstrap,
            "--scorer-name", self.display, "--guarantee", self.guarantee,
        ]  # fmt: skip
        if client_config is not None:
            argv += ["--client-config", str(client_config)]
        return argv + list(s.extra_args) + _option_args(self.options)

    def start(self) -> None:
        self._secret = SecretFile(self.setup.target.properties)
        try:
            argv = self.argv(self._secret.path)
            for i in range(self.setup.loop.processes):
                self.children.append(Child(f"{self.name} #{i}", argv))
            for c in self.children:
                c.wait_for_line(protocol.READY, 120)
            # a process beyond the partition count joins the group but holds no partition
            holding = min(len(self.children), self.setup.loop.partitions)
            wait_group_stable(self.setup.target, self.setup.topics.group, holding, 60)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        for c in self.children:
            c.stop()
        if self._secret is not None:
            self._secret.remove()

    def add_process(self) -> Child:
        """One more loop in the group, under load (a rebalance): returns when it printed READY."""
        assert self._secret is not None, "start() first"
        c = Child(f"{self.name} #{len(self.children)}", self.argv(self._secret.path))
        self.children.append(c)
        c.wait_for_line(protocol.READY, 120)
        return c

    def remove_process(self) -> None:
        """Stop the newest loop the way an operator would (SIGTERM: it finishes, commits and leaves)."""
        c = self.children.pop()
        self._gone_cpu += cpu_seconds(c.pid)
        c.stop()

    def pids(self) -> list[int]:
        return [c.pid for c in self.children]

    def cpu_seconds(self) -> float:
        return self._gone_cpu + sum(cpu_seconds(c.pid) for c in self.children)

    def peak_rss_mib(self) -> float:
        return max((peak_rss_mib(c.pid) for c in self.children), default=float("nan"))


class _OneProcess:
    """CPU and peak memory of a scorer that is one process (`_pid()`; None before it starts)."""

    def _pid(self) -> int | None:
        raise NotImplementedError

    def pids(self) -> list[int]:
        pid = self._pid()
        return [pid] if pid else []

    def cpu_seconds(self) -> float:
        return cpu_seconds(self._pid())

    def peak_rss_mib(self) -> float:
        return peak_rss_mib(self._pid())


class ModelServer(_OneProcess):
    """`harness serve` hosting one adapter behind the V2 endpoints on a free loopback port."""

    def __init__(self, setup: ScorerSetup, adapter: str, options: Mapping[str, Any]) -> None:
        self.name = f"harness serve ({adapter})"
        self.setup = setup
        self.adapter = adapter
        self.options = dict(options)
        self.port = free_port()
        self.child: Child | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        argv = [*HARNESS, "serve", "--bundle", str(self.setup.bundle_dir), "--adapter", self.adapter]
        argv += ["--port", str(self.port), *_option_args(self.options)]
        child = self.child = Child(self.name, argv)
        try:
            wait_http_ok(f"{self.url}/v2/health/ready", child.alive, 60.0, self.name, child.tail)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        if self.child is not None:
            self.child.stop()

    def _pid(self) -> int | None:
        return self.child.pid if self.child else None


class KStreamsScorer(_OneProcess):
    """The Kafka Streams application with the H2O MOJO embedded, reading and writing the same wire format."""

    def __init__(self, setup: ScorerSetup, options: Mapping[str, Any], guarantee: str = "at-least-once") -> None:
        self.name = "kstreams-mojo"
        self.setup = setup
        self.options = dict(options)
        self.guarantee = "exactly_once_v2" if guarantee == "exactly-once" else "at_least_once"
        self.app: Any = None
        self._mojo: Path | None = None

    def start(self) -> None:
        from contestants.kstreams import KStreamsApp, KStreamsConfig, build_jar

        s, t, o = self.setup, self.setup.topics, self.options
        build_jar()
        # the app loads the MOJO from a path: a private copy of the bytes whose sha256 was checked, so a
        # bundle file swapped after the check never runs
        self._mojo = private_file(s.bundle.verified_bytes("h2o-mojo"), ".zip")
        cfg = KStreamsConfig(
            bootstrap=s.target.bootstrap,
            input_topic=t.input,
            output_topic=t.output,
            dlq_topic=t.dlq,
            application_id=t.group,
            mojo_path=self._mojo,
            feature_names=s.bundle.feature_names,
            encoding=s.encoding,
            mode=str(o.get("mode", "per-record")),
            batch_size=int(o.get("batch_size", s.loop.batch_max)),
            batch_max_wait_ms=int(o.get("batch_max_wait_ms", s.loop.batch_wait_ms)),
            guarantee=str(o.get("guarantee", self.guarantee)),
            client_config=dict(s.target.properties) or None,
        )
        self.app = KStreamsApp().start(cfg)

    def stop(self) -> None:
        if self.app is not None:
            self.app.stop()
            # batch mode's change-logged buffer store (contestants/kstreams_mojo, PendingRecords.java)
            delete_topics(self.setup.target, [f"{self.setup.topics.group}-pending-changelog"])
        if self._mojo is not None:
            self._mojo.unlink(missing_ok=True)

    def _pid(self) -> int | None:
        return self.app.pid if self.app else None


@dataclass
class Deployment:
    """One adapter spec as it runs: the scorer, the model server it calls (if any), and the adapter and
    options the in-process micro-benchmark measures for it (None: nothing comparable in process)."""

    family: str
    scorer: Scorer
    server: ModelServer | None = None
    microbench_adapter: str | None = None
    microbench_options: dict[str, Any] = field(default_factory=dict)
    protocol: Literal["wire", "v2"] = "wire"  # "v2": the scorer reads V2 requests and writes V2 responses
    # whose Kafka client consumes and produces: the Python scoring loop's (the identity run is its ceiling) or
    # the strategy's own (a Kafka Streams app, a model server's Kafka mode), which that ceiling does not bound
    client: Literal["python-loop", "own"] = "python-loop"

    def start(self) -> None:
        try:
            if self.server is not None:
                self.server.start()
            self.scorer.start()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        self.scorer.stop()
        if self.server is not None:
            self.server.stop()

    def pids(self) -> list[int]:
        """Every process of this deployment (for the interference monitor's accounting)."""
        out = list(self.scorer.pids())
        if self.server is not None:
            out += self.server.pids()
        return out

    def process_tree(self) -> tuple[list[int], list[int]]:
        """(scorer, model server) processes with their descendants: what a window stops, resumes and bills."""
        return process_tree(self.scorer.pids()), process_tree(self.server.pids()) if self.server else []

    def cpu_ns(self) -> tuple[int, int]:
        """(scorer, model server) CPU nanoseconds so far, every thread of every process (procs.cpu_ns)."""
        scorer, server = self.process_tree()
        return cpu_ns(scorer), cpu_ns(server)

    def cpu_seconds(self) -> tuple[float, float | None]:
        """(scorer, model server or None) CPU seconds so far."""
        return self.scorer.cpu_seconds(), (self.server.cpu_seconds() if self.server else None)

    def peak_rss_mib(self) -> tuple[float, float | None]:
        return self.scorer.peak_rss_mib(), (self.server.peak_rss_mib() if self.server else None)


def _family(name: str) -> str:
    if name in FAMILY:
        return FAMILY[name]
    try:
        from adapters.registry import adapter_class

        return str(getattr(adapter_class(name), "family", "other"))
    except Exception:  # reported when the loop loads it; here only the label is at stake
        return "other"


def _in_loop(spec: AdapterSpec, setup: ScorerSetup) -> Deployment:
    scorer = LoopProcesses(setup, spec.name, spec.options, spec.display, spec.guarantee)
    return Deployment(_family(spec.name), scorer, microbench_adapter=spec.name, microbench_options=dict(spec.options))


def _served(spec: AdapterSpec, setup: ScorerSetup) -> Deployment:
    server = ModelServer(setup, spec.serve or "onnx", spec.serve_options)
    options = {"url": server.url, **spec.options}
    scorer = LoopProcesses(setup, spec.name, options, spec.display, spec.guarantee)
    return Deployment(FAMILY["rest"], scorer, server, microbench_adapter=spec.name, microbench_options=options)


def _kstreams(spec: AdapterSpec, setup: ScorerSetup) -> Deployment:
    from harness.bench.errors import RunError

    if not setup.bundle.task.vector:  # its Wire.java writes one number per result
        raise RunError(
            "kstreams-mojo serves binomial and regression MOJOs (one number per result, Wire.java); this bundle is "
            f"a {setup.bundle.task.task} model, whose results carry {setup.bundle.task.n_outputs} class probabilities"
        )
    # in process, the same MOJO runs through h2o-genmodel: the adapter the app's arithmetic matches
    scorer = KStreamsScorer(setup, spec.options, spec.guarantee)
    return Deployment(FAMILY["kstreams-mojo"], scorer, microbench_adapter="h2o-mojo", client="own")


def _mlserver(spec: AdapterSpec, setup: ScorerSetup) -> Deployment:
    from harness.bench.errors import RunError
    from harness.bench.peers import MODEL_NAME, MlserverKafka

    trainer = setup.bundle.manifest.get("trainer", {}).get("name")
    if setup.bundle.task.task != "binary":
        raise RunError(f"mlserver-kafka is measured on binary models here (the result read is P(class 1)); this "
                       f"bundle is a {setup.bundle.task.task} model")  # fmt: skip
    if trainer != "lightgbm":
        raise RunError(
            f"mlserver-kafka serves LightGBM bundles (with MLServer's LightGBM runtime); this one is {trainer}"
        )
    if setup.target.properties:
        raise RunError("mlserver-kafka takes a plaintext bootstrap only (MLServer's Kafka settings have no SASL/SSL)")
    scorer = MlserverKafka(
        setup.bundle_dir,
        setup.bundle.format_info("native")["file"],
        setup.target.bootstrap,
        setup.topics.input,
        setup.topics.output,
    )
    options = {"url": scorer.url, "model_name": MODEL_NAME}
    return Deployment(FAMILY["mlserver-kafka"], scorer, None, "rest", options, protocol="v2", client="own")


DEPLOYMENTS: dict[str, Callable[[AdapterSpec, ScorerSetup], Deployment]] = {
    "rest": _served,
    "kstreams-mojo": _kstreams,
    "mlserver-kafka": _mlserver,
}


def deployment(spec: AdapterSpec, setup: ScorerSetup) -> Deployment:
    """How `spec` runs: a Python scoring loop unless DEPLOYMENTS says otherwise."""
    return DEPLOYMENTS.get(spec.name, _in_loop)(spec, setup)
