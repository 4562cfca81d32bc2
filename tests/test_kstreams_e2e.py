"""The reference architecture as a contestant: `harness run` drives the Kafka Streams + MOJO application on
the real broker, on the H2O scenario, and measures it like any Python strategy."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from tests.conftest import ROOT, run_cli


def test_kstreams_mojo_scores_every_record_once_with_the_mojo_reference(
    broker: str, bundles: dict[str, Path], tmp_path: Path
) -> None:
    sc = yaml.safe_load((ROOT / "scenarios" / "maintenance.yaml").read_text())
    # same data and model as the shipped scenario (the bundle is a cache hit); a short load, no search
    sc["adapters"] = [{"name": "kstreams-mojo"}, {"name": "kstreams-mojo", "label": "kstreams-mojo-batch",
                      "options": {"mode": "batch", "batch_size": 32, "batch_max_wait_ms": 5}}]  # fmt: skip
    sc["rounds"] = {"count": 1, "aa_identity": False, "fractions": [0.3], "backlog_s": 0.5, "backlog_min_records": 300}
    f = tmp_path / "maintenance.yaml"
    f.write_text(yaml.safe_dump(sc))
    results = tmp_path / "results"
    r = run_cli(
        "run", str(f), "--bootstrap", broker, "--artifacts", str(ROOT / "artifacts"), "--results", str(results),
        "--no-identity", "--no-report", timeout=600,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    run_dir = Path(r.stdout.strip().splitlines()[-1])
    data = json.loads((run_dir / "results.json").read_text())
    adapters = data["scenarios"][0]["adapters"]
    assert [a["adapter"] for a in adapters] == ["kstreams-mojo", "kstreams-mojo-batch"]
    for a in adapters:
        assert a.get("error") is None, a.get("error")
        assert a["family"] == "generated-code"
        for w in a["windows"]:  # backlog (the app stopped and resumed) and load: every record once
            assert w["scored"] == w["records"] and w["duplicates"] == 0 and w["lost"] == 0, w
            assert w["dead_lettered"] == 0 and w["cpu_us_per_record"] > 0
        (w,) = [w for w in a["windows"] if w["kind"] == "load"]
        assert w["accuracy"]["max_abs_diff"] <= 1e-12  # the same MOJO, the same arithmetic, as the reference
        assert w["accuracy"]["auc"] == w["accuracy"]["auc_reference"]
        assert w["latency"]["p50_ms"] > 0 and a["cost"]["peak_rss_mib"] > 50
