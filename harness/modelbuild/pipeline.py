"""`harness build`: data -> train -> IR -> every format -> parity gate -> bundle.

    artifacts/<scenario>/<model-id>/manifest.json (+ files; see adapters/bundle.py for the layout)

The model id carries a content hash of the scenario's data+model sections and of the exporter code and
library versions, so an unchanged scenario is a cache hit (the bundle is verified, not rebuilt).
The parity gate scores the held-out rows through each format's own independent evaluator (the
adapters: onnxruntime, the compiled library, pypmml, titus2, h2o-genmodel) and fails the build when a
format is beyond its tolerance, naming the format, the row and both values.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import platform
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from adapters.bundle import Bundle, sha256_file
from adapters.errors import AdapterError
from adapters.tasks import TaskSpec
from harness.modelbuild import ir as ir_mod
from harness.modelbuild.errors import BuildError
from harness.modelbuild.parity import parity_gate, verify_bundle
from harness.modelbuild.trained import TrainedModel
from harness.scenario import Scenario

EXPORTER_VERSION = "1"  # bump when an exporter's output changes in a way the code hash would not show
_LIBS = ("lightgbm", "scikit-learn", "onnx", "onnxruntime", "onnxmltools", "skl2onnx", "treelite", "tl2cgen")
_LIBS_MORE = ("h2o", "pypmml", "titus2", "numpy", "jpype1")


@dataclass
class BuildResult:
    bundle_dir: Path
    cache_hit: bool
    seconds: float
    manifest: dict[str, Any]


def lib_versions(names: tuple[str, ...] = _LIBS + _LIBS_MORE) -> dict[str, str]:
    out = {}
    for n in names:
        try:
            out[n] = importlib.metadata.version(n)
        except importlib.metadata.PackageNotFoundError:
            continue
    return out


def code_hash() -> str:
    h = hashlib.sha256(EXPORTER_VERSION.encode())
    here = Path(__file__).parent
    for p in sorted(here.glob("*.py")) + sorted((here.parent / "datagen").glob("*.py")):
        h.update(p.name.encode())
        h.update(p.read_bytes())
    return h.hexdigest()


def cache_key(sc: Scenario) -> str:
    h = hashlib.sha256()
    h.update(sc.content_hash().encode())
    h.update(code_hash().encode())
    h.update(json.dumps(lib_versions(), sort_keys=True).encode())
    if sc.dataset is not None and sc.dataset.csv is not None:
        h.update(sha256_file(sc.dataset.csv).encode())
    return h.hexdigest()


# ------------------------------------------------------------------------------------------------
# data
# ------------------------------------------------------------------------------------------------


def load_data(sc: Scenario) -> tuple[np.ndarray, np.ndarray, list[str], TaskSpec]:
    """(X, y, feature names, task): y as the trainers take it (0/1, the value, or the class index: classes are the
    label's distinct values, sorted)."""
    ds = sc.dataset
    assert ds is not None, "a scenario with a bundle has no data to load"
    if ds.generator is not None:
        from harness.datagen import generate

        try:
            X, y, names = generate(ds.generator, ds.rows, ds.seed, **ds.params)
        except ValueError as e:
            raise BuildError(f"scenario {sc.name!r}: dataset: {e}") from None
    else:
        import pandas as pd

        assert ds.csv is not None
        if not ds.csv.is_file():
            raise BuildError(f"scenario {sc.name!r}: CSV file {ds.csv} does not exist")
        frame = pd.read_csv(ds.csv)
        if sc.label not in frame.columns:
            raise BuildError(f"scenario {sc.name!r}: CSV {ds.csv} has no label column {sc.label!r}")
        y = frame.pop(sc.label).to_numpy(dtype=object if sc.task == "multiclass" else None)
        names = list(frame.columns)
        try:
            X = frame.to_numpy(dtype=np.float64)
        except ValueError:
            raise BuildError(f"scenario {sc.name!r}: CSV {ds.csv} has non-numeric feature columns") from None
    if sc.features is not None:
        missing = [f for f in sc.features if f not in names]
        if missing:
            raise BuildError(
                f"scenario {sc.name!r}: feature {missing[0]!r} is not in the data (columns: {', '.join(names)})"
            )
        idx = [names.index(f) for f in sc.features]
        X, names = X[:, idx], list(sc.features)
    y, task = labels_for_task(sc, np.asarray(y))
    return np.ascontiguousarray(X, dtype=np.float64), y, names, task


def labels_for_task(sc: Scenario, y: np.ndarray) -> tuple[np.ndarray, TaskSpec]:
    """The label column as the scenario's task reads it; BuildError naming what is wrong."""
    if sc.task == "regression":
        try:
            values = np.asarray(y, dtype=np.float64)
        except (TypeError, ValueError):
            raise BuildError(f"scenario {sc.name!r}: a regression label must be numeric") from None
        if not np.isfinite(values).all():
            raise BuildError(f"scenario {sc.name!r}: the regression label has missing or infinite values")
        return values, TaskSpec.regression()
    if sc.task == "multiclass":
        text = np.asarray([str(v) for v in y.tolist()], dtype=object)
        classes = sorted(set(text.tolist()))
        if len(classes) < 3:
            raise BuildError(
                f"scenario {sc.name!r}: a multiclass label needs 3 or more distinct values, got {classes} "
                "(two classes: task binary)"
            )
        index = {c: i for i, c in enumerate(classes)}
        return np.asarray([index[v] for v in text.tolist()], dtype=np.int64), TaskSpec.multiclass(classes)
    try:
        values = np.asarray(y).astype(np.int64)
    except (TypeError, ValueError):
        raise BuildError(f"scenario {sc.name!r}: the label must take the values 0 and 1") from None
    if set(np.unique(values).tolist()) != {0, 1}:
        raise BuildError(f"scenario {sc.name!r}: the label must take the values 0 and 1")
    return values, TaskSpec.binary()


def split(sc: Scenario, X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    ds = sc.dataset
    assert ds is not None
    rng = np.random.default_rng(ds.seed + 1)
    order = rng.permutation(X.shape[0])
    n_hold = min(int(round(X.shape[0] * ds.holdout_fraction)), ds.holdout_max_rows)
    hold, train = order[:n_hold], order[n_hold:]
    return X[train], y[train], X[hold], y[hold]


def train_model(sc: Scenario, X: np.ndarray, y: np.ndarray, names: list[str], task: TaskSpec) -> TrainedModel:
    return train_recipe(Recipe.of(sc), X, y, names, f"scenario {sc.name!r}", task)


def train_recipe(
    r: Recipe, X: np.ndarray, y: np.ndarray, names: list[str], what: str, task: TaskSpec | None = None
) -> TrainedModel:
    """Train the recipe's model on (X, y) for `task` (binary when not given); `what` names it in an error."""
    if r.trainer == "lightgbm":
        from harness.modelbuild import train_lightgbm as trainer
    elif r.trainer == "sklearn":
        from harness.modelbuild import train_sklearn as trainer  # type: ignore[no-redef]
    elif r.trainer == "xgboost":
        from harness.modelbuild import train_xgboost as trainer  # type: ignore[no-redef]
    elif r.trainer == "h2o":
        from harness.modelbuild import train_h2o as trainer  # type: ignore[no-redef]
    else:
        raise BuildError(f"{what}: unknown trainer {r.trainer!r}")
    try:
        return trainer.train(r.algorithm, dict(r.params), X, y, names, r.seed, task=task or TaskSpec.binary())
    except (ValueError, TypeError) as e:
        raise BuildError(f"{what}: training {r.trainer}/{r.algorithm} failed: {e}") from None


@dataclass
class Recipe:
    """How a model is made: trainer, algorithm, parameters, seed, the formats it is exported to. Recorded in every
    bundle's manifest ("trainer" and "formats"), so the model can be trained again on new data (harness retrain)."""

    trainer: str
    algorithm: str
    params: dict[str, Any]
    seed: int
    formats: list[str]
    label: str = "label"

    @classmethod
    def of(cls, sc: Scenario) -> Recipe:
        m = sc.model
        return cls(m.trainer, m.algorithm, dict(m.params), m.seed, list(sc.formats), sc.label)

    @classmethod
    def from_manifest(cls, manifest: dict[str, Any]) -> Recipe:
        """The recipe a bundle records (bundles built before the seed and formats were recorded: seed 1, the
        formats it holds)."""
        t = manifest.get("trainer") or {}
        if t.get("name") not in ("lightgbm", "sklearn", "xgboost", "h2o"):
            raise BuildError(
                f"bundle {manifest.get('model_id')} records no training recipe (trainer {t.get('name')!r}): only "
                "models that `harness build` trained can be trained again"
            )
        held = [f for f in manifest.get("formats", {}) if f not in ("native", "ir")]
        return cls(
            str(t["name"]),
            str(t.get("algorithm", "gbm")),
            dict(t.get("params") or {}),
            int(t.get("seed", 1)),
            list(t.get("formats", held)),
            str(manifest.get("label") or "label"),
        )


# ------------------------------------------------------------------------------------------------
# build
# ------------------------------------------------------------------------------------------------


def build(
    sc: Scenario, artifacts: Path = Path("artifacts"), force: bool = False, log: Callable[[str], None] = print
) -> BuildResult:
    t0 = time.perf_counter()
    if sc.bundle is not None:
        return named_bundle(sc, log)
    key = cache_key(sc)
    model_id = f"{sc.model.trainer}-{sc.model.algorithm}-{key[:12]}"
    final = artifacts / sc.name / model_id
    if final.exists() and not force:
        try:
            verify_bundle(final)
            manifest = Bundle.open(final).manifest
            return BuildResult(final, True, time.perf_counter() - t0, manifest)
        except AdapterError as e:
            log(f"cached bundle {final} is not usable ({e}); rebuilding")
    work = final.with_name(model_id + ".partial")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    try:
        manifest = _build_into(sc, work, model_id, key, log)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    shutil.rmtree(final, ignore_errors=True)
    work.rename(final)
    return BuildResult(final, False, time.perf_counter() - t0, manifest)


def named_bundle(sc: Scenario, log: Callable[[str], None] = print) -> BuildResult:
    """A scenario's `bundle:` (from `harness import`): that bundle folder, or the newest bundle in a folder of
    bundles; verified (every sha256), never rebuilt."""
    t0 = time.perf_counter()
    assert sc.bundle is not None
    root = sc.bundle
    if not (root / "manifest.json").is_file():
        found = sorted(root.glob("*/manifest.json"), key=lambda p: p.stat().st_mtime) if root.is_dir() else []
        if not found:
            raise BuildError(f"scenario {sc.name!r}: bundle {root} is not a bundle folder nor a folder of bundles")
        root = found[-1].parent
        log(f"{sc.name}: using the newest bundle in {sc.bundle}: {root.name}")
    try:
        verify_bundle(root)
    except AdapterError as e:
        raise BuildError(f"scenario {sc.name!r}: bundle {root} is not usable: {e}") from None
    return BuildResult(root, True, time.perf_counter() - t0, Bundle.open(root).manifest)


def file_entry(root: Path, name: str, **extra: Any) -> dict[str, Any]:
    return {"file": name, "sha256": sha256_file(root / name), "bytes": (root / name).stat().st_size, **extra}


def _build_into(sc: Scenario, root: Path, model_id: str, key: str, log: Callable[[str], None]) -> dict[str, Any]:
    X, y, names, task = load_data(sc)
    Xtr, ytr, Xho, yho = split(sc, X, y)
    log(f"{sc.name}: {X.shape[0]} rows x {len(names)} features, {Xho.shape[0]} held out; training {sc.model.trainer}")
    return build_bundle(root, sc.name, model_id, key, Recipe.of(sc), (Xtr, ytr, Xho, yho), names, log, task=task)


def build_bundle(
    root: Path,
    name: str,
    model_id: str,
    key: str,
    recipe: Recipe,
    data: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    names: list[str],
    log: Callable[[str], None],
    extra: dict[str, Any] | None = None,
    task: TaskSpec | None = None,
) -> dict[str, Any]:
    """Train `recipe` on the training rows for `task` (binary when not given), export every format, hold each to the
    model on the held-out rows (the parity gate) and write the bundle into `root`; `data` is (X_train, y_train,
    X_holdout, y_holdout). Returns the manifest (with `extra` keys added)."""
    Xtr, ytr, Xho, yho = data
    task = task or TaskSpec.binary()
    t = time.perf_counter()
    cluster = None
    if recipe.trainer == "h2o":
        from harness.modelbuild.h2o_cluster import h2o_cluster

        cluster = h2o_cluster()
        cluster.__enter__()
    try:
        trained = train_recipe(recipe, Xtr, ytr, names, name, task)
    finally:
        if cluster is not None:
            cluster.__exit__(None, None, None)
    train_s = time.perf_counter() - t
    p_native = np.asarray(trained.reference_predict(Xho), dtype=np.float64)
    native_file = trained.save_native(root)
    ir_file = "model.ir.json"
    (root / ir_file).write_text(json.dumps(ir_mod.to_dict(trained.ir)))
    np.savez(root / "reference.npz", X=Xho, y=yho, p=p_native)

    formats: dict[str, dict[str, Any]] = {
        "native": file_entry(root, native_file, flavor=trained.flavor, algorithm=trained.algorithm),
        "ir": file_entry(root, ir_file),
    }
    exports: dict[str, Callable[[], dict[str, Any]]] = {
        "onnx": lambda: _export_onnx(trained, root),
        "codegen-c": lambda: _export_c(trained, root),
        "pmml": lambda: _export_pmml(trained, root),
        "pfa": lambda: _export_pfa(trained, root),
        "h2o-mojo": lambda: file_entry(root, native_file),
    }
    for fmt in recipe.formats:
        t = time.perf_counter()
        try:
            formats[fmt] = exports[fmt]()
        except (ValueError, NotImplementedError, RuntimeError, AdapterError) as e:
            raise BuildError(f"{name}: exporting {fmt} failed: {e}") from None
        formats[fmt]["export_seconds"] = round(time.perf_counter() - t, 3)
    n_rows = int(Xtr.shape[0] + Xho.shape[0])
    manifest: dict[str, Any] = {
        "schema": 1,
        "scenario": name,
        "model_id": model_id,
        "cache_key": key,
        **task.to_manifest(),
        "feature_names": names,
        "label": recipe.label,
        "output": output_meaning(task, recipe.label),
        "trainer": {
            "name": recipe.trainer,
            "algorithm": recipe.algorithm,
            "params": recipe.params,
            "seed": recipe.seed,
            "formats": list(recipe.formats),
        },
        "train_seconds": round(train_s, 3),
        "data": {
            "rows": n_rows,
            "train_rows": int(Xtr.shape[0]),
            "holdout_rows": int(Xho.shape[0]),
            "holdout_rows_with_nan": int(np.isnan(Xho).any(axis=1).sum()),
            **label_facts(task, np.concatenate([ytr, yho])),
        },
        "formats": formats,
        "reference": file_entry(root, "reference.npz", rows=int(Xho.shape[0])),
        "versions": {"python": platform.python_version(), **lib_versions(), **trained.library_versions()},
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **(extra or {}),
    }
    write_manifest(root, manifest)
    parity_gate(root, manifest, trained, Xho, p_native, log)
    write_manifest(root, manifest)
    return manifest


def output_meaning(task: TaskSpec, label: str | None) -> str:
    """The manifest's "output": what the scorer's results mean, in words."""
    name = label or "the label"
    if task.task == "regression":
        return f"the predicted {name}"
    if task.task == "multiclass":
        return f"the probability of each class of {name} ({', '.join(task.classes)}), and the most probable class"
    return f"probability that {name} = {task.classes[1]}"


def label_facts(task: TaskSpec, y: np.ndarray) -> dict[str, Any]:
    """What the manifest says of the labels: the positive rate, each class's share, or the target's spread."""
    if task.task == "regression":
        return {"label_mean": float(np.mean(y)), "label_std": float(np.std(y))}
    if task.task == "multiclass":
        counts = np.bincount(np.asarray(y, dtype=np.int64), minlength=task.n_outputs) / max(len(y), 1)
        return {"class_shares": {c: round(float(v), 6) for c, v in zip(task.classes, counts, strict=True)}}
    return {"positive_rate": float(np.mean(y))}


def write_manifest(root: Path, manifest: dict[str, Any]) -> None:
    (root / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=False))


def _export_onnx(trained: TrainedModel, root: Path) -> dict[str, Any]:
    name = "model.onnx"
    if trained.flavor == "h2o" and trained.ir.kind == "tree_ensemble" and trained.task.task == "binary":
        from harness.modelbuild.export_onnx_h2o import write_onnx_h2o
        from harness.modelbuild.train_h2o import NATIVE_FILE

        info = write_onnx_h2o(root / NATIVE_FILE, root / name)
    elif trained.flavor in ("h2o", "xgboost"):
        # onnxmltools converts only H2O binomial GBMs: an H2O GLM's (or regression / multinomial GBM's) ONNX is
        # generated from the IR (float64); so is XGBoost's, which then matches the IR's float64 reference
        # (onnxmltools' converter is float32)
        from harness.modelbuild.export_onnx import write_onnx_from_ir

        info = write_onnx_from_ir(trained.ir, root / name)
    else:
        from harness.modelbuild.export_onnx import write_onnx

        info = write_onnx(trained, root / name)
    return file_entry(root, name, **info)


def _export_c(trained: TrainedModel, root: Path) -> dict[str, Any]:
    from harness.modelbuild.export_c import compile_c

    name = compile_c(trained.ir, root)
    return file_entry(root, name, compiler="tl2cgen+gcc" if trained.ir.kind == "tree_ensemble" else "gcc")


def _export_pmml(trained: TrainedModel, root: Path) -> dict[str, Any]:
    from harness.modelbuild.export_pmml import write_pmml

    fields = write_pmml(trained.ir, root / "model.pmml")
    return file_entry(
        root, "model.pmml", pmml_version="4.4", exporter="harness.modelbuild.export_pmml", output_fields=fields
    )


def _export_pfa(trained: TrainedModel, root: Path) -> dict[str, Any]:
    from harness.modelbuild.export_pfa import write_pfa

    write_pfa(trained.ir, root / "model.pfa.json")
    return file_entry(root, "model.pfa.json", exporter="harness.modelbuild.export_pfa")
