"""The parity gate fails a build whose format drifts from the native model, naming the format, the row and
both values; and it is the formats' own evaluators that are held to the native predictions."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from adapters.bundle import Bundle, sha256_file
from harness.modelbuild.export_pmml import write_pmml
from harness.modelbuild.ir import from_dict
from harness.modelbuild.parity import BuildError, parity_gate


def test_a_drifting_format_fails_the_build(small_bundle: Path, tmp_path: Path) -> None:
    root = tmp_path / "bundle"
    shutil.copytree(small_bundle, root)
    b = Bundle.open(root)
    X, _, p = b.reference()
    ir = from_dict(json.loads((root / "model.ir.json").read_text()))
    # a PMML file from a subtly different model: one leaf of the first tree moved by 0.01
    drifted = from_dict(json.loads((root / "model.ir.json").read_text()))
    tree = drifted.trees[0]  # type: ignore[union-attr]
    leaf = next(i for i, f in enumerate(tree.feature) if f == -1)
    tree.value[leaf] += 0.01
    write_pmml(drifted, root / "model.pmml")
    manifest = b.manifest
    manifest["formats"] = {
        "native": manifest["formats"]["native"],
        "ir": manifest["formats"]["ir"],
        "pmml": {"file": "model.pmml", "sha256": sha256_file(root / "model.pmml")},
    }
    (root / "manifest.json").write_text(json.dumps(manifest))
    trained = SimpleNamespace(ir=ir, flavor="lightgbm")
    with pytest.raises(BuildError) as e:
        parity_gate(root, manifest, trained, X, p, log=lambda m: None)  # type: ignore[arg-type]
    msg = str(e.value)
    m = re.fullmatch(
        r"parity gate: format 'pmml' row (\d+): pmml=(\S+) native=(\S+) \(\|diff\| (\S+) > tolerance 1e-09\)", msg
    )
    assert m, msg
    row, got, native = int(m.group(1)), float(m.group(2)), float(m.group(3))
    assert native == p[row] and abs(got - native) > 1e-4
    # the figures of the formats that passed are in the manifest
    assert manifest["formats"]["native"]["parity"]["passed"] is True
    assert manifest["formats"]["pmml"]["parity"]["passed"] is False
    assert np.isclose(manifest["formats"]["pmml"]["parity"]["max_abs_diff"], abs(got - native))
