"""The README and its docs/ pages stay true (links, commands, paths, the layout, the adapter example, one real
result table); docker-compose.yml is a valid KRaft set-up and the production image is locked and non-root."""

from __future__ import annotations

import functools
import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import ROOT


def test_adapter_example_runs_as_written(bundles: dict[str, Path]) -> None:
    """docs/design.md's example of an adapter inside your own service runs as written."""
    design = (ROOT / "docs" / "design.md").read_text()
    section = design.split("Using an adapter inside your own service", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S)
    assert code, "docs/design.md lost its adapter example"
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


def layout_sections() -> dict[str, str]:
    """The README's layout block by folder: "harness" (its own modules), "harness/<package>", "adapters", ..."""
    readme = (ROOT / "README.md").read_text()
    layout = re.search(r"## Layout\n\n```\n(.*?)```", readme, re.S)
    assert layout, "the README lost its layout section"
    sections: dict[str, str] = {}
    current = ""
    for line in layout.group(1).splitlines():
        top = re.match(r"([\w.-]+)/(\s|$)", line)
        sub = re.match(r"  ([a-z_]+)/\s", line)
        if top:
            current = top.group(1)
        elif sub and current.split("/")[0] == "harness":
            current = f"harness/{sub.group(1)}"
        elif not line.startswith(" "):
            current = ""  # Dockerfile, requirements.lock, ...
        sections[current] = sections.get(current, "") + line + "\n"
    return sections


def test_readme_layout_names_every_package_and_module() -> None:
    """The README's layout matches the tree: every package under harness/ has its entry, and each entry of
    harness/, its packages, adapters/, contestants/ and jvm/ names every module there and no other."""
    sections = layout_sections()
    packages = sorted(p.parent.name for p in (ROOT / "harness").glob("*/__init__.py"))
    folders = ["harness", *(f"harness/{p}" for p in packages), "adapters", "contestants", "jvm"]
    wrong = []
    for folder in folders:
        if folder not in sections:
            wrong.append(f"{folder}/ is missing from the README's layout")
            continue
        named = set(re.findall(r"(?<![\w/])([a-z0-9_]+\.py)\b", sections[folder]))
        there = {p.name for p in (ROOT / folder).glob("*.py") if p.name != "__init__.py"}
        wrong += [f"{folder}/{m} is not in the README's layout" for m in sorted(there - named)]
        wrong += [f"the README's layout names {folder}/{m}, which does not exist" for m in sorted(named - there)]
    assert not wrong, "\n".join(wrong)


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
    # the scorer shares no model folder: its model comes from the model topic; it sees the publisher's public key
    assert "HARNESS_BUNDLE" not in env and scorer["volumes"] == ["trusted-keys:/trusted:ro"]
    assert env["HARNESS_TRUSTED_KEYS"].startswith("/trusted/") and "--signing-key" in " ".join(s["models"]["command"])
    assert s["retrain"]["environment"]["HARNESS_SIGNING_KEY"].startswith("/signing/")
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


# ---- the README and docs/ pages: links, commands and paths that stay valid --------------------------------------

DOC_FILES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SHELL_FENCES = {"", "bash", "sh", "shell", "console"}
FENCE = re.compile(r"^```([\w-]*)[^\n]*\n(.*?)^```[ \t]*$", re.S | re.M)
LINK = re.compile(r"!?\[[^\]\n]*\]\(([^)\s]+)\)")
SPAN = re.compile(r"`([^`\n]+)`")
HEADING = re.compile(r"^(#{1,6})[ \t]+(.+?)[ \t]*#*[ \t]*$", re.M)
REPO_PATH = re.compile(r"(?<![\w./$-])((?:harness|adapters|contestants|jvm|tests|scenarios|deploy|docs)/[\w./-]*)")


def _without_fences(text: str) -> str:
    return FENCE.sub("", text)


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a heading: markup and punctuation dropped, lower case, spaces to hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).replace("`", "").replace("*", "")
    return re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")


def anchors_of(text: str) -> set[str]:
    seen: dict[str, int] = {}
    out = set()
    for m in HEADING.finditer(_without_fences(text)):
        a = github_anchor(m.group(2))
        n = seen.get(a, 0)
        seen[a] = n + 1
        out.add(a if n == 0 else f"{a}-{n}")
    return out


def link_problems(path: Path, text: str) -> list[str]:
    """Every relative link of a page points at a file that exists, and its #anchor at a heading of the target."""
    problems = []
    prose = SPAN.sub("", _without_fences(text))
    for target in LINK.findall(prose):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # https:, mailto:
            continue
        file_part, _, anchor = target.partition("#")
        dest = (path.parent / file_part).resolve()
        if file_part and not dest.exists():
            problems.append(f"{path.name}: link to {target}: {file_part} does not exist")
            continue
        if anchor:
            if file_part and dest.suffix != ".md":
                problems.append(f"{path.name}: link to {target}: an anchor into a file that is not markdown")
            elif anchor not in anchors_of(dest.read_text() if file_part else text):
                problems.append(f"{path.name}: link to {target}: no heading #{anchor} in {dest.name}")
    return problems


def shell_lines(text: str) -> list[str]:
    """The command lines of a page's shell blocks (continuations joined, heredoc bodies and comments dropped)."""
    lines = []
    for lang, body in FENCE.findall(text):
        if lang not in SHELL_FENCES:
            continue
        heredoc = None
        joined = ""
        for raw in body.splitlines():
            if heredoc is not None:
                heredoc = None if raw.strip() == heredoc else heredoc
                continue
            joined += raw
            if joined.endswith("\\"):
                joined = joined[:-1] + " "
                continue
            line, joined = joined, ""
            m = re.search(r"<<-?\s*['\"]?(\w+)['\"]?", line)
            if m:
                heredoc = m.group(1)
            line = re.sub(r"(^|\s)#.*$", "", line).strip().removeprefix("$ ")
            if line:
                lines.append(line)
    return lines


def command_spans(text: str) -> list[str]:
    """Inline code in prose and tables that is a command (`harness …`, `make …`, `python -m …`)."""
    spans = [s.replace("\\|", "|") for s in SPAN.findall(_without_fences(text))]
    return [s for s in spans if re.match(r"(\.venv/bin/)?(harness|make|python3?) ", s)]


@functools.cache
def _cli() -> Any:
    from typer.main import get_command

    from harness.cli import app

    return get_command(app)


@functools.cache
def help_flags(path: tuple[str, ...]) -> frozenset[str]:
    """The options `harness PATH --help` lists (read from its help text, as a user would)."""
    from typer.testing import CliRunner

    from harness.cli import app

    r = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "300", "TERMINAL_WIDTH": "300"})
    assert r.exit_code == 0, f"harness {' '.join(path)} --help exited {r.exit_code}: {r.output[-500:]}"
    flags = set()
    for line in r.output.splitlines():
        tokens = re.split(r"[\s,/]+", line.strip().strip("│").strip().lstrip("*").strip())
        for tok in tokens:
            if not re.fullmatch(r"-{1,2}[A-Za-z][\w-]*", tok):
                break
            flags.add(tok)
    return frozenset(flags)


def _makefile_targets() -> set[str]:
    text = (ROOT / "Makefile").read_text()
    return {t for m in re.finditer(r"^([\w.-]+(?:[ \t]+[\w.-]+)*)[ \t]*:(?!=)", text, re.M) for t in m.group(1).split()}


def harness_problems(words: list[str], where: str) -> list[str]:
    """`harness SUB [SUB] … --flag …`: the subcommand exists and every flag is in its --help."""
    cmd: Any = _cli()
    path: list[str] = []
    rest = words
    while hasattr(cmd, "commands") and rest and not rest[0].startswith("-"):  # a group: descend
        sub = cmd.commands.get(rest[0])
        if sub is None:
            if not path:
                return [f"{where}: `harness {rest[0]}`: no such command"]
            break
        cmd, path, rest = sub, [*path, rest[0]], rest[1:]
    if not path:
        return []
    known = help_flags(tuple(path))
    problems = []
    for w in rest:
        flag = w.split("=", 1)[0].rstrip("]),.…")
        if re.fullmatch(r"-{1,2}[A-Za-z][\w-]*", flag) and flag not in known:
            problems.append(f"{where}: `harness {' '.join(path)} {flag}`: not an option of harness {' '.join(path)}")
    return problems


def command_problems(path: Path, text: str) -> list[str]:
    """Every command a page shows (shell blocks and inline code) names what exists."""
    problems = []
    targets = _makefile_targets()
    for line in shell_lines(text) + command_spans(text):
        for segment in re.split(r"\s*(?:&&|\|\||;|\|)\s*", line):
            words = segment.split()
            if not words:
                continue
            where = f"{path.name}: {segment!r}"
            head = words[0].removeprefix(".venv/bin/")
            if head == "harness":
                problems += harness_problems(words[1:], where)
            elif head == "make":
                for t in words[1:]:
                    if t.startswith("-") or "=" in t:
                        continue
                    if t not in targets:
                        problems.append(f"{where}: make target {t!r} is not in the Makefile")
            elif head in ("python", "python3") and len(words) > 1:
                if words[1] == "-m" and len(words) > 2:
                    if importlib.util.find_spec(words[2]) is None:
                        problems.append(f"{where}: python -m {words[2]}: no such module")
                elif words[1].endswith(".py") and not (ROOT / words[1]).is_file():
                    problems.append(f"{where}: {words[1]} does not exist")
    return problems


def path_problems(path: Path, text: str) -> list[str]:
    """Repository paths a page names in code (`harness/scoring/wire.py`, `scenarios/byom/`) exist."""
    problems = []
    candidates = SPAN.findall(_without_fences(text)) + shell_lines(text)
    for chunk in candidates:
        for p in REPO_PATH.findall(chunk):
            p = p.rstrip(".,")
            if any(c in p for c in "<*…{") or any(part.isupper() for part in re.split(r"[/.]", p)):
                continue  # a placeholder: scenarios/X.yaml, artifacts/<name>, scenarios/*.yaml
            if not (ROOT / p).exists():
                problems.append(f"{path.name}: {p} does not exist")
    return problems


def test_docs_links_commands_and_paths_are_valid() -> None:
    """Every relative link and #anchor of the README and docs/*.md resolves; every `harness` command names a
    subcommand with the flags its --help lists, every `make` target is in the Makefile, every `python -m`
    module imports, every repository path in code exists."""
    assert len(DOC_FILES) >= 7, "the README and its docs/ pages"
    problems = []
    for f in DOC_FILES:
        text = f.read_text()
        problems += link_problems(f, text) + command_problems(f, text) + path_problems(f, text)
    assert not problems, "\n".join(dict.fromkeys(problems))


def test_the_doc_checks_can_fail(tmp_path: Path) -> None:
    """The checks above report a broken link, anchor, subcommand, flag, make target, module and path."""
    (tmp_path / "other.md").write_text("# Other page\n\n## A section: `with code`\n")
    page = tmp_path / "page.md"
    text = """# Page

[ok](other.md#a-section-with-code) [ok too](#page) [gone](missing.md) [bad anchor](other.md#nowhere)
[web](https://example.com/x) `[not a link](nowhere.md)`

```bash
harness score --bundle B --adapter A --no-such-flag 1 \\
    --group G
.venv/bin/harness nosuchcommand --x
harness broker start --bootstrap-nope
make demo && make no-such-target
python -m harness.no_such_module
cat > f <<'EOF'
harness ignored-inside-heredoc
EOF
```

`harness run scenarios/fraud.yaml --quick --trails 3` and `harness/scoring/no_such.py`, `scenarios/X.yaml`.
"""
    problems = "\n".join(link_problems(page, text) + command_problems(page, text) + path_problems(page, text))
    for expected in (
        "missing.md does not exist",
        "no heading #nowhere in other.md",
        "harness score --no-such-flag",
        "`harness nosuchcommand`: no such command",
        "harness broker start --bootstrap-nope",
        "make target 'no-such-target'",
        "python -m harness.no_such_module: no such module",
        "harness run --trails",
        "harness/scoring/no_such.py does not exist",
    ):
        assert expected in problems, f"not reported: {expected}\n{problems}"
    for fine in (
        "#a-section-with-code",
        "link to #page",
        "example.com",
        "nowhere.md",
        "`harness score --group`",
        "--bundle`",
        "ignored-inside-heredoc",
        "target 'demo'",
        "X.yaml",
    ):
        assert fine not in problems, f"reported but valid: {fine}\n{problems}"


def test_readme_is_a_front_door_with_a_real_table() -> None:
    """At most ~300 lines; its one result table is the kept run's (results/example-fraud), as docs/results.md
    has it."""
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 300, f"README.md has {len(readme.splitlines())} lines: move detail to docs/"
    rows = [ln for ln in readme.splitlines() if re.match(r"\| \d \| |\| – \| identity", ln)]
    assert len(rows) >= 6, "the README lost its result table"
    results = (ROOT / "docs" / "results.md").read_text()
    for row in rows:
        assert row in results, f"README row not in docs/results.md (the same kept run): {row}"
    kept = json.loads((ROOT / "results" / "example-fraud" / "results.json").read_text())["run_id"]
    assert "results/example-fraud/" in readme and kept in readme, f"the README does not name the kept run {kept}"
    assert kept in results, f"docs/results.md does not name the kept run {kept}"
    for page in ("results", "methodology", "production", "your-own-model", "design", "kafka", "trusted-models"):
        assert f"(docs/{page}.md)" in readme, f"the README does not link docs/{page}.md"


def test_readme_links_every_docs_page_from_its_table() -> None:
    """Every page under docs/ has its row in the README's "Where to go next" table (the front door names them
    all: a page no one links is a page no one reads)."""
    readme = (ROOT / "README.md").read_text()
    section = re.search(r"## Where to go next\n(.*?)\n## ", readme, re.S)
    assert section, "the README lost its 'Where to go next' table"
    linked = set(re.findall(r"^\| \[[^\]]+\]\(docs/([\w.-]+\.md)\) \|", section.group(1), re.M))
    pages = {p.name for p in (ROOT / "docs").glob("*.md")}
    assert pages - linked == set(), f"docs pages missing from the README's table: {sorted(pages - linked)}"
    assert "cluster-faults.md" in linked
