"""Cost shape of ``decide`` (decision D5 of behaviour.md): the child Jobs are walked once per decision, never per Job.

Counted, not timed: a tuple subclass records how often ``decide`` iterates the snapshot's Jobs.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterator
from typing import Any

import msgspec
import pytest

from api.jobset_types import JobSet
from api.plan import Snapshot
from api.records import Job
from api.tally import ChildTally
from cache.store import Store
from cache.tally import ChildTallies
from controller.decide import children
from controller.decide.naming import job_names
from controller.decide.reconcile import decide
from controller.reconciler import OWNER_INDEX, owner_uid_index
from tests.builders import JobSetBuilder, failed_status, job_record, ready_status

NOW = dt.datetime(2026, 1, 1, 0, 1, tzinfo=dt.UTC)


class CountingJobs(tuple[Job, ...]):
    iterations = 0

    def __iter__(self) -> Iterator[Job]:
        type(self).iterations += 1
        return super().__iter__()


def _jobs(js: JobSet, status: dict[str, Any]) -> list[Job]:
    return [
        job_record(children.build_job(js, rjob, i), status=status)
        for rjob in js.spec.replicated_jobs
        for i in range(rjob.replicas)
    ]


@pytest.mark.parametrize(
    ("suspend", "fail_last"),
    [
        pytest.param(False, False, id="d5-steady-state-one-walk"),
        pytest.param(True, False, id="d5-suspended-one-walk"),
        pytest.param(False, True, id="d5-failure-pass-one-walk"),
    ],
)
def test_jobs_are_walked_once(suspend: bool, fail_last: bool) -> None:
    js = JobSetBuilder("big").rjob("a", 1).rjob("w", 200).set("spec.suspend", suspend).record()
    jobs = _jobs(js, ready_status())
    if fail_last:
        jobs[-1] = job_record(children.build_job(js, js.spec.replicated_jobs[1], 199), status=failed_status())
    CountingJobs.iterations = 0
    plan = decide(Snapshot(jobset=js, jobs=CountingJobs(jobs), service_exists=True), NOW)
    assert plan.error is None
    assert plan.create_jobs == ()
    assert CountingJobs.iterations == 1


def _tally_world(js: JobSet, jobs: list[Job]) -> tuple[Store[Job], ChildTallies]:
    tallies = ChildTallies(owner_uid_index)
    store: Store[Job] = Store(lambda j: j.key, {OWNER_INDEX: owner_uid_index}, listeners=[tallies])
    for job in jobs:
        store.upsert(job)
    return store, tallies


def _counting(tally: ChildTally) -> ChildTally:
    """The tally with every Job tuple counting its iterations."""
    attempts = tuple(
        dataclasses.replace(
            a,
            jobs=CountingJobs(a.jobs),
            active=CountingJobs(a.active),
            successful=CountingJobs(a.successful),
            failed=CountingJobs(a.failed),
            suspended_active=CountingJobs(a.suspended_active),
        )
        for a in tally.attempts
    )
    return dataclasses.replace(tally, attempts=attempts)


def test_a_pass_during_a_restart_walks_no_child_with_the_tally() -> None:
    """Issue 18: while a restart waits for the previous attempt's Jobs to go, each pass must not name, filter or
    collect every child in Python: the tally hands over the name set and the previous attempt's live names."""
    js = JobSetBuilder("big").rjob("a", 1).rjob("w", 300).set("spec.failurePolicy", {"maxRestarts": 3}).record()
    going = "2026-01-01T00:00:00Z"
    jobs = []
    for job in _jobs(js, ready_status()):
        meta = msgspec.structs.replace(job.metadata, uid=f"u-{job.metadata.name}", deletion_timestamp=going)
        jobs.append(msgspec.structs.replace(job, metadata=meta))
    gone = {"big-w-7", "big-w-250", "big-a-0"}
    kept = [j for j in jobs if j.metadata.name not in gone]
    kept[5] = msgspec.structs.replace(
        kept[5], metadata=msgspec.structs.replace(kept[5].metadata, deletion_timestamp=None)
    )
    store, tallies = _tally_world(js, kept)
    restarted = msgspec.structs.replace(js, status=msgspec.structs.replace(js.status, restarts=1))
    snap_jobs = tuple(store.by_index(OWNER_INDEX, js.metadata.uid))
    full = decide(Snapshot(jobset=restarted, jobs=snap_jobs, service_exists=True), NOW)
    CountingJobs.iterations = 0
    fast = decide(
        Snapshot(
            jobset=restarted,
            jobs=CountingJobs(snap_jobs),
            service_exists=True,
            tally=_counting(tallies.view(js.metadata.uid)),
        ),
        NOW,
    )
    assert CountingJobs.iterations == 0
    assert fast == full
    assert fast.delete_jobs == (kept[5].metadata.name,)  # only the one not already being deleted
    assert [j["metadata"]["name"] for j in fast.create_jobs] == ["big-a-0", "big-w-7", "big-w-250"]


def test_job_names_are_the_canonical_names_in_index_order() -> None:
    assert job_names("js", "w", 3) == ("js-w-0", "js-w-1", "js-w-2")
    assert job_names("js", "w", 0) == ()
    assert job_names("js", "w", 3) is job_names("js", "w", 3)  # memoised
