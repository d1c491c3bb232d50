"""Conformance 8.A: suspend/resume, startup order, dependsOn, coordinator, headless Service
(scenarios 1, 36, 38, 39, 46-49, 53, 54, plus InOrder startup of behaviour.md §4.4).

Readiness comes from real pods (annotation contract: pods without ``run-seconds`` stay Running and Ready), so the
whole chain Job controller → Job status → JobSet controller is exercised; suspension checks use manual Jobs.
"""

from __future__ import annotations

from typing import Any

from api import constants as c
from tests.conformance.kit import (
    RJOB_A,
    RJOB_B,
    START_SECONDS,
    Cluster,
    base_jobset,
    condition,
    counts,
    expected,
    is_true,
    job_names,
    live,
    manual,
    simulated,
    wait_for,
)

JSON = dict[str, Any]


def assert_condition(js: JSON, ctype: str, status: str, reason: str, message: str) -> None:
    cond = condition(js, ctype)
    assert cond is not None, f"no {ctype} condition: {js.get('status')}"
    assert (cond["status"], cond["reason"], cond["message"]) == (status, reason, message)


async def suspended_jobs(cluster: Cluster, n: int, value: bool) -> list[JSON]:
    """Wait until ``n`` live Jobs exist, every one with ``spec.suspend == value``."""

    def check(jobs: list[JSON]) -> list[JSON] | None:
        alive = live(jobs)
        ok = len(alive) == n and all(bool(j["spec"].get("suspend")) is value for j in alive)
        return alive if ok else None

    result: list[JSON] = await cluster.wait_jobs(check)
    return result


async def test_c01_suspending_a_running_jobset_is_accepted(cluster: Cluster) -> None:
    await cluster.create(manual(base_jobset(cluster.ns).obj()))
    await cluster.wait_job_count(4)
    await cluster.update_jobset("test-js", lambda js: js["spec"].__setitem__("suspend", True))
    # Accepted, and acted on: every Job is suspended and the JobSet says so.
    await suspended_jobs(cluster, 4, True)
    js = await cluster.wait_condition("test-js", c.COND_SUSPENDED)
    assert_condition(js, c.COND_SUSPENDED, "True", "SuspendedJobs", "jobset is suspended")


async def test_c36_created_suspended(cluster: Cluster) -> None:
    await cluster.create(manual(base_jobset(cluster.ns).set("spec.suspend", True).obj()))
    jobs = await suspended_jobs(cluster, 4, True)
    assert sorted(job_names(jobs)) == [
        "test-js-replicated-job-a-0",
        *(f"test-js-replicated-job-b-{i}" for i in range(3)),
    ]
    js = await cluster.wait_counts("test-js", {RJOB_A: expected(suspended=1), RJOB_B: expected(suspended=3)})
    js = await cluster.wait_condition("test-js", c.COND_SUSPENDED)
    assert_condition(js, c.COND_SUSPENDED, "True", "SuspendedJobs", "jobset is suspended")
    # The headless Service exists even while suspended (kept for compatibility, behaviour.md §4.2).
    assert [s["metadata"]["name"] for s in await cluster.wait_services(1)] == ["test-js"]


async def test_c38_suspending_running_jobset_suspends_jobs_and_stops_pods(cluster: Cluster) -> None:
    await cluster.create(simulated(base_jobset(cluster.ns, b_replicas=1).obj()))
    await cluster.wait_observed("test-js", RJOB_B, expected(ready=1, active=1))
    await cluster.set_suspend("test-js", True)
    await suspended_jobs(cluster, 2, True)
    js = await cluster.wait_condition("test-js", c.COND_SUSPENDED)
    assert_condition(js, c.COND_SUSPENDED, "True", "SuspendedJobs", "jobset is suspended")
    # The cluster's Job controller removes the pods of suspended Jobs; the JobSet then counts them suspended.
    await cluster.wait_pods(lambda pods: not pods)
    js = await cluster.wait_counts("test-js", {RJOB_A: expected(suspended=1), RJOB_B: expected(suspended=1)})
    ev = await cluster.wait_event("test-js", "SuspendedJobs")
    assert ev["type"] == "Normal"


async def test_c39_deleted_headless_service_is_recreated(cluster: Cluster) -> None:
    await cluster.create(manual(base_jobset(cluster.ns).obj()))
    (svc,) = await cluster.wait_services(1)
    await cluster.api.delete(f"{cluster.services_path}/test-js")

    def recreated(items: list[JSON]) -> JSON | None:
        for s in items:
            if s["metadata"]["uid"] != svc["metadata"]["uid"] and not s["metadata"].get("deletionTimestamp"):
                return s
        return None

    new = await wait_for(cluster.api, cluster.services_path, recreated)
    assert new["metadata"]["name"] == "test-js"
    assert new["spec"]["clusterIP"] == "None"
    owner = new["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner["controller"]) == ("JobSet", "test-js", True)


async def test_c46_generate_name_service_named_after_generated_name(cluster: Cluster) -> None:
    obj = manual(base_jobset(cluster.ns).obj())
    del obj["metadata"]["name"]
    obj["metadata"]["generateName"] = "test-js-"
    created = await cluster.create(obj)
    name = created["metadata"]["name"]
    assert name.startswith("test-js-")
    assert len(name) > len("test-js-")
    services = await cluster.wait_services(1)
    assert services[0]["metadata"]["name"] == name
    jobs = await cluster.wait_job_count(4)
    assert job_names(jobs)[0] == f"{name}-replicated-job-a-0"
    assert jobs[0]["spec"]["template"]["spec"]["subdomain"] == name


async def test_c47_in_order_suspended_creates_all_jobs_suspended(cluster: Cluster) -> None:
    obj = base_jobset(cluster.ns).set("spec.suspend", True).set("spec.startupPolicy", {"startupPolicyOrder": "InOrder"})
    await cluster.create(manual(obj.obj()))
    await suspended_jobs(cluster, 4, True)
    await cluster.wait_counts("test-js", {RJOB_A: expected(suspended=1), RJOB_B: expected(suspended=3)})


async def test_c48_any_order_suspended_creates_all_jobs_suspended(cluster: Cluster) -> None:
    obj = base_jobset(cluster.ns).set("spec.suspend", True)
    obj.set("spec.startupPolicy", {"startupPolicyOrder": "AnyOrder"})
    await cluster.create(manual(obj.obj()))
    await suspended_jobs(cluster, 4, True)
    await cluster.wait_counts("test-js", {RJOB_A: expected(suspended=1), RJOB_B: expected(suspended=3)})


async def test_c49_any_order_resume_unsuspends_every_job(cluster: Cluster) -> None:
    obj = base_jobset(cluster.ns).set("spec.suspend", True)
    obj.set("spec.startupPolicy", {"startupPolicyOrder": "AnyOrder"})
    await cluster.create(manual(obj.obj()))
    await cluster.wait_observed("test-js", RJOB_B, expected(suspended=3))
    await cluster.set_suspend("test-js", False)
    await suspended_jobs(cluster, 4, False)
    js = await cluster.wait_condition("test-js", c.COND_SUSPENDED, "False")
    assert_condition(js, c.COND_SUSPENDED, "False", "ResumeJobs", "jobset is resumed")
    # The pass that resumes the Jobs computed its counts before resuming them; the next one sees them resumed.
    js = await cluster.wait_jobset(
        "test-js", lambda js: js if counts(js, RJOB_A)["suspended"] == counts(js, RJOB_B)["suspended"] == 0 else None
    )
    assert is_true(js, c.COND_SUSPENDED) is False
    ev = await cluster.wait_event("test-js", "ResumeJobs")
    assert ev["note"] == "jobset is resumed"


async def test_c53_coordinator_label_and_annotation_everywhere(cluster: Cluster) -> None:
    obj = base_jobset(cluster.ns).set("spec.coordinator", {"replicatedJob": RJOB_A, "jobIndex": 0, "podIndex": 0})
    await cluster.create(simulated(obj.obj()))
    jobs = await cluster.wait_job_count(4)
    want = "test-js-replicated-job-a-0-0.test-js"
    for job in jobs:
        assert job["metadata"]["labels"][c.COORDINATOR_KEY] == want
        assert job["metadata"]["annotations"][c.COORDINATOR_KEY] == want
        pod_meta = job["spec"]["template"]["metadata"]
        assert pod_meta["labels"][c.COORDINATOR_KEY] == want
        assert pod_meta["annotations"][c.COORDINATOR_KEY] == want
    pods = await cluster.wait_pods(lambda pods: pods if len(pods) == 4 else None)
    for pod in pods:
        assert pod["metadata"]["labels"][c.COORDINATOR_KEY] == want
        assert pod["metadata"]["annotations"][c.COORDINATOR_KEY] == want
    # The coordinator endpoint resolves: its pod has that hostname under the JobSet's subdomain.
    leader = next(
        p for p in pods if p["metadata"]["labels"][c.JOB_INDEX_KEY] == "0" and "job-a" in p["metadata"]["name"]
    )
    assert f"{leader['spec']['hostname']}.{leader['spec']['subdomain']}" == want


async def test_c54_depends_on_ready(cluster: Cluster) -> None:
    obj = base_jobset(cluster.ns).obj()
    obj["spec"]["replicatedJobs"][1]["dependsOn"] = [{"name": RJOB_A, "status": "Ready"}]
    # a's pod becomes ready only once released by the test; b's pods are ready as soon as they run.
    await cluster.create(simulated(obj, [RJOB_A], start_seconds="3600"))
    jobs = await cluster.wait_job_count(1)
    assert job_names(jobs) == ["test-js-replicated-job-a-0"]
    # The controller has observed a's Job (active, not ready) and must not create b's Jobs yet.
    js = await cluster.wait_observed("test-js", RJOB_A, expected(active=1))
    assert counts(js, RJOB_B) == expected()
    await cluster.stays(cluster.jobs_path, lambda items: len(items) == 1)
    # Release a's pod: start-seconds shortened on the live pod (annotation contract), so it turns ready.
    (pod,) = await cluster.wait_pods(lambda pods: pods or None, job="test-js-replicated-job-a-0")
    await cluster.api.patch(
        f"{cluster.pods_path}/{pod['metadata']['name']}",
        {"metadata": {"annotations": {START_SECONDS: "0"}}},
    )
    await cluster.wait_job_count(4)
    js = await cluster.wait_counts(
        "test-js", {RJOB_A: expected(ready=1, active=1), RJOB_B: expected(ready=3, active=3)}
    )


async def test_in_order_startup_waits_for_each_rjob(cluster: Cluster) -> None:
    # Spec 4.4: InOrder creates the next replicated job only after the previous one is fully ready.
    obj = base_jobset(cluster.ns).set("spec.startupPolicy", {"startupPolicyOrder": "InOrder"}).obj()
    await cluster.create(simulated(obj, [RJOB_A], start_seconds="3600"))
    jobs = await cluster.wait_job_count(1)
    assert job_names(jobs) == ["test-js-replicated-job-a-0"]
    js = await cluster.wait_condition("test-js", c.COND_STARTUP_IN_PROGRESS)
    assert_condition(
        js,
        c.COND_STARTUP_IN_PROGRESS,
        "True",
        "InOrderStartupPolicyInProgress",
        "in order startup policy is in progress",
    )
    await cluster.stays(cluster.jobs_path, lambda items: len(items) == 1)
    (pod,) = await cluster.wait_pods(lambda pods: pods or None, job="test-js-replicated-job-a-0")
    await cluster.api.patch(
        f"{cluster.pods_path}/{pod['metadata']['name']}",
        {"metadata": {"annotations": {START_SECONDS: "0"}}},
    )
    await cluster.wait_job_count(4)
    js = await cluster.wait_condition("test-js", c.COND_STARTUP_COMPLETED)
    assert_condition(
        js, c.COND_STARTUP_COMPLETED, "True", "InOrderStartupPolicyCompleted", "in order startup policy has completed"
    )
    cond = condition(js, c.COND_STARTUP_IN_PROGRESS)
    assert cond is not None
    assert cond["status"] == "False"
    assert not is_true(js, c.COND_SUSPENDED)


async def test_in_order_resume_resumes_one_rjob_at_a_time(cluster: Cluster) -> None:
    # Spec 4.7: resuming an InOrder JobSet resumes b's Jobs only once a is ready, and Suspended=False (ResumeJobs)
    # appears only after every replicated job has started.
    obj = base_jobset(cluster.ns).set("spec.suspend", True).set("spec.startupPolicy", {"startupPolicyOrder": "InOrder"})
    await cluster.create(simulated(obj.obj(), [RJOB_A], start_seconds="3600"))
    await suspended_jobs(cluster, 4, True)
    await cluster.wait_condition("test-js", c.COND_SUSPENDED)
    await cluster.set_suspend("test-js", False)

    def only_a_resumed(jobs: list[JSON]) -> bool:
        return {j["metadata"]["name"]: bool(j["spec"].get("suspend")) for j in live(jobs)} == {
            "test-js-replicated-job-a-0": False,
            "test-js-replicated-job-b-0": True,
            "test-js-replicated-job-b-1": True,
            "test-js-replicated-job-b-2": True,
        }

    await cluster.wait_jobs(lambda jobs: only_a_resumed(jobs) or None)
    js = await cluster.wait_counts("test-js", {RJOB_A: expected(active=1), RJOB_B: expected(suspended=3)})
    assert is_true(js, c.COND_STARTUP_IN_PROGRESS)
    assert is_true(js, c.COND_SUSPENDED)
    await cluster.stays(cluster.jobs_path, only_a_resumed)
    (pod,) = await cluster.wait_pods(lambda pods: pods or None, job="test-js-replicated-job-a-0")
    await cluster.api.patch(
        f"{cluster.pods_path}/{pod['metadata']['name']}",
        {"metadata": {"annotations": {START_SECONDS: "0"}}},
    )
    await suspended_jobs(cluster, 4, False)
    js = await cluster.wait_condition("test-js", c.COND_SUSPENDED, "False")
    assert_condition(js, c.COND_SUSPENDED, "False", "ResumeJobs", "jobset is resumed")
    js = await cluster.wait_condition("test-js", c.COND_STARTUP_COMPLETED)
    assert not is_true(js, c.COND_STARTUP_IN_PROGRESS)
