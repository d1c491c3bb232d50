"""The test suite's own rules: every expected failure is strict, and our own modules are imported, never skipped.

* ``xfail`` must stay strict (``xfail_strict = true`` in ``pyproject.toml``, no ``strict=False`` anywhere): a
  non-strict xfail passes whether the behaviour is broken or fixed, so it can never fail.
* ``pytest.importorskip`` is for optional third-party modules; on a module of ours it turns an import error
  (a real defect) into a skip.

The checks read every test file's syntax tree; the checker itself is tested on small sources first.
"""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
OURS = frozenset({"api", "cache", "controller", "metrics", "kubesim", "tools", "tests", "scale_tests"})


def _name(func: ast.expr) -> str:
    if isinstance(func, ast.Attribute):
        return func.attr
    if isinstance(func, ast.Name):
        return func.id
    return ""


def violations(source: str, filename: str = "<test>") -> list[str]:
    """Every non-strict xfail and every importorskip of one of our modules in ``source``."""
    found: list[str] = []
    for node in ast.walk(ast.parse(source, filename)):
        if not isinstance(node, ast.Call):
            continue
        name = _name(node.func)
        where = f"{filename}:{node.lineno}"
        if name == "xfail":
            for kw in node.keywords:
                if kw.arg == "strict" and not (isinstance(kw.value, ast.Constant) and kw.value.value is True):
                    found.append(f"{where}: xfail with strict={ast.unparse(kw.value)} (must be strict)")
        elif name == "importorskip":
            arg = node.args[0] if node.args else None
            if not (isinstance(arg, ast.Constant) and isinstance(arg.value, str)):
                found.append(f"{where}: importorskip of a module that cannot be read statically")
            elif arg.value.split(".")[0] in OURS:
                found.append(f"{where}: importorskip({arg.value!r}) of our own module (import it)")
    return found


@pytest.mark.parametrize(
    ("source", "bad"),
    [
        ("@pytest.mark.xfail(EXTERNAL, strict=False, reason='x')\ndef test_a(): ...", True),
        ("@pytest.mark.xfail(strict=flag)\ndef test_a(): ...", True),
        ("@pytest.mark.xfail(reason='x')\ndef test_a(): ...", False),  # strict by the ini option
        ("@pytest.mark.xfail(strict=True, reason='x')\ndef test_a(): ...", False),
        ("m = pytest.importorskip('controller.settings')", True),
        ("from pytest import importorskip\nm = importorskip('kubesim')", True),
        ("m = pytest.importorskip(name)", True),
        ("m = pytest.importorskip('hypothesis')", False),
    ],
)
def test_the_checker_tells_bad_from_good(source: str, bad: bool) -> None:
    assert bool(violations(source)) is bad


def test_xfail_is_strict_by_default() -> None:
    config = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    assert config["tool"]["pytest"]["ini_options"]["xfail_strict"] is True


def test_no_test_has_a_non_strict_xfail_or_skips_importing_our_modules() -> None:
    files = sorted((REPO / "tests").rglob("*.py"))
    assert len(files) > 50  # the walk found the suite
    found = [v for f in files for v in violations(f.read_text(encoding="utf-8"), str(f.relative_to(REPO)))]
    assert found == []
