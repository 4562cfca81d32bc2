"""PMML through pypmml (pmml4s, Scala) inside the process's single JPype JVM.

pypmml normally starts its own JVM (JPype) or a separate Java process (py4j). Here it runs on the one JVM
`jvm.inprocess.ensure_jvm()` starts (pypmml's jars are on its class path): `_ProcessJvmGateway` is pypmml's
JPype gateway minus the `startJVM` call. The py4j gateway is never used.

Scoring goes around pypmml's Python `predict` (which builds a pandas frame and JSON per batch): the batch
becomes one Java `double[][]` and each row goes to pmml4s's `Model.predict(Object)`, which reads a row in
the order of the model's used schema and returns the output fields in order.

Categorical features (the bundle schema, adapters/schema.py): the batch holds category codes; when a field the
model uses is categorical, each row goes to pmml4s as an `Object[]` of Doubles and the category Strings (null
for missing, UNSEEN_TOKEN for an unseen category under the "as_is" rule), so the model sees the strings its
DataDictionary declares and applies its own rules to them.

The model is parsed from the very bytes whose sha256 matched the manifest (`Bundle.verified_bytes`, then
pmml4s's `Model.fromBytes`): a file swapped after the check is never read.

Output, by the bundle's task (adapters/tasks.py): the manifest's `output_fields` (one field per output, in output
order: a multiclass model's one probability field per class) or `output_field` (one); else the defaults, binary
`probability_1` (what harness.modelbuild.export_pmml writes) or `probability(1)`, regression `prediction` or the
document's only output field; a file without them is refused at load, naming the fields it has. A missing
prediction (null) becomes NaN (the scoring loop dead-letters it).

Failures: a Java exception on a row is ScoringFailed (the row's fault); a JVM that is gone or in trouble
(a java.lang.VirtualMachineError) is EngineUnavailable (adapters/java_engine.py).
"""

from __future__ import annotations

from typing import Any

import jpype
import numpy as np
from pypmml import Model
from pypmml.base import PMMLContext
from pypmml.jvm import JPypeGateway

from adapters.base import Adapter
from adapters.errors import AdapterError, BundleError, EngineUnavailable, ScoringFailed
from adapters.java_engine import is_jvm_failure, java_one_line, require_jvm
from adapters.schema import FeatureSchema
from jvm.errors import JvmError
from jvm.inprocess import ensure_jvm

OUTPUT_FIELDS = ("probability_1", "probability(1)")
PREDICTION_FIELDS = ("prediction",)


class _ProcessJvmGateway(JPypeGateway):  # type: ignore[misc]
    """pypmml's JPype gateway on the JVM jvm.inprocess starts: `launch_gateway` never calls startJVM."""

    def launch_gateway(self, java_opts: Any = None, java_path: Any = None) -> None:
        ensure_jvm()


def use_process_jvm() -> None:
    """Make pypmml's singleton context use the process JVM (idempotent); then `pypmml.Model` works as usual."""
    try:
        ensure_jvm()
    except JvmError as e:
        raise AdapterError(str(e)) from None
    try:
        jpype.JClass("org.pmml4s.model.Model")
    except TypeError:  # JPype's "class not found"
        raise AdapterError(
            "the process JVM was started without pypmml's jars (pmml4s): start it with jvm.inprocess.ensure_jvm()"
        ) from None
    with PMMLContext._lock:
        if PMMLContext._active_pmml_context is None:
            PMMLContext(gateway_instance=_ProcessJvmGateway())
        gateway = PMMLContext._gateway
    if not isinstance(gateway, JPypeGateway):
        raise AdapterError(
            f"pypmml already runs on its {gateway.name()} gateway in this process; "
            "the pmml adapter needs the in-process JPype JVM"
        )


class PmmlAdapter(Adapter):
    name = "pmml"
    family = "pmml"
    format = "pmml"

    def _open(self) -> None:
        data = self.bundle.verified_bytes("pmml")
        path = self.bundle.file_path("pmml")
        use_process_jvm()
        try:
            self._model = Model.fromBytes(jpype.JArray(jpype.JByte)(data))
        except Exception as e:  # pypmml wraps the Java exception into PMMLError(message)
            raise BundleError(f"pmml4s cannot load {path}: {java_one_line(e)}") from None
        jm = self._model._java_model
        self._java_model = jm
        self._columns, self._out_indices = self._layout(jm, str(path))
        self._out_index = self._out_indices[0]

    def _layout(self, jm: Any, path: str) -> tuple[np.ndarray | None, list[int]]:
        features = self.bundle.feature_names
        used = [str(n) for n in jm.usedSchema().fieldNames()]  # the order predict(Object) reads a row in
        unknown = [n for n in used if n not in features]
        if unknown:
            raise BundleError(f"{path} needs input field(s) {unknown} the bundle's feature names do not have")
        cols = np.array([features.index(n) for n in used], dtype=np.intp)
        columns = None if np.array_equal(cols, np.arange(len(features))) else cols
        schema = self.bundle.schema
        used_schema = FeatureSchema([schema.features[int(c)] for c in cols])
        self._strings: FeatureSchema | None = None if used_schema.all_numeric else used_schema
        outputs = [str(n) for n in jm.outputNames()]
        return columns, self._output_indices(outputs, path)

    def _output_indices(self, outputs: list[str], path: str) -> list[int]:
        info = self.bundle.format_info("pmml")  # an imported PMML names its own; export_pmml's are recorded too
        fields = info.get("output_fields") or ([info["output_field"]] if info.get("output_field") else None)
        if fields:
            missing = [f for f in fields if f not in outputs]
            if missing:
                raise BundleError(f"{path} has no output field {missing[0]} (it has: {', '.join(outputs)})")
            if len(fields) != self.task.n_outputs:
                raise BundleError(f"the manifest names {len(fields)} PMML output fields for {self.task.n_outputs}")
            return [outputs.index(f) for f in fields]
        if self.task.task == "multiclass":
            defaults = [f"probability_{c}" for c in range(self.task.n_outputs)]
            if all(f in outputs for f in defaults):
                return [outputs.index(f) for f in defaults]
            raise BundleError(f"{path}: the manifest names no output field per class (it has: {', '.join(outputs)})")
        candidates = OUTPUT_FIELDS if self.task.task == "binary" else PREDICTION_FIELDS
        for name in candidates:
            if name in outputs:
                return [outputs.index(name)]
        if self.task.task == "regression" and len(outputs) == 1:
            return [0]
        raise BundleError(f"{path} has no output field {' or '.join(candidates)} (it has: {', '.join(outputs)})")

    def _predict(self, X: np.ndarray) -> np.ndarray:
        require_jvm(self.name)
        if self._columns is not None:
            X = np.ascontiguousarray(X[:, self._columns])
        if self._strings is not None:  # Object[] rows: Doubles, category Strings, nulls
            rows = jpype.JArray(jpype.JObject, 2)(self._strings.strings(X))
        elif X.shape[1]:
            rows = jpype.JArray.of(X)
        else:  # JArray.of crashes the JVM on an (n, 0) array: a model with no inputs takes empty rows
            rows = [jpype.JArray(jpype.JDouble)(0)] * X.shape[0]
        predict = self._java_model.predict
        k = self._out_index
        out = self.task.empty(X.shape[0])
        i = 0
        try:
            if out.ndim == 1:
                for i in range(X.shape[0]):
                    v = predict(rows[i])[k]
                    out[i] = np.nan if v is None else float(v)
            else:
                indices = self._out_indices
                for i in range(X.shape[0]):
                    res = predict(rows[i])
                    out[i] = [np.nan if res[j] is None else float(res[j]) for j in indices]
        except jpype.JException as e:
            if is_jvm_failure(e):
                raise EngineUnavailable(f"pmml4s: the JVM failed: {java_one_line(e)}") from None
            raise ScoringFailed(f"pmml4s failed on row {i} of the batch: {java_one_line(e)}") from None
        return out

    def _close(self) -> None:
        # The JVM stays up (it is the process's, shared with other adapters); only drop the model.
        self._java_model = None
        self._model = None
