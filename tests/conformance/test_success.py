"""Conformance 8.A: Job creation, success policy and replicatedJobsStatus (scenarios 2, 3, 5-9, 11, 42, 43).

Manual-style tests pin the Jobs' conditions through the ``status`` subresource; pod-driven tests let the
cluster's Job controller, scheduler and kubelet (or KWOK) run pods that stay Running until told to exit.
"""

from __future__ import annotations

from api import constants as c
from tests.conformance.kit import (
    RJOB_A,
    RJOB_B,
    Cluster,
    base_jobset,
    condition,
    counts,
    expected,
    is_active,
    job_names,
    manual,
    recomputed_counts,
    simulated,
)

NAMES = [
    "test-js-replicated-job-a-0",
    "test-js-replicated-job-b-0",
    "test-js-replicated-job-b-1",
    "test-js-replicated-job-b-2",
]


async def test_c02_creates_exactly_four_jobs(cluster: Cluster) -> None:
    await cluster.create(manual(base_jobset(cluster.ns).obj()))
    jobs = await cluster.wait_job_count(4)
    assert job_names(jobs) == NAMES
    await cluster.stays(cluster.jobs_path, lambda items: len(items) == 4)


async def test_c03_all_jobs_complete_then_completed(cluster: Cluster) -> None:
    await cluster.create(manual(base_jobset(cluster.ns).obj()))
    jobs = await cluster.wait_job_count(4)
    await cluster.complete(*jobs)
    js = await cluster.wait_terminal("test-js", "Completed")
    cond = condition(js, c.COND_COMPLETED)
    assert cond is not None
    assert (cond["status"], cond["reason"]) == ("True", "AllJobsCompleted")
    assert cond["message"] == "jobset completed successfully"
    assert counts(js, RJOB_B) == expected(succeeded=3)
    assert counts(js, RJOB_A) == expected(succeeded=1)
    assert js["status"]["restarts"] == 0
    ev = await cluster.wait_event("test-js", "AllJobsCompleted")
    assert ev["type"] == "Normal"
    assert ev["note"] == "jobset completed successfully"


async def test_c05_three_of_four_complete_last_ready_stays_active(cluster: Cluster) -> None:
    # Pods run until told; the Job controller reports them ready.
    await cluster.create(simulated(base_jobset(cluster.ns).obj()))
    await cluster.wait_job_count(4)
    for name in NAMES[:3]:
        await cluster.exit_now(name, 0)
    want_a, want_b = expected(succeeded=1), expected(succeeded=2, ready=1, active=1)

    def observed(js: dict) -> bool:  # type: ignore[type-arg]
        return counts(js, RJOB_A) == want_a and counts(js, RJOB_B) == want_b

    js = await cluster.wait_jobset("test-js", lambda js: js if observed(js) else None)
    assert is_active(js)
    await cluster.jobset_stays("test-js", lambda js: is_active(js) and observed(js))


async def test_c06_success_all_without_targets_needs_every_rjob(cluster: Cluster) -> None:
    await cluster.create(manual(base_jobset(cluster.ns).obj()))
    jobs = await cluster.wait_job_count(4)
    await cluster.complete(jobs[0])
    js = await cluster.wait_jobset("test-js", lambda js: js if counts(js, RJOB_A)["succeeded"] == 1 else None)
    assert is_active(js)
    await cluster.jobset_stays("test-js", is_active)
    await cluster.complete(*jobs[1:])
    await cluster.wait_terminal("test-js", "Completed")


async def test_c07_success_all_targeting_b(cluster: Cluster) -> None:
    obj = base_jobset(cluster.ns).set("spec.successPolicy", {"operator": "All", "targetReplicatedJobs": [RJOB_B]})
    await cluster.create(manual(obj.obj()))
    jobs = await cluster.wait_job_count(4)
    await cluster.complete(jobs[0])
    js = await cluster.wait_jobset("test-js", lambda js: js if counts(js, RJOB_A)["succeeded"] == 1 else None)
    assert is_active(js)
    await cluster.complete(jobs[1])
    js = await cluster.wait_jobset("test-js", lambda js: js if counts(js, RJOB_B)["succeeded"] == 1 else None)
    assert is_active(js)
    await cluster.jobset_stays("test-js", is_active)
    await cluster.complete(*jobs[2:])
    js = await cluster.wait_terminal("test-js", "Completed")
    assert counts(js, RJOB_B)["succeeded"] == 3


async def test_c08_success_any_targeting_b(cluster: Cluster) -> None:
    obj = base_jobset(cluster.ns).set("spec.successPolicy", {"operator": "Any", "targetReplicatedJobs": [RJOB_B]})
    await cluster.create(manual(obj.obj()))
    jobs = await cluster.wait_job_count(4)
    await cluster.complete(jobs[2])
    js = await cluster.wait_terminal("test-js", "Completed")
    assert is_true_completed(js)


async def test_c08b_success_any_targeting_b_ignores_a(cluster: Cluster) -> None:
    obj = base_jobset(cluster.ns).set("spec.successPolicy", {"operator": "Any", "targetReplicatedJobs": [RJOB_B]})
    await cluster.create(manual(obj.obj()))
    jobs = await cluster.wait_job_count(4)
    await cluster.complete(jobs[0])
    js = await cluster.wait_jobset("test-js", lambda js: js if counts(js, RJOB_A)["succeeded"] == 1 else None)
    assert is_active(js)
    await cluster.jobset_stays("test-js", is_active)


async def test_c09_success_any_without_targets(cluster: Cluster) -> None:
    obj = base_jobset(cluster.ns).set("spec.successPolicy", {"operator": "Any"})
    await cluster.create(manual(obj.obj()))
    jobs = await cluster.wait_job_count(4)
    await cluster.complete(jobs[0])
    await cluster.wait_terminal("test-js", "Completed")


async def test_c11_dns_hostnames_one_service_then_completed(cluster: Cluster) -> None:
    await cluster.create(manual(base_jobset(cluster.ns).obj()))
    jobs = await cluster.wait_job_count(4)
    services = await cluster.wait_services(1)
    assert [s["metadata"]["name"] for s in services] == ["test-js"]
    svc = services[0]
    assert svc["spec"]["clusterIP"] == "None"
    assert svc["spec"]["selector"] == {c.JOBSET_NAME_KEY: "test-js"}
    assert svc["spec"].get("publishNotReadyAddresses") is True
    for job in jobs:
        assert job["spec"]["template"]["spec"]["subdomain"] == "test-js"
    await cluster.complete(*jobs)
    await cluster.wait_terminal("test-js", "Completed")
    assert len(await cluster.services()) == 1


async def test_c42_status_matches_recomputation_after_success(cluster: Cluster) -> None:
    await cluster.create(manual(base_jobset(cluster.ns).obj()))
    jobs = await cluster.wait_job_count(4)
    await cluster.complete(*jobs)
    js = await cluster.wait_terminal("test-js", "Completed")
    jobs = await cluster.jobs("test-js")
    for name in (RJOB_A, RJOB_B):
        assert counts(js, name) == recomputed_counts(jobs, name, 0)


async def test_c43_status_matches_recomputation_when_all_ready(cluster: Cluster) -> None:
    await cluster.create(simulated(base_jobset(cluster.ns).obj()))
    js = await cluster.wait_counts(
        "test-js", {RJOB_A: expected(ready=1, active=1), RJOB_B: expected(ready=3, active=3)}
    )
    jobs = await cluster.jobs("test-js")
    for job in jobs:
        assert job["status"]["ready"] == job["status"]["active"] == job["spec"]["parallelism"]
    for name in (RJOB_A, RJOB_B):
        assert counts(js, name) == recomputed_counts(jobs, name, 0)


def is_true_completed(js: dict) -> bool:  # type: ignore[type-arg]
    cond = condition(js, c.COND_COMPLETED)
    return cond is not None and cond["status"] == "True"


async def test_c43_pinned_status_matches_recomputation_when_marked_ready(cluster: Cluster) -> None:
    # The reference's own style: the test writes active = ready = parallelism on every Job.
    obj = base_jobset(cluster.ns).obj()
    obj["spec"]["replicatedJobs"][1]["template"]["spec"].update(parallelism=2, completions=2)
    await cluster.create(manual(obj))
    jobs = await cluster.wait_job_count(4)
    await cluster.mark_ready(*jobs)
    js = await cluster.wait_counts(
        "test-js", {RJOB_A: expected(ready=1, active=1), RJOB_B: expected(ready=3, active=3)}
    )
    jobs = await cluster.jobs("test-js")
    assert [j["status"]["ready"] for j in jobs] == [1, 2, 2, 2]
    for name in (RJOB_A, RJOB_B):
        assert counts(js, name) == recomputed_counts(jobs, name, 0)


async def test_c05_pinned_three_of_four_complete_last_ready(cluster: Cluster) -> None:
    await cluster.create(manual(base_jobset(cluster.ns).obj()))
    jobs = await cluster.wait_job_count(4)
    await cluster.complete(*jobs[:3])
    await cluster.mark_ready(jobs[3])
    want = {RJOB_A: expected(succeeded=1), RJOB_B: expected(succeeded=2, ready=1, active=1)}
    js = await cluster.wait_counts("test-js", want)
    assert is_active(js)
    await cluster.jobset_stays("test-js", lambda js: is_active(js) and all(counts(js, k) == v for k, v in want.items()))
