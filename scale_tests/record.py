"""The common result schema every benchmark writes (``scale_tests/README.md`` documents it for other authors).

Role: turn a benchmark's measurements into *figures* that say exactly what was compared with what, and write
them, with the run's size, date and machine load, to ``scale_tests/results/<benchmark>.json``. The README's
Performance table is rendered from these files only (``python -m scale_tests.report``), never typed by hand.

Invariants:
* a figure's ``status`` is computed here from its value and its goal, never passed in: ``met`` / ``missed``
  against the goal, ``context`` when there is no goal;
* a ``baseline`` is something measured in the same run (value + what it is); when none was measured the
  baseline is ``null`` and ``baseline_reason`` says why (non-empty);
* a ``bound`` is arithmetic (a formula or a constant, e.g. the token-bucket time or 2N + 5 calls), never
  presented as a measurement;
* ``validate`` lists every violation of the schema, so the report refuses a malformed file by name.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
from pathlib import Path
from typing import Any

SCHEMA = "pyjobset-bench/1"
RESULTS = Path(__file__).resolve().parent / "results"
LATEST = RESULTS / "latest"
STATUSES = ("met", "missed", "context")
OPS = ("<=", ">=")


def load_average() -> float:
    return round(os.getloadavg()[0], 2)


def figure(
    goal: str,
    what: str,
    value: float,
    unit: str,
    *,
    target: tuple[str, float] | None = None,
    target_text: str = "",
    baseline: tuple[float, str] | None = None,
    baseline_reason: str = "",
    bound: tuple[float, str] | None = None,
    size: str = "",
    note: str = "",
) -> dict[str, Any]:
    """One row of the table. ``target`` is (``"<="`` or ``">="``, value in ``unit``); ``baseline`` and ``bound``
    are (value in ``unit``, what it is)."""
    if baseline is None and not baseline_reason:
        raise ValueError(f"{goal} {what!r}: no baseline and no baseline_reason")
    status = "context"
    if target is not None:
        op, limit = target
        status = "met" if (value <= limit if op == "<=" else value >= limit) else "missed"
    return {
        "goal": goal,
        "what": what,
        "figure": value,
        "unit": unit,
        "target": None if target is None else {"op": target[0], "value": target[1], "text": target_text},
        "baseline": None if baseline is None else {"value": baseline[0], "what": baseline[1]},
        "baseline_reason": baseline_reason or None,
        "bound": None if bound is None else {"value": bound[0], "what": bound[1]},
        "status": status,
        "size": size,
        "note": note,
    }


def document(
    benchmark: str, figures: list[dict[str, Any]], *, load_before: float, workload: Any, details: Any
) -> dict[str, Any]:
    doc = {
        "schema": SCHEMA,
        "benchmark": benchmark,
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_average_1m": {"before": round(load_before, 2), "after": load_average()},
        },
        "command": "",
        "workload": workload,
        "figures": figures,
        "details": details,
    }
    errors = validate(doc)
    if errors:
        raise ValueError(f"{benchmark}: " + "; ".join(errors))
    return doc


def write(doc: dict[str, Any], name: str | None = None, command: str = "") -> Path:
    """Write ``doc`` to ``results/<name or benchmark>.json`` (git-ignored; ``report --promote`` commits it)."""
    doc["command"] = command or doc.get("command", "")
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name or doc['benchmark']}.json"
    path.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
    return path


def _number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)


def validate(doc: Any) -> list[str]:
    """Every way ``doc`` breaks the schema (empty when it is valid)."""
    if not isinstance(doc, dict):
        return ["not a JSON object"]
    errs: list[str] = []
    if doc.get("schema") != SCHEMA:
        errs.append(f"schema must be {SCHEMA!r}")
    for key in ("benchmark", "date"):
        if not isinstance(doc.get(key), str) or not doc[key]:
            errs.append(f"{key}: a non-empty string is required")
    load = (doc.get("machine") or {}).get("load_average_1m") if isinstance(doc.get("machine"), dict) else None
    if not isinstance(load, dict) or not all(_number(load.get(k)) for k in ("before", "after")):
        errs.append("machine.load_average_1m: {before, after} numbers are required")
    figures = doc.get("figures")
    if not isinstance(figures, list) or not figures:
        return [*errs, "figures: a non-empty list is required"]
    for n, f in enumerate(figures):
        where = f"figures[{n}]"
        if not isinstance(f, dict):
            errs.append(f"{where}: not an object")
            continue
        for key in ("goal", "what", "unit"):
            if not isinstance(f.get(key), str) or not f[key]:
                errs.append(f"{where}.{key}: a non-empty string is required")
        if not _number(f.get("figure")):
            errs.append(f"{where}.figure: a number is required")
        for key in ("baseline", "bound"):
            part = f.get(key)
            if part is not None and not (
                isinstance(part, dict) and _number(part.get("value")) and isinstance(part.get("what"), str)
            ):
                errs.append(f"{where}.{key}: null or {{value: number, what: string}}")
        if f.get("baseline") is None and not (isinstance(f.get("baseline_reason"), str) and f["baseline_reason"]):
            errs.append(f"{where}.baseline_reason: required (non-empty) when baseline is null")
        target = f.get("target")
        if target is not None and not (
            isinstance(target, dict) and target.get("op") in OPS and _number(target.get("value"))
        ):
            errs.append(f"{where}.target: null or {{op: '<=' | '>=', value: number, text}}")
        if f.get("status") not in STATUSES:
            errs.append(f"{where}.status: one of {', '.join(STATUSES)}")
        elif (
            isinstance(target, dict)
            and target.get("op") in OPS
            and _number(target.get("value"))
            and _number(f.get("figure"))
        ):
            ok = f["figure"] <= target["value"] if target["op"] == "<=" else f["figure"] >= target["value"]
            if f["status"] != ("met" if ok else "missed"):
                errs.append(
                    f"{where}.status: {f['status']!r} contradicts figure {f['figure']} {target['op']} {target['value']}"
                )
        elif target is None and f.get("status") != "context":
            errs.append(f"{where}.status: must be 'context' without a target")
    return errs
