"""The failure policy through ``decide`` (behaviour.md §4.5; conformance 10, 13-16, 21, 22, 24, 25, 28, 30-32, 121)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import msgspec
import pytest

from api import constants as c
from api.jobset_types import FailurePolicyRule, JobSet
from api.records import Job
from controller.decide import failure
from tests.builders import DecideWorld, JobSetBuilder, failed_status, ready_status

A = "test-js-replicated-job-a-0"
B = [f"test-js-replicated-job-b-{i}" for i in range(3)]
GATE_ON = {c.GATE_RESTART_JOB: True}


def base(policy: dict[str, Any] | None = None) -> JobSet:
    b = JobSetBuilder("test-js").rjob("replicated-job-a", 1).rjob("replicated-job-b", 3)
    if policy is not None:
        b.set("spec.failurePolicy", policy)
    return b.record()


def started(js: JobSet, gates: dict[str, bool] | None = None) -> DecideWorld:
    world = DecideWorld(js, gates=gates)
    world.step()
    return world


def cond_of(world: DecideWorld, ctype: str) -> tuple[str, str, str] | None:
    for x in world.js.status.conditions:
        if x.type == ctype:
            return (x.status, x.reason, x.message)
    return None


def rule(action: str, name: str = "rule0", **extra: Any) -> dict[str, Any]:
    return {"name": name, "action": action, **extra}


def test_c10_c13_no_failure_policy_one_failure_fails() -> None:
    world = started(base())
    assert world.service_exists  # c13: the Service exists before the failure
    world.set_status(failed_status(), B[1])
    plan = world.step()
    assert cond_of(world, c.COND_FAILED) == (
        "True",
        "FailedJobs",
        f"jobset failed due to one or more job failures (first failed job: {B[1]})",
    )
    assert world.js.status.terminal_state == "Failed"
    assert [(e.type, e.reason) for e in plan.events] == [("Warning", "FailedJobs")]
    assert plan.outcome is not None
    assert (plan.outcome.kind, plan.outcome.reason, plan.outcome.job) == ("failed", "FailedJobs", B[1])
    assert plan.create_jobs == ()


def test_first_failed_job_is_earliest_failed_condition() -> None:
    world = started(base())
    world.set_status(failed_status(at="2026-01-01T00:00:09Z"), B[0])
    world.set_status(failed_status(at="2026-01-01T00:00:03Z"), B[2])
    world.set_status(failed_status(at="2026-01-01T00:00:05Z"), A)
    world.step()
    cond = cond_of(world, c.COND_FAILED)
    assert cond is not None
    assert cond[2].endswith(f"(first failed job: {B[2]})")


def test_c14_max_restarts_one_restarts_then_fails() -> None:
    world = started(base({"maxRestarts": 1}))
    world.set_status(failed_status(), A)
    plan = world.step()
    assert (world.js.status.restarts, world.js.status.restarts_count_towards_max) == (1, 1)
    assert world.js.status.terminal_state == ""
    assert cond_of(world, c.COND_RESTARTING) == (
        "True",
        "DefaultFailurePolicy",
        f"applying RestartJobSet failure policy action (first failed job: {A})",
    )
    assert [(e.type, e.reason) for e in plan.events] == [
        ("Warning", "DefaultFailurePolicy"),
        ("Warning", "RestartJobSetFailurePolicyAction"),
    ]
    assert plan.outcome is not None
    assert (plan.outcome.kind, plan.outcome.action, plan.outcome.reason) == (
        "restarted",
        "RestartJobSet",
        "DefaultFailurePolicy",
    )
    assert plan.delete_jobs == ()  # the restart counter is persisted before any deletion
    # Next pass: every old Job is previous, deleted foreground; nothing recreated while they exist (Recreate waits).
    plan = world.step()
    assert sorted(plan.delete_jobs) == sorted([A, *B])
    assert plan.create_jobs == ()
    assert world.step().delete_jobs == ()  # already deleting: never listed again
    world.gc()
    plan = world.step()
    assert len(plan.create_jobs) == 4
    assert {m["metadata"]["labels"][c.RESTART_ATTEMPT_KEY] for m in plan.create_jobs} == {"1"}
    world.set_status(failed_status(), B[0])
    world.step()
    assert cond_of(world, c.COND_FAILED) == (
        "True",
        "ReachedMaxRestarts",
        f"jobset failed due to reaching max number of restarts (first failed job: {B[0]})",
    )
    assert cond_of(world, c.COND_RESTARTING) == ("False", "JobSetFailed", "jobset failed")


def test_recreate_is_per_job_as_predecessors_vanish() -> None:
    world = started(base({"maxRestarts": 3}))
    world.set_status(failed_status(), A)
    world.step()
    world.step()
    world.jobs.pop(B[1])  # only this predecessor is gone
    plan = world.step()
    assert [m["metadata"]["name"] for m in plan.create_jobs] == [B[1]]


def test_c121_blocking_recreate_waits_for_every_predecessor() -> None:
    world = started(base({"maxRestarts": 3, "restartStrategy": "BlockingRecreate"}))
    world.set_status(failed_status(), A)
    world.step()
    world.step()
    for name in (A, B[0], B[1]):
        world.jobs.pop(name)
    assert world.step().create_jobs == ()
    world.gc()
    assert len(world.step().create_jobs) == 4


@pytest.mark.parametrize(
    ("policy", "failed_job", "status", "expect"),
    [
        pytest.param(
            {"rules": [rule("FailJobSet")]},
            A,
            failed_status("PodFailurePolicy"),
            ("Failed", "FailJobSetFailurePolicyAction", 0, 0),
            id="c15-failjobset-any-reason",
        ),
        pytest.param(
            {"maxRestarts": 1, "rules": [rule("FailJobSet", onJobFailureReasons=["BackoffLimitExceeded"])]},
            A,
            failed_status("PodFailurePolicy"),
            ("", "DefaultFailurePolicy", 1, 1),
            id="c16-failjobset-other-reason-default-restart",
        ),
        pytest.param(
            {
                "maxRestarts": 1,
                "rules": [
                    rule("FailJobSet", onJobFailureReasons=["FailedIndexes"], targetReplicatedJobs=["replicated-job-b"])
                ],
            },
            B[0],
            failed_status("FailedIndexes"),
            ("Failed", "FailJobSetFailurePolicyAction", 0, 0),
            id="c30-failjobset-target-b",
        ),
        pytest.param(
            {
                "maxRestarts": 1,
                "rules": [
                    rule(
                        "FailJobSet",
                        onJobFailureReasons=["BackoffLimitExceeded"],
                        targetReplicatedJobs=["replicated-job-a"],
                    )
                ],
            },
            B[0],
            failed_status("BackoffLimitExceeded"),
            ("", "DefaultFailurePolicy", 1, 1),
            id="c31-target-a-b-fails-no-match-restart",
        ),
        pytest.param(
            {
                "maxRestarts": 1,
                "rules": [
                    rule(
                        "FailJobSet",
                        "r0",
                        onJobFailureReasons=["MaxFailedIndexesExceeded"],
                        targetReplicatedJobs=["replicated-job-a"],
                    ),
                    rule(
                        "RestartJobSet",
                        "r1",
                        onJobFailureReasons=["MaxFailedIndexesExceeded"],
                        targetReplicatedJobs=["replicated-job-a"],
                    ),
                ],
            },
            A,
            failed_status("MaxFailedIndexesExceeded"),
            ("Failed", "FailJobSetFailurePolicyAction", 0, 0),
            id="c32-first-rule-wins",
        ),
        pytest.param(
            {"maxRestarts": 1, "rules": [rule("FailJobSet", onJobFailureMessagePatterns=["^Pod .* OOMKilled$"])]},
            A,
            failed_status("PodFailurePolicy", "Pod x OOMKilled"),
            ("Failed", "FailJobSetFailurePolicyAction", 0, 0),
            id="message-pattern-matches",
        ),
        pytest.param(
            {"maxRestarts": 1, "rules": [rule("FailJobSet", onJobFailureMessagePatterns=["deadline"])]},
            A,
            failed_status("PodFailurePolicy", "Pod x OOMKilled"),
            ("", "DefaultFailurePolicy", 1, 1),
            id="message-pattern-no-match-default",
        ),
        pytest.param(
            {"maxRestarts": 1, "rules": [rule("FailJobSet", onJobFailureMessagePatterns=["(?=x)", "OOM"])]},
            A,
            failed_status("PodFailurePolicy", "Pod x OOMKilled"),
            ("Failed", "FailJobSetFailurePolicyAction", 0, 0),
            id="invalid-pattern-skipped-valid-one-matches",
        ),
        pytest.param(
            {"maxRestarts": 0},
            A,
            failed_status(),
            ("Failed", "ReachedMaxRestarts", 0, 0),
            id="max-restarts-zero-fails-on-first",
        ),
    ],
)
def test_rules(
    policy: dict[str, Any], failed_job: str, status: dict[str, Any], expect: tuple[str, str, int, int]
) -> None:
    world = started(base(policy))
    world.set_status(status, failed_job)
    world.step()
    terminal, reason, restarts, towards = expect
    st = world.js.status
    assert (st.terminal_state, st.restarts, st.restarts_count_towards_max) == (terminal, restarts, towards)
    ctype = c.COND_FAILED if terminal else c.COND_RESTARTING
    cond = cond_of(world, ctype)
    assert cond is not None
    assert cond[1] == reason
    assert cond[2].endswith(f"(first failed job: {failed_job})")


def test_invalid_pattern_is_reported_as_a_note_not_raised() -> None:
    world = started(
        base({"maxRestarts": 1, "rules": [rule("FailJobSet", "bad", onJobFailureMessagePatterns=["(?=x)"])]})
    )
    world.set_status(failed_status("PodFailurePolicy", "x"), A)
    plan = world.step()
    assert len(plan.notes) == 1
    assert "'bad'" in plan.notes[0]
    assert "(?=x)" in plan.notes[0]
    assert world.js.status.restarts == 1  # the rule never matched: default restart


def test_job_without_rjob_label_never_matches_a_rule() -> None:
    job = msgspec.convert({"metadata": {"name": "j", "labels": {}}, "status": failed_status("PodFailurePolicy")}, Job)
    fc = failure.failed_condition(job)
    assert fc is not None
    assert not failure.rule_applies(msgspec.convert(rule("FailJobSet"), FailurePolicyRule), job, fc, [])


def test_c21_restart_rule_gate_off_arrays_nil() -> None:
    policy = {
        "maxRestarts": 1,
        "rules": [rule("RestartJobSet", "r0", onJobFailureReasons=["PodFailurePolicy"]), rule("FailJobSet", "r1")],
    }
    world = started(base(policy))
    world.set_status(failed_status("PodFailurePolicy"), A)
    world.step()
    st = world.js.status
    assert (st.terminal_state, st.restarts, st.restarts_count_towards_max) == ("", 1, 1)
    a = next(s for s in st.replicated_jobs_status if s.name == "replicated-job-a")
    assert a.job_restarts is None
    assert a.job_restarts_count_towards_max is None


def test_c22_restarting_condition_then_jobs_ready() -> None:
    world = started(base({"maxRestarts": 2, "rules": [rule("RestartJobSet", "Rule1")]}))
    world.set_status(failed_status(), A)
    world.step()
    assert cond_of(world, c.COND_RESTARTING) == (
        "True",
        "FailurePolicy_Rule1",
        f"applying RestartJobSet failure policy action (first failed job: {A})",
    )
    world.step()
    world.gc()
    world.step()
    assert len(world.jobs) == 4
    world.set_status(ready_status())
    plan = world.step()
    assert cond_of(world, c.COND_RESTARTING) == ("False", "JobsReady", "all jobs are ready")
    assert [(e.type, e.reason, e.message) for e in plan.events] == [("Normal", "JobsReady", "all jobs are ready")]


def _rjob_a(world: DecideWorld) -> Any:
    return next(s for s in world.js.status.replicated_jobs_status if s.name == "replicated-job-a")


@pytest.mark.parametrize(
    ("action", "towards"),
    [
        pytest.param("RestartJob", (1,), id="c24-restartjob-counts-towards-max"),
        pytest.param("RestartJobAndIgnoreMaxRestarts", None, id="c25-restartjob-ignore-max"),
    ],
)
def test_c24_c25_restart_job_gate_on(action: str, towards: tuple[int, ...] | None) -> None:
    world = started(
        base({"maxRestarts": 3, "rules": [rule(action, onJobFailureReasons=["PodFailurePolicy"])]}), GATE_ON
    )
    assert {m["metadata"]["labels"][c.JOB_RESTART_ATTEMPT_KEY] for m in world.plans[0].create_jobs} == {"0"}
    world.set_status(failed_status("PodFailurePolicy"), A)
    plan = world.step()
    st = world.js.status
    assert (st.restarts, st.restarts_count_towards_max) == (0, 0)
    assert _rjob_a(world).job_restarts == (1,)
    assert _rjob_a(world).job_restarts_count_towards_max == towards
    assert cond_of(world, c.COND_RESTARTING) is None  # per-Job restarts never set the condition
    assert [(e.type, e.reason) for e in plan.events] == [("Warning", f"{action}FailurePolicyAction")]
    # Next pass: only that Job is previous; it is deleted and recreated with job-restart-attempt 1.
    plan = world.step()
    assert plan.delete_jobs == (A,)
    world.gc()
    plan = world.step()
    assert [m["metadata"]["name"] for m in plan.create_jobs] == [A]
    labels = plan.create_jobs[0]["metadata"]["labels"]
    assert labels[c.JOB_RESTART_ATTEMPT_KEY] == "1"
    assert labels[c.RESTART_ATTEMPT_KEY] == "0"


def test_restart_job_budget_counts_job_arrays() -> None:
    world = started(base({"maxRestarts": 1, "rules": [rule("RestartJob")]}), GATE_ON)
    world.set_status(failed_status(), B[2])
    world.step()
    b = next(s for s in world.js.status.replicated_jobs_status if s.name == "replicated-job-b")
    assert b.job_restarts == (0, 0, 1)
    world.step()
    world.gc()
    world.step()
    world.set_status(failed_status(), B[0])
    world.step()
    assert cond_of(world, c.COND_FAILED) is not None
    assert world.js.status.terminal_state == "Failed"


T = "2026-01-01T00:00:0{}Z".format


@pytest.mark.parametrize(
    ("rule_fields", "a_status"),
    [
        pytest.param(
            {"onJobFailureReasons": ["PodFailurePolicy"]},
            failed_status("BackoffLimitExceeded", at=T(1)),
            id="earlier-failure-has-another-reason",
        ),
        pytest.param(
            {"targetReplicatedJobs": ["replicated-job-b"]},
            failed_status("PodFailurePolicy", at=T(1)),
            id="earlier-failure-is-not-a-target",
        ),
        pytest.param(
            {"onJobFailureMessagePatterns": ["OOMKilled"]},
            failed_status("PodFailurePolicy", "deadline exceeded", at=T(1)),
            id="earlier-failure-message-does-not-match",
        ),
    ],
)
def test_rule_applies_to_the_earliest_failing_job_that_matches_it(
    rule_fields: dict[str, Any], a_status: dict[str, Any]
) -> None:
    # Spec 4.5: a rule is applied to the earliest-failing Job *among those it matches*. An earlier failure the rule
    # does not match neither hides the rule nor becomes the Job the action names; among the matching Jobs the
    # earliest transition wins over snapshot order (B[0] comes first but failed later than B[1]).
    world = started(base({"maxRestarts": 3, "rules": [rule("FailJobSet", "failB", **rule_fields)]}))
    world.set_status(a_status, A)
    world.set_status(failed_status("PodFailurePolicy", "Pod x OOMKilled", at=T(9)), B[0])
    world.set_status(failed_status("PodFailurePolicy", "Pod y OOMKilled", at=T(5)), B[1])
    plan = world.step()
    assert cond_of(world, c.COND_FAILED) == (
        "True",
        "FailJobSetFailurePolicyAction",
        f"applying FailJobSet failure policy action (first failed job: {B[1]})",
    )
    assert plan.outcome is not None
    assert (plan.outcome.rule, plan.outcome.job) == ("failB", B[1])


def test_restart_job_restarts_the_earliest_failing_job_that_matches_the_rule() -> None:
    # The Job a RestartJob rule restarts is the earliest failure *it matches*: not a-0 (failed first, for a reason
    # the rule does not list), not b-0 (first in snapshot order, failed after b-1).
    rules = [rule("RestartJob", "perJob", onJobFailureReasons=["PodFailurePolicy"])]
    world = started(base({"maxRestarts": 3, "rules": rules}), GATE_ON)
    world.set_status(failed_status("BackoffLimitExceeded", at=T(1)), A)
    world.set_status(failed_status("PodFailurePolicy", at=T(9)), B[0])
    world.set_status(failed_status("PodFailurePolicy", at=T(5)), B[1])
    plan = world.step()
    st = world.js.status
    assert (st.restarts, st.restarts_count_towards_max) == (0, 0)
    b = next(s for s in st.replicated_jobs_status if s.name == "replicated-job-b")
    assert b.job_restarts == (0, 1, 0)
    assert not _rjob_a(world).job_restarts
    assert [(e.reason, e.message) for e in plan.events] == [
        ("RestartJobFailurePolicyAction", f"applying RestartJob failure policy action (first failed job: {B[1]})")
    ]
    plan = world.step()
    assert plan.delete_jobs == (B[1],)


def test_restart_job_with_gate_off_is_a_decision_error() -> None:
    world = started(base({"maxRestarts": 3, "rules": [rule("RestartJob")]}))
    world.set_status(failed_status(), A)
    plan = world.step()
    assert plan.error is not None
    assert "RestartJob" in plan.error
    assert plan.status is None
    assert plan.events == ()


def test_c28_restart_and_ignore_max_restarts_three_times() -> None:
    policy = {
        "maxRestarts": 1,
        "rules": [
            rule("RestartJobSetAndIgnoreMaxRestarts", "r0", onJobFailureReasons=["PodFailurePolicy"]),
            rule("FailJobSet", "r1"),
        ],
    }
    world = started(base(policy))
    for expected in (1, 2, 3):
        world.set_status(failed_status("PodFailurePolicy"), A)
        plan = world.step()
        assert [e.reason for e in plan.events][-1] == "RestartJobSetAndIgnoreMaxRestartsFailurePolicyAction"
        st = world.js.status
        assert (st.terminal_state, st.restarts, st.restarts_count_towards_max) == ("", expected, 0)
        assert _rjob_a(world).job_restarts is None
        world.step()
        world.gc()
        world.step()
        assert len(world.jobs) == 4


def test_failure_beats_success_in_same_pass() -> None:
    world = started(
        JobSetBuilder("test-js")
        .rjob("replicated-job-a", 1)
        .rjob("replicated-job-b", 3)
        .set("spec.successPolicy", {"operator": "Any"})
        .record()
    )
    from tests.builders import complete_status

    world.set_status(complete_status(), B[0])
    world.set_status(failed_status(), A)
    world.step()
    assert world.js.status.terminal_state == "Failed"


def test_finished_jobset_deletes_active_jobs_only() -> None:
    world = started(base())
    world.set_status(failed_status(), A)
    world.step()
    plan = world.step()
    assert sorted(plan.delete_jobs) == sorted(B)
    assert plan.create_jobs == ()
    assert world.step().delete_jobs == ()


def test_now_is_only_used_for_times() -> None:
    world = started(base())
    world.set_status(failed_status(), A)
    world.step(dt.datetime(2030, 2, 3, 4, 5, 6, tzinfo=dt.UTC))
    (failed,) = [x for x in world.js.status.conditions if x.type == c.COND_FAILED]
    assert failed.last_transition_time == "2030-02-03T04:05:06Z"
