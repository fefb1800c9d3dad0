"""The package's layering, computed from its source: data flows one way
(core <- adapters <- shell <- admin/cli), no import cycle, and only the Redis store
knows key names, the record format and the Lua scripts."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "boundary_celery"
ROOT = "boundary_celery"

#: Adapter internals: only modules under ``boundary_celery.adapters`` may import them.
ADAPTER_INTERNALS = {
    f"{ROOT}.adapters.redis_keys",
    f"{ROOT}.adapters.redis_records",
    f"{ROOT}.adapters.redis_scripts",
}

#: Which layers each layer may import (besides itself). Top-level modules are their own
#: layer: ports and settings sit beside core; testing, redis_server and redis_sentinel
#: are helpers.
ALLOWED = {
    "core": set(),
    "ports": {"core"},
    "settings": set(),
    "adapters": {"core", "ports"},
    "shell": {"core", "ports", "adapters", "settings"},
    "tenancy": {"core"},
    "admin": {"core", "ports", "settings", "shell"},
    "cli": {"core", "settings", "shell", "admin"},
    "testing": {"core", "settings", "adapters", "shell"},
    "redis_server": set(),
    "redis_sentinel": {"redis_server"},
    "seam": set(),
    "__init__": {"core", "settings", "shell"},
}


def module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def runtime_imports(tree: ast.AST, module: str, is_package: bool) -> Iterator[str]:
    """Every boundary_celery module imported at run time, function-local imports
    included (only ``if TYPE_CHECKING:`` blocks are skipped)."""
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and _type_checking(node):
            stack.extend(node.orelse)
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith(ROOT):
                    yield alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")
                anchor = anchor[: len(anchor) - node.level + (1 if is_package else 0)]
                base = ".".join([*anchor, *([base] if base else [])])
            if base.startswith(ROOT):
                yield base
                for alias in node.names:  # `from pkg import module`
                    candidate = f"{base}.{alias.name}"
                    if candidate in MODULES:
                        yield candidate
        stack.extend(ast.iter_child_nodes(node))


SOURCES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}
MODULES = set(SOURCES)
TREES = {m: ast.parse(p.read_text(), str(p)) for m, p in SOURCES.items()}
GRAPH = {
    m: {imp for imp in runtime_imports(TREES[m], m, SOURCES[m].name == "__init__.py")
        if imp in MODULES and imp != m}
    for m in MODULES
}


def find_cycle() -> list[str] | None:
    """One import cycle as a list of modules, or None (depth-first search)."""
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        path.append(m)
        for nxt in sorted(GRAPH[m]):
            # A package's own __init__ importing its submodules is not a cycle.
            if m.startswith(nxt + "."):
                continue
            if state.get(nxt) == 1:
                return [*path[path.index(nxt):], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[m] = 2
        return None

    for m in sorted(MODULES):
        if m not in state and (found := visit(m)):
            return found
    return None


def test_the_graph_sees_the_package() -> None:
    assert f"{ROOT}.shell.jobs" in GRAPH
    assert f"{ROOT}.adapters.redis_store" in GRAPH[f"{ROOT}.shell.jobs"]
    assert f"{ROOT}.core.job" in GRAPH[f"{ROOT}.adapters.redis_store"]


def test_no_import_cycle() -> None:
    assert find_cycle() is None, " -> ".join(find_cycle() or [])


def test_the_cycle_finder_finds_one() -> None:
    GRAPH[f"{ROOT}.core.job"].add(f"{ROOT}.shell.jobs")
    try:
        cycle = find_cycle()
    finally:
        GRAPH[f"{ROOT}.core.job"].discard(f"{ROOT}.shell.jobs")
    assert cycle is not None and cycle[0] == cycle[-1]


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_follow_the_layers(module: str) -> None:
    own = layer(module)
    allowed = ALLOWED[own] | {own}
    wrong = sorted(imp for imp in GRAPH[module] if layer(imp) not in allowed)
    assert not wrong, f"{module} ({own}) may import {sorted(allowed)}, not {wrong}"


@pytest.mark.parametrize("module", sorted(m for m in MODULES if layer(m) != "adapters"))
def test_only_adapters_know_the_storage_format(module: str) -> None:
    reach = sorted(GRAPH[module] & ADAPTER_INTERNALS)
    assert not reach, f"{module} imports adapter internals {reach}"
    for node in ast.walk(TREES[module]):
        if isinstance(node, ast.Attribute) and node.attr == "client":
            owner = node.value
            name = owner.attr if isinstance(owner, ast.Attribute) else getattr(owner, "id", "")
            assert name != "store", f"{module}:{node.lineno} uses store.client"
