"""Conformance 8.A: failure policy (scenarios 10, 13-16, 21, 22, 24, 25, 28, 30-32) plus rules of behaviour.md §4.5.

Failures are pinned by writing the failed Job's status (reason and message exactly as the Job controller would
write them); scenario 22 lets real pods fail and become ready. A restart is observed on the wire: ``restarts``
bumps, the old Jobs are deleted (foreground) and disappear once garbage-collected, new Jobs carry the next
``restart-attempt``.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

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
    live,
    manual,
    rjob_status,
    set_job_spec,
    simulated,
)

JSON = dict[str, Any]
A0 = "test-js-replicated-job-a-0"
B0 = "test-js-replicated-job-b-0"


def with_policy(policy: JSON | None, **extra: Any) -> JSON:
    b = base_jobset("x")
    if policy is not None:
        b.set("spec.failurePolicy", policy)
    for path, value in extra.items():
        b.set(path.replace("__", "."), value)
    return manual(b.obj())


def restarts(js: JSON) -> tuple[int, int]:
    st = js.get("status") or {}
    return int(st.get("restarts") or 0), int(st.get("restartsCountTowardsMax") or 0)


async def wait_restarts(cluster: Cluster, n: int) -> JSON:
    js: JSON = await cluster.wait_jobset("test-js", lambda js: js if restarts(js)[0] >= n else None)
    assert restarts(js)[0] == n, f"restarts jumped past {n}: {js['status']}"
    return js


async def wait_condition_reason(cluster: Cluster, ctype: str, reason: str) -> JSON:
    def check(js: JSON) -> JSON | None:
        cond = condition(js, ctype)
        return js if cond is not None and cond.get("reason") == reason else None

    result: JSON = await cluster.wait_jobset("test-js", check)
    return result


def assert_condition(js: JSON, ctype: str, status: str, reason: str, message: str) -> None:
    cond = condition(js, ctype)
    assert cond is not None, f"no {ctype} condition: {js['status']}"
    assert (cond["status"], cond["reason"], cond["message"]) == (status, reason, message)


async def test_c10_no_failure_policy_one_failure_fails(cluster: Cluster) -> None:
    await cluster.create(with_policy(None))
    await cluster.wait_job_count(4)
    await cluster.fail(B0)
    js = await cluster.wait_terminal("test-js", "Failed")
    assert_condition(
        js,
        c.COND_FAILED,
        "True",
        "FailedJobs",
        f"jobset failed due to one or more job failures (first failed job: {B0})",
    )
    assert restarts(js) == (0, 0)
    assert counts(js, RJOB_B)["failed"] == 1
    ev = await cluster.wait_event("test-js", "FailedJobs")
    assert ev["type"] == "Warning"


async def test_c10b_first_failed_job_is_the_earliest(cluster: Cluster) -> None:
    await cluster.create(with_policy(None))
    await cluster.wait_job_count(4)
    # Written in the other order, with b-1 failing earlier than a-0 by its condition's transition time.
    await cluster.fail("test-js-replicated-job-b-1", at="2026-01-01T00:00:05Z")
    await cluster.fail(A0, at="2026-01-01T00:00:09Z")
    js = await cluster.wait_terminal("test-js", "Failed")
    cond = condition(js, c.COND_FAILED)
    assert cond is not None
    assert cond["message"].endswith("(first failed job: test-js-replicated-job-b-1)")


async def test_c13_fails_from_first_run_without_restarts(cluster: Cluster) -> None:
    await cluster.create(with_policy({"maxRestarts": 0}))
    await cluster.wait_job_count(4)
    assert [s["metadata"]["name"] for s in await cluster.wait_services(1)] == ["test-js"]
    await cluster.fail(A0)
    js = await cluster.wait_terminal("test-js", "Failed")
    assert_condition(
        js,
        c.COND_FAILED,
        "True",
        "ReachedMaxRestarts",
        f"jobset failed due to reaching max number of restarts (first failed job: {A0})",
    )
    assert restarts(js) == (0, 0)


async def test_c14_max_restarts_then_failed(cluster: Cluster) -> None:
    await cluster.create(with_policy({"maxRestarts": 1}))
    first = await cluster.wait_job_count(4)
    uids = {j["metadata"]["uid"] for j in first}
    await cluster.fail(B0)
    js = await wait_restarts(cluster, 1)
    assert is_active(js)
    assert restarts(js) == (1, 1)
    assert_condition(
        js,
        c.COND_RESTARTING,
        "True",
        "DefaultFailurePolicy",
        f"applying RestartJobSet failure policy action (first failed job: {B0})",
    )
    # Old Jobs are deleted in the foreground and recreated, each with restart-attempt 1.
    second = await cluster.wait_job_count(4, attempt=1)
    assert not uids & {j["metadata"]["uid"] for j in second}
    for job in second:
        assert job["spec"]["template"]["metadata"]["labels"][c.RESTART_ATTEMPT_KEY] == "1"
    ev = await cluster.wait_event("test-js", "RestartJobSetFailurePolicyAction")
    assert ev["type"] == "Warning"
    assert ev["note"] == f"applying RestartJobSet failure policy action (first failed job: {B0})"
    await cluster.fail(A0)
    js = await cluster.wait_terminal("test-js", "Failed")
    assert_condition(
        js,
        c.COND_FAILED,
        "True",
        "ReachedMaxRestarts",
        f"jobset failed due to reaching max number of restarts (first failed job: {A0})",
    )
    assert_condition(js, c.COND_RESTARTING, "False", "JobSetFailed", "jobset failed")
    assert restarts(js) == (1, 1)


async def test_c15_rule_fail_jobset_any_reason(cluster: Cluster) -> None:
    policy = {"maxRestarts": 3, "rules": [{"name": "failAll", "action": "FailJobSet"}]}
    await cluster.create(with_policy(policy))
    await cluster.wait_job_count(4)
    await cluster.fail(A0, "PodFailurePolicy", "Container main for pod x failed with exit code 3 matching FailJob rule")
    js = await cluster.wait_terminal("test-js", "Failed")
    assert_condition(
        js,
        c.COND_FAILED,
        "True",
        "FailJobSetFailurePolicyAction",
        f"applying FailJobSet failure policy action (first failed job: {A0})",
    )
    assert restarts(js) == (0, 0)


async def test_c16_rule_reason_mismatch_falls_back_to_restart(cluster: Cluster) -> None:
    rules = [{"name": "onBackoff", "action": "FailJobSet", "onJobFailureReasons": ["BackoffLimitExceeded"]}]
    await cluster.create(with_policy({"maxRestarts": 1, "rules": rules}))
    await cluster.wait_job_count(4)
    await cluster.fail(A0, "PodFailurePolicy")
    js = await wait_restarts(cluster, 1)
    assert is_active(js)
    assert restarts(js) == (1, 1)
    cond = condition(js, c.COND_RESTARTING)
    assert cond is not None
    assert (cond["status"], cond["reason"]) == ("True", "DefaultFailurePolicy")


@pytest.mark.gates(RestartJob=False)
async def test_c21_restart_jobset_rule_with_gate_off(cluster: Cluster) -> None:
    rules = [
        {"name": "restartOnPFP", "action": "RestartJobSet", "onJobFailureReasons": ["PodFailurePolicy"]},
        {"name": "failOtherwise", "action": "FailJobSet"},
    ]
    await cluster.create(with_policy({"maxRestarts": 1, "rules": rules}))
    await cluster.wait_job_count(4)
    await cluster.fail(A0, "PodFailurePolicy")
    js = await wait_restarts(cluster, 1)
    assert is_active(js)
    assert restarts(js) == (1, 1)
    st = rjob_status(js, RJOB_A)
    assert st is not None
    assert st.get("jobRestarts") is None
    assert st.get("jobRestartsCountTowardsMax") is None
    cond = condition(js, c.COND_RESTARTING)
    assert cond is not None
    assert cond["reason"] == "FailurePolicy_restartOnPFP"
    jobs = await cluster.wait_job_count(4, attempt=1)
    for job in jobs:
        assert c.JOB_RESTART_ATTEMPT_KEY not in job["metadata"]["labels"]


async def test_c22_restarting_condition_then_jobs_ready(cluster: Cluster) -> None:
    obj = base_jobset(cluster.ns, b_replicas=1)
    obj.set("spec.failurePolicy", {"maxRestarts": 2, "rules": [{"name": "Rule1", "action": "RestartJobSet"}]})
    spec = simulated(obj.obj())
    for rj in (RJOB_A, RJOB_B):
        spec = set_job_spec(spec, rj, backoffLimit=0)
    await cluster.create(spec)
    # Both pods become ready, then a-0's pod fails: the Job fails with BackoffLimitExceeded.
    await cluster.wait_observed("test-js", RJOB_B, expected(ready=1, active=1))
    await cluster.exit_now(A0, 1)
    js = await wait_condition_reason(cluster, c.COND_RESTARTING, "FailurePolicy_Rule1")
    assert_condition(
        js,
        c.COND_RESTARTING,
        "True",
        "FailurePolicy_Rule1",
        f"applying RestartJobSet failure policy action (first failed job: {A0})",
    )
    assert restarts(js) == (1, 1)
    await cluster.wait_job_count(2, attempt=1)
    js = await wait_condition_reason(cluster, c.COND_RESTARTING, "JobsReady")
    assert_condition(js, c.COND_RESTARTING, "False", "JobsReady", "all jobs are ready")
    assert is_active(js)
    assert counts(js, RJOB_A) == expected(ready=1, active=1)


@pytest.mark.gates(RestartJob=True)
async def test_c24_restart_job_rule_with_gate_on(cluster: Cluster) -> None:
    rules = [{"name": "restartJob", "action": "RestartJob", "onJobFailureReasons": ["PodFailurePolicy"]}]
    await cluster.create(with_policy({"maxRestarts": 2, "rules": rules}))
    jobs = await cluster.wait_job_count(4)
    for job in jobs:
        assert job["metadata"]["labels"][c.JOB_RESTART_ATTEMPT_KEY] == "0"
    await cluster.fail(A0, "PodFailurePolicy")
    js = await cluster.wait_jobset(
        "test-js", lambda js: js if (rjob_status(js, RJOB_A) or {}).get("jobRestarts") else None
    )
    st = rjob_status(js, RJOB_A)
    assert st is not None
    assert st["jobRestarts"] == [1]
    assert st["jobRestartsCountTowardsMax"] == [1]
    assert restarts(js) == (0, 0)
    assert condition(js, c.COND_RESTARTING) is None
    # Only a-0 is recreated, with job-restart-attempt 1; restart-attempt stays 0.
    await cluster.wait_jobs(
        lambda jobs: any(
            j["metadata"]["name"] == A0
            and not j["metadata"].get("deletionTimestamp")
            and j["metadata"]["labels"].get(c.JOB_RESTART_ATTEMPT_KEY) == "1"
            for j in jobs
        )
    )
    for job in await cluster.jobs("test-js"):
        assert job["metadata"]["labels"][c.RESTART_ATTEMPT_KEY] == "0"
        if job["metadata"]["name"] != A0:
            assert job["metadata"]["labels"][c.JOB_RESTART_ATTEMPT_KEY] == "0"
    ev = await cluster.wait_event("test-js", "RestartJobFailurePolicyAction")
    assert ev["note"] == f"applying RestartJob failure policy action (first failed job: {A0})"


@pytest.mark.gates(RestartJob=True)
async def test_c25_restart_job_ignore_max_with_gate_on(cluster: Cluster) -> None:
    rules = [{"name": "restartJob", "action": "RestartJobAndIgnoreMaxRestarts"}]
    await cluster.create(with_policy({"maxRestarts": 0, "rules": rules}))
    await cluster.wait_job_count(4)
    await cluster.fail(A0, "PodFailurePolicy")
    js = await cluster.wait_jobset(
        "test-js", lambda js: js if (rjob_status(js, RJOB_A) or {}).get("jobRestarts") else None
    )
    st = rjob_status(js, RJOB_A)
    assert st is not None
    assert st["jobRestarts"] == [1]
    assert not st.get("jobRestartsCountTowardsMax")
    assert restarts(js) == (0, 0)
    assert is_active(js)


@pytest.mark.gates(RestartJob=False)
async def test_c28_restart_jobset_ignoring_max_three_times(cluster: Cluster) -> None:
    rules = [
        {
            "name": "ignoreMax",
            "action": "RestartJobSetAndIgnoreMaxRestarts",
            "onJobFailureReasons": ["PodFailurePolicy"],
        },
        {"name": "failOtherwise", "action": "FailJobSet"},
    ]
    await cluster.create(with_policy({"maxRestarts": 1, "rules": rules}))
    for attempt in range(3):
        await cluster.wait_job_count(4, attempt=attempt)
        await cluster.fail(A0, "PodFailurePolicy")
        js = await wait_restarts(cluster, attempt + 1)
        assert is_active(js)
        assert restarts(js) == (attempt + 1, 0)
        st = rjob_status(js, RJOB_A)
        assert st is not None
        assert st.get("jobRestarts") is None
        assert st.get("jobRestartsCountTowardsMax") is None
    cond = condition(js, c.COND_RESTARTING)
    assert cond is not None
    assert (
        cond["message"] == f"applying RestartJobSetAndIgnoreMaxRestarts failure policy action (first failed job: {A0})"
    )
    await cluster.wait_event("test-js", "RestartJobSetAndIgnoreMaxRestartsFailurePolicyAction")


async def test_c30_fail_jobset_on_failed_indexes_targeting_b(cluster: Cluster) -> None:
    rules = [
        {
            "name": "failedIndexes",
            "action": "FailJobSet",
            "onJobFailureReasons": ["FailedIndexes"],
            "targetReplicatedJobs": [RJOB_B],
        }
    ]
    await cluster.create(with_policy({"maxRestarts": 1, "rules": rules}))
    await cluster.wait_job_count(4)
    await cluster.fail("test-js-replicated-job-b-1", "FailedIndexes", "Job has failed indexes")
    js = await cluster.wait_terminal("test-js", "Failed")
    cond = condition(js, c.COND_FAILED)
    assert cond is not None
    assert cond["reason"] == "FailJobSetFailurePolicyAction"
    assert restarts(js) == (0, 0)


async def test_c31_rule_target_mismatch_falls_back_to_restart(cluster: Cluster) -> None:
    rules = [
        {
            "name": "onlyA",
            "action": "FailJobSet",
            "onJobFailureReasons": ["BackoffLimitExceeded"],
            "targetReplicatedJobs": [RJOB_A],
        }
    ]
    await cluster.create(with_policy({"maxRestarts": 1, "rules": rules}))
    await cluster.wait_job_count(4)
    await cluster.fail(B0, "BackoffLimitExceeded", "Job has reached the specified backoff limit")
    js = await wait_restarts(cluster, 1)
    assert restarts(js) == (1, 1)
    assert is_active(js)


async def test_c32_first_matching_rule_wins(cluster: Cluster) -> None:
    on = {"onJobFailureReasons": ["MaxFailedIndexesExceeded"], "targetReplicatedJobs": [RJOB_A]}
    rules = [{"name": "fail", "action": "FailJobSet", **on}, {"name": "restart", "action": "RestartJobSet", **on}]
    await cluster.create(with_policy({"maxRestarts": 1, "rules": rules}))
    await cluster.wait_job_count(4)
    await cluster.fail(
        A0, "MaxFailedIndexesExceeded", "Job has exceeded the specified maximal number of failed indexes"
    )
    js = await cluster.wait_terminal("test-js", "Failed")
    cond = condition(js, c.COND_FAILED)
    assert cond is not None
    assert cond["reason"] == "FailJobSetFailurePolicyAction"
    assert restarts(js) == (0, 0)


@contextlib.asynccontextmanager
async def reconciles_held(cluster: Cluster, job: str) -> AsyncIterator[None]:
    """Hold back the controller's decisions on ``test-js`` while the body runs.

    A child Job whose ``restart-attempt`` label is not a number makes every reconcile of its JobSet fail
    (behaviour.md §4.3)
    until the label is restored, so failures written meanwhile reach the failure policy together, in one snapshot
    (the informer applies the label change before any later write, as the watch delivers them in order).
    """
    path = f"{cluster.jobs_path}/{job}"
    await cluster.api.patch(path, {"metadata": {"labels": {c.RESTART_ATTEMPT_KEY: "held"}}})
    try:
        yield
    finally:
        await cluster.api.patch(path, {"metadata": {"labels": {c.RESTART_ATTEMPT_KEY: "0"}}})


T1, T5, T9 = (f"2026-01-01T00:00:0{s}Z" for s in (1, 5, 9))
B1, B2 = "test-js-replicated-job-b-1", "test-js-replicated-job-b-2"


async def test_rule_applies_to_the_earliest_failing_job_it_matches(cluster: Cluster) -> None:
    # Spec 4.5: a rule acts on the earliest-failing Job *among those it matches*. a-0 failed first but for a reason
    # the rule does not list; b-0 comes first in name order but failed after b-1. The action must name b-1.
    rules = [{"name": "failOnPFP", "action": "FailJobSet", "onJobFailureReasons": ["PodFailurePolicy"]}]
    await cluster.create(with_policy({"maxRestarts": 1, "rules": rules}))
    await cluster.wait_job_count(4)
    async with reconciles_held(cluster, B2):
        await cluster.fail(A0, "BackoffLimitExceeded", at=T1)
        await cluster.fail(B0, "PodFailurePolicy", at=T9)
        await cluster.fail(B1, "PodFailurePolicy", at=T5)
    js = await cluster.wait_terminal("test-js", "Failed")
    assert_condition(
        js,
        c.COND_FAILED,
        "True",
        "FailJobSetFailurePolicyAction",
        f"applying FailJobSet failure policy action (first failed job: {B1})",
    )
    assert restarts(js) == (0, 0)


@pytest.mark.gates(RestartJob=True)
async def test_restart_job_restarts_the_earliest_failing_job_the_rule_matches(cluster: Cluster) -> None:
    # a-0 fails first for a reason the RestartJob rule does not match, b-1 later for one it does: the rule restarts
    # b-1 alone; only then does a-0's failure, matched by no rule, restart the whole JobSet (default action).
    rules = [{"name": "perJob", "action": "RestartJob", "onJobFailureReasons": ["PodFailurePolicy"]}]
    await cluster.create(with_policy({"maxRestarts": 3, "rules": rules}))
    await cluster.wait_job_count(4)
    async with reconciles_held(cluster, B2):
        await cluster.fail(A0, "BackoffLimitExceeded", at=T1)
        await cluster.fail(B1, "PodFailurePolicy", at=T5)
    js = await wait_restarts(cluster, 1)
    assert_condition(
        js,
        c.COND_RESTARTING,
        "True",
        "DefaultFailurePolicy",
        f"applying RestartJobSet failure policy action (first failed job: {A0})",
    )
    b = rjob_status(js, RJOB_B)
    assert b is not None
    assert (b["jobRestarts"], b["jobRestartsCountTowardsMax"]) == ([0, 1, 0], [0, 1, 0])
    assert not any((rjob_status(js, RJOB_A) or {}).get("jobRestarts") or [0])
    ev = await cluster.wait_event("test-js", "RestartJobFailurePolicyAction")
    assert ev["note"] == f"applying RestartJob failure policy action (first failed job: {B1})"


async def test_message_pattern_rule_searches_the_failure_message(cluster: Cluster) -> None:
    # Spec 4.5: patterns are RE2 searches of the Failed condition's message; an invalid pattern is skipped.
    rules = [
        {"name": "noMatch", "action": "FailJobSet", "onJobFailureMessagePatterns": ["^exit code 7$"]},
        {"name": "broken", "action": "FailJobSet", "onJobFailureMessagePatterns": ["(unclosed"]},
        {"name": "byMessage", "action": "RestartJobSetAndIgnoreMaxRestarts", "onJobFailureMessagePatterns": ["code 4"]},
    ]
    await cluster.create(with_policy({"maxRestarts": 0, "rules": rules}))
    await cluster.wait_job_count(4)
    await cluster.fail(B0, "PodFailurePolicy", "Container main failed with exit code 42 matching FailJob rule")
    js = await wait_restarts(cluster, 1)
    cond = condition(js, c.COND_RESTARTING)
    assert cond is not None
    assert cond["reason"] == "FailurePolicy_byMessage"
    assert restarts(js) == (1, 0)


def attempts(jobs: list[JSON]) -> dict[str, str]:
    """Job name → ``restart-attempt`` label, with ``*`` appended for a Job being deleted."""
    return {
        j["metadata"]["name"]: j["metadata"]["labels"][c.RESTART_ATTEMPT_KEY]
        + ("*" if j["metadata"].get("deletionTimestamp") else "")
        for j in jobs
    }


async def test_recreate_replaces_each_job_once_its_own_predecessor_is_gone(cluster: Cluster) -> None:
    # Spec 4.5 "what a restart looks like": old Jobs are deleted in the foreground; each name is recreated as
    # soon as its own predecessor disappears. One predecessor is held by a finalizer of the test.
    await cluster.create(with_policy({"maxRestarts": 1}))
    await cluster.wait_job_count(4)
    await cluster.hold(B0)
    await cluster.fail(A0)
    await wait_restarts(cluster, 1)
    want = {A0: "1", B0: "0*", "test-js-replicated-job-b-1": "1", "test-js-replicated-job-b-2": "1"}
    await cluster.wait_jobs(lambda jobs: attempts(jobs) == want, jobset="test-js")
    await cluster.stays(
        cluster.jobs_path,
        lambda items: attempts(items) == want,
        params={"labelSelector": f"{c.JOBSET_NAME_KEY}=test-js"},
    )
    await cluster.release(B0)
    jobs = await cluster.wait_job_count(4, attempt=1)
    assert {j["metadata"]["name"] for j in jobs} == set(want)


async def test_blocking_recreate_waits_for_every_predecessor(cluster: Cluster) -> None:
    # Spec 4.4: with BlockingRecreate nothing is recreated while any previous-attempt Job still exists.
    await cluster.create(with_policy({"maxRestarts": 1, "restartStrategy": "BlockingRecreate"}))
    await cluster.wait_job_count(4)
    await cluster.hold(B0)
    await cluster.fail(A0)
    await wait_restarts(cluster, 1)
    await cluster.wait_jobs(lambda jobs: attempts(jobs) == {B0: "0*"}, jobset="test-js")
    await cluster.stays(
        cluster.jobs_path,
        lambda items: attempts(items) == {B0: "0*"},
        params={"labelSelector": f"{c.JOBSET_NAME_KEY}=test-js"},
    )
    await cluster.release(B0)
    await cluster.wait_job_count(4, attempt=1)


async def test_restart_then_completion_clears_restarting(cluster: Cluster) -> None:
    await cluster.create(with_policy({"maxRestarts": 1}))
    await cluster.wait_job_count(4)
    await cluster.fail(B0)
    await wait_restarts(cluster, 1)
    jobs = await cluster.wait_job_count(4, attempt=1)
    await cluster.complete(*jobs)
    js = await cluster.wait_terminal("test-js", "Completed")
    assert_condition(js, c.COND_RESTARTING, "False", "JobSetCompleted", "jobset completed successfully")
    assert restarts(js) == (1, 1)
    assert counts(js, RJOB_B) == expected(succeeded=3)


async def test_suspending_while_restarting_clears_restarting(cluster: Cluster) -> None:
    await cluster.create(with_policy({"maxRestarts": 1}))
    await cluster.wait_job_count(4)
    await cluster.hold(B0)  # keeps the restart from settling, so RestartingJobSet stays True until suspension
    await cluster.fail(A0)
    await wait_condition_reason(cluster, c.COND_RESTARTING, "DefaultFailurePolicy")
    await cluster.set_suspend("test-js", True)
    js = await wait_condition_reason(cluster, c.COND_RESTARTING, "JobSetSuspended")
    assert_condition(js, c.COND_RESTARTING, "False", "JobSetSuspended", "jobset is suspended")
    await cluster.release(B0)


async def test_finished_jobset_deletes_its_active_jobs_and_keeps_finished_ones(cluster: Cluster) -> None:
    # Spec 4.2 step 4 / 4.6: once Completed, remaining active Jobs are deleted; succeeded ones are kept.
    obj = base_jobset(cluster.ns).set("spec.successPolicy", {"operator": "Any", "targetReplicatedJobs": [RJOB_B]})
    await cluster.create(manual(obj.obj()))
    await cluster.wait_job_count(4)
    await cluster.complete(B0)
    await cluster.wait_terminal("test-js", "Completed")
    jobs = await cluster.wait_jobs(lambda jobs: jobs if len(jobs) == 1 else None, jobset="test-js")
    assert jobs[0]["metadata"]["name"] == B0


async def test_failed_jobset_deletes_its_active_jobs_and_keeps_the_failed_one(cluster: Cluster) -> None:
    await cluster.create(with_policy(None))
    await cluster.wait_job_count(4)
    await cluster.fail(B0)
    await cluster.wait_terminal("test-js", "Failed")
    jobs = await cluster.wait_jobs(lambda jobs: jobs if len(jobs) == 1 else None, jobset="test-js")
    assert jobs[0]["metadata"]["name"] == B0


@pytest.mark.gates(RestartJob=True)
async def test_individual_and_global_restarts_share_max_restarts(cluster: Cluster) -> None:
    # Spec 4.5: total = restartsCountTowardsMax + sum(jobRestartsCountTowardsMax); per-job arrays survive a
    # global restart (they are not reset), and the next failure past the limit fails the JobSet.
    rules = [{"name": "restartJob", "action": "RestartJob", "onJobFailureReasons": ["PodFailurePolicy"]}]
    await cluster.create(with_policy({"maxRestarts": 2, "rules": rules}))
    await cluster.wait_job_count(4)
    await cluster.fail(A0, "PodFailurePolicy")
    await cluster.wait_jobset("test-js", lambda js: js if (rjob_status(js, RJOB_A) or {}).get("jobRestarts") else None)
    # a-0 comes back (job-restart-attempt 1); then b-1 fails for another reason: default RestartJobSet.
    await cluster.wait_jobs(
        lambda jobs: (
            len(live(jobs)) == 4
            and all(
                j["metadata"]["labels"].get(c.JOB_RESTART_ATTEMPT_KEY) == ("1" if j["metadata"]["name"] == A0 else "0")
                for j in live(jobs)
            )
        )
    )
    await cluster.fail("test-js-replicated-job-b-1", "BackoffLimitExceeded")
    js = await wait_restarts(cluster, 1)
    assert restarts(js) == (1, 1)
    st = rjob_status(js, RJOB_A)
    assert st is not None
    assert st["jobRestarts"] == [1]
    assert st["jobRestartsCountTowardsMax"] == [1]
    # The new attempt's a-0 keeps job-restart-attempt 1 (the array was not reset).
    jobs = await cluster.wait_job_count(4, attempt=1)
    a0 = next(j for j in jobs if j["metadata"]["name"] == A0)
    assert a0["metadata"]["labels"][c.JOB_RESTART_ATTEMPT_KEY] == "1"
    await cluster.fail(B0, "BackoffLimitExceeded")
    js = await cluster.wait_terminal("test-js", "Failed")
    assert_condition(
        js,
        c.COND_FAILED,
        "True",
        "ReachedMaxRestarts",
        f"jobset failed due to reaching max number of restarts (first failed job: {B0})",
    )
