"""``pyjobset demo`` as a user runs it: default tour and a fleet with plain (non-TTY) output, the PNG, bad flags.

The demo's stdout here is a pipe, so the progress must degrade to plain timestamped lines (no carriage returns,
no escape sequences); every usage problem is one line on stderr with exit status 2, found before anything starts.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _demo(*args: str, timeout: float = 120, prelude: str = "") -> subprocess.CompletedProcess[str]:
    code = f"{prelude}import sys; from controller.cli import main; sys.exit(main(['demo', *sys.argv[1:]]))"
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _plain(text: str) -> None:
    assert "\r" not in text
    assert "\x1b" not in text


def test_the_default_tour_prints_plain_lines_and_a_metrics_summary() -> None:
    out = _demo()
    assert out.returncode == 0, out.stderr
    _plain(out.stdout)
    assert "JobSet demo restarted (restart 1)" in out.stdout
    assert "condition Completed=True reason=AllJobsCompleted" in out.stdout
    assert "restarts: 1 in total; demo=1" in out.stdout
    assert "recovery (restart decided -> all pods ready again): 1 observed" in out.stdout
    status = [line for line in out.stdout.splitlines() if line.startswith("[") and "jobs=" in line]
    assert status, out.stdout
    assert status[-1].endswith("jobsets: Completed=1")


def test_a_fleet_with_a_failure_writes_the_timeline_png(tmp_path: Path) -> None:
    png = tmp_path / "timeline.png"
    out = _demo(
        *("--nodes", "6", "--gpus-per-node", "2", "--jobsets", "2", "--jobset-size", "3"),
        *("--fail-at", "1", "--pod-run-seconds", "4", "--plot", str(png)),
    )
    assert out.returncode == 0, out.stderr
    _plain(out.stdout)
    assert "created 2 JobSet(s) train-0..train-1: 3 pods each x 2 GPUs (6 pods for 6 nodes)" in out.stdout
    assert "failed under pod train-" in out.stdout
    assert "restarted (restart 1)" in out.stdout
    assert f"timeline written to {png}" in out.stdout
    data = png.read_bytes()
    assert data.startswith(PNG_MAGIC)
    assert len(data) > 1000


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--jobsets", "0"], "pyjobset demo: --jobsets 0: pass a number of JobSets from 1 to 1000"),
        (["--fail-at", "-1"], "pyjobset demo: --fail-at -1: pass seconds after the start, 0 or more"),
        (
            ["--plot", "timeline.svg"],
            "pyjobset demo: --plot timeline.svg: the timeline is a PNG; pass a path ending in .png",
        ),
    ],
)
def test_bad_flags_are_one_line_and_exit_2(args: list[str], message: str) -> None:
    out = _demo(*args, timeout=60)
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [message]
    assert out.stdout == ""


def test_plot_into_a_missing_directory_is_refused_before_the_run(tmp_path: Path) -> None:
    target = tmp_path / "nowhere" / "t.png"
    out = _demo("--plot", str(target), timeout=60)
    assert out.returncode == 2
    [line] = out.stderr.strip().splitlines()
    assert line.startswith(f"pyjobset demo: --plot {target}: directory ")
    assert out.stdout == ""


def test_plot_without_matplotlib_names_the_fix(tmp_path: Path) -> None:
    blocked = "import sys; sys.modules['matplotlib'] = None; "  # import matplotlib now raises ImportError
    out = _demo("--plot", str(tmp_path / "t.png"), timeout=60, prelude=blocked)
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [
        "pyjobset demo: --plot needs matplotlib, which is not installed; run: pip install matplotlib"
    ]
