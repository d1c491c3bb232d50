"""Root-cause records from pods (``controller.decide.extensions.rootcause``), history and event messages."""

from __future__ import annotations

import json
from typing import Any

from api.plan import RootCause
from controller.decide.extensions import rootcause

KEYS = ["job", "pod", "container", "exitCode", "reason", "node", "time", "restartAttempt", "action", "rule"]
REQUEST = RootCause(
    job="js-w-0",
    job_uid="u",
    reason="BackoffLimitExceeded",
    message="Job has reached the specified backoff limit",
    time="2026-01-01T00:05:00Z",
    restart_attempt=2,
    action="RestartJobSet",
    rule="",
    restart=True,
)


def pod(name: str, phase: str, node: str = "n1", **status: Any) -> dict[str, Any]:
    return {"metadata": {"name": name}, "spec": {"nodeName": node}, "status": {"phase": phase, **status}}


def terminated(name: str, code: int, at: str, reason: str = "Error") -> dict[str, Any]:
    return {"name": name, "state": {"terminated": {"exitCode": code, "finishedAt": at, "reason": reason}}}


def test_the_first_failed_pod_and_its_failing_container() -> None:
    pods = [
        pod("p-killed", "Failed", containerStatuses=[terminated("main", 137, "2026-01-01T00:04:30Z")]),
        pod(
            "p-first",
            "Failed",
            node="gpu-7",
            containerStatuses=[
                terminated("sidecar", 0, "2026-01-01T00:04:00Z", "Completed"),
                terminated("main", 3, "2026-01-01T00:04:10Z"),
            ],
        ),
        pod("p-running", "Running"),
    ]
    record = rootcause.build_record(REQUEST, pods)
    assert list(record) == KEYS
    assert record == {
        "job": "js-w-0",
        "pod": "p-first",
        "container": "main",
        "exitCode": 3,
        "reason": "Error",
        "node": "gpu-7",
        "time": "2026-01-01T00:04:10Z",
        "restartAttempt": 2,
        "action": "RestartJobSet",
        "rule": None,
    }
    assert rootcause.event_suffix(record) == (
        " (root cause: pod p-first, container main, exit code 3, reason Error, node gpu-7, at 2026-01-01T00:04:10Z)"
    )


def test_a_pod_failed_with_only_a_status_reason() -> None:
    admission = pod(
        "p-adm",
        "Failed",
        node="gpu-2",
        reason="UnexpectedAdmissionError",
        conditions=[{"type": "Ready", "status": "False", "lastTransitionTime": "2026-01-01T00:03:00Z"}],
    )
    record = rootcause.build_record(REQUEST, [admission])
    assert (record["pod"], record["container"], record["exitCode"]) == ("p-adm", None, None)
    assert (record["reason"], record["node"], record["time"]) == (
        "UnexpectedAdmissionError",
        "gpu-2",
        "2026-01-01T00:03:00Z",
    )


def test_without_pods_the_job_failure_is_recorded_and_the_event_is_left_alone() -> None:
    record = rootcause.build_record(REQUEST, [])
    assert (record["pod"], record["reason"], record["time"]) == (None, "BackoffLimitExceeded", "2026-01-01T00:05:00Z")
    assert rootcause.event_suffix(record) == ""


def test_history_keeps_the_last_ten_oldest_first_and_replaces_a_rerecorded_attempt() -> None:
    raw = None
    for attempt in range(12):
        raw = rootcause.merge_history(raw, {**rootcause.build_record(REQUEST, []), "restartAttempt": attempt})
    again = rootcause.merge_history(raw, {**rootcause.build_record(REQUEST, []), "restartAttempt": 11, "job": "x"})
    history = json.loads(again)
    assert [e["restartAttempt"] for e in history] == list(range(2, 12))
    assert history[-1]["job"] == "x"
    assert rootcause.merge_history("not json", {"restartAttempt": 0}) == '[{"restartAttempt":0}]'


def test_recovered_seconds_only_on_the_matching_last_restart_and_only_once() -> None:
    raw = rootcause.merge_history(None, rootcause.build_record(REQUEST, []))
    assert rootcause.with_recovered(raw, 1, 5.0) is None
    filled = rootcause.with_recovered(raw, 2, 12.3456)
    assert filled is not None
    assert json.loads(filled)[-1]["recoveredSeconds"] == 12.346
    assert rootcause.with_recovered(filled, 2, 99.0) is None


def test_pods_failed_with_only_a_reason_and_no_conditions_are_ordered_by_their_start() -> None:
    # No container terminated and no condition time: the pod's start time dates the failure (creation is the
    # fallback), so the pod that started first — not the one created first — is the root cause.
    early = pod("p-b", "Failed", reason="Evicted", startTime="2026-01-01T00:01:00Z")
    early["metadata"]["creationTimestamp"] = "2026-01-01T00:00:30Z"
    late = pod("p-a", "Failed", reason="Evicted", startTime="2026-01-01T00:02:00Z")
    late["metadata"]["creationTimestamp"] = "2026-01-01T00:00:10Z"
    record = rootcause.build_record(REQUEST, [late, early])
    assert (record["pod"], record["time"]) == ("p-b", "2026-01-01T00:01:00Z")


def test_pods_that_did_not_fail_are_passed_over_wherever_they_come() -> None:
    # The Job's pods arrive in store order: a running or succeeded pod before the failed one must not end the search.
    pods = [
        pod("p-running", "Running"),
        pod("p-done", "Succeeded", containerStatuses=[terminated("main", 0, "2026-01-01T00:01:00Z", "Completed")]),
        pod("p-failed", "Failed", node="gpu-3", containerStatuses=[terminated("main", 1, "2026-01-01T00:04:50Z")]),
    ]
    record = rootcause.build_record(REQUEST, pods)
    assert (record["pod"], record["exitCode"], record["node"]) == ("p-failed", 1, "gpu-3")


def test_a_failed_pod_with_no_time_of_its_own_takes_the_jobs_failure_time() -> None:
    record = rootcause.build_record(REQUEST, [pod("p-evicted", "Failed", reason="Evicted")])
    assert (record["pod"], record["reason"], record["time"]) == ("p-evicted", "Evicted", REQUEST.time)
