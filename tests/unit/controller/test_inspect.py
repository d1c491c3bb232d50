"""``pyjobset get`` / ``describe`` models and renderers, from fetched objects (no cluster)."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest

from api import constants as c
from api import extensions as x
from controller.inspect import (
    cause,
    describe_model,
    duration,
    gpus_held,
    gpus_when_running,
    jobset_state,
    pod_counts,
    render_describe,
    render_get,
    summarize,
)
from tests.builders import JobSetBuilder

JSON = dict[str, Any]
NOW = dt.datetime(2026, 1, 1, 1, 0, 0, tzinfo=dt.UTC)
T0 = "2026-01-01T00:00:00Z"

FAILURE = {
    "job": "train-workers-1",
    "pod": "train-workers-1-0-abcde",
    "container": "trainer",
    "exitCode": 137,
    "reason": "OOMKilled",
    "node": "node-7",
    "time": "2026-01-01T00:10:00Z",
    "restartAttempt": 0,
    "action": "RestartJobSet",
    "rule": "",
}


def gpu_template(b: JobSetBuilder, gpus: int) -> JSON:
    obj = b.obj()
    for rj in obj["spec"]["replicatedJobs"]:
        ctr = rj["template"]["spec"]["template"]["spec"]["containers"][0]
        ctr["resources"] = {"limits": {"nvidia.com/gpu": str(gpus)}}
    return obj


def training(**annotations: str) -> JSON:
    b = JobSetBuilder("train").rjob("driver", 1).rjob("workers", 2, parallelism=2, completions=2)
    for k, v in annotations.items():
        b.annotate(k, v)
    obj = gpu_template(b, 8)
    obj["metadata"].update(uid="js-uid", creationTimestamp=T0)
    obj["status"] = {
        "restarts": 2,
        "replicatedJobsStatus": [
            {"name": "driver", "ready": 1, "succeeded": 0},
            {"name": "workers", "ready": 1, "succeeded": 0},
        ],
        "conditions": [
            {
                "type": "RestartingJobSet",
                "status": "False",
                "reason": "JobsReady",
                "message": "all jobs are ready",
                "lastTransitionTime": "2026-01-01T00:59:00Z",
            }
        ],
    }
    return obj


def job(name: str, rjob: str, index: int, *, ready: int, parallelism: int = 1) -> JSON:
    return {
        "metadata": {
            "name": name,
            "uid": f"{name}-uid",
            "labels": {c.REPLICATED_JOB_NAME_KEY: rjob, c.JOB_INDEX_KEY: str(index)},
            "ownerReferences": [{"uid": "js-uid", "controller": True}],
        },
        "spec": {"parallelism": parallelism, "completions": parallelism},
        "status": {"ready": ready, "active": parallelism},
    }


def pod(job_name: str, i: int, phase: str, *, ready: bool = False, node: str = "", gpus: int = 8) -> JSON:
    return {
        "metadata": {"name": f"{job_name}-{i}-x", "ownerReferences": [{"uid": f"{job_name}-uid", "name": job_name}]},
        "spec": {"nodeName": node, "containers": [{"resources": {"requests": {"nvidia.com/gpu": gpus}}}]},
        "status": {
            "phase": phase,
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        },
    }


def world(js: JSON) -> tuple[list[JSON], list[JSON]]:
    jobs = [
        job("train-driver-0", "driver", 0, ready=1),
        job("train-workers-0", "workers", 0, ready=2, parallelism=2),
        job("train-workers-1", "workers", 1, ready=0, parallelism=2),
        {**job("other", "workers", 9, ready=0), "metadata": {"name": "other", "ownerReferences": [{"uid": "x"}]}},
    ]
    pods = [
        pod("train-driver-0", 0, "Running", ready=True, node="n0"),
        pod("train-workers-0", 0, "Running", ready=True, node="n1"),
        pod("train-workers-0", 1, "Running", ready=True, node="n2"),
        pod("train-workers-1", 0, "Pending"),
        pod("train-workers-1", 1, "Failed", node="n3"),
    ]
    return jobs, pods


def test_get_row_of_a_jobset_without_failure_records_shows_a_dash() -> None:
    row = summarize(training(), NOW)
    assert (row.name, row.state, row.restarts, row.ready_jobs, row.total_jobs, row.age) == (
        "train",
        "Starting",
        2,
        2,
        3,
        "1h",
    )
    assert row.last_failure == "—"
    text = render_get([row], all_namespaces=False).splitlines()
    assert text[0].split() == ["NAME", "STATE", "RESTARTS", "READY", "AGE", "LAST", "FAILURE"]
    assert text[1].split() == ["train", "Starting", "2", "2/3", "1h", "—"]


def test_get_row_shows_the_last_failure_in_a_few_words() -> None:
    row = summarize(training(**{x.LAST_FAILURE_KEY: json.dumps(FAILURE)}), NOW)
    assert row.last_failure == "train-workers-1: container trainer exited 137"
    text = render_get([row], all_namespaces=True).splitlines()
    assert text[1].startswith("default")


@pytest.mark.parametrize(
    ("conditions", "terminal", "state"),
    [
        ([("Completed", "True")], None, "Completed"),
        ([("Failed", "True")], None, "Failed"),
        ([("Suspended", "True")], None, "Suspended"),
        ([("RestartingJobSet", "True")], None, "Restarting"),
        ([], "Failed", "Failed"),
    ],
)
def test_state(conditions: list[tuple[str, str]], terminal: str | None, state: str) -> None:
    js = training()
    js["status"]["conditions"] = [{"type": t, "status": s} for t, s in conditions]
    if terminal:
        js["status"]["terminalState"] = terminal
    assert jobset_state(js) == state


def test_running_when_every_job_is_ready() -> None:
    js = training()
    js["status"]["replicatedJobsStatus"][1]["ready"] = 2
    assert jobset_state(js) == "Running"


def test_cause_reads_reason_only_failures() -> None:
    only_reason = {"job": "j", "pod": "p", "reason": "UnexpectedAdmissionError", "node": "n"}
    assert cause(only_reason) == "j: UnexpectedAdmissionError (pod p) on n"
    assert cause(None) == "—"
    assert (
        cause(FAILURE)
        == "train-workers-1: container trainer exited 137, OOMKilled (pod train-workers-1-0-abcde) on node-7"
    )


def test_pod_counts_and_gpus() -> None:
    _, pods = world(training())
    assert pod_counts(pods) == "3 Running (3 Ready), 1 Pending, 1 Failed"
    assert pod_counts([]) == "no pods"
    assert gpus_held(pods) == 32  # the Failed pod holds none
    assert gpus_when_running(training()) == 40  # 1x1x8 + 2x2x8


@pytest.mark.parametrize(("seconds", "text"), [(5, "5s"), (119, "119s"), (150, "2m30s"), (7200, "2h"), (90000, "1d1h")])
def test_duration(seconds: float, text: str) -> None:
    assert duration(seconds) == text


def test_describe_tree_gpus_and_no_history() -> None:
    js = training()
    jobs, pods = world(js)
    model = describe_model(js, jobs, pods, {}, [], NOW)
    assert [b.name for b in model.rjobs] == ["driver", "workers"]
    assert [j.name for j in model.rjobs[1].jobs] == ["train-workers-0", "train-workers-1"]  # "other" not ours
    assert model.rjobs[1].jobs[0].state == "Ready"
    assert model.rjobs[1].jobs[1].pods == "1 Pending, 1 Failed"
    assert (model.gpus_held, model.gpus_idle, model.gpus_running) == (32, 32, 40)
    assert model.restart_history is None
    assert model.exclusive_topology is None
    text = render_describe(model)
    assert "Restart History:\n  —\n" in text
    assert "badput (GPU-seconds):     —" in text
    assert "Placement" not in text
    assert "  workers  (2 Jobs x 2 pods each)" in text


def test_describe_restart_history_with_recovery_and_badput() -> None:
    second = {**FAILURE, "restartAttempt": 1, "recoveredSeconds": 30}
    first = {
        **FAILURE,
        "job": "train-driver-0",
        "reason": "",
        "exitCode": 1,
        "restartAttempt": 0,
        "recoveredSeconds": 12.5,
    }
    pending = {**FAILURE, "restartAttempt": 2}
    js = training(**{x.RESTART_HISTORY_KEY: json.dumps([first, second, pending])})
    jobs, pods = world(js)
    model = describe_model(js, jobs, pods, {}, [], NOW)
    assert model.restart_history is not None
    assert [(r.attempt, r.recovered, r.badput) for r in model.restart_history] == [
        ("0", "12.5s", "500"),
        ("1", "30s", "1200"),
        ("2", "—", "—"),
    ]
    assert model.badput_total == 1700
    text = render_describe(model)
    assert "train-driver-0: container trainer exited 1 (pod train-workers-1-0-abcde) on node-7" in text
    assert "badput (GPU-seconds):     1700" in text


def test_unreadable_history_is_said_not_raised() -> None:
    js = training(**{x.RESTART_HISTORY_KEY: "{not json"})
    model = describe_model(js, [], [], {}, [], NOW)
    assert "(unreadable: pyjobset.io/restart-history is not JSON)" in render_describe(model)


def test_placement_map_under_exclusive_placement() -> None:
    js = training(**{c.EXCLUSIVE_TOPOLOGY_KEY: "pool"})
    jobs, pods = world(js)
    nodes = {f"n{i}": {"metadata": {"name": f"n{i}", "labels": {"pool": f"p{i // 2}"}}} for i in range(4)}
    model = describe_model(js, jobs, pods, nodes, [], NOW)
    placed = {j.name: (j.domain, j.nodes) for b in model.rjobs for j in b.jobs}
    assert placed == {
        "train-driver-0": ("p0", ("n0",)),
        "train-workers-0": ("p0,p1", ("n1", "n2")),
        "train-workers-1": ("p1", ("n3",)),
    }
    assert "Placement (pool):" in render_describe(model)


def test_recent_events_are_the_latest_ten_oldest_first() -> None:
    events = [
        {"type": "Normal", "reason": f"R{i:02}", "message": "m", "lastTimestamp": f"2026-01-01T00:{i:02}:00Z"}
        for i in range(15)
    ]
    events[14]["count"] = 3
    model = describe_model(training(), [], [], {}, list(reversed(events)), NOW)
    assert [e[2] for e in model.events] == [f"R{i:02}" for i in range(5, 15)]
    assert model.events[-1][3] == "m (x3)"


def test_events_of_an_older_jobset_of_the_same_name_are_left_out_and_series_are_counted() -> None:
    events = [
        {"reason": "Old", "involvedObject": {"uid": "older"}, "eventTime": "2026-01-01T00:00:00Z"},
        {
            "reason": "Restart",
            "message": "again",
            "involvedObject": {"uid": "js-uid"},
            "eventTime": "2026-01-01T00:50:00Z",
            "series": {"count": 2, "lastObservedTime": "2026-01-01T00:59:30Z"},
        },
    ]
    model = describe_model(training(), [], [], {}, events, NOW)
    assert model.events == (("30s", "", "Restart", "again (x2)"),)
