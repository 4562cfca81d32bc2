"""The neural-network family: a scikit-learn MLP pipeline (imputer, scaler, MLPClassifier) converts exactly into the IR
and is exported to every format that has neural networks — ONNX (skl2onnx, float32), PMML NeuralNetwork and PFA
matrix algebra (both float64, written by the project) — each held by its own evaluator to the native model."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from adapters.bundle import Bundle
from adapters.registry import adapter_class
from harness.modelbuild import ir as ir_mod
from harness.modelbuild.pipeline import build
from harness.scenario import Scenario, load_scenario
from tests.conftest import ROOT

MLP = {
    "name": "mlp-small",
    "dataset": {"generator": "fraud", "rows": 3000, "seed": 3, "holdout_max_rows": 400,
                "params": {"positive_rate": 0.05}},
    "model": {"trainer": "sklearn", "algorithm": "mlp",
              "params": {"hidden_layer_sizes": [12, 6], "activation": "tanh", "max_iter": 60}},
    "formats": ["onnx", "pmml", "pfa"],
}  # fmt: skip


@pytest.fixture(scope="session")
def mlp_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build(Scenario.model_validate(MLP), artifacts=tmp_path_factory.mktemp("mlp"), log=lambda m: None).bundle_dir


def test_every_neural_network_format_passes_its_own_parity_gate(mlp_bundle: Path) -> None:
    b = Bundle.open(mlp_bundle)
    m = b.manifest
    assert set(m["formats"]) == {"native", "ir", "onnx", "pmml", "pfa"}
    assert m["data"]["holdout_rows_with_nan"] > 0
    for fmt in ("ir", "native", "pmml", "pfa"):
        assert m["formats"][fmt]["parity"]["max_abs_diff"] <= 1e-9, fmt
    onnx = m["formats"]["onnx"]
    assert onnx["input_dtype"] == "float32" and onnx["parity"]["max_abs_diff"] <= 1e-5
    assert "float32 weights and arithmetic" in onnx["parity"]["tolerance_why"]
    # each adapter scores the reference rows itself (rows with NaN among them)
    X, _, p = b.reference()
    for fmt in ("native", "onnx", "pmml", "pfa"):
        with adapter_class(fmt).load(b) as a:
            got = a.predict(X)
        assert np.abs(got - p).max() <= (1e-5 if fmt == "onnx" else 1e-9), fmt


def test_the_ir_holds_the_layers_and_the_pmml_is_a_neural_network(mlp_bundle: Path) -> None:
    ir = ir_mod.from_dict(json.loads((mlp_bundle / "model.ir.json").read_text()))
    assert isinstance(ir, ir_mod.Mlp)
    assert [(layer.n_in, layer.n_out, layer.activation) for layer in ir.layers] == [
        (12, 12, "tanh"), (12, 6, "tanh"), (6, 1, "identity"),
    ]  # fmt: skip
    assert all(r is not None for r in ir.missing_replacement)  # the imputer's means
    ns = {"p": "http://www.dmg.org/PMML-4_4"}
    doc = ET.parse(mlp_bundle / "model.pmml").getroot()
    layers = doc.findall("p:NeuralNetwork/p:NeuralLayer", ns)
    assert [la.get("activationFunction") for la in layers] == ["tanh", "tanh", "logistic"]
    pfa = json.loads((mlp_bundle / "model.pfa.json").read_text())
    assert "la.dot" in json.dumps(pfa["action"])


def test_formats_without_neural_networks_are_refused_with_the_reason() -> None:
    with pytest.raises(ValidationError, match="'codegen-c' cannot hold an MLP"):
        Scenario.model_validate({**MLP, "formats": ["onnx", "codegen-c"]})
    sc = load_scenario(ROOT / "scenarios" / "mlp.yaml")
    assert sc.model.algorithm == "mlp" and "codegen-c" not in sc.formats
