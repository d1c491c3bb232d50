"""replicatedJobsStatus, child classification and the success policy through ``decide`` (behaviour.md §1.6, 4.3, 4.6).

Conformance scenarios 2, 3, 5-9, 42, 43, 120, 125 at unit level.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import msgspec
import pytest

from api import constants as c
from api.jobset_types import JobSet, ReplicatedJobStatus
from api.plan import Snapshot
from api.records import Job
from controller.decide import classify
from controller.decide.reconcile import decide
from tests.builders import (
    DecideWorld,
    JobSetBuilder,
    complete_status,
    job_condition,
    job_record,
    job_status,
    ready_status,
)

NOW = dt.datetime(2026, 1, 1, 0, 1, tzinfo=dt.UTC)
A = "test-js-replicated-job-a-0"
B = [f"test-js-replicated-job-b-{i}" for i in range(3)]


def base(success: dict[str, Any] | None = None) -> JobSetBuilder:
    b = JobSetBuilder("test-js").rjob("replicated-job-a", 1).rjob("replicated-job-b", 3)
    if success is not None:
        b.set("spec.successPolicy", success)
    return b


def started(js: JobSet) -> DecideWorld:
    world = DecideWorld(js)
    world.step()
    return world


def rjs(world: DecideWorld) -> dict[str, ReplicatedJobStatus]:
    return {s.name: s for s in world.js.status.replicated_jobs_status}


def counts(s: ReplicatedJobStatus) -> tuple[int, int, int, int, int]:
    return (s.ready, s.succeeded, s.failed, s.active, s.suspended)


def test_c2_base_jobset_creates_exactly_four_jobs() -> None:
    world = started(base().record())
    plan = world.plans[0]
    assert sorted(m["metadata"]["name"] for m in plan.create_jobs) == [A, *B]
    assert plan.create_service is not None
    assert plan.status is not None
    assert {s.name for s in plan.status.replicated_jobs_status} == {"replicated-job-a", "replicated-job-b"}
    # A second pass with every Job present creates nothing and writes nothing.
    again = world.step()
    assert again.create_jobs == ()
    assert again.status is None


def test_c3_all_complete_marks_completed_with_terminal_state() -> None:
    world = started(base().record())
    world.set_status(complete_status())
    plan = world.step()
    st = world.js.status
    assert st.terminal_state == "Completed"
    completed = [x for x in st.conditions if x.type == c.COND_COMPLETED]
    assert [(x.status, x.reason, x.message) for x in completed] == [
        ("True", "AllJobsCompleted", "jobset completed successfully")
    ]
    assert counts(rjs(world)["replicated-job-b"])[1] == 3
    assert counts(rjs(world)["replicated-job-a"])[1] == 1
    assert [(e.type, e.reason) for e in plan.events] == [("Normal", "AllJobsCompleted")]
    assert plan.outcome is not None
    assert plan.outcome.kind == "completed"
    assert plan.create_jobs == ()


def test_c5_three_of_four_complete_last_ready_stays_active() -> None:
    world = started(base().record())
    world.set_status(complete_status(), A, B[0], B[1])
    world.set_status(ready_status(), B[2])
    world.step()
    assert world.js.status.terminal_state == ""
    assert counts(rjs(world)["replicated-job-b"]) == (1, 2, 0, 1, 0)
    assert counts(rjs(world)["replicated-job-a"]) == (0, 1, 0, 0, 0)


@pytest.mark.parametrize(
    ("policy", "complete_first", "done_after_first", "complete_second"),
    [
        pytest.param(None, [A], False, B, id="c6-all-empty-targets-needs-every-job"),
        pytest.param(
            {"operator": "All", "targetReplicatedJobs": ["replicated-job-b"]},
            [A, B[0]],
            False,
            B[1:],
            id="c7-all-targeting-b-needs-all-of-b",
        ),
        pytest.param(
            {"operator": "Any", "targetReplicatedJobs": ["replicated-job-b"]},
            [A],
            False,
            [B[1]],
            id="c8-any-targeting-b",
        ),
        pytest.param({"operator": "Any"}, [B[2]], True, [], id="c9-any-no-targets-one-job-completes"),
    ],
)
def test_success_policy(
    policy: dict[str, Any] | None, complete_first: list[str], done_after_first: bool, complete_second: list[str]
) -> None:
    world = started(base(policy).record())
    world.set_status(complete_status(), *complete_first)
    world.step()
    assert (world.js.status.terminal_state == "Completed") is done_after_first
    if complete_second:
        world.set_status(complete_status(), *complete_second)
        world.step()
        assert world.js.status.terminal_state == "Completed"


def test_d3_missing_success_policy_is_all() -> None:
    js = base().record()
    js = msgspec.structs.replace(js, spec=msgspec.structs.replace(js.spec, success_policy=None))
    world = started(js)
    world.set_status(complete_status(), A, B[0])
    world.step()
    assert world.js.status.terminal_state == ""
    world.set_status(complete_status(), *B)
    world.step()
    assert world.js.status.terminal_state == "Completed"


def test_zero_replicas_never_completes() -> None:
    world = started(JobSetBuilder("z").rjob("w", 0).record())
    assert world.plans[0].create_jobs == ()
    world.step()
    assert world.js.status.terminal_state == ""


def test_c42_statuses_after_all_succeed_match_recount() -> None:
    world = started(base({"operator": "Any", "targetReplicatedJobs": ["replicated-job-a"]}).record())
    world.set_status(complete_status(), *B)
    world.step()
    assert counts(rjs(world)["replicated-job-b"]) == (0, 3, 0, 0, 0)
    world.set_status(complete_status(), A)
    world.step()
    assert counts(rjs(world)["replicated-job-a"]) == (0, 1, 0, 0, 0)


def test_c43_all_ready_counts() -> None:
    world = started(base().record())
    world.set_status(ready_status())
    world.step()
    assert counts(rjs(world)["replicated-job-a"]) == (1, 0, 0, 1, 0)
    assert counts(rjs(world)["replicated-job-b"]) == (3, 0, 0, 3, 0)


def _job(js: JobSet, rjob: int, index: int, status: dict[str, Any], *, parallelism: int = 1) -> Job:
    from controller.decide import children

    manifest = children.build_job(js, js.spec.replicated_jobs[rjob], index)
    manifest["spec"]["parallelism"] = parallelism
    manifest["spec"]["completions"] = parallelism
    return job_record(manifest, status=status)


@pytest.mark.parametrize(
    ("statuses", "expected"),
    [
        pytest.param([], (0, 0, 0, 0, 0), id="c125-no-jobs"),
        pytest.param([job_status(active=2, ready=1)], (0, 0, 0, 1, 0), id="c125-partial-readiness"),
        pytest.param(
            [job_status(active=2, ready=1, succeeded=1)], (1, 0, 0, 1, 0), id="c125-ready-counts-succeeded-pods"
        ),
        pytest.param([complete_status()], (0, 1, 0, 0, 0), id="c125-only-succeeded"),
        pytest.param([job_status(conditions=[job_condition("Failed")])], (0, 0, 1, 0, 0), id="c125-only-failed"),
        pytest.param([job_status(active=1)], (0, 0, 0, 1, 0), id="c125-active"),
        pytest.param([job_status()], (0, 0, 0, 0, 0), id="c125-partial-creation"),
    ],
)
def test_c125_status_calculation(statuses: list[dict[str, Any]], expected: tuple[int, ...]) -> None:
    js = JobSetBuilder("js").rjob("w", 2).record()
    jobs = tuple(_job(js, 0, i, s, parallelism=2) for i, s in enumerate(statuses))
    kids = classify.classify(js, jobs)
    (st,) = classify.replicated_jobs_status(js, kids, restart_job_gate=False)
    assert counts(st) == expected


def test_c125_suspended_jobs_counted() -> None:
    js = JobSetBuilder("js").rjob("w", 2).set("spec.suspend", True).record()
    world = started(js)
    world.step()
    assert counts(rjs(world)["w"]) == (0, 0, 0, 0, 2)


@pytest.mark.parametrize(
    ("conditions", "bucket"),
    [
        pytest.param([job_condition("Complete")], "successful", id="c120-complete-true-finished"),
        pytest.param([job_condition("Failed")], "failed", id="c120-failed-true-finished"),
        pytest.param([job_condition("Suspended")], "active", id="c120-suspended-alone-active"),
        pytest.param([job_condition("FailureTarget")], "active", id="c120-failure-target-alone-active"),
        pytest.param([job_condition("Complete", "False")], "active", id="c120-complete-false-active"),
    ],
)
def test_c120_job_finished_detection(conditions: list[dict[str, Any]], bucket: str) -> None:
    js = JobSetBuilder("js").rjob("w", 1).record()
    kids = classify.classify(js, (_job(js, 0, 0, job_status(conditions=conditions)),))
    assert len(getattr(kids, bucket)) == 1


def test_previous_attempt_by_restart_label_and_bad_label_is_plan_error() -> None:
    js = JobSetBuilder("js").rjob("w", 2).record(restarts=1)
    old = JobSetBuilder("js").rjob("w", 2).record(restarts=0)
    kids = classify.classify(js, (_job(old, 0, 0, job_status()), _job(js, 0, 1, job_status())))
    assert [j.metadata.name for j in kids.previous] == ["js-w-0"]
    assert [j.metadata.name for j in kids.active] == ["js-w-1"]
    bad = _job(js, 0, 0, job_status())
    bad = msgspec.structs.replace(
        bad,
        metadata=msgspec.structs.replace(
            bad.metadata, labels=msgspec.structs.replace(bad.metadata.labels, restart_attempt="x")
        ),
    )
    plan = decide(Snapshot(jobset=js, jobs=(bad,), service_exists=True), NOW)
    assert plan.error is not None
    assert plan.status is None
    assert plan.create_jobs == ()


def test_replicated_jobs_status_written_name_descending_and_compared_as_map() -> None:
    js = JobSetBuilder("js").rjob("a", 1).rjob("c", 1).rjob("b", 1).record()
    world = started(js)
    assert [s.name for s in world.js.status.replicated_jobs_status] == ["c", "b", "a"]
    # Same content in another order is not a change.
    shuffled = tuple(sorted(world.js.status.replicated_jobs_status, key=lambda s: s.name))
    world.js = msgspec.structs.replace(
        world.js, status=msgspec.structs.replace(world.js.status, replicated_jobs_status=shuffled)
    )
    assert world.step().status is None
