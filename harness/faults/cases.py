"""The faults, one function each: set up topics, send a plan of records, inflict the fault, account for every
record (ledger.py). Each runs in either guarantee."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import orjson

from harness.faults import chaos
from harness.faults.ledger import RESULT, Ledger, Outcomes
from harness.faults.processes import CaseTopics, Process, Record, Sender, model_server, options, scorer
from harness.kafka.broker import Broker, free_port
from harness.kafka.config import KafkaTarget
from harness.kafka.topics import ensure_topics

CHAOS = "harness.faults.chaos:ChaosAdapter"
PARTITIONS = 2


@dataclass
class Env:
    """What every case shares: the suite's own broker (restartable), a bundle and its rows, a work folder."""

    broker: Broker
    target: KafkaTarget
    bundle: Path
    feature_names: list[str]
    payloads: list[bytes]  # the bundle's reference rows, encoded as JSON
    work: Path
    backlog: int  # records in the kill -9 backlog
    log: Callable[[str], None]


@dataclass
class Plan:
    """The records a case sends and what each must become ("result", or a dead letter's stage)."""

    records: list[Record]
    expected: dict[str, str]

    @classmethod
    def build(cls, items: Sequence[tuple[bytes | None, str]], prefix: str = "f") -> Plan:
        records: list[Record] = []
        expected: dict[str, str] = {}
        for i, (value, want) in enumerate(items):
            rid = f"{prefix}-{i}"
            records.append((str(i).encode(), value, [("rid", rid.encode())]))
            expected[rid] = want
        return cls(records, expected)


class Case:
    """One case's topics, outcome reader and processes; `finish` settles and returns the ledger."""

    def __init__(self, env: Env, name: str, guarantee: str) -> None:
        self.env, self.name, self.guarantee = env, name, guarantee
        self.topics = CaseTopics.new(name, guarantee, uuid.uuid4().hex[:6])
        t = self.topics
        ensure_topics(env.target, {t.input: PARTITIONS, t.output: PARTITIONS, t.dlq: PARTITIONS})
        self.outcomes = Outcomes(env.target, t.output, t.dlq)
        self.notes: list[str] = []
        self._n = 0

    def scorer(self, adapter: str = "native", *extra: str) -> Process:
        self._n += 1
        name = f"{self.name}-{self.guarantee}-scorer{self._n}"
        env = self.env
        return scorer(name, env.target, env.bundle, self.topics, adapter, self.guarantee, env.work, extra)

    def send(self, plan: Plan, rate_per_s: float = 0.0) -> Sender:
        return Sender(self.env.target, self.topics.input, plan.records, rate_per_s).start()

    def finish(self, plan: Plan, *running: Process) -> Ledger:
        self.outcomes.wait_settled(len(plan.expected), idle_s=40, timeout_s=600)
        for p in running:
            code = p.stop()
            if code != 0:
                self.notes.append(f"{p.name} exited {code}: {p.log_tail(1)}")
        self.outcomes.poll(1.0)
        led = self.outcomes.ledger(plan.expected)
        led.notes = self.notes + led.notes
        self.outcomes.close()
        return led


def good_rows(env: Env, n: int) -> list[tuple[bytes | None, str]]:
    return [(env.payloads[i % len(env.payloads)], RESULT) for i in range(n)]


def chaos_row(env: Env, kind: float, x: float) -> bytes:
    f = env.feature_names
    return orjson.dumps({f[0]: kind, f[1]: x})


# ------------------------------------------------------------------------------------------------ the cases


def kill_twice_in_a_backlog(env: Env, guarantee: str) -> Ledger:
    """kill -9 of the scorer at ~30% and ~60% of a backlog, then a scorer that finishes it."""
    case = Case(env, "kill9", guarantee)
    plan = Plan.build(good_rows(env, env.backlog))
    case.send(plan).join()
    for share in (0.3, 0.6):
        p = case.scorer()
        while case.outcomes.accounted() < share * env.backlog and p.proc.poll() is None:
            case.outcomes.poll(0.05)
        p.kill9()
        case.notes.append(f"killed at {case.outcomes.accounted():,} accounted")
    last = case.scorer("native", "--idle-exit-s", "8")
    last.wait(600)
    return case.finish(plan)


def broker_restart(env: Env, guarantee: str) -> Ledger:
    """The broker stopped and started again on the same port while records flow (300/s for 20 s)."""
    case = Case(env, "broker-restart", guarantee)
    plan = Plan.build(good_rows(env, 6000))
    p = case.scorer()
    sender = case.send(plan, rate_per_s=300)
    time.sleep(5)
    port = env.broker.running().port if env.broker.running() else None  # type: ignore[union-attr]
    env.broker.stop()
    time.sleep(5)
    env.broker.start(port=port)
    sender.join()
    if p.proc.poll() is not None:
        case.notes.append(f"the scorer died with the broker (exit {p.proc.returncode}): {p.log_tail(1)}")
    return case.finish(plan, p)


def model_server_restart(env: Env, guarantee: str) -> Ledger:
    """The model server behind `rest` killed (kill -9) and restarted 4 s later on the same port."""
    case = Case(env, "server-restart", guarantee)
    port = free_port()
    server = model_server(f"server-{guarantee}", env.bundle, "native", port, env.work)
    rest = options(url=f"http://127.0.0.1:{port}", timeout_s=1, retries=1, backoff_s=0.1)
    plan = Plan.build(good_rows(env, 4500))
    p = case.scorer("rest", *rest)
    sender = case.send(plan, rate_per_s=300)
    time.sleep(4)
    server.kill9()
    time.sleep(4)
    server = model_server(f"server-{guarantee}-again", env.bundle, "native", port, env.work)
    sender.join()
    ledger = case.finish(plan, p)
    server.stop()
    return ledger


def poison_values(env: Env) -> list[bytes | None]:
    f0, f1 = env.feature_names[0], env.feature_names[1]
    return [
        b"{not json",
        b"",
        None,  # no value at all
        b"[1, 2, 3]",
        b'"a string"',
        orjson.dumps({"no_such_feature": 1.0}),
        orjson.dumps({f0: "twelve"}),
        orjson.dumps({f0: True}),
        orjson.dumps({f0: {"x": 1}}),
        orjson.dumps({f1: [1, 2]}),
        f'{{"{f0}": 1e400}}'.encode(),  # overflows to infinity
        f'{{"{f0}": NaN}}'.encode(),
        b"\xff\xfe\x00 not utf-8",
        bytes(8 * len(env.feature_names)),  # an f64le row sent to a json scorer
    ]


def poison_records(env: Env, guarantee: str) -> Ledger:
    """Every kind of record that cannot be decoded, one in ten, among good records."""
    case = Case(env, "poison", guarantee)
    poison = poison_values(env)
    items = [(poison[(i // 10) % len(poison)], "decode") if i % 10 == 0 else (env.payloads[i % 500], RESULT)
             for i in range(3000)]  # fmt: skip
    plan = Plan.build(items)
    case.send(plan).join()
    p = case.scorer("native", "--idle-exit-s", "5")
    p.wait(300)
    return case.finish(plan)


def misbehaving_engine(env: Env, guarantee: str) -> Ledger:
    """An engine that returns NaN or inf for some rows and raises on others (ValueError on a row, RuntimeError
    on any batch holding a fragile row)."""
    case = Case(env, "nan-raise", guarantee)
    kinds = [(chaos.NAN, "score"), (chaos.INF, "score"), (chaos.RAISE, "score"), (chaos.FRAGILE, RESULT)]
    items = [(chaos_row(env, *_kind(kinds, i)), _want(kinds, i)) for i in range(3000)]
    plan = Plan.build(items)
    case.send(plan).join()
    p = case.scorer(CHAOS, "--idle-exit-s", "5")
    p.wait(300)
    return case.finish(plan)


def _kind(kinds: list[tuple[float, str]], i: int) -> tuple[float, float]:
    return (kinds[(i // 7) % len(kinds)][0] if i % 7 == 0 else 0.0), i / 1000


def _want(kinds: list[tuple[float, str]], i: int) -> str:
    return kinds[(i // 7) % len(kinds)][1] if i % 7 == 0 else RESULT


def hung_engine(env: Env, guarantee: str) -> Ledger:
    """An engine that hangs for good once (the watchdog ends the scorer, exit 3; a new one takes over) and
    that stalls 2 s on a few rows (shorter than the timeout: waited for)."""
    case = Case(env, "hang", guarantee)
    hang_file = env.work / f"hang-{guarantee}"
    hang_file.touch()
    items = [(chaos_row(env, chaos.HANG if i % 500 == 250 else 0.0, i / 1000), RESULT) for i in range(2000)]
    plan = Plan.build(items)
    case.send(plan).join()
    # --warm-s 0: the hang is meant for a record in the backlog (a warm-up that hangs ends the scorer
    # the same way, before it is ready: tests/test_scoring_watchdog.py)
    chaos_opts = [*options(hang_file=hang_file, hang_s=2), "--warm-s", "0"]
    first = case.scorer(CHAOS, *chaos_opts, "--engine-timeout-s", "3")
    code = first.wait(60)
    case.notes.append(f"hung scorer exited {code}" + (f" ({first.errors()[0]})" if first.errors() else ""))
    second = case.scorer(CHAOS, *chaos_opts, "--engine-timeout-s", "3", "--idle-exit-s", "5")
    second.wait(300)
    return case.finish(plan)


def engine_outage(env: Env, guarantee: str) -> Ledger:
    """The engine unavailable for 4 s mid-run (EngineUnavailable): paused and resumed, nothing dead-lettered."""
    case = Case(env, "outage", guarantee)
    down = env.work / f"down-{guarantee}"
    plan = Plan.build([(chaos_row(env, 0.0, i / 1000), RESULT) for i in range(3000)])
    p = case.scorer(CHAOS, *options(down_file=down))
    sender = case.send(plan, rate_per_s=300)
    time.sleep(3)
    down.touch()
    time.sleep(4)
    down.unlink()
    sender.join()
    return case.finish(plan, p)


CASES: dict[str, tuple[str, Callable[[Env, str], Ledger]]] = {
    "kill9": ("kill -9 twice in a backlog", kill_twice_in_a_backlog),
    "broker-restart": ("broker stop/start", broker_restart),
    "server-restart": ("model server kill/restart (rest)", model_server_restart),
    "poison": ("poison records (14 kinds)", poison_records),
    "nan-raise": ("engine NaN/inf/exceptions", misbehaving_engine),
    "hang": ("engine hangs", hung_engine),
    "outage": ("engine outage (paused)", engine_outage),
}
