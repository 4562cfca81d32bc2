"""The external-server strategy end to end: harness/scoring/server.py (V2 REST server) and adapters/rest.py (V2 client).

Every server here is real uvicorn on 127.0.0.1: `python -m harness.scoring.server` in a subprocess for the
registry's adapters, uvicorn in a background thread for test-only adapters (a recorder, a flaky V2 server
written from the spec). Nothing is mocked.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson
import pytest
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from adapters.base import Adapter
from adapters.bundle import Bundle
from adapters.errors import AdapterError, BadInput, EngineUnavailable
from adapters.identity import IdentityAdapter
from adapters.registry import adapter_class
from adapters.rest import RestAdapter
from adapters.v2_types import InferenceResponse, MetadataModelResponse
from harness.bench.procs import wait_http_ok
from harness.scoring.server import create_app
from tests.conftest import end_process

ROOT = Path(__file__).resolve().parent.parent
N_FEATURES = 6
SMALL_LIMIT = 64 * 1024


# ------------------------------------------------------------------------------------------------ helpers


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def wait_live(url: str, alive: Callable[[], bool], timeout_s: float = 60.0) -> None:
    wait_http_ok(f"{url}/v2/health/live", alive, timeout_s, f"server for {url}", lambda: "see its log")


@contextmanager
def subprocess_server(bundle: Path, adapter: str, tmp: Path, *extra: str) -> Iterator[str]:
    """`python -m harness.scoring.server` in a child process; yields its base URL."""
    port = free_port()
    log = open(tmp / f"serve-{adapter}-{port}.log", "wb")  # noqa: SIM115 (closed below)
    cmd = [
        sys.executable,
        "-m",
        "harness.scoring.server",
        "--bundle",
        str(bundle),
        "--adapter",
        adapter,
        "--port",
        str(port),
    ]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([*cmd, *extra], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_live(url, lambda: proc.poll() is None)
        yield url
    finally:
        end_process(proc)
        log.close()


class ThreadServer:
    """uvicorn serving an ASGI app in a background thread of this process."""

    def __init__(self, app: Any) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> ThreadServer:
        self.thread.start()
        wait_live(self.url, self.thread.is_alive)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)

    def __exit__(self, *exc: object) -> None:
        self.stop()


def assert_v2_error(resp: httpx.Response, status: int, contains: str = "") -> str:
    assert resp.status_code == status, (resp.status_code, resp.text)
    assert resp.headers["content-type"].startswith("application/json")
    body = resp.json()
    assert set(body) == {"error"}, body
    msg = body["error"]
    assert isinstance(msg, str) and msg
    assert "Traceback" not in msg and "\n" not in msg
    assert contains.lower() in msg.lower(), msg
    return msg


# --------------------------------------------------------------------------------------- model + adapters


class LgbTestAdapter(Adapter):
    """Test-only stand-in for adapters/native.py: lightgbm.Booster on the bundle's native model file."""

    name = "lgb-test"
    family = "native"
    format = "native"

    def _open(self) -> None:
        import lightgbm

        self.booster = lightgbm.Booster(model_file=str(self.bundle.verified_path("native")))

    def _predict(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(self.booster.predict(X), dtype=np.float64)


class EchoAdapter(Adapter):
    """Returns each row's first feature and records the batch sizes it was given."""

    name = "echo"
    family = "baseline"
    format = None

    def _open(self) -> None:
        self.batches: list[int] = []

    def _predict(self, X: np.ndarray) -> np.ndarray:
        self.batches.append(X.shape[0])
        return X[:, 0].copy()


def native_adapter_class() -> type[Adapter] | None:
    try:
        return adapter_class("native")
    except AdapterError:
        return None


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny LightGBM bundle: model.lgb.txt, reference.npz (X with NaN, y, p), manifest.json."""
    import lightgbm

    root = tmp_path_factory.mktemp("rest-bundle")
    rng = np.random.default_rng(7)
    X = rng.normal(size=(600, N_FEATURES))
    y = (X[:, 0] + 0.5 * X[:, 1] * X[:, 2] + rng.normal(scale=0.5, size=600) > 0).astype(np.int64)
    X[rng.random(X.shape) < 0.1] = np.nan
    params = {"objective": "binary", "num_leaves": 8, "min_data_in_leaf": 5, "verbose": -1, "seed": 7}
    booster = lightgbm.train(params, lightgbm.Dataset(X, label=y), num_boost_round=20)
    booster.save_model(str(root / "model.lgb.txt"))
    Xr = np.vstack([X[:200], np.full((1, N_FEATURES), np.nan)])  # held-out-style rows + one all-missing row
    booster = lightgbm.Booster(model_file=str(root / "model.lgb.txt"))
    np.savez(root / "reference.npz", X=Xr, y=np.append(y[:200], 0), p=booster.predict(Xr))
    manifest = {
        "model_id": "lgb-tiny",
        "feature_names": [f"f{i}" for i in range(N_FEATURES)],
        "formats": {
            "native": {"file": "model.lgb.txt", "sha256": sha256(root / "model.lgb.txt"), "flavor": "lightgbm"}
        },
        "reference": {"file": "reference.npz", "sha256": sha256(root / "reference.npz")},
    }
    (root / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return root


@pytest.fixture(scope="module")
def identity_url(bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`python -m harness.scoring.server --adapter identity` (default 16 MiB body limit)."""
    with subprocess_server(bundle, "identity", tmp_path_factory.mktemp("logs")) as url:
        yield url


@pytest.fixture(scope="module")
def model_server(bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Adapter]]:
    """The LightGBM model served over V2, and the same adapter loaded in process.

    Uses the registry's native adapter (served by `python -m harness.scoring.server`) when it exists, else the
    test-only LgbTestAdapter served by create_app in a thread.
    """
    native = native_adapter_class()
    if native is not None:
        local = native.load(bundle)
        with subprocess_server(bundle, "native", tmp_path_factory.mktemp("logs")) as url:
            yield url, local
    else:
        local = LgbTestAdapter.load(bundle)
        served = LgbTestAdapter.load(bundle)
        with ThreadServer(create_app(served, "lgb-tiny")) as srv:
            yield srv.url, local
        served.close()
    local.close()


@pytest.fixture(scope="module")
def echo_server(bundle: Path) -> Iterator[tuple[str, EchoAdapter]]:
    """EchoAdapter behind create_app with a 64 KiB body limit, model name "echo"."""
    adapter = EchoAdapter.load(bundle)
    assert isinstance(adapter, EchoAdapter)
    with ThreadServer(create_app(adapter, "echo", max_body_bytes=SMALL_LIMIT)) as srv:
        yield srv.url, adapter


# ------------------------------------------------------------------------------------ endpoints (the spec)


def test_health_metadata_and_ready_endpoints(identity_url: str) -> None:
    c = httpx.Client(base_url=identity_url)
    assert c.get("/v2/health/live").json() == {"live": True}
    assert c.get("/v2/health/ready").json() == {"ready": True}
    server = c.get("/v2").json()
    assert server["name"] == "kafka-model-harness" and isinstance(server["extensions"], list)

    r = c.get("/v2/models/lgb-tiny")
    assert r.status_code == 200
    meta = MetadataModelResponse.model_validate(r.json())
    assert meta.name == "lgb-tiny"
    assert meta.versions == ["lgb-tiny"]
    assert meta.platform.endswith("identity")
    assert [(t.name, t.datatype, t.shape) for t in meta.inputs] == [("input", "FP64", [-1, N_FEATURES])]
    assert [(t.name, t.datatype, t.shape) for t in meta.outputs] == [("probability", "FP64", [-1])]
    assert c.get("/v2/models/lgb-tiny/versions/lgb-tiny").json()["name"] == "lgb-tiny"

    assert c.get("/v2/models/lgb-tiny/ready").json() == {"name": "lgb-tiny", "ready": True}
    assert c.get("/v2/models/lgb-tiny/versions/lgb-tiny/ready").status_code == 200

    assert_v2_error(c.get("/v2/models/nope"), 404, "unknown model 'nope'")
    assert_v2_error(c.get("/v2/models/nope/ready"), 404, "unknown model")
    assert_v2_error(c.get("/v2/models/lgb-tiny/versions/9"), 404, "no version '9'")
    assert_v2_error(c.get("/v2/models/lgb-tiny/versions/9/ready"), 404, "no version")
    assert_v2_error(c.get("/v1/models/lgb-tiny"), 404, "/v1/models/lgb-tiny")
    assert_v2_error(c.get("/v2/models/lgb-tiny/infer"), 405, "method not allowed")


# ------------------------------------------------------------------------------------------------- parity


def test_identity_through_rest_equals_in_process(bundle: Path, identity_url: str) -> None:
    X = np.random.default_rng(1).normal(size=(37, N_FEATURES))
    X[::5, 2] = np.nan
    with RestAdapter.load(bundle, url=identity_url) as rest, IdentityAdapter.load(bundle) as local:
        assert isinstance(rest, RestAdapter) and rest.model_name == "lgb-tiny"
        p = rest.predict(X)
        assert p.dtype == np.float64 and p.shape == (37,)
        assert np.array_equal(p, local.predict(X))


def test_model_through_rest_equals_in_process_exactly(bundle: Path, model_server: tuple[str, Adapter]) -> None:
    url, local = model_server
    X, _, p_ref = Bundle.open(bundle).reference()
    assert np.isnan(X).any() and np.isnan(X[-1]).all()  # NaN cells and one all-NaN row cross the wire
    with RestAdapter.load(bundle, url=url) as rest:
        p_rest = rest.predict(X)
        assert np.array_equal(p_rest, local.predict(X))  # bit-exact: float64 repr round-trips through JSON
        assert np.array_equal(p_rest, p_ref)
        assert len(np.unique(p_rest)) > 20  # a real model, not a constant
        one = rest.predict(X[3])  # a single 1-D row
        assert one.shape == (1,) and one[0] == p_ref[3]


def test_float64_round_trip_and_nan_both_ways(bundle: Path, echo_server: tuple[str, EchoAdapter]) -> None:
    url, _ = echo_server
    hard = [0.1 + 0.2, 1 / 3, -0.0, 5e-324, 2.2250738585072014e-308, 1.7976931348623157e308, -1e-300, 123456789.123]
    X = np.zeros((len(hard) + 2, N_FEATURES))
    X[: len(hard), 0] = hard
    X[-2, :] = np.nan  # all missing: echo gives NaN back, which travels as null
    X[-1, 0] = np.nan
    X[-1, 1:] = 7.0
    with RestAdapter.load(bundle, url=url, model_name="echo") as rest:
        p = rest.predict(X)
    assert np.array_equal(p[: len(hard)], np.array(hard))
    assert np.signbit(p[2])  # -0.0 stays negative zero
    assert np.isnan(p[-2]) and np.isnan(p[-1])


def test_large_batch_is_split_in_order(bundle: Path, echo_server: tuple[str, EchoAdapter]) -> None:
    url, echo = echo_server
    X = np.random.default_rng(2).normal(size=(50, N_FEATURES))
    X[10:13, 0] = np.nan
    echo.batches.clear()
    with RestAdapter.load(bundle, url=url, model_name="echo", max_rows_per_request=7) as rest:
        p = rest.predict(X)
    assert echo.batches == [7, 7, 7, 7, 7, 7, 7, 1]
    assert np.array_equal(p, X[:, 0], equal_nan=True)  # the chunks come back in order

    echo.batches.clear()
    with RestAdapter.load(bundle, url=url, model_name="echo") as rest:  # default 1024: one request
        rest.predict(X)
    assert echo.batches == [50]


# -------------------------------------------------------------------------------------- malformed requests


def _req(data: Any, shape: Any = None, datatype: Any = "FP64", **top: Any) -> dict[str, Any]:
    inp = {"name": "input", "shape": shape if shape is not None else [1, N_FEATURES], "datatype": datatype}
    inp["data"] = data
    return {"inputs": [inp], **top}


ROW = [0.5] * N_FEATURES

MALFORMED: list[tuple[str, bytes | dict[str, Any] | list[Any], int, str]] = [
    ("empty body", b"", 400, "empty"),
    ("not json", b"{inputs: [", 400, "not valid json"),
    ("json array", [1, 2], 400, "json object"),
    ("no inputs", {"id": "1"}, 400, "'inputs'"),
    ("inputs not array", {"inputs": {"name": "input"}}, 400, "'inputs'"),
    ("two inputs", {"inputs": [_req(ROW)["inputs"][0]] * 2}, 400, "exactly one input"),
    ("input not object", {"inputs": [7]}, 400, "json object"),
    ("no data", {"inputs": [{"name": "input", "shape": [1, N_FEATURES], "datatype": "FP64"}]}, 400, "'data'"),
    ("name not string", {"inputs": [{**_req(ROW)["inputs"][0], "name": 3}]}, 400, "name"),
    ("1-D shape", _req(ROW, shape=[N_FEATURES]), 400, "shape"),
    ("3-D shape", _req(ROW, shape=[1, 1, N_FEATURES]), 400, "shape"),
    ("negative dim", _req(ROW, shape=[-1, N_FEATURES]), 400, "shape"),
    ("bool dim", _req(ROW, shape=[True, N_FEATURES]), 400, "shape"),
    ("wrong width", _req(ROW + [1.0], shape=[1, N_FEATURES + 1]), 400, "columns"),
    ("empty batch", _req([], shape=[0, N_FEATURES]), 400, "empty"),
    ("BYTES datatype", _req(ROW, datatype="BYTES"), 400, "datatype"),
    ("INT64 datatype", _req(ROW, datatype="INT64"), 400, "datatype"),
    ("lowercase datatype", _req(ROW, datatype="fp64"), 400, "datatype"),
    ("non-numeric", _req(["x"] * N_FEATURES), 400, "non-numeric"),
    ("object element", _req([{"v": 1}] * N_FEATURES), 400, "non-numeric"),
    ("ragged nested", _req([[0.1, 0.2], [0.3]], shape=[2, N_FEATURES]), 400, "ragged"),
    ("too few values", _req(ROW[:-1]), 400, "elements"),
    ("too many values", _req(ROW * 3, shape=[2, N_FEATURES]), 400, "elements"),
    ("nested transposed", _req(np.zeros((N_FEATURES, 2)).tolist(), shape=[2, N_FEATURES]), 400, "nested"),
    ("data not array", _req("0.5,0.5"), 400, "array"),
    ("infinity", _req(["inf"] + ROW[1:]), 400, "infinite"),
    ("id not string", _req(ROW, id=42), 400, "'id'"),
    ("parameters not object", _req(ROW, parameters=[1]), 400, "parameters"),
    ("unknown output", _req(ROW, outputs=[{"name": "logits"}]), 400, "unknown output"),
    ("bad Content-Length", b"", 400, "content-length"),
]


@pytest.mark.parametrize("case", MALFORMED, ids=[c[0] for c in MALFORMED])
def test_malformed_request_is_a_v2_error_and_server_keeps_serving(
    identity_url: str, case: tuple[str, bytes | dict[str, Any] | list[Any], int, str]
) -> None:
    label, body, status, contains = case
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    headers = {"content-type": "application/json"}
    if label == "bad Content-Length":
        # httpx always writes a correct Content-Length, so speak HTTP/1.1 on a raw socket
        host, port = identity_url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=5) as s:
            s.sendall(b"POST /v2/models/lgb-tiny/infer HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n")
            reply = s.recv(65536).decode()
        assert reply.startswith("HTTP/1.1 4"), reply  # refused by uvicorn's parser or by the server
    else:
        r = httpx.post(f"{identity_url}/v2/models/lgb-tiny/infer", content=raw, headers=headers)
        assert_v2_error(r, status, contains)
    ok = httpx.post(f"{identity_url}/v2/models/lgb-tiny/infer", json=_req(ROW))
    assert ok.status_code == 200 and ok.json()["outputs"][0]["data"] == [0.5]


def test_unknown_model_and_version_are_404(identity_url: str) -> None:
    assert_v2_error(httpx.post(f"{identity_url}/v2/models/other/infer", json=_req(ROW)), 404, "unknown model 'other'")
    r = httpx.post(f"{identity_url}/v2/models/lgb-tiny/versions/0/infer", json=_req(ROW))
    assert_v2_error(r, 404, "no version '0'")
    r = httpx.post(f"{identity_url}/v2/models/lgb-tiny/versions/lgb-tiny/infer", json=_req(ROW))
    assert r.status_code == 200 and r.json()["model_version"] == "lgb-tiny"


def test_oversize_body_is_413_before_parsing(identity_url: str, echo_server: tuple[str, EchoAdapter]) -> None:
    url, echo = echo_server
    infer = f"{url}/v2/models/echo/infer"
    big = b"x" * (SMALL_LIMIT + 1)  # not even JSON: refused on size, before any parsing
    assert_v2_error(httpx.post(infer, content=big), 413, f"limit of {SMALL_LIMIT} bytes")

    def chunks() -> Iterator[bytes]:  # no Content-Length: refused while streaming
        for _ in range(4):
            yield b"y" * (SMALL_LIMIT // 2)

    assert_v2_error(httpx.post(infer, content=chunks()), 413, "limit")

    # just under the limit and valid: served
    n_rows = 800
    body = orjson.dumps(_req([0.25] * (N_FEATURES * n_rows), shape=[n_rows, N_FEATURES]))
    assert len(body) < SMALL_LIMIT
    r = httpx.post(infer, content=body, headers={"content-type": "application/json"})
    assert r.status_code == 200 and r.json()["outputs"][0]["shape"] == [n_rows]

    # the default limit (16 MiB) on `python -m harness.scoring.server`
    r = httpx.post(f"{identity_url}/v2/models/lgb-tiny/infer", content=b"z" * (17 * 1024 * 1024), timeout=30)
    assert_v2_error(r, 413, "16777216")
    assert httpx.get(f"{identity_url}/v2/health/live").status_code == 200


def test_hand_written_v2_request_with_plain_httpx(bundle: Path, model_server: tuple[str, Adapter]) -> None:
    """Any V2 client works: nested data, FP32 datatype, NaN as null and "NaN", an id and requested outputs."""
    url, local = model_server
    X, _, p_ref = local.bundle.reference()
    rows = X[:4]
    nested: list[list[Any]] = [[None if np.isnan(v) else float(v) for v in row] for row in rows]
    nested[1][0] = "NaN"
    X4 = rows.copy()
    X4[1, 0] = np.nan
    payload = {
        "id": "42",
        "parameters": {"content_type": "np"},
        "inputs": [{"name": "features", "shape": [4, N_FEATURES], "datatype": "FP32", "data": nested}],
        "outputs": [{"name": "probability"}],
    }
    r = httpx.post(f"{url}/v2/models/lgb-tiny/infer", content=json.dumps(payload).encode())
    assert r.status_code == 200, r.text
    resp = InferenceResponse.model_validate(r.json())
    assert resp.model_name == "lgb-tiny" and resp.model_version == "lgb-tiny" and resp.id == "42"
    (out,) = resp.outputs
    assert (out.name, out.shape, out.datatype) == ("probability", [4], "FP64")
    p = np.array(out.data, dtype=np.float64)
    assert np.array_equal(p, local.predict(X4))
    assert np.array_equal(p[[0, 2, 3]], p_ref[[0, 2, 3]])  # rows sent unchanged score as the reference
    # without "id" the response carries none
    payload.pop("id")
    assert "id" not in httpx.post(f"{url}/v2/models/lgb-tiny/infer", json=payload).json()


# -------------------------------------------------------------------------------- client: errors and retries


def test_rest_options_are_checked(bundle: Path) -> None:
    with pytest.raises(AdapterError, match="valid options"):
        RestAdapter.load(bundle, url="http://127.0.0.1:1", colour="red")
    with pytest.raises(AdapterError, match="http://"):
        RestAdapter.load(bundle, url="127.0.0.1:8080")
    with pytest.raises(AdapterError, match="url"):
        RestAdapter.load(bundle)


def test_wrong_model_name_fails_on_load(bundle: Path, identity_url: str) -> None:
    with pytest.raises(AdapterError, match="cannot serve model 'ghost'.*unknown model 'ghost'"):
        RestAdapter.load(bundle, url=identity_url, model_name="ghost")


def test_server_4xx_is_bad_input_with_the_servers_message(bundle: Path, echo_server: tuple[str, EchoAdapter]) -> None:
    url, _ = echo_server
    X = np.random.default_rng(4).random((1000, N_FEATURES))  # ~120 KiB of JSON: above the 64 KiB limit
    with RestAdapter.load(bundle, url=url, model_name="echo") as rest:
        with pytest.raises(BadInput, match=r"HTTP 413.*limit of 65536 bytes") as e:
            rest.predict(X)
        assert url in str(e.value)
        assert np.array_equal(rest.predict(X[:100]), X[:100, 0])  # the same client still works


def test_nothing_listening_is_engine_unavailable_after_retries(bundle: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    t0 = time.monotonic()
    with pytest.raises(EngineUnavailable) as e:
        RestAdapter.load(bundle, url=url, retries=2, backoff_s=0.05, timeout_s=1.0)
    elapsed = time.monotonic() - t0
    msg = str(e.value)
    assert url in msg and "after 3 attempts" in msg and "ConnectError" in msg and "\n" not in msg
    assert 0.15 <= elapsed < 3.0  # slept 0.05 + 0.10 between the attempts, and no more


def test_server_gone_mid_run_is_engine_unavailable(bundle: Path) -> None:
    served = EchoAdapter.load(bundle)
    srv = ThreadServer(create_app(served, "echo")).__enter__()
    rest = RestAdapter.load(bundle, url=srv.url, model_name="echo", retries=1, backoff_s=0.01, timeout_s=1.0)
    X = np.ones((3, N_FEATURES))
    assert np.array_equal(rest.predict(X), np.ones(3))
    srv.stop()
    t0 = time.monotonic()
    with pytest.raises(EngineUnavailable, match=r"after 2 attempts"):
        rest.predict(X)
    assert time.monotonic() - t0 < 3.0
    rest.close()


class FlakyV2:
    """A V2 server written from the spec, unlike ours: input "dense_input" FP32, output "scores" [n, 2];
    the first `fail_first` infer calls answer 503."""

    def __init__(self, fail_first: int) -> None:
        self.fail_first = fail_first
        self.calls = 0
        self.seen: list[dict[str, Any]] = []
        app = FastAPI()

        @app.get("/v2/health/live")
        def live() -> dict[str, bool]:
            return {"live": True}

        @app.get("/v2/models/{name}")
        def meta(name: str) -> dict[str, Any]:
            return {
                "name": name,
                "platform": "flaky",
                "inputs": [{"name": "dense_input", "datatype": "FP32", "shape": [-1, N_FEATURES]}],
                "outputs": [{"name": "scores", "datatype": "FP32", "shape": [-1, 2]}],
            }

        @app.post("/v2/models/{name}/infer")
        async def infer(name: str, request: Request) -> JSONResponse:
            self.calls += 1
            if self.calls <= self.fail_first:
                return JSONResponse({"error": "warming up"}, status_code=503)
            req = await request.json()
            inp = req["inputs"][0]
            self.seen.append({k: inp[k] for k in ("name", "datatype", "shape")})
            x = np.array([np.nan if v is None else v for v in inp["data"]]).reshape(inp["shape"])
            s = 1.0 / (1.0 + np.exp(-np.nan_to_num(x[:, 0])))
            data = np.column_stack([1 - s, s]).ravel().tolist()
            out = {"name": "scores", "datatype": "FP32", "shape": [len(s), 2], "data": data}
            return JSONResponse({"model_name": name, "outputs": [out]})

        self.app = app


def test_retries_on_503_then_succeeds_against_another_v2_server(bundle: Path) -> None:
    flaky = FlakyV2(fail_first=2)
    X = np.random.default_rng(3).normal(size=(5, N_FEATURES))
    X[0, 0] = np.nan
    with ThreadServer(flaky.app) as srv, RestAdapter.load(bundle, url=srv.url, retries=2, backoff_s=0.02) as rest:
        t0 = time.monotonic()
        p = rest.predict(X)
        assert time.monotonic() - t0 >= 0.02 + 0.04  # backed off before each retry
    assert flaky.calls == 3
    # it sent the server's own input name and datatype (from the metadata), one [n, n_features] tensor
    assert flaky.seen == [{"name": "dense_input", "datatype": "FP32", "shape": [5, N_FEATURES]}]
    expected = 1.0 / (1.0 + np.exp(-np.nan_to_num(X[:, 0])))
    assert np.array_equal(p, expected)  # column 1 of the [n, 2] output


def test_retries_exhausted_on_503_is_engine_unavailable(bundle: Path) -> None:
    flaky = FlakyV2(fail_first=100)
    with ThreadServer(flaky.app) as srv:
        rest = RestAdapter.load(bundle, url=srv.url, retries=2, backoff_s=0.01)
        with pytest.raises(EngineUnavailable) as e:
            rest.predict(np.zeros((1, N_FEATURES)))
        rest.close()
    assert flaky.calls == 3
    msg = str(e.value)
    assert srv.url in msg and "HTTP 503: warming up" in msg and "after 3 attempts" in msg


# ------------------------------------------------------------------------------------------- CLI entry point


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--adapter", "nope"], "unknown adapter 'nope'"),
        (["--adapter", "identity", "--option", "threads=2"], "option threads"),
        (["--adapter", "identity", "--option", "novalue"], "not key=value"),
    ],
)
def test_serve_entry_user_errors_are_one_line_exit_2(bundle: Path, args: list[str], message: str) -> None:
    cmd = [sys.executable, "-m", "harness.scoring.server", "--bundle", str(bundle), "--port", str(free_port()), *args]
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=60, env=dict(os.environ))
    assert r.returncode == 2, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], r.stderr


def test_serve_entry_missing_bundle(tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "harness.scoring.server", "--bundle", str(tmp_path / "none"), "--adapter", "identity"]
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "manifest.json is missing" in r.stderr
