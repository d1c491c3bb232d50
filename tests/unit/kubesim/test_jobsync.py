"""Unit tests of the simulated Job controller's pure decision (``kubesim.cluster.jobsync``)."""

from __future__ import annotations

from typing import Any

import pytest

from kubesim.cluster.jobsync import BackoffSettings, JobMemory, JobPlan, sync_job
from kubesim.cluster.jobutil import (
    COMPLETION_INDEX_KEY,
    INDEX_FAILURE_COUNT_KEY,
    TRACKING_FINALIZER,
    build_pod,
    default_job,
    format_indexes,
    parse_indexes,
)
from kubesim.util.timefmt import rfc3339

NOW = 1_800_000_000.0
JSON = dict[str, Any]


def job(name: str = "j", **spec: Any) -> JSON:
    base: JSON = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": "ns", "uid": f"uid-{name}"},
        "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "main"}]}}, **spec},
    }
    return default_job(base)


def pod(
    j: JSON,
    index: int | None = None,
    phase: str = "Running",
    *,
    n: int = 0,
    exit_code: int | None = None,
    ready: bool = False,
    conditions: list[JSON] | None = None,
    deleting: bool = False,
    finalizer: bool = True,
    failure_count: int | None = None,
) -> JSON:
    p = build_pod(j, index, f"p{n:04d}", failure_counts=None if failure_count is None else (failure_count, 0))
    p["metadata"]["uid"] = f"{p['metadata']['name']}-uid"
    p["metadata"]["creationTimestamp"] = rfc3339(NOW - 100)
    if not finalizer:
        p["metadata"]["finalizers"] = []
    if deleting:
        p["metadata"]["deletionTimestamp"] = rfc3339(NOW - 1)
    p["spec"]["nodeName"] = "n1"
    st: JSON = {"phase": phase, "conditions": list(conditions or [])}
    if ready:
        st["conditions"].append({"type": "Ready", "status": "True"})
    if exit_code is not None:
        st["containerStatuses"] = [
            {
                "name": "main",
                "state": {"terminated": {"exitCode": exit_code, "finishedAt": rfc3339(NOW - 5)}},
            }
        ]
    p["status"] = st
    return p


def run(j: JSON, pods: list[JSON], mem: JobMemory | None = None, now: float = NOW) -> JobPlan:
    return sync_job(j, pods, now, mem or JobMemory(), BackoffSettings())


def conds(plan: JobPlan) -> dict[str, tuple[str, str, str]]:
    assert plan.status is not None
    return {c["type"]: (c["status"], c["reason"], c["message"]) for c in plan.status.get("conditions", [])}


def test_new_indexed_job_creates_one_pod_per_index_up_to_parallelism() -> None:
    j = job(completionMode="Indexed", completions=4, parallelism=3)
    plan = run(j, [])
    assert [c.index for c in plan.creates] == [0, 1, 2]
    assert plan.status is not None
    assert plan.status["active"] == 3
    assert plan.status["startTime"] == rfc3339(NOW)
    assert plan.status["completedIndexes"] == ""


def test_indexed_pod_shape() -> None:
    j = job(completionMode="Indexed", completions=2, parallelism=2)
    j["spec"]["template"]["spec"]["subdomain"] = "svc"
    p = build_pod(j, 1, "abcde")
    assert p["metadata"]["name"] == "j-1-abcde"
    assert p["spec"]["hostname"] == "j-1"
    assert p["spec"]["subdomain"] == "svc"
    assert p["metadata"]["annotations"][COMPLETION_INDEX_KEY] == "1"
    assert p["metadata"]["labels"][COMPLETION_INDEX_KEY] == "1"
    assert TRACKING_FINALIZER in p["metadata"]["finalizers"]
    owner = p["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["uid"], owner["controller"]) == ("Job", "uid-j", True)
    env = p["spec"]["containers"][0]["env"]
    assert env[-1]["name"] == "JOB_COMPLETION_INDEX"


def test_missing_index_is_recreated_and_succeeded_are_counted() -> None:
    j = job(completionMode="Indexed", completions=3, parallelism=3)
    pods = [pod(j, 0, "Succeeded", n=0, exit_code=0), pod(j, 2, "Running", n=2, ready=True)]
    plan = run(j, pods)
    assert [c.index for c in plan.creates] == [1]
    assert plan.status is not None
    assert plan.status["completedIndexes"] == "0"
    assert plan.status["succeeded"] == 1
    assert plan.status["ready"] == 1
    assert plan.remove_finalizers == [("j-0-p0000", "j-0-p0000-uid")]


def test_all_indexes_succeeded_gives_success_criteria_then_complete() -> None:
    j = job(completionMode="Indexed", completions=2, parallelism=2)
    pods = [pod(j, i, "Succeeded", n=i, exit_code=0) for i in range(2)]
    plan = run(j, pods)
    c = conds(plan)
    assert c["SuccessCriteriaMet"] == ("True", "CompletionsReached", "Reached expected number of succeeded pods")
    assert c["Complete"] == ("True", "CompletionsReached", "Reached expected number of succeeded pods")
    assert plan.status is not None
    assert plan.status["completionTime"] == rfc3339(NOW)
    assert ("Normal", "Completed", "Job completed") in plan.events


def test_backoff_limit_exceeded_fails_via_failure_target() -> None:
    j = job(completions=1, parallelism=1, backoffLimit=0)
    plan = run(j, [pod(j, None, "Failed", exit_code=1)])
    c = conds(plan)
    assert c["FailureTarget"] == ("True", "BackoffLimitExceeded", "Job has reached the specified backoff limit")
    assert c["Failed"] == ("True", "BackoffLimitExceeded", "Job has reached the specified backoff limit")
    assert plan.status is not None
    assert plan.status["failed"] == 1
    assert "completionTime" not in plan.status


def test_failed_condition_waits_for_terminating_pods() -> None:
    j = job(completions=2, parallelism=2, backoffLimit=0)
    plan = run(j, [pod(j, None, "Failed", n=0, exit_code=1), pod(j, None, "Running", n=1)])
    c = conds(plan)
    assert "Failed" not in c
    assert c["FailureTarget"][1] == "BackoffLimitExceeded"
    assert [d.name for d in plan.deletes] == ["j-p0001"]
    assert plan.status is not None
    assert plan.status["terminating"] == 1
    assert plan.status["failed"] == 2  # the killed pod counts as failed, as the real controller does
    # next sync: the FailureTarget turns into Failed once nothing is terminating
    j2 = dict(j, status=plan.status)
    plan2 = run(j2, [])
    assert conds(plan2)["Failed"] == ("True", "BackoffLimitExceeded", "Job has reached the specified backoff limit")


def test_pod_failure_policy_fail_job_message() -> None:
    rules = [{"action": "FailJob", "onExitCodes": {"containerName": "main", "operator": "In", "values": [42]}}]
    j = job(completions=1, parallelism=1, backoffLimit=6, podFailurePolicy={"rules": rules})
    plan = run(j, [pod(j, None, "Failed", exit_code=42)])
    assert conds(plan)["Failed"] == (
        "True",
        "PodFailurePolicy",
        "Container main for pod ns/j-p0000 failed with exit code 42 matching FailJob rule at index 0",
    )


def test_pod_failure_policy_ignore_disruption_does_not_count() -> None:
    rules = [{"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]}]
    j = job(completions=1, parallelism=1, backoffLimit=0, podFailurePolicy={"rules": rules})
    disrupted = pod(j, None, "Failed", exit_code=137, conditions=[{"type": "DisruptionTarget", "status": "True"}])
    plan = run(j, [disrupted])
    assert plan.status is not None
    assert plan.status.get("failed", 0) == 0
    assert "Failed" not in {c["type"] for c in plan.status.get("conditions", [])}
    assert plan.creates == []  # like the real controller, an ignored failure still backs off creation
    assert plan.requeue_after == pytest.approx(5)


def test_deadline_exceeded_and_requeue_before_it() -> None:
    j = job(completions=1, parallelism=1, activeDeadlineSeconds=30)
    j["status"] = {"startTime": rfc3339(NOW - 10), "active": 1}
    live = [pod(j, None, "Running")]
    plan = run(j, live)
    assert plan.requeue_after == pytest.approx(20)
    plan = run(j, live, now=NOW + 25)
    assert conds(plan)["FailureTarget"] == ("True", "DeadlineExceeded", "Job was active longer than specified deadline")
    assert [d.name for d in plan.deletes] == ["j-p0000"]


def test_suspend_deletes_pods_without_counting_and_sets_condition() -> None:
    j = job(completionMode="Indexed", completions=2, parallelism=2, suspend=True)
    j["status"] = {"startTime": rfc3339(NOW - 10), "active": 2}
    plan = run(j, [pod(j, 0, n=0), pod(j, 1, n=1)])
    assert sorted(d.name for d in plan.deletes) == ["j-0-p0000", "j-1-p0001"]
    assert all(d.strip_finalizer for d in plan.deletes)
    assert conds(plan)["Suspended"] == ("True", "JobSuspended", "Job suspended")
    assert plan.status is not None
    assert plan.status.get("failed", 0) == 0
    assert plan.status.get("active", 0) == 0
    assert ("Normal", "Suspended", "Job suspended") in plan.events


def test_created_suspended_has_no_start_time_and_resume_sets_it() -> None:
    j = job(completions=1, parallelism=1, suspend=True)
    plan = run(j, [])
    assert plan.status is not None
    assert "startTime" not in plan.status
    assert plan.creates == []
    j["status"] = plan.status
    j["spec"]["suspend"] = False
    plan = run(j, [], now=NOW + 50)
    assert conds(plan)["Suspended"] == ("False", "JobResumed", "Job resumed")
    assert plan.status is not None
    assert plan.status["startTime"] == rfc3339(NOW + 50)
    assert len(plan.creates) == 1


def test_backoff_delays_replacement_after_failure() -> None:
    j = job(completions=1, parallelism=1, backoffLimit=5)
    mem = JobMemory()
    plan = run(j, [pod(j, None, "Failed", exit_code=1)], mem)
    assert plan.creates == []
    assert plan.requeue_after == pytest.approx(5)  # 10 s backoff, failure finished 5 s ago
    assert plan.status is not None
    assert plan.status["failed"] == 1


def test_backoff_limit_per_index_marks_failed_index_and_continues() -> None:
    j = job(completionMode="Indexed", completions=3, parallelism=3, backoffLimitPerIndex=1)
    pods = [
        pod(j, 0, "Failed", n=0, exit_code=1, failure_count=1),
        pod(j, 1, "Failed", n=1, exit_code=1, failure_count=0),
        pod(j, 2, "Running", n=2),
    ]
    plan = run(j, pods)
    assert plan.status is not None
    assert plan.status["failedIndexes"] == "0"
    assert "Failed" not in conds(plan)
    assert plan.creates == []  # index 1 waits out its backoff
    later = run(j, pods, now=NOW + 10)
    assert [(c.index, c.failure_counts) for c in later.creates] == [(1, (1, 0))]


def test_failed_indexes_reason_when_all_indexes_done() -> None:
    j = job(completionMode="Indexed", completions=2, parallelism=2, backoffLimitPerIndex=0)
    pods = [pod(j, 0, "Failed", n=0, exit_code=1, failure_count=0), pod(j, 1, "Succeeded", n=1, exit_code=0)]
    assert conds(run(j, pods))["Failed"] == ("True", "FailedIndexes", "Job has failed indexes")


def test_max_failed_indexes_exceeded() -> None:
    j = job(completionMode="Indexed", completions=4, parallelism=4, backoffLimitPerIndex=0, maxFailedIndexes=0)
    pods = [pod(j, 0, "Failed", n=0, exit_code=1, failure_count=0)] + [pod(j, i, n=i) for i in (1, 2, 3)]
    c = conds(run(j, pods))
    assert c["FailureTarget"] == (
        "True",
        "MaxFailedIndexesExceeded",
        "Job has exceeded the specified maximal number of failed indexes",
    )


def test_fail_index_action_fails_index_immediately() -> None:
    rules = [{"action": "FailIndex", "onExitCodes": {"operator": "In", "values": [3]}}]
    j = job(
        completionMode="Indexed",
        completions=2,
        parallelism=2,
        backoffLimitPerIndex=5,
        podFailurePolicy={"rules": rules},
    )
    pods = [pod(j, 0, "Failed", n=0, exit_code=3, failure_count=0), pod(j, 1, n=1)]
    plan = run(j, pods)
    assert plan.status is not None
    assert plan.status["failedIndexes"] == "0"
    assert plan.creates == []


def test_success_policy() -> None:
    policy = {"rules": [{"succeededIndexes": "0", "succeededCount": 1}]}
    j = job(completionMode="Indexed", completions=3, parallelism=3, successPolicy=policy)
    pods = [pod(j, 0, "Succeeded", n=0, exit_code=0), pod(j, 1, n=1), pod(j, 2, n=2)]
    plan = run(j, pods)
    c = conds(plan)
    assert c["SuccessCriteriaMet"] == ("True", "SuccessPolicy", "Matched rules at index 0")
    assert "Complete" not in c
    assert sorted(d.name for d in plan.deletes) == ["j-1-p0001", "j-2-p0002"]


def test_pod_replacement_policy_failed_waits_for_terminating_pod() -> None:
    j = job(completionMode="Indexed", completions=1, parallelism=1, podReplacementPolicy="Failed")
    plan = run(j, [pod(j, 0, "Running", deleting=True)])
    assert plan.creates == []
    assert plan.status is not None
    assert plan.status["terminating"] == 1
    j2 = job(completionMode="Indexed", completions=1, parallelism=1)
    plan2 = run(j2, [pod(j2, 0, "Running", deleting=True)], now=NOW + 10)
    assert [c.index for c in plan2.creates] == [0]


def test_counted_pods_are_not_counted_twice() -> None:
    j = job(completions=3, parallelism=1)
    done = pod(j, None, "Succeeded", exit_code=0)
    plan = run(j, [done])
    assert plan.status is not None
    assert plan.status["succeeded"] == 1
    j["status"] = plan.status
    mem = JobMemory(counted={done["metadata"]["uid"]})
    plan2 = run(j, [done], mem)
    assert plan2.status is None or plan2.status["succeeded"] == 1


def test_finished_job_only_releases_finalizers() -> None:
    j = job(completions=1, parallelism=1)
    j["status"] = {"conditions": [{"type": "Complete", "status": "True"}]}
    plan = run(j, [pod(j, None, "Succeeded", exit_code=0)])
    assert plan.status is None
    assert plan.creates == []
    assert len(plan.remove_finalizers) == 1


def test_on_failure_restarts_count_toward_backoff_limit() -> None:
    j = job(completions=1, parallelism=1, backoffLimit=2)
    j["spec"]["template"]["spec"]["restartPolicy"] = "OnFailure"
    p = pod(j, None, "Running")
    p["status"]["containerStatuses"] = [{"name": "main", "restartCount": 2, "state": {"running": {}}}]
    assert conds(run(j, [p]))["FailureTarget"][1] == "BackoffLimitExceeded"


def test_non_indexed_scale_down_deletes_extra_pods() -> None:
    j = job(completions=5, parallelism=1)
    plan = run(j, [pod(j, None, n=0, ready=True), pod(j, None, n=1)])
    assert [d.name for d in plan.deletes] == ["j-p0001"]  # the not-ready one goes first


@pytest.mark.parametrize(
    ("text", "completions", "expected"),
    [("", 5, set()), ("0-2,4", 5, {0, 1, 2, 4}), ("3-9", 5, {3, 4}), ("x,1", 5, {1})],
)
def test_parse_indexes(text: str, completions: int, expected: set[int]) -> None:
    assert parse_indexes(text, completions) == expected


def test_format_indexes() -> None:
    assert format_indexes([4, 0, 1, 2, 7]) == "0-2,4,7"
    assert format_indexes([0, 1, 5, 6, 7, 9, 10]) == "0,1,5-7,9,10"
    assert format_indexes([]) == ""


def test_default_job_sets_selector_and_template_labels() -> None:
    j = job()
    assert j["spec"]["selector"] == {"matchLabels": {"batch.kubernetes.io/controller-uid": "uid-j"}}
    assert j["spec"]["template"]["metadata"]["labels"]["job-name"] == "j"
    assert j["spec"]["backoffLimit"] == 6
    assert j["spec"]["completions"] == 1
    assert INDEX_FAILURE_COUNT_KEY  # imported for the per-index tests


def test_work_queue_job_completes_when_one_succeeded_and_none_active() -> None:
    j = job(parallelism=2)
    j["spec"].pop("completions", None)
    running = pod(j, None, "Running", n=1)
    plan = run(j, [pod(j, None, "Succeeded", n=0, exit_code=0), running])
    assert plan.creates == []  # after a success no new pods are started
    assert "Complete" not in conds(plan)
    j["status"] = plan.status
    done = dict(running, status={"phase": "Succeeded"})
    plan2 = run(j, [done], JobMemory(counted={"j-p0000-uid"}))
    assert conds(plan2)["Complete"][1] == "CompletionsReached"


def test_success_policy_count_only() -> None:
    j = job(completionMode="Indexed", completions=4, parallelism=4, successPolicy={"rules": [{"succeededCount": 2}]})
    pods = [pod(j, 0, "Succeeded", n=0, exit_code=0), pod(j, 3, "Succeeded", n=3, exit_code=0), pod(j, 1, n=1)]
    assert conds(run(j, pods))["SuccessCriteriaMet"] == ("True", "SuccessPolicy", "Matched rules at index 0")


def test_scaled_down_indexed_job_removes_out_of_range_pods() -> None:
    j = job(completionMode="Indexed", completions=2, parallelism=2)
    pods = [pod(j, 0, n=0), pod(j, 1, n=1), pod(j, 2, n=2), pod(j, 3, n=3)]
    plan = run(j, pods)
    assert sorted(d.name for d in plan.deletes) == ["j-2-p0002", "j-3-p0003"]
    assert plan.creates == []


def test_duplicate_index_pods_are_deduplicated() -> None:
    j = job(completionMode="Indexed", completions=2, parallelism=2)
    pods = [pod(j, 0, n=0, ready=True), pod(j, 0, n=5), pod(j, 1, n=1)]
    plan = run(j, pods)
    assert [d.name for d in plan.deletes] == ["j-0-p0005"]


def test_job_being_deleted_releases_every_finalizer_and_creates_nothing() -> None:
    j = job(completionMode="Indexed", completions=2, parallelism=2)
    j["metadata"]["deletionTimestamp"] = rfc3339(NOW)
    plan = run(j, [pod(j, 0, n=0)])
    assert plan.creates == []
    assert plan.remove_finalizers == [("j-0-p0000", "j-0-p0000-uid")]
