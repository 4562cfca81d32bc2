"""Run the fault cases in both guarantees and print the table: the single-broker cases (cases.py) on a broker
of the suite's own, the replication matrix (replication.py) on a three-node cluster of its own.

    harness faults [--case NAME ...] [--matrix] [--guarantee at-least-once|exactly-once ...] [--backlog N]
                   [--bundle B] [--rate R]
    harness faults --soak 30m [--seed S] [--rate R] [--fault-every 60]      (soak.py)
    python -m harness.faults     (the same)

Exit code 0 when every row holds (lost 0, nothing misrouted, duplicates 0 in exactly-once), 1 otherwise.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import HarnessError
from harness.faults.cases import CASES, Env
from harness.faults.ledger import Ledger
from harness.faults.pipeline import ClusterEnv
from harness.faults.processes import FaultError
from harness.faults.replication import MATRIX
from harness.kafka.broker import Broker
from harness.kafka.cluster import Cluster
from harness.scoring.settings import GUARANTEES

ALL_CASES = [*CASES, *MATRIX]


@dataclass
class Row:
    case: str
    guarantee: str
    ledger: Ledger | None
    seconds: float
    error: str | None = None

    def holds(self) -> bool:
        return self.ledger is not None and self.ledger.holds(self.guarantee == "exactly-once")


DEFAULT_SCENARIO = Path("scenarios") / "fraud.yaml"


def default_bundle(scenario: Path) -> Path:
    """The bundle of `scenario` (built into artifacts/ beside the working directory, or reused from there)."""
    from harness.modelbuild.pipeline import build
    from harness.scenario import load_scenario

    if not scenario.is_file():
        raise FaultError(f"no scenario at {scenario}: give --bundle, or --scenario with a scenario file")
    return build(load_scenario(scenario), artifacts=Path("artifacts")).bundle_dir


def bundle_rows(bundle: Path | None) -> tuple[Path, list[str], list[bytes]]:
    """The bundle (the fraud scenario's by default), its feature names and its reference rows as JSON."""
    from adapters.bundle import Bundle
    from harness.scoring import wire

    if bundle is None:
        bundle = default_bundle(DEFAULT_SCENARIO)
    b = Bundle.open(bundle)
    X, _, _ = b.reference()
    codec = wire.FeatureCodec(b.feature_names, "json")
    return bundle, b.feature_names, [codec.encode(r) for r in X]


def make_env(work: Path, backlog: int, bundle: Path | None, log: Callable[[str], None]) -> tuple[Env, Broker]:
    """Start the suite's broker and load the bundle's rows; returns the env and the broker (to stop)."""
    from harness.kafka.config import KafkaTarget

    bundle, features, payloads = bundle_rows(bundle)
    broker = Broker(work / "state")
    st = broker.start(heap_mb=768)
    env = Env(broker, KafkaTarget(st.bootstrap), bundle, features, payloads, work, backlog, log)
    return env, broker


@contextlib.contextmanager
def cluster_env(
    work: Path, bundle: Path | None, log: Callable[[str], None], rate_per_s: float | None = None
) -> Iterator[ClusterEnv]:
    """The suite's own three-node cluster (each node in a cgroup of its own when isolation can run here) and the
    bundle's rows; the cluster is stopped and the isolation rules removed on the way out."""
    from harness.faults import network
    from harness.kafka.config import KafkaTarget

    bundle, _, payloads = bundle_rows(bundle)
    missing = network.unavailable()
    isolation = network.Isolation() if missing is None else None
    cluster = Cluster(work / "state", launch_hook=isolation.launch_hook if isolation else None)
    try:
        st = cluster.start(3)
        log(f"cluster of 3 nodes at {st.bootstrap}" + (f" (no isolation row: {missing})" if missing else ""))
        env = ClusterEnv(cluster, KafkaTarget(st.bootstrap, brokers=3), bundle, payloads, work, log, isolation, missing)
        if rate_per_s:
            env.rate_per_s = rate_per_s
        yield env
    finally:
        with contextlib.suppress(Exception):
            cluster.stop()
        if isolation is not None:
            isolation.close()


def run(
    cases: Sequence[str],
    guarantees: Sequence[str],
    backlog: int,
    bundle: Path | None,
    log: Callable[[str], None],
    rate_per_s: float | None = None,
) -> list[Row]:
    rows: list[Row] = []
    single = [c for c in cases if c in CASES]
    matrix = [c for c in cases if c in MATRIX]
    with tempfile.TemporaryDirectory(prefix="harness-faults-") as tmp:
        if single:
            env, broker = make_env(Path(tmp), backlog, bundle, log)
            try:
                rows += _run_cases(single, guarantees, lambda name, g: CASES[name], env, log)
            finally:
                with contextlib.suppress(Exception):
                    broker.stop()
        if matrix:
            with cluster_env(Path(tmp) / "cluster", bundle, log, rate_per_s) as cenv:
                rows += _run_cases(matrix, guarantees, lambda name, g: MATRIX[name], cenv, log)
    return rows


def _run_cases(
    names: Sequence[str],
    guarantees: Sequence[str],
    lookup: Callable[[str, str], tuple[str, Callable[[Any, str], Ledger]]],
    env: Any,
    log: Callable[[str], None],
) -> list[Row]:
    rows = []
    for name in names:
        for g in guarantees:
            title, case = lookup(name, g)
            log(f"{title} ({g}) ...")
            t0 = time.monotonic()
            try:
                row = Row(title, g, case(env, g), time.monotonic() - t0)
            except (FaultError, HarnessError) as e:  # a broker that did not come back, a topic not created...
                row = Row(title, g, None, time.monotonic() - t0, str(e))
            rows.append(row)
            log(format_row(row))
    return rows


HEADER = (
    f"{'fault':<34} {'guarantee':<14} {'sent':>8} {'scored':>8} {'dead-lettered':>13} {'lost':>6} "
    f"{'duplicates':>10} {'longest gap':>11} {'p99 around':>10}  verdict"
)


def format_row(r: Row) -> str:
    if r.ledger is None:
        return f"{r.case:<34} {r.guarantee:<14} error: {r.error}"
    led = r.ledger
    verdict = "ok" if r.holds() else "FAIL"
    if led.misrouted:
        verdict += f" ({led.misrouted} misrouted)"
    gap = p99 = "–"
    if led.timing is not None:
        gap = f"{led.timing.longest_gap_s:.1f} s"
        p99 = "–" if led.timing.p99_around_ms is None else f"{led.timing.p99_around_ms / 1000:.2f} s"
    line = (
        f"{r.case:<34} {r.guarantee:<14} {led.sent:>8,} {led.scored:>8,} {led.dead_lettered:>13,} "
        f"{led.lost:>6,} {led.duplicates:>10,} {gap:>11} {p99:>10}  {verdict}  [{r.seconds:.0f} s; expected "
        f"dead letters {led.expected_dead_letters:,}]"
    )
    return line + "".join(f"\n    {n}" for n in led.notes)


def soak(
    duration: str,
    seed: int,
    rate_per_s: float | None,
    fault_every_s: float,
    bundle: Path | None,
    results: Path,
    log: Callable[[str], None],
) -> int:
    """The soak (soak.py) on a cluster of its own; prints the account, the recovery per fault kind, the faults
    and the timeline; writes them to results/<soak-id>/. Exit 0 when nothing was lost (nor duplicated in
    exactly-once) and every fault was carried out."""
    from harness.faults import soak as soak_mod

    try:
        seconds = soak_mod.parse_duration(duration)
    except ValueError as e:
        raise FaultError(str(e)) from None
    plan = soak_mod.SoakPlan(duration_s=seconds, seed=seed, fault_every_s=fault_every_s)
    if rate_per_s:
        plan.rate_per_s = rate_per_s
    if seconds < plan.warm_s + plan.tail_s:
        raise FaultError(f"a soak needs at least {plan.warm_s + plan.tail_s:.0f} s (warm-up and tail)")
    with tempfile.TemporaryDirectory(prefix="harness-soak-") as tmp, cluster_env(Path(tmp), bundle, log) as env:
        r = soak_mod.run_soak(env, plan, log)
    folder = soak_mod.write(r, results / (time.strftime("%Y%m%d-%H%M%S", time.gmtime(r.started_at)) + "-soak"))
    for block in (soak_mod.account_lines(r), soak_mod.recovery_lines(r), soak_mod.fault_lines(r),
                  soak_mod.timeline_lines(r)):  # fmt: skip
        print("\n".join(block) + "\n")
    log(f"soak written to {folder}")
    return 0 if r.holds() else 1


def execute(
    cases: Sequence[str] | None,
    matrix_only: bool,
    guarantees: Sequence[str] | None,
    backlog: int,
    bundle: Path | None,
    rate_per_s: float | None,
    log: Callable[[str], None],
) -> int:
    """Run the chosen cases (all of them by default; only the replication matrix with `matrix_only`), print the
    table; 0 when every row holds."""
    chosen = list(cases or (MATRIX if matrix_only else ALL_CASES))
    rows = run(chosen, guarantees or list(GUARANTEES), backlog, bundle, log, rate_per_s)
    print(HEADER)
    for r in rows:
        print(format_row(r))
    return 0 if all(r.holds() for r in rows) else 1


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="harness faults", description=__doc__.splitlines()[0])
    ap.add_argument("--case", action="append", choices=ALL_CASES, help="only these cases (repeatable)")
    ap.add_argument("--matrix", action="store_true", help="only the replication matrix (three-node cluster)")
    ap.add_argument("--guarantee", action="append", choices=list(GUARANTEES), help="only these guarantees")
    ap.add_argument("--backlog", type=int, default=100_000, help="records in the kill -9 backlog")
    ap.add_argument("--bundle", type=Path, default=None, help="bundle to score (default: the fraud scenario's)")
    ap.add_argument("--rate", type=float, default=None, help="records/s of the matrix's and the soak's senders")
    ap.add_argument("--soak", default=None, help="run the soak for this long instead (e.g. 30m)")
    ap.add_argument("--seed", type=int, default=1, help="the soak's fault schedule")
    ap.add_argument("--fault-every", type=float, default=60.0, help="seconds between the soak's faults (±25%%)")
    ap.add_argument("--results", type=Path, default=Path("results"), help="where the soak's folder is written")
    a = ap.parse_args(argv)

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    try:
        if a.soak:
            return soak(a.soak, a.seed, a.rate, a.fault_every, a.bundle, a.results, log)
        return execute(a.case, a.matrix, a.guarantee, a.backlog, a.bundle, a.rate, log)
    except FaultError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
