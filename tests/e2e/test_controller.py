"""The controller as users deploy it: its own process, a ServiceAccount bound to exactly ``deploy/rbac/``.

These tests prove the RBAC in ``deploy/`` is sufficient for whole JobSet lifecycles on the real control plane
(a missing permission shows up as a JobSet that never progresses, and as 403s in the controller's log).
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.kube import Client, has_condition

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("jobset_controller")]

JSON = dict[str, Any]
SIM = "sim.pyjobset.io/"
JOBSETS = "/apis/jobset.x-k8s.io/v1alpha2/namespaces/{ns}/jobsets"


def jobset(name: str, *, replicas: int, annotations: dict[str, str], max_restarts: int = 0) -> JSON:
    return {
        "apiVersion": "jobset.x-k8s.io/v1alpha2",
        "kind": "JobSet",
        "metadata": {"name": name},
        "spec": {
            "failurePolicy": {"maxRestarts": max_restarts},
            "replicatedJobs": [
                {
                    "name": "workers",
                    "replicas": replicas,
                    "template": {
                        "spec": {
                            "parallelism": 2,
                            "completions": 2,
                            "backoffLimit": 0,
                            "template": {
                                "metadata": {"annotations": annotations},
                                "spec": {
                                    "restartPolicy": "Never",
                                    "containers": [{"name": "main", "image": "busybox"}],
                                },
                            },
                        }
                    },
                }
            ],
        },
    }


def wait_jobset(admin: Client, ns: str, name: str, cond: str, timeout: float = 90) -> JSON:
    return admin.wait_for(
        JOBSETS.format(ns=ns),
        lambda js: has_condition(js, cond),
        field_selector=f"metadata.name={name}",
        timeout=timeout,
        what=f"JobSet {ns}/{name} {cond}",
    )


def test_jobset_completes_with_exactly_the_deployed_rbac(admin: Client, namespace: str) -> None:
    admin.create(JOBSETS.format(ns=namespace), jobset("ok", replicas=2, annotations={SIM + "run-seconds": "1"}))
    js = wait_jobset(admin, namespace, "ok", "Completed")
    assert js["status"]["terminalState"] == "Completed"
    jobs = admin.get(f"/apis/batch/v1/namespaces/{namespace}/jobs", labelSelector="jobset.sigs.k8s.io/jobset-name=ok")
    assert sorted(j["metadata"]["name"] for j in jobs["items"]) == ["ok-workers-0", "ok-workers-1"]
    services = admin.get(f"/api/v1/namespaces/{namespace}/services")["items"]
    assert [s["metadata"]["name"] for s in services] == ["ok"]


def test_jobset_restarts_once_then_fails(admin: Client, namespace: str) -> None:
    annotations = {SIM + "run-seconds": "1", SIM + "fail-when": "jobset.sigs.k8s.io/job-index=1"}
    admin.create(JOBSETS.format(ns=namespace), jobset("bad", replicas=2, annotations=annotations, max_restarts=1))
    js = wait_jobset(admin, namespace, "bad", "Failed")
    assert js["status"]["restarts"] == 1
    assert js["status"]["terminalState"] == "Failed"
