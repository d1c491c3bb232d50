"""The controller as a cluster runs it (issue 12): installed from ``deploy/`` with kubectl, its Deployment's pod run
by the e2e kubelet with the pod's own identity and configuration, and admission done by kube-apiserver calling the
installed webhooks through ``jobset-webhook-service``.

These tests need ``tests/e2e/run.sh`` (``PYJOBSET_E2E_ADMISSION=1``: the install and the namespaces it runs in);
elsewhere they are skipped.
"""

from __future__ import annotations

import base64
import copy
import os
from typing import Any

import pytest

from tests.e2e.kube import ApiError, Client, has_condition
from tests.e2e.kubelet import wait_admission

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        os.environ.get("PYJOBSET_E2E_ADMISSION") != "1", reason="needs the install of tests/e2e/run.sh (admission on)"
    ),
]

JSON = dict[str, Any]
SYSTEM = "jobset-system"
JOBSETS = "/apis/jobset.x-k8s.io/v1alpha2/namespaces/{}/jobsets"


def user_jobset(name: str) -> JSON:
    """A JobSet as users write it: no successPolicy, startupPolicy or network, a failure-policy rule without name."""
    return {
        "apiVersion": "jobset.x-k8s.io/v1alpha2",
        "kind": "JobSet",
        "metadata": {"name": name},
        "spec": {
            "failurePolicy": {
                "maxRestarts": 2,
                "rules": [{"action": "FailJobSet", "onJobFailureReasons": ["PodFailurePolicy"]}],
            },
            "replicatedJobs": [
                {
                    "name": "leader",
                    "template": {
                        "spec": {
                            "template": {"spec": {"containers": [{"name": "main", "image": "busybox"}]}},
                        }
                    },
                },
                {
                    "name": "workers",
                    "replicas": 2,
                    "template": {
                        "spec": {
                            "parallelism": 2,
                            "completions": 2,
                            "template": {
                                "spec": {
                                    "restartPolicy": "Never",
                                    "containers": [{"name": "main", "image": "busybox"}],
                                }
                            },
                        }
                    },
                },
            ],
        },
    }


def expected_spec(user: JSON) -> JSON:
    """What the reference stores for ``user``: its webhook's defaults plus the CRD schema's, written out."""
    spec = copy.deepcopy(user["spec"])
    # mjobset.kb.io (the reference's JobSet Default())
    spec["successPolicy"] = {"operator": "All"}
    spec["startupPolicy"] = {"startupPolicyOrder": "AnyOrder"}
    spec["network"] = {"enableDNSHostnames": True, "publishNotReadyAddresses": True}
    spec["failurePolicy"]["rules"][0]["name"] = "failurePolicyRule0"
    leader, workers = spec["replicatedJobs"]
    for rjob in (leader, workers):
        rjob["template"]["spec"]["completionMode"] = "Indexed"
    leader["template"]["spec"]["template"]["spec"]["restartPolicy"] = "OnFailure"  # workers keep their Never
    # CRD schema defaults
    spec["failurePolicy"]["restartStrategy"] = "Recreate"
    for rjob in (leader, workers):
        rjob["groupName"] = "default"
    leader["replicas"] = 1
    return spec


def test_jobset_as_users_write_it_is_defaulted_by_the_installed_webhook(admin: Client, namespace: str) -> None:
    user = user_jobset("as-written")
    stored = admin.create(JOBSETS.format(namespace), user)
    assert stored["spec"] == expected_spec(user)
    assert admin.get(f"{JOBSETS.format(namespace)}/as-written")["spec"] == expected_spec(user)
    # Its pods passed the installed pod webhooks (failurePolicy Fail): the controller created Jobs, the Job
    # controller created pods through admission.
    admin.wait_for(
        f"/api/v1/namespaces/{namespace}/pods",
        lambda p: True,
        label_selector="jobset.sigs.k8s.io/jobset-name=as-written",
        what="a pod of the JobSet admitted",
        timeout=90,
    )


def test_invalid_jobset_is_refused_by_the_installed_webhook(admin: Client, namespace: str) -> None:
    bad = user_jobset("refused")
    bad["spec"]["failurePolicy"]["rules"][0]["targetReplicatedJobs"] = ["no-such-job"]
    with pytest.raises(ApiError) as caught:
        admin.create(JOBSETS.format(namespace), bad)
    err = caught.value
    message = err.body.get("message", "") if isinstance(err.body, dict) else str(err.body)
    assert err.status == 422, err.body
    assert 'admission webhook "vjobset.kb.io" denied the request' in message
    assert "no-such-job" in message
    with pytest.raises(ApiError) as gone:
        admin.get(f"{JOBSETS.format(namespace)}/refused")
    assert gone.value.status == 404


def test_webhooks_are_served_with_the_certificates_internal_management_wrote(admin: Client) -> None:
    secret = admin.get(f"/api/v1/namespaces/{SYSTEM}/secrets/jobset-webhook-server-cert")
    ca = base64.b64decode(secret["data"]["ca.crt"])
    assert secret["data"]["tls.crt"]
    assert secret["data"]["tls.key"]
    for kind, name in (
        ("mutatingwebhookconfigurations", "jobset-mutating-webhook-configuration"),
        ("validatingwebhookconfigurations", "jobset-validating-webhook-configuration"),
    ):
        config = admin.get(f"/apis/admissionregistration.k8s.io/v1/{kind}/{name}")
        for hook in config["webhooks"]:
            assert hook["clientConfig"]["service"] == {
                "name": "jobset-webhook-service",
                "namespace": SYSTEM,
                "path": hook["clientConfig"]["service"]["path"],
                "port": 443,
            }
            assert ca in base64.b64decode(hook["clientConfig"]["caBundle"]), f"{name}/{hook['name']}"


def test_the_deployment_pod_serves_admission_as_its_service_account(admin: Client) -> None:
    pods = admin.get(f"/api/v1/namespaces/{SYSTEM}/pods", labelSelector="control-plane=controller-manager")["items"]
    running = [p for p in pods if has_condition(p, "Ready") and not p["metadata"].get("deletionTimestamp")]
    assert len(running) == 1, [p["metadata"]["name"] for p in pods]
    pod = running[0]
    assert pod["spec"]["serviceAccountName"] == "jobset-controller-manager"
    assert pod["metadata"]["ownerReferences"][0]["kind"] == "ReplicaSet"
    # The real EndpointSlice controller made the webhook Service's endpoint from the pod's IP and readiness.
    slices = admin.get(
        f"/apis/discovery.k8s.io/v1/namespaces/{SYSTEM}/endpointslices",
        labelSelector="kubernetes.io/service-name=jobset-webhook-service",
    )["items"]
    endpoints = [(e["addresses"], e["targetRef"]["name"]) for s in slices for e in s.get("endpoints") or []]
    assert endpoints == [([pod["status"]["podIP"]], pod["metadata"]["name"])]
    assert [p["port"] for s in slices for p in s["ports"]] == [9443]
    # The leader is that pod's process (identity <hostname>_<uuid>; the pod's hostname is its name).
    lease = admin.get(f"/apis/coordination.k8s.io/v1/namespaces/{SYSTEM}/leases/6d4f6a47.jobset.x-k8s.io")
    assert lease["spec"]["holderIdentity"].startswith(pod["metadata"]["name"] + "_")


def test_a_replaced_pod_takes_over_admission_and_leadership(admin: Client, namespace: str) -> None:
    """Delete the controller's pod, as a rollout or an eviction does: the ReplicaSet makes another, the e2e
    kubelet stops the old process (SIGTERM) and runs the new one, and admission and the Lease follow the new pod."""
    pods = f"/api/v1/namespaces/{SYSTEM}/pods"
    old = admin.get(pods, labelSelector="control-plane=controller-manager")["items"]
    assert len(old) == 1
    old_name = old[0]["metadata"]["name"]
    admin.delete(f"{pods}/{old_name}")
    new = admin.wait_for(
        pods,
        lambda p: p["metadata"]["name"] != old_name and has_condition(p, "Ready"),
        label_selector="control-plane=controller-manager",
        what="the replacement pod Ready",
        timeout=120,
    )
    admin.wait_gone(f"{pods}/{old_name}", timeout=60)
    admin.wait_for(
        f"/apis/discovery.k8s.io/v1/namespaces/{SYSTEM}/endpointslices",
        lambda s: [e["targetRef"]["name"] for e in s.get("endpoints") or []] == [new["metadata"]["name"]],
        label_selector="kubernetes.io/service-name=jobset-webhook-service",
        what="the webhook endpoint on the new pod",
    )
    wait_admission(admin, timeout=60)  # the API server's own EndpointSlice cache follows asynchronously
    stored = admin.create(JOBSETS.format(namespace), user_jobset("after-replacement"))
    assert stored["spec"] == expected_spec(user_jobset("after-replacement"))
    admin.wait_for(
        f"/apis/coordination.k8s.io/v1/namespaces/{SYSTEM}/leases",
        lambda lease: lease["spec"].get("holderIdentity", "").startswith(new["metadata"]["name"] + "_"),
        field_selector="metadata.name=6d4f6a47.jobset.x-k8s.io",
        what="the new pod's process leading",
    )
