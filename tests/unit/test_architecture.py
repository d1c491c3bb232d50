"""No module of the product reaches into another module's private names (checked on the AST, no import needed).

A leading underscore says "this module's business": another module that reads it couples itself to an
implementation detail no one promised to keep. For every module of ``api``, ``cache``, ``controller``,
``metrics``, ``kubesim`` and ``tools`` this test flags what can be seen statically:

1. ``from x import _y`` and ``import x._y``: a private name (or private module) of another module;
2. ``e._y`` where ``e`` is *foreign*, i.e. its value statically comes from another module:
   * a name bound by an import (a module, or a class, function or constant of another module);
   * an attribute of a foreign value (``mod.Class``, ``foreign.attr``) or the result of calling one
     (``web.TCPSite(...)``, ``store.get(key)`` for a foreign ``store``);
   * a parameter or variable annotated with a foreign type (``store: Store``, ``site: web.TCPSite | None``) or
     assigned a foreign value;
   * ``self.f`` where the class annotates ``f`` with a foreign type or assigns it a foreign value;
3. ``getattr``/``setattr``/``hasattr``/``delattr`` of a constant ``"_y"`` on a foreign value.

Dunder names and the public API of named tuples (``_replace``, ``_asdict``, ...) are not private. Values whose
type only inference could find (a dict entry, an untyped parameter) are out of reach; mypy and review cover those.
"""

from __future__ import annotations

import ast
import fnmatch
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("api", "cache", "controller", "metrics", "kubesim", "tools")

NOT_PRIVATE = frozenset({"_", "_replace", "_asdict", "_fields", "_make", "_field_defaults"})
"""Named tuples' public API carries an underscore so as not to clash with field names."""

ATTR_BUILTINS = frozenset({"getattr", "setattr", "hasattr", "delattr"})


def is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__")) and name not in NOT_PRIVATE


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def product_modules() -> Iterator[tuple[str, Path]]:
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            yield module_name(path), path


def is_module(dotted: str) -> bool:
    """Whether ``dotted`` is a module or package of this repository (external modules: assumed not)."""
    base = ROOT.joinpath(*dotted.split("."))
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


@dataclass
class Scope:
    """Names whose value statically comes from another module, in one function (or the module)."""

    foreign: set[str] = field(default_factory=set)
    local: set[str] = field(default_factory=set)
    """Names bound here to something not known to be foreign (they shadow outer foreign names)."""
    parent: Scope | None = None

    def is_foreign(self, name: str) -> bool:
        scope: Scope | None = self
        while scope is not None:
            if name in scope.foreign:
                return True
            if name in scope.local:
                return False
            scope = scope.parent
        return False


class Checker(ast.NodeVisitor):
    def __init__(self, module: str, path: Path) -> None:
        self.module = module
        self.package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        self.found: list[str] = []
        self.scope = Scope()
        self.class_attrs: list[set[str]] = []
        """Per enclosing class: attributes of ``self`` holding a foreign value."""

    # ------------------------------------------------------------------------------------ helpers

    def report(self, node: ast.AST, what: str) -> None:
        self.found.append(f"{self.module}:{getattr(node, 'lineno', 0)}: {what}")

    def absolute(self, node: ast.ImportFrom) -> str:
        if not node.level:
            return node.module or ""
        base = self.package.split(".")
        if node.level > 1:
            base = base[: -(node.level - 1)]
        return ".".join([*base, *([node.module] if node.module else [])])

    def foreign(self, node: ast.expr | None) -> bool:
        """Whether the value of ``node`` statically comes from another module."""
        if isinstance(node, ast.Name):
            return self.scope.is_foreign(node.id)
        if isinstance(node, ast.Attribute):
            if isinstance(node.value, ast.Name) and node.value.id == "self" and self.class_attrs:
                return node.attr in self.class_attrs[-1]
            return self.foreign(node.value)
        if isinstance(node, ast.Call):
            return self.foreign(node.func)
        if isinstance(node, ast.Await):
            return self.foreign(node.value)
        return False

    def foreign_type(self, ann: ast.expr | None) -> bool:
        """Whether an annotation names a type of another module (``X``, ``m.X``, ``X[...]``, ``X | None``, "X")."""
        if ann is None:
            return False
        if isinstance(ann, ast.Constant) and isinstance(ann.value, str):
            try:
                return self.foreign_type(ast.parse(ann.value, mode="eval").body)
            except SyntaxError:
                return False
        if isinstance(ann, ast.BinOp):
            return self.foreign_type(ann.left) or self.foreign_type(ann.right)
        if isinstance(ann, ast.Subscript):
            if isinstance(ann.value, ast.Name) and ann.value.id in ("Optional", "ClassVar", "Final"):
                return self.foreign_type(ann.slice)
            return self.foreign(ann.value)
        return self.foreign(ann)

    def bind(self, target: ast.expr, foreign: bool) -> None:
        if isinstance(target, ast.Name):
            if foreign:
                self.scope.foreign.add(target.id)
                self.scope.local.discard(target.id)
            else:
                self.scope.foreign.discard(target.id)
                self.scope.local.add(target.id)
        elif (
            isinstance(target, ast.Attribute)
            and isinstance(target.value, ast.Name)
            and target.value.id == "self"
            and self.class_attrs
            and foreign
        ):
            self.class_attrs[-1].add(target.attr)

    # ------------------------------------------------------------------------------------ import statements

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            parts = alias.name.split(".")
            if any(is_private(p) for p in parts[1:]) and not self.sibling(".".join(parts[:-1])):
                self.report(node, f"import {alias.name}")
            self.scope.foreign.add(alias.asname or parts[0])

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        source = self.absolute(node)
        for alias in node.names:
            if is_private(alias.name) and not (is_module(f"{source}.{alias.name}") and self.sibling(source)):
                self.report(node, f"from {source} import {alias.name}")
            if source != "__future__":
                self.scope.foreign.add(alias.asname or alias.name)

    def sibling(self, package: str) -> bool:
        """A private module may be used by the modules of its own package."""
        return self.module == package or self.module.startswith(package + ".")

    # ------------------------------------------------------------------------------------ scopes

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        attrs: set[str] = set()
        for stmt in node.body:
            if (
                isinstance(stmt, ast.AnnAssign)
                and isinstance(stmt.target, ast.Name)
                and (self.foreign_type(stmt.annotation) or self.foreign(stmt.value))
            ):
                attrs.add(stmt.target.id)
        self.class_attrs.append(attrs)
        # Two passes over the methods: ``self.f = ...`` in one method types ``self.f`` in all of them.
        for stmt in node.body:
            if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef):
                self.function(stmt, record_only=True)
        for stmt in node.body:
            self.visit(stmt)
        self.class_attrs.pop()

    def function(self, node: ast.FunctionDef | ast.AsyncFunctionDef, *, record_only: bool = False) -> None:
        for dec in node.decorator_list:
            if not record_only:
                self.visit(dec)
        outer = self.scope
        self.scope = Scope(parent=outer)
        args = node.args
        for arg in [*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg]:
            if arg is not None:
                (self.scope.foreign if self.foreign_type(arg.annotation) else self.scope.local).add(arg.arg)
        found = self.found
        if record_only:
            self.found = []
        for stmt in node.body:
            self.visit(stmt)
        self.found = found
        self.scope = outer

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        self.function(node)

    def visit_AsyncFunctionDef(self, node: ast.AsyncFunctionDef) -> None:
        self.function(node)

    # ------------------------------------------------------------------------------------ bindings and uses

    def visit_Assign(self, node: ast.Assign) -> None:
        self.visit(node.value)
        for target in node.targets:
            self.bind(target, self.foreign(node.value))
            self.visit(target)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        if node.value is not None:
            self.visit(node.value)
        self.bind(node.target, self.foreign_type(node.annotation) or self.foreign(node.value))
        self.visit(node.target)

    def visit_With(self, node: ast.With | ast.AsyncWith) -> None:
        for item in node.items:
            self.visit(item.context_expr)
            if item.optional_vars is not None:
                self.bind(item.optional_vars, self.foreign(item.context_expr))
        for stmt in node.body:
            self.visit(stmt)

    def visit_AsyncWith(self, node: ast.AsyncWith) -> None:
        self.visit_With(node)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        if is_private(node.attr) and self.foreign(node.value):
            self.report(node, f"{ast.unparse(node)}")
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        if (
            isinstance(func, ast.Name)
            and func.id in ATTR_BUILTINS
            and len(node.args) >= 2
            and isinstance(node.args[1], ast.Constant)
            and isinstance(node.args[1].value, str)
            and is_private(node.args[1].value)
            and self.foreign(node.args[0])
        ):
            self.report(node, f"{ast.unparse(node)}")
        self.generic_visit(node)


def offenders() -> list[str]:
    found: list[str] = []
    for module, path in product_modules():
        checker = Checker(module, path)
        checker.visit(ast.parse(path.read_text(), filename=str(path)))
        found += checker.found
    return found


def without_line(entry: str) -> str:
    """``"mod:12: what"`` → ``"mod: what"``: allow-list entries survive unrelated edits that move lines."""
    module, _, rest = entry.partition(":")
    return f"{module}:{rest.partition(':')[2]}"


def test_no_module_reads_another_modules_private_names() -> None:
    left = offenders()
    assert left == [], "private names read across modules (make them public or move the code):\n" + "\n".join(left)


# --------------------------------------------------------------------------------------------- the checker


def check(source: str, module: str = "cache.sample") -> list[str]:
    checker = Checker(module, ROOT / (module.replace(".", "/") + ".py"))
    checker.visit(ast.parse(source))
    return [without_line(e).partition(": ")[2] for e in checker.found]


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        pytest.param("from cache.store import _helper", ["from cache.store import _helper"], id="from-import"),
        pytest.param("from .store import _helper", ["from cache.store import _helper"], id="relative-import"),
        pytest.param("import cache.store\ncache.store._items", ["cache.store._items"], id="module-attribute"),
        pytest.param("from cache import store\nstore._x", ["store._x"], id="from-imported-module"),
        pytest.param("from cache.store import Store\nStore._key", ["Store._key"], id="class-attribute"),
        pytest.param(
            "from cache.store import Store\ndef f(s: Store[int] | None):\n    return s._items",
            ["s._items"],
            id="annotated-parameter",
        ),
        pytest.param(
            "from aiohttp import web\nasync def f(r):\n    site = web.TCPSite(r)\n    return site._server",
            ["site._server"],
            id="assigned-from-a-call",
        ),
        pytest.param(
            "from cache.store import Store\nclass A:\n    s: Store\n    def f(self):\n        return self.s._items",
            ["self.s._items"],
            id="annotated-field",
        ),
        pytest.param(
            "from cache.store import Store\nclass A:\n    def g(self):\n        return self.s._items\n"
            "    def __init__(self, s: Store):\n        self.s = s",
            ["self.s._items"],
            id="field-assigned-in-another-method",
        ),
        pytest.param("import os\ngetattr(os, '_exit')", ["getattr(os, '_exit')"], id="getattr"),
        pytest.param("class A:\n    def f(self, o: 'A'):\n        return self._x, o._y", [], id="own-class"),
        pytest.param("from collections import namedtuple\nnamedtuple('P', 'x')._make", [], id="namedtuple-api"),
        pytest.param("import re2 as _re\n_re.compile", [], id="private-alias-of-public-module"),
        pytest.param("from cache.store import Store\nStore.__init__", [], id="dunder"),
        pytest.param("def f(o):\n    return o._x", [], id="untyped-is-out-of-reach"),
    ],
)
def test_checker_flags_what_is_statically_visible(source: str, expected: list[str]) -> None:
    assert check(source) == expected


def test_tools_ship_with_the_repository_but_not_in_the_wheel() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    include = project["tool"]["setuptools"]["packages"]["find"]["include"]
    assert not [p for p in include if fnmatch.fnmatch("tools", p) or fnmatch.fnmatch("tools.synthetic", p)]
    assert "tools" in project["tool"]["mypy"]["packages"], "mypy --strict must still check tools/"
    assert "tools" in project["tool"]["importlinter"]["root_packages"], "the layers contract puts tools on top"
