"""Closed endpoints: `harness serve` with a bearer token answers 401 with a body to a request without it or with a
wrong one (a real server on loopback, its own process), the health probes stay open; the scorer's metrics and
health port binds to loopback unless an address is given."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import httpx
import pytest

from adapters.bundle import Bundle
from adapters.errors import AdapterError
from adapters.registry import adapter_class
from harness.scoring.metrics import Health, MetricsServer, ScoreMetrics
from harness.scoring.settings import ScorerSettings
from tests.conftest import HARNESS, ROOT
from tests.test_rest import subprocess_server


def _body(bundle: Path) -> dict:  # type: ignore[type-arg]
    X, _, _ = Bundle.open(bundle).reference()
    body = {"inputs": [{"name": "input", "shape": [2, X.shape[1]], "datatype": "FP64", "data": X[:2].tolist()}]}
    return json.loads(json.dumps(body).replace("NaN", "null"))  # type: ignore[no-any-return]


def test_serve_without_the_token_answers_401(small_bundle: Path, tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("s3cret-token\n")
    model = Bundle.open(small_bundle).model_id
    with subprocess_server(small_bundle, "native", tmp_path, "--token-file", str(token_file)) as url:
        infer = f"{url}/v2/models/{model}/infer"
        none = httpx.post(infer, json=_body(small_bundle), timeout=10)
        wrong = httpx.post(infer, json=_body(small_bundle), headers={"authorization": "Bearer nope"}, timeout=10)
        meta = httpx.get(f"{url}/v2/models/{model}", timeout=10)
        metrics = httpx.get(f"{url}/metrics", timeout=10)
        ok = httpx.post(infer, json=_body(small_bundle), headers={"authorization": "Bearer s3cret-token"}, timeout=10)
        live = httpx.get(f"{url}/v2/health/ready", timeout=10)
        # the harness's own client of a V2 server (the rest adapter) sends the token from a file
        client = adapter_class("rest").load(small_bundle, url=url, token_file=str(token_file))
        X, _, p = Bundle.open(small_bundle).reference()
        got = client.predict(X[:3])
        client.close()
        with pytest.raises(AdapterError, match="401|unauthorized"):
            adapter_class("rest").load(small_bundle, url=url)
    assert abs(got - p[:3]).max() < 1e-6
    assert none.status_code == 401 and "no Authorization header" in none.json()["error"], none.text
    assert none.headers["www-authenticate"].startswith("Bearer")
    assert wrong.status_code == 401 and "wrong bearer token" in wrong.json()["error"]
    assert meta.status_code == 401 and metrics.status_code == 401
    assert ok.status_code == 200 and len(ok.json()["outputs"][0]["data"]) == 2, ok.text
    assert live.status_code == 200  # the probes stay open


def test_serve_takes_the_token_from_the_environment(small_bundle: Path, tmp_path: Path) -> None:
    model = Bundle.open(small_bundle).model_id
    os.environ["HARNESS_SERVE_TOKEN"] = "from-env"
    try:
        with subprocess_server(small_bundle, "native", tmp_path) as url:
            infer = f"{url}/v2/models/{model}/infer"
            none = httpx.post(infer, json=_body(small_bundle), timeout=10)
            ok = httpx.post(infer, json=_body(small_bundle), headers={"authorization": "Bearer from-env"}, timeout=10)
    finally:
        del os.environ["HARNESS_SERVE_TOKEN"]
    assert none.status_code == 401 and ok.status_code == 200


def test_serve_with_an_unreadable_token_file_is_one_error_line(small_bundle: Path, tmp_path: Path) -> None:
    r = subprocess.run(
        [*HARNESS, "serve", "--bundle", str(small_bundle), "--adapter", "native", "--token-file",
         str(tmp_path / "missing")],
        capture_output=True, text=True, timeout=120, cwd=ROOT, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert r.returncode == 2 and "--token-file" in r.stderr and "Traceback" not in r.stderr, r.stderr


def test_the_metrics_port_binds_to_loopback_by_default() -> None:
    s = ScorerSettings(adapter="native", input_topic="t", output_topic="o", group="g")  # type: ignore[call-arg]
    assert s.metrics_host == "127.0.0.1"
    server = MetricsServer(0, ScoreMetrics(), Health())
    try:
        assert server.httpd.server_address[0] == "127.0.0.1"
    finally:
        server.httpd.server_close()
