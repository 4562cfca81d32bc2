"""Compiled-C exporter: the IR turned into C and compiled with gcc into a shared library.

Every library, tree ensemble or GLM, exports the same small C interface, loaded with ctypes by
adapters/codegen_c.py:

    const char *kmh_kind(void);                 /* "tree_ensemble" or "glm" */
    int         kmh_num_feature(void);
    int         kmh_num_output(void);           /* 1, or k class probabilities per row (multiclass) */
    void        kmh_predict(const double *X, long n_rows, int nthread, double *out);
                /* X row-major float64, NaN = missing; out = P(class 1) (or the margin, link identity), or
                   n_rows x k class probabilities, row-major (link softmax) */

Tree ensembles: a treelite model is built from the IR with `treelite.model_builder` (float64
thresholds and leaf outputs, so the generated code compares and sums in double, like the IR);
`tl2cgen.generate_c_code` writes the C; we compile it with gcc (-O3, no fast-math) together with a
small row loop (`kmh_predict`). Any trainer's trees work (LightGBM, scikit-learn, H2O, XGBoost); both split
ops and default_left carry over, and categorical nodes become treelite categorical tests on the category codes
(tl2cgen's generated test: a non-negative integer code in the node's list goes left). A multiclass ensemble is
treelite's "grove per class" layout: each tree's class_id is its IR tree_class, one base score per class, and the
softmax postprocessor (tl2cgen writes it in double, the largest margin subtracted first, like the IR).

Why not tl2cgen.Predictor: tl2cgen 1.0 passes each feature as `union Entry {int missing; double
fvalue;}` and marks a missing value by writing -1 into the 4-byte `missing` only, so any double whose
low 32 bits are all ones (e.g. 0.49999999999999994, the double just below 0.5) is read as missing and
takes the default branch (fixed upstream in dmlc/tl2cgen#49, not released). We widen `missing` to
`long long` in the generated header (the upstream fix) and fill the entries ourselves: NaN becomes
all 64 bits set, which no non-NaN double has. The generated `predict` is renamed so tl2cgen.Predictor,
which would fill the entries the old way, cannot load the library by mistake.

GLMs: treelite has no linear models, so we write the C ourselves (coefficients with 17 significant
digits, which round-trips float64) with the same interface.

Compiler: gcc -O3 (trees, as tl2cgen does) / -O2 (GLM), -std=c99 -ffp-contract=off -fPIC -shared
-fopenmp (rows in parallel only when nthread > 1 and the batch has >= 256 rows).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from harness.modelbuild.ir import LEAF, Glm, Mlp, ModelIR, TreeEnsemble

LIB_NAME = "model.so"
PARALLEL_MIN_ROWS = 256
TREES_PER_FILE = 50
_CFLAGS = ["-std=c99", "-ffp-contract=off", "-fPIC", "-shared", "-fopenmp"]
_ENTRY_INT = "union Entry {\n  int missing;"
_ENTRY_WIDE = "union Entry {\n  long long missing;"


class CompileError(RuntimeError):
    """gcc (or tl2cgen) failed to build the library."""


def compile_c(ir: ModelIR, out_dir: Path) -> str:
    """Build the shared library for `ir` in `out_dir`; return its file name."""
    if isinstance(ir, Mlp):
        raise NotImplementedError("the C generator compiles tree ensembles (treelite) and GLMs, not MLPs")
    out_dir.mkdir(parents=True, exist_ok=True)
    if shutil.which("gcc") is None:
        raise CompileError("gcc is not on PATH: install a C compiler (e.g. apt-get install gcc) to build codegen-c")
    with tempfile.TemporaryDirectory(prefix="kmh-codegen-") as tmp:
        src = Path(tmp) / "src"
        src.mkdir()
        if isinstance(ir, TreeEnsemble):
            _write_tree_sources(ir, src)
            opt = "-O3"
        else:
            (src / "glm.c").write_text(glm_c_source(ir))
            opt = "-O2"
        lib = Path(tmp) / LIB_NAME
        sources = sorted(str(p) for p in src.glob("*.c"))
        cmd = ["gcc", opt, *_CFLAGS, "-Dpredict=kmh_tl2cgen_predict", "-o", str(lib), *sources, "-lm"]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False, cwd=src)
        if proc.returncode != 0:
            raise CompileError(f"gcc failed building {LIB_NAME}: {proc.stderr.strip()[:2000]}")
        shutil.move(str(lib), out_dir / LIB_NAME)
    return LIB_NAME


def treelite_model(ir: TreeEnsemble) -> Any:
    """The IR as a treelite Model (float64 thresholds and leaf outputs)."""
    from treelite.model_builder import Metadata, ModelBuilder, PostProcessorFunc, TreeAnnotation

    n_trees = len(ir.trees)
    task_type, post = {"logistic": ("kBinaryClf", "sigmoid"), "softmax": ("kMultiClf", "softmax")}.get(
        ir.link, ("kRegressor", "identity")
    )
    builder = ModelBuilder(
        threshold_type="float64",
        leaf_output_type="float64",
        metadata=Metadata(
            num_feature=ir.n_features,
            task_type=task_type,
            average_tree_output=False,
            num_target=1,
            num_class=[ir.n_outputs],
            leaf_vector_shape=(1, 1),
        ),
        tree_annotation=TreeAnnotation(
            num_tree=n_trees,
            target_id=[0] * n_trees,
            class_id=list(ir.tree_class) if ir.n_classes else [0] * n_trees,
        ),
        postprocessor=PostProcessorFunc(name=post),
        base_scores=[float(b) for b in ir.class_base_scores] if ir.n_classes else [float(ir.base_score)],
    )
    for tree in ir.trees:
        builder.start_tree()
        for node in range(tree.n_nodes):
            builder.start_node(node)
            if tree.feature[node] == LEAF:
                builder.leaf(float(tree.value[node]))
            elif tree.is_categorical(node):
                builder.categorical_test(
                    feature_id=int(tree.feature[node]),
                    default_left=bool(tree.default_left[node]),
                    category_list=[int(c) for c in tree.cat_left[node]],
                    category_list_right_child=False,
                    left_child_key=int(tree.left[node]),
                    right_child_key=int(tree.right[node]),
                )
            else:
                builder.numerical_test(
                    feature_id=int(tree.feature[node]),
                    threshold=float(tree.threshold[node]),
                    default_left=bool(tree.default_left[node]),
                    opname=ir.split_op,
                    left_child_key=int(tree.left[node]),
                    right_child_key=int(tree.right[node]),
                )
            builder.end_node()
        builder.end_tree()
    return builder.commit()


def _codegen_params(ir: TreeEnsemble) -> dict[str, Any]:
    # One translation unit per ~TREES_PER_FILE trees: gcc -O3 time grows faster than linearly with
    # the size of a file (100 trees: ~3 s; 300 trees in one file: ~18 s).
    n_files = -(-len(ir.trees) // TREES_PER_FILE)
    return {"parallel_comp": n_files} if n_files > 1 else {}


def _write_tree_sources(ir: TreeEnsemble, src: Path) -> None:
    import tl2cgen

    try:
        tl2cgen.generate_c_code(treelite_model(ir), str(src), params=_codegen_params(ir))
    except Exception as e:  # tl2cgen raises its own error types
        raise CompileError(f"tl2cgen could not generate C for the model: {e}") from e
    header = src / "header.h"
    text = header.read_text()
    if text.count(_ENTRY_INT) != 1:
        raise CompileError(
            "tl2cgen's generated header.h no longer has the expected `union Entry { int missing; ... }`; "
            "check the missing-value encoding of this tl2cgen version before widening it"
        )
    header.write_text(text.replace(_ENTRY_INT, _ENTRY_WIDE))
    (src / "kmh_rows.c").write_text(_TREE_ROWS_C.replace("@MIN_ROWS@", str(PARALLEL_MIN_ROWS)))


_TREE_ROWS_C = """/* Generated by kafka-model-harness export_c.py: the row loop around tl2cgen's predict(). */
#include "header.h"

const char *kmh_kind(void) { return "tree_ensemble"; }
int kmh_num_feature(void) { return (int)get_num_feature(); }
int kmh_num_output(void) { return N_TARGET * MAX_N_CLASS; }

static void one_row(const double *x, int n_feature, double *out) {
    union Entry data[n_feature];
    double result[N_TARGET * MAX_N_CLASS];
    for (int j = 0; j < n_feature; ++j) {
        if (isnan(x[j])) {
            data[j].missing = -1;  /* all 64 bits set: no non-NaN double looks like this */
        } else {
            data[j].fvalue = x[j];
        }
    }
    for (int k = 0; k < N_TARGET * MAX_N_CLASS; ++k) result[k] = 0.0;
    predict(data, 0, result);
    for (int k = 0; k < N_TARGET * MAX_N_CLASS; ++k) out[k] = result[k];
}

void kmh_predict(const double *X, long n_rows, int nthread, double *out) {
    const int n_feature = (int)get_num_feature();
    const int n_out = N_TARGET * MAX_N_CLASS;
    if (nthread > 1 && n_rows >= @MIN_ROWS@) {
        #pragma omp parallel for num_threads(nthread) schedule(static)
        for (long i = 0; i < n_rows; ++i) one_row(X + i * n_feature, n_feature, out + i * n_out);
    } else {
        for (long i = 0; i < n_rows; ++i) one_row(X + i * n_feature, n_feature, out + i * n_out);
    }
}
"""


def glm_c_source(ir: Glm) -> str:
    n = ir.n_features
    coef = ", ".join(f"{c:.17g}" for c in ir.coefficients)
    repl = ", ".join("0" if r is None else f"{r:.17g}" for r in ir.missing_replacement)
    has = ", ".join("0" if r is None else "1" for r in ir.missing_replacement)
    out = "1.0 / (1.0 + exp(-margin))" if ir.link == "logistic" else "margin"
    return f"""/* Generated by kafka-model-harness export_c.py: a GLM, {n} features, link {ir.link}. */
#include <math.h>

#define N_FEATURE {n}

static const double COEF[N_FEATURE] = {{{coef}}};
static const double REPLACEMENT[N_FEATURE] = {{{repl}}};
static const int HAS_REPLACEMENT[N_FEATURE] = {{{has}}};
static const double INTERCEPT = {ir.intercept:.17g};

const char *kmh_kind(void) {{ return "glm"; }}
int kmh_num_feature(void) {{ return N_FEATURE; }}
int kmh_num_output(void) {{ return 1; }}

static double one_row(const double *row) {{
    double margin = INTERCEPT;
    for (int j = 0; j < N_FEATURE; ++j) {{
        double x = row[j];
        if (isnan(x) && HAS_REPLACEMENT[j]) x = REPLACEMENT[j];
        margin += COEF[j] * x;
    }}
    return {out};
}}

void kmh_predict(const double *X, long n_rows, int nthread, double *out) {{
    if (nthread > 1 && n_rows >= {PARALLEL_MIN_ROWS}) {{
        #pragma omp parallel for num_threads(nthread) schedule(static)
        for (long i = 0; i < n_rows; ++i) out[i] = one_row(X + i * N_FEATURE);
    }} else {{
        for (long i = 0; i < n_rows; ++i) out[i] = one_row(X + i * N_FEATURE);
    }}
}}
"""
