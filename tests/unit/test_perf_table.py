"""The README's Performance table is exactly what the committed benchmark results say (no benchmark runs here).

Role: keep the figures honest. ``scale_tests/results/latest/*.json`` (common schema, ``scale_tests/record.py``)
are the only source of the table between the ``perf-table`` markers; a hand edit of the table, or a result file
promoted without re-rendering, fails here. The schema's own rules are tested on small documents first (goal ids
as in ``docs/design/performance.md``).

Invariants: reads files only; renders with the same function the ``--write`` command uses.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from scale_tests import record, report


def _doc(**figure_overrides: Any) -> dict[str, Any]:
    fig = record.figure(
        "P3",
        "CPU per event",
        12.5,
        "µs",
        target=("<=", 20.0),
        target_text="≤ 20 µs",
        baseline=(30.0, "dicts"),
    )
    fig.update(figure_overrides)
    return {
        "schema": record.SCHEMA,
        "benchmark": "bench_x",
        "date": "2026-12-05T11:00:00+00:00",
        "machine": {"cpus": 2, "python": "3.11", "load_average_1m": {"before": 6.0, "after": 7.5}},
        "command": "python -m scale_tests.bench_x",
        "workload": {},
        "figures": [fig],
        "details": {},
    }


def test_figure_computes_status_from_value_and_target() -> None:
    met = record.figure("P6", "rate", 120_000, "events/s", target=(">=", 100_000), baseline_reason="none here")
    missed = record.figure("P6", "rate", 60_000, "events/s", target=(">=", 100_000), baseline_reason="none here")
    context = record.figure("queue", "rate", 5, "items/s", baseline=(4, "asyncio.Queue"))
    assert (met["status"], missed["status"], context["status"]) == ("met", "missed", "context")


def test_figure_without_baseline_needs_a_reason() -> None:
    with pytest.raises(ValueError, match="baseline_reason"):
        record.figure("P1", "time", 1.0, "s")


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"status": "met", "figure": 25.0}, "contradicts"),
        ({"baseline": None, "baseline_reason": None}, "baseline_reason"),
        ({"bound": {"value": "fast"}}, "bound"),
        ({"target": None}, "must be 'context'"),
        ({"figure": "12"}, "figure"),
    ],
)
def test_validate_names_what_is_wrong(overrides: dict[str, Any], error: str) -> None:
    errors = record.validate(_doc(**overrides))
    assert any(error in e for e in errors), errors


def test_validate_requires_the_machine_load() -> None:
    doc = _doc()
    del doc["machine"]["load_average_1m"]
    assert any("load_average_1m" in e for e in record.validate(doc))
    assert record.validate(_doc()) == []


def test_load_skips_foreign_json_and_refuses_a_malformed_result(tmp_path: Path) -> None:
    (tmp_path / "other.json").write_text('{"not": "ours"}')
    (tmp_path / "good.json").write_text(json.dumps(_doc()))
    assert [name for name, _ in report.load(tmp_path)] == ["good.json"]
    (tmp_path / "bad.json").write_text(json.dumps(_doc(status="met", figure=99.0)))
    with pytest.raises(report.ReportError, match=r"bad\.json.*contradicts"):
        report.load(tmp_path)


def test_rendered_row_labels_baseline_bound_and_status() -> None:
    bounded = _doc(bound={"value": 9.0, "what": "token bucket"}, baseline=None, baseline_reason="Go not run here")
    row = report.rows([("x.json", bounded)])[0]
    assert "none: Go not run here" in row
    assert "9 µs (token bucket)" in row
    assert "| met |" in row
    assert "load 6→7.5" in row


def test_write_readme_replaces_only_the_marked_block(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(f"# t\nbefore\n{report.START}\nold\n{report.END}\nafter\n")
    assert report.write_readme("| new |\n", readme)
    assert readme.read_text() == f"# t\nbefore\n{report.START}\n| new |\n{report.END}\nafter\n"
    assert report.current_table(readme) == "| new |\n"
    assert not report.write_readme("| new |\n", readme)


def test_readme_table_matches_committed_results() -> None:
    docs = report.load()
    assert docs, f"no result files with schema {record.SCHEMA} in {record.LATEST}"
    assert report.current_table() == report.render(docs), (
        "README Performance table differs from scale_tests/results/latest/: run `python -m scale_tests.report --write`"
    )
