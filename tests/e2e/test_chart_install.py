"""Install once from the Helm chart on the real control plane, as operators install (issue 12, item 7).

``test_chart.py`` shows the chart renders what ``deploy/`` builds and that every object is schema-valid; this test
hands the rendering to the real kube-apiserver: ``helm upgrade --install`` of ``charts/pyjobset`` with default
values into ``jobset-system`` (``--take-ownership``: the CRD and the RBAC are there already, installed from
``deploy/`` by ``run.sh`` and the tests before), checks that every object the chart renders exists as Helm's
release object, then ``helm uninstall`` removes what it installed.

No kubelet runs the chart's pod here (``tests/e2e/kubelet.py`` serves ``run.sh``'s install), so the Deployment is
checked as an object, not as a running controller: running it is what ``test_install.py`` shows for the same
objects from ``deploy/``. The test runs in ``run.sh``'s second phase, after ``run.sh`` stopped its own install
(while that runs, the names are taken), and leaves no webhook configuration behind.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.e2e.harness import REPO, ControlPlane
from tests.e2e.kube import ApiError, Client
from tests.e2e.test_chart import CHART, NAMESPACE, RELEASE, helm, render_chart

pytestmark = [pytest.mark.e2e]

__all__ = ["helm"]  # the fixture, imported for pytest

PATHS = {
    ("Deployment", "apps/v1"): "/apis/apps/v1/namespaces/{ns}/deployments/{name}",
    ("Service", "v1"): "/api/v1/namespaces/{ns}/services/{name}",
    ("ConfigMap", "v1"): "/api/v1/namespaces/{ns}/configmaps/{name}",
    ("Secret", "v1"): "/api/v1/namespaces/{ns}/secrets/{name}",
    ("ServiceAccount", "v1"): "/api/v1/namespaces/{ns}/serviceaccounts/{name}",
    ("MutatingWebhookConfiguration", "admissionregistration.k8s.io/v1"): (
        "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/{name}"
    ),
    ("ValidatingWebhookConfiguration", "admissionregistration.k8s.io/v1"): (
        "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/{name}"
    ),
    ("ClusterRole", "rbac.authorization.k8s.io/v1"): "/apis/rbac.authorization.k8s.io/v1/clusterroles/{name}",
    ("ClusterRoleBinding", "rbac.authorization.k8s.io/v1"): (
        "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/{name}"
    ),
    ("Role", "rbac.authorization.k8s.io/v1"): "/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/roles/{name}",
    ("RoleBinding", "rbac.authorization.k8s.io/v1"): (
        "/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/rolebindings/{name}"
    ),
}
WEBHOOK_KINDS = ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration")


def _helm(helm: Path, kubeconfig: Path, *args: str) -> str:
    out = subprocess.run(
        [str(helm), *args, "--kubeconfig", str(kubeconfig)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert out.returncode == 0, f"helm {' '.join(args)} failed:\n{out.stdout}\n{out.stderr}"
    return out.stdout


def _path(doc: dict[str, object]) -> str | None:
    template = PATHS.get((str(doc["kind"]), str(doc["apiVersion"])))
    meta = doc["metadata"]
    assert isinstance(meta, dict)
    return None if template is None else template.format(ns=meta.get("namespace", NAMESPACE), name=meta["name"])


def test_helm_installs_the_chart_into_the_real_api_server_and_uninstalls_it(
    control_plane: ControlPlane, admin: Client, helm: Path
) -> None:
    if os.environ.get("PYJOBSET_EXTERNAL_CONTROLLER") == "1":
        pytest.skip("run.sh's own install holds these names; run.sh runs this test after stopping it")
    kubeconfig = control_plane.kubeconfig
    rendered = [d for d in render_chart(helm) if d.get("kind") != "Namespace"]
    checked = [(d, p) for d in rendered if (p := _path(d)) is not None]
    assert {str(d["kind"]) for d, _ in checked} >= {"Deployment", "Service", *WEBHOOK_KINDS}, "nothing to check"
    _helm(
        helm, kubeconfig, "upgrade", "--install", RELEASE, str(CHART), "-n", NAMESPACE, "--create-namespace",
        "--take-ownership",
    )  # fmt: skip
    try:
        status = _helm(helm, kubeconfig, "status", RELEASE, "-n", NAMESPACE, "-o", "json")
        assert '"status":"deployed"' in status.replace(" ", ""), status
        for doc, path in checked:
            live = admin.get(path)
            annotations = live["metadata"].get("annotations") or {}
            assert annotations.get("meta.helm.sh/release-name") == RELEASE, (path, annotations)
            if doc["kind"] == "Deployment":
                assert live["spec"]["selector"] == doc["spec"]["selector"]  # type: ignore[index]
    finally:
        _helm(helm, kubeconfig, "uninstall", RELEASE, "-n", NAMESPACE, "--wait")
    for doc, path in checked:
        if doc["kind"] in WEBHOOK_KINDS:
            with pytest.raises(ApiError) as gone:
                admin.get(path)
            assert gone.value.status == 404, path
