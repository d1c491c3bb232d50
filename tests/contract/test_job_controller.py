"""The batch/v1 Job controller's observable contract, driven through the pod annotation contract
(``sim.pyjobset.io/*``, honoured by kubesim's kubelet and by the project's KWOK stages on a real cluster)."""

from __future__ import annotations

from typing import Any

from tests.contract.client import Kube
from tests.contract.conftest import eventually

JSON = dict[str, Any]
RUN = "sim.pyjobset.io/run-seconds"
EXIT = "sim.pyjobset.io/exit-code"


def job(name: str, annotations: dict[str, str] | None = None, **spec: Any) -> JSON:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "template": {
                "metadata": {"annotations": annotations or {RUN: "0"}},
                "spec": {
                    "restartPolicy": "Never",
                    "subdomain": "svc",
                    "containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10"}],
                },
            },
            **spec,
        },
    }


async def _condition(kube: Kube, ns: str, name: str, ctype: str) -> JSON:
    async def check() -> JSON | None:
        obj = (await kube.get(f"/apis/batch/v1/namespaces/{ns}/jobs/{name}")).obj()
        for c in obj.get("status", {}).get("conditions") or []:
            if c["type"] == ctype and c["status"] == "True":
                return obj
        return None

    result: JSON = await eventually(check, timeout=60)
    return result


def _cond(obj: JSON, ctype: str) -> JSON:
    return next(c for c in obj["status"]["conditions"] if c["type"] == ctype)


async def test_indexed_job_pods_names_hostnames_and_completion(kube: Kube, ns: str) -> None:
    body = job("idx", completions=3, parallelism=3, completionMode="Indexed")
    body["spec"]["template"]["metadata"]["annotations"] = {RUN: "600"}
    assert (await kube.post(f"/apis/batch/v1/namespaces/{ns}/jobs", body)).status == 201

    async def three() -> list[JSON]:
        items: list[JSON] = (
            await kube.get(f"/api/v1/namespaces/{ns}/pods", labelSelector="batch.kubernetes.io/job-name=idx")
        ).obj()["items"]
        return items if len(items) == 3 else []

    pods = await eventually(three)
    by_index = {p["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"]: p for p in pods}
    assert sorted(by_index) == ["0", "1", "2"]
    for index, p in by_index.items():
        assert p["metadata"]["name"].startswith(f"idx-{index}-")
        assert p["spec"]["hostname"] == f"idx-{index}"
        assert p["spec"]["subdomain"] == "svc"
        assert p["metadata"]["labels"]["batch.kubernetes.io/job-completion-index"] == index
        env = {e["name"]: e.get("value") for e in p["spec"]["containers"][0].get("env") or []}
        assert env.get("JOB_COMPLETION_INDEX") == index or "valueFrom" in str(p["spec"]["containers"][0]["env"])
        owner = p["metadata"]["ownerReferences"][0]
        assert (owner["kind"], owner["name"], owner["controller"]) == ("Job", "idx", True)


async def test_job_completes_with_complete_condition(kube: Kube, ns: str) -> None:
    await kube.post(f"/apis/batch/v1/namespaces/{ns}/jobs", job("ok", completions=2, parallelism=2))
    obj = await _condition(kube, ns, "ok", "Complete")
    assert obj["status"]["succeeded"] == 2
    assert obj["status"]["completionTime"]
    assert obj["status"]["startTime"]


async def test_backoff_limit_exceeded(kube: Kube, ns: str) -> None:
    await kube.post(f"/apis/batch/v1/namespaces/{ns}/jobs", job("bl", {RUN: "0", EXIT: "1"}, backoffLimit=0))
    obj = await _condition(kube, ns, "bl", "Failed")
    failed = _cond(obj, "Failed")
    assert failed["reason"] == "BackoffLimitExceeded"
    assert failed["message"] == "Job has reached the specified backoff limit"
    assert obj["status"]["failed"] == 1


async def test_pod_failure_policy_fail_job_on_exit_code(kube: Kube, ns: str) -> None:
    policy = {"rules": [{"action": "FailJob", "onExitCodes": {"containerName": "c", "operator": "In", "values": [42]}}]}
    await kube.post(
        f"/apis/batch/v1/namespaces/{ns}/jobs",
        job("pfp", {RUN: "0", EXIT: "42"}, backoffLimit=6, podFailurePolicy=policy),
    )
    obj = await _condition(kube, ns, "pfp", "Failed")
    failed = _cond(obj, "Failed")
    assert failed["reason"] == "PodFailurePolicy"
    assert "failed with exit code 42 matching FailJob rule at index 0" in failed["message"]


async def test_active_deadline_exceeded(kube: Kube, ns: str) -> None:
    await kube.post(f"/apis/batch/v1/namespaces/{ns}/jobs", job("dl", {RUN: "600"}, activeDeadlineSeconds=1))
    obj = await _condition(kube, ns, "dl", "Failed")
    failed = _cond(obj, "Failed")
    assert failed["reason"] == "DeadlineExceeded"
    assert failed["message"] == "Job was active longer than specified deadline"


async def test_suspended_job_creates_no_pods_and_reports_suspended(kube: Kube, ns: str) -> None:
    await kube.post(f"/apis/batch/v1/namespaces/{ns}/jobs", job("sus", suspend=True))
    obj = await _condition(kube, ns, "sus", "Suspended")
    assert _cond(obj, "Suspended")["reason"] == "JobSuspended"
    assert "startTime" not in obj["status"]
    pods = (await kube.get(f"/api/v1/namespaces/{ns}/pods", labelSelector="batch.kubernetes.io/job-name=sus")).obj()
    assert pods["items"] == []
    await kube.patch(f"/apis/batch/v1/namespaces/{ns}/jobs/sus", {"spec": {"suspend": False}})
    await _condition(kube, ns, "sus", "Complete")


async def test_backoff_limit_per_index_marks_failed_indexes(kube: Kube, ns: str) -> None:
    body = job(
        "bpi",
        {RUN: "0", "sim.pyjobset.io/fail-when": "batch.kubernetes.io/job-completion-index=1"},
        completions=3,
        parallelism=3,
        completionMode="Indexed",
        backoffLimitPerIndex=0,
    )
    await kube.post(f"/apis/batch/v1/namespaces/{ns}/jobs", body)
    obj = await _condition(kube, ns, "bpi", "Failed")
    assert _cond(obj, "Failed")["reason"] == "FailedIndexes"
    assert obj["status"]["failedIndexes"] == "1"
    assert obj["status"]["completedIndexes"] == "0,2"
