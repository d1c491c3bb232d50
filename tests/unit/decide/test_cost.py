"""Cost shape of ``decide`` (decision D5 of behaviour.md): the child Jobs are walked once per decision, never per Job.

Counted, not timed: a tuple subclass records how often ``decide`` iterates the snapshot's Jobs.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest

from api.jobset_types import JobSet
from api.plan import Snapshot
from api.records import Job
from controller.decide import children
from controller.decide.reconcile import decide
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
