"""`harness import`: bring your own model. An existing artifact (harness/modelbuild/import_readers.py) and a reference
table of feature rows become a bundle with the layout, manifest and sha256 rules of `harness build`:

    artifacts/<name>/import-<kind>-<hash>/manifest.json (+ the artifact, derived formats, reference.npz)

1. read the artifact: its kind, its own evaluator (the bundle's primary format), the features it declares;
2. the schema: features, types and order from the artifact where it declares them, from the table otherwise;
   table columns the model does not use are listed in the manifest ("ignored_columns");
3. the reference rows in the schema's encoding (categorical strings as category codes);
4. the primary format scores them: the reference predictions (rows the model gives no score for are left out
   and counted); an XGBoost bundle's reference is the IR's float64 prediction (XGBoost computes in float32);
5. when the model converts into the IR, every other format is derived from it (ONNX, C, PMML, PFA); a format
   that cannot be derived faithfully is absent, and the manifest's "absent" says why;
6. the parity gate holds every format to the reference on the user's rows, and with --expected the artifact's
   own evaluator to the producer's scores.

The model's task (binary, regression, multiclass: adapters/tasks.py) comes from the artifact (import_readers.py;
`--task` settles what a file cannot say, `--output` picks its outputs). By task, the label column holds 0 / 1
(or the two classes' names), the true values, or the class names; --expected names the producer's score column
(binary, regression), or for a multiclass model its k probability columns: comma-separated in class order, or a
prefix P with columns P<class>, P(<class>) or P_<class>.

The bundle is written into a temporary folder and renamed at the end: a failed import leaves nothing behind.
An unchanged artifact + table is a cache hit (the bundle is verified, not rebuilt) unless --force.
"""

from __future__ import annotations

import hashlib
import json
import platform
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from adapters.bundle import Bundle, sha256_file
from adapters.errors import AdapterError
from adapters.schema import Feature, FeatureSchema
from adapters.tasks import TaskSpec
from harness.modelbuild import ir as ir_mod
from harness.modelbuild.errors import BuildError, ImportInputError
from harness.modelbuild.import_readers import Artifact, Hints, read_artifact
from harness.modelbuild.parity import EVALUATOR, Tolerance, expected_parity, parity_gate, verify_bundle
from harness.modelbuild.pipeline import (
    BuildResult,
    code_hash,
    file_entry,
    label_facts,
    lib_versions,
    output_meaning,
    write_manifest,
)
from harness.modelbuild.reference_table import CSV_MISSING, Encoded, Table, encode, inferred_feature, read_table

_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")


@dataclass
class ImportRequest:
    artifact: Path
    reference: Path
    label: str | None = None
    expected: str | None = None
    name: str | None = None
    trust_pickle: bool = False
    task: str | None = None  # --task: binary, regression or multiclass (when the file cannot say)
    output: str | None = None  # --output: the output(s) to read, comma-separated


@dataclass
class _Subject:
    """What the parity gate needs to know of an imported model."""

    ir: ir_mod.ModelIR | None
    flavor: str
    native_tolerance: float | None = None
    task: TaskSpec = TaskSpec()


def bundle_name(req: ImportRequest) -> str:
    name = req.name or re.sub(r"[^a-z0-9_-]+", "-", req.artifact.name.split(".")[0].lower()).strip("-_") or "model"
    if not _NAME.match(name):
        raise ImportInputError(f"--name {name!r}: use lower-case letters, digits, '-' and '_' (starting with one)")
    return name


def import_model(
    req: ImportRequest, artifacts: Path = Path("artifacts"), force: bool = False, log: Callable[[str], None] = print
) -> BuildResult:
    t0 = time.perf_counter()
    name = bundle_name(req)
    outputs = [o.strip() for o in req.output.split(",") if o.strip()] if req.output else None
    art = read_artifact(req.artifact, req.trust_pickle, Hints(req.task, outputs))
    table = read_table(req.reference)
    if req.label is not None and req.label not in table.columns:
        raise ImportInputError(
            f"--label {req.label!r} is not a column of {req.reference} (it has: {', '.join(table.names)})"
        )
    expected_columns(req, art, table)  # one error line now when a column is missing
    key = _cache_key(req, art)
    model_id = f"import-{art.kind}-{key[:12]}"
    final = artifacts / name / model_id
    if final.exists() and not force:
        try:
            verify_bundle(final)
            return BuildResult(final, True, time.perf_counter() - t0, Bundle.open(final).manifest)
        except AdapterError as e:
            log(f"cached bundle {final} is not usable ({e}); importing again")
    parent_existed = final.parent.exists()
    work = final.with_name(model_id + ".partial")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    try:
        manifest = _import_into(req, art, table, work, name, model_id, key, log)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        if not parent_existed:
            shutil.rmtree(final.parent, ignore_errors=True)
        raise
    shutil.rmtree(final, ignore_errors=True)
    work.rename(final)
    return BuildResult(final, False, time.perf_counter() - t0, manifest)


def _cache_key(req: ImportRequest, art: Artifact) -> str:
    h = hashlib.sha256()
    for part in (
        sha256_file(req.artifact),
        sha256_file(req.reference),
        str(req.label),
        str(req.expected),
        art.kind,
        str(req.task),
        str(req.output),
    ):
        h.update(part.encode())
    h.update(code_hash().encode())
    h.update(json.dumps(lib_versions(), sort_keys=True).encode())
    return h.hexdigest()


# ---- schema --------------------------------------------------------------------------------------------------


def resolve_schema(art: Artifact, table: Table, reserved: set[str]) -> FeatureSchema:
    """Features, types and order: the artifact's declaration, or the table's columns (then every column that is not
    the label or the expected scores, in file order, must be a model input)."""
    if art.declared:
        feats = [_with_table_categories(f, table, art) for f in art.declared]
        if art.kind == "sklearn":  # scikit-learn declares names, not types: the table's columns tell
            feats = [inferred_feature(table, f.name) if f.name in table.columns else f for f in feats]
        if art.n_features is not None and len(feats) != art.n_features:
            raise ImportInputError(f"the artifact names {len(feats)} features but takes {art.n_features}")
        return FeatureSchema(feats)
    cols = [c for c in table.names if c not in reserved]
    if art.n_features is not None and len(cols) != art.n_features:
        raise ImportInputError(
            f"the {art.kind} model takes {art.n_features} features and does not name them: the reference table must "
            f"hold exactly those columns, in the model's order, besides the label and expected scores "
            f"(it has {len(cols)}: {', '.join(cols[:12])})"
        )
    numeric_only = art.kind in ("xgboost", "lightgbm", "onnx", "pfa")
    return FeatureSchema([Feature(c) if numeric_only else inferred_feature(table, c) for c in cols])


def _with_table_categories(f: Feature, table: Table, art: Artifact) -> Feature:
    """A string input whose categories the artifact does not list (a PMML field without Values, a PFA string field):
    its categories are those the document compares it with and the table's strings."""
    if f.name not in art.undeclared_categories or f.name not in table.columns:
        return f
    seen = {v for v in table.columns[f.name] if v not in CSV_MISSING}
    cats = sorted(set(f.categories) | seen)
    return Feature(f.name, "categorical", categories=cats, unseen="as_is", missing_values=f.missing_values)


def _labels(table: Table, label: str | None, kept: np.ndarray, task: TaskSpec) -> np.ndarray:
    """The label column as the task's quality figures read it: 0/1, the class index, or the value (adapters'
    conventions: -1, or NaN for a regression, where there is no label)."""
    if task.task == "regression":
        if label is None:
            return np.full(int(kept.sum()), np.nan)
        return table.numbers(label)[kept]
    if label is None:
        return np.full(int(kept.sum()), -1, dtype=np.int64)  # no labels: AUC / accuracy are not measured
    raw = [v for v, k in zip(table.columns[label], kept.tolist(), strict=True) if k]
    if task.task == "binary":
        try:
            y = table.numbers(label)[kept]
            if not np.isnan(y).any() and set(np.unique(y).tolist()) <= {0.0, 1.0}:
                return y.astype(np.int64)
        except ImportInputError:
            pass  # class names, not numbers
    index = {c: i for i, c in enumerate(task.classes)}
    codes = [index.get(_class_text(v)) for v in raw]
    bad = next((v for v, c in zip(raw, codes, strict=True) if c is None), None)
    if bad is not None:
        want = (
            "0 and 1 (or the classes " + " and ".join(task.classes) + ")"
            if task.task == "binary"
            else ("one of the classes " + ", ".join(task.classes[:8]))
        )
        raise ImportInputError(f"label column {label!r} must hold {want} in every row; it has {bad!r}")
    y = np.asarray(codes, dtype=np.int64)
    # a binary model's classes are (negative, positive): its label is 1 for the positive class
    return y if task.task == "multiclass" else (y == 1).astype(np.int64)


def _class_text(v: str) -> str:
    """A class label as read from CSV: "1.0" is class "1" when the classes are integers."""
    try:
        x = float(v)
    except ValueError:
        return v
    return str(int(x)) if x.is_integer() else v


def expected_columns(req: ImportRequest, art: Artifact, table: Table) -> list[str]:
    """The producer's score columns: one (binary, regression), or one per class in class order (multiclass): a
    comma-separated list, or a prefix P with columns P<class>, P(<class>) or P_<class>."""
    if req.expected is None:
        return []
    given = [c.strip() for c in req.expected.split(",") if c.strip()]
    task = art.task
    if task.task != "multiclass":
        if len(given) != 1 or given[0] not in table.columns:
            raise ImportInputError(
                f"--expected {req.expected!r} is not a column of {req.reference} (it has: {', '.join(table.names)})"
            )
        return given
    if len(given) == 1 and given[0] not in table.columns:
        p = given[0]
        for pattern in ("{p}{c}", "{p}({c})", "{p}_{c}"):
            cols = [pattern.format(p=p, c=c) for c in task.classes]
            if all(c in table.columns for c in cols):
                return cols
    if len(given) != task.n_outputs or any(c not in table.columns for c in given):
        raise ImportInputError(
            f"--expected {req.expected!r}: a multiclass model's expected scores are {task.n_outputs} columns, one per "
            f"class in the order {', '.join(task.classes)} (comma-separated, or a prefix P of columns P<class>); "
            f"{req.reference} has: {', '.join(table.names)}"
        )
    return given


# ---- the bundle ----------------------------------------------------------------------------------------------


def _import_into(
    req: ImportRequest,
    art: Artifact,
    table: Table,
    root: Path,
    name: str,
    model_id: str,
    key: str,
    log: Callable[[str], None],
) -> dict[str, Any]:
    reserved = {c for c in (req.label,) if c is not None} | set(expected_columns(req, art, table))
    schema = resolve_schema(art, table, reserved)
    enc = encode(table, schema)
    if enc.X.shape[0] == 0:
        raise ImportInputError(f"no row of {req.reference} can be scored: {'; '.join(enc.dropped_reasons)}")
    formats: dict[str, dict[str, Any]] = {}
    for fmt, (file, data, extra) in art.files.items():
        if not (root / file).exists():
            (root / file).write_bytes(data)
        formats[fmt] = file_entry(root, file, **extra)
    manifest = _manifest(req, art, table, schema, name, model_id, key, formats)
    write_manifest(root, manifest)
    task = art.task
    what = task.task + (
        f", {len(task.classes)} classes ({', '.join(task.classes[:6])})" if task.task == "multiclass" else ""
    )
    log(
        f"{name}: {art.kind} ({art.algorithm}), {what}, {len(schema.features)} features, "
        f"{enc.X.shape[0]} reference rows"
    )

    X, y, p_primary = _reference_rows(req, art, table, enc, root, manifest, log)

    ir = _convert(art, schema, manifest, log)
    if ir is not None and ir_mod.task_of(ir) != art.task.task:
        raise BuildError(f"the IR of this {art.task.task} model is a {ir_mod.task_of(ir)} model: a converter is wrong")
    if ir is not None:
        (root / "model.ir.json").write_text(json.dumps(ir_mod.to_dict(ir)))
        formats["ir"] = file_entry(root, "model.ir.json")
        _derive(art, ir, root, formats, manifest["absent"], log)
    p_ref = ir_mod.predict(ir, X) if (art.native_tolerance is not None and ir is not None) else p_primary
    np.savez(root / "reference.npz", X=X, y=y, p=p_ref)
    manifest["reference"] = file_entry(root, "reference.npz", rows=int(X.shape[0]))
    manifest["data"] = _data_facts(
        table, X, y, enc.dropped_reasons, manifest["data"]["rows_left_out_unscored"], art.task
    )
    write_manifest(root, manifest)

    subject = _Subject(ir=ir, flavor=art.flavor, native_tolerance=art.native_tolerance, task=art.task)
    parity_gate(root, manifest, subject, X, p_ref, log)
    write_manifest(root, manifest)
    return manifest


def _reference_rows(
    req: ImportRequest,
    art: Artifact,
    table: Table,
    enc: Encoded,
    root: Path,
    manifest: dict[str, Any],
    log: Callable[[str], None],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(X, y, p): the rows the artifact's own evaluator scores, their labels and its scores. With --expected, its
    scores are held to the producer's first, on every row the producer scored (a row the evaluator leaves without
    a score fails the check); without, rows without a score are left out and counted."""
    p = _score(root, art.primary, enc.X)
    columns = expected_columns(req, art, table)
    if columns:
        expected = np.column_stack([table.numbers(c)[enc.kept] for c in columns])
        expected = expected[:, 0] if art.task.vector else expected
        evaluator = EVALUATOR[art.primary]
        tol = Tolerance(art.expected_tolerance, art.expected_rtol)
        try:
            parity = expected_parity(p, expected, tol, art.expected_why, evaluator, art.task.output_names)
        except BuildError as e:  # the artifact does not reproduce its producer: bad input, not our exporters' fault
            raise ImportInputError(str(e)) from None
        manifest["expected"] = {"column": req.expected, "columns": columns, **parity}
        log(f"  expected   max |diff| {parity['max_abs_diff']:.3g} (tolerance {tol.describe()})")
    scored = ~np.isnan(p) if p.ndim == 1 else ~np.isnan(p).any(axis=1)
    if not scored.any():
        raise ImportInputError(f"the {art.primary} evaluator gives no score for any row of {req.reference}")
    if not scored.all():
        log(f"  {int((~scored).sum())} rows left out: the {art.primary} evaluator gives them no score")
    kept = enc.kept.copy()
    kept[np.flatnonzero(enc.kept)[~scored]] = False
    manifest["data"] = {"rows_left_out_unscored": int((~scored).sum())}
    return enc.X[scored], _labels(table, req.label, kept, art.task), p[scored]


def _score(root: Path, fmt: str, X: np.ndarray) -> np.ndarray:
    from adapters.registry import adapter_class

    try:
        with adapter_class(EVALUATOR[fmt]).load(root) as a:
            return a.predict(X)
    except AdapterError as e:
        raise ImportInputError(f"the artifact's own evaluator ({EVALUATOR[fmt]}) cannot score it: {e}") from None


def _convert(art: Artifact, schema: FeatureSchema, manifest: dict[str, Any], log: Callable[[str], None]) -> Any:
    absent: dict[str, str] = manifest["absent"]
    reason = art.no_ir_reason
    ir = None
    if art.to_ir is not None:
        try:
            ir = art.to_ir(schema.names)
        except ValueError as e:
            reason = f"the model does not convert into the IR: {e}"
    if ir is None:
        for fmt in ("onnx", "codegen-c", "pmml", "pfa"):
            if fmt not in manifest["formats"]:
                absent[fmt] = reason
        log(f"  no IR: {reason}")
    return ir


def _derive(
    art: Artifact,
    ir: ir_mod.ModelIR,
    root: Path,
    formats: dict[str, dict[str, Any]],
    absent: dict[str, str],
    log: Callable[[str], None],
) -> None:
    """Every format the IR can be exported to, unless the artifact already is that format."""
    from harness.modelbuild import export_c, export_onnx, export_pfa, export_pmml

    def onnx() -> dict[str, Any]:
        if isinstance(ir, ir_mod.Mlp):
            if art.sklearn_model is None:
                raise NotImplementedError("an MLP's ONNX comes from skl2onnx, which needs the scikit-learn model")
            trained = _SklearnView(art.sklearn_model, ir)
            return file_entry(root, "model.onnx", **export_onnx.write_onnx(trained, root / "model.onnx"))  # type: ignore[arg-type]
        return file_entry(root, "model.onnx", **export_onnx.write_onnx_from_ir(ir, root / "model.onnx"))

    def c() -> dict[str, Any]:
        if isinstance(ir, ir_mod.Mlp):
            raise NotImplementedError("the C generator compiles tree ensembles (treelite) and GLMs, not MLPs")
        lib = export_c.compile_c(ir, root)
        return file_entry(root, lib, compiler="tl2cgen+gcc" if ir.kind == "tree_ensemble" else "gcc")

    def pmml() -> dict[str, Any]:
        fields = export_pmml.write_pmml(ir, root / "model.pmml")
        return file_entry(
            root, "model.pmml", pmml_version="4.4", exporter="harness.modelbuild.export_pmml", output_fields=fields
        )

    def pfa() -> dict[str, Any]:
        export_pfa.write_pfa(ir, root / "model.pfa.json")
        return file_entry(root, "model.pfa.json", exporter="harness.modelbuild.export_pfa")

    for fmt, make in (("onnx", onnx), ("codegen-c", c), ("pmml", pmml), ("pfa", pfa)):
        if fmt in formats:
            continue
        t = time.perf_counter()
        try:
            formats[fmt] = make()
        except (ValueError, NotImplementedError, RuntimeError, AdapterError) as e:
            absent[fmt] = f"not derived from the IR: {e}"
            log(f"  {fmt}: {absent[fmt]}")
            continue
        formats[fmt]["export_seconds"] = round(time.perf_counter() - t, 3)
        formats[fmt]["derived_from"] = "ir"


@dataclass
class _SklearnView:
    """The two attributes export_onnx.write_onnx reads of a trained scikit-learn model."""

    model: Any
    ir: ir_mod.ModelIR
    flavor: str = "sklearn"


def _manifest(
    req: ImportRequest,
    art: Artifact,
    table: Table,
    schema: FeatureSchema,
    name: str,
    model_id: str,
    key: str,
    formats: dict[str, dict[str, Any]],
) -> dict[str, Any]:
    used = set(schema.names) | {c for c in (req.label,) if c} | set(expected_columns(req, art, table))
    absent: dict[str, str] = {}  # onnx, codegen-c, pmml, pfa: filled in when the IR is (not) there
    if "native" not in formats:
        absent["native"] = f"the artifact is {art.kind}: its own evaluator is the {art.primary!r} format"
    if "h2o-mojo" not in formats:
        absent["h2o-mojo"] = f"only H2O writes MOJOs; this model is a {art.kind} artifact"
    return {
        "schema": 1,
        "scenario": name,
        "model_id": model_id,
        "cache_key": key,
        **art.task.to_manifest(),
        "feature_names": schema.names,
        "features": schema.to_list(),
        "ignored_columns": [c for c in table.names if c not in used],
        "label": req.label,
        "output": output_meaning(art.task, req.label),
        "trainer": {"name": "import", "algorithm": f"{art.kind}/{art.algorithm}", "params": {}},
        "source": {
            "artifact": req.artifact.name,
            "sha256": sha256_file(req.artifact),
            "kind": art.kind,
            "reference_table": req.reference.name,
            "reference_sha256": sha256_file(req.reference),
            **art.info,
        },
        "formats": formats,
        "absent": absent,
        "versions": {"python": platform.python_version(), **lib_versions()},
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def _data_facts(
    table: Table, X: np.ndarray, y: np.ndarray, invalid: list[str], unscored: int, task: TaskSpec
) -> dict[str, Any]:
    labelled = y[np.isfinite(y)] if task.task == "regression" else y[y >= 0]
    facts = label_facts(task, labelled) if labelled.size else {}
    if task.task == "binary":
        facts = {"positive_rate": float(labelled.mean()) if labelled.size else None}
    return {
        "rows": table.n_rows,
        "reference_rows": int(X.shape[0]),
        "holdout_rows": int(X.shape[0]),
        "holdout_rows_with_nan": int(np.isnan(X).any(axis=1).sum()),
        "rows_left_out_invalid": table.n_rows - int(X.shape[0]) - unscored,
        "rows_left_out_invalid_examples": invalid,
        "rows_left_out_unscored": unscored,
        **facts,
    }
