"""The floor plan is the architecture: every import of ours goes down the layers, never up, sideways or round.

Layers, lowest first (shared/ARCHITECTURE.md "Boundaries"): the vocabulary imports nothing else of ours; adapters,
policies and recordings import only the vocabulary and themselves (never each other); then config, the wire formats,
the engine, observability, the server, the composition root, and last the CLI and the pytest plugin. Any module may
import from its own layer or below; nothing may form a cycle. Imports under TYPE_CHECKING count: a cycle drawn only
for the type checker is still a cycle in the design.
"""

from __future__ import annotations

import ast
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "llm_gateway"
# folder in the repository -> the import package it installs as (pyproject.toml's package-dir)
FOLDERS = {"gateway": PACKAGE, "adapters": f"{PACKAGE}.adapters", "policies": f"{PACKAGE}.policies",
           "recordings": f"{PACKAGE}.recordings"}
# layer of a module: the longest matching prefix decides; equal ranks in different layers may not import each other
LAYERS: dict[str, tuple[str, int]] = {
    PACKAGE: ("vocab", 0),  # the package root holds only __version__
    f"{PACKAGE}.vocab": ("vocab", 0),
    f"{PACKAGE}.adapters": ("adapters", 1),
    f"{PACKAGE}.policies": ("policies", 1),
    f"{PACKAGE}.recordings": ("recordings", 1),
    f"{PACKAGE}.config": ("config", 2),
    f"{PACKAGE}.wire": ("wire", 3),
    f"{PACKAGE}.engine": ("engine", 4),
    f"{PACKAGE}.observability": ("observability", 5),
    f"{PACKAGE}.server": ("server", 6),
    f"{PACKAGE}.composition": ("composition", 7),
    f"{PACKAGE}.cli": ("cli", 8),
    f"{PACKAGE}.pytest_plugin": ("pytest_plugin", 8),
    f"{PACKAGE}.__main__": ("cli", 8),
}


def layer_of(module: str) -> tuple[str, int]:
    best = max((p for p in LAYERS if module == p or module.startswith(p + ".")), key=len)
    return LAYERS[best]


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT)
    parts = list(rel.with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join([FOLDERS[parts[0]], *parts[1:]])


def imports_of(path: Path, module: str) -> set[str]:
    """Every module of ours that `path` imports, anywhere in the file (relative imports resolved)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, base]) if base else ".".join(anchor)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)  # `from pkg import module`
    return {name for name in found if name == PACKAGE or name.startswith(PACKAGE + ".")}


def import_graph() -> dict[str, set[str]]:
    files = [p for folder in FOLDERS for p in (ROOT / folder).rglob("*.py")]
    modules = {module_name(p): p for p in files}
    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        # keep only names that are modules (drop `from pkg.mod import function`'s pseudo-module)
        graph[module] = {m for m in imports_of(path, module) if m in modules and m != module}
    return graph


def layering_violations(graph: Mapping[str, Iterable[str]]) -> list[str]:
    problems = []
    for module, targets in sorted(graph.items()):
        name, rank = layer_of(module)
        for target in sorted(targets):
            target_name, target_rank = layer_of(target)
            if target_name == name:
                continue
            if target_rank > rank or (target_rank == rank and target_name != name):
                problems.append(f"{module} ({name}) imports {target} ({target_name})")
    return problems


def cycles(graph: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(sorted(graph.get(start, ()))))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_no_import_goes_up_or_across_the_layers() -> None:
    assert layering_violations(import_graph()) == []


def test_no_import_cycle() -> None:
    assert cycles(import_graph()) == []


def test_every_package_folder_is_installed() -> None:
    """pyproject.toml lists the packages by hand (package-dir maps folders): a new subpackage must be added there."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]
    folders = {module_name(p) for folder in FOLDERS for p in (ROOT / folder).rglob("__init__.py")}
    assert folders == set(config["packages"])
    assert {folder: package for package, folder in config["package-dir"].items()} == FOLDERS


@pytest.mark.parametrize(
    ("graph", "expected"),
    [
        ({"llm_gateway.vocab.types": {"llm_gateway.config.settings"}}, 1),  # vocabulary importing anything
        ({"llm_gateway.adapters.openai": {"llm_gateway.policies.auth"}}, 1),  # across rank-1 layers
        ({"llm_gateway.adapters.openai": {"llm_gateway.server.app"}}, 1),
        ({"llm_gateway.policies.auth": {"llm_gateway.recordings.store"}}, 1),
        ({"llm_gateway.recordings.recorder": {"llm_gateway.adapters.http"}}, 1),
        ({"llm_gateway.server.app": {"llm_gateway.engine.pipeline", "llm_gateway.vocab.errors"}}, 0),
        ({"llm_gateway.observability.observer": {"llm_gateway.server.app"}}, 1),
    ],
)
def test_the_checker_catches_a_deliberate_violation(graph: dict[str, set[str]], expected: int) -> None:
    assert len(layering_violations(graph)) == expected


def test_the_checker_catches_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]
