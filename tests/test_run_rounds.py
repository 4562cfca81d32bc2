"""`harness run` end to end on the real broker: a warm-up round and randomized rounds, backlog and load windows
for every contestant, the A/A identity pair, and a results.json and report that reporting reads back."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from harness.bench.procs import cpu_halves
from harness.bench.rounds import control_slots
from harness.results.schema import SCHEMA_VERSION, load_results
from tests.conftest import run_cli, small_scenario


@pytest.mark.parametrize("pairing", ["concurrent", "sequential"])
def test_run_measures_every_contestant_in_randomized_rounds(
    broker: str, small_bundle: Path, tmp_path: Path, pairing: str
) -> None:
    f = small_scenario(
        tmp_path / "rounds.yaml",
        "rounds",
        adapters=[{"name": "onnx"}],
        rounds={"count": 2, "aa_identity": True, "seed": 11, "backlog_s": 0.5, "pairing": pairing,
                "backlog_min_records": 300, "fractions": [0.3], "load_window_s": 1.0, "load_warmup_s": 0.2},
        # about the rounds' bookkeeping: a busy CI host must not make every window "busy" and measured again
        interference={"other_cpu_pct": 10000, "steal_pct": 100},
    )  # fmt: skip
    results = tmp_path / "results"
    # sequential: the session's broker found as this machine's embedded one (HARNESS_STATE_DIR), so that the
    # run pins the CPUs (`rounds.pin_cpus`); concurrent: named by --bootstrap, a broker the run may not pin
    named = ["--bootstrap", broker] if pairing == "concurrent" else []
    r = run_cli(
        "run", str(f), *named, "--artifacts", str(small_bundle.parent.parent),
        "--results", str(results), timeout=900,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    assert "round 2/2" in r.stderr and "left" in r.stderr  # progress: round, contestant, time left
    run_dir = Path(r.stdout.strip().splitlines()[-1])
    raw = json.loads((run_dir / "results.json").read_text())
    assert raw["schema"] == SCHEMA_VERSION
    out = raw["scenarios"][0]
    assert out["method"] == "rounds" and out["control"] == "identity"
    halves = cpu_halves()  # the embedded broker on one half of the CPUs, the contestants on the other
    if named or halves is None:
        assert "pinned" not in out["round_settings"] and "CPUs not pinned" in r.stderr
    else:
        assert out["round_settings"]["pinned"] == {"broker": sorted(halves[1]), "contestants": sorted(halves[0])}
        assert all(set(os.sched_getaffinity(pid)) == set(os.sched_getaffinity(0)) for pid in _broker_pid())
    names = ["identity", "onnx", "identity (A/A)"]
    assert [a["adapter"] for a in out["adapters"]] == names
    # a warm-up round and two counted rounds, each a permutation of the contestants (recorded as measured)
    orders = out["round_orders"]
    assert [o["warmup"] for o in orders] == [True, False, False]
    assert all(sorted(o["backlog_order"]) == sorted(names) for o in orders)
    # the A/A twin is loaded in no window: it is there for the cost tiers
    assert all(sorted(o["load_order"]) == sorted(names[:2]) for o in orders[1:])
    for a in out["adapters"]:
        assert a["error"] is None, a["error"]
        own = [w for w in a["windows"] if w["kind"] == "backlog" and not w["control"]]
        load = [w for w in a["windows"] if w["kind"] == "load"]
        counted = [w for w in own if not w["warmup"] and not w["superseded"]]
        assert any(w["warmup"] for w in own) and [w["round"] for w in counted] == [1, 2]
        assert len(load) == (0 if a["adapter"] == "identity (A/A)" else 2)
        for w in own:
            assert w["cpu_us_per_record"] > 0 and w["rows_per_s"] > 0, w
            assert w["warmup"] or w["span_us_per_record"], w  # the sub-spans' costs are kept beside the window
            assert w["lost"] == 0 and w["scored"] == w["records"], w
            assert w["interference"] is not None  # every window says what else ran
        for w in counted:  # its ratio taken to the control beside it (concurrent) or in its round (sequential)
            assert w["control_us_per_record"] > 0
        for w in load:
            assert w["latency"]["measured"] > 0 and w["lost"] == 0 and w["fraction"] == 0.3
        assert a["cost"]["rounds"] == 2 and len(a["fractions"]) == (0 if a["adapter"] == "identity (A/A)" else 1)
    controls = [w for w in out["adapters"][0]["windows"] if w["control"]]
    twin_controls = [w for w in out["adapters"][2]["windows"] if w["control"]]
    if pairing == "sequential":  # the control: `rounds.controls` windows (3) spread through every round
        assert len(controls) == 2 * len(control_slots(len(names), 3)) == 6 and not twin_controls
    else:  # beside each other contestant, every round; the twin beside the control in the control's own slot
        assert len(controls) == 2 * (len(names) - 1) and len(twin_controls) == 2
        assert out["round_settings"]["pairing"] == "concurrent"
    assert all(w["cpu_us_per_record"] > 0 for w in controls + twin_controls)
    assert 0.5 < out["adapters"][0]["cost"]["ratio"]["median"] < 2.0  # the identity against its own control
    onnx = out["adapters"][1]["cost"]
    assert onnx["ratio"]["n"] == 2 and onnx["ratio"]["median"] > 0
    assert out["ceilings"]["loop_cpu_us_per_record"] > 0 and out["ceilings"]["loop_capacity_per_s"] > 0
    # the native relay on the same broker: the Kafka client's own limit, beside the loop's identity figure
    assert out["ceilings"]["relay_per_s"] > 0 and out["ceilings"]["relay_cpu_us_per_record"] > 0
    # the report reads the same classes back and places every contestant
    res = load_results(run_dir)
    assert all(a.cost is not None for a in res.scenarios[0].adapters)
    md = (run_dir / "report.md").read_text()
    assert "### Verdict: tiers by cost" in md and "**Rounds:** 2 counted after a warm-up round" in md
    assert "| 1 | identity |" in md


def _broker_pid() -> list[int]:
    """The session broker's pid (the embedded broker of HARNESS_STATE_DIR, which the `broker` fixture set)."""
    from harness.kafka.broker import Broker

    st = Broker().running()
    assert st is not None
    return [st.pid]
