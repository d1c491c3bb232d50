"""The simulated cluster runs batch/v1 Jobs as the real Job controller, scheduler and kubelet would."""

from __future__ import annotations

from typing import Any

from kubesim.cluster.testing import Harness

JSON = dict[str, Any]


def job(
    name: str,
    *,
    annotations: dict[str, str] | None = None,
    labels: dict[str, str] | None = None,
    restart_policy: str = "Never",
    **spec: Any,
) -> JSON:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "template": {
                "metadata": {"annotations": annotations or {}, "labels": labels or {}},
                "spec": {
                    "restartPolicy": restart_policy,
                    "subdomain": "svc",
                    "containers": [{"name": "main", "image": "busybox"}],
                },
            },
            **spec,
        },
    }


def cond(h: Harness, obj: JSON, ctype: str) -> tuple[str, str, str] | None:
    c = h.condition(obj, ctype)
    return None if c is None else (c["status"], c.get("reason", ""), c.get("message", ""))


async def test_indexed_job_runs_to_completion_with_real_pod_identity() -> None:
    async with Harness(nodes=4) as h:
        await h.create(
            "jobs.batch",
            job("train", completionMode="Indexed", completions=3, parallelism=3,
                annotations={"sim.pyjobset.io/run-seconds": "5"}),
        )  # fmt: skip
        pods = await h.pods()
        assert sorted(p["spec"]["hostname"] for p in pods) == ["train-0", "train-1", "train-2"]
        for p in pods:
            index = p["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"]
            assert p["metadata"]["name"].startswith(f"train-{index}-")
            assert len(p["metadata"]["name"]) == len(f"train-{index}-") + 5
            assert p["metadata"]["labels"]["batch.kubernetes.io/job-completion-index"] == index
            assert p["spec"]["subdomain"] == "svc"
            assert p["spec"]["nodeName"].startswith("sim-node-")
            assert p["status"]["phase"] == "Running"
            assert p["status"]["containerStatuses"][0]["ready"] is True
            owner = p["metadata"]["ownerReferences"][0]
            assert (owner["kind"], owner["name"], owner["controller"]) == ("Job", "train", True)
            assert "batch.kubernetes.io/job-tracking" in p["metadata"]["finalizers"]
            assert any(e["name"] == "JOB_COMPLETION_INDEX" for e in p["spec"]["containers"][0]["env"])
        running = h.job("train")["status"]
        assert (running["active"], running["ready"]) == (3, 3)
        assert "startTime" in running

        await h.advance(5)
        done = h.job("train")
        assert done["status"]["succeeded"] == 3
        assert done["status"]["completedIndexes"] == "0-2"
        assert cond(h, done, "Complete") == ("True", "CompletionsReached", "Reached expected number of succeeded pods")
        assert cond(h, done, "SuccessCriteriaMet") is not None
        assert "completionTime" in done["status"]
        for p in await h.pods():
            term = p["status"]["containerStatuses"][0]["state"]["terminated"]
            assert (p["status"]["phase"], term["exitCode"], term["reason"]) == ("Succeeded", 0, "Completed")
            assert "finishedAt" in term
            assert "startedAt" in term
            assert "batch.kubernetes.io/job-tracking" not in (p["metadata"].get("finalizers") or [])
        events = await h.events()
        reasons = [r for name, r, _ in events if name == "train"]
        assert reasons.count("SuccessfulCreate") == 3
        assert "Completed" in reasons
        pod_name = pods[0]["metadata"]["name"]
        pod_events = [(r, m) for name, r, m in events if name == pod_name]
        assert [r for r, _ in pod_events] == ["Scheduled", "Pulled", "Created", "Started"]
        assert pod_events[2][1] == "Created container: main"


async def test_failing_pods_exhaust_backoff_limit() -> None:
    async with Harness(nodes=2) as h:
        await h.create(
            "jobs.batch",
            job("bad", backoffLimit=1,
                annotations={"sim.pyjobset.io/run-seconds": "1", "sim.pyjobset.io/exit-code": "3"}),
        )  # fmt: skip
        await h.advance(1)
        first = h.job("bad")["status"]
        assert first["failed"] == 1
        assert "Failed" not in {c["type"] for c in first.get("conditions", [])}
        assert len(await h.pods()) == 1  # the replacement waits out the 10 s pod-failure backoff
        await h.advance(10)
        assert len(await h.pods()) == 2
        await h.advance(1)
        failed = h.job("bad")
        assert failed["status"]["failed"] == 2
        assert cond(h, failed, "Failed") == (
            "True",
            "BackoffLimitExceeded",
            "Job has reached the specified backoff limit",
        )
        assert cond(h, failed, "FailureTarget") is not None
        term = (await h.pods())[0]["status"]["containerStatuses"][0]["state"]["terminated"]
        assert (term["exitCode"], term["reason"]) == (3, "Error")


async def test_fail_when_selects_one_index() -> None:
    async with Harness(nodes=2) as h:
        await h.create(
            "jobs.batch",
            job("fw", completionMode="Indexed", completions=2, parallelism=2, backoffLimit=0,
                annotations={"sim.pyjobset.io/run-seconds": "2",
                             "sim.pyjobset.io/fail-when": "batch.kubernetes.io/job-completion-index=1"}),
        )  # fmt: skip
        await h.advance(2)
        by_index = {
            p["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"]: p["status"]["phase"]
            for p in await h.pods()
        }
        assert by_index == {"0": "Succeeded", "1": "Failed"}
        assert cond(h, h.job("fw"), "Failed") is not None


async def test_exit_now_terminates_a_live_pod() -> None:
    async with Harness(nodes=1) as h:
        await h.create("jobs.batch", job("live", backoffLimit=0))
        (pod,) = await h.pods()
        assert pod["status"]["phase"] == "Running"
        await h.store.patch(
            "pods", pod["metadata"]["name"], {"metadata": {"annotations": {"sim.pyjobset.io/exit-now": "7"}}},
            "default",
        )  # fmt: skip
        await h.settle()
        (pod,) = await h.pods()
        assert pod["status"]["phase"] == "Failed"
        assert pod["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 7
        assert cond(h, h.job("live"), "Failed") == (
            "True",
            "BackoffLimitExceeded",
            "Job has reached the specified backoff limit",
        )


async def test_start_seconds_delays_readiness() -> None:
    async with Harness(nodes=1) as h:
        await h.create("jobs.batch", job("slow", annotations={"sim.pyjobset.io/start-seconds": "3"}))
        (pod,) = await h.pods()
        assert pod["status"]["phase"] == "Pending"
        assert h.job("slow")["status"]["ready"] == 0
        await h.advance(3)
        (pod,) = await h.pods()
        assert pod["status"]["phase"] == "Running"
        assert h.job("slow")["status"]["ready"] == 1


async def test_pod_failure_policy_fail_job_on_exit_code() -> None:
    rules = [{"action": "FailJob", "onExitCodes": {"containerName": "main", "operator": "In", "values": [42]}}]
    async with Harness(nodes=1) as h:
        await h.create(
            "jobs.batch",
            job("pfp", podFailurePolicy={"rules": rules},
                annotations={"sim.pyjobset.io/run-seconds": "1", "sim.pyjobset.io/exit-code": "42"}),
        )  # fmt: skip
        await h.advance(1)
        failed = h.job("pfp")
        (pod,) = await h.pods()
        name = pod["metadata"]["name"]
        assert cond(h, failed, "Failed") == (
            "True",
            "PodFailurePolicy",
            f"Container main for pod default/{name} failed with exit code 42 matching FailJob rule at index 0",
        )


async def test_active_deadline_exceeded_kills_pods() -> None:
    async with Harness(nodes=1) as h:
        await h.create("jobs.batch", job("dl", activeDeadlineSeconds=5))
        await h.advance(5)
        failed = h.job("dl")
        assert cond(h, failed, "Failed") == (
            "True",
            "DeadlineExceeded",
            "Job was active longer than specified deadline",
        )
        assert failed["status"]["failed"] == 1
        assert failed["status"].get("active", 0) == 0
        assert failed["status"]["terminating"] == 0


async def test_suspend_and_resume() -> None:
    async with Harness(nodes=2) as h:
        await h.create("jobs.batch", job("sus", completionMode="Indexed", completions=2, parallelism=2))
        started = h.job("sus")["status"]["startTime"]
        assert len(await h.pods()) == 2
        await h.advance(3)
        await h.store.patch("jobs.batch", "sus", {"spec": {"suspend": True}}, "default")
        await h.advance(1)
        suspended = h.job("sus")
        assert await h.pods() == []
        assert cond(h, suspended, "Suspended") == ("True", "JobSuspended", "Job suspended")
        assert suspended["status"].get("failed", 0) == 0
        assert suspended["status"].get("active", 0) == 0
        await h.store.patch("jobs.batch", "sus", {"spec": {"suspend": False}}, "default")
        await h.settle()
        resumed = h.job("sus")
        assert cond(h, resumed, "Suspended") == ("False", "JobResumed", "Job resumed")
        assert resumed["status"]["startTime"] != started
        assert len(await h.pods()) == 2
        reasons = {r for name, r, _ in await h.events() if name == "sus"}
        assert {"Suspended", "Resumed", "SuccessfulDelete"} <= reasons


async def test_created_suspended_job_has_no_pods_and_no_start_time() -> None:
    async with Harness(nodes=1) as h:
        await h.create("jobs.batch", job("later", suspend=True))
        later = h.job("later")
        assert await h.pods() == []
        assert "startTime" not in later.get("status", {})
        assert cond(h, later, "Suspended") == ("True", "JobSuspended", "Job suspended")


async def test_deleted_pod_is_replaced_and_counted_failed() -> None:
    async with Harness(nodes=1) as h:
        await h.create("jobs.batch", job("rep", completionMode="Indexed", completions=1, parallelism=1))
        (pod,) = await h.pods()
        await h.store.delete("pods", pod["metadata"]["name"], "default")
        await h.settle()
        assert h.job("rep")["status"]["failed"] == 1
        await h.advance(10)
        (new,) = await h.pods()
        assert new["metadata"]["name"] != pod["metadata"]["name"]
        assert new["spec"]["hostname"] == "rep-0"


async def test_on_failure_restarts_container_and_counts_toward_backoff_limit() -> None:
    async with Harness(nodes=1) as h:
        await h.create(
            "jobs.batch",
            job("crash", backoffLimit=2, restart_policy="OnFailure",
                annotations={"sim.pyjobset.io/run-seconds": "1", "sim.pyjobset.io/exit-code": "1"}),
        )  # fmt: skip
        await h.advance(1)
        (pod,) = await h.pods()
        cs = pod["status"]["containerStatuses"][0]
        assert cs["restartCount"] == 1
        assert cs["state"]["waiting"]["reason"] == "CrashLoopBackOff"
        assert cs["lastState"]["terminated"]["exitCode"] == 1
        await h.advance(60)
        assert cond(h, h.job("crash"), "Failed") == (
            "True",
            "BackoffLimitExceeded",
            "Job has reached the specified backoff limit",
        )


async def test_foreground_job_deletion_removes_pods_then_the_job() -> None:
    async with Harness(nodes=2) as h:
        await h.create("jobs.batch", job("fg", completionMode="Indexed", completions=2, parallelism=2))
        assert len(await h.pods()) == 2
        await h.store.delete("jobs.batch", "fg", "default", propagation_policy="Foreground")
        await h.settle()
        assert await h.pods() == []
        assert h.store.get_nowait("jobs.batch", "fg", "default") is None


async def test_background_job_deletion_collects_pods() -> None:
    async with Harness(nodes=2) as h:
        await h.create("jobs.batch", job("bg", completionMode="Indexed", completions=2, parallelism=2))
        await h.store.delete("jobs.batch", "bg", "default", propagation_policy="Background")
        await h.settle()
        assert h.store.get_nowait("jobs.batch", "bg", "default") is None
        assert await h.pods() == []


async def test_orphaned_pods_lose_the_tracking_finalizer() -> None:
    async with Harness(nodes=1) as h:
        await h.create("jobs.batch", job("orph"))
        await h.store.delete("jobs.batch", "orph", "default", propagation_policy="Orphan")
        await h.settle()
        assert h.store.get_nowait("jobs.batch", "orph", "default") is None
        (pod,) = await h.pods()
        assert not pod["metadata"].get("ownerReferences")
        assert "batch.kubernetes.io/job-tracking" not in (pod["metadata"].get("finalizers") or [])


async def test_ttl_after_finished_deletes_the_job() -> None:
    async with Harness(nodes=1) as h:
        await h.create("jobs.batch", job("ttl", ttlSecondsAfterFinished=30,
                                         annotations={"sim.pyjobset.io/run-seconds": "1"}))  # fmt: skip
        await h.advance(1)
        assert h.condition(h.job("ttl"), "Complete") is not None
        await h.advance(20)
        assert h.store.get_nowait("jobs.batch", "ttl", "default") is not None
        await h.advance(10)
        assert h.store.get_nowait("jobs.batch", "ttl", "default") is None
        assert await h.pods() == []


async def test_jobs_managed_by_another_controller_are_left_alone() -> None:
    async with Harness(nodes=1) as h:
        await h.create("jobs.batch", job("mk", managedBy="kueue.x-k8s.io/multikueue"))
        assert await h.pods() == []
        assert not h.job("mk").get("status", {}).get("startTime")


async def test_job_controller_client_rate_limit_spaces_pod_creation() -> None:
    async with Harness(nodes=4, job_controller_qps=2, job_controller_burst=1) as h:
        await h.store.create("jobs.batch", job("slow-start", completionMode="Indexed", completions=4, parallelism=4))
        await h.settle()
        first = len(await h.pods())
        await h.advance(1, step=0.25)
        second = len(await h.pods())
        await h.advance(5, step=0.25)
        assert first == 1
        assert second == 3
        assert len(await h.pods()) == 4


async def test_restarted_cluster_picks_up_running_pods() -> None:
    async with Harness(nodes=2) as h:
        await h.create(
            "jobs.batch",
            job("survivor", completionMode="Indexed", completions=2, parallelism=2,
                annotations={"sim.pyjobset.io/run-seconds": "10"}),
        )  # fmt: skip
        await h.advance(4)
        before = sorted(p["metadata"]["name"] for p in await h.pods())
        await h.restart_cluster()
        pods = await h.pods()
        assert sorted(p["metadata"]["name"] for p in pods) == before
        assert all(p["status"]["phase"] == "Running" for p in pods)
        await h.advance(6)
        assert h.condition(h.job("survivor"), "Complete") is not None
