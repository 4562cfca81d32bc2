"""ONNX Runtime (CPU) in process.

    adapter = OnnxAdapter.load(bundle, intra_op_threads=1, graph_optimization="all")

The input dtype is whatever the graph declares (float32 for the official converters' tree
ensembles, float64 for graphs generated from the IR); the batch is cast to it. The output is the
manifest's `output_name` (default "probabilities"), read by the bundle's task (adapters/tasks.py):
    binary      column `output_column` (default 1) = P(class 1) of an (n, 2) tensor; an (n,) or (n, 1) tensor as is
    regression  the (n,) or (n, 1) tensor
    multiclass  the (n, k) tensor, columns in the manifest's class order
A ZipMap output (a list of {label: probability} per row, what skl2onnx and onnxmltools write by default) is read
by label: `output_keys` (the labels in class order; default: [output_column] for a binary model, the class
labels for a multiclass model, matched to integer labels when the graph's labels are integers).

A graph with one input per feature (what skl2onnx writes for a pipeline with a ColumnTransformer, e.g. a
OneHotEncoder on string columns) is fed by name: each input gets its bundle column, numbers cast to the input's
type, categorical features as their strings (the bundle schema). A missing value is the string "nan": that is how
skl2onnx writes scikit-learn's NaN category (a category when the encoder saw NaN in training, else unknown to it).
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from adapters.base import Adapter
from adapters.errors import BadInput, BundleError, ScoringFailed

_DTYPES = {"tensor(float)": np.float32, "tensor(double)": np.float64}
_NAMED_DTYPES: dict[str, Any] = {**_DTYPES, "tensor(int64)": np.int64, "tensor(string)": object}
MISSING_STRING = "nan"  # a missing categorical value in a string input: str(numpy.nan), as skl2onnx encodes it


class OnnxOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    intra_op_threads: int = Field(default=1, ge=1)
    inter_op_threads: int = Field(default=1, ge=1)
    graph_optimization: Literal["all", "extended", "basic", "disable"] = "all"


class OnnxAdapter(Adapter):
    name = "onnx"
    family = "onnx"
    format = "onnx"
    Options = OnnxOptions

    def _open(self) -> None:
        import onnxruntime as ort

        assert isinstance(self.options, OnnxOptions)
        info = self.bundle.format_info("onnx")
        data = self.bundle.verified_bytes("onnx")
        so = ort.SessionOptions()
        so.intra_op_num_threads = self.options.intra_op_threads
        so.inter_op_num_threads = self.options.inter_op_threads
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = {
            "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
            "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
            "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
            "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
        }[self.options.graph_optimization]
        so.log_severity_level = 3  # the converters' label output shape warnings are noise
        try:
            self._session = ort.InferenceSession(data, sess_options=so, providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own exception types
            raise BundleError(f"onnxruntime cannot load the ONNX model in {self.bundle.root}: {e}") from None
        inputs = self._session.get_inputs()
        self._named: list[tuple[str, int, Any, bool]] | None = None
        if len(inputs) > 1:
            self._named = [self._named_input(i) for i in inputs]
        else:
            self._open_matrix(inputs)
        names = [o.name for o in self._session.get_outputs()]
        self._output_name = str(info.get("output_name", "probabilities"))
        if self._output_name not in names:
            raise BundleError(f"ONNX model has no output {self._output_name!r} (outputs: {', '.join(names)})")
        self._column = int(info.get("output_column", 1 if self.task.task == "binary" else 0))
        keys = info.get("output_keys")
        if keys is None:
            keys = [self._column] if self.task.task == "binary" else list(self.task.classes)
        self._keys: list[Any] = list(keys)

    def _open_matrix(self, inputs: list[Any]) -> None:
        if len(inputs) != 1:
            raise BundleError(f"ONNX model has {len(inputs)} inputs, expected 1 (n, {self.n_features}) tensor")
        inp = inputs[0]
        self._input_name = inp.name
        dtype = _DTYPES.get(inp.type)
        if dtype is None:
            raise BundleError(f"ONNX input {inp.name!r} has type {inp.type}; expected tensor(float) or tensor(double)")
        self._dtype = dtype
        width = inp.shape[-1] if inp.shape else None
        if isinstance(width, int) and width != self.n_features:
            raise BundleError(f"ONNX input takes {width} features, manifest lists {self.n_features}")

    def _named_input(self, inp: Any) -> tuple[str, int, Any, bool]:
        """(name, bundle column, numpy dtype, 2-D) of one per-feature input."""
        if inp.name not in self.bundle.feature_names:
            raise BundleError(f"ONNX input {inp.name!r} is not one of the bundle's features")
        dtype = _NAMED_DTYPES.get(inp.type)
        if dtype is None:
            raise BundleError(f"ONNX input {inp.name!r} has type {inp.type}; expected float, double, int64 or string")
        return inp.name, self.bundle.feature_names.index(inp.name), dtype, len(inp.shape or []) == 2

    def _named_feed(self, X: np.ndarray) -> dict[str, np.ndarray]:
        assert self._named is not None
        features = self.bundle.schema.features
        feed: dict[str, np.ndarray] = {}
        for name, j, dtype, two_d in self._named:
            col = X[:, j]
            if dtype is object:
                strings = (features[j].string(v) if features[j].categorical else repr(v) for v in col.tolist())
                values = np.array([MISSING_STRING if v is None else v for v in strings], dtype=object)
            elif dtype is np.int64 and np.isnan(col).any():
                raise BadInput(f"ONNX input {name!r} is an int64 tensor: a value cannot be missing")
            else:
                values = col.astype(dtype)
            feed[name] = values.reshape(-1, 1) if two_d else values
        return feed

    def _predict(self, X: np.ndarray) -> np.ndarray:
        if self._named is not None:
            feed = self._named_feed(X)
        else:
            feed = {self._input_name: X if self._dtype is np.float64 else X.astype(self._dtype)}
        try:
            (out,) = self._session.run([self._output_name], feed)
        except Exception as e:
            raise ScoringFailed(f"onnxruntime failed: {e}") from None
        return read_output(out, self.task.task, self._column, self._keys)

    def _close(self) -> None:
        self._session = None


def read_output(out: Any, task: str, column: int, keys: list[Any]) -> np.ndarray:
    """An output as the task's shape: (n,) (binary: P(class 1), regression: the value) or (n, k)."""
    if isinstance(out, list):  # a ZipMap output: one {label: probability} dict per row
        if not out:
            return np.empty((0,) if task != "multiclass" else (0, len(keys)))
        keys = _zipmap_keys(out[0], keys)
        try:
            arr = np.asarray([[row[k] for k in keys] for row in out], dtype=np.float64)
        except KeyError as e:
            raise ScoringFailed(f"the ZipMap output has no label {e} (it has: {', '.join(map(str, out[0]))})") from None
        return arr if task == "multiclass" else arr[:, 0]
    arr = np.asarray(out, dtype=np.float64)
    if task == "multiclass":
        return arr
    if arr.ndim == 2 and arr.shape[1] > 1:
        return arr[:, column]
    return arr.reshape(-1)


def _zipmap_keys(row: dict[Any, Any], keys: list[Any]) -> list[Any]:
    """The manifest's labels as the ZipMap's keys: integer labels when the graph's labels are integers."""
    sample = next(iter(row), None)
    if isinstance(sample, int | np.integer):
        return [int(k) for k in keys]
    return [str(k) for k in keys]
