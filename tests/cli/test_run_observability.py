"""``pyjobset run`` as a process serves /metrics, /healthz and /readyz on the addresses it is given."""

from __future__ import annotations

import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.cli.test_cli_processes import KUBECTL, ROOT, _pyjobset, _stop, kubectl


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()
    except OSError:
        return 0, ""


@pytest.mark.kubectl
@pytest.mark.skipif(KUBECTL is None, reason="no kubectl binary (set PYJOBSET_KUBECTL)")
def test_metrics_and_probes(sim_process: Path) -> None:
    kubeconfig = sim_process
    kubectl(kubeconfig, "apply", "-f", str(ROOT / "deploy" / "crd"))
    kubectl(kubeconfig, "wait", "--for=condition=Established", "crd/jobsets.jobset.x-k8s.io", "--timeout=30s")
    mport, hport = _free_port(), _free_port()
    proc = subprocess.Popen(
        _pyjobset(
            "run",
            "--kubeconfig",
            str(kubeconfig),
            "--leader-elect=false",
            "--webhooks=false",
            "--metrics-secure=false",
            f"--metrics-bind-address=127.0.0.1:{mport}",
            f"--health-probe-bind-address=127.0.0.1:{hport}",
        ),
        cwd=ROOT,
    )
    try:
        deadline = time.monotonic() + 60
        while _get(f"http://127.0.0.1:{hport}/readyz")[0] != 200:
            assert proc.poll() is None, "pyjobset run exited"
            assert time.monotonic() < deadline, "never became ready"
            time.sleep(0.1)
        assert _get(f"http://127.0.0.1:{hport}/healthz")[0] == 200
        assert "[+]informers-running ok" in _get(f"http://127.0.0.1:{hport}/healthz?verbose")[1]
        assert "[+]informers-progressing ok" in _get(f"http://127.0.0.1:{hport}/readyz?verbose")[1]
        status, body = _get(f"http://127.0.0.1:{mport}/metrics")
        assert status == 200
        for name in (
            "informer_stalled",
            "informer_decode_errors_total",
            "controller_runtime_reconcile_total",
            "workqueue_depth",
            "rest_client_requests_total",
            "jobset_cluster_gpu_allocatable",
        ):
            assert name in body, f"{name} missing from /metrics"
    finally:
        assert _stop(proc) == 0
