"""Smoke tests of the real control plane and of the KWOK Stages implementing the annotation contract.

Each test drives real components (the Job controller, the scheduler, the taint-eviction controller) and checks
what the contract promises: run-seconds/exit-code/fail-when/exit-now on pods, ``sim.pyjobset.io/fail`` on nodes,
and that a ServiceAccount kubeconfig carries exactly the RBAC it was bound to.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cache.client import resource_path
from tests.e2e.harness import ControlPlane
from tests.e2e.kube import ApiError, Client, condition, has_condition

pytestmark = pytest.mark.e2e

JSON = dict[str, Any]
SIM = "sim.pyjobset.io/"
INDEX_LABEL = "batch.kubernetes.io/job-completion-index"
HOLD = "e2e.pyjobset.io/hold"


def indexed_job(
    name: str,
    *,
    completions: int,
    annotations: dict[str, str],
    backoff_limit: int = 0,
    restart_policy: str = "Never",
    node_selector: dict[str, str] | None = None,
) -> JSON:
    pod_spec: JSON = {
        "restartPolicy": restart_policy,
        "containers": [{"name": "main", "image": "busybox", "resources": {"requests": {"cpu": "100m"}}}],
    }
    if node_selector:
        pod_spec["nodeSelector"] = node_selector
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "completionMode": "Indexed",
            "completions": completions,
            "parallelism": completions,
            "backoffLimit": backoff_limit,
            "template": {"metadata": {"annotations": annotations}, "spec": pod_spec},
        },
    }


def bare_pod(name: str, annotations: dict[str, str], *, restart_policy: str = "Never", node: str | None = None) -> JSON:
    spec: JSON = {"restartPolicy": restart_policy, "containers": [{"name": "main", "image": "busybox"}]}
    if node:
        spec["nodeSelector"] = {"kubernetes.io/hostname": node}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "annotations": annotations}, "spec": spec}


def wait_job(admin: Client, ns: str, name: str, cond: str, timeout: float = 60) -> JSON:
    return admin.wait_for(
        f"/apis/batch/v1/namespaces/{ns}/jobs",
        lambda job: has_condition(job, cond),
        field_selector=f"metadata.name={name}",
        timeout=timeout,
        what=f"Job {ns}/{name} {cond}",
    )


def wait_pod(admin: Client, ns: str, name: str, predicate: Any, what: str, timeout: float = 60) -> JSON:
    return admin.wait_for(
        f"/api/v1/namespaces/{ns}/pods",
        predicate,
        field_selector=f"metadata.name={name}",
        timeout=timeout,
        what=f"pod {ns}/{name} {what}",
    )


def terminated(pod: JSON) -> JSON:
    statuses = pod["status"]["containerStatuses"]
    assert len(statuses) == 1
    state: JSON = statuses[0]["state"]["terminated"]
    return state


def test_indexed_job_with_run_seconds_completes(admin: Client, namespace: str) -> None:
    admin.create(
        f"/apis/batch/v1/namespaces/{namespace}/jobs",
        indexed_job("ok", completions=2, annotations={SIM + "run-seconds": "1"}),
    )
    job = wait_job(admin, namespace, "ok", "Complete")
    assert job["status"]["succeeded"] == 2
    assert job["status"]["completedIndexes"] == "0,1"  # two adjacent indexes are not a range
    pods = admin.get(f"/api/v1/namespaces/{namespace}/pods", labelSelector="job-name=ok")["items"]
    assert sorted(p["metadata"]["labels"][INDEX_LABEL] for p in pods) == ["0", "1"]
    for pod in pods:
        assert pod["status"]["phase"] == "Succeeded"
        state = terminated(pod)
        assert (state["exitCode"], state["reason"]) == (0, "Completed")
        assert pod["spec"]["nodeName"].startswith("sim-node-")


def test_fail_when_fails_only_the_matching_pod(admin: Client, namespace: str) -> None:
    annotations = {SIM + "run-seconds": "1", SIM + "fail-when": f"{INDEX_LABEL}=1"}
    admin.create(
        f"/apis/batch/v1/namespaces/{namespace}/jobs",
        indexed_job("fw", completions=2, annotations=annotations, backoff_limit=0),
    )
    job = wait_job(admin, namespace, "fw", "Failed")
    assert condition(job, "Failed")["reason"] == "BackoffLimitExceeded"  # type: ignore[index]
    pods = admin.get(f"/api/v1/namespaces/{namespace}/pods", labelSelector=f"job-name=fw,{INDEX_LABEL}=1")["items"]
    assert pods, "the failed pod of index 1 is kept by the Job controller"
    state = terminated(pods[0])
    assert pods[0]["status"]["phase"] == "Failed"
    assert (state["exitCode"], state["reason"]) == (1, "Error")
    ready = condition(pods[0], "Ready")
    assert ready is not None
    assert (ready["status"], ready["reason"]) == ("False", "PodFailed")


def test_exit_code_fails_pod_with_that_code(admin: Client, namespace: str) -> None:
    admin.create(
        f"/api/v1/namespaces/{namespace}/pods",
        bare_pod("ec", {SIM + "run-seconds": "0", SIM + "exit-code": "3"}),
    )
    pod = wait_pod(admin, namespace, "ec", lambda p: p["status"].get("phase") == "Failed", "Failed")
    assert terminated(pod)["exitCode"] == 3


def test_on_failure_restarts_the_container_after_crash_loop_back_off(admin: Client, namespace: str) -> None:
    admin.create(
        f"/api/v1/namespaces/{namespace}/pods",
        bare_pod("rs", {SIM + "run-seconds": "0", SIM + "exit-code": "2"}, restart_policy="OnFailure"),
    )

    def container(pod: JSON) -> JSON:
        statuses = pod["status"].get("containerStatuses") or [{}]
        return dict(statuses[0])

    crashed = wait_pod(
        admin,
        namespace,
        "rs",
        lambda p: container(p).get("state", {}).get("waiting", {}).get("reason") == "CrashLoopBackOff",
        "in CrashLoopBackOff",
    )
    assert crashed["status"]["phase"] == "Running"
    assert container(crashed)["restartCount"] == 1
    assert container(crashed)["lastState"]["terminated"]["exitCode"] == 2
    assert has_condition(crashed, "Ready", "False")
    # After the 10 s back-off the container runs again, exits again and is restarted a second time.
    again = wait_pod(admin, namespace, "rs", lambda p: container(p).get("restartCount", 0) >= 2, "restarted twice")
    assert again["status"]["phase"] == "Running"


def test_exit_now_ends_a_pod_whatever_its_restart_policy(admin: Client, namespace: str) -> None:
    admin.create(f"/api/v1/namespaces/{namespace}/pods", bare_pod("en1", {}, restart_policy="OnFailure"))
    wait_pod(admin, namespace, "en1", lambda p: has_condition(p, "Ready"), "Ready")
    admin.patch(f"/api/v1/namespaces/{namespace}/pods/en1", {"metadata": {"annotations": {SIM + "exit-now": "4"}}})
    pod = wait_pod(admin, namespace, "en1", lambda p: p["status"].get("phase") == "Failed", "Failed")
    assert (terminated(pod)["exitCode"], terminated(pod)["reason"]) == (4, "Error")


def test_exit_now_ends_a_pod_that_runs_until_told(admin: Client, namespace: str) -> None:
    admin.create(f"/api/v1/namespaces/{namespace}/pods", bare_pod("en", {}))
    wait_pod(admin, namespace, "en", lambda p: has_condition(p, "Ready"), "Ready")
    admin.patch(f"/api/v1/namespaces/{namespace}/pods/en", {"metadata": {"annotations": {SIM + "exit-now": "0"}}})
    pod = wait_pod(admin, namespace, "en", lambda p: p["status"].get("phase") == "Succeeded", "Succeeded")
    assert terminated(pod)["exitCode"] == 0


def test_start_seconds_delays_running_after_binding(admin: Client, namespace: str) -> None:
    admin.create(f"/api/v1/namespaces/{namespace}/pods", bare_pod("ss", {SIM + "start-seconds": "2"}))
    pending = wait_pod(admin, namespace, "ss", lambda p: bool(p["status"].get("podIP")), "has an IP")
    assert pending["status"]["phase"] == "Pending"
    pod = wait_pod(admin, namespace, "ss", lambda p: has_condition(p, "Ready"), "Ready")
    scheduled = condition(pod, "PodScheduled")
    assert scheduled is not None
    started = pod["status"]["containerStatuses"][0]["state"]["running"]["startedAt"]
    # Server-side timestamps (second resolution): Running is at least 2 s after binding, minus truncation.
    assert _seconds(started) - _seconds(scheduled["lastTransitionTime"]) >= 1


def _seconds(ts: str) -> float:
    return dt.datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()


@pytest.fixture
def failing_node(control_plane: ControlPlane, admin: Client) -> Iterator[str]:
    # Not the node of the installed controller's pod (run.sh): the eviction would take admission down meanwhile.
    taken = {p["spec"].get("nodeName") for p in admin.get("/api/v1/namespaces/jobset-system/pods").get("items") or []}
    names = control_plane.node_names or [n["metadata"]["name"] for n in admin.get("/api/v1/nodes")["items"]]
    node = [n for n in sorted(names) if n not in taken][-1]
    try:
        yield node
    finally:
        admin.patch(f"/api/v1/nodes/{node}", {"metadata": {"annotations": {SIM + "fail": None}}})
        admin.wait_for(
            "/api/v1/nodes",
            lambda n: (
                has_condition(n, "Ready") and not any(t["key"] == SIM + "failed" for t in n["spec"].get("taints") or [])
            ),
            field_selector=f"metadata.name={node}",
            what=f"node {node} recovered",
        )


def test_failed_node_fails_its_pods_with_disruption_target(admin: Client, namespace: str, failing_node: str) -> None:
    victim = bare_pod("victim", {}, node=failing_node)
    victim["metadata"]["finalizers"] = [HOLD]  # keeps the evicted pod observable after its deletion
    pods = f"/api/v1/namespaces/{namespace}/pods"
    admin.create(pods, victim)
    try:
        wait_pod(admin, namespace, "victim", lambda p: has_condition(p, "Ready"), "Ready")
        admin.patch(f"/api/v1/nodes/{failing_node}", {"metadata": {"annotations": {SIM + "fail": "true"}}})
        node = admin.wait_for(
            "/api/v1/nodes",
            lambda n: has_condition(n, "Ready", "False"),
            field_selector=f"metadata.name={failing_node}",
            what=f"node {failing_node} NotReady",
        )
        assert any(t["key"] == SIM + "failed" and t["effect"] == "NoExecute" for t in node["spec"]["taints"])
        # Evicted by the taint-eviction controller, then turned Failed by the kubelet emulation.
        pod = wait_pod(admin, namespace, "victim", lambda p: p["status"].get("phase") == "Failed", "Failed")
        disruption = condition(pod, "DisruptionTarget")
        assert disruption is not None
        assert (disruption["status"], disruption["reason"]) == ("True", "DeletionByTaintManager")
        assert pod["metadata"].get("deletionTimestamp")
        assert terminated(pod)["exitCode"] == 137
    finally:
        admin.patch(f"{pods}/victim", {"metadata": {"finalizers": None}})


def test_service_account_kubeconfig_has_exactly_the_bound_rbac(
    control_plane: ControlPlane, namespace: str, tmp_path: Path
) -> None:
    manifest = tmp_path / "rbac.yaml"
    manifest.write_text(
        f"""
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {{name: pod-reader, namespace: {namespace}}}
rules:
- {{apiGroups: [""], resources: [pods], verbs: [get, list, watch]}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{name: pod-reader, namespace: {namespace}}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: pod-reader}}
subjects:
- {{kind: ServiceAccount, name: someone-else, namespace: elsewhere}}
"""
    )
    kubeconfig = control_plane.service_account_kubeconfig(namespace, "reader", [manifest], tmp_path / "sa.kubeconfig")
    client = Client(kubeconfig)
    assert client.get(f"/api/v1/namespaces/{namespace}/pods")["items"] == []
    with pytest.raises(ApiError) as denied:
        client.get("/api/v1/nodes")
    assert denied.value.status == 403
    with pytest.raises(ApiError) as denied_write:
        client.create(f"/api/v1/namespaces/{namespace}/pods", bare_pod("nope", {}))
    assert denied_write.value.status == 403


async def test_project_api_fixture_reaches_the_real_control_plane(api: Any, kubeconfig: str) -> None:
    # The root conftest's ``api`` (cache.client.ApiClient) is built on our ``kubeconfig`` override.
    nodes = await api.get(resource_path("", "v1", "nodes"))
    assert {n["metadata"]["name"] for n in nodes["items"]} >= {"sim-node-00000"}


def test_plane_serves_workload_aware_scheduling_and_has_racks(admin: Client, namespace: str) -> None:
    """The plane runs with the workload-aware scheduling gates (conformance 117-119 depend on it): Workload and
    PodGroup are served, a PodGroup keeps its topology constraint, and the nodes sit in racks of two."""
    from tests.e2e.harness import WORKLOAD_SCHEDULING_API

    served = {r["name"] for r in admin.get(f"/apis/{WORKLOAD_SCHEDULING_API}")["resources"]}
    assert {"workloads", "podgroups"} <= served
    group = {
        "metadata": {"name": "pg"},
        "spec": {
            "schedulingPolicy": {"gang": {"minCount": 2}},
            "schedulingConstraints": {"topology": [{"key": "topology.kubernetes.io/rack"}]},
        },
    }
    created = admin.create(f"/apis/{WORKLOAD_SCHEDULING_API}/namespaces/{namespace}/podgroups", group)
    assert created["spec"]["schedulingConstraints"] == group["spec"]["schedulingConstraints"]
    racks: dict[str, int] = {}
    for node in admin.get("/api/v1/nodes")["items"]:
        rack = node["metadata"]["labels"]["topology.kubernetes.io/rack"]
        racks[rack] = racks.get(rack, 0) + 1
    assert len(racks) >= 2
    assert max(racks.values()) == 2
