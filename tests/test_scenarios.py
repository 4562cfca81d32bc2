"""The three shipped scenarios build end to end, every format passes the parity gate, and every adapter
reproduces the bundle's reference predictions (rows with NaN included), in process and through REST."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from adapters.bundle import Bundle
from adapters.errors import BundleError
from adapters.registry import adapter_class
from harness.modelbuild.export_onnx import float32_flip_rows
from harness.modelbuild.ir import from_dict
from harness.modelbuild.pipeline import build, verify_bundle
from harness.scenario import load_scenario
from tests.conftest import HARNESS, ROOT, SCENARIOS, run_cli


@pytest.mark.parametrize("name", SCENARIOS)
def test_every_format_passes_the_parity_gate(bundles: dict[str, Path], name: str) -> None:
    m = Bundle.open(bundles[name]).manifest
    sc = load_scenario(ROOT / "scenarios" / f"{name}.yaml")
    assert set(m["formats"]) == {"native", "ir", *sc.formats}
    assert m["data"]["holdout_rows_with_nan"] > 0  # missing values are exercised on purpose
    for fmt, info in m["formats"].items():
        par = info["parity"]
        assert par["passed"] and par["max_abs_diff"] <= par["tolerance"], (fmt, par)
        assert par["rows"] == m["data"]["holdout_rows"] and par["rows_with_nan"] > 0
        if fmt != "onnx" or info.get("input_dtype") == "float64":
            assert par["tolerance"] <= 1e-9 and par["excluded_rows"] == 0


@pytest.mark.parametrize("name", SCENARIOS)
def test_every_adapter_reproduces_the_reference(bundles: dict[str, Path], name: str) -> None:
    b = Bundle.open(bundles[name])
    X, _, p = b.reference()
    nan_rows = np.isnan(X).any(axis=1)
    ir = from_dict(json.loads((b.root / "model.ir.json").read_text()))
    for fmt in [f for f in b.formats() if f != "ir"]:
        with adapter_class(fmt).load(b) as a:
            got = a.predict(X)
        diff = np.abs(got - p)
        if fmt == "onnx" and b.format_info("onnx").get("input_dtype") != "float64":
            flips = float32_flip_rows(ir, X)
            assert diff[~flips].max() <= 1e-5, fmt
        else:
            assert diff.max() <= 1e-9, (fmt, diff.max())
        assert diff[nan_rows].max() <= 1e-5, fmt


def test_second_build_is_a_cache_hit(bundles: dict[str, Path], artifacts: Path) -> None:
    sc = load_scenario(ROOT / "scenarios" / "cross_sell.yaml")
    t = time.perf_counter()
    res = build(sc, artifacts=artifacts, log=lambda m: None)
    assert res.cache_hit and res.bundle_dir == bundles["cross_sell"]
    assert time.perf_counter() - t < 5.0


def test_tampered_bundle_is_refused(bundles: dict[str, Path], tmp_path: Path) -> None:
    copy = tmp_path / "b"
    shutil.copytree(bundles["cross_sell"], copy)
    native = copy / Bundle.open(copy).format_info("native")["file"]
    native.write_bytes(native.read_bytes() + b"\0")
    with pytest.raises(BundleError, match="was changed"):
        verify_bundle(copy)
    with pytest.raises(BundleError, match="was changed"):
        adapter_class("native").load(copy)
    (copy / "model.pmml").unlink()
    with pytest.raises(BundleError, match="missing"):
        adapter_class("pmml").load(copy)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize(
    "name,served",
    [("fraud", a) for a in ("native", "onnx", "codegen-c", "pmml", "pfa")] + [("maintenance", "h2o-mojo")],
)
def test_rest_against_harness_serve(bundles: dict[str, Path], name: str, served: str) -> None:
    port = _free_port()
    server = subprocess.Popen(
        [*HARNESS, "serve", "--bundle", str(bundles[name]), "--adapter", served, "--port", str(port)],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/v2/health/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert server.poll() is None, server.stderr.read() if server.stderr else ""
            assert time.monotonic() < deadline, "server not ready"
            time.sleep(0.2)
        b = Bundle.open(bundles[name])
        X, _, _ = b.reference()
        with adapter_class(served).load(b) as local:
            expected = local.predict(X[:300])
        with adapter_class("rest").load(b, url=url, max_rows_per_request=128) as rest:
            got = rest.predict(X[:300])
            assert np.array_equal(got, expected)  # float64 round-trips JSON exactly
            one = rest.predict(X[:1])
            assert one[0] == expected[0]
    finally:
        server.terminate()
        server.wait(20)


def test_bad_scenario_files_name_the_key(tmp_path: Path) -> None:
    good = (ROOT / "scenarios" / "fraud.yaml").read_text()
    cases = {
        "unknown key": (good.replace("label: label", "labl: label"), "key 'labl': unknown key"),
        "bad value": (good.replace("count: 5,", "count: 0,"), "key 'rounds.count'"),
        "bad trainer": (good.replace("trainer: lightgbm", "trainer: xgb"), "key 'model.trainer'"),
        "not yaml": ("name: [unclosed", "not valid YAML"),
    }
    for what, (text, expected) in cases.items():
        f = tmp_path / f"{what.replace(' ', '_')}.yaml"
        f.write_text(text)
        r = run_cli("build", str(f), "--artifacts", str(tmp_path / "a"))
        assert r.returncode == 2, (what, r.stderr)
        assert expected in r.stderr, (what, r.stderr)
        assert "Traceback" not in r.stderr
