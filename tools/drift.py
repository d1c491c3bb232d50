"""Generated files kept in step with the code that makes them: rewrite them, or say which ones drifted.

Role: the command line every file generator in ``tools/`` shares (``python -m tools.dashboards [--check]``,
``python -m tools.gendocs [--check]``). A generator supplies its files as ``{path: exact text}``; without
``--check`` they are written (parent folders created), with it the command exits 1 and names each file that is
missing or differs, with the command that fixes it, and writes nothing.
``api.crdgen`` keeps its own ``--check``: ``api`` sits below ``tools`` and may not import it.

Invariants: the comparison is exact text (generators are deterministic); files are read and written as UTF-8;
``--check`` never writes; the order of the paths given is the order they are reported in.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

ENCODING = "utf-8"
REPOSITORY = Path(__file__).resolve().parent.parent
"""The checkout this module runs from: generated paths are shown relative to it."""


def drifted(files: Mapping[Path, str]) -> list[Path]:
    """The paths of ``files`` that are missing or whose content is not exactly the given text."""
    return [path for path, text in files.items() if not path.exists() or path.read_text(ENCODING) != text]


def write(files: Mapping[Path, str]) -> None:
    """Write every file, creating its folder when needed."""
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, ENCODING)


def main(
    argv: Sequence[str] | None,
    render: Callable[[], Mapping[Path, str]],
    module: str,
    doc: str | None,
    check_help: str,
    *,
    root: Path = REPOSITORY,
) -> int:
    """``python -m <module> [--check]``: write what ``render`` returns, or with ``--check`` report drift (exit 1).

    ``--help`` shows the first line of the module's ``doc``; paths are shown relative to ``root``, as a user at the
    top of the repository types them.
    """
    parser = argparse.ArgumentParser(prog=f"python -m {module}", description=(doc or "").splitlines()[0])
    parser.add_argument("--check", action="store_true", help=check_help)
    args = parser.parse_args(argv)
    files = render()
    if args.check:
        stale = drifted(files)
        for path in stale:
            print(f"out of date: {path.relative_to(root)} (run python -m {module})", file=sys.stderr)
        return 1 if stale else 0
    write(files)
    return 0
