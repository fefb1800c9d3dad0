"""The seam with Celery, kombu and billiard (``boundary_celery.seam.SEAM``) holds on the
installed versions, and lists every private name ``boundary_celery/`` uses.

Run on every stack ``make test`` covers (newest, lowest, Celery 5.5, 5.6): an upgrade that
renames or reshapes a name we rely on fails ``test_name_exists`` or ``test_params`` for
that name, before any end-to-end test shows a symptom.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import re
import textwrap
from collections.abc import Iterator
from functools import cache
from importlib.metadata import version
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from packaging.requirements import Requirement

from boundary_celery.seam import SEAM, SeamName

PACKAGE = Path(__file__).resolve().parents[2] / "boundary_celery"
LIBRARIES = ("kombu", "celery", "billiard")

#: Entries whose name does not appear in the modules that rely on it (the reliance is
#: on the library's behaviour), with why.
IMPLICIT = {
    ("kombu.transport.virtual.Channel", "_inplace_augment_message"):
        "claim.lua reads the delivery tag off the end of the message kombu built",
    ("celery.app.trace", "task_has_custom"):
        "execution._custom_call and BoundaryTask.__call__ mirror it",
}


def _id(entry: SeamName) -> str:
    return f"{entry.owner}.{entry.name}"


@cache
def resolve(path: str) -> Any:
    """The module or class at dotted ``path`` (the longest importable module prefix,
    then attributes)."""
    parts = path.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj: Any = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attr in parts[cut:]:
            obj = getattr(obj, attr)
        return obj
    raise ImportError(path)


def _library_classes(cls: type) -> list[type]:
    return [c for c in cls.__mro__ if c.__module__.split(".")[0] in LIBRARIES]


@cache
def _source(owner: Any) -> str:
    """The source of a library module, or of every library class in a class's MRO."""
    if isinstance(owner, ModuleType):
        return inspect.getsource(owner)
    texts = []
    for cls in _library_classes(owner):
        try:
            texts.append(inspect.getsource(cls))
        except (OSError, TypeError):  # built at run time: no source of its own
            continue
    return "\n".join(texts)


def defines(owner: Any, name: str) -> bool:
    """True if the library's ``owner`` has ``name``: as an attribute, an instance
    attribute its code sets or reads (``self.name``), a nested ``def name(`` (a function
    it assigns), or a keyword it passes as a string."""
    if hasattr(owner, name):
        return True
    word = re.escape(name)
    pattern = rf"(\bself\.{word}\b|\bdef {word}\(|['\"]{word}['\"])"
    return re.search(pattern, _source(owner)) is not None


def in_range(entry: SeamName) -> bool:
    """True when the installed library is in the entry's ``versions`` (or it has none)."""
    if not entry.versions:
        return True
    req = Requirement(entry.versions)
    return req.specifier.contains(version(req.name), prereleases=True)


def _passed(owner: type, name: str) -> list[str] | None:
    """The arguments the library passes to its hook ``self.name`` (an abstract method it
    only calls): the names of a ``self.name(...)`` call, or of the arguments after
    ``self.name`` where it is handed to a helper that calls it; None if neither is found."""
    for cls in _library_classes(owner):
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
        except (OSError, TypeError):
            continue
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            if _is_self_attr(node.func, name):
                args = node.args
            else:
                at = [i for i, arg in enumerate(node.args) if _is_self_attr(arg, name)]
                if not at:
                    continue
                args = node.args[at[0] + 1:]
            return ([a.id for a in args if isinstance(a, ast.Name)]
                    + [k.arg for k in node.keywords if k.arg])
    return None


def _is_self_attr(node: ast.expr, name: str) -> bool:
    return (isinstance(node, ast.Attribute) and node.attr == name
            and isinstance(node.value, ast.Name) and node.value.id == "self")


def parameters(owner: Any, name: str) -> list[str]:
    """The parameter names of ``owner.name`` (``__init__``: of the class), read from its
    signature; for a function the owner assigns at run time, from its ``def``; for a hook
    the owner only calls (an abstract method), the names it passes."""
    target = owner if name == "__init__" else getattr(owner, name, None)
    if target is not None:
        return list(inspect.signature(target).parameters)
    found = re.search(rf"\bdef {re.escape(name)}\(([^)]*)\)", _source(owner))
    if found:
        return [p.strip().split("=")[0].split(":")[0].lstrip("*")
                for p in found.group(1).split(",") if p.strip()]
    passed = _passed(owner, name)
    assert passed is not None, f"no def {name}( nor a call of it in {owner!r}"
    return passed


@pytest.mark.parametrize("entry", SEAM, ids=_id)
def test_name_exists(entry: SeamName) -> None:
    owner = resolve(entry.owner)
    if in_range(entry):
        assert defines(owner, entry.name), (
            f"{_id(entry)} ({entry.kind}, used in {', '.join(entry.where)}) is gone in the "
            f"installed {entry.owner.split('.')[0]} {version(entry.owner.split('.')[0])}")
    else:  # a version note that no longer says where the name exists
        assert not defines(owner, entry.name), (
            f"{_id(entry)} exists outside {entry.versions!r}: correct the entry")


@pytest.mark.parametrize("entry", [e for e in SEAM if e.params], ids=_id)
def test_params(entry: SeamName) -> None:
    if not in_range(entry):
        pytest.skip(f"{entry.versions} only")
    have = parameters(resolve(entry.owner), entry.name)
    missing = [p for p in entry.params if p not in have]
    assert not missing, f"{_id(entry)}: {missing} no longer in its parameters {have}"


@pytest.mark.parametrize("entry", SEAM, ids=_id)
def test_entry_names_our_use(entry: SeamName) -> None:
    """Each entry says truly where we use the name (so a stale entry is noticed)."""
    texts = []
    for where in entry.where:
        path = PACKAGE.joinpath(*where.split("."))
        files = sorted(path.iterdir()) if path.is_dir() else [path.with_suffix(".py")]
        assert all(f.exists() for f in files) and files, f"{_id(entry)}: no module {where}"
        texts.extend(f.read_text() for f in files)
    if (entry.owner, entry.name) in IMPLICIT:
        return
    token = entry.owner.rsplit(".", 1)[-1] if entry.name == "__init__" else entry.name
    assert any(re.search(rf"\b{re.escape(token)}\b", t) for t in texts), (
        f"{_id(entry)} is not used in {', '.join(entry.where)}")


def test_entries_are_unique() -> None:
    keys = [(e.owner, e.name) for e in SEAM]
    assert len(keys) == len(set(keys))


def test_cached_properties_are_still_cached() -> None:
    """install() drops app.Task/amqp/control from the app's ``__dict__`` to rebuild them:
    that works only while Celery caches them there."""
    from celery.app.base import Celery

    for entry in SEAM:
        if entry.owner == "celery.app.base.Celery" and "cached_property" in entry.note:
            attr = inspect.getattr_static(Celery, entry.name)
            assert hasattr(attr, "__set_name__") and not isinstance(attr, property), (
                f"Celery.{entry.name} is no longer a cached property")


# -- completeness: every private library name we use is listed ---------------------------


def _modules() -> Iterator[tuple[str, Path]]:
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        parts = [p for p in rel.parts if p != "__init__"]
        yield ".".join(parts), path


def _private(name: str) -> bool:
    return (name.startswith("_") and not name.startswith("__")
            and not name.startswith("_boundary"))


class _Scan(ast.NodeVisitor):
    """Private names of library objects a module uses: on ``self`` in our subclasses of
    library classes, on any other object, and from private library modules."""

    def __init__(self, module: ModuleType) -> None:
        self.module = module
        self.bases: list[list[type]] = []  # library classes of each enclosing class
        self.on_self: list[tuple[str, list[type], int]] = []
        self.on_other: list[tuple[str, int]] = []
        self.imports: list[tuple[str, int]] = []

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        cls = getattr(self.module, node.name, None)
        self.bases.append(_library_classes(cls) if isinstance(cls, type) else [])
        if self.bases[-1]:
            for stmt in node.body:  # class-level definitions: methods and attributes
                for name in _defined(stmt):
                    if _private(name):
                        self.on_self.append((name, self.bases[-1], stmt.lineno))
        self.generic_visit(node)
        self.bases.pop()

    def _use(self, receiver: ast.expr, name: str, line: int) -> None:
        if not _private(name):
            return
        if isinstance(receiver, ast.Name) and receiver.id in ("self", "cls"):
            if self.bases and self.bases[-1]:
                self.on_self.append((name, self.bases[-1], line))
            return
        self.on_other.append((name, line))

    def visit_Attribute(self, node: ast.Attribute) -> None:
        self._use(node.value, node.attr, node.lineno)
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        if (isinstance(func, ast.Name) and func.id in ("getattr", "setattr", "hasattr")
                and len(node.args) >= 2 and isinstance(node.args[1], ast.Constant)
                and isinstance(node.args[1].value, str)):
            self._use(node.args[0], node.args[1].value, node.lineno)
        # obj.__dict__.get("_name") / .pop("_name")
        if (isinstance(func, ast.Attribute) and func.attr in ("get", "pop")
                and _dict_of(func.value) is not None and node.args
                and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            self._use(_dict_of(func.value), node.args[0].value, node.lineno)
        self.generic_visit(node)

    def visit_Compare(self, node: ast.Compare) -> None:
        # "_name" in obj.__dict__
        if (isinstance(node.left, ast.Constant) and isinstance(node.left.value, str)
                and len(node.comparators) == 1 and _dict_of(node.comparators[0]) is not None):
            self._use(_dict_of(node.comparators[0]), node.left.value, node.lineno)
        self.generic_visit(node)

    def visit_Subscript(self, node: ast.Subscript) -> None:
        # obj.__dict__["_name"]
        owner = _dict_of(node.value)
        if owner is not None and isinstance(node.slice, ast.Constant) \
                and isinstance(node.slice.value, str):
            self._use(owner, node.slice.value, node.lineno)
        self.generic_visit(node)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        module = node.module or ""
        if module.split(".")[0] in LIBRARIES:
            if any(p.startswith("_") for p in module.split(".")):
                self.imports.append((module, node.lineno))
            for alias in node.names:
                if _private(alias.name):
                    self.imports.append((f"{module}.{alias.name}", node.lineno))


def _dict_of(node: ast.expr) -> ast.expr | None:
    """``obj`` of an ``obj.__dict__`` expression, else None."""
    if isinstance(node, ast.Attribute) and node.attr == "__dict__":
        return node.value
    return None


def _defined(stmt: ast.stmt) -> list[str]:
    if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef):
        return [stmt.name]
    if isinstance(stmt, ast.Assign):
        return [t.id for t in stmt.targets if isinstance(t, ast.Name)]
    if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
        return [stmt.target.id]
    return []


_IMPORTS_LIBRARY = re.compile(rf"^\s*(from|import) ({'|'.join(LIBRARIES)})\b", re.M)


@cache
def _load(name: str, path: Path) -> ModuleType:
    """Our module (to see which of its classes subclass library classes); a module that
    imports no library and needs an optional dependency missing here stands empty."""
    try:
        return importlib.import_module(name)
    except ImportError:
        if _IMPORTS_LIBRARY.search(path.read_text()):
            raise
        return ModuleType(name)


@cache
def _scans() -> list[tuple[str, _Scan]]:
    scans = []
    for name, path in _modules():
        scan = _Scan(_load(name, path))
        scan.visit(ast.parse(path.read_text()))
        scans.append((name, scan))
    return scans


@cache
def _own_names() -> set[str]:
    """Private names our own classes define (methods, class attributes, ``self.x = ``)
    and the library does not: using them on an object is not a use of the library."""
    own: set[str] = set()
    for name, path in _modules():
        module = _load(name, path)
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.ClassDef):
                continue
            cls = getattr(module, node.name, None)
            bases = _library_classes(cls) if isinstance(cls, type) else []
            names = [n for stmt in node.body for n in _defined(stmt)]
            names += [t.attr for t in ast.walk(node) if isinstance(t, ast.Attribute)
                      and isinstance(t.ctx, ast.Store) and isinstance(t.value, ast.Name)
                      and t.value.id == "self"]
            own.update(n for n in names if not any(defines(b, n) for b in bases))
    return own


def test_every_private_library_name_used_is_listed() -> None:
    listed_names = {e.name for e in SEAM}
    listed_owners = {e.owner for e in SEAM}
    listed = {(id(resolve(e.owner)), e.name) for e in SEAM}
    missing = set()
    for module, scan in _scans():
        for name, bases, line in scan.on_self:
            overridden = [b for b in bases if defines(b, name)]
            if overridden and not any((id(b), name) in listed for b in bases):
                missing.add(f"{module}:{line}: {overridden[0].__module__}."
                            f"{overridden[0].__qualname__}.{name}")
        for name, line in scan.on_other:
            if name not in _own_names() and name not in listed_names:
                missing.add(f"{module}:{line}: .{name}")
        for path, line in scan.imports:
            owner, _, name = path.rpartition(".")
            if path not in listed_owners and (owner, name) not in {
                    (e.owner, e.name) for e in SEAM}:
                missing.add(f"{module}:{line}: import {path}")
    assert not missing, ("private library names used but not in boundary_celery.seam.SEAM "
                         "(add an entry, or rename ours if it only collides):\n"
                         + "\n".join(sorted(missing)))


def test_scan_sees_the_known_overrides() -> None:
    """The scan is not vacuous: it finds our Redis channel's overrides and the reads of
    kombu and Celery internals on other objects."""
    by_module = dict(_scans())
    on_self = {name for name, _, _ in by_module["boundary_celery.shell.transport"].on_self}
    assert {"_put", "_brpop_read", "_brpop_start", "_in_poll", "_queue_cycle"} <= on_self
    others = {name for _, scan in _scans() for name, _ in scan.on_other}
    assert {"_raw", "_delivered", "_context", "_pool", "_custom_task_cls_used",
            "_decorated"} <= others
    assert "celery._state" in {p for p, _ in by_module["boundary_celery.shell.logfmt"].imports}
