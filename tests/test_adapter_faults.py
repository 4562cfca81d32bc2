"""Adapters load what was checked and say whose fault a failure is.

- Every format is loaded from the bytes whose sha256 matched the manifest: a file swapped right after the check
  (the window between checking a path and opening it again) is never loaded.
- A JVM-backed adapter raises EngineUnavailable when the JVM itself is in trouble (a VirtualMachineError) and
  ScoringFailed for an ordinary Java exception, so the scoring loop backs off for the first and isolates rows
  for the second.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from adapters.bundle import Bundle
from adapters.errors import EngineUnavailable, ScoringFailed
from adapters.registry import adapter_class


class SwappingBundle(Bundle):
    """A bundle whose format file is replaced by garbage the moment after it passed its sha256 check."""

    def _swap(self, fmt: str) -> None:
        self.file_path(fmt).write_bytes(b"swapped after the check: not a model")

    def verified_bytes(self, fmt: str) -> bytes:
        data = super().verified_bytes(fmt)
        self._swap(fmt)
        return data

    def verified_path(self, fmt: str) -> Path:
        path = super().verified_path(fmt)
        self._swap(fmt)
        return path


@pytest.mark.parametrize(
    ("scenario", "adapter"),
    [("fraud", "pmml"), ("fraud", "pfa"), ("fraud", "onnx"), ("fraud", "codegen-c"), ("maintenance", "h2o-mojo")],
)
def test_each_format_loads_the_bytes_that_were_checked(
    bundles: dict[str, Path], tmp_path: Path, scenario: str, adapter: str
) -> None:
    copy = tmp_path / "bundle"
    shutil.copytree(bundles[scenario], copy)
    b = Bundle.open(copy)
    X, _, p = b.reference()
    swapping = SwappingBundle(root=b.root, manifest=b.manifest)
    a = adapter_class(adapter).load(swapping)
    try:
        assert b"swapped" in swapping.file_path(a.format or "").read_bytes()  # the file on disk is garbage now
        got = a.predict(X[:20])
    finally:
        a.close()
    tolerance = 1e-5 if adapter == "onnx" else 1e-9
    assert np.abs(got - p[:20]).max() <= tolerance  # and yet the checked model scores


def _java_exception(name: str) -> Any:
    import jpype

    return jpype.JClass(name)("raised by the test")


class _FailingJavaLoop:
    """Stands in for the adapter's Java batch loop: throws a Java exception of class `cls`."""

    def __init__(self, cls: str) -> None:
        self.cls = cls

    def accept(self, flat: Any, out: Any) -> None:
        raise _java_exception(self.cls)


def test_h2o_mojo_tells_a_jvm_failure_from_a_row_failure(bundles: dict[str, Path]) -> None:
    a = adapter_class("h2o-mojo").load(bundles["maintenance"])
    X = np.zeros((2, a.n_features))
    real = a._scorer._loop  # type: ignore[attr-defined]
    try:
        for cls, expected in (
            ("java.lang.OutOfMemoryError", EngineUnavailable),
            ("java.lang.IllegalStateException", ScoringFailed),
        ):
            a._scorer._loop = _FailingJavaLoop(cls)  # type: ignore[attr-defined]
            with pytest.raises(expected, match="raised by the test"):
                a.predict(X)
        a._scorer._loop = real  # type: ignore[attr-defined]
        assert a.predict(X).shape == (2,)
    finally:
        a.close()


class _FailingJavaModel:
    def __init__(self, cls: str) -> None:
        self.cls = cls

    def predict(self, row: Any) -> Any:
        raise _java_exception(self.cls)


def test_pmml_tells_a_jvm_failure_from_a_row_failure(bundles: dict[str, Path]) -> None:
    a = adapter_class("pmml").load(bundles["fraud"])
    X = np.zeros((2, a.n_features))
    real = a._java_model  # type: ignore[attr-defined]
    try:
        a._java_model = _FailingJavaModel("java.lang.OutOfMemoryError")  # type: ignore[attr-defined]
        with pytest.raises(EngineUnavailable, match="the JVM failed"):
            a.predict(X)
        a._java_model = _FailingJavaModel("java.lang.IllegalArgumentException")  # type: ignore[attr-defined]
        with pytest.raises(ScoringFailed, match="failed on row 0"):
            a.predict(X)
        a._java_model = real  # type: ignore[attr-defined]
        assert a.predict(X).shape == (2,)
    finally:
        a.close()


def test_a_jvm_that_is_not_running_is_engine_unavailable(bundles: dict[str, Path], monkeypatch: Any) -> None:
    import jpype

    a = adapter_class("h2o-mojo").load(bundles["maintenance"])
    monkeypatch.setattr(jpype, "isJVMStarted", lambda: False)
    with pytest.raises(EngineUnavailable, match="the JVM is not running"):
        a.predict(np.zeros((1, a.n_features)))
