"""Every design reference in the repository resolves inside the repository (``docs/``).

Role: a team that inherits only this repository must be able to follow every pointer the code, tests, deploy
files and READMEs make: to a page (``docs/design/behaviour.md``, or the bare page name ``behaviour.md``), to a
section of the behaviour contract (``behaviour.md §4.5``), to a deliberate deviation (``D1`` to ``D6``), to a
performance goal (``P1`` to ``P13``), to a conformance scenario (``test_c14_...``, "conformance 124").

Invariants checked: no tracked file outside ``docs/`` points at the out-of-repo team brief; every ``docs/….md``
path and every Markdown link in ``docs/`` exists; every bare page name mentioned exists as a tracked file;
every cited section, decision, goal and scenario id is defined on its page; a file citing a decision or goal id
names the page that defines it; the old "spec 4.5" form is gone.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DESIGN = ROOT / "docs" / "design"
SELF = Path(__file__).resolve().relative_to(ROOT).as_posix()
BINARY_SUFFIXES = {".json", ".sum", ".mod", ".typed", ".gitkeep", ".png", ".svg"}
# Pieces joined at runtime so that this file does not match its own patterns.
OUT_OF_REPO = ["shared" + "/spec", "shared" + "/design", "../" + "shared"]
SECTION = r"(\d+(?:\.\d+)?)"


@cache
def tracked_files() -> tuple[str, ...]:
    """Paths (relative, POSIX) of the repository's files: git's list, or a walk when there is no git checkout."""
    try:
        out = subprocess.run(
            ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True, timeout=60
        ).stdout.split()
    except (OSError, subprocess.SubprocessError):
        skip = {".git", ".venv", "__pycache__", "results", "node_modules"}
        out = [
            p.relative_to(ROOT).as_posix()
            for p in ROOT.rglob("*")
            if p.is_file() and not skip.intersection(p.relative_to(ROOT).parts)
        ]
    return tuple(sorted(p for p in out if Path(p).suffix not in BINARY_SUFFIXES))


@cache
def text_of(path: str) -> str:
    try:
        return (ROOT / path).read_text(encoding="utf-8")
    except (UnicodeDecodeError, FileNotFoundError):
        return ""


def lines_of(paths: tuple[str, ...]) -> Iterator[tuple[str, int, str]]:
    for path in paths:
        for number, line in enumerate(text_of(path).splitlines(), start=1):
            yield path, number, line


def outside_docs() -> tuple[str, ...]:
    return tuple(p for p in tracked_files() if not p.startswith("docs/") and p != SELF)


def doc_pages() -> tuple[str, ...]:
    return tuple(p for p in tracked_files() if p.startswith("docs/") and p.endswith(".md"))


def defined_sections() -> set[str]:
    """Section numbers of behaviour.md: headings such as ``## 4. …`` and ``### 4.5 …``."""
    text = (DESIGN / "behaviour.md").read_text(encoding="utf-8")
    return set(re.findall(r"^#{2,3} " + SECTION + r"\.? ", text, flags=re.MULTILINE))


def defined_ids(page: str, prefix: str) -> set[str]:
    """Ids defined in the first column of a table on a page, e.g. ``| D4 |`` or ``| P7 |``."""
    text = (DESIGN / page).read_text(encoding="utf-8")
    return set(re.findall(r"^\| (" + prefix + r"\d+) \|", text, flags=re.MULTILINE))


def defined_scenarios() -> set[int]:
    text = (DESIGN / "conformance.md").read_text(encoding="utf-8")
    return {int(n) for n in re.findall(r"^(\d+)\. ", text, flags=re.MULTILINE)}


def test_the_design_pages_exist() -> None:
    for page in ("architecture", "behaviour", "conformance", "extensions", "performance", "simulated-cluster"):
        assert (DESIGN / f"{page}.md").is_file(), f"docs/design/{page}.md is missing"
    assert (ROOT / "docs" / "README.md").is_file()


def test_no_file_points_outside_the_repository() -> None:
    offenders = [
        f"{path}:{number}: {line.strip()}"
        for path, number, line in lines_of(outside_docs())
        if any(marker in line for marker in OUT_OF_REPO)
    ]
    assert not offenders, "references to the out-of-repo brief; point them at docs/design/ instead:\n" + "\n".join(
        offenders
    )


def test_every_docs_path_mentioned_exists() -> None:
    missing = [
        f"{path}:{number}: {ref}"
        for path, number, line in lines_of(tracked_files())
        for ref in re.findall(r"(?<![\w./-])(docs/[\w./-]*?\.md)\b", line)
        if not (ROOT / ref).is_file()
    ]
    assert not missing, "docs/ paths that do not exist:\n" + "\n".join(missing)


def test_every_link_between_doc_pages_resolves() -> None:
    missing = [
        f"{path}:{number}: {target}"
        for path, number, line in lines_of(doc_pages())
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", re.sub(r"`[^`]*`", "", line))
        if "://" not in target and not ((ROOT / path).parent / target).exists()
    ]
    assert not missing, "broken links in docs/:\n" + "\n".join(missing)


def test_every_bare_page_name_exists_somewhere() -> None:
    names = {Path(p).name for p in tracked_files()}
    missing = [
        f"{path}:{number}: {name}"
        for path, number, line in lines_of(tracked_files())
        for name in re.findall(r"(?<![\w./-])([\w-]+\.md)\b", line)
        if name not in names
    ]
    assert not missing, "page names that no tracked file has:\n" + "\n".join(missing)


def test_the_old_spec_section_form_is_gone() -> None:
    offenders = [
        f"{path}:{number}: {line.strip()}"
        for path, number, line in lines_of(outside_docs())
        if re.search(r"\bspec (sections? )?\d", line)
    ]
    assert not offenders, 'write "behaviour.md §4.5" instead of "spec 4.5":\n' + "\n".join(offenders)


def test_every_cited_section_exists() -> None:
    sections = defined_sections()
    assert {"0", "1.6", "4.5", "4.11", "5.5", "7", "11"} <= sections  # the parser sees the headings
    cited = [
        (path, number, ref)
        for path, number, line in lines_of(tracked_files())
        if "behaviour" in line or path.startswith("docs/design/")
        for ref in re.findall(r"§" + SECTION, line)
    ]
    assert cited
    missing = [f"{path}:{number}: §{ref}" for path, number, ref in cited if ref not in sections]
    assert not missing, "sections cited but not in docs/design/behaviour.md:\n" + "\n".join(missing)


@pytest.mark.parametrize(
    ("pattern", "page", "prefix"),
    [(r"\bD[1-9]\b", "behaviour.md", "D"), (r"\bP(?:1[0-9]|[1-9])\b", "performance.md", "P")],
    ids=["decisions", "goals"],
)
def test_cited_ids_are_defined_and_their_page_is_named(pattern: str, page: str, prefix: str) -> None:
    defined = defined_ids(page, prefix)
    assert len(defined) >= 6
    unnamed: list[str] = []
    undefined: list[str] = []
    for path in outside_docs():
        text = text_of(path)
        ids = set(re.findall(pattern, text))
        if not ids:
            continue
        if page not in text:
            unnamed.append(f"{path}: cites {sorted(ids)} without naming {page}")
        undefined += [f"{path}: {i}" for i in sorted(ids - defined)]
    assert not unnamed, "\n".join(unnamed)
    assert not undefined, f"ids not defined in docs/design/{page}:\n" + "\n".join(undefined)


def test_conformance_scenario_ids_exist() -> None:
    scenarios = defined_scenarios()
    assert {1, 14, 124, 131} <= scenarios
    cited: list[tuple[str, int]] = []
    for path in outside_docs():
        if not path.startswith("tests/"):
            continue
        text = text_of(path)
        cited += [(path, int(n)) for n in re.findall(r"\bdef test_c(\d+)[a-z]?_", text)]
        cited += [(path, int(n)) for n in re.findall(r"\bconformance (\d+)\b", text)]
    assert cited
    missing = sorted({f"{path}: {n}" for path, n in cited if n not in scenarios})
    assert not missing, "scenario ids not in docs/design/conformance.md:\n" + "\n".join(missing)
