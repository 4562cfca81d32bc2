"""Read a model bundle: `manifest.json` plus one file per format, every file checked by sha256.

Layout written by `harness build` (see harness/modelbuild/pipeline.py):

    artifacts/<scenario>/<model-id>/
        manifest.json        what is here, the task and its outputs ("task", "classes", "outputs",
                             adapters/tasks.py), the feature order and types ("features", adapters/schema.py), parity
                             figures, versions; "absent": why a format is not in the bundle
        reference.npz        X (held-out or reference rows, float64 in the schema's encoding: categorical values
                             as category codes; NaN = missing), y (labels), p (the reference predictions: (n,)
                             or (n, k) class probabilities for a multiclass model, adapters/tasks.py)
        model.ir.json        the model IR (harness/modelbuild/ir.py)
        <one file per format: native, onnx, codegen-c, pmml, pfa, h2o-mojo>

manifest["formats"][<format>] = {"file": ..., "sha256": ..., "evaluator": ..., "parity": {...}, ...}

A file name in the manifest is a plain name inside the bundle folder: an absolute path, a `..` part or a
name that resolves outside the folder (a symlink) is refused. Adapters load a format from the bytes that
were checked (`verified_bytes`), never by checking a path and opening it again.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

import numpy as np

from adapters.errors import BundleError, FormatMissing
from adapters.schema import FeatureSchema
from adapters.tasks import TaskError, TaskSpec


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _check_sha(path: Path, actual: str, expected: str) -> None:
    if actual != expected:
        raise BundleError(
            f"bundle file {path} was changed: sha256 {actual[:12]}… does not match the manifest's {expected[:12]}…"
        )


def _plain_name(root: Path, name: object, what: str) -> Path:
    """`root / name` when `name` is a plain relative name that stays inside `root`; BundleError otherwise."""
    if not isinstance(name, str) or not name.strip():
        raise BundleError(f"bundle {root}: the manifest's file name for {what} is missing or not a string")
    posix, windows = PurePosixPath(name), PureWindowsPath(name)
    if posix.is_absolute() or windows.is_absolute() or windows.drive:
        raise BundleError(f"bundle {root}: the manifest names {what} by an absolute path ({name!r}): give a plain name")
    if ".." in posix.parts or ".." in windows.parts:
        raise BundleError(
            f"bundle {root}: the manifest's file name {name!r} for {what} leaves the bundle folder ('..')"
        )
    path = root / name
    try:
        path.resolve().relative_to(root.resolve())
    except ValueError:
        raise BundleError(f"bundle {root}: {name!r} for {what} resolves outside the bundle folder") from None
    return path


@dataclass
class Bundle:
    root: Path
    manifest: dict[str, Any]

    @classmethod
    def open(cls, root: str | Path) -> Bundle:
        root = Path(root)
        mpath = root / "manifest.json"
        if not mpath.is_file():
            raise BundleError(f"no model bundle at {root}: manifest.json is missing (run `harness build` first)")
        try:
            manifest = json.loads(mpath.read_text())
        except (OSError, ValueError) as e:
            raise BundleError(f"{mpath} is not valid JSON: {e}") from None
        return cls(root=root, manifest=manifest)

    @property
    def feature_names(self) -> list[str]:
        return list(self.manifest["feature_names"])

    @property
    def n_features(self) -> int:
        return len(self.manifest["feature_names"])

    @cached_property
    def schema(self) -> FeatureSchema:
        """Each feature's type and categories (manifest "features"; all numbers when the manifest has none); read
        once per Bundle (the adapters ask for it on every batch)."""
        try:
            return FeatureSchema.from_manifest(self.manifest)
        except (TypeError, ValueError) as e:
            raise BundleError(f"bundle {self.root}: manifest 'features' is not valid: {e}") from None

    @cached_property
    def task(self) -> TaskSpec:
        """What the model produces per record (manifest "task", "classes", "outputs"; adapters/tasks.py); a bundle
        without them is a binary classifier."""
        try:
            return TaskSpec.from_manifest(self.manifest)
        except TaskError as e:
            raise BundleError(f"bundle {self.root}: manifest 'task' is not valid: {e}") from None

    @property
    def model_id(self) -> str:
        return str(self.manifest["model_id"])

    def formats(self) -> list[str]:
        return sorted(self.manifest.get("formats", {}))

    def format_info(self, fmt: str) -> dict[str, Any]:
        info = self.manifest.get("formats", {}).get(fmt)
        if info is None:
            raise FormatMissing(
                f"bundle {self.root} has no {fmt!r} format (it has: {', '.join(self.formats()) or 'none'})"
            )
        return dict(info)

    def file_path(self, fmt: str) -> Path:
        """Where a format's file is (a plain name inside the bundle folder); for messages, not for loading."""
        return _plain_name(self.root, self.format_info(fmt).get("file"), f"format {fmt!r}")

    def verified_path(self, fmt: str) -> Path:
        """The path of a format's file after its sha256 matched the manifest; refuses otherwise.

        Only for an engine that can read nothing but a path, and then copy `verified_bytes` to a private
        file instead: a path checked here can be swapped before the engine opens it."""
        info = self.format_info(fmt)
        return self._verified(self.file_path(fmt), info["sha256"])

    def verified_bytes(self, fmt: str) -> bytes:
        """A format file's bytes, checked against the manifest's sha256 on the very bytes returned: load
        from these (not from the path), so a file swapped after the check is refused too."""
        return self._verified_bytes(self.file_path(fmt), self.format_info(fmt)["sha256"])

    @staticmethod
    def _verified_bytes(path: Path, expected: str) -> bytes:
        if not path.is_file():
            raise BundleError(f"bundle file {path} is missing")
        data = path.read_bytes()
        _check_sha(path, hashlib.sha256(data).hexdigest(), expected)
        return data

    def _verified(self, path: Path, expected: str) -> Path:
        if not path.is_file():
            raise BundleError(f"bundle file {path} is missing")
        _check_sha(path, sha256_file(path), expected)
        return path

    def reference(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(X, y, p_native) of the held-out rows, after the sha256 check. y: 0/1 (binary), class indices into
        "classes" (multiclass), numbers (regression), -1 (or NaN for regression) where no label was given;
        p: (n,) or, multiclass, (n, k) (adapters/tasks.py)."""
        ref = self.manifest["reference"]
        data = self._verified_bytes(_plain_name(self.root, ref.get("file"), "the reference rows"), ref["sha256"])
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            return z["X"], z["y"], z["p"]
