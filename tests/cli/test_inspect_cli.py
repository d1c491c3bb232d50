"""``pyjobset get|describe`` and the ``kubectl jobset`` plugin, as processes against ``pyjobset up``.

The real kubectl finds the ``kubectl-jobset`` console script on PATH (the venv's bin first) and runs it with the
kubeconfig in ``KUBECONFIG``. Bad input is one line: a missing JobSet exits 1, a bad kubeconfig exits 2.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli.test_cli_processes import ROOT
from tests.cli.up_process import up_process


def _kubectl() -> str | None:
    found = os.environ.get("PYJOBSET_KUBECTL") or shutil.which("kubectl")
    if found:
        return found
    try:
        out = subprocess.run(
            ["bash", str(ROOT / "tests/e2e/build.sh"), "--print-bin-dir"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    candidate = Path(out) / "kubectl"
    return str(candidate) if out and candidate.is_file() else None


KUBECTL = _kubectl()
BIN = Path(sys.executable).parent
pytestmark = [
    pytest.mark.kubectl,
    pytest.mark.skipif(KUBECTL is None, reason="no kubectl binary (set PYJOBSET_KUBECTL)"),
    pytest.mark.skipif(not (BIN / "kubectl-jobset").exists(), reason="kubectl-jobset not installed (pip install -e .)"),
]

TRAIN = """
apiVersion: jobset.x-k8s.io/v1alpha2
kind: JobSet
metadata:
  name: train
  annotations:
    pyjobset.io/inject-env: torch
spec:
  failurePolicy:
    maxRestarts: 3
  replicatedJobs:
  - name: workers
    replicas: 2
    template:
      spec:
        parallelism: 2
        completions: 2
        backoffLimit: 0
        template:
          spec:
            restartPolicy: Never
            containers:
            - name: trainer
              image: busybox
              resources:
                limits:
                  nvidia.com/gpu: 8
"""


def run(*argv: str, kubeconfig: Path, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", "KUBECONFIG": str(kubeconfig)}
    return subprocess.run(list(argv), input=stdin, env=env, capture_output=True, text=True, timeout=120, check=False)


def test_get_and_describe_through_pyjobset_and_the_kubectl_plugin(tmp_path: Path) -> None:
    assert KUBECTL is not None
    with up_process(tmp_path, "--nodes", "4") as up:
        kc = up.kubeconfig
        assert run(KUBECTL, "apply", "-f", "-", kubeconfig=kc, stdin=TRAIN).returncode == 0
        waited = run(
            KUBECTL,
            "wait",
            "--for=jsonpath={.status.replicatedJobsStatus[0].ready}=2",
            "jobset/train",
            "--timeout=60s",
            kubeconfig=kc,
        )
        assert waited.returncode == 0, waited.stderr

        plugin = run(KUBECTL, "jobset", "get", kubeconfig=kc)
        assert plugin.returncode == 0, plugin.stderr
        lines = plugin.stdout.splitlines()
        assert lines[0].split() == ["NAME", "STATE", "RESTARTS", "READY", "AGE", "LAST", "FAILURE"]
        assert lines[1].split()[:4] == ["train", "Running", "0", "2/2"]
        ours = run(sys.executable, "-m", "controller.cli", "get", "-A", "--kubeconfig", str(kc), kubeconfig=kc)
        assert ours.returncode == 0, ours.stderr
        assert ours.stdout.splitlines()[1].split()[:5] == ["default", "train", "Running", "0", "2/2"]

        described = run(KUBECTL, "jobset", "describe", "train", "-n", "default", kubeconfig=kc)
        assert described.returncode == 0, described.stderr
        text = described.stdout
        assert "Name:          train\n" in text
        assert "  workers  (2 Jobs x 2 pods each)" in text
        assert "train-workers-1   Ready   2 Running (2 Ready)   16 GPUs" in text
        assert "  held:                     32\n" in text
        assert "Restart History:\n  —\n" in text

        missing = run(KUBECTL, "jobset", "describe", "nope", kubeconfig=kc)
        assert missing.returncode == 1
        assert missing.stderr.splitlines() == [
            'kubectl jobset describe: jobset "nope" not found in namespace "default"'
        ]


def test_bad_kubeconfig_is_one_line_exit_2(tmp_path: Path) -> None:
    out = run(str(BIN / "kubectl-jobset"), "get", "--kubeconfig", str(tmp_path / "absent"), kubeconfig=tmp_path / "x")
    assert out.returncode == 2
    assert len(out.stderr.splitlines()) == 1
    assert out.stderr.startswith("kubectl jobset get: ")


@pytest.mark.parametrize("command", ["get", "describe"])
def test_plugin_help_ends_with_an_example(command: str, tmp_path: Path) -> None:
    out = run(str(BIN / "kubectl-jobset"), command, "--help", kubeconfig=tmp_path / "x")
    assert out.returncode == 0
    assert out.stdout.rstrip().splitlines()[-2:][0] == "example:"
    assert f"kubectl jobset {command}" in out.stdout.rstrip().splitlines()[-1]
