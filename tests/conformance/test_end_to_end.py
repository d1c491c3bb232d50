"""Conformance 8.C: the reference's end-to-end scenarios, pod-driven through the annotation contract
(103, 104, 106, 107, 109, 110, 113, 114), and 117-119 (workload-aware scheduling: Workload and PodGroup of
scheduling.k8s.io/v1beta1, gang and rack-topology placement by the real kube-scheduler; skipped on kubesim).

Pods are scheduled and run by the cluster (simulated kubelet or KWOK): ``run-seconds`` makes them succeed,
``fail-when`` makes chosen pods fail, pods without ``run-seconds`` run until the test sets ``exit-now``. Network
reachability cannot be simulated, so the DNS scenarios check the facts a ping relies on: the headless Service
named after the subdomain selects every pod, and each pod's hostname/subdomain form the expected FQDN.
"""

from __future__ import annotations

import contextlib
import uuid
from typing import Any

from api import constants as c
from cache.client import resource_path
from cache.errors import ApiError
from tests.builders import JobSetBuilder
from tests.conformance.kit import (
    RACK_LABEL,
    RUN_SECONDS,
    START_SECONDS,
    Cluster,
    counts,
    expected,
    gang_group,
    in_pod_group,
    jobset_workload,
    live,
    pod_group_condition,
    require_topology_constraints,
    require_workload_scheduling,
    simulated,
    wait_for,
    was_path,
)

JSON = dict[str, Any]


def pods_of(jobset: str) -> Any:
    def check(pods: list[JSON]) -> list[JSON] | None:
        mine = [p for p in pods if p["metadata"]["labels"].get(c.JOBSET_NAME_KEY) == jobset]
        return mine or None

    return check


async def assert_dns_facts(cluster: Cluster, jobset: str, rjob: str, replicas: int, subdomain: str) -> None:
    services = await cluster.wait_services(1)
    svc = services[0]
    assert svc["metadata"]["name"] == subdomain
    assert svc["spec"]["clusterIP"] == "None"
    assert svc["spec"]["publishNotReadyAddresses"] is True
    selector = svc["spec"]["selector"]
    pods = await cluster.wait_pods(lambda pods: pods if len(pods) == replicas else None)
    fqdns = set()
    for pod in pods:
        labels = pod["metadata"]["labels"]
        assert all(labels.get(k) == v for k, v in selector.items()), f"Service does not select {labels}"
        fqdns.add(f"{pod['spec']['hostname']}.{pod['spec']['subdomain']}")
    assert fqdns == {f"{jobset}-{rjob}-{i}-0.{subdomain}" for i in range(replicas)}


async def test_c103_dns_hostnames(cluster: Cluster) -> None:
    obj = JobSetBuilder("js", cluster.ns).rjob("rjob", 4).obj()
    await cluster.create(simulated(obj, run_seconds="2"))
    await assert_dns_facts(cluster, "js", "rjob", 4, "js")
    js = await cluster.wait_terminal("js", "Completed")
    assert counts(js, "rjob") == expected(succeeded=4)


async def test_c104_custom_subdomain(cluster: Cluster) -> None:
    obj = JobSetBuilder("js", cluster.ns).rjob("rjob", 4).set("spec.network.subdomain", "network-subdomain").obj()
    await cluster.create(simulated(obj, run_seconds="2"))
    await assert_dns_facts(cluster, "js", "rjob", 4, "network-subdomain")
    await cluster.wait_terminal("js", "Completed")


async def test_c106_foreground_delete_removes_every_child(cluster: Cluster) -> None:
    obj = JobSetBuilder("js", cluster.ns).rjob("rjob", 3).obj()
    await cluster.create(simulated(obj))
    await cluster.wait_observed("js", "rjob", expected(ready=3, active=3))
    await cluster.api.delete(f"{cluster.jobsets_path}/js", propagation="Foreground")
    await cluster.wait_gone(cluster.jobsets_path, "js")
    assert await cluster.jobs("js") == []
    await cluster.wait_pods(lambda pods: not pods)


async def test_c107_kueue_style_suspend_resume_with_node_selector(cluster: Cluster) -> None:
    obj = JobSetBuilder("js", cluster.ns).rjob("rjob", 2).set("spec.suspend", True).obj()
    await cluster.create(simulated(obj, run_seconds="1"))
    await cluster.wait_jobs(lambda jobs: len(jobs) == 2 and all(j["spec"]["suspend"] for j in jobs))

    def admit(node_os: str, suspend: bool) -> Any:
        def mutate(js: JSON) -> None:
            js["spec"]["suspend"] = suspend
            pod_spec = js["spec"]["replicatedJobs"][0]["template"]["spec"]["template"]["spec"]
            pod_spec["nodeSelector"] = {"kubernetes.io/os": node_os}

        return mutate

    # Admitted to a flavour no node has: pods are created but stay Pending (they count as active).
    await cluster.update_jobset("js", admit("non-existing-os", False))
    js = await cluster.wait_observed("js", "rjob", expected(active=2))
    pods = await cluster.wait_pods(lambda pods: pods if len(pods) == 2 else None)
    assert all(p["spec"]["nodeSelector"] == {"kubernetes.io/os": "non-existing-os"} for p in pods)
    assert all((p.get("status") or {}).get("phase", "Pending") == "Pending" for p in pods)
    # Evicted back to the queue while the flavour is switched, then admitted again.
    await cluster.update_jobset("js", admit("linux", True))
    await cluster.wait_jobs(lambda jobs: len(live(jobs)) == 2 and all(j["spec"]["suspend"] for j in live(jobs)))
    await cluster.set_suspend("js", False)
    js = await cluster.wait_terminal("js", "Completed")
    assert counts(js, "rjob")["succeeded"] == 2
    for job in await cluster.jobs("js"):
        assert job["spec"]["template"]["spec"]["nodeSelector"] == {"kubernetes.io/os": "linux"}


async def test_c109_depends_on_complete(cluster: Cluster) -> None:
    obj = (
        JobSetBuilder("js", cluster.ns)
        .rjob("model-initializer", 1)
        .rjob("dataset-initializer", 1)
        .rjob(
            "trainer",
            1,
            depends_on=[
                {"name": "model-initializer", "status": "Complete"},
                {"name": "dataset-initializer", "status": "Complete"},
            ],
        )
        .obj()
    )
    obj = simulated(obj, ["trainer"], run_seconds="1")
    await cluster.create(simulated(obj, ["model-initializer", "dataset-initializer"]))
    jobs = await cluster.wait_job_count(2)
    assert [j["metadata"]["name"] for j in jobs] == ["js-dataset-initializer-0", "js-model-initializer-0"]
    # The initializers run (ready); the controller has seen that and still holds the trainer back.
    await cluster.wait_observed("js", "dataset-initializer", expected(ready=1, active=1))
    await cluster.wait_observed("js", "model-initializer", expected(ready=1, active=1))
    await cluster.stays(cluster.jobs_path, lambda items: len(items) == 2)
    await cluster.exit_now("js-model-initializer-0", 0)
    await cluster.wait_observed("js", "model-initializer", expected(succeeded=1))
    assert len(await cluster.jobs("js")) == 2
    await cluster.exit_now("js-dataset-initializer-0", 0)
    jobs = await cluster.wait_job_count(3)
    assert "js-trainer-0" in [j["metadata"]["name"] for j in jobs]
    await cluster.wait_terminal("js", "Completed")


async def test_c110_depends_on_ready_coordinator(cluster: Cluster) -> None:
    obj = (
        JobSetBuilder("js", cluster.ns)
        .rjob("coordinator", 1)
        .rjob("trainer", 2, depends_on=[{"name": "coordinator", "status": "Ready"}])
        .obj()
    )
    # The coordinator's startup takes "forever" until released; the trainer runs briefly.
    obj = simulated(obj, ["trainer"], run_seconds="1")
    await cluster.create(simulated(obj, ["coordinator"], start_seconds="3600"))
    jobs = await cluster.wait_job_count(1)
    assert jobs[0]["metadata"]["name"] == "js-coordinator-0"
    await cluster.wait_observed("js", "coordinator", expected(active=1))
    await cluster.stays(cluster.jobs_path, lambda items: len(items) == 1)
    (pod,) = await cluster.wait_pods(lambda pods: pods or None, job="js-coordinator-0")
    await cluster.api.patch(
        f"{cluster.pods_path}/{pod['metadata']['name']}",
        {"metadata": {"annotations": {START_SECONDS: "0"}}},
    )
    await cluster.wait_job_count(3)
    await cluster.wait_observed("js", "trainer", expected(succeeded=2))
    await cluster.exit_now("js-coordinator-0", 0)
    await cluster.wait_terminal("js", "Completed")


def _pv(name: str, namespace: str, claim: str) -> JSON:
    return {
        "metadata": {"name": name},
        "spec": {
            "capacity": {"storage": "1Gi"},
            "accessModes": ["ReadWriteOnce"],
            "persistentVolumeReclaimPolicy": "Retain",
            "storageClassName": "",
            "hostPath": {"path": f"/tmp/{name}"},
            "claimRef": {"namespace": namespace, "name": claim},
        },
    }


async def test_c113_volume_claim_policies_used_by_init_and_main_containers(cluster: Cluster) -> None:
    def pvc(template: str) -> JSON:
        return {
            "metadata": {"name": template},
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "storageClassName": "",
                "resources": {"requests": {"storage": "1Gi"}},
            },
        }

    obj = JobSetBuilder("js", cluster.ns).rjob("rjob", 1).obj()
    obj["spec"]["volumeClaimPolicies"] = [
        {"templates": [pvc("model-cache")], "retentionPolicy": {"whenDeleted": "Delete"}},
        {"templates": [pvc("checkpoints")], "retentionPolicy": {"whenDeleted": "Retain"}},
    ]
    pod_spec = obj["spec"]["replicatedJobs"][0]["template"]["spec"]["template"]["spec"]
    pod_spec["initContainers"] = [
        {"name": "fetch", "image": "busybox", "volumeMounts": [{"name": "model-cache", "mountPath": "/cache"}]}
    ]
    pod_spec["containers"][0]["volumeMounts"] = [{"name": "checkpoints", "mountPath": "/ckpt"}]
    # Static volumes pre-bound to the claims the JobSet will create (the real control plane has no provisioner).
    pvs_path = resource_path("", "v1", "persistentvolumes")
    suffix = uuid.uuid4().hex[:8]
    pvs = [f"conformance-{suffix}-{i}" for i in range(2)]
    for pv_name, claim in zip(pvs, ("model-cache-js", "checkpoints-js"), strict=True):
        await cluster.api.create(pvs_path, _pv(pv_name, cluster.ns, claim))
    try:
        await cluster.create(simulated(obj, run_seconds="1"))
        await cluster.wait_terminal("js", "Completed")
        assert [p["metadata"]["name"] for p in await cluster.pvcs()] == ["checkpoints-js", "model-cache-js"]
        (job,) = await cluster.jobs("js")
        claims = {
            v["name"]: v["persistentVolumeClaim"]["claimName"] for v in job["spec"]["template"]["spec"]["volumes"]
        }
        assert claims == {"model-cache": "model-cache-js", "checkpoints": "checkpoints-js"}
        await cluster.api.delete(f"{cluster.jobsets_path}/js", propagation="Foreground")
        await cluster.wait_gone(cluster.jobsets_path, "js")
        await cluster.wait_gone(cluster.pvcs_path, "model-cache-js")
        assert [p["metadata"]["name"] for p in await cluster.pvcs()] == ["checkpoints-js"]
    finally:
        for pv_name in pvs:
            with contextlib.suppress(ApiError):
                await cluster.api.delete(f"{pvs_path}/{pv_name}")


async def test_c114_restart_from_a_failure_then_completed(cluster: Cluster) -> None:
    obj = JobSetBuilder("js", cluster.ns).rjob("rjob", 3, backoff_limit=0).obj()
    obj["spec"]["failurePolicy"] = {
        "maxRestarts": 3,
        "rules": [
            {"name": "restartOnBackoff", "action": "RestartJobSet", "onJobFailureReasons": ["BackoffLimitExceeded"]}
        ],
    }
    fail_when = f"{c.RESTART_ATTEMPT_KEY}=0,{c.JOB_INDEX_KEY}=1"
    await cluster.create(simulated(obj, run_seconds="1", fail_when=fail_when))
    js = await cluster.wait_terminal("js", "Completed")
    assert js["status"]["restarts"] == 1
    assert js["status"]["restartsCountTowardsMax"] == 1
    rjs = js["status"]["replicatedJobsStatus"][0]
    assert rjs.get("jobRestarts") is None
    assert counts(js, "rjob") == expected(succeeded=3)
    for job in await cluster.jobs("js"):
        assert job["metadata"]["labels"][c.RESTART_ATTEMPT_KEY] == "1"
    assert RUN_SECONDS in (await cluster.jobs("js"))[0]["spec"]["template"]["metadata"]["annotations"]


# ----------------------------------------------------------------------------- 117-119 workload-aware scheduling
# The user creates the Workload and PodGroup (the controller creates neither); the cluster's scheduler does the
# gang and topology work. kubesim serves no scheduling.k8s.io/v1beta1, so these run on the real plane only.


async def _nodes(cluster: Cluster) -> list[JSON]:
    """Ready, schedulable nodes, by name."""
    items = (await cluster.api.get(resource_path("", "v1", "nodes"))).get("items", [])
    ready = [
        n
        for n in items
        if not (n.get("spec") or {}).get("unschedulable")
        and any(x["type"] == "Ready" and x["status"] == "True" for x in (n.get("status") or {}).get("conditions", []))
    ]
    return sorted(ready, key=lambda n: n["metadata"]["name"])


def _cores(node: JSON) -> int:
    cpu = str(node["status"]["allocatable"]["cpu"])
    return int(cpu[:-1]) // 1000 if cpu.endswith("m") else int(cpu)


def _hostname_in(names: list[str]) -> JSON:
    term = {"matchExpressions": [{"key": "kubernetes.io/hostname", "operator": "In", "values": names}]}
    return {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [term]}}}


async def _create_was(cluster: Cluster, resource: str, obj: JSON, owner: JSON | None = None) -> JSON:
    obj = {**obj, "metadata": {**obj["metadata"], "namespace": cluster.ns}}
    if owner is not None:
        meta = owner["metadata"]
        ref = {"apiVersion": f"{c.GROUP}/{c.VERSION}", "kind": "JobSet", "name": meta["name"], "uid": meta["uid"]}
        obj["metadata"]["ownerReferences"] = [ref]
    created: JSON = await cluster.api.create(was_path(resource, cluster.ns), obj)
    return created


async def _wait_group(cluster: Cluster, name: str, status: str) -> JSON:
    """Wait until the scheduler has written ``PodGroupInitiallyScheduled`` = ``status`` on the PodGroup."""

    def check(items: list[JSON]) -> JSON | None:
        cond = pod_group_condition(items[0]) if items else None
        return items[0] if cond is not None and cond.get("status") == status else None

    group: JSON = await wait_for(
        cluster.api, was_path("podgroups", cluster.ns), check, params={"fieldSelector": f"metadata.name={name}"}
    )
    return group


def _bound(count: int) -> Any:
    def check(pods: list[JSON]) -> list[JSON] | None:
        return pods if len(pods) == count and all(p["spec"].get("nodeName") for p in pods) else None

    return check


async def test_c117_was_simple_jobset_completes(cluster: Cluster) -> None:
    """On a cluster with workload-aware scheduling on, a JobSet that names no pod group runs as before."""
    await require_workload_scheduling(cluster.api)
    obj = JobSetBuilder("js", cluster.ns).rjob("rjob", 2).obj()
    await cluster.create(simulated(obj, run_seconds="1"))
    js = await cluster.wait_terminal("js", "Completed")
    assert counts(js, "rjob") == expected(succeeded=2)
    assert all("schedulingGroup" not in p["spec"] for p in await cluster.pods())


async def test_c118_was_gang_podgroup(cluster: Cluster) -> None:
    """Gang: a JobSet's 4 pods in a PodGroup with minCount 4 are bound all together or not at all."""
    await require_workload_scheduling(cluster.api)
    # The gang holds: 4 pods, but room for at most 3 (at most one pod per node on 3 nodes) → none is bound,
    # where a scheduler without the gang would bind 3.
    nodes = (await _nodes(cluster))[:3]
    assert nodes, "no Ready schedulable node"
    half = min(_cores(n) for n in nodes) // 2 + 1
    short = gang_group("short-workers", 4, workload="short")
    await _create_was(cluster, "workloads", jobset_workload("short", "short", short))
    await _create_was(cluster, "podgroups", short)
    obj = JobSetBuilder("short", cluster.ns).rjob("workers", 4).obj()
    affinity = _hostname_in([n["metadata"]["name"] for n in nodes])
    await cluster.create(
        in_pod_group(simulated(obj, run_seconds="1"), "short-workers", cpu=str(half), affinity=affinity)
    )
    group = await _wait_group(cluster, "short-workers", "False")
    assert (pod_group_condition(group) or {}).get("reason") == "Unschedulable", group.get("status")
    # The scheduler tried the gang only once all 4 pods were queued; none of them got a node.
    pods = pods_of("short")(await cluster.pods()) or []
    assert len(pods) == 4
    assert not [p["metadata"]["name"] for p in pods if p["spec"].get("nodeName")]

    # The gang is satisfiable: Workload (controllerRef → the JobSet) + PodGroup, both owned by the JobSet and
    # created after it (its pods wait for the group to appear) → all 4 pods bound, the JobSet Completed.
    await cluster.create(
        in_pod_group(simulated(JobSetBuilder("js", cluster.ns).rjob("workers", 4).obj(), run_seconds="1"), "js-workers")
    )
    js = await cluster.jobset("js")
    workers = gang_group("js-workers", 4, workload="js")
    workload = await _create_was(cluster, "workloads", jobset_workload("js", "js", workers), owner=js)
    assert workload["spec"]["controllerRef"] == {"apiGroup": c.GROUP, "kind": "JobSet", "name": "js"}
    await _create_was(cluster, "podgroups", workers, owner=js)
    group = await _wait_group(cluster, "js-workers", "True")
    pods = await cluster.wait_pods(lambda ps: _bound(4)(pods_of("js")(ps) or []))
    assert {p["spec"]["schedulingGroup"]["podGroupName"] for p in pods} == {"js-workers"}
    js = await cluster.wait_terminal("js", "Completed")
    assert counts(js, "workers") == expected(succeeded=4)


async def test_c119_was_topology_aware(cluster: Cluster) -> None:
    """TAS: a PodGroup constrained to ``topology.kubernetes.io/rack`` puts all 4 pods on the nodes of one rack,
    although they need more than one node."""
    await require_workload_scheduling(cluster.api)
    nodes = await _nodes(cluster)
    racks: dict[str, list[str]] = {}
    for node in nodes:
        rack = node["metadata"].get("labels", {}).get(RACK_LABEL)
        if rack:
            racks.setdefault(rack, []).append(node["metadata"]["name"])
    assert len(racks) >= 2, f"needs two racks (node label {RACK_LABEL}); racks: {racks}"
    assert max(len(r) for r in racks.values()) >= 2, f"needs a rack of at least two nodes; racks: {racks}"
    # Two pods fit on a node, three do not: 4 pods need two nodes, which only a rack of two can give together.
    cpu = str(min(_cores(n) for n in nodes) * 2 // 5)
    obj = in_pod_group(
        simulated(JobSetBuilder("js", cluster.ns).rjob("workers", 4).obj(), run_seconds="1"), "js-workers", cpu=cpu
    )
    js = await cluster.create(obj)
    workers = gang_group("js-workers", 4, workload="js", topology_key=RACK_LABEL)
    await _create_was(cluster, "workloads", jobset_workload("js", "js", workers), owner=js)
    group = await _create_was(cluster, "podgroups", workers, owner=js)
    if not group["spec"].get("schedulingConstraints"):
        await require_topology_constraints()
    await _wait_group(cluster, "js-workers", "True")
    pods = await cluster.wait_pods(lambda ps: _bound(4)(pods_of("js")(ps) or []))
    by_node = {p["spec"]["nodeName"] for p in pods}
    placed = {rack for rack, names in racks.items() if by_node & set(names)}
    assert len(placed) == 1, f"pods on nodes {sorted(by_node)} of racks {sorted(placed)}"
    assert len(by_node) >= 2
    js = await cluster.wait_terminal("js", "Completed")
    assert counts(js, "workers") == expected(succeeded=4)
    # Owned by the JobSet, the Workload and PodGroup go with it.
    await cluster.api.delete(f"{cluster.jobsets_path}/js", propagation="Foreground")
    await cluster.wait_gone(was_path("podgroups", cluster.ns), "js-workers")
    await cluster.wait_gone(was_path("workloads", cluster.ns), "js")
