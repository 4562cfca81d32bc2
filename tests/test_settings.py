"""One settings model for `harness score`: the CLI's flags, the environment and the loop read the same fields.
Broker-free: these check how settings are parsed, not the loop."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from harness.cli import app
from harness.cli_options import SettingsError, build_settings, flag
from harness.scoring.settings import LoopConfig, ScorerSettings
from tests.conftest import run_cli

REQUIRED = {"bundle": Path("b"), "adapter": "onnx", "input_topic": "in", "output_topic": "out", "group": "g"}


def test_every_field_is_a_flag_of_harness_score() -> None:
    """Adding a field to the model adds the flag: the help lists every one (so nothing is declared twice)."""
    result = CliRunner().invoke(app, ["score", "--help"], env={"COLUMNS": "300"})
    assert result.exit_code == 0, result.output
    for name in ScorerSettings.model_fields:
        want = "--option" if name == "options" else flag(name)
        assert want in result.output, f"{want} missing from harness score --help"
        flat = re.sub(r"[\s│]+", " ", result.output)  # rich wraps long help over box-drawn lines
        assert f"env HARNESS_{name.upper()}" in flat, f"--help does not name HARNESS_{name.upper()}"
    # the loop's own settings are a part of the scorer's, not a copy
    assert set(LoopConfig.model_fields) <= set(ScorerSettings.model_fields)


def test_flag_over_environment_over_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HARNESS_BATCH_MAX", "32")
    monkeypatch.setenv("HARNESS_GUARANTEE", "exactly-once")
    s = build_settings(ScorerSettings, {**REQUIRED, "batch_max": 8, "guarantee": None})
    assert s.batch_max == 8  # the flag wins
    assert s.guarantee == "exactly-once"  # then the environment
    assert s.batch_wait_ms == 5.0  # then the default
    assert isinstance(s, LoopConfig)  # the loop reads this very object


def test_required_settings_may_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for k, v in REQUIRED.items():
        monkeypatch.setenv(f"HARNESS_{k.upper()}", str(v))
    monkeypatch.setenv("HARNESS_OPTIONS", '["threads=1"]')
    s = build_settings(ScorerSettings, {})
    assert s.input_topic == "in" and s.options == ["threads=1"]


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"batch_max": 0}, "--batch-max: Input should be greater than or equal to 1"),
        ({"guarantee": "twice"}, "--guarantee: unknown guarantee 'twice'; valid: at-least-once, exactly-once"),
        ({"encoding": "xml"}, "--encoding: unknown encoding 'xml'; valid: json, f64le"),
    ],
)
def test_a_bad_value_is_one_line_naming_the_flag(given: dict[str, object], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        build_settings(ScorerSettings, {**REQUIRED, **given})


def test_a_missing_setting_names_the_flag_and_its_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HARNESS_GROUP", raising=False)
    given = {k: v for k, v in REQUIRED.items() if k != "group"}
    with pytest.raises(SettingsError, match=r"missing option --group \(or HARNESS_GROUP\)"):
        build_settings(ScorerSettings, given)


def test_the_cli_prints_one_error_line_for_a_bad_flag() -> None:
    args = ["score", "--bundle", "b", "--adapter", "onnx", "--input-topic", "i", "--output-topic", "o"]
    result = run_cli(*args, "--group", "g", "--batch-max", "0", timeout=60)
    assert result.returncode != 0
    lines = [ln for ln in result.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: --batch-max"), result.stderr


def test_the_scorer_warms_its_model_on_the_reference_rows_before_joining(small_bundle: Path) -> None:
    """--warm-s: the reference rows in micro-batches for that long (a JVM's JIT, caches), never an error."""
    import numpy as np

    from adapters.bundle import Bundle
    from adapters.registry import adapter_class
    from harness.scoring.service import warm_model

    b = Bundle.open(small_bundle)
    seen: list[int] = []

    class Counting:
        def predict(self, X: np.ndarray) -> np.ndarray:
            seen.append(len(X))
            return np.zeros(len(X))

    rows = warm_model(Counting(), b, 64, 0.2)  # type: ignore[arg-type]
    assert rows == sum(seen) > len(b.reference()[0])  # the rows go round more than once in 0.2 s
    assert max(seen) == 64 and warm_model(Counting(), b, 64, 0.0) == 0  # type: ignore[arg-type]

    class Broken:
        def predict(self, X: np.ndarray) -> np.ndarray:
            raise RuntimeError("engine down")

    assert warm_model(Broken(), b, 64, 0.2) == 0  # type: ignore[arg-type]  # the loop meets and routes it
    native = adapter_class("native").load(b)
    assert warm_model(native, b, 64, 0.1) > 0


def test_an_engine_that_hangs_while_warming_up_ends_the_scorer_with_one_line(small_bundle: Path) -> None:
    """The warm-up runs under the loop's watchdog (--engine-timeout-s): a hung engine ends the process with
    exit 3 and one error line before it is ready, instead of a scorer that never becomes ready."""
    import subprocess
    import sys

    script = (
        "import time, numpy as np\n"
        "from adapters.bundle import Bundle\n"
        "from harness.scoring.service import warm_model\n"
        "class Hung:\n"
        "    def predict(self, X):\n"
        "        time.sleep(3600)\n"
        f"warm_model(Hung(), Bundle.open({str(small_bundle)!r}), 64, 5.0, engine_timeout_s=0.3)\n"
        "print('returned')\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 3, done.stderr
    assert "returned" not in done.stdout
    lines = [ln for ln in done.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: warming the engine up: the model engine has not returned")
