"""Credentials rotate under a running controller (issue 12): the controller process reads its ServiceAccount
token from a ``tokenFile:`` that is rewritten, and the old token is revoked at once, as when the kubelet rotates
a projected token or an exec plugin's credential expires.

Each token is a TokenRequest token bound to a Secret (``boundObjectRef``): deleting the Secret invalidates it
immediately, so the old token is provably dead (the test checks it gets 401) before the next JobSet is created.
The controller must reconcile every JobSet (its Jobs appear) without a restart and with no failed reconcile.

This test runs its own controller (its metrics on loopback show reconcile errors and 401s), so it is skipped
while another controller runs; ``tests/e2e/run.sh`` runs it after the default suites, once it has stopped its own
controller, or alone with ``PYJOBSET_E2E_CONTROLLER=0 tests/e2e/run.sh tests/e2e/test_credentials.py``.
"""

from __future__ import annotations

import base64
import os
import re
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e import pki
from tests.e2e.harness import REPO, ControlPlane, Process, free_port, rbac_manifests
from tests.e2e.kube import ApiError, Client

pytestmark = [pytest.mark.e2e]

JSON = dict[str, Any]
SA_NAMESPACE, SA_NAME = "jobset-system", "pyjobset-e2e"  # the account deploy/rbac binds (shared with run.sh)
ROTATIONS = 3


def bound_token(admin: Client, secret: str) -> str:
    """A new Secret in the ServiceAccount's namespace, and a token for the account bound to it."""
    uid = admin.create(f"/api/v1/namespaces/{SA_NAMESPACE}/secrets", {"metadata": {"name": secret}})["metadata"]["uid"]
    request = {
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenRequest",
        "spec": {
            "expirationSeconds": 3600,
            "boundObjectRef": {"kind": "Secret", "apiVersion": "v1", "name": secret, "uid": uid},
        },
    }
    token: str = admin.create(f"/api/v1/namespaces/{SA_NAMESPACE}/serviceaccounts/{SA_NAME}/token", request)["status"][
        "token"
    ]
    return token


def write_token(path: Path, token: str) -> None:
    """Replace the file atomically, as the kubelet does (a reader never sees half a token)."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(token)
    os.replace(tmp, path)


def token_status(plane: ControlPlane, token: str, tmp_path: Path) -> int:
    """HTTP status the API server gives ``token`` for a cheap authenticated call."""
    kubeconfig = pki.write_kubeconfig(
        tmp_path / f"probe-{uuid.uuid4().hex[:6]}.kubeconfig",
        server=plane.server,
        ca_pem=plane.ca_pem,
        user="probe",
        token=token,
    )
    try:
        Client(kubeconfig, timeout=10).get("/version")
    except ApiError as err:
        return err.status
    return 200


def wait_until(check: Any, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.2)


def scrape(port: int) -> dict[str, float]:
    """The controller's metrics, as ``name{labels}`` -> value."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    out: dict[str, float] = {}
    for line in text.splitlines():
        m = re.match(r"^([a-zA-Z_:][\w:]*(?:\{[^}]*\})?) (\S+)$", line)
        if m:
            out[m.group(1)] = float(m.group(2))
    return out


def total(metrics: dict[str, float], name: str, **labels: str) -> float:
    want = [f'{k}="{v}"' for k, v in labels.items()]
    return sum(v for k, v in metrics.items() if k.split("{")[0] == name and all(w in k for w in want))


def jobset(name: str) -> JSON:
    return {
        "apiVersion": "jobset.x-k8s.io/v1alpha2",
        "kind": "JobSet",
        "metadata": {"name": name},
        "spec": {
            "replicatedJobs": [
                {
                    "name": "w",
                    "replicas": 2,
                    "template": {
                        "spec": {
                            "template": {
                                "spec": {
                                    "restartPolicy": "Never",
                                    "containers": [{"name": "main", "image": "busybox"}],
                                }
                            }
                        }
                    },
                }
            ]
        },
    }


@pytest.fixture
def rotating_controller(control_plane: ControlPlane, tmp_path: Path) -> Iterator[tuple[Process, Path, int, list[str]]]:
    if os.environ.get("PYJOBSET_EXTERNAL_CONTROLLER") == "1":
        pytest.skip(
            "another controller is running; run with PYJOBSET_E2E_CONTROLLER=0 tests/e2e/run.sh "
            "tests/e2e/test_credentials.py"
        )
    control_plane.install_jobset_crd()
    # Creates the account and binds exactly deploy/rbac/ to it; its kubeconfig (a static token) is not used.
    control_plane.service_account_kubeconfig(
        SA_NAMESPACE, SA_NAME, rbac_manifests(REPO / "deploy" / "rbac"), tmp_path / "static.kubeconfig"
    )
    secrets = [f"rotation-{uuid.uuid4().hex[:6]}-0"]
    token_file = tmp_path / "token"
    write_token(token_file, bound_token(control_plane.admin, secrets[0]))
    kubeconfig = tmp_path / "controller.kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [
                    {
                        "name": "e2e",
                        "cluster": {
                            "server": control_plane.server,
                            "certificate-authority-data": base64.b64encode(control_plane.ca_pem).decode(),
                        },
                    }
                ],
                "users": [{"name": "controller", "user": {"tokenFile": str(token_file)}}],
                "contexts": [{"name": "e2e", "context": {"cluster": "e2e", "user": "controller"}}],
                "current-context": "e2e",
            }
        )
    )
    metrics_port = free_port()
    proc = control_plane.start_controller(
        kubeconfig, f"--metrics-bind-address=127.0.0.1:{metrics_port}", "--metrics-secure=false", "--leader-elect=false"
    )
    try:
        yield proc, token_file, metrics_port, secrets
    finally:
        proc.stop()
        for name in secrets:
            try:
                control_plane.admin.delete(f"/api/v1/namespaces/{SA_NAMESPACE}/secrets/{name}")
            except ApiError as err:
                if err.status != 404:
                    raise


def test_controller_survives_token_rotation_with_immediate_revocation(
    control_plane: ControlPlane,
    admin: Client,
    namespace: str,
    rotating_controller: tuple[Process, Path, int, list[str]],
    tmp_path: Path,
) -> None:
    proc, token_file, port, secrets = rotating_controller
    pid = proc.popen.pid
    jobs = f"/apis/batch/v1/namespaces/{namespace}/jobs"
    jobsets = f"/apis/jobset.x-k8s.io/v1alpha2/namespaces/{namespace}/jobsets"

    def reconciled(name: str) -> None:
        admin.create(jobsets, jobset(name))
        wait_until(
            lambda: len(admin.get(jobs, labelSelector=f"jobset.sigs.k8s.io/jobset-name={name}")["items"]) == 2,
            f"the Jobs of JobSet {name} (controller log:\n{proc.tail()})",
            timeout=90,
        )

    reconciled("before")
    for i in range(1, ROTATIONS + 1):
        old_token = token_file.read_text()
        secrets.append(f"{secrets[0][:-2]}-{i}")
        write_token(token_file, bound_token(admin, secrets[-1]))
        admin.delete(f"/api/v1/namespaces/{SA_NAMESPACE}/secrets/{secrets[-2]}")
        wait_until(lambda t=old_token: token_status(control_plane, t, tmp_path) == 401, "the old token to be revoked")
        assert token_status(control_plane, token_file.read_text(), tmp_path) == 200
        reconciled(f"after-{i}")
        assert proc.alive(), proc.tail()

    metrics = scrape(port)
    assert proc.alive()
    assert proc.popen.pid == pid  # never restarted
    assert total(metrics, "controller_runtime_reconcile_errors_total", controller="jobset") == 0, proc.tail()
    assert total(metrics, "controller_runtime_reconcile_total", controller="jobset") >= ROTATIONS + 1
    unauthorized = total(metrics, "rest_client_requests_total", code="401")
    print(
        f"\ntoken rotations survived: {ROTATIONS} (old token revoked and checked 401 each time); "
        f"JobSets reconciled: {ROTATIONS + 1}; reconcile errors: 0; 401s seen by the controller: {unauthorized:g}"
    )
