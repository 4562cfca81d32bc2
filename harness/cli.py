"""`harness` command line. Every user-actionable failure is one `error:` line and a non-zero exit."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console

from adapters.errors import AdapterError
from harness.cli_options import settings_command
from harness.errors import HarnessError
from harness.scoring.settings import ScorerSettings
from jvm.errors import JvmError

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Benchmark and model-interchange harness.")
broker_app = typer.Typer(
    no_args_is_help=True, help="The embedded Apache Kafka (KRaft): a single broker, or a three-node cluster."
)
app.add_typer(broker_app, name="broker")
keys_app = typer.Typer(no_args_is_help=True, help="Ed25519 keys that sign model versions (docs/trusted-models.md).")
app.add_typer(keys_app, name="keys")

# a pipe or a CI log gets 140 columns rather than rich's 80, so tables are not cut to "codeg…"
console = Console(width=None if sys.stdout.isatty() else 140)
err_console = Console(stderr=True, width=None if sys.stderr.isatty() else 140)

BootstrapOpt = Annotated[
    str | None,
    typer.Option("--bootstrap", help="HOST:PORT of an existing Kafka cluster; default: the embedded broker."),
]
ClientConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--client-config",
        help="librdkafka properties file (key=value), e.g. SASL/SSL settings; its bootstrap.servers is used when "
        "--bootstrap is not given (`harness broker start --secure` writes one per principal).",
    ),
]
SigningKeyOpt = Annotated[
    Path | None,
    typer.Option(help="Sign each published version with this Ed25519 private key (`harness keys create`)."),
]


def fail(message: str, code: int = 1) -> NoReturn:
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


SecureOpt = Annotated[
    bool,
    typer.Option(
        "--secure",
        help="The secured broker: SASL/SCRAM over TLS, ACLs (docs/trusted-models.md); its own state folder.",
    ),
]


@broker_app.command("start")
def broker_start(
    brokers: Annotated[
        int,
        typer.Option(
            help="1: the single broker; 3: a three-node KRaft cluster (replication factor 3, min.insync.replicas 2)."
        ),
    ] = 1,
    port: Annotated[int | None, typer.Option(help="Listener port of the single broker; default: a free port.")] = None,
    heap_mb: Annotated[
        int | None, typer.Option(help="JVM heap in MiB per node; default 1024 (single broker), 256 (cluster).")
    ] = None,
    timeout_s: Annotated[
        float, typer.Option(help="How long to wait for the broker to answer (a cluster: at least 300 s).")
    ] = 90.0,
    secure: SecureOpt = False,
    model_topic: Annotated[
        list[str] | None,
        typer.Option(
            "--model-topic",
            help="--secure: the model topics (prefixes) only the publisher may write; default: models.",
        ),
    ] = None,
) -> None:
    """Start the embedded broker or cluster (formats storage on first start) and print its bootstrap address.
    With --secure (single broker): certificates, passwords and one client config per principal (admin, scorer,
    publisher) are made in the state folder; every harness command reaches the broker with --client-config FILE."""
    from harness.kafka.broker import DEFAULT_HEAP_MB, Broker
    from harness.kafka.cluster import DEFAULT_CLUSTER_HEAP_MB, DEFAULT_CLUSTER_START_TIMEOUT_S, Cluster

    if brokers == 1:
        b = Broker(secure=secure, model_topics=tuple(model_topic or ()))
        already = b.running()
        st = b.start(port=port, heap_mb=heap_mb or DEFAULT_HEAP_MB, timeout_s=timeout_s)
        if already is not None:
            err_console.print(f"broker already running (pid {st.pid})")
        else:
            err_console.print(
                f"broker started: Apache Kafka {st.kafka_version}, KRaft, pid {st.pid}, data {st.data_dir}"
            )
        if st.secure:
            err_console.print(
                "SASL/SCRAM over TLS, StandardAuthorizer; client configs: "
                + ", ".join(f"{k} {v}" for k, v in (st.client_configs or {}).items()),
                highlight=False,
                soft_wrap=True,
            )
        print(st.bootstrap)
        return
    if secure or model_topic:
        fail("--secure is for the single broker (--brokers 1); the three-node cluster listens in plaintext")
    if port is not None:
        fail("--port is for the single broker; a cluster's nodes listen on free ports (see `harness broker status`)")
    c = Cluster()
    up = c.running()
    cst = c.start(
        brokers, heap_mb=heap_mb or DEFAULT_CLUSTER_HEAP_MB, timeout_s=max(timeout_s, DEFAULT_CLUSTER_START_TIMEOUT_S)
    )
    pids = ", ".join(str(n.pid) for n in cst.nodes)
    what = "cluster already running" if up is not None and len(up.alive()) == brokers else "cluster started"
    err_console.print(
        f"{what}: Apache Kafka {cst.kafka_version}, KRaft, {brokers} combined broker+controller nodes "
        f"(pids {pids}), replication factor 3, min.insync.replicas 2, data {c.root}",
        highlight=False,
    )
    print(cst.bootstrap)


@broker_app.command("stop")
def broker_stop(secure: SecureOpt = False) -> None:
    """Stop the embedded broker and cluster (with --secure: the secured broker) cleanly; leaves no process
    behind."""
    from harness.kafka.broker import Broker
    from harness.kafka.cluster import Cluster

    if secure:
        stopped = ["secure broker"] if Broker(secure=True).stop() else []
    else:
        stopped = [name for name, ran in (("broker", Broker().stop()), ("cluster", Cluster().stop())) if ran]
    err_console.print(f"{' and '.join(stopped)} stopped" if stopped else "no broker was running")


@broker_app.command("status")
def broker_status(secure: SecureOpt = False) -> None:
    """Say whether the embedded broker or cluster (with --secure: the secured broker) is up and where (a line
    per node for a cluster); exit 3 when none runs, 4 when one does not answer."""
    from harness.kafka.broker import Broker, metadata_answers
    from harness.kafka.cluster import Cluster
    from harness.kafka.config import read_client_properties
    from harness.kafka.node import broker_count, pid_alive

    st = Broker(secure=secure).running()
    c = Cluster()
    cst = None if secure else c.running()
    if st is None and cst is None:
        print("stopped")
        raise typer.Exit(3)
    code = 0
    if st is not None:
        props = None
        if st.secure and st.client_configs:
            props = read_client_properties(Path(st.client_configs["admin"]))
            props.pop("bootstrap.servers", None)
        answers = metadata_answers(st.bootstrap, timeout_s=3.0, properties=props)
        mode = " secure=SASL_SSL" if st.secure else ""
        print(f"{'running' if answers else 'not answering'} {st.bootstrap} pid={st.pid} kafka={st.kafka_version}{mode}")
        code = code or (0 if answers else 4)
    if cst is not None:
        registered = broker_count(cst.bootstrap, timeout_s=3.0)
        state = "running" if registered == len(cst.nodes) else "degraded" if registered else "not answering"
        print(f"{state} {cst.bootstrap} brokers={registered}/{len(cst.nodes)} kafka={cst.kafka_version} cluster")
        controller = c.active_controller()
        for n in cst.nodes:
            role = " active controller" if n.node_id == controller else ""
            up = "up" if pid_alive(n.pid) else "down"
            print(f"  node {n.node_id} 127.0.0.1:{n.port} (controller port {n.controller_port}) pid={n.pid} {up}{role}")
        code = code or (0 if registered else 4)
    if code:
        raise typer.Exit(code)


@keys_app.command("create")
def keys_create(
    name: Annotated[str, typer.Argument(help="The key's name: NAME.key (private) and NAME.pub (public).")],
    dir: Annotated[Path, typer.Option("--dir", help="Where the two files go.")] = Path("keys"),
) -> None:
    """Create a signing key pair: DIR/NAME.key (private, mode 0600: for `harness publish --signing-key` and
    `harness retrain --signing-key`) and DIR/NAME.pub (for scorers' --trusted-key). Never overwrites a key."""
    from harness.scoring.signing import create_key_pair, inline, key_id, load_public

    private, public = create_key_pair(dir, name)
    pub = load_public(public)
    err_console.print(f"private key {private} (keep it secret), public key {public}", highlight=False)
    print(f"{key_id(pub)} {inline(pub)}")


@keys_app.command("id")
def keys_id(
    key: Annotated[str, typer.Argument(help="A .pub or .key file, or ed25519:BASE64.")],
) -> None:
    """Print a key's id (what a signature names) and its public half inline (a scorer's --trusted-key)."""
    from harness.scoring.signing import KeyFileError, inline, key_id, load_private, load_public

    try:
        pub = load_public(key)
    except KeyFileError as e:
        if "is a private key" not in str(e):
            raise
        pub = load_private(Path(key)).public_key()
    print(f"{key_id(pub)} {inline(pub)}")


@app.command("build")
def build_cmd(
    scenarios: Annotated[list[Path], typer.Argument(help="Scenario YAML files.")],
    artifacts: Annotated[Path, typer.Option(help="Where bundles are written.")] = Path("artifacts"),
    force: Annotated[bool, typer.Option("--force", help="Rebuild even when the cache has the bundle.")] = False,
) -> None:
    """Train each scenario's model, export it to every format, hold every format to the native model."""
    from harness.modelbuild.pipeline import build
    from harness.scenario import load_scenario

    _exits_without_teardown.add("build")  # the parity gate may run PMML or a MOJO in this process's JVM
    loaded = [load_scenario(p) for p in scenarios]
    for sc in loaded:
        res = build(sc, artifacts=artifacts, force=force, log=lambda m: err_console.print(m, highlight=False))
        what = "cache hit" if res.cache_hit else "built"
        formats = ", ".join(k for k in res.manifest["formats"] if k != "ir")
        err_console.print(f"{sc.name}: {what} in {res.seconds:.1f} s: {formats}", highlight=False)
        print(res.bundle_dir)


@app.command("import")
def import_cmd(
    artifact: Annotated[
        Path,
        typer.Argument(help="The model file: PMML, ONNX, PFA, H2O MOJO zip, XGBoost JSON/UBJ, LightGBM text, skops."),
    ],
    reference: Annotated[
        Path, typer.Option(help="CSV of feature rows (header row) the bundle is checked and replayed on.")
    ],
    label: Annotated[
        str | None,
        typer.Option(help="Column of labels: 0/1, the true value, or the class (for runs' accuracy figures)."),
    ] = None,
    expected: Annotated[
        str | None,
        typer.Option(
            help="Column of the producer's own scores (checked by the gate); multiclass: one per class, "
            "comma-separated in class order, or their prefix."
        ),
    ] = None,
    task: Annotated[
        str | None,
        typer.Option(help="binary, regression or multiclass: when the file cannot say (a PFA returning a double)."),
    ] = None,
    output: Annotated[
        str | None,
        typer.Option(
            help="The output(s) to read when the file has others: PMML fields (one per class, comma-separated), "
            "or an ONNX output."
        ),
    ] = None,
    name: Annotated[
        str | None, typer.Option(help="Bundle name (artifacts/NAME/...); default: the file's name.")
    ] = None,
    trust_pickle: Annotated[
        bool, typer.Option("--trust-pickle", help="Load a joblib/pickle file (it runs code when loaded).")
    ] = False,
    artifacts: Annotated[Path, typer.Option(help="Where bundles are written.")] = Path("artifacts"),
    force: Annotated[bool, typer.Option("--force", help="Import again even when the cache has the bundle.")] = False,
) -> None:
    """Bring your own model: a bundle from an existing artifact and a reference table; every format the model
    converts to is derived and held to it by the parity gate. Prints the bundle folder."""
    from harness.modelbuild.importer import ImportRequest, import_model

    _exits_without_teardown.add("import")  # a PMML or MOJO is checked in this process's JVM
    req = ImportRequest(artifact, reference, label, expected, name, trust_pickle, task=task, output=output)
    res = import_model(req, artifacts=artifacts, force=force, log=lambda m: err_console.print(m, highlight=False))
    formats = ", ".join(k for k in res.manifest["formats"] if k != "ir")
    what = "cache hit" if res.cache_hit else "imported"
    err_console.print(f"{res.manifest['scenario']}: {what} in {res.seconds:.1f} s: {formats}", highlight=False)
    for fmt, why in res.manifest.get("absent", {}).items():
        err_console.print(f"  no {fmt}: {why}", highlight=False)
    print(res.bundle_dir)


# every option of the production commands can come from the environment: --batch-max from HARNESS_BATCH_MAX
ENV = {"auto_envvar_prefix": "HARNESS"}


def _score(settings: ScorerSettings) -> None:
    """Run the scoring loop: consume, score in micro-batches, produce a result or a dead letter per record,
    commit behind them (--guarantee at-least-once or exactly-once). Every option can also come from the
    environment (HARNESS_<OPTION>; --option as a JSON list in HARNESS_OPTIONS)."""
    from harness.scoring.service import run_score

    _exits_without_teardown.add("score")
    run_score(settings)


app.command("score")(settings_command(ScorerSettings)(_score))


@app.command("serve", context_settings=ENV)
def serve_cmd(
    bundle: Annotated[Path, typer.Option(help="Model bundle folder.")],
    adapter: Annotated[str, typer.Option(help="The adapter to host behind the V2 endpoints.")],
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8080,
    option: Annotated[list[str] | None, typer.Option("--option", "-o", help="Adapter option key=value.")] = None,
    max_body_bytes: Annotated[int, typer.Option(help="Largest request body; larger ones get 413.")] = 16 * 1024 * 1024,
    model_name: Annotated[
        str | None, typer.Option(help="Model name in the URLs; default: the bundle's model id.")
    ] = None,
    max_rows: Annotated[int, typer.Option(min=1, help="Most rows one request may hold; more get 413.")] = 65_536,
    workers: Annotated[int, typer.Option(min=1, help="Predict calls that run at once (threads).")] = 2,
    max_waiting: Annotated[int, typer.Option(min=0, help="Requests that may wait for a worker; more get 503.")] = 64,
    token_file: Annotated[
        Path | None,
        typer.Option(
            help="Require 'Authorization: Bearer <token>' (the file's first line; else $HARNESS_SERVE_TOKEN): 401 "
            "without it. The health probes stay open."
        ),
    ] = None,
) -> None:
    """Serve a bundle through any adapter as an Open Inference Protocol (KServe V2) REST server."""
    from harness.scoring.server import Limits, ServeConfig, main_serve

    limits = Limits(max_body_bytes, max_rows, workers, max_waiting)
    main_serve(ServeConfig(bundle, adapter, host, port, tuple(option or ()), limits, model_name, token_file=token_file))


@app.command("faults")
def faults_cmd(
    case: Annotated[
        list[str] | None,
        typer.Option(
            "--case",
            help="Only these faults (repeatable): kill9, broker-restart, server-restart, poison, nan-raise, hang, "
            "outage, or a row of the replication matrix (see --matrix); default: all.",
        ),
    ] = None,
    matrix: Annotated[
        bool,
        typer.Option(
            "--matrix",
            help="Only the replication matrix, on a three-node cluster: input/output partition leader clean "
            "shutdown, hard kill, clean and hard bounce; controller kill; SIGSTOP; isolation; coordinator kill.",
        ),
    ] = False,
    guarantee: Annotated[
        list[str] | None, typer.Option("--guarantee", help="at-least-once and/or exactly-once; default: both.")
    ] = None,
    backlog: Annotated[int, typer.Option(min=100, help="Records in the kill -9 backlog.")] = 100_000,
    bundle: Annotated[Path | None, typer.Option(help="Bundle to score; default: the fraud scenario's.")] = None,
    rate: Annotated[
        float | None, typer.Option(min=1, help="Records/s of the matrix's and the soak's senders (300, 200).")
    ] = None,
    soak: Annotated[
        str | None,
        typer.Option(help="Run the soak instead, this long (e.g. 30m): a random matrix fault every ~60 s."),
    ] = None,
    seed: Annotated[int, typer.Option(help="The soak's fault schedule (printed before it starts).")] = 1,
    fault_every: Annotated[float, typer.Option(min=10, help="Seconds between the soak's faults (±25%).")] = 60.0,
    results: Annotated[Path, typer.Option(help="Where the soak's folder is written.")] = Path("results"),
) -> None:
    """Run the scoring loop through every fault (kill -9, broker and model server restarts, poison records,
    NaN, exceptions, hangs, outages on a broker of its own; the replication matrix on a three-node cluster of
    its own); print sent / scored / dead-lettered / lost / duplicates per fault and guarantee. Exit 1 when a
    record was lost (or duplicated in exactly-once). --soak: the long run with random faults."""
    from harness.faults.processes import FaultError
    from harness.faults.suite import ALL_CASES, execute
    from harness.faults.suite import soak as run_soak
    from harness.scoring.settings import GUARANTEES
    from harness.signals import on_stop_signals

    unknown = [c for c in case or [] if c not in ALL_CASES] + [g for g in guarantee or [] if g not in GUARANTEES]
    if unknown:
        valid = f"faults: {', '.join(ALL_CASES)}; guarantees: {', '.join(GUARANTEES)}"
        fail(f"unknown fault or guarantee {unknown[0]!r}; {valid}")

    def log(m: str) -> None:
        err_console.print(m, highlight=False)

    def stop_suite() -> None:
        raise KeyboardInterrupt  # unwinds through every `finally`: scorers, the cluster, the isolation rules

    on_stop_signals(stop_suite)
    try:
        if soak:
            code = run_soak(soak, seed, rate, fault_every, bundle, results, log)
        else:
            code = execute(case, matrix, guarantee, backlog, bundle, rate, log)
    except FaultError as e:
        fail(str(e))
    raise typer.Exit(code)


@app.command("monitor", context_settings=ENV)
def monitor_cmd(
    bundle: Annotated[Path, typer.Option(help="The bundle whose reference predictions the scores are held to.")],
    results_topic: Annotated[str, typer.Option(help="Topic of results.")],
    dlq_topic: Annotated[str | None, typer.Option(help="Dead-letter topic (for the dead-letter rate).")] = None,
    feedback_topic: Annotated[str | None, typer.Option(help="Topic of labels, by rid or src (live AUC).")] = None,
    alerts_topic: Annotated[str | None, typer.Option(help="Where alert events (JSON) are written.")] = None,
    encoding: Annotated[str, typer.Option(help="json or f64le.")] = "json",
    window_s: Annotated[float, typer.Option(min=0.1, help="Window length.")] = 10.0,
    join_window_s: Annotated[float, typer.Option(min=0, help="How long a label waits for its result.")] = 300.0,
    rules: Annotated[Path | None, typer.Option(help="Rules YAML; default: drift, latency, dead letters, AUC.")] = None,
    slo_p99_ms: Annotated[float, typer.Option(help="For the default latency rule.")] = 50.0,
    metrics_port: Annotated[int | None, typer.Option(help="Serve Prometheus /metrics on this port.")] = None,
    metrics_host: Annotated[
        str, typer.Option(help="The address the metrics port binds to: loopback unless given (0.0.0.0: all).")
    ] = "127.0.0.1",
    max_windows: Annotated[int | None, typer.Option(help="Exit after this many windows (tests).")] = None,
    group: Annotated[str | None, typer.Option(help="Consumer group; default monitor-RESULTS.")] = None,
    bootstrap: Annotated[str | None, typer.Option("--bootstrap", help="HOST:PORT.")] = None,
    client_config: Annotated[Path | None, typer.Option(help="librdkafka properties file.")] = None,
) -> None:
    """Monitor a model over Kafka: drift (PSI, KS), latency, dead letters and live AUC per window; alert events
    to a topic; Prometheus metrics."""
    from harness.monitoring.service import MonitorSettings, run_monitor

    run_monitor(
        MonitorSettings(
            bundle=bundle,
            results_topic=results_topic,
            dlq_topic=dlq_topic,
            feedback_topic=feedback_topic,
            alerts_topic=alerts_topic,
            encoding=encoding,
            window_s=window_s,
            join_window_s=join_window_s,
            rules=rules,
            slo_p99_ms=slo_p99_ms,
            metrics_port=metrics_port,
            metrics_host=metrics_host,
            max_windows=max_windows,
            group=group,
            bootstrap=bootstrap,
            client_config=client_config,
        ),
        log=lambda m: err_console.print(m, highlight=False),
    )


@app.command("publish")
def publish_cmd(
    bundle: Annotated[Path, typer.Option(help="The bundle to publish.")],
    model_topic: Annotated[str, typer.Option(help="The compacted model topic (one partition; created if missing).")],
    name: Annotated[str, typer.Option(help="The model's name (the record key scorers follow).")],
    shadow: Annotated[bool, typer.Option("--shadow", help="Score beside the live model, to a shadow topic.")] = False,
    by_reference: Annotated[
        bool,
        typer.Option(
            "--by-reference",
            help="Publish the bundle's folder path only (every scorer must see that folder); default: the bundle "
            "itself travels on the topic, compressed and in content-addressed chunks.",
        ),
    ] = False,
    chunk_bytes: Annotated[
        int | None, typer.Option(min=1024, help="Largest chunk; default: the topic's max.message.bytes less 4 KiB.")
    ] = None,
    signing_key: SigningKeyOpt = None,
    bootstrap: BootstrapOpt = None,
    client_config: ClientConfigOpt = None,
) -> None:
    """Publish a model version on the model topic, signed with --signing-key: scorers that trust its public key
    receive, verify and swap it without stopping (docs/trusted-models.md)."""
    from adapters.bundle import Bundle
    from harness.kafka.config import resolve_kafka
    from harness.scoring.models import publish, publish_bundle, version_of
    from harness.scoring.signing import key_id, load_private

    Bundle.open(bundle)  # one clear error when it is not a bundle
    key = load_private(signing_key) if signing_key is not None else None
    if key is None:
        err_console.print(
            "warning: no --signing-key: the version is unsigned, and scorers that trust keys will refuse it",
            highlight=False,
        )
    else:
        err_console.print(f"signing with key {key_id(key.public_key())} ({signing_key})", highlight=False)
    mode = "shadow" if shadow else "live"
    target = resolve_kafka(bootstrap, client_config)
    if by_reference:
        version = version_of(bundle, name, mode=mode, signing_key=key)
        publish(target, model_topic, version)
        print(f"published {version.model_id} as {name} ({mode}, folder {version.bundle}) on {model_topic}")
        return
    done = publish_bundle(target, model_topic, bundle, name, mode, chunk_bytes, signing_key=key)
    v = done.version
    err_console.print(
        f"{len(v.files or [])} files, {done.bundle_bytes:,} bytes in {done.chunks} chunks of at most "
        f"{done.chunk_bytes:,} bytes: {done.chunks_sent} sent ({done.bytes_sent:,} bytes compressed), "
        f"{done.chunks - done.chunks_sent} already on the topic; {done.swept} superseded chunks tombstoned; "
        f"{done.seconds:.2f} s",
        highlight=False,
    )
    print(f"published {v.model_id} as {name} ({mode}, carried on the topic) on {model_topic}")


@app.command("retrain", context_settings=ENV)
def retrain_cmd(
    input_topic: Annotated[str, typer.Option(help="The feature records the scorers consume.")],
    feedback_topic: Annotated[str, typer.Option(help='Labels: {"rid"|"src": ..., "label": 0|1}.')],
    model_topic: Annotated[str, typer.Option(help="The model topic: the champion comes from it, a winner goes to it.")],
    model_name: Annotated[str, typer.Option(help="The model's name on the model topic.")],
    alerts_topic: Annotated[
        str | None, typer.Option(help="harness monitor's alerts (a trigger); refusals and failures are written here.")
    ] = None,
    bundle: Annotated[
        Path | None, typer.Option(help="The champion while the model topic holds no version of --model-name.")
    ] = None,
    encoding: Annotated[str, typer.Option(help="json or f64le: the input topic's encoding.")] = "json",
    trigger: Annotated[
        list[str] | None,
        typer.Option("--trigger", help="alert, labels or schedule (repeatable); default: alert."),
    ] = None,
    trigger_rule: Annotated[
        list[str] | None,
        typer.Option(
            "--trigger-rule", help="Alert rules that trigger (default: ScoreDriftPSI, ScoreDriftKS, LiveAUCDropped)."
        ),
    ] = None,
    labels_every: Annotated[int, typer.Option(min=1, help="The labels trigger: every this many new labels.")] = 20_000,
    every_s: Annotated[float, typer.Option(min=1, help="The schedule trigger: every this many seconds.")] = 3600.0,
    window_rows: Annotated[
        int, typer.Option(min=10, help="The window: the most recent labelled records kept.")
    ] = 20_000,
    min_labels: Annotated[int, typer.Option(min=10, help="Labelled records needed before training.")] = 2_000,
    min_positives: Annotated[int, typer.Option(min=2, help="...and at least this many of each class.")] = 40,
    holdout_fraction: Annotated[float, typer.Option(help="Share of the window held out for the gate.")] = 0.3,
    margin: Annotated[float, typer.Option(help="The AUC gain a challenger needs over the champion.")] = 0.01,
    logloss_slack: Annotated[float, typer.Option(help="How much worse its log-loss may be.")] = 0.005,
    bootstrap_rounds: Annotated[int, typer.Option(min=100, help="Resamples for the intervals.")] = 500,
    join_window_s: Annotated[float, typer.Option(min=0, help="How long a record waits for its label.")] = 300.0,
    min_interval_s: Annotated[float, typer.Option(min=0, help="Least time between two retrains.")] = 60.0,
    start: Annotated[
        str, typer.Option(help="Read the input and feedback topics from earliest or latest.")
    ] = "earliest",
    work_dir: Annotated[Path, typer.Option(help="Snapshots, challengers' bundles, received models.")] = Path("retrain"),
    metrics_port: Annotated[int | None, typer.Option(help="Serve /metrics, /health/live, /health/ready.")] = None,
    metrics_host: Annotated[
        str, typer.Option(help="The address the metrics port binds to: loopback unless given (0.0.0.0: all).")
    ] = "127.0.0.1",
    max_attempts: Annotated[int | None, typer.Option(help="Exit after this many retrains (tests).")] = None,
    seed: Annotated[int, typer.Option(help="The holdout split's seed.")] = 0,
    from_snapshot: Annotated[
        Path | None,
        typer.Option(help="Offline: train and gate from a saved snapshot against --bundle, print the verdict, exit."),
    ] = None,
    signing_key: SigningKeyOpt = None,
    trusted_key: Annotated[
        list[str] | None,
        typer.Option(
            "--trusted-key",
            help="A public key the champion on the model topic may be signed by (besides --signing-key's own).",
        ),
    ] = None,
    bootstrap: BootstrapOpt = None,
    client_config: ClientConfigOpt = None,
) -> None:
    """Retrain from the stream, as a service: join the feature records the scorers consumed with the labels on the
    feedback topic (bounded window, each labelled record once); on a trigger (a monitor alert, a label count, a
    schedule) save the training set (Parquet), train the current model's recipe, export every format through the
    parity gate, and publish the challenger on the model topic only when it beats the champion on a holdout of the
    same window by --margin; otherwise keep the champion and say why (alerts topic, log). Every option can come
    from the environment (HARNESS_INPUT_TOPIC, ...). stdout: READY, then one RETRAIN {json} line per attempt."""
    from harness.retraining.service import RetrainSettings, retrain_snapshot, run_retrain

    _exits_without_teardown.add("retrain")  # the parity gate may run PMML or a MOJO in this process's JVM
    if from_snapshot is not None:
        if bundle is None:
            fail("--from-snapshot needs --bundle (the champion to judge the challenger against)", 2)
        import json

        print(json.dumps(retrain_snapshot(from_snapshot, bundle, work_dir, margin, bootstrap_rounds), indent=1))
        return
    run_retrain(
        RetrainSettings(
            input_topic=input_topic,
            feedback_topic=feedback_topic,
            model_topic=model_topic,
            model_name=model_name,
            alerts_topic=alerts_topic,
            bundle=bundle,
            encoding=encoding,
            triggers=trigger or ["alert"],
            trigger_rules=trigger_rule or ["ScoreDriftPSI", "ScoreDriftKS", "LiveAUCDropped"],
            labels_every=labels_every,
            every_s=every_s,
            window_rows=window_rows,
            min_labels=min_labels,
            min_positives=min_positives,
            holdout_fraction=holdout_fraction,
            margin=margin,
            logloss_slack=logloss_slack,
            bootstrap_rounds=bootstrap_rounds,
            join_window_s=join_window_s,
            min_interval_s=min_interval_s,
            start=start,
            work_dir=work_dir,
            metrics_port=metrics_port,
            metrics_host=metrics_host,
            max_attempts=max_attempts,
            seed=seed,
            bootstrap=bootstrap,
            client_config=client_config,
            signing_key=signing_key,
            trusted_keys=trusted_key or [],
        )
    )


@app.command("microbench")
def microbench_cmd(
    bundle: Annotated[Path, typer.Option(help="Model bundle folder.")],
    adapter: Annotated[str, typer.Option(help="Adapter name.")],
    batch: Annotated[int, typer.Option(min=1, help="Batch size besides 1.")] = 64,
    seconds: Annotated[float, typer.Option(min=0.1, help="Measuring time per batch size.")] = 1.0,
    option: Annotated[list[str] | None, typer.Option("--option", "-o", help="Adapter option key=value.")] = None,
) -> None:
    """Print an adapter's in-process throughput (batch 1 and --batch) on the bundle's held-out rows, as JSON."""
    import json

    from adapters.base import parse_options
    from adapters.bundle import Bundle
    from adapters.registry import adapter_class
    from harness.bench.microbench import run

    _exits_without_teardown.add("microbench")  # a PMML, PFA or MOJO adapter runs in this process's JVM
    b = Bundle.open(bundle)
    X, _, _ = b.reference()
    with adapter_class(adapter).load(b, **parse_options(option)) as a:
        print(json.dumps(run(a, X, batch, seconds)), flush=True)
    # the figures are out: a JVM-backed engine's teardown at interpreter exit (JPype's shutdown) can abort
    # the process on a busy machine ("FATAL: exception not rethrown"), which would discard them
    os._exit(0)


@app.command("run")
def run_cmd(
    scenarios: Annotated[list[Path], typer.Argument(help="Scenario YAML files.")],
    adapters: Annotated[
        list[str] | None, typer.Option("--adapter", "-a", help="Only these adapters (repeatable).")
    ] = None,
    artifacts: Annotated[Path, typer.Option(help="Where bundles are built.")] = Path("artifacts"),
    results: Annotated[Path, typer.Option(help="Where run folders are written.")] = Path("results"),
    no_identity: Annotated[bool, typer.Option("--no-identity", help="Skip the Kafka-only ceiling.")] = False,
    report: Annotated[bool, typer.Option(help="Write report.md and report.html at the end.")] = True,
    rounds: Annotated[
        int | None, typer.Option(min=1, max=100, help="Counted rounds (default: the scenario's, 5).")
    ] = None,
    quick: Annotated[
        bool, typer.Option("--quick", help="A smoke run: one round, no A/A pair, one load fraction. Not for ranking.")
    ] = False,
    thorough: Annotated[
        bool,
        typer.Option(
            "--thorough",
            help="After the rounds, search each strategy's saturation point on this machine (the bisecting search; "
            "several minutes per strategy). A machine figure, not a ranking one.",
        ),
    ] = False,
    bootstrap: BootstrapOpt = None,
    client_config: ClientConfigOpt = None,
) -> None:
    """Run each scenario's suite end to end: build, start every strategy once, measure each in randomized
    rounds (CPU per record on a backlog, latency at fractions of its flat-out rate), rank on cost ratios to the
    identity scorer in the same round, in tiers; report."""
    from harness.bench.run import run_suite, with_overrides
    from harness.kafka.config import resolve_kafka
    from harness.scenario import load_scenario
    from harness.signals import on_stop_signals

    def stop_run() -> None:
        raise KeyboardInterrupt  # unwinds through every `finally`: loops and servers are stopped

    on_stop_signals(stop_run)
    loaded = [with_overrides(load_scenario(p), rounds, quick) for p in scenarios]
    # a scenario may ask for the embedded three-node cluster (kafka: {brokers: 3}); --bootstrap names any cluster
    target = resolve_kafka(bootstrap, client_config, brokers=max(sc.kafka.brokers for sc in loaded))
    where = " (embedded three-node cluster)" if target.embedded and target.brokers > 1 else " (embedded broker)"
    err_console.print(f"Kafka at {target.bootstrap}{where if target.embedded else ''}")
    for sc in loaded:
        run_dir = run_suite(
            sc,
            target,
            artifacts,
            results,
            only=adapters,
            console=err_console,
            with_identity=not no_identity,
            thorough=thorough,
        )
        _finish_run(run_dir, report)


@app.command("experiment")
def experiment_cmd(
    scenario: Annotated[Path, typer.Argument(help="Scenario YAML (its model and loop settings).")],
    kind: Annotated[str, typer.Argument(help="scale-out, rebalance, lifecycle or online.")],
    adapter: Annotated[str, typer.Option(help="The strategy to scale (default: the Kafka-only ceiling).")] = "identity",
    trials: Annotated[int, typer.Option(min=1, help="Rounds over the scale-out grid.")] = 2,
    partitions: Annotated[str, typer.Option(help="Scale-out: partition counts; rebalance: the first.")] = "1,2,4",
    processes: Annotated[str, typer.Option(help="Scale-out: scorer process counts.")] = "1,2,3",
    rate_per_s: Annotated[float, typer.Option(min=1, help="Rebalance: the constant offered rate.")] = 4000.0,
    duration_s: Annotated[float, typer.Option(min=3, help="Rebalance: how long the load lasts.")] = 30.0,
    artifacts: Annotated[Path, typer.Option(help="Where bundles are built.")] = Path("artifacts"),
    results: Annotated[Path, typer.Option(help="Where run folders are written.")] = Path("results"),
    bootstrap: BootstrapOpt = None,
    client_config: ClientConfigOpt = None,
) -> None:
    """Scale-out (capacity over partitions × scorer processes), rebalance (a scorer joins and leaves under
    load: p99 around it, every record accounted for) or lifecycle (drift, alert, retrained model published on
    the model topic, hot swap) or online (online learners against the offline model on a drifting stream, rolling
    AUC)."""
    from harness.bench.experiments import RebalancePlan, ScaleOutPlan
    from harness.bench.lifecycle import LifecyclePlan
    from harness.bench.online import OnlinePlan
    from harness.bench.run import run_experiment
    from harness.kafka.config import resolve_kafka
    from harness.scenario import load_scenario

    if kind not in ("scale-out", "rebalance", "lifecycle", "online"):
        raise HarnessError(f"unknown experiment {kind!r}; valid: scale-out, rebalance, lifecycle, online")
    try:
        parts = tuple(int(x) for x in partitions.split(","))
        procs = tuple(int(x) for x in processes.split(","))
    except ValueError:
        raise HarnessError("--partitions and --processes take comma-separated whole numbers, e.g. 1,2,4") from None
    if min(parts + procs) < 1:
        raise HarnessError("--partitions and --processes must be at least 1")
    plan: ScaleOutPlan | RebalancePlan | LifecyclePlan | OnlinePlan
    if kind == "online":
        plan = OnlinePlan(rate_per_s=min(rate_per_s, 1000.0), duration_s=max(duration_s, 30.0))
        plan.drift_at_s = plan.duration_s * 0.3
    elif kind == "scale-out":
        plan = ScaleOutPlan(partitions=parts, processes=procs, trials=trials)
    elif kind == "rebalance":
        third = duration_s / 3
        plan = RebalancePlan(max(2, parts[0]), rate_per_s, duration_s, join_at_s=third, leave_at_s=2 * third)
    else:
        plan = LifecyclePlan(rate_per_s=rate_per_s, duration_s=duration_s, drift_at_s=duration_s / 4)
    sc = load_scenario(scenario)
    target = resolve_kafka(bootstrap, client_config, brokers=sc.kafka.brokers)
    run_dir = run_experiment(sc, target, artifacts, results, plan, adapter, err_console)
    _finish_run(run_dir, True)


def _finish_run(run_dir: Path, report: bool) -> None:
    from harness.results.schema import load_results

    try:
        from harness.reporting.report import write_report
        from harness.reporting.verdict import summary_table
    except ImportError:  # the report extra (matplotlib) is not installed: results.json is still there
        summary_table = None  # type: ignore[assignment]
        write_report = None  # type: ignore[assignment]
    res = load_results(run_dir)
    if summary_table is not None and any(sc.adapters for sc in res.scenarios):
        console.print(summary_table(res))
    if report and write_report is not None:
        md, html = write_report(run_dir)
        err_console.print(f"report: {md} and {html}")
    err_console.print(f"results: {run_dir / 'results.json'}")
    print(run_dir)


@app.command("report")
def report_cmd(run_dir: Annotated[Path, typer.Argument(help="results/<run-id> or its results.json")]) -> None:
    """Write report.md (+ PNG charts) and a self-contained report.html for a finished run."""
    from harness.reporting.report import write_report
    from harness.reporting.verdict import summary_table
    from harness.results.schema import load_results

    md, html = write_report(run_dir)
    console.print(summary_table(load_results(run_dir)))
    err_console.print(f"report: {md} and {html}")


@app.command("compare")
def compare_cmd(
    runs: Annotated[list[Path], typer.Argument(help="RUN_A RUN_B [...]: later runs are compared with the first.")],
    threshold_pct: Annotated[float, typer.Option("--threshold-pct", help="Flag changes worse than this.")] = 10.0,
) -> None:
    """Side-by-side ratios against the first run; exit 1 on a regression beyond the threshold (for CI)."""
    from harness.reporting.compare import main_compare

    raise typer.Exit(main_compare(runs, threshold_pct, console=console))


@app.command("repeatability")
def repeatability_cmd(
    runs: Annotated[list[Path], typer.Argument(help="Runs of the same scenario, e.g. three `make demo` runs.")],
    tolerance_pct: Annotated[
        float, typer.Option(help="Largest spread (±%) of a median cost ratio across the runs.")
    ] = 10.0,
) -> None:
    """Do identical runs agree? Per strategy, the spread of its median cost ratio across the runs, and whether
    the tiers hold the same members in every run; exit 1 when they do not."""
    from harness.reporting.repeatability import repeatability

    raise typer.Exit(repeatability(runs, tolerance_pct, console=console))


@app.command("ping")
def ping(bootstrap: BootstrapOpt = None, client_config: ClientConfigOpt = None) -> None:
    """Check that Kafka answers (the embedded broker is started when no --bootstrap is given)."""
    from confluent_kafka.admin import AdminClient

    from harness.kafka.config import resolve_kafka

    target = resolve_kafka(bootstrap, client_config)
    md = AdminClient(target.client_config()).list_topics(timeout=10)
    brokers = ", ".join(f"{b.host}:{b.port}" for b in md.brokers.values())
    print(f"ok {target.bootstrap} brokers=[{brokers}] topics={len(md.topics)}")


# Commands that may have run a JVM adapter and have nothing left to clean up at exit: they end without the
# interpreter's teardown, which JPype's JVM sometimes aborts (exit 134 instead of the real code).
_exits_without_teardown: set[str] = set()


def _exit(code: int) -> NoReturn:
    if _exits_without_teardown:
        from jvm.inprocess import exit_process

        exit_process(code)
    sys.exit(code)


def main() -> None:
    try:
        rc = app(standalone_mode=False)
        _exit(rc if isinstance(rc, int) else 0)
    except (HarnessError, AdapterError, JvmError) as e:
        err_console.print(f"[bold red]error:[/] {e}", highlight=False, soft_wrap=True)
        _exit(getattr(e, "exit_code", 1))
    except typer.Exit as e:
        sys.exit(e.exit_code)
    except typer.Abort:
        err_console.print("aborted")
        sys.exit(130)
    except KeyboardInterrupt:
        err_console.print("interrupted")
        _exit(130)
    except Exception as e:
        # typer bundles its own click: recognise its usage errors by shape, not by class
        show, code = getattr(e, "show", None), getattr(e, "exit_code", None)
        if callable(show) and isinstance(code, int):
            show()
            sys.exit(code)
        raise


if __name__ == "__main__":
    main()
