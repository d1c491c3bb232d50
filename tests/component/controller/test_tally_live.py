"""The incremental child tally inside the running controller on kubesim (issue 18, item 3).

While a JobSet's Jobs are created, become ready and a Job fails and the JobSet restarts, the controller's tally
(fed by the Job informer's store) equals the tally built from scratch over the same store, and a steady-state
reconcile of the JobSet is decided from the tally, not by a full pass. Everything is awaited by watch or by the
controller's queue; nothing is timed.
"""

from __future__ import annotations

from cache.client import ApiClient, resource_path
from cache.tally import ChildTallies
from controller.app import Controller
from controller.reconciler import OWNER_INDEX, owner_uid_index
from tests.builders import JobSetBuilder
from tests.conftest import wait_for


def _from_scratch(controller: Controller, uid: str) -> object:
    fresh = ChildTallies(owner_uid_index)
    for job in controller.jobs.by_index(OWNER_INDEX, uid):
        fresh.added(job.key, job)
    return fresh.view(uid)


async def test_the_live_tally_matches_the_store_and_is_used(
    api: ApiClient, namespace: str, controller: Controller | None
) -> None:
    assert controller is not None
    path = resource_path("jobset.x-k8s.io", "v1alpha2", "jobsets", namespace)
    await api.create(path, JobSetBuilder("tallied", namespace).rjob("a", 3).rjob("b", 2).obj())
    jobs_path = resource_path("batch", "v1", "jobs", namespace)
    await wait_for(api, jobs_path, lambda items: len(items) == 5)
    await controller.queue.wait_idle()

    js = controller.jobsets.get(f"{namespace}/tallied")
    assert js is not None
    uid = js.metadata.uid
    tally = controller.job_tallies.view(uid)
    assert tally.size == len(controller.jobs.by_index(OWNER_INDEX, uid))
    assert tally.size > 0
    assert tally == _from_scratch(controller, uid)
    snap = controller.reconciler.snapshot(js)
    assert snap.tally == tally
    assert not controller.reconciler.full_pass_needed(snap)  # decided from the tally
