"""Leader hand-over between two ``pyjobset run`` processes (issue 5): never two reconciling at once.

Two controller processes campaign for the same Lease against ``pyjobset sim``. Each logs (JSON, debug level)
when it becomes leader and every reconcile it performs. The leader is stopped with SIGTERM (which releases the
Lease); the standby takes over and reconciles a second JobSet. From the two logs: the first leader's reconciles
all happened before the second became leader, and the standby reconciled nothing before that.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.cli.test_cli_processes import KUBECTL, ROOT, _stop, kubectl

CONFIG = """
apiVersion: config.jobset.x-k8s.io/v1alpha1
kind: Configuration
leaderElection:
  leaderElect: true
  resourceNamespace: jobset-system
  leaseDuration: 3s
  renewDeadline: 2s
  retryPeriod: 500ms
metrics:
  bindAddress: "0"
health:
  healthProbeBindAddress: "0"
"""

JOBSET = """
apiVersion: jobset.x-k8s.io/v1alpha2
kind: JobSet
metadata:
  name: {name}
spec:
  network: {{enableDNSHostnames: true}}
  successPolicy: {{operator: All}}
  replicatedJobs:
  - name: w
    replicas: 2
    template:
      spec:
        completionMode: Indexed
        template:
          spec:
            restartPolicy: Never
            containers: [{{name: main, image: busybox}}]
"""


def _events(log: Path) -> list[dict[str, Any]]:
    out = []
    for line in log.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


def _when(ev: dict[str, Any]) -> dt.datetime:
    return dt.datetime.fromisoformat(ev["timestamp"].replace("Z", "+00:00"))


def _wait(predicate: Any, what: str, limit: float = 60.0) -> Any:
    deadline = time.monotonic() + limit
    while not (value := predicate()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)
    return value


def _jobs(kubeconfig: Path) -> set[str]:
    got = json.loads(kubectl(kubeconfig, "get", "jobs", "-o", "json"))
    return {i["metadata"]["name"] for i in got["items"]}


@pytest.mark.kubectl
@pytest.mark.skipif(KUBECTL is None, reason="no kubectl binary (set PYJOBSET_KUBECTL)")
def test_two_processes_never_reconcile_at_once(sim_process: Path, tmp_path: Path) -> None:
    kubeconfig = sim_process
    kubectl(kubeconfig, "apply", "-f", str(ROOT / "deploy" / "crd"))
    kubectl(kubeconfig, "wait", "--for=condition=Established", "crd/jobsets.jobset.x-k8s.io", "--timeout=30s")
    kubectl(kubeconfig, "create", "namespace", "jobset-system")
    config = tmp_path / "config.yaml"
    config.write_text(CONFIG)
    logs = {n: tmp_path / f"{n}.log" for n in ("a", "b")}
    procs: dict[str, subprocess.Popen[bytes]] = {}
    args = [
        "run",
        "--kubeconfig",
        str(kubeconfig),
        "--config",
        str(config),
        "--zap-log-level=debug",
        "--webhooks=false",
    ]
    files = {n: p.open("wb") for n, p in logs.items()}
    try:
        procs["a"] = subprocess.Popen([sys.executable, "-m", "controller.cli", *args], cwd=ROOT, stderr=files["a"])
        _wait(lambda: any(e["event"] == "leader_elected" for e in _events(logs["a"])), "a to lead")
        procs["b"] = subprocess.Popen([sys.executable, "-m", "controller.cli", *args], cwd=ROOT, stderr=files["b"])
        _wait(lambda: any(e["event"] == "caches_synced" for e in _events(logs["b"])), "b to sync")

        kubectl(kubeconfig, "apply", "-f", "-", stdin=JOBSET.format(name="first"))
        _wait(lambda: {"first-w-0", "first-w-1"} <= _jobs(kubeconfig), "the leader to create first's jobs")
        assert not any(e["event"] == "reconciled" for e in _events(logs["b"])), "the standby reconciled"

        assert _stop(procs.pop("a")) == 0  # a clean stop releases the Lease
        _wait(lambda: any(e["event"] == "leader_elected" for e in _events(logs["b"])), "b to take over", 30)
        kubectl(kubeconfig, "apply", "-f", "-", stdin=JOBSET.format(name="second"))
        _wait(lambda: {"second-w-0", "second-w-1"} <= _jobs(kubeconfig), "the new leader to create second's jobs")
    finally:
        for proc in procs.values():
            _stop(proc)
        for f in files.values():
            f.close()

    a_events, b_events = _events(logs["a"]), _events(logs["b"])
    a_reconciles = [_when(e) for e in a_events if e["event"] == "reconciled"]
    b_elected = min(_when(e) for e in b_events if e["event"] == "leader_elected")
    b_reconciles = [_when(e) for e in b_events if e["event"] == "reconciled"]
    assert a_reconciles, "the first leader never reconciled"
    assert b_reconciles, "the second leader never reconciled"
    assert max(a_reconciles) < b_elected <= min(b_reconciles)
