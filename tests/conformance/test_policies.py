"""Conformance 8.A: managedBy (59-61), elastic JobSets (64, 65), volumeClaimPolicies (40), plus TTL after
finished (behaviour.md §4.8).

"Nothing happens" checks (managedBy, elastic with the gate off) first wait for proof that the controller has
processed later events — a sentinel JobSet created afterwards gets its Jobs, or the controller's own status
reflects the change — and then watch a short bounded window (``Cluster.stays``).
"""

from __future__ import annotations

from typing import Any

import pytest

from api import constants as c
from tests.builders import JobSetBuilder
from tests.conformance.kit import (
    RJOB_A,
    RJOB_B,
    Cluster,
    base_jobset,
    live,
    manual,
    simulated,
)

JSON = dict[str, Any]
OTHER_MANAGER = "example.com/other-controller"


async def sentinel(cluster: Cluster) -> None:
    """Create a plain JobSet and wait for its Job: the controller has processed events after this point."""
    await cluster.create(manual(JobSetBuilder("sentinel", cluster.ns).rjob("s", 1).obj()))
    await cluster.wait_job_count(1, jobset="sentinel")


async def test_c59_managed_by_other_controller_gets_no_jobs(cluster: Cluster) -> None:
    obj = manual(base_jobset(cluster.ns).set("spec.managedBy", OTHER_MANAGER).obj())
    del obj["metadata"]["name"]
    obj["metadata"]["generateName"] = "test-js-"
    created = await cluster.create(obj)
    name = created["metadata"]["name"]
    await sentinel(cluster)
    await cluster.stays(
        cluster.jobs_path, lambda items: not items, params={"labelSelector": f"{c.JOBSET_NAME_KEY}={name}"}
    )
    js = await cluster.jobset(name)
    assert not (js.get("status") or {}).get("replicatedJobsStatus")
    assert not (js.get("status") or {}).get("conditions")


async def test_c60_managed_by_other_controller_unsuspended_still_no_jobs(cluster: Cluster) -> None:
    obj = manual(base_jobset(cluster.ns).set("spec.managedBy", OTHER_MANAGER).set("spec.suspend", True).obj())
    await cluster.create(obj)
    await cluster.set_suspend("test-js", False)
    await sentinel(cluster)
    await cluster.stays(
        cluster.jobs_path, lambda items: not items, params={"labelSelector": f"{c.JOBSET_NAME_KEY}=test-js"}
    )
    assert "test-js" not in [s["metadata"]["name"] for s in await cluster.services()]


async def test_c61_managed_by_other_controller_status_is_left_alone(cluster: Cluster) -> None:
    await cluster.create(manual(base_jobset(cluster.ns).set("spec.managedBy", OTHER_MANAGER).obj()))
    status = {
        "restarts": 1,
        "conditions": [
            {
                "type": c.COND_FAILED,
                "status": "False",
                "reason": "ByTest",
                "message": "status written by the test",
                "lastTransitionTime": "2026-01-01T00:00:00Z",
            }
        ],
        "replicatedJobsStatus": [
            {"name": RJOB_A, "ready": 1, "succeeded": 0, "failed": 0, "active": 1, "suspended": 0},
            {"name": RJOB_B, "ready": 0, "succeeded": 2, "failed": 1, "active": 0, "suspended": 0},
        ],
    }
    written = await cluster.api.patch(f"{cluster.jobsets_path}/test-js/status", {"status": status})
    # A spec-side touch makes the controller look at the JobSet again.
    await cluster.api.patch(f"{cluster.jobsets_path}/test-js", {"metadata": {"labels": {"touched": "yes"}}})
    await sentinel(cluster)
    js = await cluster.jobset("test-js")
    assert js["status"] == written["status"]
    await cluster.jobset_stays("test-js", lambda js: js["status"] == written["status"])


def elastic_jobset(namespace: str) -> JSON:
    return manual(JobSetBuilder("test-js", namespace).rjob("workers", 1, parallelism=2, completions=2).obj())


def resize(js: JSON) -> None:
    spec = js["spec"]["replicatedJobs"][0]["template"]["spec"]
    spec["parallelism"] = 4
    spec["completions"] = 4


@pytest.mark.gates(ElasticJobSet=True)
async def test_c64_elastic_resize_patches_live_job(cluster: Cluster) -> None:
    await cluster.create(elastic_jobset(cluster.ns))
    (job,) = await cluster.wait_job_count(1)
    assert (job["spec"]["parallelism"], job["spec"]["completions"]) == (2, 2)
    await cluster.update_jobset("test-js", resize)

    def resized(jobs: list[JSON]) -> JSON | None:
        for j in live(jobs):
            if (j["spec"]["parallelism"], j["spec"]["completions"]) == (4, 4):
                return j
        return None

    resized_job = await cluster.wait_jobs(resized)
    assert resized_job["metadata"]["uid"] == job["metadata"]["uid"]  # the live Job was patched, not replaced


@pytest.mark.gates(ElasticJobSet=False)
@pytest.mark.usefixtures("without_jobset_webhooks")  # with them, the resize is refused (scenario 102)
async def test_c65_elastic_resize_without_gate_changes_nothing(cluster: Cluster) -> None:
    await cluster.create(elastic_jobset(cluster.ns))
    await cluster.wait_job_count(1)
    await cluster.update_jobset("test-js", resize)
    # The update lands, but the controller must not patch the live Job.
    await cluster.api.patch(f"{cluster.jobsets_path}/test-js", {"metadata": {"labels": {"touched": "yes"}}})
    await sentinel(cluster)
    await cluster.stays(
        cluster.jobs_path,
        lambda items: [(j["spec"]["parallelism"], j["spec"]["completions"]) for j in items] == [(2, 2)],
        params={"labelSelector": f"{c.JOBSET_NAME_KEY}=test-js"},
    )


def volume_jobset(namespace: str, name: str, *, retain_storage: str = "1Gi") -> JSON:
    def pvc(template: str, storage: str) -> JSON:
        return {
            "metadata": {"name": template},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": storage}}},
        }

    obj = JobSetBuilder(name, namespace).rjob("worker", 1).obj()
    obj["spec"]["volumeClaimPolicies"] = [
        {"templates": [pvc("test-volume-delete", "1Gi")], "retentionPolicy": {"whenDeleted": "Delete"}},
        {"templates": [pvc("test-volume-retain", retain_storage)], "retentionPolicy": {"whenDeleted": "Retain"}},
    ]
    container = obj["spec"]["replicatedJobs"][0]["template"]["spec"]["template"]["spec"]["containers"][0]
    container["volumeMounts"] = [
        {"name": "test-volume-delete", "mountPath": "/scratch"},
        {"name": "test-volume-retain", "mountPath": "/data"},
    ]
    return obj


async def test_c40_volume_claim_policies_delete_and_retain(cluster: Cluster) -> None:
    await cluster.create(manual(volume_jobset(cluster.ns, "volume-test")))
    (job,) = await cluster.wait_job_count(1)
    pvcs = await cluster.pvcs()
    assert [p["metadata"]["name"] for p in pvcs] == ["test-volume-delete-volume-test", "test-volume-retain-volume-test"]
    delete_pvc, retain_pvc = pvcs
    assert delete_pvc["metadata"]["labels"][c.JOBSET_NAME_KEY] == "volume-test"
    assert delete_pvc["metadata"]["ownerReferences"][0]["kind"] == "JobSet"
    assert not retain_pvc["metadata"].get("ownerReferences")
    volumes = {v["name"]: v for v in job["spec"]["template"]["spec"]["volumes"]}
    assert volumes["test-volume-delete"]["persistentVolumeClaim"]["claimName"] == "test-volume-delete-volume-test"
    assert volumes["test-volume-retain"]["persistentVolumeClaim"]["claimName"] == "test-volume-retain-volume-test"
    await cluster.complete(job)
    await cluster.wait_terminal("volume-test", "Completed")

    await cluster.api.delete(f"{cluster.jobsets_path}/volume-test", propagation="Foreground")
    await cluster.wait_gone(cluster.jobsets_path, "volume-test")
    await cluster.wait_gone(cluster.pvcs_path, "test-volume-delete-volume-test")
    assert [p["metadata"]["name"] for p in await cluster.pvcs()] == ["test-volume-retain-volume-test"]

    await cluster.create(manual(volume_jobset(cluster.ns, "volume-test-2")))
    (job2,) = await cluster.wait_job_count(1, jobset="volume-test-2")
    await cluster.complete(job2)
    await cluster.wait_terminal("volume-test-2", "Completed")


async def test_ttl_after_finished_deletes_the_jobset(cluster: Cluster) -> None:
    obj = JobSetBuilder("test-js", cluster.ns).rjob("worker", 2).set("spec.ttlSecondsAfterFinished", 0).obj()
    await cluster.create(simulated(obj, run_seconds="0.2"))
    await cluster.wait_gone(cluster.jobsets_path, "test-js")
    await cluster.wait_jobs(lambda jobs: not jobs, jobset="test-js")
    # It finished before it went: the completion event outlives the JobSet.
    await cluster.wait_event("test-js", "AllJobsCompleted")
