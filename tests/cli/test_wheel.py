"""The built wheel is complete: in a fresh virtual environment, `pyjobset --version` and `pyjobset demo` run.

A checkout hides missing package data (the code finds its files next to the sources), so this builds the wheel
(``pip wheel --no-deps``), installs it into a new venv and runs the console script from a directory outside the
checkout with a clean environment, so nothing can be imported from the repository. The dependencies come from the
package index exactly as the image gets them: ``deploy/image/requirements.lock`` with ``--require-hashes`` (so
this also proves the lock installs, is complete for the wheel's declared requirements — ``pip check`` — and is
enough to run). Slow (under a minute, most of it installing dependencies).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def _run(argv: list[str | Path], *, cwd: Path, timeout: float, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(
        [str(a) for a in argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert proc.returncode == 0, f"{argv[:3]} exited {proc.returncode}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheelhouse")
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", out, REPO], cwd=out, timeout=300)
    (built,) = out.glob("pyjobset-*.whl")
    return built


def test_wheel_carries_the_data_files_read_at_run_time(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    assert any(n.startswith("k8sopenapi/kubernetes-") and n.endswith(".json") for n in names), sorted(names)
    assert "k8sopenapi/__init__.py" in names
    # Nothing from outside the packages (deploy/, tests/) is shipped.
    assert not [n for n in names if n.startswith(("deploy/", "tests/", "charts/"))]


def test_demo_runs_from_the_installed_wheel(wheel: Path, tmp_path: Path) -> None:
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python = env_dir / "bin" / "python"
    pip = [python, "-m", "pip", "--disable-pip-version-check", "--quiet"]
    lock = REPO / "deploy" / "image" / "requirements.lock"
    _run([*pip, "install", "--require-hashes", "--no-deps", "-r", lock], cwd=tmp_path, timeout=600)
    _run([*pip, "install", "--no-deps", wheel], cwd=tmp_path, timeout=120)
    _run([*pip, "check"], cwd=tmp_path, timeout=60)
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    clean["PATH"] = f"{env_dir / 'bin'}{os.pathsep}{clean.get('PATH', '')}"
    where = _run([python, "-c", "import api; print(api.__file__)"], cwd=tmp_path, timeout=60, env=clean)
    assert Path(where.strip()).is_relative_to(env_dir), where  # the installed copy, not the checkout
    version = _run([env_dir / "bin" / "pyjobset", "--version"], cwd=tmp_path, timeout=60, env=clean)
    assert re.fullmatch(r"pyjobset \d+\.\d+\.\d+\S*\n?", version), version
    out = _run([env_dir / "bin" / "pyjobset", "demo"], cwd=tmp_path, timeout=120, env=clean)
    assert "Completed=True" in out
