"""The opt-in extensions through ``decide`` (docs/design/extensions.md): fail-fast, restart backoff and budget,
startup deadline, root-cause requests and recovery times. Pure: every pass gets its ``now``."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from api import constants as c
from api import extensions as x
from api.jobset_types import JobSet
from controller.decide.extensions import rootcause
from tests.builders import DecideWorld, JobSetBuilder, failed_status, job_condition, job_status, ready_status

A = "test-js-replicated-job-a-0"
B = [f"test-js-replicated-job-b-{i}" for i in range(2)]
T = dt.datetime(2026, 1, 1, 0, 1, tzinfo=dt.UTC)


def at(seconds: float) -> dt.datetime:
    return T + dt.timedelta(seconds=seconds)


def base(annotations: dict[str, str] | None = None, policy: dict[str, Any] | None = None) -> JobSet:
    b = JobSetBuilder("test-js").rjob("replicated-job-a", 1).rjob("replicated-job-b", 2)
    for key, value in (annotations or {}).items():
        b.annotate(key, value)
    if policy is not None:
        b.set("spec.failurePolicy", policy)
    return b.record()


def world_of(js: JobSet, **kw: Any) -> DecideWorld:
    world = DecideWorld(js, stamp_creation=True, **kw)
    world.step(T)
    return world


def failure_target(reason: str = "BackoffLimitExceeded") -> dict[str, Any]:
    """A Job bound to fail whose pods are still terminating: FailureTarget, no Failed yet."""
    return job_status(
        active=1,
        ready=0,
        start_time="2026-01-01T00:00:30Z",
        conditions=[
            job_condition("FailureTarget", reason=reason, message="Job has reached the specified backoff limit")
        ],
    )


def condition(world: DecideWorld, ctype: str) -> tuple[str, str, str] | None:
    for cnd in world.js.status.conditions:
        if cnd.type == ctype:
            return cnd.status, cnd.reason, cnd.message
    return None


def restart_all(world: DecideWorld, now: dt.datetime) -> Any:
    """Fail job a-0 of the current attempt and let the restart run to new Jobs (deletion finished at once)."""
    world.set_status(failed_status(at="2026-01-01T00:00:40Z"), A)
    plan = world.step(now)
    world.step(now)  # previous attempt deleted (unless held)
    world.gc()
    world.step(now)  # recreated
    return plan


# --------------------------------------------------------------------------------------------- fail-fast


def test_failure_target_alone_is_not_a_failure_without_fail_fast() -> None:
    world = world_of(base(policy={"maxRestarts": 3}))
    world.set_status(failure_target(), A)
    plan = world.step(at(10))
    assert world.js.status.restarts == 0
    assert plan.root_cause is None


def test_fail_fast_annotation_restarts_on_failure_target() -> None:
    world = world_of(base({x.FAIL_FAST: "true"}, {"maxRestarts": 3}))
    world.set_status(failure_target(), A)
    plan = world.step(at(10))
    assert world.js.status.restarts == 1
    assert condition(world, c.COND_RESTARTING) == (
        "True",
        "DefaultFailurePolicy",
        f"applying RestartJobSet failure policy action (first failed job: {A})",
    )
    assert plan.root_cause is not None
    assert plan.root_cause.reason == "BackoffLimitExceeded"


def test_fail_fast_from_the_cluster_default_and_the_annotation_can_turn_it_off() -> None:
    on = world_of(base(policy={"maxRestarts": 3}), extensions=x.Defaults(fail_fast=True))
    on.set_status(failure_target(), A)
    on.step(at(10))
    assert on.js.status.restarts == 1
    off = world_of(base({x.FAIL_FAST: "false"}, {"maxRestarts": 3}), extensions=x.Defaults(fail_fast=True))
    off.set_status(failure_target(), A)
    off.step(at(10))
    assert off.js.status.restarts == 0


def test_fail_fast_rules_see_the_failure_target_reason() -> None:
    policy = {"rules": [{"name": "fatal", "action": "FailJobSet", "onJobFailureReasons": ["PodFailurePolicy"]}]}
    world = world_of(base({x.FAIL_FAST: "true"}, policy))
    world.set_status(failure_target("PodFailurePolicy"), B[1])
    world.step(at(10))
    assert condition(world, c.COND_FAILED) == (
        "True",
        "FailJobSetFailurePolicyAction",
        f"applying FailJobSet failure policy action (first failed job: {B[1]})",
    )


# --------------------------------------------------------------------------------------------- budget


def test_restart_budget_fails_the_restart_that_would_exceed_it() -> None:
    world = world_of(base({x.RESTART_BUDGET: "2/1h"}, {"maxRestarts": 10}))
    restart_all(world, at(60))
    restart_all(world, at(120))
    assert world.js.status.restarts == 2
    world.set_status(failed_status(at="2026-01-01T00:03:00Z"), A)
    plan = world.step(at(180))
    assert world.js.status.restarts == 2
    assert condition(world, c.COND_FAILED) == (
        "True",
        "RestartBudgetExceeded",
        f"jobset failed due to exceeding its restart budget (pyjobset.io/restart-budget) (first failed job: {A})",
    )
    assert plan.outcome is not None
    assert plan.outcome.reason == "RestartBudgetExceeded"


def test_restart_budget_window_slides() -> None:
    world = world_of(base({x.RESTART_BUDGET: "2/1m"}, {"maxRestarts": 10}))
    restart_all(world, at(0))
    restart_all(world, at(30))
    restart_all(world, at(95))  # the first restart (at 0 s) left the window: 2 restarts in (35 s, 95 s]
    assert world.js.status.restarts == 3
    assert condition(world, c.COND_FAILED) is None


# --------------------------------------------------------------------------------------------- backoff


def test_restart_backoff_holds_the_previous_attempt_then_deletes_it() -> None:
    world = world_of(base({x.RESTART_BACKOFF: "10s,1m"}, {"maxRestarts": 10}))
    restart_all(world, at(0))  # restart 1: immediate
    assert world.js.status.restarts == 1
    assert all(j.metadata.labels[c.RESTART_ATTEMPT_KEY] == "1" for j in world.jobs.values())
    world.set_status(failed_status(at="2026-01-01T00:01:02Z"), A)
    world.step(at(2))  # restart 2 decided 2 s after restart 1: it must wait until 10 s after restart 1
    assert world.js.status.restarts == 2
    held = world.step(at(3))
    assert held.delete_jobs == ()
    assert held.requeue_after == 7.0
    status, _reason, message = condition(world, c.COND_RESTARTING) or ("", "", "")
    assert status == "True"
    assert message.startswith("restart backoff: restart 2 deletes the Jobs of attempt 1 at 2026-01-01T00:01:10Z")
    assert any(e.message == message for e in held.events)
    due = world.step(at(10))
    assert sorted(due.delete_jobs) == sorted([A, *B])


def test_backoff_delay_doubles_up_to_the_max() -> None:
    backoff = x.parse_backoff("10s,35s")
    assert backoff is not None
    assert [backoff.delay(n) for n in range(1, 6)] == [0.0, 10.0, 20.0, 35.0, 35.0]
    assert x.parse_backoff("5s") == x.Backoff(base=5.0, max=600.0)


# --------------------------------------------------------------------------------------------- startup deadline


def test_startup_deadline_fails_the_unready_jobs_through_the_failure_policy() -> None:
    policy = {
        "maxRestarts": 3,
        "rules": [{"name": "gang", "action": "FailJobSet", "onJobFailureReasons": ["StartupDeadlineExceeded"]}],
    }
    world = world_of(base({x.STARTUP_DEADLINE: "5m"}, policy))
    world.set_status(ready_status(), A, B[0])  # b-1 never assembles
    waiting = world.step(at(240))
    assert waiting.requeue_after == 60.0
    assert condition(world, c.COND_FAILED) is None
    plan = world.step(at(300))
    assert condition(world, c.COND_FAILED) == (
        "True",
        "FailJobSetFailurePolicyAction",
        f"applying FailJobSet failure policy action (first failed job: {B[1]})",
    )
    assert plan.root_cause is not None
    assert (plan.root_cause.job, plan.root_cause.reason) == (B[1], "StartupDeadlineExceeded")


def test_startup_deadline_no_longer_applies_once_the_gang_formed() -> None:
    world = world_of(base({x.STARTUP_DEADLINE: "1m"}, {"maxRestarts": 3}))
    world.set_status(ready_status())
    world.step(at(30))
    assert json.loads(world.js.metadata.annotations[x.STATE])["readyAttempt"] == 0
    world.set_status(job_status(active=1, ready=0, start_time="2026-01-01T00:00:00Z"), B[0])  # a pod restarts
    plan = world.step(at(600))
    assert world.js.status.restarts == 0
    assert plan.requeue_after is None


def test_startup_deadline_restarts_by_default_and_starts_again_after_a_restart() -> None:
    world = world_of(base({x.STARTUP_DEADLINE: "1m"}, {"maxRestarts": 3}))
    world.step(at(61))
    assert world.js.status.restarts == 1
    world.step(at(62))
    world.gc()
    world.step(at(63))  # the new attempt's Jobs are created at 63 s: their clock starts then
    assert world.step(at(100)).requeue_after == 23.0  # 63 s + 1 m - 100 s


# --------------------------------------------------------------------------------------------- root cause


def test_root_cause_request_names_the_first_failed_job_and_the_restart_events() -> None:
    world = world_of(base(policy={"maxRestarts": 3}))
    world.set_status(failed_status(at="2026-01-01T00:00:50Z"), B[0])
    world.set_status(failed_status(at="2026-01-01T00:00:40Z"), A)
    plan = world.step(at(60))
    rc = plan.root_cause
    assert rc is not None
    assert (rc.job, rc.restart_attempt, rc.action, rc.rule, rc.restart) == (A, 0, "RestartJobSet", "", True)
    assert rc.time == "2026-01-01T00:00:40Z"
    assert {plan.events[i].reason for i in rc.event_indices} == {
        "DefaultFailurePolicy",
        "RestartJobSetFailurePolicyAction",
    }
    assert json.loads(plan.annotations[x.STATE])["restartTimes"] == ["2026-01-01T00:02:00.000000Z"]


def test_recovered_seconds_is_filled_once_every_new_job_is_ready() -> None:
    world = world_of(base(policy={"maxRestarts": 3}))
    plan = restart_all(world, at(60))
    assert plan.root_cause is not None
    record = rootcause.build_record(plan.root_cause, [])
    world.js = _annotated(world.js, {x.RESTART_HISTORY: rootcause.merge_history(None, record)})
    world.set_status(ready_status())
    done = world.step(at(95))
    history = json.loads(done.annotations[x.RESTART_HISTORY])
    assert history[-1]["recoveredSeconds"] == 35.0
    assert world.step(at(99)).annotations == {}  # known once, never recomputed


def test_recording_off_asks_for_nothing() -> None:
    world = world_of(base(policy={"maxRestarts": 3}), extensions=x.Defaults(record_failures=False))
    world.set_status(failed_status(), A)
    plan = world.step(at(60))
    assert world.js.status.restarts == 1
    assert (plan.root_cause, dict(plan.annotations)) == (None, {})


def test_a_jobset_without_extensions_decides_as_before_when_nothing_fails() -> None:
    world = world_of(base())
    world.set_status(ready_status())
    plan = world.step(at(60))
    assert (plan.root_cause, dict(plan.annotations), plan.requeue_after) == (None, {}, None)


def _annotated(js: JobSet, annotations: dict[str, str]) -> JobSet:
    import msgspec

    meta = msgspec.structs.replace(js.metadata, annotations={**js.metadata.annotations, **annotations})
    return msgspec.structs.replace(js, metadata=meta)


def test_startup_deadline_clock_starts_when_a_suspended_jobset_is_resumed() -> None:
    world = world_of(base({x.STARTUP_DEADLINE: "1m"}, {"maxRestarts": 3}))
    # Jobs created at 00:01:00 but (re)started only at 00:30:00, e.g. admitted by a queue much later.
    world.set_status(job_status(active=1, ready=0, start_time="2026-01-01T00:30:00Z"))
    plan = world.step(dt.datetime(2026, 1, 1, 0, 30, 20, tzinfo=dt.UTC))
    assert world.js.status.restarts == 0
    assert plan.requeue_after == 40.0
