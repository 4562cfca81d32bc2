"""The dependency rules of the tree (shared/DESIGN.md, "Where the code lives"), read from the code's own imports,
including those inside functions. Broker-free. When one fails, move the code, not the rule: the rule is what
lets a newcomer change one room without reading the others."""

from __future__ import annotations

import ast
import collections
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TOP = ("harness", "adapters", "contestants", "jvm")

# package -> the only packages it may import (besides itself and the standard library / third parties)
ALLOWED: dict[str, set[str]] = {
    "adapters": {"jvm"},  # knows models and formats, nothing of Kafka or the harness
    "jvm": set(),
    "harness.errors": set(),
    "harness.signals": set(),
    "harness.kafka": {"harness.errors", "jvm"},  # knows Kafka, nothing of models
    "harness.results": {"harness.errors"},  # the schema the benchmark writes and reporting reads
    "harness.reporting": {"harness.errors", "harness.results"},  # reads results only
    # the production path: imports no bench, build, scenario, reporting or monitoring
    "harness.scoring": {"adapters", "jvm", "harness.errors", "harness.signals", "harness.kafka"},
    "harness.monitoring": {"adapters", "harness.errors", "harness.signals", "harness.kafka", "harness.scoring"},
    # the closed loop: trains with modelbuild, receives and publishes models through scoring's model topic
    "harness.retraining": {"adapters", "jvm", "harness.errors", "harness.signals", "harness.kafka"}
    | {"harness.scoring", "harness.modelbuild"},
}
FORBIDDEN: dict[str, set[str]] = {
    "harness.bench": {"harness.reporting", "harness.faults", "harness.cli"},
    "harness.faults": {"harness.bench", "harness.reporting", "harness.cli"},
    "harness.modelbuild": {"harness.bench", "harness.scoring", "harness.kafka", "harness.reporting", "harness.cli"},
    "contestants": {"harness.bench", "harness.reporting", "harness.cli"},
}


def package_of(path: Path) -> str:
    rel = path.relative_to(ROOT).parts
    if rel[0] == "harness" and len(rel) > 1:
        return "harness." + rel[1].removesuffix(".py")
    return rel[0]


def target_of(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] == "harness":
        return "harness." + parts[1] if len(parts) > 1 else "harness"
    return parts[0] if parts[0] in TOP else None


def import_edges() -> dict[str, dict[str, list[str]]]:
    """package -> imported package -> the files that import it."""
    edges: dict[str, dict[str, list[str]]] = collections.defaultdict(lambda: collections.defaultdict(list))
    for top in TOP:
        for f in sorted((ROOT / top).rglob("*.py")):
            src = package_of(f)
            for node in ast.walk(ast.parse(f.read_text(), str(f))):
                if isinstance(node, ast.Import):
                    modules = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    modules = [node.module]
                else:
                    continue
                for m in modules:
                    t = target_of(m)
                    if t and t != src:
                        edges[src][t].append(str(f.relative_to(ROOT)))
    return edges


def test_each_package_imports_only_what_its_rule_allows() -> None:
    edges = import_edges()
    wrong = []
    for pkg, allowed in ALLOWED.items():
        for t, files in edges.get(pkg, {}).items():
            if t not in allowed:
                wrong.append(f"{pkg} -> {t} ({files[0]})")
    for pkg, forbidden in FORBIDDEN.items():
        for t, files in edges.get(pkg, {}).items():
            if t in forbidden:
                wrong.append(f"{pkg} -> {t} ({files[0]})")
    assert not wrong, "arrows against the rules:\n" + "\n".join(wrong)


def test_no_package_circle() -> None:
    edges = import_edges()
    graph = {p: set(ts) for p, ts in edges.items()}
    state: dict[str, int] = {}
    circles = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                circles.append(" -> ".join([*path[path.index(nxt) :], nxt]))
            elif state.get(nxt) is None:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for p in sorted(graph):
        if p not in state:
            visit(p, [p])
    assert not circles, "package circles:\n" + "\n".join(circles)


def test_the_rules_can_fail() -> None:
    """The reader sees function-level imports too (a late import is still an arrow)."""
    edges = import_edges()
    assert "harness.results" in edges["harness.bench"], "bench writes results: the edge must be seen"
    assert "harness.scoring" in edges["harness.monitoring"]
