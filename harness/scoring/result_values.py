"""How the loop writes a result's value: the bytes wire.ResultCodec defines for the model's task and the encoding.

    values = ResultValues(task, encoding, log)
    values.native                 harness_native.Results: the native producer encodes each row of the scores
                                  itself (one number: binary, regression; k class probabilities: multiclass;
                                  JSON or f64le), or None when native code does not know the task or encoding
    values.python(batch, scores, failures)
                                  the values encoded here by wire.ResultCodec, one per decoded row (None for a
                                  failed row): what the native producer writes when `native` is None

Every task and encoding wire.py has today is encoded natively (tests/test_native_results.py holds the native bytes
to ResultCodec's, and the loop's results through both paths to each other on the real broker). A task or encoding
added to wire.py later is encoded in Python until native code learns it: correct bytes, at Python's cost per
record, and one log line when the loop starts saying so.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from harness_native import Batch, Results

from adapters.tasks import TaskSpec
from harness.scoring import wire

# the tasks whose values harness_native.Results writes (one number per row, or k class probabilities)
NATIVE_TASKS: tuple[str, ...] = ("binary", "regression", "multiclass")


def native_encoder(codec: wire.ResultCodec) -> tuple[Results | None, str]:
    """The native encoder of `codec`'s values, or None and why not."""
    task = codec.task
    if task.task not in NATIVE_TASKS:
        return None, f"native code encodes the values of {', '.join(NATIVE_TASKS)} models, not {task.task}"
    try:
        return Results(codec.encoding, None if task.vector else list(task.classes)), ""
    except ValueError as e:
        return None, str(e)


class ResultValues:
    def __init__(self, task: TaskSpec, encoding: wire.Encoding, log: Callable[[str], None]) -> None:
        self.codec = wire.ResultCodec(task, encoding)
        self.native, why = native_encoder(self.codec)
        if self.native is None:
            log(
                f"results of this {task.task} model in {encoding} are encoded in Python (wire.ResultCodec), "
                f"not in native code: {why}"
            )

    def python(self, batch: Batch, scores: np.ndarray, failures: dict[int, str] | None = None) -> list[bytes | None]:
        """Each decoded row's value as ResultCodec writes it (the rid as the input carried it); None for a row
        in `failures`."""
        encode, rows = self.codec.encode, scores.tolist()
        return [
            None if failures and k in failures else encode(None if rid is None else rid.decode("utf-8", "replace"), v)
            for k, (rid, v) in enumerate(zip(batch.rids(), rows, strict=True))
        ]
