"""What a model produces for one record, by task: the one definition every adapter, the wire format, the parity
gate, the measurer and the monitor read.

    task         predict(X) returns                        named outputs (manifest "outputs")
    binary       (n,) float64: P(class 1)                  ["probability(1)"]  (the positive class's label)
    regression   (n,) float64: the predicted value         ["prediction"]
    multiclass   (n, k) float64: one probability per       ["probability(<class>)", ...] in the manifest's class
                 class, in the manifest's class order       order; the predicted class is the most probable one
                                                            (the first of equals: `predicted_class`)

The manifest (adapters/bundle.py) records it:

    "task": "multiclass",                        absent: "binary" (every bundle written before tasks existed)
    "classes": ["none", "tool_wear", ...],       multiclass: the labels, in output order (at least 3);
                                                 binary: optional, [negative, positive] (default ["0", "1"])
    "outputs": ["probability(none)", ...]        written by `TaskSpec.to_manifest`; checked against the task

Pure data, no model library: the wire codec and the measurer import it without loading any adapter.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

Task = Literal["binary", "regression", "multiclass"]
TASKS: tuple[str, ...] = ("binary", "regression", "multiclass")
PREDICTION = "prediction"


class TaskError(ValueError):
    """A manifest's task description that does not hold together, or model output of the wrong shape."""


def probability_name(label: str) -> str:
    return f"probability({label})"


@dataclass(frozen=True)
class TaskSpec:
    task: Task = "binary"
    classes: tuple[str, ...] = ("0", "1")

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise TaskError(f"unknown task {self.task!r}; valid: {', '.join(TASKS)}")
        if len(set(self.classes)) != len(self.classes):
            raise TaskError(f"class labels are not unique: {list(self.classes)}")
        if self.task == "binary" and len(self.classes) != 2:
            raise TaskError(f"a binary task has two classes, got {list(self.classes)}")
        if self.task == "multiclass" and len(self.classes) < 3:
            raise TaskError(
                f"a multiclass task has at least three classes, got {list(self.classes)} (two classes: task binary)"
            )
        if self.task == "regression" and self.classes:
            raise TaskError("a regression task has no classes")

    @classmethod
    def binary(cls, negative: str = "0", positive: str = "1") -> TaskSpec:
        return cls("binary", (negative, positive))

    @classmethod
    def regression(cls) -> TaskSpec:
        return cls("regression", ())

    @classmethod
    def multiclass(cls, classes: list[str] | tuple[str, ...]) -> TaskSpec:
        return cls("multiclass", tuple(str(c) for c in classes))

    @classmethod
    def from_manifest(cls, manifest: dict[str, Any]) -> TaskSpec:
        task = manifest.get("task", "binary")
        if task == "regression":
            if manifest.get("classes"):
                raise TaskError("a regression task has no classes")
            spec = cls.regression()
        elif task == "multiclass":
            spec = cls.multiclass(list(manifest.get("classes") or []))
        elif task == "binary":
            classes = manifest.get("classes") or ["0", "1"]
            spec = cls("binary", tuple(str(c) for c in classes))
        else:
            raise TaskError(f"unknown task {task!r}; valid: {', '.join(TASKS)}")
        outputs = manifest.get("outputs")
        if isinstance(outputs, list) and outputs and outputs != spec.output_names:
            raise TaskError(f"the manifest's outputs {outputs} do not match its task ({spec.output_names})")
        return spec

    def to_manifest(self) -> dict[str, Any]:
        out: dict[str, Any] = {"task": self.task}
        if self.classes:
            out["classes"] = list(self.classes)
        out["outputs"] = self.output_names
        return out

    # ---- outputs -------------------------------------------------------------------------------------------
    @property
    def n_outputs(self) -> int:
        """Columns predict returns per row: k for multiclass, else 1 (a vector)."""
        return len(self.classes) if self.task == "multiclass" else 1

    @property
    def vector(self) -> bool:
        """True when predict returns one number per row ((n,)), False for a matrix ((n, k))."""
        return self.task != "multiclass"

    @property
    def output_names(self) -> list[str]:
        if self.task == "regression":
            return [PREDICTION]
        if self.task == "binary":
            return [probability_name(self.classes[1])]
        return [probability_name(c) for c in self.classes]

    @property
    def meaning(self) -> str:
        if self.task == "regression":
            return "the predicted value"
        if self.task == "binary":
            return f"the probability of class {self.classes[1]!r}"
        return f"a probability for each of {len(self.classes)} classes ({', '.join(self.classes[:6])}" + (
            ", ...)" if len(self.classes) > 6 else ")"
        )

    def shape_of(self, out: Any, n_rows: int) -> np.ndarray:
        """A model's output as float64 of this task's shape ((n,) or (n, k)); TaskError when it has another size."""
        arr = np.ascontiguousarray(out, dtype=np.float64)
        if self.vector:
            if arr.size != n_rows:
                raise TaskError(f"returned {arr.size} values for {n_rows} rows")
            return arr.reshape(n_rows)
        k = self.n_outputs
        if arr.size != n_rows * k:
            raise TaskError(f"returned {arr.size} values for {n_rows} rows of {k} class probabilities")
        return arr.reshape(n_rows, k)

    def empty(self, n_rows: int) -> np.ndarray:
        """NaN output of this task's shape."""
        return np.full((n_rows,) if self.vector else (n_rows, self.n_outputs), np.nan)


V2_OUTPUT = {"binary": "probability", "regression": "prediction", "multiclass": "probabilities"}


def v2_output_name(task: str) -> str:
    """The Open Inference Protocol output a V2 server writes for a task: "probability" [n] (binary),
    "prediction" [n] (regression), "probabilities" [n, k] (multiclass, columns in class order)."""
    return V2_OUTPUT[task]


def finite_rows(out: np.ndarray) -> np.ndarray:
    """(n,) bool: rows whose every output is a finite number (a (n,) or (n, k) array)."""
    fin = np.isfinite(out)
    return fin if fin.ndim == 1 else fin.all(axis=1)


def predicted_class(probabilities: np.ndarray) -> np.ndarray:
    """(n,) int64: the most probable class of each row of (n, k) probabilities (the first of equal ones)."""
    return np.asarray(np.argmax(probabilities, axis=1), dtype=np.int64)


def row_value(out: np.ndarray, i: int) -> float | list[float]:
    """Row i of an output array: a float ((n,)) or a list of floats ((n, k))."""
    return float(out[i]) if out.ndim == 1 else [float(v) for v in out[i]]
