"""The README's adapter example runs exactly as written; docker-compose.yml is a valid KRaft set-up."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import yaml

from tests.conftest import ROOT


def test_readme_example_runs_as_written(bundles: dict[str, Path]) -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("Using an adapter inside your own service", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S)
    assert code, "the README lost its example"
    lines = [ln for ln in code.group(1).splitlines() if ln.strip()]
    assert len(lines) <= 10
    r = subprocess.run([sys.executable, "-c", code.group(1)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    m = re.fullmatch(r"P\(fraud\) = (0\.\d{4}|1\.0000)\n", r.stdout)
    assert m, r.stdout


def test_compose_file_is_a_kraft_kafka_with_the_harness() -> None:
    doc = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = doc["services"]
    kafka = services["kafka"]
    assert kafka["image"].startswith("apache/kafka:4.")
    env = kafka["environment"]
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    node = str(env["KAFKA_NODE_ID"])
    voters = env["KAFKA_CONTROLLER_QUORUM_VOTERS"]
    assert voters.startswith(f"{node}@kafka:")
    controller_port = voters.rsplit(":", 1)[1]
    listeners = env["KAFKA_LISTENERS"]
    assert f"CONTROLLER://:{controller_port}" in listeners
    internal = re.search(r"PLAINTEXT://kafka:(\d+)", env["KAFKA_ADVERTISED_LISTENERS"])
    assert internal and f"PLAINTEXT://:{internal.group(1)}" in listeners
    for name in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","):
        assert name.split(":")[0] in listeners
    assert str(env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"]) == "1"
    harness = services["harness"]
    assert harness["depends_on"]["kafka"]["condition"] == "service_healthy"
    command = " ".join(harness["command"])
    assert f"--bootstrap kafka:{internal.group(1)}" in command
    assert "harness run scenarios/" in command
    assert (ROOT / command.split("harness run ", 1)[1].split()[0]).is_file()


def test_readme_layout_names_every_package_and_module() -> None:
    """The README's layout section matches the tree: every package under harness/ and every module it names."""
    readme = (ROOT / "README.md").read_text()
    layout = re.search(r"## Layout\n\n```\n(.*?)```", readme, re.S)
    assert layout, "the README lost its layout section"
    text = layout.group(1)
    packages = sorted(p.parent.name for p in (ROOT / "harness").glob("*/__init__.py"))
    for pkg in packages:
        assert f"  {pkg}/" in text, f"harness/{pkg}/ is missing from the README's layout"
    current = None
    for line in text.splitlines():
        m = re.match(r"  ([a-z]+)/\s", line)
        if m:
            current = m.group(1)
        elif not line.startswith(" "):
            current = None  # a top-level folder (adapters/, jvm/, ...)
        if current in packages:
            for module in re.findall(r"\b([a-z_]+\.py)\b", line):
                if "*" not in module:
                    assert (ROOT / "harness" / current / module).is_file(), f"harness/{current}/{module} does not exist"


def test_the_production_image_is_non_root_locked_and_has_a_jre() -> None:
    text = (ROOT / "Dockerfile").read_text()
    stages = re.findall(r"^FROM (\S+)", text, re.M)
    assert stages and all(s.startswith("python:3.11") for s in stages)
    final = text.rsplit("\nFROM ", 1)[1]
    assert re.search(r"^USER (?!root)\S+", final, re.M), "the final stage runs as a non-root user"
    assert "openjdk-17-jre-headless" in final  # PMML and the H2O MOJO run on a JVM
    assert "pip install --no-cache-dir -r requirements.lock" in text  # the locked environment
    assert "maven" not in final  # the JVM class path is resolved at build time
    assert re.search(r'^ENTRYPOINT \["harness"\]', final, re.M)
    for copied in ("harness", "adapters", "jvm"):
        assert f"COPY {copied} ./{copied}" in text


def test_compose_runs_the_scorer_as_a_service_with_the_monitor_and_prometheus() -> None:
    doc = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    s = doc["services"]
    scorer = s["scorer"]
    assert scorer["build"] == "." and scorer["command"] == ["score"] and scorer["restart"] == "unless-stopped"
    env = scorer["environment"]
    port = env["HARNESS_METRICS_PORT"]
    assert f"localhost:{port}/health/ready" in " ".join(scorer["healthcheck"]["test"])
    assert {"HARNESS_ADAPTER", "HARNESS_INPUT_TOPIC", "HARNESS_OUTPUT_TOPIC", "HARNESS_GROUP"} <= set(env)
    assert env["HARNESS_MODEL_TOPIC"] == "models" and "harness publish" in " ".join(s["models"]["command"])
    # the scorer shares no folder: its model comes from the model topic
    assert "HARNESS_BUNDLE" not in env and not scorer.get("volumes")
    # every HARNESS_* variable the services set is an option of the command they run
    from typer.main import get_command

    from harness.cli import app

    click_app = get_command(app)
    retrain = s["retrain"]
    assert retrain["command"][-1].endswith("exec harness retrain") and retrain["restart"] == "unless-stopped"
    assert f"localhost:{retrain['environment']['HARNESS_METRICS_PORT']}/health/ready" in " ".join(
        retrain["healthcheck"]["test"]
    )
    assert retrain["environment"]["HARNESS_INPUT_TOPIC"] == env["HARNESS_INPUT_TOPIC"]
    assert retrain["environment"]["HARNESS_FEEDBACK_TOPIC"] == s["monitor"]["environment"]["HARNESS_FEEDBACK_TOPIC"]
    for name in ("scorer", "monitor", "retrain"):
        command = s[name]["command"]
        cmd = click_app.commands["retrain" if name == "retrain" else command[0]]  # type: ignore[attr-defined]
        options = {p.name.upper() for p in cmd.params}
        for var in s[name]["environment"]:
            assert var.removeprefix("HARNESS_") in options, f"{name}: {var} is not an option of harness {cmd.name}"
    assert s["monitor"]["environment"]["HARNESS_RESULTS_TOPIC"] == env["HARNESS_OUTPUT_TOPIC"]
    prom = s["prometheus"]
    assert "./deploy/prometheus:/etc/prometheus:ro" in prom["volumes"]
    assert (ROOT / "deploy" / "prometheus" / "alerts.yml").is_file()
