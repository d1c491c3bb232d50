"""``kubectl jobset get|describe`` (the ``kubectl-jobset`` plugin) on the real control plane.

The pinned kubectl finds the plugin on PATH (this venv's bin first) and runs it with the admin kubeconfig: a
JobSet that restarted once and then failed shows state Failed with 1 restart, its Jobs, its conditions and the
controller's events. ``pyjobset describe`` prints the same view.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.harness import ControlPlane
from tests.e2e.kube import Client
from tests.e2e.test_controller import JOBSETS, SIM, jobset, wait_jobset

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("jobset_controller")]

BIN = Path(sys.executable).parent


def plugin(control_plane: ControlPlane, *args: str) -> subprocess.CompletedProcess[str]:
    kubectl = control_plane._bin("kubectl")  # the pinned binary of this plane
    # kubectl refuses flags before a plugin's name: the kubeconfig goes through the environment, as users set it.
    env = {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "KUBECONFIG": str(control_plane.kubeconfig),
    }
    return subprocess.run(
        [kubectl, "jobset", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_plugin_shows_a_jobset_that_restarted_then_failed(
    control_plane: ControlPlane, admin: Client, namespace: str
) -> None:
    if not (BIN / "kubectl-jobset").exists():
        pytest.skip("kubectl-jobset is not installed in this venv (pip install -e .)")
    annotations = {SIM + "run-seconds": "1", SIM + "fail-when": "jobset.sigs.k8s.io/job-index=1"}
    admin.create(JOBSETS.format(ns=namespace), jobset("bad", replicas=2, annotations=annotations, max_restarts=1))
    wait_jobset(admin, namespace, "bad", "Failed")

    got = plugin(control_plane, "get", "-n", namespace)
    assert got.returncode == 0, got.stderr
    assert got.stdout.splitlines()[1].split()[:3] == ["bad", "Failed", "1"]

    described = plugin(control_plane, "describe", "bad", "-n", namespace)
    assert described.returncode == 0, described.stderr
    text = described.stdout
    assert "State:         Failed\n" in text
    assert "Restarts:      1\n" in text
    assert "bad-workers-1" in text
    conditions = text.split("Conditions:\n")[1].split("Restart History:")[0]
    assert any(line.split()[:2] == ["Failed", "True"] for line in conditions.splitlines())
    assert "Events:\n  AGE" in text

    ours = subprocess.run(
        [
            sys.executable,
            "-m",
            "controller.cli",
            "describe",
            "bad",
            "-n",
            namespace,
            "--kubeconfig",
            str(control_plane.kubeconfig),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert ours.returncode == 0, ours.stderr
    assert ours.stdout.splitlines()[:3] == text.splitlines()[:3]

    missing = plugin(control_plane, "describe", "nope", "-n", namespace)
    assert missing.returncode == 1
    assert missing.stderr.strip() == f'kubectl jobset describe: jobset "nope" not found in namespace "{namespace}"'
