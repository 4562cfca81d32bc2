"""Reading an Open Inference Protocol (KServe V2) infer request: the body (size-limited) and its one input tensor.

The model takes exactly one input tensor of shape [n_rows, n_features], datatype FP64 (FP32 is accepted
and read as float64). Its name is not checked: the metadata calls it "input", and any single input is
taken, whatever its name. Tensor data may be flat (row-major) or nested as [[row], [row], ...].

Missing values: JSON has no NaN. A NaN crosses the wire as `null`; the strings "NaN"/"nan" are accepted
too. Per the spec ("the server can decide to coerce each element to the required type") other elements
are coerced as numpy's float64 conversion does: numeric strings such as "1.5" are read as numbers and
booleans as 0/1; any other string, object or ragged array is refused with 400. Infinity is refused.

Every refusal is a V2Error: an HTTP status and one line for the {"error": ...} body.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
from starlette.requests import Request

OUTPUT_NAME = "probability"
ACCEPTED_DATATYPES = ("FP64", "FP32")


class V2Error(Exception):
    """A request the server refuses: carries the HTTP status and the one-line message of the error body."""

    def __init__(self, status_code: int, message: str) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.message = message


async def read_body(request: Request, max_body_bytes: int) -> bytes:
    """The request body, refused with 413 as soon as it is known to exceed max_body_bytes."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            n = int(declared)
        except ValueError:
            raise V2Error(400, f"Content-Length {declared!r} is not a number") from None
        if n > max_body_bytes:
            raise V2Error(413, f"request body of {n} bytes exceeds the server's limit of {max_body_bytes} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_body_bytes:
            raise V2Error(413, f"request body exceeds the server's limit of {max_body_bytes} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def parse_infer_request(
    body: bytes, n_features: int, max_rows: int | None = None, output_name: str = OUTPUT_NAME
) -> tuple[np.ndarray, str | None, list[str] | None]:
    """(X as (n, n_features) float64, the request id or None, requested output names or None).

    A request of more than `max_rows` rows is refused with 413 from its declared shape, before its data is
    converted."""
    req = _request_object(body)
    rid = req.get("id")
    if rid is not None and not isinstance(rid, str):
        raise V2Error(400, "'id' must be a string")
    params = req.get("parameters")
    if params is not None and not isinstance(params, dict):
        raise V2Error(400, "'parameters' must be a JSON object")
    outputs = _requested_outputs(req.get("outputs"), output_name)
    inp = _the_input(req.get("inputs"), n_features)
    n_rows, n_cols = _shape(inp["shape"], n_features, max_rows)
    return _data(inp["data"], n_rows, n_cols), rid, outputs


def _request_object(body: bytes) -> dict[str, Any]:
    if not body:
        raise V2Error(400, "request body is empty: send an inference request JSON object")
    try:
        req = orjson.loads(body)
    except orjson.JSONDecodeError as e:
        raise V2Error(400, f"request body is not valid JSON: {e}") from None
    if not isinstance(req, dict):
        raise V2Error(400, "request body must be a JSON object with an 'inputs' array")
    return req


def _the_input(inputs: Any, n_features: int) -> dict[str, Any]:
    """The request's one input tensor, with a name, a shape, a supported datatype and data."""
    if not isinstance(inputs, list):
        raise V2Error(400, "'inputs' is missing or not an array")
    if len(inputs) != 1:
        raise V2Error(
            400, f"the model takes exactly one input tensor [n_rows, {n_features}] FP64, got {len(inputs)} inputs"
        )
    inp = inputs[0]
    if not isinstance(inp, dict):
        raise V2Error(400, "inputs[0] must be a JSON object with name, shape, datatype and data")
    for key in ("name", "shape", "datatype", "data"):
        if key not in inp:
            raise V2Error(400, f"inputs[0] has no {key!r}")
    if not isinstance(inp["name"], str):
        raise V2Error(400, "inputs[0].name must be a string")
    if inp["datatype"] not in ACCEPTED_DATATYPES:
        raise V2Error(400, f"inputs[0].datatype {inp['datatype']!r} is not supported: use FP64 (or FP32)")
    return inp


def _shape(shape: Any, n_features: int, max_rows: int | None) -> tuple[int, int]:
    if (
        not isinstance(shape, list)
        or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)
        or len(shape) != 2
    ):
        raise V2Error(400, f"inputs[0].shape must be [n_rows, {n_features}], got {shape!r}")
    n_rows, n_cols = shape
    if n_cols != n_features:
        raise V2Error(400, f"inputs[0].shape {shape} has {n_cols} columns, the model takes {n_features}")
    if n_rows == 0:
        raise V2Error(400, "batch is empty: give at least one row")
    if max_rows is not None and n_rows > max_rows:
        raise V2Error(413, f"request has {n_rows} rows; this server takes at most {max_rows} per request: split it")
    return n_rows, n_cols


def _data(data: Any, n_rows: int, n_cols: int) -> np.ndarray:
    """The tensor data (flat row-major or nested rows) as an (n_rows, n_cols) float64 array."""
    shape = [n_rows, n_cols]
    if not isinstance(data, list):
        raise V2Error(400, "inputs[0].data must be a JSON array (flat row-major or nested rows)")
    try:
        arr = np.asarray(data, dtype=np.float64)
    except (TypeError, ValueError):
        raise V2Error(
            400, "inputs[0].data has a non-numeric or ragged element: give numbers, or null for missing"
        ) from None
    if arr.size != n_rows * n_cols:
        raise V2Error(400, f"inputs[0].data has {arr.size} elements, shape {shape} needs {n_rows * n_cols}")
    if arr.ndim != 1 and arr.shape != (n_rows, n_cols):
        raise V2Error(400, f"inputs[0].data is nested as {list(arr.shape)}, which is not its shape {shape}")
    return arr.reshape(n_rows, n_cols)


def _requested_outputs(outputs: Any, output_name: str) -> list[str] | None:
    if outputs is None:
        return None
    if not isinstance(outputs, list) or not all(
        isinstance(o, dict) and isinstance(o.get("name"), str) for o in outputs
    ):
        raise V2Error(400, "'outputs' must be an array of objects with a 'name'")
    names = [o["name"] for o in outputs]
    unknown = [n for n in names if n != output_name]
    if unknown:
        raise V2Error(400, f"unknown output {unknown[0]!r}: the model's only output is {output_name!r}")
    return names
