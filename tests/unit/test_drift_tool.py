"""``tools.drift``: the write / ``--check`` command line the file generators share.

Role: pin what a generator's command does with its files — writes them (folders created) without ``--check``,
and with it exits 1 naming every missing or differing file and the command that fixes it, writing nothing.

Invariants: everything happens below ``tmp_path``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tools import drift


def _files(root: Path) -> dict[Path, str]:
    return {root / "deploy" / "a.yaml": "a: 1\n", root / "pages" / "ref" / "b.txt": "# B — generated\n"}


def _run(root: Path, files: dict[Path, str], *argv: str) -> int:
    return drift.main(list(argv), lambda: files, "tools.example", "Example.\n\nMore.", "check", root=root)


def test_without_check_every_file_is_written_and_its_folder_created(tmp_path: Path) -> None:
    files = _files(tmp_path)
    (tmp_path / "deploy").mkdir()
    (tmp_path / "deploy" / "a.yaml").write_text("stale\n")

    assert _run(tmp_path, files) == 0

    assert {path: path.read_text(encoding="utf-8") for path in files} == files
    assert drift.drifted(files) == []


def test_check_names_each_missing_or_differing_file_with_the_fix_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    files = _files(tmp_path)
    (tmp_path / "deploy").mkdir()
    (tmp_path / "deploy" / "a.yaml").write_text("stale\n")

    assert _run(tmp_path, files, "--check") == 1

    err = capsys.readouterr().err.splitlines()
    assert err == [
        f"out of date: {Path('deploy/a.yaml')} (run python -m tools.example)",
        f"out of date: {Path('pages/ref/b.txt')} (run python -m tools.example)",
    ]
    assert (tmp_path / "deploy" / "a.yaml").read_text() == "stale\n"
    assert not (tmp_path / "pages").exists()


def test_check_passes_silently_once_the_files_match(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    files = _files(tmp_path)
    drift.write(files)

    assert _run(tmp_path, files, "--check") == 0
    assert capsys.readouterr().err == ""


def test_drifted_reports_in_the_order_given_and_compares_exact_text(tmp_path: Path) -> None:
    files = _files(tmp_path)
    drift.write(files)
    first, second = files
    second.write_text("# B — generated\n\n", encoding="utf-8")  # one trailing newline more is drift

    assert drift.drifted(files) == [second]
    assert drift.drifted({second: "other", first: "a: 1\n"}) == [second]


def test_an_unknown_flag_is_a_usage_error_naming_the_module(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        _run(tmp_path, _files(tmp_path), "--chek")

    assert exit_info.value.code == 2
    assert "python -m tools.example" in capsys.readouterr().err
    assert not (tmp_path / "deploy").exists()


def test_help_shows_the_first_line_of_the_generators_docstring(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        _run(tmp_path, _files(tmp_path), "--help")

    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: python -m tools.example [-h] [--check]")
    assert "Example." in out
    assert "More." not in out
