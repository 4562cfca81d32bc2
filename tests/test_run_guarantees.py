"""`harness run` measures a delivery guarantee as its own row (`guarantee: exactly-once` on an adapter spec),
and the SASL secrets of --client-config never land under results/."""

from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path

import yaml

from adapters.bundle import Bundle
from harness.bench.scorers import KStreamsScorer, LoopProcesses, ScorerSetup, Topics, deployment
from harness.kafka.config import KafkaTarget
from harness.scenario import AdapterSpec, LoopSpec
from tests.conftest import ROOT, run_cli

SECRET = "kmh-S3cret-pa55word"


def test_exactly_once_is_its_own_row_with_its_own_label_and_topics(small_bundle: Path) -> None:
    specs = [
        AdapterSpec(name="onnx"),
        AdapterSpec(name="onnx", guarantee="exactly-once"),
        AdapterSpec(name="rest", guarantee="exactly-once"),
        AdapterSpec(name="onnx", guarantee="exactly-once", label="onnx-eos"),
    ]
    assert [s.display for s in specs] == ["onnx", "onnx (exactly-once)", "rest(onnx) (exactly-once)", "onnx-eos"]
    for i, s in enumerate(specs):
        topics = Topics.for_adapter("abc123", i, s.display)
        for name in (topics.input, topics.output, topics.dlq, topics.group):
            assert re.fullmatch(r"[a-zA-Z0-9._-]+", name), name
    setup = ScorerSetup(
        KafkaTarget("127.0.0.1:1"),
        small_bundle,
        Bundle.open(small_bundle),
        Topics("i", "o", "d", "g"),
        "json",
        LoopSpec(),
    )
    argvs = []
    for s in specs[:3]:
        scorer = deployment(s, setup).scorer
        assert isinstance(scorer, LoopProcesses)
        argvs.append(" ".join(scorer.argv(None)))
    assert "--guarantee at-least-once" in argvs[0]
    assert "--guarantee exactly-once" in argvs[1] and "--guarantee exactly-once" in argvs[2]
    kstreams = deployment(AdapterSpec(name="kstreams-mojo", guarantee="exactly-once"), setup).scorer
    assert isinstance(kstreams, KStreamsScorer) and kstreams.guarantee == "exactly_once_v2"


def test_run_measures_exactly_once_and_keeps_secrets_out_of_results(
    broker: str, bundles: dict[str, Path], tmp_path: Path
) -> None:
    sc = yaml.safe_load((ROOT / "scenarios" / "fraud.yaml").read_text())
    sc["adapters"] = [{"name": "identity", "guarantee": "exactly-once"}]
    sc["rounds"] = {"count": 1, "aa_identity": False, "fractions": [0.3], "backlog_s": 0.5, "backlog_min_records": 300}
    scenario = tmp_path / "fraud.yaml"
    scenario.write_text(yaml.safe_dump(sc))
    client = tmp_path / "client.properties"
    client.write_text(f"sasl.username=kmh-user\nsasl.password={SECRET}\n")
    results = tmp_path / "results"
    temp_before = set(Path(tempfile.gettempdir()).glob("harness-*.properties"))
    r = run_cli(
        "run", str(scenario), "--bootstrap", broker, "--client-config", str(client),
        "--artifacts", str(ROOT / "artifacts"), "--results", str(results), "--no-identity", "--no-report",
        timeout=600,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    run_dir = Path(r.stdout.strip().splitlines()[-1])
    (row,) = json.loads((run_dir / "results.json").read_text())["scenarios"][0]["adapters"]
    assert row["adapter"] == "identity (exactly-once)" and row.get("error") is None
    kinds = [w["kind"] for w in row["windows"]]  # warm-up, round 1 (twice when it met a busy machine), its load
    assert kinds.count("load") == 1 and kinds.count("backlog") >= 2
    for w in row["windows"]:  # read_committed: every record once, none lost, none twice
        assert w["scored"] == w["records"] and w["lost"] == 0 and w["duplicates"] == 0, w
    files = [p for p in results.rglob("*") if p.is_file()]
    assert files, "the run wrote nothing"
    for f in files:
        assert SECRET.encode() not in f.read_bytes(), f"the SASL password landed in {f}"
    # the private copy handed to the scoring loop is gone once the run is over
    assert set(Path(tempfile.gettempdir()).glob("harness-*.properties")) <= temp_before
    assert SECRET not in r.stdout + r.stderr
