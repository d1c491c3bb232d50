"""pyjobset's opt-in extensions on a cluster (docs/design/extensions.md): root-cause records, fail-fast on
``FailureTarget``, restart backoff and budget, startup deadline.

Not reference scenarios (the reference controller ignores these annotations): they use the conformance kit, so
they run wherever pyjobset is the controller, on kubesim or on the real control plane with the KWOK Stages.
Waits are watch-driven; nothing asserts on wall-clock time.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from api import constants as c
from api import extensions as x
from controller.settings import Pyjobset, Settings, load_settings
from tests.builders import JobSetBuilder
from tests.conformance.kit import (
    EXIT_NOW,
    Cluster,
    base_jobset,
    condition,
    expected,
    manual,
    simulated,
)
from tests.conftest import EXTERNAL_CONTROLLER

JSON = dict[str, Any]
GPU = "nvidia.com/gpu"
A0 = "test-js-replicated-job-a-0"
RECORD_KEYS = ["job", "pod", "container", "exitCode", "reason", "node", "time", "restartAttempt", "action", "rule"]


def annotation(js: JSON, key: str) -> Any:
    raw = (js["metadata"].get("annotations") or {}).get(key)
    return json.loads(raw) if raw is not None else None


def restarts(js: JSON) -> int:
    return int((js.get("status") or {}).get("restarts") or 0)


async def wait_annotation(cluster: Cluster, name: str, key: str, check: Any = bool) -> Any:
    def probe(js: JSON) -> Any:
        value = annotation(js, key)
        return value if value is not None and check(value) else None

    return await cluster.wait_jobset(name, probe)


# --------------------------------------------------------------------------------------------- root cause


async def test_restart_records_the_root_cause_and_the_recovery_time(cluster: Cluster) -> None:
    obj = JobSetBuilder("js", cluster.ns).rjob("w", 2, backoff_limit=0).obj()
    obj["metadata"]["annotations"] = {"team.example.com/owner": "ml-infra"}
    obj["spec"]["failurePolicy"] = {"maxRestarts": 2}
    await cluster.create(simulated(obj))
    await cluster.wait_observed("js", "w", expected(ready=2, active=2))
    await cluster.exit_now("js-w-1", 3)

    ev = await cluster.wait_event("js", "RestartJobSetFailurePolicyAction")
    assert ev["note"].startswith("applying RestartJobSet failure policy action (first failed job: js-w-1) (root cause:")
    assert "container main, exit code 3" in ev["note"]

    history = await wait_annotation(cluster, "js", x.RESTART_HISTORY, lambda h: "recoveredSeconds" in h[-1])
    js = await cluster.jobset("js")
    last = annotation(js, x.LAST_FAILURE)
    assert list(last) == RECORD_KEYS
    assert (last["job"], last["container"], last["exitCode"], last["reason"]) == ("js-w-1", "main", 3, "Error")
    assert last["pod"].startswith("js-w-1-0-")
    assert last["node"]
    assert (last["restartAttempt"], last["action"], last["rule"]) == (0, "RestartJobSet", None)
    assert len(history) == 1
    assert {k: v for k, v in history[0].items() if k != "recoveredSeconds"} == last
    assert history[0]["recoveredSeconds"] >= 0
    assert js["metadata"]["annotations"]["team.example.com/owner"] == "ml-infra"  # others' annotations kept


async def test_a_pod_that_failed_with_only_a_status_reason(cluster: Cluster) -> None:
    await cluster.create(manual(base_jobset(cluster.ns).obj()))
    jobs = await cluster.wait_job_count(4)
    job = next(j for j in jobs if j["metadata"]["name"] == A0)
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "admission-victim",
            "labels": {"batch.kubernetes.io/controller-uid": job["metadata"]["uid"]},
        },
        "spec": {"containers": [{"name": "main", "image": "busybox"}], "schedulingGates": [{"name": "test/hold"}]},
    }
    created = await cluster.api.create(cluster.pods_path, pod)
    created["status"] = {
        "phase": "Failed",
        "reason": "UnexpectedAdmissionError",
        "message": "Allocate failed due to no healthy devices present",
    }
    await cluster.api.replace(f"{cluster.pods_path}/admission-victim/status", created)
    await cluster.fail(A0)
    last = await wait_annotation(cluster, "test-js", x.LAST_FAILURE)
    assert (last["job"], last["pod"], last["container"], last["exitCode"]) == (A0, "admission-victim", None, None)
    assert last["reason"] == "UnexpectedAdmissionError"
    assert (last["action"], last["restartAttempt"]) == ("FailJobSet", 0)  # no failure policy: the JobSet fails


@pytest.mark.skipif(EXTERNAL_CONTROLLER, reason="configures the in-loop controller (pyjobset.recordFailures: false)")
class TestRecordingOff:
    @pytest.fixture
    def controller_settings(self) -> Settings:
        return load_settings(
            overrides={"leader_election.leader_elect": False, "pyjobset": Pyjobset(record_failures=False)}
        )

    async def test_no_annotation_is_written(self, cluster: Cluster) -> None:
        await cluster.create(manual(base_jobset(cluster.ns).set("spec.failurePolicy", {"maxRestarts": 1}).obj()))
        await cluster.wait_job_count(4)
        await cluster.fail(A0)
        await cluster.wait_job_count(4, attempt=1)
        js = await cluster.jobset("test-js")
        assert not [k for k in js["metadata"].get("annotations") or {} if k.startswith(x.PREFIX)]


# --------------------------------------------------------------------------------------------- fail-fast


def terminating_jobset(ns: str, *, fail_fast: bool) -> JSON:
    """One Job of two pods; a failing pod makes the Job controller delete the other, which then terminates for an
    hour: the Job sits at FailureTarget without Failed for the whole test."""
    obj = JobSetBuilder("js", ns).rjob("w", 1, parallelism=2, completions=2, backoff_limit=0).obj()
    obj["spec"]["failurePolicy"] = {"maxRestarts": 3}
    if fail_fast:
        obj["metadata"]["annotations"] = {x.FAIL_FAST: "true"}
    out = simulated(obj, termination_seconds="3600")
    out["spec"]["replicatedJobs"][0]["template"]["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] = 3600
    return out


async def fail_one_pod(cluster: Cluster) -> None:
    pods = await cluster.wait_pods(lambda ps: ps if len(ps) == 2 else None, job="js-w-0")
    await cluster.api.patch(
        f"{cluster.pods_path}/{pods[0]['metadata']['name']}", {"metadata": {"annotations": {EXIT_NOW: "1"}}}
    )


async def failure_target_only(cluster: Cluster) -> JSON:
    def check(jobs: list[JSON]) -> JSON | None:
        for job in jobs:
            types = {cnd["type"] for cnd in job.get("status", {}).get("conditions") or [] if cnd["status"] == "True"}
            if "FailureTarget" in types and "Failed" not in types:
                return job
        return None

    result: JSON = await cluster.wait_jobs(check)
    return result


async def test_without_fail_fast_a_failure_target_waits_for_failed(cluster: Cluster) -> None:
    await cluster.create(terminating_jobset(cluster.ns, fail_fast=False))
    await cluster.wait_observed("js", "w", expected(ready=1, active=1))
    await fail_one_pod(cluster)
    await failure_target_only(cluster)
    await cluster.jobset_stays("js", lambda js: restarts(js) == 0)


async def test_fail_fast_restarts_on_failure_target(cluster: Cluster) -> None:
    await cluster.create(terminating_jobset(cluster.ns, fail_fast=True))
    await cluster.wait_observed("js", "w", expected(ready=1, active=1))
    await fail_one_pod(cluster)
    js = await cluster.wait_jobset("js", lambda js: js if restarts(js) == 1 else None)
    cond = condition(js, c.COND_RESTARTING)
    assert cond is not None
    assert (cond["reason"], cond["message"]) == (
        "DefaultFailurePolicy",
        "applying RestartJobSet failure policy action (first failed job: js-w-0)",
    )
    job = next(j for j in await cluster.jobs("js") if j["metadata"]["name"] == "js-w-0")
    types = {cnd["type"] for cnd in job["status"].get("conditions") or [] if cnd["status"] == "True"}
    assert "FailureTarget" in types
    assert "Failed" not in types  # the restart did not wait for the terminating pod
    last = await wait_annotation(cluster, "js", x.LAST_FAILURE)
    assert (last["job"], last["exitCode"], last["reason"]) == ("js-w-0", 1, "Error")


# --------------------------------------------------------------------------------------------- backoff, budget


async def test_restart_budget_fails_the_jobset(cluster: Cluster) -> None:
    obj = base_jobset(cluster.ns).set("spec.failurePolicy", {"maxRestarts": 5}).obj()
    obj["metadata"]["annotations"] = {x.RESTART_BUDGET: "1/1h"}
    await cluster.create(manual(obj))
    await cluster.wait_job_count(4)
    await cluster.fail(A0)
    await cluster.wait_job_count(4, attempt=1)
    await cluster.fail(A0)
    js = await cluster.wait_terminal("test-js", "Failed")
    cond = condition(js, c.COND_FAILED)
    assert cond is not None
    assert (cond["reason"], restarts(js)) == ("RestartBudgetExceeded", 1)
    assert cond["message"].endswith(f"(first failed job: {A0})")


async def test_restart_backoff_waits_then_restarts(cluster: Cluster) -> None:
    obj = base_jobset(cluster.ns).set("spec.failurePolicy", {"maxRestarts": 5}).obj()
    obj["metadata"]["annotations"] = {x.RESTART_BACKOFF: "2s,1m"}
    await cluster.create(manual(obj))
    await cluster.wait_job_count(4)
    await cluster.fail(A0)
    await cluster.wait_job_count(4, attempt=1)
    await cluster.fail(A0)

    def waiting(js: JSON) -> JSON | None:
        cond = condition(js, c.COND_RESTARTING)
        return js if cond is not None and cond["message"].startswith("restart backoff: restart 2 ") else None

    js = await cluster.wait_jobset("test-js", waiting)
    assert restarts(js) == 2
    await cluster.wait_event("test-js", (condition(js, c.COND_RESTARTING) or {})["reason"])
    jobs = await cluster.wait_job_count(4, attempt=2)  # once the wait is over, the attempt-1 Jobs go
    assert {j["metadata"]["labels"][c.RESTART_ATTEMPT_KEY] for j in jobs} == {"2"}


# --------------------------------------------------------------------------------------------- startup deadline


async def test_startup_deadline_on_fragmented_gpu_nodes(cluster: Cluster) -> None:
    """Every node keeps one GPU free (a filler takes the rest): the 1-GPU workers land, the 2-GPU leader stays
    Pending although enough GPUs are free in total; the deadline fails the leader's Job through the policy."""
    nodes = (await cluster.api.get("/api/v1/nodes"))["items"]
    per_node = int(nodes[0]["status"]["allocatable"].get(GPU, "0"))
    if per_node < 2:
        pytest.skip(f"needs nodes with at least 2 {GPU}; this cluster's have {per_node}")
    for node in nodes:
        name = node["metadata"]["name"]
        filler = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": f"filler-{name}"},
            "spec": {
                "nodeName": name,
                "containers": [{"name": "main", "image": "busybox", "resources": {"limits": {GPU: str(per_node - 1)}}}],
            },
        }
        await cluster.api.create(cluster.pods_path, filler)

    obj = JobSetBuilder("js", cluster.ns).rjob("leader", 1).rjob("workers", 2).obj()
    for rj, gpus in zip(obj["spec"]["replicatedJobs"], ("2", "1"), strict=True):
        rj["template"]["spec"]["template"]["spec"]["containers"][0]["resources"] = {"limits": {GPU: gpus}}
    obj["metadata"]["annotations"] = {x.STARTUP_DEADLINE: "3s"}
    obj["spec"]["failurePolicy"] = {
        "maxRestarts": 3,
        "rules": [{"name": "noGang", "action": "FailJobSet", "onJobFailureReasons": ["StartupDeadlineExceeded"]}],
    }
    await cluster.create(simulated(obj))
    await cluster.wait_observed("js", "workers", expected(ready=2, active=2))
    pending = await cluster.pods("js-leader-0")
    assert [p["status"].get("phase") for p in pending] == ["Pending"]

    js = await cluster.wait_terminal("js", "Failed")
    cond = condition(js, c.COND_FAILED)
    assert cond is not None
    assert (cond["reason"], cond["message"]) == (
        "FailJobSetFailurePolicyAction",
        "applying FailJobSet failure policy action (first failed job: js-leader-0)",
    )
    last = await wait_annotation(cluster, "js", x.LAST_FAILURE)
    assert (last["job"], last["reason"], last["action"], last["rule"]) == (
        "js-leader-0",
        "StartupDeadlineExceeded",
        "FailJobSet",
        "noGang",
    )
