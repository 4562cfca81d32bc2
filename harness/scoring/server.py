"""An Open Inference Protocol (KServe V2) REST server that hosts any adapter: the external-server strategy.

    python -m harness.scoring.server --bundle artifacts/fraud/<model-id> --adapter native --port 8080
    harness serve --bundle B --adapter A [--host H --port P --option k=v ...]     (via main_serve)

Endpoints (spec: kserve/open-inference-protocol, inference_rest.md; payloads in adapters/v2_types.py):

    GET  /v2/health/live                          200 {"live": true}
    GET  /v2/health/ready                         200 {"ready": true}
    GET  /v2                                      server metadata
    GET  /v2/models/{name}[/versions/{v}]         model metadata; unknown name or version -> 404
    GET  /v2/models/{name}[/versions/{v}]/ready   200 {"name": ..., "ready": true}
    POST /v2/models/{name}[/versions/{v}]/infer   inference (request format: harness/scoring/v2_request.py)

The output follows the bundle's task (adapters/tasks.py, `v2_output_name`): "probability", shape [n_rows], FP64,
P(class 1) per row (binary); "prediction", shape [n_rows] (regression); "probabilities", shape [n_rows, k], the
class probabilities in the manifest's class order (multiclass, the classes listed in the model metadata's
parameters). A NaN score is written as `null`.

Scoring runs off the event loop, in a pool of `workers` threads (ScoringPool): a large request never
holds up health checks or other requests, and at most `workers` predict calls run at once. Up to
`max_waiting` more requests wait for a worker; beyond that the server answers 503 (with Retry-After)
rather than queueing without bound. A request body is parsed off the event loop too when it is large.

Errors are {"error": "<one line>"}: 400 for a malformed request, 404 for an unknown model, route or
version, 405 for a wrong method, 413 for a body above max_body_bytes (refused from Content-Length before
reading, or while streaming a chunked body) or more rows than max_rows, 503 when every worker is busy and
the queue is full, an adapters.errors.AdapterError's own status_code when the adapter refuses the batch
(EngineUnavailable: 503), and 500 when the adapter fails with anything else: the body names the adapter,
the batch size and an error id, never the exception's text (the traceback goes to the server log under
that id). The server keeps serving after every one of them.

uvicorn picks uvloop and httptools when they are installed (uvicorn[standard]): about 80-150 us less
per request on loopback.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from adapters.base import Adapter, parse_options
from adapters.errors import AdapterError
from adapters.registry import adapter_class
from adapters.tasks import v2_output_name
from adapters.v2_types import (
    InferenceErrorResponse,
    InferenceResponse,
    LiveResponse,
    MetadataModelResponse,
    MetadataServerResponse,
    MetadataTensor,
    ModelReadyResponse,
    Parameters,
    ReadyResponse,
)
from harness.scoring.v2_request import V2Error, parse_infer_request, read_body

log = logging.getLogger("harness.scoring.server")

DEFAULT_MAX_BODY_BYTES = 16 * 1024 * 1024
DEFAULT_MAX_ROWS = 65_536
DEFAULT_WORKERS = 2
DEFAULT_MAX_WAITING = 64
PARSE_OFF_LOOP_BYTES = 64 * 1024  # bodies larger than this are parsed in a thread
INPUT_NAME = "input"
SERVER_NAME = "kafka-model-harness"
SERVER_VERSION = "0.1.0"
ERROR_DOC: dict[int | str, dict[str, Any]] = {
    400: {"model": InferenceErrorResponse},
    404: {"model": InferenceErrorResponse},
}


class JSONResponse(Response):
    """orjson-encoded JSON; numpy arrays are written natively and NaN becomes null."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY)


def error_response(status_code: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status_code, headers=headers)


@dataclass
class Limits:
    """What one request may ask and how much scoring runs at once."""

    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    max_rows: int = DEFAULT_MAX_ROWS
    workers: int = DEFAULT_WORKERS
    max_waiting: int = DEFAULT_MAX_WAITING

    def check(self) -> None:
        for name in ("max_body_bytes", "max_rows", "workers"):
            if getattr(self, name) <= 0:
                raise AdapterError(f"{name} must be positive, got {getattr(self, name)}")
        if self.max_waiting < 0:
            raise AdapterError(f"max_waiting must be 0 or more, got {self.max_waiting}")


class ScoringPool:
    """predict in `workers` threads, off the event loop; at most `max_waiting` requests wait for a worker."""

    def __init__(self, predict: Callable[[np.ndarray], np.ndarray], workers: int, max_waiting: int) -> None:
        self.predict = predict
        self.workers = workers
        self.max_waiting = max_waiting
        self._executor = ThreadPoolExecutor(workers, thread_name_prefix="predict")
        self._slots: asyncio.Semaphore | None = None  # made on the event loop, at the first request
        self._waiting = 0

    async def score(self, X: np.ndarray) -> np.ndarray:
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.workers)
        if self._slots.locked() and self._waiting >= self.max_waiting:
            raise V2Error(503, f"the server is busy: {self.workers} batches scoring and {self._waiting} waiting")
        self._waiting += 1
        try:
            await self._slots.acquire()
        finally:
            self._waiting -= 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, self.predict, X)
        finally:
            self._slots.release()

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


@dataclass
class HostedModel:
    """The one model a server hosts: its V2 name and version, and the metadata documents."""

    adapter: Adapter
    name: str
    version: str

    def check(self, name: str, ver: str | None) -> None:
        if name != self.name:
            raise V2Error(404, f"unknown model {name!r}: this server hosts {self.name!r}")
        if ver is not None and ver != self.version:
            raise V2Error(404, f"model {name!r} has no version {ver!r}: it has {self.version!r}")

    def metadata(self) -> dict[str, Any]:
        return MetadataModelResponse(
            name=self.name,
            versions=[self.version],
            platform=f"{SERVER_NAME}/{self.adapter.name}",
            inputs=[MetadataTensor(name=INPUT_NAME, datatype="FP64", shape=[-1, self.adapter.n_features])],
            outputs=[MetadataTensor(name=self.output_name, datatype="FP64", shape=self.output_shape)],
            **self.parameters,
        ).model_dump(exclude_none=True)

    @property
    def output_name(self) -> str:
        return v2_output_name(self.adapter.task.task)

    @property
    def output_shape(self) -> list[int]:
        return [-1] if self.adapter.task.vector else [-1, self.adapter.task.n_outputs]

    @property
    def parameters(self) -> dict[str, Any]:
        task = self.adapter.task
        if task.vector:
            return {}
        return {"parameters": Parameters(task=task.task, classes=",".join(task.classes))}


# --------------------------------------------------------------------------------------------------- app


def create_app(
    adapter: Adapter,
    model_name: str,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    *,
    model_version: str | None = None,
    max_rows: int = DEFAULT_MAX_ROWS,
    workers: int = DEFAULT_WORKERS,
    max_waiting: int = DEFAULT_MAX_WAITING,
) -> FastAPI:
    """A V2 server for one loaded adapter. model_version defaults to the bundle's model_id."""
    limits = Limits(max_body_bytes, max_rows, workers, max_waiting)
    limits.check()
    model = HostedModel(adapter, model_name, model_version or adapter.bundle.model_id)
    app = FastAPI(
        title=f"V2 inference server: {model_name} ({adapter.name})",
        version=SERVER_VERSION,
        default_response_class=JSONResponse,
    )
    _add_error_handlers(app)
    _add_health_routes(app)
    _add_metadata_routes(app, model)
    _add_infer_routes(app, model, limits, ScoringPool(adapter.predict, limits.workers, limits.max_waiting))
    _add_metrics(app, model)
    return app


def _route_label(path: str) -> str:
    if path.endswith("/infer"):
        return "infer"
    if "/health/" in path:
        return "health"
    return "metrics" if path == "/metrics" else "other"


def _add_metrics(app: FastAPI, model: HostedModel) -> None:
    """GET /metrics on the server's own port (Prometheus text format): requests by route and status, their
    duration, rows scored, and the model as an info metric."""
    from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, Info, generate_latest

    registry = CollectorRegistry()
    requests = Counter("harness_serve_requests", "Requests answered.", ["route", "code"], registry=registry)
    seconds = Histogram(
        "harness_serve_request_seconds",
        "Time to answer an infer request.",
        buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
        registry=registry,
    )
    rows = Counter("harness_serve_rows", "Rows scored.", registry=registry)
    Info("harness_serve_model", "The model served.", registry=registry).info(
        {"model_id": model.adapter.bundle.model_id, "adapter": model.adapter.name, "name": model.name}
    )

    @app.middleware("http")
    async def count(request: Request, call_next: Callable[[Request], Any]) -> Response:
        start = time.perf_counter()
        response: Response = await call_next(request)
        path = request.url.path
        route = (
            "infer"
            if path.endswith("/infer")
            else "health"
            if "/health/" in path
            else "metrics"
            if path == "/metrics"
            else "other"
        )
        requests.labels(route=route, code=str(response.status_code)).inc()
        if route == "infer":
            seconds.observe(time.perf_counter() - start)
            n = response.headers.get("x-rows")
            if n and n.isdigit():
                rows.inc(int(n))
        return response

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(V2Error)
    async def _v2_error(_: Request, exc: V2Error) -> Response:
        headers = {"retry-after": "1"} if exc.status_code == 503 else None
        return error_response(exc.status_code, exc.message, headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code in (404, 405):
            msg = f"{exc.detail}: {request.method} {request.url.path} (V2 endpoints are under /v2)"
        else:
            msg = str(exc.detail)
        return error_response(exc.status_code, msg)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, exc: RequestValidationError) -> Response:
        first = exc.errors()[0] if exc.errors() else {}
        return error_response(400, f"invalid request: {first.get('msg', 'malformed')}")


def _add_health_routes(app: FastAPI) -> None:
    server_metadata = MetadataServerResponse(name=SERVER_NAME, version=SERVER_VERSION, extensions=[]).model_dump()

    @app.get("/v2/health/live", response_model=LiveResponse)
    async def live() -> Response:
        return JSONResponse({"live": True})

    @app.get("/v2/health/ready", response_model=ReadyResponse)
    async def ready() -> Response:
        return JSONResponse({"ready": True})

    @app.get("/v2", response_model=MetadataServerResponse)
    async def server_meta() -> Response:
        return JSONResponse(server_metadata)


def _add_metadata_routes(app: FastAPI, model: HostedModel) -> None:
    metadata = model.metadata()

    @app.get("/v2/models/{name}", response_model=MetadataModelResponse, responses=ERROR_DOC)
    async def model_meta(name: str) -> Response:
        model.check(name, None)
        return JSONResponse(metadata)

    @app.get("/v2/models/{name}/versions/{ver}", response_model=MetadataModelResponse, responses=ERROR_DOC)
    async def model_meta_v(name: str, ver: str) -> Response:
        model.check(name, ver)
        return JSONResponse(metadata)

    @app.get("/v2/models/{name}/ready", response_model=ModelReadyResponse, responses=ERROR_DOC)
    async def model_ready(name: str) -> Response:
        model.check(name, None)
        return JSONResponse({"name": model.name, "ready": True})

    @app.get("/v2/models/{name}/versions/{ver}/ready", response_model=ModelReadyResponse, responses=ERROR_DOC)
    async def model_ready_v(name: str, ver: str) -> Response:
        model.check(name, ver)
        return JSONResponse({"name": model.name, "ready": True})


def _add_infer_routes(app: FastAPI, model: HostedModel, limits: Limits, pool: ScoringPool) -> None:
    n_features = model.adapter.n_features

    async def infer(request: Request, name: str, ver: str | None) -> Response:
        model.check(name, ver)
        body = await read_body(request, limits.max_body_bytes)
        if len(body) > PARSE_OFF_LOOP_BYTES:
            X, rid, _ = await run_in_threadpool(
                parse_infer_request, body, n_features, limits.max_rows, model.output_name
            )
        else:
            X, rid, _ = parse_infer_request(body, n_features, limits.max_rows, model.output_name)
        try:
            p = await pool.score(X)
        except V2Error:
            raise  # busy: 503, answered by the V2Error handler
        except AdapterError as e:  # our own one-line errors, written for the caller (BadInput, EngineUnavailable...)
            return error_response(e.status_code, str(e), {"retry-after": "1"} if e.status_code == 503 else None)
        except Exception:  # anything else: log it under an id, answer without its text, keep serving
            error_id = uuid.uuid4().hex[:12]
            log.exception("error %s: adapter %r failed on a batch of %d rows", error_id, model.adapter.name, len(X))
            return error_response(
                500,
                f"adapter {model.adapter.name!r} failed to score a batch of {len(X)} rows "
                f"(error id {error_id}; the details are in the server log)",
            )
        if p.shape[0] != X.shape[0]:
            return error_response(500, f"adapter {model.adapter.name!r} returned {p.size} scores for {len(X)} rows")
        out: dict[str, Any] = {"model_name": model.name, "model_version": model.version}
        if rid is not None:
            out["id"] = rid
        data = p if p.ndim == 1 else p.reshape(-1)  # row-major, flat
        out["outputs"] = [{"name": model.output_name, "shape": list(p.shape), "datatype": "FP64", "data": data}]
        return JSONResponse(out, headers={"x-rows": str(int(p.shape[0]))})

    @app.post("/v2/models/{name}/infer", response_model=InferenceResponse, responses=ERROR_DOC)
    async def model_infer(request: Request, name: str) -> Response:
        return await infer(request, name, None)

    @app.post("/v2/models/{name}/versions/{ver}/infer", response_model=InferenceResponse, responses=ERROR_DOC)
    async def model_infer_v(request: Request, name: str, ver: str) -> Response:
        return await infer(request, name, ver)


# ------------------------------------------------------------------------------------------------ running


def serve(
    bundle_dir: str | Path,
    adapter_name: str,
    host: str = "127.0.0.1",
    port: int = 8080,
    options: dict[str, Any] | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    *,
    model_name: str | None = None,
    log_level: str = "warning",
    max_rows: int = DEFAULT_MAX_ROWS,
    workers: int = DEFAULT_WORKERS,
    max_waiting: int = DEFAULT_MAX_WAITING,
) -> None:
    """Load `adapter_name` from the bundle and serve it over V2 REST until interrupted (Ctrl-C / SIGTERM).

    Raises AdapterError (unknown adapter, bad option, missing bundle or format, a bad limit) before binding
    the port.
    """
    import gc

    import uvicorn

    Limits(max_body_bytes, max_rows, workers, max_waiting).check()
    adapter = adapter_class(adapter_name).load(bundle_dir, **(options or {}))
    try:
        name = model_name or adapter.bundle.model_id
        app = create_app(adapter, name, max_body_bytes, max_rows=max_rows, workers=workers, max_waiting=max_waiting)
        print(
            f"serving adapter {adapter_name!r} as V2 model {name!r} on http://{host}:{port}/v2/models/{name}",
            file=sys.stderr,
            flush=True,
        )
        config = uvicorn.Config(
            app,
            host=host,
            port=port,
            log_level=log_level,
            access_log=False,
            # longer than common clients' idle expiry (httpx: 5 s), so a reused connection is rarely closed under it
            timeout_keep_alive=30,
            lifespan="off",
        )
        gc.collect()
        gc.freeze()  # long-lived objects out of the collector's full passes (tens of ms each otherwise)
        uvicorn.Server(config).run()
    finally:
        adapter.close()


def main_serve(
    bundle: str | Path,
    adapter: str,
    host: str = "127.0.0.1",
    port: int = 8080,
    option: Sequence[str] = (),
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    model_name: str | None = None,
    log_level: str = "warning",
    max_rows: int = DEFAULT_MAX_ROWS,
    workers: int = DEFAULT_WORKERS,
    max_waiting: int = DEFAULT_MAX_WAITING,
) -> None:
    """CLI entry: `harness serve --bundle B --adapter A [--host H --port P --option k=v ...]`.

    A user's mistake (unknown adapter, bad option, missing bundle) is one line on stderr and exit code 2.
    """
    from jvm.inprocess import exit_process

    try:
        serve(
            bundle,
            adapter,
            host,
            port,
            parse_options(option),
            max_body_bytes,
            model_name=model_name,
            log_level=log_level,
            max_rows=max_rows,
            workers=workers,
            max_waiting=max_waiting,
        )
    except AdapterError as e:
        print(f"error: {e}", file=sys.stderr)
        exit_process(2)
    except KeyboardInterrupt:
        pass
    exit_process(0)  # a JVM adapter's teardown must not turn a clean stop into exit code 134


def _main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m harness.scoring.server", description="Serve one adapter over V2 REST.")
    ap.add_argument("--bundle", required=True, help="model bundle directory (has manifest.json)")
    ap.add_argument("--adapter", required=True, help="adapter name, e.g. native, onnx, identity")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8080)
    ap.add_argument("--option", action="append", default=[], metavar="K=V", help="adapter option (repeatable)")
    ap.add_argument("--max-body-bytes", type=int, default=DEFAULT_MAX_BODY_BYTES)
    ap.add_argument("--max-rows", type=int, default=DEFAULT_MAX_ROWS, help="most rows one request may hold")
    ap.add_argument("--workers", type=int, default=DEFAULT_WORKERS, help="predict calls that run at once")
    ap.add_argument("--max-waiting", type=int, default=DEFAULT_MAX_WAITING, help="requests queued for a worker")
    ap.add_argument("--model-name", default=None, help="V2 model name (default: the bundle's model_id)")
    ap.add_argument("--log-level", default="warning")
    a = ap.parse_args(argv)
    main_serve(
        a.bundle, a.adapter, a.host, a.port, a.option, a.max_body_bytes, a.model_name, a.log_level,
        a.max_rows, a.workers, a.max_waiting,
    )  # fmt: skip


if __name__ == "__main__":
    _main()
