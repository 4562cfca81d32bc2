"""The external-server strategy: score through any Open Inference Protocol (KServe V2) REST server.

    adapter = RestAdapter.load(bundle_dir, url="http://127.0.0.1:8080")
    p = adapter.predict(X)          # one POST /v2/models/<model_name>/infer per max_rows_per_request rows

Works against any V2 server (harness/scoring/server.py, MLServer, KServe, Triton's HTTP endpoint): only the spec is
assumed. On load the adapter reads the model metadata (GET /v2/models/<name>) once: it checks the server
knows the model, takes the name and datatype of its single input from there (option input_name overrides),
and checks the feature count. Each batch goes as one input tensor [n, n_features], flat row-major data.
The output read follows the bundle's task (adapters/tasks.py): the one named "probability" (binary), "prediction"
(regression) or "probabilities" (multiclass: [n, k], columns in class order), or the only output when there is
one; a binary model's [n, 2] output (class probabilities) gives its second column.

Missing values: JSON has no NaN, so a NaN feature is sent as `null` (harness/scoring/server.py reads null, and
the string "NaN", back as NaN); a `null` score in a response becomes NaN.

Failures: connection errors, timeouts and 5xx answers are retried `retries` times with exponential
back-off (backoff_s, 2 x backoff_s, ...), then raise EngineUnavailable naming the URL: the server, not the
batch, is at fault, and the scoring loop pauses and backs off instead of dead-lettering the records. (A
5xx that one record provokes is told apart by the loop: it scores a row that scored before, and only when
that succeeds does it isolate and dead-letter the failing rows.) A 4xx answer is not retried: it raises
BadInput carrying the server's {"error": ...} message. An answer that is not a V2 response raises
ScoringFailed. One call waits at most (retries + 1) x timeout_s plus the back-off sleeps.

One httpx.Client per adapter: HTTP/1.1 keep-alive, the connection is reused across calls.
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import quote

import httpx
import numpy as np
import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from adapters.base import Adapter
from adapters.errors import AdapterError, BadInput, EngineUnavailable, ScoringFailed
from adapters.tasks import v2_output_name
from adapters.v2_types import MetadataModelResponse

OUTPUT_NAME = "probability"  # a binary model's output (v2_output_name gives each task's)
DEFAULT_INPUT_NAME = "input"


class RestOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(description="base URL of the V2 server, e.g. http://127.0.0.1:8080")
    model_name: str | None = Field(None, description="V2 model name; default: the bundle's model_id")
    timeout_s: float = Field(5.0, gt=0, description="connect/read/write timeout of one HTTP request")
    retries: int = Field(2, ge=0, description="extra attempts after a connection error, timeout or 5xx")
    backoff_s: float = Field(0.05, ge=0, description="sleep before the first retry; doubles each retry")
    max_rows_per_request: int = Field(1024, ge=1, description="larger batches are split into several requests")
    input_name: str | None = Field(None, description="input tensor name; default: from the model metadata")

    @field_validator("url")
    @classmethod
    def _http_url(cls, v: str) -> str:
        if not v.startswith(("http://", "https://")):
            raise ValueError(f"url must start with http:// or https://, got {v!r}")
        return v.rstrip("/")


class RestAdapter(Adapter):
    name = "rest"
    family = "external-server"
    format = None
    Options = RestOptions

    options: RestOptions

    def _open(self) -> None:
        o = self.options
        self.url = o.url
        self.model_name = o.model_name or self.bundle.model_id
        base = f"/v2/models/{quote(self.model_name, safe='')}"
        self._infer_path = f"{base}/infer"
        self._client = httpx.Client(
            base_url=o.url,
            timeout=httpx.Timeout(o.timeout_s),
            # expire idle connections before common servers do (uvicorn: 5 s), so a reused one is rarely stale
            limits=httpx.Limits(max_connections=16, max_keepalive_connections=16, keepalive_expiry=4.0),
            headers={"accept": "application/json"},
        )
        try:
            self._input_name, self._datatype = self._handshake(base)
        except BaseException:
            self._client.close()
            raise

    def _handshake(self, base: str) -> tuple[str, str]:
        """Read the model metadata; return (input name, input datatype) to send."""
        try:
            resp = self._send("GET", base, None)
        except BadInput as e:
            raise AdapterError(f"V2 server at {self.url} cannot serve model {self.model_name!r}: {e.args[0]}") from None
        try:
            meta = MetadataModelResponse.model_validate(orjson.loads(resp.content))
        except (orjson.JSONDecodeError, ValidationError) as e:
            raise ScoringFailed(
                f"V2 server at {self.url} answered GET {base} with invalid model metadata: {_one_line(str(e))}"
            ) from None
        name = self.options.input_name
        datatype = "FP64"
        if len(meta.inputs) == 1:
            tensor = meta.inputs[0]
            name = name or tensor.name
            if tensor.datatype in ("FP32", "FP64"):
                datatype = tensor.datatype
            width = tensor.shape[-1] if tensor.shape else -1
            if width not in (-1, self.n_features):
                raise AdapterError(
                    f"V2 model {self.model_name!r} at {self.url} takes {width} features, "
                    f"the bundle has {self.n_features}"
                )
        elif len(meta.inputs) > 1 and name is None:
            names = ", ".join(t.name for t in meta.inputs)
            raise AdapterError(
                f"V2 model {self.model_name!r} at {self.url} has {len(meta.inputs)} inputs ({names}); "
                "the rest adapter sends one [n, n_features] tensor: set option input_name"
            )
        return name or DEFAULT_INPUT_NAME, datatype

    def _predict(self, X: np.ndarray) -> np.ndarray:
        step = self.options.max_rows_per_request
        if X.shape[0] <= step:
            return self._infer(X)
        return np.concatenate([self._infer(X[i : i + step]) for i in range(0, X.shape[0], step)])

    def _infer(self, X: np.ndarray) -> np.ndarray:
        n = X.shape[0]
        body = orjson.dumps(
            {
                "inputs": [
                    {
                        "name": self._input_name,
                        "shape": [n, X.shape[1]],
                        "datatype": self._datatype,
                        "data": X.reshape(-1),  # row-major; orjson writes NaN as null
                    }
                ]
            },
            option=orjson.OPT_SERIALIZE_NUMPY,
        )
        resp = self._send("POST", self._infer_path, body)
        return self._read_output(resp.content, n)

    def _read_output(self, content: bytes, n: int) -> np.ndarray:
        def bad(why: str) -> ScoringFailed:
            return ScoringFailed(f"V2 server at {self.url} answered {self._infer_path} with {why}")

        try:
            doc = orjson.loads(content)
        except orjson.JSONDecodeError:
            raise bad("a body that is not JSON") from None
        outputs = doc.get("outputs") if isinstance(doc, dict) else None
        if not isinstance(outputs, list) or not outputs:
            raise bad("no 'outputs'")
        wanted = v2_output_name(self.task.task)
        out = next((o for o in outputs if isinstance(o, dict) and o.get("name") == wanted), None)
        if out is None:
            if len(outputs) != 1:
                names = ", ".join(str(o.get("name")) for o in outputs if isinstance(o, dict))
                raise bad(f"outputs {names} and none named {wanted!r}")
            out = outputs[0]
        if not isinstance(out, dict) or not isinstance(out.get("data"), list):
            raise bad("an output without a 'data' array")
        try:
            p = np.asarray(out["data"], dtype=np.float64)  # null -> NaN
        except (TypeError, ValueError):
            raise bad("a non-numeric output") from None
        if not self.task.vector:
            k = self.task.n_outputs
            if p.size != n * k:
                raise bad(f"{p.size} output values for {n} rows of {k} class probabilities")
            return p.reshape(n, k)
        if p.size == n:
            return p.reshape(n)
        if p.size == 2 * n:  # [n, 2] class probabilities: P(class 1) is the second column
            return p.reshape(n, 2)[:, 1]
        raise bad(f"{p.size} output values for {n} rows")

    def _send(self, method: str, path: str, body: bytes | None) -> httpx.Response:
        """One request with retries on connection errors, timeouts and 5xx (then EngineUnavailable); a 4xx raises
        BadInput."""
        o = self.options
        attempts = o.retries + 1
        headers = {"content-type": "application/json"} if body is not None else None
        last = ""
        for attempt in range(attempts):
            if attempt:
                time.sleep(o.backoff_s * 2 ** (attempt - 1))
            try:
                resp = self._client.request(method, path, content=body, headers=headers)
            except httpx.TransportError as e:  # connect/read/write errors and timeouts
                last = f"{type(e).__name__}: {_one_line(str(e)) or 'no detail'}"
                continue
            if resp.status_code >= 500:
                last = f"HTTP {resp.status_code}: {_error_message(resp)}"
                continue
            if resp.status_code >= 400:
                raise BadInput(
                    f"V2 server at {self.url} refused {method} {path} (HTTP {resp.status_code}): {_error_message(resp)}"
                )
            return resp
        tries = f"{attempts} attempt{'s' if attempts != 1 else ''}"
        raise EngineUnavailable(f"V2 server at {self.url} failed {method} {path} after {tries}: {last}")

    def _close(self) -> None:
        self._client.close()


def _error_message(resp: httpx.Response) -> str:
    """The V2 error body's message, else the start of the body text."""
    try:
        doc: Any = orjson.loads(resp.content)
    except orjson.JSONDecodeError:
        doc = None
    if isinstance(doc, dict) and isinstance(doc.get("error"), str):
        return _one_line(doc["error"])
    return _one_line(resp.text[:200]) or resp.reason_phrase or "no detail"


def _one_line(s: str) -> str:
    return " ".join(s.split())
