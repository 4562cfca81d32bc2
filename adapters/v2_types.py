"""Open Inference Protocol (KServe V2) REST payloads as pydantic models, in one place.

Spec: kserve/open-inference-protocol, specification/protocol/inference_rest.md (+ open_inference_rest.yaml).

    GET  /v2/health/live                       200 = live
    GET  /v2/health/ready                      200 = every model ready
    GET  /v2                                   MetadataServerResponse
    GET  /v2/models/{name}[/versions/{v}]      MetadataModelResponse      (error: InferenceErrorResponse)
    GET  /v2/models/{name}[/versions/{v}]/ready  200 = ready
    POST /v2/models/{name}[/versions/{v}]/infer  InferenceRequest -> InferenceResponse | InferenceErrorResponse

Tensor `data` is row-major, flat (`[1, 2, 4, 5]`) or nested (`[[1, 2], [4, 5]]`); a server may coerce
elements to the declared datatype. JSON has no NaN: in this project NaN travels as `null` (the string
"NaN" is accepted too); see harness/scoring/server.py.

These models document the wire format and validate the small payloads (metadata, readiness). The infer
hot path of harness/scoring/server.py and adapters/rest.py parses raw bytes with orjson instead: on a 1024 x 30
FP64 tensor, `InferenceRequest.model_validate_json` costs about 1.1 ms against 0.65 ms for orjson.loads,
before the conversion to numpy that both need.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict

# A tensor element: number, string, boolean, or null (this project's NaN); `data` nests lists of these.
TensorData = list[Any]


class Datatype(StrEnum):
    BOOL = "BOOL"
    UINT8 = "UINT8"
    UINT16 = "UINT16"
    UINT32 = "UINT32"
    UINT64 = "UINT64"
    INT8 = "INT8"
    INT16 = "INT16"
    INT32 = "INT32"
    INT64 = "INT64"
    FP16 = "FP16"
    FP32 = "FP32"
    FP64 = "FP64"
    BYTES = "BYTES"


class Parameters(BaseModel):
    """Zero or more name -> string | number | boolean pairs; no standard names are defined."""

    model_config = ConfigDict(extra="allow")


class _Payload(BaseModel):
    # Unknown keys are kept (extensions such as Triton's binary data add fields).
    model_config = ConfigDict(extra="allow")


class LiveResponse(_Payload):
    live: bool


class ReadyResponse(_Payload):
    ready: bool


class ModelReadyResponse(_Payload):
    name: str
    ready: bool


class MetadataServerResponse(_Payload):
    name: str
    version: str
    extensions: list[str] = []


class MetadataTensor(_Payload):
    name: str
    datatype: str
    shape: list[int]  # -1 = variable size


class MetadataModelResponse(_Payload):
    name: str
    versions: list[str] | None = None
    platform: str
    inputs: list[MetadataTensor] = []
    outputs: list[MetadataTensor] = []


class RequestInput(_Payload):
    name: str
    shape: list[int]
    datatype: str
    parameters: Parameters | None = None
    data: TensorData


class RequestOutput(_Payload):
    name: str
    parameters: Parameters | None = None


class InferenceRequest(_Payload):
    id: str | None = None
    parameters: Parameters | None = None
    inputs: list[RequestInput]
    outputs: list[RequestOutput] | None = None


class ResponseOutput(_Payload):
    name: str
    shape: list[int]
    datatype: str
    parameters: Parameters | None = None
    data: TensorData


class InferenceResponse(_Payload):
    model_name: str
    model_version: str | None = None
    id: str | None = None
    parameters: Parameters | None = None
    outputs: list[ResponseOutput]


class InferenceErrorResponse(_Payload):
    """The body of every 4xx/5xx answer: one descriptive message."""

    error: str
