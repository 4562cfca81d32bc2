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
