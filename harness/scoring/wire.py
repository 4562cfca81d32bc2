"""The wire format between the load generator, every scorer (Python loop or Kafka Streams app) and the measurer.

Input record (input topic)
    key      opaque bytes (the entity, e.g. card id); echoed unchanged on the result
    headers  all optional: a production producer may send none. The load generator writes
             rid            record id, UTF-8; unique per sent record: "<point>-<seq>" (`record_id`,
                            `parse_record_id`): the measurer finds the point and the reference row (seq % rows)
             t_intended_ns  intended send time, ns since the Unix epoch, ASCII decimal
             t_sent_ns      actual send time, same unit
    value    encoding "json":  a JSON object {feature name: number or null}; a missing name or null is NaN.
                               With a bundle schema (adapters/schema.py) a categorical feature is a string (or
                               null), decoded to its category code; a value of the wrong type is a DecodeError
             encoding "f64le": n_features IEEE-754 float64, little-endian, in the bundle's feature order; NaN = missing
             an infinite value is refused (dead-lettered at stage "decode")

Result record (output topic)
    key      the input's key
    headers  rid, t_intended_ns, t_sent_ns copied from the input when it has them, plus
             src            "<topic>/<partition>/<offset>" of the input: unique per input record, so a consumer
                            downstream removes the duplicates an at-least-once scorer writes after a crash
             t_consumed_ns  when the scorer polled the record
             t_scored_ns    when the batch holding it was scored
             scorer         the adapter's name (e.g. "onnx", "kstreams-mojo")
             (`result_headers` defines them; the loop's native producer (harness_native) and Wire.java
             write the same names in the same order: tests/test_native_loop.py holds the native one to it)
    value    what the model's task produces (adapters/tasks.py; `ResultCodec` is the one encoder and decoder; the
             loop's native encoder, harness_native.Results, writes the same bytes: tests/test_native_results.py):
             binary, regression (one number: P(class 1), or the predicted value)
               encoding "json":  {"rid": "<rid>", "score": <number>}, without "rid" when the input had none
               encoding "f64le": one float64, little-endian
             multiclass (k classes, named in the bundle's manifest)
               encoding "json":  {"rid": "<rid>", "class": "<the most probable class>",
                                  "probabilities": {"<class>": <p>, ...}}   (classes in the manifest's order)
               encoding "f64le": k float64, little-endian, the class probabilities in the manifest's order

Dead-letter record (the input topic's name + ".dlq" unless configured)
    key, value and headers of the input unchanged, plus (`dead_letter_headers`)
             dlq_reason     one line saying what was wrong
             dlq_stage      "decode" (the value) or "score" (the model failed on the row alone, or returned a
                            score that is not a finite number)
             dlq_source     "<topic>/<partition>/<offset>"
             src            the same, under the name results carry it
"""

from __future__ import annotations

import math
import struct
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import orjson

from adapters.schema import FeatureSchema, SchemaError
from adapters.tasks import TaskSpec

if TYPE_CHECKING:
    from adapters.bundle import Bundle

Encoding = Literal["json", "f64le"]
ENCODINGS: tuple[str, ...] = ("json", "f64le")

H_RID = "rid"
H_INTENDED = "t_intended_ns"
H_SENT = "t_sent_ns"
H_CONSUMED = "t_consumed_ns"
H_SCORED = "t_scored_ns"
H_SCORER = "scorer"
H_DLQ_REASON = "dlq_reason"
H_DLQ_STAGE = "dlq_stage"
H_DLQ_SOURCE = "dlq_source"
H_SRC = "src"
COPIED_HEADERS = (H_RID, H_INTENDED, H_SENT)
_COPIED = frozenset(COPIED_HEADERS)
_NUMERIC_OR_NULL = frozenset({float, int, type(None)})  # exact types: a bool is not a number here


class DecodeError(ValueError):
    """A record's value does not match the encoding or the model's features."""


def now_ns() -> int:
    return time.time_ns()


def check_encoding(name: str) -> Encoding:
    if name not in ENCODINGS:
        raise ValueError(f"unknown encoding {name!r}; valid: {', '.join(ENCODINGS)}")
    return name  # type: ignore[return-value]


def record_id(point: str, seq: int) -> str:
    """The load generator's record id: "<point>-<seq>" (the point's prefix never ends in "-<digits>")."""
    return f"{point}-{seq}"


def parse_record_id(rid: str) -> tuple[str, int] | None:
    """(point, seq) of a load-generator record id, or None for any other id."""
    point, _, seq = rid.rpartition("-")
    if not point or not seq.isdigit():
        return None
    return point, int(seq)


def source(topic: str | None, partition: int | None, offset: int | None) -> bytes:
    """The `src` header value: where the input record was read, "<topic>/<partition>/<offset>"."""
    return f"{topic}/{partition}/{offset}".encode()


def carried(headers: Any) -> tuple[list[tuple[str, bytes]], bytes | None, bytes | None]:
    """The input headers a result carries over (rid and the two input times, those the input has), and the
    rid and intended-time values among them (harness_native's Producer.emit does the same in native code)."""
    out: list[tuple[str, bytes]] = []
    rid = intended = None
    for name, value in headers or ():
        if value is None or name not in _COPIED:
            continue
        out.append((name, value))
        if name == H_RID:
            rid = value
        elif name == H_INTENDED:
            intended = value
    return out, rid, intended


def result_headers(
    copied: list[tuple[str, bytes]],
    src: bytes,
    consumed: tuple[str, bytes],
    scored: tuple[str, bytes],
    scorer: tuple[str, bytes],
) -> list[tuple[str, bytes]]:
    """A result's headers: the carried input headers (`carried`: rid, t_intended_ns, t_sent_ns, those the input
    has), its source, then when it was consumed and scored, and by whom.

    The definition: the scoring loop's native producer (harness_native's Producer.emit, then `model`) and the
    Kafka Streams app (contestants/kstreams_mojo, Wire.java) write the same names in the same order."""
    copied.extend(((H_SRC, src), consumed, scored, scorer))
    return copied


def dead_letter_headers(original: Any, reason: str, stage: str, src: bytes) -> list[tuple[str, Any]]:
    """A dead letter's headers: the input's own, unchanged, then why, at which stage, and where it was read."""
    return list(original or []) + [
        (H_DLQ_REASON, one_line(reason).encode()),
        (H_DLQ_STAGE, stage.encode()),
        (H_DLQ_SOURCE, src),
        (H_SRC, src),
    ]


def one_line(text: str, limit: int = 500) -> str:
    """A message as one line of at most `limit` characters (for a header or a log)."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def headers_dict(headers: Any) -> dict[str, bytes]:
    """confluent-kafka's header list [(name, bytes | None)] as a dict (later duplicates win)."""
    return {k: (v if isinstance(v, bytes) else str(v).encode()) for k, v in (headers or []) if v is not None}


class FeatureCodec:
    """Encodes and decodes feature rows for one model's feature order.

    With a `schema` that has categorical features (or missing-value markers), the JSON encoding carries
    categorical values as strings: `decode_into` turns them into category codes (adapters/schema.py) and refuses
    a value of the wrong type with a DecodeError naming the feature; `encode` writes the strings back. An
    all-numeric schema (or none) keeps the numeric path as it is. f64le always carries the codes.
    """

    def __init__(self, feature_names: Sequence[str], encoding: Encoding, schema: FeatureSchema | None = None) -> None:
        self.feature_names = list(feature_names)
        self.index = {n: i for i, n in enumerate(self.feature_names)}
        self.encoding = check_encoding(encoding)
        self.n = len(self.feature_names)
        self._struct = struct.Struct(f"<{self.n}d")
        self.schema = schema
        self.schema_numeric = schema is None or schema.all_numeric
        self._known = frozenset(self.feature_names)
        if schema is not None and schema.names != self.feature_names:
            raise ValueError("the schema's feature names differ from the codec's feature names")
        if schema is not None and not schema.all_numeric and self.encoding == "json":
            self.decode_into = self._decode_json_schema_into  # type: ignore[method-assign]
            self.encode = self._encode_json_schema  # type: ignore[method-assign]

    @classmethod
    def for_bundle(cls, bundle: Bundle, encoding: Encoding) -> FeatureCodec:
        """The codec for a bundle's features and their types (what the loop and the load generator should use)."""
        return cls(bundle.feature_names, encoding, schema=bundle.schema)

    def encode(self, row: np.ndarray) -> bytes:
        if self.encoding == "f64le":
            return np.asarray(row, dtype="<f8").tobytes()
        obj = {name: (None if math.isnan(v) else float(v)) for name, v in zip(self.feature_names, row, strict=True)}
        return orjson.dumps(obj)

    def decode_into(self, value: bytes | None, out: np.ndarray) -> None:
        """Decode one value into `out` (a row of the batch array). Raises DecodeError."""
        if value is None:
            raise DecodeError("record has no value")
        if self.encoding == "f64le":
            if len(value) != 8 * self.n:
                raise DecodeError(f"f64le value has {len(value)} bytes, expected {8 * self.n} ({self.n} features)")
            vals = self._struct.unpack(value)
            total = sum(vals)  # finite unless a value is NaN or infinite (or the sum overflows): then look closer
            if (total != total or math.isinf(total)) and any(math.isinf(v) for v in vals):
                bad = next(name for name, v in zip(self.feature_names, vals, strict=True) if math.isinf(v))
                raise DecodeError(f"feature {bad!r} is infinite: use NaN for missing")
            out[:] = vals
            return
        obj = _json_object(value)
        row = [math.nan] * self.n
        index = self.index
        for k, v in obj.items():
            j = index.get(k)
            if j is None:
                raise DecodeError(f"unknown feature {k!r}")
            t = type(v)
            if t is float or t is int:  # exact types: bool (a subclass of int) is refused below
                row[j] = v
            elif v is not None:
                raise DecodeError(f"feature {k!r} is not a number: {v!r}")
        out[:] = row

    def decode_batch(self, values: Sequence[bytes | None], out: np.ndarray) -> tuple[list[int], list[tuple[int, str]]]:
        """Decode a micro-batch into out[0:k]: (the indices of the values decoded, in order; (index, reason) of
        each value that could not be). A bad value costs only itself.

        All-numeric JSON takes a batch path: one orjson call for the whole batch, then one column at a time
        (numpy turns a JSON null into NaN); any value the batch path cannot vouch for goes through decode_into."""
        if self.encoding == "json" and self.schema_numeric and len(values) > 1:
            fast = self._decode_json_batch(values, out)
            if fast is not None:
                return fast
        rows: list[int] = []
        errors: list[tuple[int, str]] = []
        for i, v in enumerate(values):
            try:
                self.decode_into(v, out[len(rows)])
            except DecodeError as e:
                errors.append((i, str(e)))
                continue
            rows.append(i)
        return rows, errors

    def _decode_json_batch(
        self, values: Sequence[bytes | None], out: np.ndarray
    ) -> tuple[list[int], list[tuple[int, str]]] | None:
        """The all-numeric JSON batch path, or None when the batch needs the record-by-record one."""
        if None in values:
            return None
        try:
            objs = orjson.loads(b"[" + b",".join(values) + b"]")  # type: ignore[arg-type]
        except orjson.JSONDecodeError:
            return None  # a value that is not JSON (or holds several): find it record by record
        if len(objs) != len(values):
            return None
        known = self._known
        if not all(type(o) is dict and o.keys() <= known for o in objs):
            return None
        n = len(objs)
        for j, name in enumerate(self.feature_names):
            col = [o.get(name) for o in objs]
            if not set(map(type, col)) <= _NUMERIC_OR_NULL:  # strings, bools, lists: say which, record by record
                return None
            out[:n, j] = np.array(col, dtype=np.float64)  # None -> NaN
        return list(range(n)), []

    def _decode_json_schema_into(self, value: bytes | None, out: np.ndarray) -> None:
        """decode_into for a schema with categorical features: strings become category codes."""
        if value is None:
            raise DecodeError("record has no value")
        obj = _json_object(value)
        assert self.schema is not None
        features = self.schema.features
        row = [math.nan] * self.n
        index = self.index
        for k, v in obj.items():
            j = index.get(k)
            if j is None:
                raise DecodeError(f"unknown feature {k!r}")
            try:
                row[j] = features[j].code(v)
            except SchemaError as e:
                raise DecodeError(str(e)) from None
        out[:] = row

    def _encode_json_schema(self, row: np.ndarray) -> bytes:
        assert self.schema is not None
        values = self.schema.strings(np.asarray(row, dtype=np.float64).reshape(1, -1))[0]
        return orjson.dumps(dict(zip(self.feature_names, values, strict=True)))

    def decode(self, value: bytes | None) -> np.ndarray:
        row = np.empty(self.n, dtype=np.float64)
        self.decode_into(value, row)
        return row


def _json_object(value: bytes) -> dict[str, Any]:
    """A JSON feature record's value as the object of features it must be; DecodeError otherwise."""
    try:
        obj = orjson.loads(value)
    except orjson.JSONDecodeError as e:
        raise DecodeError(f"value is not JSON: {e}") from None
    if not isinstance(obj, dict):
        raise DecodeError(f"value must be a JSON object of features, got {type(obj).__name__}")
    return obj


def encode_score(rid: str | None, score: float, encoding: Encoding) -> bytes:
    """A result's value; the JSON form carries "rid" only when the input had one."""
    if encoding == "f64le":
        return struct.pack("<d", score)
    if rid is None:
        return orjson.dumps({"score": score})
    return orjson.dumps({"rid": rid, "score": score})


def decode_score(value: bytes, encoding: Encoding) -> float:
    if encoding == "f64le":
        return float(struct.unpack("<d", value)[0])
    return float(orjson.loads(value)["score"])


def encode_probabilities(
    rid: str | None, probabilities: Sequence[float], classes: Sequence[str], encoding: Encoding
) -> bytes:
    """A multiclass result's value: the class probabilities (in `classes` order) and the most probable class (the
    first of equal ones); f64le: the k probabilities. A non-finite probability is written as null (JSON)."""
    if encoding == "f64le":
        return struct.pack(f"<{len(probabilities)}d", *probabilities)
    best = max(range(len(probabilities)), key=lambda j: (probabilities[j], -j))
    body: dict[str, Any] = {} if rid is None else {"rid": rid}
    body["class"] = classes[best]
    body["probabilities"] = dict(zip(classes, probabilities, strict=True))
    return orjson.dumps(body)


def decode_probabilities(value: bytes, classes: Sequence[str], encoding: Encoding) -> np.ndarray:
    """(k,) float64 of a multiclass result, in `classes` order; ValueError / KeyError / TypeError when it is not one."""
    k = len(classes)
    if encoding == "f64le":
        if len(value) != 8 * k:
            raise ValueError(f"f64le result has {len(value)} bytes, expected {8 * k} ({k} class probabilities)")
        return np.frombuffer(value, dtype="<f8").astype(np.float64)
    probs = orjson.loads(value)["probabilities"]
    return np.asarray([probs[c] for c in classes], dtype=np.float64)


class ResultCodec:
    """Encodes a result's value and decodes it, for one task and encoding: a number (binary, regression) or the
    class probabilities (multiclass). `encode(rid, value)` takes what one row of `predict` holds (a float, or a list
    of k floats); `decode(value)` returns a float, or (k,) float64."""

    def __init__(self, task: TaskSpec, encoding: Encoding) -> None:
        self.task = task
        self.encoding = check_encoding(encoding)
        self.classes = list(task.classes)

    def encode(self, rid: str | None, value: Any) -> bytes:
        if self.task.vector:
            return encode_score(rid, value, self.encoding)
        return encode_probabilities(rid, value, self.classes, self.encoding)

    def decode(self, value: bytes) -> Any:
        if self.task.vector:
            return decode_score(value, self.encoding)
        return decode_probabilities(value, self.classes, self.encoding)
