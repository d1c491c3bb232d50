"""Failure-policy details the first tests left open (behaviour.md §4.5, api/plan.py ``Outcome``).

Found by mutation testing (docs/design/mutation-testing.md): which Job is "first failed" on ties and when the
earliest failure is not the last one listed, the lifecycle outcome of every terminal action, the counters across
several restarts, and the per-Job restart arrays across repeated RestartJob actions.
"""

from __future__ import annotations

from typing import Any

import msgspec

from api import constants as c
from api.jobset_types import JobSet
from api.records import Job
from controller.decide import failure
from tests.builders import DecideWorld, JobSetBuilder, failed_status, job_condition, job_record

A = "test-js-replicated-job-a-0"
B = [f"test-js-replicated-job-b-{i}" for i in range(3)]
GATE_ON = {c.GATE_RESTART_JOB: True}
T = "2026-01-01T00:00:0{}Z".format


def base(policy: dict[str, Any] | None = None) -> JobSet:
    b = JobSetBuilder("test-js").rjob("replicated-job-a", 1).rjob("replicated-job-b", 3)
    if policy is not None:
        b.set("spec.failurePolicy", policy)
    return b.record()


def started(js: JobSet, gates: dict[str, bool] | None = None) -> DecideWorld:
    world = DecideWorld(js, gates=gates)
    world.step()
    return world


def restart_cycle(world: DecideWorld) -> None:
    """After a restart decision: delete the previous-attempt Jobs, let them vanish, recreate them."""
    world.step()
    world.gc()
    world.step()


def rjob_status(world: DecideWorld, name: str) -> Any:
    return next(s for s in world.js.status.replicated_jobs_status if s.name == name)


def failed_message(world: DecideWorld) -> str:
    return next(x.message for x in world.js.status.conditions if x.type == c.COND_FAILED)


# --------------------------------------------------------------------------------------------- first failed Job


def test_first_failed_job_is_the_earliest_even_when_listed_first() -> None:
    world = started(base())
    world.set_status(failed_status(at=T(2)), A)  # listed first, failed first
    world.set_status(failed_status(at=T(7)), B[1])
    world.set_status(failed_status(at=T(5)), B[2])
    world.step()
    assert failed_message(world).endswith(f"(first failed job: {A})")


def test_first_failed_job_on_a_tie_is_the_first_in_snapshot_order() -> None:
    world = started(base())
    world.set_status(failed_status(at=T(4)), B[0])
    world.set_status(failed_status(at=T(4)), B[2])
    world.step()
    assert failed_message(world).endswith(f"(first failed job: {B[0]})")


def test_failed_condition_is_the_failed_true_condition_not_any_true_one() -> None:
    job = msgspec.convert(
        {
            "metadata": {"name": "j"},
            "status": {
                "conditions": [
                    job_condition("FailureTarget", reason="PodFailurePolicy", at=T(1)),
                    job_condition("Failed", "False", reason="Old", at=T(2)),
                    job_condition("Failed", reason="BackoffLimitExceeded", at=T(3)),
                ]
            },
        },
        Job,
    )
    fc = failure.failed_condition(job)
    assert fc is not None
    assert (fc.type, fc.status, fc.reason) == ("Failed", "True", "BackoffLimitExceeded")


# --------------------------------------------------------------------------------------------- outcomes


def test_fail_jobset_rule_outcome_names_action_rule_and_job() -> None:
    world = started(base({"maxRestarts": 3, "rules": [{"name": "stop", "action": "FailJobSet"}]}))
    world.set_status(failed_status(), B[0])
    plan = world.step()
    assert plan.outcome is not None
    assert (plan.outcome.kind, plan.outcome.reason, plan.outcome.action, plan.outcome.rule, plan.outcome.job) == (
        "failed",
        "FailJobSetFailurePolicyAction",
        "FailJobSet",
        "stop",
        B[0],
    )


def test_reached_max_restarts_outcome_names_action_rule_and_job() -> None:
    world = started(base({"maxRestarts": 0, "rules": [{"name": "again", "action": "RestartJobSet"}]}))
    world.set_status(failed_status(), A)
    plan = world.step()
    assert plan.outcome is not None
    assert (plan.outcome.kind, plan.outcome.reason, plan.outcome.action, plan.outcome.rule, plan.outcome.job) == (
        "failed",
        "ReachedMaxRestarts",
        "RestartJobSet",
        "again",
        A,
    )
    assert failed_message(world) == f"jobset failed due to reaching max number of restarts (first failed job: {A})"


def test_default_policy_restart_outcome_has_no_rule() -> None:
    world = started(base({"maxRestarts": 2}))
    world.set_status(failed_status(), B[1])
    plan = world.step()
    assert plan.outcome is not None
    assert (plan.outcome.kind, plan.outcome.reason, plan.outcome.action, plan.outcome.rule, plan.outcome.job) == (
        "restarted",
        "DefaultFailurePolicy",
        "RestartJobSet",
        "",
        B[1],
    )


def test_rule_restart_outcome_names_rule_and_job() -> None:
    world = started(base({"maxRestarts": 2, "rules": [{"name": "again", "action": "RestartJobSet"}]}))
    world.set_status(failed_status(), B[2])
    plan = world.step()
    assert plan.outcome is not None
    assert (plan.outcome.kind, plan.outcome.reason, plan.outcome.rule, plan.outcome.job) == (
        "restarted",
        "FailurePolicy_again",
        "again",
        B[2],
    )


# --------------------------------------------------------------------------------------------- counters


def test_restart_counters_grow_by_one_per_restart() -> None:
    world = started(base({"maxRestarts": 5}))
    for expected in (1, 2, 3):
        world.set_status(failed_status(), A)
        world.step()
        assert (world.js.status.restarts, world.js.status.restarts_count_towards_max) == (expected, expected)
        restart_cycle(world)


def test_restart_job_arrays_accumulate_per_index() -> None:
    # behaviour.md §4.5: RestartJob bumps jobRestarts[i] and jobRestartsCountTowardsMax[i] of the failed Job's
    # replicated job and index, by one each time, leaving the other indexes as they were; `replicas` entries each.
    world = started(base({"maxRestarts": 10, "rules": [{"name": "perJob", "action": "RestartJob"}]}), GATE_ON)
    world.set_status(failed_status(), B[2])
    world.step()
    restart_cycle(world)
    world.set_status(failed_status(), B[2])
    world.step()
    b = rjob_status(world, "replicated-job-b")
    assert (b.job_restarts, b.job_restarts_count_towards_max) == ((0, 0, 2), (0, 0, 2))
    restart_cycle(world)
    world.set_status(failed_status(), B[0])
    world.step()
    b = rjob_status(world, "replicated-job-b")
    assert (b.job_restarts, b.job_restarts_count_towards_max) == ((1, 0, 2), (1, 0, 2))
    assert world.js.status.restarts == 0


def test_restart_job_and_ignore_max_keeps_the_counted_array() -> None:
    rules = [
        {"name": "counted", "action": "RestartJob", "onJobFailureReasons": ["BackoffLimitExceeded"]},
        {"name": "free", "action": "RestartJobAndIgnoreMaxRestarts"},
    ]
    world = started(base({"maxRestarts": 10, "rules": rules}), GATE_ON)
    world.set_status(failed_status("BackoffLimitExceeded"), B[1])
    world.step()
    restart_cycle(world)
    world.set_status(failed_status("PodFailurePolicy"), B[1])
    world.step()
    b = rjob_status(world, "replicated-job-b")
    assert (b.job_restarts, b.job_restarts_count_towards_max) == ((0, 2, 0), (0, 1, 0))


def _stray_failed_job(js: JobSet, rjob: str, index: str) -> Job:
    """A failed child whose labels point outside the spec (not a Job this controller would build)."""
    labels = {
        c.REPLICATED_JOB_NAME_KEY: rjob,
        c.JOB_INDEX_KEY: index,
        c.RESTART_ATTEMPT_KEY: "0",
        c.JOBSET_NAME_KEY: js.metadata.name,
    }
    manifest = {"metadata": {"name": f"stray-{rjob}-{index}", "namespace": "default", "labels": labels}}
    return job_record(manifest, status=failed_status())


def test_restart_job_for_a_job_outside_the_replicated_jobs_is_a_decision_error() -> None:
    for rjob, index in (("ghost", "0"), ("replicated-job-b", "3")):
        js = base({"maxRestarts": 3, "rules": [{"name": "perJob", "action": "RestartJob"}]})
        world = started(js, GATE_ON)
        stray = _stray_failed_job(js, rjob, index)
        world.jobs[stray.metadata.name] = stray
        plan = world.step()
        assert plan.error is not None, (rjob, index)
        assert stray.metadata.name in plan.error
        assert plan.status is None
        assert plan.events == ()
