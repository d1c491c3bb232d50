"""Upgrade in place from the reference install (issue 12, item 5), on the real control plane.

1. The reference install as its documentation names it, written here (not copied from its release): Namespace
   ``jobset-system``, ServiceAccount, ConfigMap and Secret, the Deployment ``jobset-controller-manager`` with the
   reference's image and its immutable selector ``control-plane: controller-manager``, the metrics and webhook
   Services, the two webhook configurations, and the JobSet CRD — applied with ``kubectl apply --server-side``
   as the reference's installation page says. The CRD is ours (``deploy/crd``), which is the reference's schema;
   the RBAC is ``deploy/rbac`` (the same names as the reference's) taken over from the test harness. Nothing
   runs the reference image (KWOK pretends its pod runs), so our controller stands in briefly to start two JobSets
   whose Jobs carry exactly the reference's labels, annotations and ownerReferences.
2. With the JobSets running and the stand-in stopped, ``kubectl apply --server-side -k deploy/`` (our install)
   over it must succeed without forcing: same field manager, same names, same immutable selector.
3. Our controller (as the ServiceAccount ``jobset-controller-manager`` with the RBAC just applied) takes over:
   every Job and pod keeps its UID, labels and annotations (no restart, no duplicate, no relabel), the JobSets
   finish with ``restarts: 0``.

The webhook configurations point at ``jobset-webhook-service``, which the API server cannot reach in this plane
(no kube-proxy), and they fail closed: they are created only once every pod exists, and removed at the end with
everything else this test installed, so later tests can create JobSets again. Like the other tests that run their
own controller it skips while another runs; ``tests/e2e/run.sh`` runs it after the default suites.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e import pki
from tests.e2e.harness import REPO, ControlPlane, Process, rbac_manifests
from tests.e2e.kube import ApiError, Client, has_condition

pytestmark = [pytest.mark.e2e]

JSON = dict[str, Any]
NS = "jobset-system"
REFERENCE_IMAGE = "registry.k8s.io/jobset/jobset:v0.10.1"
SELECTOR = {"control-plane": "controller-manager"}
SIM = "sim.pyjobset.io/"
JOBSETS = "/apis/jobset.x-k8s.io/v1alpha2/namespaces/{ns}/jobsets"
JOBS = "/apis/batch/v1/namespaces/{ns}/jobs"
PODS = "/api/v1/namespaces/{ns}/pods"
WEBHOOK_CONFIGS = (
    "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/jobset-mutating-webhook-configuration",
    "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/jobset-validating-webhook-configuration",
)
INSTALLED = (
    f"/apis/apps/v1/namespaces/{NS}/deployments/jobset-controller-manager",
    f"/api/v1/namespaces/{NS}/services/jobset-controller-manager-metrics-service",
    f"/api/v1/namespaces/{NS}/services/jobset-webhook-service",
    f"/api/v1/namespaces/{NS}/configmaps/jobset-manager-config",
    f"/api/v1/namespaces/{NS}/secrets/jobset-webhook-server-cert",
)


def reference_objects() -> list[JSON]:
    """The reference install's objects (but the CRD and RBAC), by its documented names and selector."""
    meta = {"namespace": NS}
    config = (
        "apiVersion: config.jobset.x-k8s.io/v1alpha1\nkind: Configuration\n"
        "leaderElection:\n  leaderElect: true\ninternalCertManagement:\n  enable: true\n"
    )
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS, "labels": SELECTOR}},
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "jobset-manager-config", **meta},
            "data": {"controller_manager_config.yaml": config},
        },
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "jobset-webhook-server-cert", **meta}},
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "jobset-controller-manager-metrics-service", "labels": SELECTOR, **meta},
            "spec": {"ports": [{"name": "https", "port": 8443, "targetPort": 8443}], "selector": SELECTOR},
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "jobset-webhook-service", **meta},
            "spec": {"ports": [{"port": 443, "targetPort": 9443}], "selector": SELECTOR},
        },
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "jobset-controller-manager", "labels": SELECTOR, **meta},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": SELECTOR},
                "template": {
                    "metadata": {"labels": SELECTOR},
                    "spec": {
                        "serviceAccountName": "jobset-controller-manager",
                        "containers": [
                            {
                                "name": "manager",
                                "image": REFERENCE_IMAGE,
                                "command": ["/manager"],
                                "args": ["--config=/controller_manager_config.yaml", "--zap-log-level=2"],
                                "ports": [{"containerPort": 9443, "name": "webhook-server", "protocol": "TCP"}],
                                "volumeMounts": [
                                    {
                                        "name": "cert",
                                        "mountPath": "/tmp/k8s-webhook-server/serving-certs",
                                        "readOnly": True,
                                    },
                                    {
                                        "name": "manager-config",
                                        "mountPath": "/controller_manager_config.yaml",
                                        "subPath": "controller_manager_config.yaml",
                                    },
                                ],
                            }
                        ],
                        "volumes": [
                            {"name": "cert", "secret": {"secretName": "jobset-webhook-server-cert"}},
                            {"name": "manager-config", "configMap": {"name": "jobset-manager-config"}},
                        ],
                    },
                },
            },
        },
    ]


def reference_webhooks() -> list[JSON]:
    def hook(name: str, path: str, group: str, version: str, resource: str, ops: list[str]) -> JSON:
        out: JSON = {
            "name": name,
            "admissionReviewVersions": ["v1"],
            "clientConfig": {"service": {"name": "jobset-webhook-service", "namespace": NS, "path": path}},
            "failurePolicy": "Fail",
            "sideEffects": "None",
            "rules": [{"apiGroups": [group], "apiVersions": [version], "operations": ops, "resources": [resource]}],
        }
        if resource == "pods":
            out["objectSelector"] = {
                "matchExpressions": [{"key": "jobset.sigs.k8s.io/jobset-name", "operator": "Exists"}]
            }
        return out

    js = ("jobset.x-k8s.io", "v1alpha2", "jobsets")
    pod = ("", "v1", "pods")
    return [
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "MutatingWebhookConfiguration",
            "metadata": {"name": "jobset-mutating-webhook-configuration"},
            "webhooks": [
                hook("mjobset.kb.io", "/mutate-jobset-x-k8s-io-v1alpha2-jobset", *js, ["CREATE"]),
                hook("mpod.kb.io", "/mutate--v1-pod", *pod, ["CREATE"]),
            ],
        },
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingWebhookConfiguration",
            "metadata": {"name": "jobset-validating-webhook-configuration"},
            "webhooks": [
                hook("vjobset.kb.io", "/validate-jobset-x-k8s-io-v1alpha2-jobset", *js, ["CREATE", "UPDATE"]),
                hook("vpod.kb.io", "/validate--v1-pod", *pod, ["CREATE"]),
            ],
        },
    ]


def apply(plane: ControlPlane, docs: list[JSON], *extra: str) -> str:
    return plane.kubectl("apply", "--server-side", *extra, "-f", "-", input=yaml.safe_dump_all(docs))


def jobset(name: str) -> JSON:
    return {
        "apiVersion": "jobset.x-k8s.io/v1alpha2",
        "kind": "JobSet",
        "metadata": {"name": name},
        "spec": {
            "failurePolicy": {"maxRestarts": 2},
            "replicatedJobs": [
                {
                    "name": "w",
                    "replicas": 2,
                    "template": {
                        "spec": {
                            "parallelism": 2,
                            "completions": 2,
                            "backoffLimit": 0,
                            "template": {
                                # Long enough to outlive the upgrade; then they succeed.
                                "metadata": {"annotations": {SIM + "run-seconds": "40"}},
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


def wait_until(check: Any, what: str, timeout: float = 120.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := check()):
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.2)
    return value


def identity(obj: JSON) -> JSON:
    """What must not change across the upgrade: UID, labels, annotations, owners."""
    m = obj["metadata"]
    return {
        "uid": m["uid"],
        "labels": m.get("labels"),
        "annotations": m.get("annotations"),
        "owners": [(o["kind"], o["name"], o["uid"], o.get("controller")) for o in m.get("ownerReferences") or []],
    }


def controller_kubeconfig(plane: ControlPlane, out: Path) -> Path:
    """A token kubeconfig for the ServiceAccount the Deployment runs as (bound by the RBAC applied)."""
    token = plane.admin.create(
        f"/api/v1/namespaces/{NS}/serviceaccounts/jobset-controller-manager/token",
        {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {"expirationSeconds": 3600}},
    )["status"]["token"]
    return pki.write_kubeconfig(
        out,
        server=plane.server,
        ca_pem=plane.ca_pem,
        user=f"system:serviceaccount:{NS}:jobset-controller-manager",
        token=token,
        namespace=NS,
    )


@pytest.fixture
def reference_install(control_plane: ControlPlane) -> Iterator[ControlPlane]:
    if os.environ.get("PYJOBSET_EXTERNAL_CONTROLLER") == "1":
        pytest.skip(
            "another controller is running; run with PYJOBSET_E2E_CONTROLLER=0 tests/e2e/run.sh "
            "tests/e2e/test_upgrade.py"
        )
    control_plane.install_jobset_crd()  # kubectl apply --server-side, as the reference documents
    rbac = [d for p in rbac_manifests(REPO / "deploy" / "rbac") for d in yaml.safe_load_all(p.read_text()) if d]
    for doc in rbac:
        if doc["kind"] in ("ServiceAccount", "Role", "RoleBinding"):
            doc.setdefault("metadata", {}).setdefault("namespace", NS)
    namespace, *rest = reference_objects()
    apply(control_plane, [namespace])
    # Forced only here: earlier tests' harness created these bindings for its own account.
    apply(control_plane, rbac, "--force-conflicts")
    apply(control_plane, rest)
    try:
        yield control_plane
    finally:
        for path in (*WEBHOOK_CONFIGS, *INSTALLED):
            try:
                control_plane.admin.delete(path)
            except ApiError as err:
                if err.status != 404:
                    raise


def test_our_manifests_apply_over_the_reference_install_and_running_jobsets_keep_their_jobs(
    reference_install: ControlPlane, admin: Client, namespace: str, tmp_path: Path
) -> None:
    plane = reference_install
    kubeconfig = controller_kubeconfig(plane, tmp_path / "controller.kubeconfig")
    deployment = f"/apis/apps/v1/namespaces/{NS}/deployments/jobset-controller-manager"
    before_upgrade = admin.get(deployment)
    assert before_upgrade["spec"]["template"]["spec"]["containers"][0]["image"] == REFERENCE_IMAGE

    # JobSets running "under the reference": Jobs and pods made by a stand-in with the reference's labelling.
    stand_in: Process = plane.start_controller(kubeconfig, "--leader-elect=false", name="pyjobset-stand-in")
    names = ("alpha", "beta")
    for name in names:
        admin.create(JOBSETS.format(ns=namespace), jobset(name))

    def all_pods_running() -> bool:
        pods = admin.get(PODS.format(ns=namespace))["items"]
        return len(pods) == 8 and all(p["status"].get("phase") == "Running" for p in pods)

    wait_until(all_pods_running, f"8 running pods (stand-in log:\n{stand_in.tail()})")
    stand_in.stop()
    assert stand_in.popen.returncode in (0, -15), stand_in.tail()
    jobs_before = {j["metadata"]["name"]: identity(j) for j in admin.get(JOBS.format(ns=namespace))["items"]}
    pods_before = {p["metadata"]["name"]: identity(p) for p in admin.get(PODS.format(ns=namespace))["items"]}
    assert len(jobs_before) == 4
    for job in jobs_before.values():
        assert job["labels"]["jobset.sigs.k8s.io/jobset-name"] in names
        assert job["labels"]["jobset.sigs.k8s.io/restart-attempt"] == "0"
        assert job["annotations"]["jobset.sigs.k8s.io/replicatedjob-name"] == "w"
        assert job["owners"][0][0] == "JobSet"
    apply(plane, reference_webhooks())

    # The upgrade: our install over the reference's, not forced.
    out = plane.kubectl("apply", "--server-side", "-k", str(REPO / "deploy"))
    assert "immutable" not in out
    after_upgrade = admin.get(deployment)
    assert after_upgrade["metadata"]["uid"] == before_upgrade["metadata"]["uid"], "the Deployment was replaced"
    assert after_upgrade["spec"]["selector"] == {"matchLabels": SELECTOR}
    assert after_upgrade["spec"]["template"]["spec"]["containers"][0]["image"].startswith("pyjobset")
    for path in WEBHOOK_CONFIGS:
        hooks = admin.get(path)["webhooks"]
        assert {h["clientConfig"]["service"]["name"] for h in hooks} == {"jobset-webhook-service"}

    ours = plane.start_controller(kubeconfig, "--leader-elect=true", name="pyjobset-upgraded")
    for name in names:
        admin.wait_for(
            JOBSETS.format(ns=namespace),
            lambda js: has_condition(js, "Completed"),
            field_selector=f"metadata.name={name}",
            timeout=180,
            what=f"JobSet {name} Completed (controller log:\n{ours.tail()})",
        )
    jobs_after = {j["metadata"]["name"]: identity(j) for j in admin.get(JOBS.format(ns=namespace))["items"]}
    pods_after = {p["metadata"]["name"]: identity(p) for p in admin.get(PODS.format(ns=namespace))["items"]}
    restarts = {n: admin.get(f"{JOBSETS.format(ns=namespace)}/{n}")["status"].get("restarts", 0) for n in names}
    ours.stop()
    assert restarts == dict.fromkeys(names, 0)
    assert jobs_after == jobs_before, "a Job was re-created, duplicated or relabelled by the upgrade"
    assert pods_after == pods_before, "a pod was re-created or relabelled by the upgrade"
    print(
        f"\nupgrade from the reference install: kubectl apply --server-side -k deploy/ succeeded unforced; "
        f"{len(jobs_after)} Jobs and {len(pods_after)} pods kept their UIDs and labels; restarts {restarts}; "
        "JobSets Completed"
    )
