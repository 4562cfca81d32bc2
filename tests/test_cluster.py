"""The embedded three-node cluster (`harness broker start --brokers 3`): three real Apache Kafka nodes in KRaft
combined mode, topics the harness creates replicated three times with min.insync.replicas 2, harness commands
pointed at it with --bootstrap; and the failure the default test run must see survived: the leader of the
input partition hard-killed under exactly-once load, nothing lost, nothing duplicated (the whole replication
matrix runs with `pytest -m faults` or `harness faults --matrix`)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from confluent_kafka.admin import AdminClient, ConfigResource

from harness.faults.pipeline import ClusterEnv
from harness.faults.replication import run_row
from harness.faults.suite import bundle_rows
from harness.kafka import placement
from harness.kafka.cluster import Cluster
from harness.kafka.config import KafkaTarget
from harness.kafka.node import pid_alive
from harness.kafka.topics import ensure_topics
from tests.conftest import ROOT, run_cli


@pytest.fixture(scope="module")
def cluster_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A cluster started by the CLI in a state folder of its own (stopped, and checked gone, at the end)."""
    state = tmp_path_factory.mktemp("cluster-state")
    env = {"HARNESS_STATE_DIR": str(state)}
    r = run_cli("broker", "start", "--brokers", "3", env=env, timeout=400)
    assert r.returncode == 0, r.stderr
    pids = [n.pid for n in Cluster(state).state().nodes]  # type: ignore[union-attr]
    try:
        yield state
    finally:
        r = run_cli("broker", "stop", env=env, timeout=120)
        assert r.returncode == 0, r.stderr
        assert not any(pid_alive(p) for p in pids)
        assert Cluster(state).running() is None
        assert run_cli("broker", "status", env=env).returncode == 3


def _target(state: Path) -> KafkaTarget:
    st = Cluster(state).state()
    assert st is not None
    return KafkaTarget(st.bootstrap, brokers=3)


@pytest.mark.kafka
def test_start_status_and_replication_of_harness_topics(cluster_dir: Path) -> None:
    env = {"HARNESS_STATE_DIR": str(cluster_dir)}
    target = _target(cluster_dir)
    assert len(target.bootstrap.split(",")) == 3
    # idempotent: a second start prints the same address
    r = run_cli("broker", "start", "--brokers", "3", env=env)
    assert r.returncode == 0 and r.stdout.strip() == target.bootstrap, r.stderr
    s = run_cli("broker", "status", env=env)
    assert s.returncode == 0, s.stderr
    lines = s.stdout.splitlines()
    assert lines[0].startswith(f"running {target.bootstrap} brokers=3/3"), s.stdout
    assert sum(" up" in ln for ln in lines[1:]) == 3 and sum("active controller" in ln for ln in lines) == 1
    # the harness's topics get the cluster's durability: replication 3, min.insync.replicas 2, no unclean leader
    ensure_topics(target, {"t-replicated": 2})
    parts = placement.partitions(target, "t-replicated")
    assert [len(p.replicas) for p in parts] == [3, 3] and all(p.fully_replicated for p in parts)
    admin = AdminClient({"bootstrap.servers": target.bootstrap})  # held until the answer came
    (res,) = [f.result(30) for f in admin.describe_configs([ConfigResource("topic", "t-replicated")]).values()]
    assert res["min.insync.replicas"].value == "2" and res["unclean.leader.election.enable"].value == "false"
    # another command, unchanged, against it
    r = run_cli("ping", "--bootstrap", target.bootstrap)
    assert r.returncode == 0 and r.stdout.count("127.0.0.1:") >= 4, r.stdout + r.stderr
    # a single broker's --port does not go with a cluster: one error line
    r = run_cli("broker", "start", "--brokers", "3", "--port", "9999", env=env)
    assert r.returncode != 0 and r.stderr.strip().startswith("error:") and "Traceback" not in r.stderr


@pytest.mark.kafka
def test_input_leader_hard_killed_under_exactly_once_load(
    cluster_dir: Path, bundles: dict[str, Path], tmp_path: Path
) -> None:
    """Kafka's hard_shutdown of the leader, with the scorer in the middle: the node leading both input
    partitions is killed (SIGKILL) while records flow at 200/s and a second scorer joins the group."""
    cluster = Cluster(cluster_dir)
    target = _target(cluster_dir)
    bundle, _, payloads = bundle_rows(bundles["fraud"])
    env = ClusterEnv(cluster, target, bundle, payloads, tmp_path, print, rate_per_s=200.0)
    led = run_row(env, "input-leader-hard-kill", "exactly-once", warm_s=5.0, after_s=12.0)
    print(led)
    assert led.sent >= 200 * 15
    assert led.lost == 0, led
    assert led.duplicates == 0, led
    assert led.misrouted == 0 and led.dead_lettered == 0, led
    assert led.scored == led.sent
    assert "hard kill of node" in led.notes[0] and "input leader" in led.notes[0], led.notes
    # the fault was felt: no input partition had a leader until the controller fenced the dead node
    assert led.timing is not None and led.timing.longest_gap_s > 2.0, led.timing
    # and the cluster is whole again for whatever runs next
    st = cluster.state()
    assert st is not None and all(cluster.node_alive(n.node_id) for n in st.nodes)
    # the group's offsets and the transactions lived through it because they are replicated three times too
    for internal in (placement.OFFSETS_TOPIC, placement.TRANSACTION_LOG):
        parts = placement.partitions(target, internal)
        assert parts and all(len(p.replicas) == 3 and p.fully_replicated for p in parts), internal


@pytest.mark.kafka
def test_harness_run_measures_on_the_cluster(cluster_dir: Path, bundles: dict[str, Path], tmp_path: Path) -> None:
    """`harness run` with --bootstrap on the cluster: an exactly-once contestant in a short round (its backlog
    and load windows), every record accounted for, and results.json says how many brokers it ran on."""
    target = _target(cluster_dir)
    sc = yaml.safe_load((ROOT / "scenarios" / "fraud.yaml").read_text())
    sc["adapters"] = [{"name": "identity", "guarantee": "exactly-once"}]
    sc["rounds"] = {"count": 1, "aa_identity": False, "fractions": [0.3], "backlog_s": 0.5, "backlog_min_records": 300}
    scenario = tmp_path / "fraud.yaml"
    scenario.write_text(yaml.safe_dump(sc))
    r = run_cli(
        "run", str(scenario), "--bootstrap", target.bootstrap, "--artifacts", str(ROOT / "artifacts"),
        "--results", str(tmp_path / "results"), "--no-identity", "--no-report", timeout=600,
        env={"HARNESS_STATE_DIR": str(cluster_dir)},
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    doc = json.loads((Path(r.stdout.strip().splitlines()[-1]) / "results.json").read_text())
    assert doc["environment"]["brokers"] == 3
    (row,) = doc["scenarios"][0]["adapters"]
    assert row.get("error") is None, row.get("error")
    kinds = [w["kind"] for w in row["windows"]]
    assert kinds.count("load") == 1 and kinds.count("backlog") >= 2, kinds
    for w in row["windows"]:  # read_committed on three replicas: every record once, none lost, none twice
        assert w["records"] > 0 and w["scored"] == w["records"] and w["lost"] == 0 and w["duplicates"] == 0, w


def test_a_scenario_can_ask_for_the_cluster() -> None:
    from harness.scenario import Scenario, ScenarioError, load_scenario

    sc = yaml.safe_load((ROOT / "scenarios" / "fraud.yaml").read_text())
    base = Scenario.model_validate(sc)
    assert base.kafka.brokers == 1
    sc["kafka"] = {"brokers": 3}
    three = Scenario.model_validate(sc)
    assert three.kafka.brokers == 3 and three.content_hash() == base.content_hash()  # the same bundle
    sc["kafka"] = {"brokers": 2}
    bad = Path(os.environ.get("TMPDIR", "/tmp")) / "two-brokers.yaml"
    bad.write_text(yaml.safe_dump(sc))
    with pytest.raises(ScenarioError, match="kafka.brokers"):
        load_scenario(bad)
