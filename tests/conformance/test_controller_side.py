"""Conformance 8.B, controller side only (scenarios 67, 68/69, 71, 74, 77, 82, 91), plus child labels and the
error path of behaviour.md §4.4/4.11 (JobCreationFailed with a retry, aggregated into an event series).

The webhook halves of 8.B (defaulting, validation, immutability answers) belong to the admission tier. What is
tested here holds with or without the webhooks installed: the controller's handling of objects as stored, e.g. a
JobSet without ``network`` or ``successPolicy`` (decision D3), or a template change made while suspended. Two tests
need an object the webhooks would refuse; they request ``without_jobset_webhooks`` (see the tier's conftest).
"""

from __future__ import annotations

from typing import Any

import pytest

from api import constants as c
from cache.client import resource_path
from tests.builders import JobSetBuilder
from tests.conformance.kit import (
    MANUAL_MANAGER,
    RJOB_A,
    RJOB_B,
    Cluster,
    base_jobset,
    condition,
    counts,
    expected,
    is_active,
    live,
    manual,
    rjob_status,
    simulated,
    wait_for,
)

JSON = dict[str, Any]


async def test_c67_non_indexed_completion_mode_is_kept(cluster: Cluster) -> None:
    obj = JobSetBuilder("js", cluster.ns).rjob("rjob", 1, parallelism=2, completions=2, completion_mode="NonIndexed")
    await cluster.create(simulated(obj.obj(), run_seconds="0.5"))
    (job,) = await cluster.wait_job_count(1)
    assert job["spec"]["completionMode"] == "NonIndexed"
    await cluster.wait_terminal("js", "Completed")


async def test_c68_c69_missing_network_means_dns_hostnames_and_not_ready_addresses(cluster: Cluster) -> None:
    obj = manual(base_jobset(cluster.ns).obj())
    del obj["spec"]["network"]
    await cluster.create(obj)
    jobs = await cluster.wait_job_count(4)
    (svc,) = await cluster.wait_services(1)
    assert svc["metadata"]["name"] == "test-js"
    assert svc["spec"]["clusterIP"] == "None"
    assert svc["spec"]["publishNotReadyAddresses"] is True
    assert all(j["spec"]["template"]["spec"]["subdomain"] == "test-js" for j in jobs)


async def test_dns_hostnames_off_means_no_service_and_no_subdomain(cluster: Cluster) -> None:
    obj = manual(base_jobset(cluster.ns).set("spec.network", {"enableDNSHostnames": False}).obj())
    await cluster.create(obj)
    jobs = await cluster.wait_job_count(4)
    assert all("subdomain" not in j["spec"]["template"]["spec"] for j in jobs)
    # The pass that created the Jobs would have created the Service first (behaviour.md §4.2 steps 9, 12).
    await cluster.stays(cluster.services_path, lambda items: not items)


async def test_c71_template_edits_while_suspended_reach_jobs_on_resume(cluster: Cluster) -> None:
    await cluster.create(manual(base_jobset(cluster.ns).set("spec.suspend", True).obj()))
    await cluster.wait_jobs(lambda jobs: len(jobs) == 4 and all(j["spec"]["suspend"] for j in jobs))
    toleration = {"key": "example.com/accelerator", "operator": "Exists", "effect": "NoSchedule"}

    def admit(js: JSON) -> None:
        for rj in js["spec"]["replicatedJobs"]:
            pod = rj["template"]["spec"]["template"]
            pod.setdefault("metadata", {}).setdefault("labels", {})["kueue.x-k8s.io/flavor"] = "on-demand"
            pod["metadata"].setdefault("annotations", {})["kueue.x-k8s.io/admitted"] = "true"
            pod["spec"]["nodeSelector"] = {"kubernetes.io/os": "linux"}
            pod["spec"]["tolerations"] = [toleration]

    await cluster.update_jobset("test-js", admit)
    await cluster.set_suspend("test-js", False)

    def resumed(jobs: list[JSON]) -> list[JSON] | None:
        alive = live(jobs)
        return alive if len(alive) == 4 and not any(j["spec"].get("suspend") for j in alive) else None

    for job in await cluster.wait_jobs(resumed):
        pod = job["spec"]["template"]
        assert pod["metadata"]["labels"]["kueue.x-k8s.io/flavor"] == "on-demand"
        assert pod["metadata"]["labels"][c.JOBSET_NAME_KEY] == "test-js"
        assert pod["metadata"]["annotations"]["kueue.x-k8s.io/admitted"] == "true"
        assert pod["spec"]["nodeSelector"] == {"kubernetes.io/os": "linux"}
        assert toleration in pod["spec"]["tolerations"]
    js = await cluster.wait_condition("test-js", c.COND_SUSPENDED, "False")
    cond = condition(js, c.COND_SUSPENDED)
    assert cond is not None
    assert cond["reason"] == "ResumeJobs"


async def test_c74_missing_success_policy_means_all(cluster: Cluster) -> None:
    obj = manual(base_jobset(cluster.ns).obj())
    del obj["spec"]["successPolicy"]
    await cluster.create(obj)
    jobs = await cluster.wait_job_count(4)
    await cluster.complete(*jobs[:3])
    js = await cluster.wait_jobset("test-js", lambda js: js if counts(js, RJOB_B)["succeeded"] == 2 else None)
    assert is_active(js)
    await cluster.complete(jobs[3])
    await cluster.wait_terminal("test-js", "Completed")


async def test_c77_zero_replicas_rjob_gets_no_jobs(cluster: Cluster) -> None:
    obj = manual(base_jobset(cluster.ns, b_replicas=0).obj())
    await cluster.create(obj)
    jobs = await cluster.wait_job_count(1)
    assert jobs[0]["metadata"]["name"] == "test-js-replicated-job-a-0"
    assert jobs[0]["metadata"]["labels"][c.GLOBAL_REPLICAS_KEY] == "1"
    await cluster.complete(jobs[0])
    js = await cluster.wait_terminal("test-js", "Completed")
    assert counts(js, RJOB_B) == expected()
    assert len(await cluster.jobs("test-js")) == 1


async def test_c82_empty_failure_policy_recreate_and_no_restarts(cluster: Cluster) -> None:
    obj = manual(base_jobset(cluster.ns).set("spec.failurePolicy", {}).obj())
    created = await cluster.create(obj)
    assert created["spec"]["failurePolicy"].get("restartStrategy") == "Recreate"
    await cluster.wait_job_count(4)
    await cluster.fail("test-js-replicated-job-b-0")
    js = await cluster.wait_terminal("test-js", "Failed")
    cond = condition(js, c.COND_FAILED)
    assert cond is not None
    # A present (empty) failure policy means "restart, at most 0 times", not "no policy" (FailedJobs).
    assert cond["reason"] == "ReachedMaxRestarts"


async def test_c91_no_replicated_jobs_is_accepted_and_never_completes(cluster: Cluster) -> None:
    obj = JobSetBuilder("js", cluster.ns).obj()
    created = await cluster.create(obj)
    assert created["spec"]["replicatedJobs"] == []
    await cluster.wait_services(1)
    await cluster.jobset_stays("js", lambda js: not (js.get("status") or {}).get("terminalState"))
    assert await cluster.jobs("js") == []


async def test_child_labels_groups_and_indexes(cluster: Cluster) -> None:
    obj = (
        JobSetBuilder("js", cluster.ns)
        .rjob("leader", 1, group="g1")
        .rjob("workers", 2, group="g2")
        .rjob("extra", 2, group="g1")
        .obj()
    )
    created = await cluster.create(manual(obj))
    jobs = {j["metadata"]["name"]: j for j in await cluster.wait_job_count(5)}
    want = {
        # name: (job-index, global-index, group-name, group-replicas, job-group-index, rjob replicas)
        "js-leader-0": ("0", "0", "g1", "3", "0", "1"),
        "js-workers-0": ("0", "1", "g2", "2", "0", "2"),
        "js-workers-1": ("1", "2", "g2", "2", "1", "2"),
        "js-extra-0": ("0", "3", "g1", "3", "1", "2"),
        "js-extra-1": ("1", "4", "g1", "3", "2", "2"),
    }
    for name, (index, global_index, group, group_replicas, group_index, replicas) in want.items():
        job = jobs[name]
        for meta in (job["metadata"], job["spec"]["template"]["metadata"]):
            for kind in ("labels", "annotations"):
                got = meta[kind]
                assert got[c.JOB_INDEX_KEY] == index
                assert got[c.JOB_GLOBAL_INDEX_KEY] == global_index
                assert got[c.GROUP_NAME_KEY] == group
                assert got[c.GROUP_REPLICAS_KEY] == group_replicas
                assert got[c.JOB_GROUP_INDEX_KEY] == group_index
                assert got[c.REPLICATED_JOB_REPLICAS_KEY] == replicas
                assert got[c.GLOBAL_REPLICAS_KEY] == "5"
                assert got[c.JOBSET_UID_KEY] == created["metadata"]["uid"]
                assert got[c.RESTART_ATTEMPT_KEY] == "0"
                assert len(got[c.JOB_KEY]) == 40


async def test_name_collision_warns_retries_and_recovers(cluster: Cluster) -> None:
    # A Job the JobSet does not own already holds the name of one of its children (behaviour.md §4.4 / 4.11).
    foreign = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "test-js-replicated-job-a-0"},
        "spec": {
            "managedBy": MANUAL_MANAGER,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "schedulingGates": [{"name": "conformance.pyjobset.io/never"}],
                    "containers": [{"name": "main", "image": "busybox"}],
                }
            },
        },
    }
    jobs_path = resource_path("batch", "v1", "jobs", cluster.ns)
    squatter = await cluster.api.create(jobs_path, foreign)
    await cluster.create(manual(base_jobset(cluster.ns).obj()))
    ev = await cluster.wait_event("test-js", "JobCreationFailed")
    assert ev["type"] == "Warning"
    assert ev["note"].startswith('job "test-js-replicated-job-a-0" creation failed with error:')
    # Repeated identical failures are one Event with a series (behaviour.md §4.9).
    await wait_for(
        cluster.api,
        cluster.events_path,
        lambda items: any(
            e.get("reason") == "JobCreationFailed" and (e.get("series") or {}).get("count", 0) >= 2 for e in items
        ),
    )
    created = [e for e in await cluster.events("test-js") if e.get("reason") == "JobCreationFailed"]
    assert len(created) == 1
    # The other children were created meanwhile; once the name is free, the retry creates the last one.
    await cluster.wait_job_count(3, jobset="test-js")
    await cluster.api.delete(f"{jobs_path}/{squatter['metadata']['name']}", propagation="Background")

    def owned(jobs: list[JSON]) -> list[JSON] | None:
        mine = [j for j in live(jobs) if (j["metadata"].get("labels") or {}).get(c.JOBSET_NAME_KEY) == "test-js"]
        return mine if len(mine) == 4 else None

    jobs = await cluster.wait_jobs(owned)
    assert jobs[0]["metadata"]["name"] == "test-js-replicated-job-a-0"
    assert jobs[0]["metadata"]["ownerReferences"][0]["kind"] == "JobSet"
    js = await cluster.wait_jobset("test-js", lambda js: js if rjob_status(js, RJOB_A) else None)
    assert js["status"]["restarts"] == 0
    assert is_active(js)


async def test_existing_same_named_service_is_used_as_is(cluster: Cluster) -> None:
    # Spec 3: a Service already named after the subdomain is never updated or replaced.
    mine = {
        "metadata": {"name": "test-js", "labels": {"owner": "someone-else"}},
        "spec": {"selector": {"app": "other"}, "ports": [{"port": 80}]},
    }
    before = await cluster.api.create(cluster.services_path, mine)
    await cluster.create(manual(base_jobset(cluster.ns).obj()))
    await cluster.wait_job_count(4)
    await cluster.stays(
        cluster.services_path, lambda items: [s["metadata"]["uid"] for s in items] == [before["metadata"]["uid"]]
    )
    after = await cluster.api.get(f"{cluster.services_path}/test-js")
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
    assert not after["metadata"].get("ownerReferences")


async def test_template_labels_merged_under_controller_keys(cluster: Cluster) -> None:
    # Spec 2.1: template labels/annotations are kept; the controller's keys win on a clash.
    obj = base_jobset(cluster.ns).obj()
    for rj in obj["spec"]["replicatedJobs"]:
        rj["template"]["metadata"] = {"labels": {"team": "ml", c.JOB_INDEX_KEY: "99"}, "annotations": {"note": "job"}}
        pod_meta = rj["template"]["spec"]["template"]["metadata"]
        pod_meta["labels"] = {"app": "trainer", c.JOBSET_NAME_KEY: "spoofed"}
        pod_meta["annotations"]["note"] = "pod"
    await cluster.create(manual(obj))
    for job in await cluster.wait_job_count(4):
        meta, pod = job["metadata"], job["spec"]["template"]["metadata"]
        assert meta["labels"]["team"] == "ml"
        assert meta["annotations"]["note"] == "job"
        assert meta["labels"][c.JOB_INDEX_KEY] == meta["annotations"][c.JOB_INDEX_KEY] != "99"
        assert pod["labels"]["app"] == "trainer"
        assert pod["annotations"]["note"] == "pod"
        assert pod["labels"][c.JOBSET_NAME_KEY] == "test-js"


async def test_exclusive_placement_node_selector_strategy(cluster: Cluster) -> None:
    # Spec 2.1 / 2.2 / 3: exclusive-topology (and the node-selector strategy flag) from the JobSet's annotations
    # reach every Job and pod template; the strategy adds a per-Job nodeSelector and a NoSchedule toleration.
    obj = base_jobset(cluster.ns).annotate(c.EXCLUSIVE_TOPOLOGY_KEY, "cloud.google.com/gke-nodepool")
    obj.annotate(c.NODE_SELECTOR_STRATEGY_KEY, "true")
    await cluster.create(manual(obj.obj()))
    for job in await cluster.wait_job_count(4):
        name = job["metadata"]["name"]
        pod = job["spec"]["template"]
        for anns in (job["metadata"]["annotations"], pod["metadata"]["annotations"]):
            assert anns[c.EXCLUSIVE_TOPOLOGY_KEY] == "cloud.google.com/gke-nodepool"
            assert c.NODE_SELECTOR_STRATEGY_KEY in anns
        assert pod["spec"]["nodeSelector"][c.NAMESPACED_JOB_KEY] == f"{cluster.ns}_{name}"
        assert {"key": c.NO_SCHEDULE_TAINT_KEY, "operator": "Exists", "effect": "NoSchedule"} in pod["spec"][
            "tolerations"
        ]


@pytest.mark.usefixtures("without_jobset_webhooks")  # with them, the template of a running JobSet is immutable
async def test_invalid_job_template_warns_and_retries_until_fixed(cluster: Cluster) -> None:
    # Spec 4.4: a Job the API server refuses gives a JobCreationFailed Warning and a retry with backoff; once the
    # template is fixed, the Jobs appear.
    obj = manual(base_jobset(cluster.ns, b_replicas=1).obj())
    obj["spec"]["replicatedJobs"][1]["template"]["spec"]["template"]["spec"]["restartPolicy"] = "Always"
    await cluster.create(obj)
    ev = await cluster.wait_event("test-js", "JobCreationFailed")
    assert ev["type"] == "Warning"
    assert 'job "test-js-replicated-job-b-0" creation failed with error:' in ev["note"]

    def fix(js: JSON) -> None:
        js["spec"]["replicatedJobs"][1]["template"]["spec"]["template"]["spec"]["restartPolicy"] = "Never"

    await cluster.update_jobset("test-js", fix)
    jobs = await cluster.wait_job_count(2, jobset="test-js")
    assert jobs[1]["spec"]["template"]["spec"]["restartPolicy"] == "Never"


@pytest.mark.usefixtures("without_jobset_webhooks")  # with them, the JobSet is refused and never reaches us
async def test_bad_subdomain_warns_headless_service_creation_failed(cluster: Cluster) -> None:
    # Spec 4.2 step 9: a Service the API server refuses gives HeadlessServiceCreationFailed and no Jobs that pass.
    obj = manual(base_jobset(cluster.ns).set("spec.network.subdomain", "Not_A_DNS_Label").obj())
    await cluster.create(obj)
    ev = await cluster.wait_event("test-js", "HeadlessServiceCreationFailed")
    assert ev["type"] == "Warning"
    assert "Not_A_DNS_Label" in ev["note"]
    await cluster.stays(cluster.jobs_path, lambda items: not items)
