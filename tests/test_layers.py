"""The house reads as its data flow: no package imports one above it, no import circles.

Walks every project module with ``ast`` (imports inside functions count too: a lazy import
is still a dependency) and checks the layer table of docs/architecture.md.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

from contracts.paths import REPO

# What each package may import besides itself (docs/architecture.md, "Layers").
ALLOWED: dict[str, set[str]] = {
    "contracts": set(),
    "engines": {"contracts"},
    "export": {"contracts", "engines"},
    "stream_server": {"contracts", "engines"},
    "integrations": {"contracts", "engines"},
    "measure": {"contracts", "engines", "stream_server"},
    "training": {"contracts", "engines", "export", "measure"},
    "bench": {"contracts", "engines", "export", "stream_server", "measure", "training"},
    "emote": {
        "contracts",
        "engines",
        "export",
        "stream_server",
        "integrations",
        "measure",
        "training",
        "bench",
    },
    "tests": {
        "contracts",
        "engines",
        "export",
        "stream_server",
        "integrations",
        "measure",
        "training",
        "emote",
    },
}
RUNTIME = ("contracts", "engines", "stream_server")  # what a CPU server needs: no torch ...
GPU_ONLY = {"engines.tensorrt_engine"}  # ... but native TensorRT takes CUDA memory from torch


def modules() -> dict[str, Path]:
    found = {}
    for package in ALLOWED:
        for path in sorted((REPO / package).rglob("*.py")):
            parts = path.relative_to(REPO).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


def imports(name: str, path: Path, known: dict[str, Path]) -> Iterator[tuple[str, int]]:
    """The project modules ``name`` imports, with the line of each import."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            # `from package import submodule` depends on the submodule; other names on base.
            targets = [
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base
                for alias in node.names
            ]
        else:
            continue
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                yield target, node.lineno


def graph() -> tuple[dict[str, set[str]], list[str]]:
    known = modules()
    edges: dict[str, set[str]] = {name: set() for name in known}
    violations: list[str] = []
    for name, path in known.items():
        layer = name.split(".")[0]
        for target, line in imports(name, path, known):
            edges[name].add(target)
            other = target.split(".")[0]
            problem = f"{path.relative_to(REPO)}:{line}: {layer} imports {target}"
            if other != layer and other not in ALLOWED[layer] and problem not in violations:
                violations.append(problem)
    return edges, violations


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def test_no_package_imports_a_layer_above_it() -> None:
    _, violations = graph()
    assert not violations, "\n".join(violations)


def test_no_import_circles() -> None:
    edges, _ = graph()
    assert not cycles(edges)


def test_the_walker_sees_violations_and_circles() -> None:
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(edges) == [["a", "b", "c"]]
    known = modules()
    assert "engines.engine" in known and "contracts.motion_frame" in known
    deps = dict(imports("emote.cli", known["emote.cli"], known))
    assert "emote.offline" in deps  # the CLI's subcommands are found ...
    assert ALLOWED["engines"] == {"contracts"}  # ... and the runtime sits on contracts only


def test_the_runtime_imports_no_torch() -> None:
    known = modules()
    offenders = []
    for name, path in known.items():
        if name.split(".")[0] not in RUNTIME or name in GPU_ONLY:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            offenders += [f"{name}: {n}" for n in names if n.split(".")[0] == "torch"]
    assert not offenders, offenders
