"""Edges of one reconcile pass: conditions flipped on completion and suspension, errors drop the status and
events, dependsOn and InOrder arithmetic, TTL timing, success targets, elastic sync, group indexes
(behaviour.md §2.1, §4.1, §4.2, §4.4, §4.6-§4.9).

Found by mutation testing (docs/design/mutation-testing.md); each test states the rule it pins.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import msgspec
import pytest

from api import constants as c
from api.jobset_types import Condition, JobSet, ReplicatedJobStatus, jobset_from_obj
from api.plan import Snapshot
from api.records import Pod
from controller.decide import children, elastic, naming, startup, success, suspend, ttl
from controller.decide.conditions import apply_condition
from controller.decide.reconcile import decide
from tests.builders import (
    DecideWorld,
    JobSetBuilder,
    complete_status,
    failed_status,
    job_condition,
    job_record,
    ready_status,
)

NOW = dt.datetime(2026, 1, 1, 0, 1, tzinfo=dt.UTC)
A = "test-js-replicated-job-a-0"
B = [f"test-js-replicated-job-b-{i}" for i in range(3)]


def base(**sets: Any) -> JobSetBuilder:
    b = JobSetBuilder("test-js").rjob("replicated-job-a", 1).rjob("replicated-job-b", 3)
    for path, value in sets.items():
        b.set(path.replace("__", "."), value)
    return b


def started(js: JobSet, gates: dict[str, bool] | None = None) -> DecideWorld:
    world = DecideWorld(js, gates=gates)
    world.step()
    return world


def restarted_once(js: JobSet) -> DecideWorld:
    """A JobSet that restarted once (RestartingJobSet=True) and got its Jobs back."""
    world = started(js)
    world.set_status(failed_status(), A)
    world.step()
    world.step()
    world.gc()
    world.step()
    assert cond_of(world, c.COND_RESTARTING) is not None
    assert cond_of(world, c.COND_RESTARTING)[0] == "True"  # type: ignore[index]
    return world


def cond_of(world: DecideWorld, ctype: str) -> tuple[str, str, str] | None:
    for x in world.js.status.conditions:
        if x.type == ctype:
            return (x.status, x.reason, x.message)
    return None


# --------------------------------------------------------------------------------------------- conditions


def test_completion_ends_a_restart_episode() -> None:
    world = restarted_once(base(spec__failurePolicy={"maxRestarts": 2}).record())
    world.set_status(complete_status())
    plan = world.step()
    assert cond_of(world, c.COND_RESTARTING) == ("False", "JobSetCompleted", "jobset completed successfully")
    assert plan.outcome is not None
    assert (plan.outcome.kind, plan.outcome.reason) == ("completed", "AllJobsCompleted")


def test_suspension_ends_a_restart_episode() -> None:
    world = restarted_once(base(spec__failurePolicy={"maxRestarts": 2}).record())
    world.update_spec(suspend=True)
    world.step()
    assert cond_of(world, c.COND_RESTARTING) == ("False", "JobSetSuspended", "jobset is suspended")


def test_jobs_ready_counts_succeeded_jobs_too() -> None:
    # behaviour.md §4.2 step 6: ready + succeeded over all replicated jobs equals the total replicas.
    world = restarted_once(base(spec__failurePolicy={"maxRestarts": 2}).record())
    world.set_status(complete_status(), A)
    world.set_status(ready_status(), *B)
    world.step()
    assert cond_of(world, c.COND_RESTARTING) == ("False", "JobsReady", "all jobs are ready")


def test_apply_condition_reports_no_change_as_false() -> None:
    old = Condition(type="Suspended", status="True", reason="SuspendedJobs", message="m", last_transition_time="t")
    conditions = [old]
    assert apply_condition(conditions, old) is False
    assert conditions == [old]


def test_a_pass_keeps_the_in_place_attempts_it_does_not_touch() -> None:
    js = base().record()
    status = msgspec.structs.replace(js.status, current_in_place_restart_attempt=3, previous_in_place_restart_attempt=2)
    js = msgspec.structs.replace(js, status=status)
    plan = DecideWorld(js).step()
    assert plan.status is not None  # the first pass writes replicatedJobsStatus
    assert (plan.status.current_in_place_restart_attempt, plan.status.previous_in_place_restart_attempt) == (3, 2)


def test_an_ordinary_pass_has_no_outcome_and_never_deletes_the_jobset() -> None:
    plan = DecideWorld(base().record()).step()
    assert plan.status is not None
    assert plan.outcome is None
    assert plan.delete_jobset is False
    assert plan.requeue_after is None


# --------------------------------------------------------------------------------------------- plan assembly


def test_completion_pass_still_deletes_previous_attempt_jobs() -> None:
    # behaviour.md §4.2: step 5 (delete previous-attempt Jobs) comes before step 8 (success), which then stops the pass.
    old = base().record(restarts=0)
    js = base(spec__successPolicy={"operator": "Any", "targetReplicatedJobs": ["replicated-job-a"]}).record(restarts=1)
    previous = [job_record(children.build_job(old, old.spec.replicated_jobs[1], i)) for i in range(3)]
    done = job_record(children.build_job(js, js.spec.replicated_jobs[0], 0), status=complete_status())
    plan = decide(Snapshot(jobset=js, jobs=(done, *previous), service_exists=True), NOW)
    assert plan.outcome is not None
    assert plan.outcome.kind == "completed"
    assert sorted(plan.delete_jobs) == B


def test_a_classification_error_names_the_job() -> None:
    js = base().record()
    stray = job_record({"metadata": {"name": "js-stray", "labels": {c.REPLICATED_JOB_NAME_KEY: "replicated-job-a"}}})
    plan = decide(Snapshot(jobset=js, jobs=(stray,), service_exists=True), NOW)
    assert plan.error is not None
    assert "js-stray" in plan.error
    assert c.RESTART_ATTEMPT_KEY in plan.error


def test_a_decision_error_drops_the_status_and_its_events() -> None:
    # behaviour.md §4.1 step 4: on an error there is no status write and the pending events are dropped. Here InOrder
    # queues StartupPolicyInProgress and the in-place barrier then fails on a bad pod annotation.
    js = base(
        spec__startupPolicy={"startupPolicyOrder": "InOrder"},
        spec__failurePolicy={"maxRestarts": 1, "restartStrategy": "InPlaceRestart"},
    ).record()
    bad = msgspec.convert({"metadata": {"name": "p", "annotations": {c.IN_PLACE_RESTART_ATTEMPT_KEY: "x"}}}, Pod)
    snap = Snapshot(jobset=js, jobs=(), service_exists=True, gates={c.GATE_IN_PLACE_RESTART: True}, pods=(bad,))
    plan = decide(snap, NOW)
    assert plan.error is not None
    assert (plan.status, plan.events, plan.outcome) == (None, (), None)
    assert [m["metadata"]["name"] for m in plan.create_jobs] == [A]  # child writes are still listed


# --------------------------------------------------------------------------------------------- startup


def _rjs(name: str, *, ready: int = 0, failed: int = 0, succeeded: int = 0) -> ReplicatedJobStatus:
    return ReplicatedJobStatus(name=name, ready=ready, failed=failed, succeeded=succeeded)


def _rjob(js: JobSet, name: str) -> Any:
    return next(r for r in js.spec.replicated_jobs if r.name == name)


@pytest.mark.parametrize(
    ("counts", "started_"),
    [
        pytest.param({"succeeded": 3}, True, id="all-succeeded"),
        pytest.param({"ready": 1, "failed": 1, "succeeded": 1}, True, id="one-of-each"),
        pytest.param({"ready": 2, "failed": 1}, True, id="ready-and-failed"),
        pytest.param({"ready": 2}, False, id="one-missing"),
    ],
)
def test_started_means_ready_plus_failed_plus_succeeded(counts: dict[str, int], started_: bool) -> None:
    js = base().record()
    assert startup.all_started(_rjob(js, "replicated-job-b"), _rjs("replicated-job-b", **counts)) is started_


def test_ready_dependency_counts_failed_jobs() -> None:
    js = base().rjob("c", 1, depends_on=[{"name": "replicated-job-b", "status": "Ready"}]).record()
    statuses = {"replicated-job-b": _rjs("replicated-job-b", ready=1, failed=1, succeeded=1)}
    assert startup.dependencies_reached(_rjob(js, "c"), {"replicated-job-b": 3}, statuses)


def test_a_dependency_missing_from_the_status_is_not_reached() -> None:
    js = base().rjob("c", 1, depends_on=[{"name": "ghost", "status": "Ready"}]).record()
    assert not startup.dependencies_reached(_rjob(js, "c"), {"replicated-job-a": 1}, {"replicated-job-a": _rjs("a")})


def test_an_unreached_dependency_does_not_hold_back_later_replicated_jobs() -> None:
    js = (
        JobSetBuilder("js")
        .rjob("a", 1)
        .rjob("b", 1, depends_on=[{"name": "a", "status": "Complete"}])
        .rjob("c", 1)
        .record()
    )
    plan = DecideWorld(js).step()
    assert [m["metadata"]["name"] for m in plan.create_jobs] == ["js-a-0", "js-c-0"]


# --------------------------------------------------------------------------------------------- suspend / resume


def test_resume_propagates_template_annotations() -> None:
    obj = JobSetBuilder("js").rjob("w", 1).obj()
    pod_meta = obj["spec"]["replicatedJobs"][0]["template"]["spec"]["template"]["metadata"]
    pod_meta["annotations"] = {"kueue.x-k8s.io/flavor": "spot"}
    js = jobset_from_obj({**obj, "metadata": {**obj["metadata"], "uid": "u"}})
    suspended = JobSetBuilder("js").rjob("w", 1).set("spec.suspend", True).record(uid="u")
    job = job_record(children.build_job(suspended, suspended.spec.replicated_jobs[0], 0))
    update = suspend.resume_update(job, js.spec.replicated_jobs[0])
    assert update.patch["spec"]["template"]["metadata"]["annotations"] == {"kueue.x-k8s.io/flavor": "spot"}
    assert update.patch["spec"]["suspend"] is False


# --------------------------------------------------------------------------------------------- TTL


def _finished(ttl_seconds: int, conditions: list[dict[str, str]]) -> JobSet:
    obj = JobSetBuilder("js").rjob("w", 1).set("spec.ttlSecondsAfterFinished", ttl_seconds).obj()
    obj["status"] = {"conditions": conditions}
    return jobset_from_obj(obj)


def test_finish_time_is_the_completed_or_failed_condition_not_another_true_one() -> None:
    js = _finished(
        60,
        [
            job_condition("StartupPolicyCompleted", at="2026-01-01T00:00:00Z"),
            job_condition("Completed", at="2026-01-01T00:00:30Z"),
        ],
    )
    decision = ttl.decide_ttl(js, dt.datetime(2026, 1, 1, 0, 1, tzinfo=dt.UTC))
    assert (decision.delete_jobset, decision.requeue_after) == (False, 30.0)


def test_ttl_takes_a_naive_now_as_utc() -> None:
    js = _finished(60, [job_condition("Failed", at="2026-01-01T00:00:00Z")])
    decision = ttl.decide_ttl(js, dt.datetime(2026, 1, 1, 0, 0, 45))  # noqa: DTZ001 - the naive case is the point
    assert (decision.delete_jobset, decision.requeue_after, decision.error) == (False, 15.0, None)


def test_ttl_requeues_for_less_than_a_second_left() -> None:
    js = _finished(60, [job_condition("Completed", at="2026-01-01T00:00:00Z")])
    decision = ttl.decide_ttl(js, dt.datetime(2026, 1, 1, 0, 0, 59, 500000, tzinfo=dt.UTC))
    assert (decision.delete_jobset, decision.requeue_after) == (False, 0.5)


# --------------------------------------------------------------------------------------------- success


def test_all_with_targets_needs_every_targeted_replica() -> None:
    js = (
        JobSetBuilder("js")
        .rjob("a", 2)
        .rjob("b", 1)
        .set("spec.successPolicy", {"operator": "All", "targetReplicatedJobs": ["a"]})
        .record()
    )
    done = job_record(children.build_job(js, js.spec.replicated_jobs[0], 0), status=complete_status())
    assert not success.is_met(js, (done,))


def test_no_succeeded_job_never_meets_the_policy_even_with_zero_replicas() -> None:
    js = JobSetBuilder("js").rjob("a", 0).record()
    assert not success.is_met(js, ())


# --------------------------------------------------------------------------------------------- elastic


def test_elastic_sync_skips_templates_without_a_spec_and_patches_every_stale_job() -> None:
    obj = JobSetBuilder("js").rjob("bare", 1).rjob("w", 2, parallelism=3, completions=3).obj()
    obj["spec"]["replicatedJobs"][0]["template"] = {}
    obj["metadata"]["uid"] = "u"
    js = jobset_from_obj(obj)
    assert elastic.template_sizes(js) == {"w": 3}
    small = JobSetBuilder("js").rjob("w", 2, parallelism=2, completions=2).record(uid="u")
    in_sync = job_record(children.build_job(js, js.spec.replicated_jobs[1], 0))
    half = job_record(children.build_job(small, small.spec.replicated_jobs[0], 1))
    half = msgspec.structs.replace(half, spec=msgspec.structs.replace(half.spec, parallelism=3))
    updates = elastic.elastic_updates(js, (in_sync, half))
    assert [(u.name, u.patch) for u in updates] == [("js-w-1", {"spec": {"parallelism": 3, "completions": 3}})]


# --------------------------------------------------------------------------------------------- labels


def test_group_job_index_adds_every_earlier_member_of_the_group() -> None:
    js = (
        JobSetBuilder("js")
        .rjob("a", 2, group="g")
        .rjob("x", 4, group="other")
        .rjob("b", 3, group="g")
        .rjob("c", 1, group="g")
        .record()
    )
    assert naming.group_job_index(js, "c", 0) == "5"
    assert naming.group_job_index(js, "b", 2) == "4"
