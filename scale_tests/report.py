"""Render the README's Performance table from the committed benchmark results, or check that it matches them.

Role: the only author of the table between ``<!-- perf-table:start -->`` and ``<!-- perf-table:end -->`` in
``README.md``. It reads every ``scale_tests/results/latest/*.json`` that carries the common schema
(``scale_tests.record.SCHEMA``; files without a ``schema`` key are skipped, so unrelated JSON may sit there),
refuses a malformed one by name, and renders one row per figure.

    python -m scale_tests.report                 # print the table
    python -m scale_tests.report --promote NAME  # copy results/NAME.json (a fresh run) to results/latest/
    python -m scale_tests.report --write         # rewrite the README table from results/latest/
    python -m scale_tests.report --check         # exit 1 when the README table differs (the unit tier runs this)

Invariants: the table is a pure function of the files (no clock, no machine state), so the check is exact;
rows are ordered by goal id (P1 … P13 of ``docs/design/performance.md``, then the rest), then file, then the
order of the file's figures.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
from pathlib import Path
from typing import Any

from scale_tests.record import LATEST, RESULTS, SCHEMA, validate

README = Path(__file__).resolve().parent.parent / "README.md"
START = "<!-- perf-table:start -->"
END = "<!-- perf-table:end -->"


class ReportError(Exception):
    pass


def load(directory: Path = LATEST) -> list[tuple[str, dict[str, Any]]]:
    """(file name, document) of every schema file in ``directory``, sorted by name."""
    out = []
    for path in sorted(directory.glob("*.json")):
        try:
            doc = json.loads(path.read_text())
        except (OSError, ValueError) as err:
            raise ReportError(f"{path.name}: not readable JSON ({err})") from err
        if not isinstance(doc, dict) or "schema" not in doc:
            continue
        errors = validate(doc)
        if errors:
            raise ReportError(f"{path.name}: " + "; ".join(errors) + f" (schema {SCHEMA}, scale_tests/README.md)")
        out.append((path.name, doc))
    return out


def num(x: float) -> str:
    """A figure as people read it: 3 significant digits, thousands separated, no trailing zeros."""
    if x == 0:
        return "0"
    a = abs(x)
    if a >= 1000:
        return f"{x:,.0f}"
    if a >= 100:
        return f"{x:.0f}"
    if a >= 10:
        return f"{x:.1f}".rstrip("0").rstrip(".")
    return f"{x:.3g}"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _goal_key(goal: str) -> tuple[int, int, str]:
    m = re.fullmatch(r"P(\d+)", goal)
    return (0, int(m.group(1)), "") if m else (1, 0, goal)


def rows(docs: list[tuple[str, dict[str, Any]]]) -> list[str]:
    items = []
    for fname, doc in docs:
        load = doc["machine"]["load_average_1m"]
        run = f"{doc['date'][:10]}, load {num(load['before'])}→{num(load['after'])}"
        for n, f in enumerate(doc["figures"]):
            items.append((_goal_key(f["goal"]), fname, n, f, run))
    items.sort(key=lambda t: (t[0], t[1], t[2]))
    out = []
    for _, fname, _, f, run in items:
        unit = f["unit"]
        target = f["target"]
        goal = f["goal"]
        if target:
            goal += ": " + (target["text"] or f"{target['op']} {num(target['value'])} {unit}")
        base = f["baseline"]
        baseline = f"{num(base['value'])} {unit} ({base['what']})" if base else f"none: {f['baseline_reason']}"
        bound = f["bound"]
        bound_text = f"{num(bound['value'])} {unit} ({bound['what']})" if bound else "—"
        status = {"met": "met", "missed": "**missed**", "context": "context"}[f["status"]]
        what = f["what"] + (f" — {f['note']}" if f["note"] else "")
        size = f["size"] or "full size"
        cells = (goal, what, f"{num(f['figure'])} {unit}", baseline, bound_text, status, size, f"`{fname}` {run}")
        out.append("| " + " | ".join(_cell(x) for x in cells) + " |")
    return out


def render(docs: list[tuple[str, dict[str, Any]]]) -> str:
    head = [
        "| goal | what is measured | figure | baseline measured in the same run | bound (arithmetic, not measured) "
        "| status | size | source, date, load |",
        "|---|---|---|---|---|---|---|---|",
    ]
    commands = sorted({doc["command"] for _, doc in docs if doc.get("command")})
    tail = ["", "Produced by: " + "; ".join(f"`{c}`" for c in commands) + "." if commands else ""]
    return "\n".join([*head, *rows(docs), *tail]).rstrip() + "\n"


def split_readme(text: str) -> tuple[str, str, str]:
    if text.count(START) != 1 or text.count(END) != 1 or text.index(START) > text.index(END):
        raise ReportError(f"README.md must hold exactly one {START} … {END} block")
    head, rest = text.split(START)
    body, tail = rest.split(END)
    return head, body, tail


def current_table(readme: Path = README) -> str:
    return split_readme(readme.read_text())[1].strip("\n") + "\n"


def write_readme(table: str, readme: Path = README) -> bool:
    head, _, tail = split_readme(readme.read_text())
    new = f"{head}{START}\n{table}{END}{tail}"
    changed = new != readme.read_text()
    if changed:
        readme.write_text(new)
    return changed


def promote(names: list[str]) -> None:
    LATEST.mkdir(parents=True, exist_ok=True)
    for name in names:
        src = RESULTS / (name if name.endswith(".json") else f"{name}.json")
        doc = json.loads(src.read_text())
        errors = validate(doc)
        if errors:
            raise ReportError(f"{src.name}: " + "; ".join(errors))
        shutil.copyfile(src, LATEST / src.name)
        print(f"promoted {src.name} -> {LATEST.relative_to(README.parent)}/")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--promote", nargs="+", metavar="NAME", help="copy results/NAME.json into results/latest/")
    ap.add_argument("--write", action="store_true", help="rewrite the README table")
    ap.add_argument("--check", action="store_true", help="exit 1 if the README table differs from the results")
    args = ap.parse_args(argv)
    try:
        if args.promote:
            promote(args.promote)
        table = render(load())
        if args.check:
            if current_table() != table:
                print(
                    "README Performance table differs from scale_tests/results/latest/; run "
                    "`python -m scale_tests.report --write`",
                    file=sys.stderr,
                )
                return 1
            return 0
        if args.write:
            print("README.md table " + ("rewritten" if write_readme(table) else "unchanged"))
            return 0
        if not args.promote:
            print(table, end="")
        return 0
    except ReportError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
