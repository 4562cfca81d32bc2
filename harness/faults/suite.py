"""Run the fault cases in both guarantees on a broker of the suite's own, and print the table.

    harness faults [--case kill9|broker-restart|server-restart|poison|nan-raise|hang|outage ...]
                   [--guarantee at-least-once|exactly-once ...] [--backlog N] [--bundle B]
    python -m harness.faults     (the same)

Exit code 0 when every row holds (lost 0, nothing misrouted, duplicates 0 in exactly-once), 1 otherwise.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from harness.faults.cases import CASES, Env
from harness.faults.ledger import Ledger
from harness.faults.processes import FaultError
from harness.kafka.broker import Broker
from harness.scoring.settings import GUARANTEES


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


def make_env(work: Path, backlog: int, bundle: Path | None, log: Callable[[str], None]) -> tuple[Env, Broker]:
    """Start the suite's broker and load the bundle's rows; returns the env and the broker (to stop)."""
    from adapters.bundle import Bundle
    from harness.kafka.config import KafkaTarget
    from harness.scoring import wire

    if bundle is None:
        bundle = default_bundle(DEFAULT_SCENARIO)
    broker = Broker(work / "state")
    st = broker.start(heap_mb=768)
    b = Bundle.open(bundle)
    X, _, _ = b.reference()
    codec = wire.FeatureCodec(b.feature_names, "json")
    env = Env(
        broker, KafkaTarget(st.bootstrap), bundle, b.feature_names, [codec.encode(r) for r in X], work, backlog, log
    )
    return env, broker


def run(
    cases: Sequence[str], guarantees: Sequence[str], backlog: int, bundle: Path | None, log: Callable[[str], None]
) -> list[Row]:
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="harness-faults-") as tmp:
        env, broker = make_env(Path(tmp), backlog, bundle, log)
        try:
            for name in cases:
                for g in guarantees:
                    title, case = CASES[name]
                    log(f"{title} ({g}) ...")
                    t0 = time.monotonic()
                    try:
                        row = Row(title, g, case(env, g), time.monotonic() - t0)
                    except FaultError as e:
                        row = Row(title, g, None, time.monotonic() - t0, str(e))
                    rows.append(row)
                    log(format_row(row))
        finally:
            with contextlib.suppress(Exception):
                broker.stop()
    return rows


HEADER = (
    f"{'fault':<34} {'guarantee':<14} {'sent':>8} {'scored':>8} {'dead-lettered':>13} {'lost':>6} "
    f"{'duplicates':>10}  verdict"
)


def format_row(r: Row) -> str:
    if r.ledger is None:
        return f"{r.case:<34} {r.guarantee:<14} error: {r.error}"
    led = r.ledger
    verdict = "ok" if r.holds() else "FAIL"
    if led.misrouted:
        verdict += f" ({led.misrouted} misrouted)"
    line = (
        f"{r.case:<34} {r.guarantee:<14} {led.sent:>8,} {led.scored:>8,} {led.dead_lettered:>13,} "
        f"{led.lost:>6,} {led.duplicates:>10,}  {verdict}  [{r.seconds:.0f} s; expected dead letters "
        f"{led.expected_dead_letters:,}]"
    )
    return line + "".join(f"\n    {n}" for n in led.notes)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="harness faults", description=__doc__.splitlines()[0])
    ap.add_argument("--case", action="append", choices=list(CASES), help="only these cases (repeatable)")
    ap.add_argument("--guarantee", action="append", choices=list(GUARANTEES), help="only these guarantees")
    ap.add_argument("--backlog", type=int, default=100_000, help="records in the kill -9 backlog")
    ap.add_argument("--bundle", type=Path, default=None, help="bundle to score (default: the fraud scenario's)")
    a = ap.parse_args(argv)

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    rows = run(a.case or list(CASES), a.guarantee or list(GUARANTEES), a.backlog, a.bundle, log)
    print(HEADER)
    for r in rows:
        print(format_row(r))
    return 0 if all(r.holds() for r in rows) else 1
