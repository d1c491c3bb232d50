"""Every JobSet in ``examples/`` reaches the end state its comment block documents, on ``pyjobset up``.

One ``pyjobset up`` process serves the module; each test applies one example with the real kubectl (under its
own name where an example is run twice), drives it the way its comment block tells a user to (``kubectl
annotate`` a node for host maintenance, a pod for an application error, ``kubectl patch`` to resume a queued
JobSet), and checks the documented end state with ``kubectl wait`` (a watch), then deletes it so GPUs held by
never-ending workers are freed for the next example.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from tests.cli.test_cli_processes import KUBECTL, ROOT
from tests.cli.up_process import UpProcess, kubectl_run, up_process, wait_for

EXAMPLES = ROOT / "examples"
JOBSET_NAME = "jobset.sigs.k8s.io/jobset-name"

pytestmark = [
    pytest.mark.kubectl,
    pytest.mark.skipif(KUBECTL is None, reason="no kubectl binary (set PYJOBSET_KUBECTL)"),
]


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UpProcess]:
    with up_process(tmp_path_factory.mktemp("up")) as proc:  # the defaults: 16 nodes, 4 pools of 4
        yield proc
        assert proc.stop() == 0


def load(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((EXAMPLES / name).read_text())
    return doc


def apply(up: UpProcess, name: str, rename: str | None = None) -> str:
    """Apply ``examples/<name>`` (as a file, or renamed through stdin); returns the JobSet's name."""
    if rename is None:
        out = kubectl_run(up.kubeconfig, "apply", "-f", str(EXAMPLES / name))
        js_name = str(load(name)["metadata"]["name"])
    else:
        doc = load(name)
        doc["metadata"]["name"] = rename
        out = kubectl_run(up.kubeconfig, "apply", "-f", "-", stdin=yaml.safe_dump(doc))
        js_name = rename
    assert out.returncode == 0, out.stderr
    return js_name


def get(up: UpProcess, *args: str) -> Any:
    out = kubectl_run(up.kubeconfig, "get", *args, "-o", "json")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def children(up: UpProcess, kind: str, jobset: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = get(up, kind, "-l", f"{JOBSET_NAME}={jobset}")["items"]
    return items


def condition(obj: dict[str, Any], ctype: str) -> dict[str, Any] | None:
    return next((c for c in (obj.get("status") or {}).get("conditions") or [] if c["type"] == ctype), None)


@pytest.fixture
def cleanup(up: UpProcess) -> Iterator[list[str]]:
    names: list[str] = []
    yield names
    for name in names:
        kubectl_run(up.kubeconfig, "delete", "jobset", name, "--ignore-not-found")


def pools_by_node(up: UpProcess) -> dict[str, str]:
    nodes = get(up, "nodes")["items"]
    return {n["metadata"]["name"]: n["metadata"]["labels"]["cloud.google.com/gke-nodepool"] for n in nodes}


# --------------------------------------------------------------------------------------------- static


def test_every_example_is_documented_annotated_and_tested() -> None:
    files = sorted(p.name for p in EXAMPLES.glob("*.yaml"))
    assert files == sorted(TESTED), "each example needs a test below (and each test an example)"
    for name in files:
        text = (EXAMPLES / name).read_text()
        comment = [line for line in text.splitlines() if line.startswith("#")]
        assert text.startswith("#"), f"{name}: must open with a comment block explaining it"
        assert len(comment) >= 8, f"{name}: needs a comment block explaining it"
        assert "End state" in text, f"{name}: the comment block must state the end state"
        doc = load(name)
        assert (doc["apiVersion"], doc["kind"]) == ("jobset.x-k8s.io/v1alpha2", "JobSet")
        for rjob in doc["spec"]["replicatedJobs"]:
            annotations = rjob["template"]["spec"]["template"]["metadata"]["annotations"]
            assert any(k.startswith("sim.pyjobset.io/") for k in annotations), f"{name}/{rjob['name']}"


# --------------------------------------------------------------------------------------------- live


def test_pytorch_ddp(up: UpProcess, cleanup: list[str]) -> None:
    name = apply(up, "pytorch-ddp.yaml")
    cleanup.append(name)
    wait_for(up.kubeconfig, "condition=Completed", f"jobset/{name}")
    js = get(up, "jobset", name)
    assert js["status"].get("restarts", 0) == 0
    jobs = sorted(j["metadata"]["name"] for j in children(up, "jobs", name))
    assert jobs == ["pytorch-ddp-driver-0", "pytorch-ddp-workers-0"]
    pods = children(up, "pods", name)
    assert len(pods) == 4
    assert {p["metadata"]["labels"]["jobset.sigs.k8s.io/coordinator"] for p in pods} == {
        "pytorch-ddp-driver-0-0.pytorch-ddp"
    }


def test_jax_multislice_owns_one_pool_per_slice(up: UpProcess, cleanup: list[str]) -> None:
    name = apply(up, "jax-multislice.yaml")
    cleanup.append(name)
    wait_for(up.kubeconfig, "condition=Completed", f"jobset/{name}")
    pools = pools_by_node(up)
    by_slice: dict[str, set[str]] = {}
    for pod in children(up, "pods", name):
        job = pod["metadata"]["labels"]["batch.kubernetes.io/job-name"]
        by_slice.setdefault(job, set()).add(pools[pod["spec"]["nodeName"]])
    assert sorted(by_slice) == ["jax-multislice-slice-0", "jax-multislice-slice-1"]
    assert all(len(p) == 1 for p in by_slice.values()), by_slice  # each slice inside one pool
    assert by_slice["jax-multislice-slice-0"] != by_slice["jax-multislice-slice-1"]  # and the pools differ


def test_mpi_launcher_starts_after_workers_are_ready(up: UpProcess, cleanup: list[str]) -> None:
    name = apply(up, "mpi-inorder.yaml")
    cleanup.append(name)
    # The moment the launcher Job exists, both workers must already be Ready (they never exit, so they are
    # still there to look at; the launcher runs for seconds after this).
    wait_for(up.kubeconfig, "create", f"job/{name}-launcher-0")
    launcher = get(up, "job", f"{name}-launcher-0")
    workers = [
        p
        for p in children(up, "pods", name)
        if p["metadata"]["labels"]["jobset.sigs.k8s.io/replicatedjob-name"] == "workers"
    ]
    assert len(workers) == 2
    ready = [condition(p, "Ready") for p in workers]
    assert all(c is not None and c["status"] == "True" for c in ready), ready
    ready_at = max(c["lastTransitionTime"] for c in ready if c is not None)
    assert launcher["metadata"]["creationTimestamp"] >= ready_at  # RFC 3339 UTC strings sort by time
    wait_for(up.kubeconfig, "condition=Completed", f"jobset/{name}")
    started = condition(get(up, "jobset", name), "StartupPolicyCompleted")
    assert started is not None
    assert started["status"] == "True"
    wait_for(up.kubeconfig, "delete", f"job/{name}-workers-0")  # a finished JobSet keeps no running children


def test_trainer_v2_trains_after_both_initializers(up: UpProcess, cleanup: list[str]) -> None:
    name = apply(up, "trainer-v2-initializers.yaml")
    cleanup.append(name)
    wait_for(up.kubeconfig, "condition=Completed", f"jobset/{name}")
    jobs = {j["metadata"]["labels"]["jobset.sigs.k8s.io/replicatedjob-name"]: j for j in children(up, "jobs", name)}
    assert sorted(jobs) == ["dataset-initializer", "model-initializer", "node"]
    initialized = max(jobs[r]["status"]["completionTime"] for r in ("dataset-initializer", "model-initializer"))
    assert jobs["node"]["metadata"]["creationTimestamp"] >= initialized


def test_kueue_suspended_then_resumed_with_a_node_selector(up: UpProcess, cleanup: list[str]) -> None:
    name = apply(up, "kueue-suspended.yaml")
    cleanup.append(name)
    wait_for(up.kubeconfig, "condition=Suspended", f"jobset/{name}")
    assert children(up, "pods", name) == []
    patch = [
        {
            "op": "add",
            "path": "/spec/replicatedJobs/0/template/spec/template/spec/nodeSelector",
            "value": {"cloud.google.com/gke-nodepool": "pool-2"},
        },
        {"op": "replace", "path": "/spec/suspend", "value": False},
    ]
    out = kubectl_run(up.kubeconfig, "patch", "jobset", name, "--type=json", "-p", json.dumps(patch))
    assert out.returncode == 0, out.stderr
    wait_for(up.kubeconfig, "condition=Completed", f"jobset/{name}")
    pools = pools_by_node(up)
    pods = children(up, "pods", name)
    assert len(pods) == 4
    assert {pools[p["spec"]["nodeName"]] for p in pods} == {"pool-2"}


def _running_pods(up: UpProcess, name: str) -> list[dict[str, Any]]:
    wait_for(up.kubeconfig, "jsonpath={.status.replicatedJobsStatus[0].ready}=2", f"jobset/{name}")
    return [p for p in children(up, "pods", name) if p["status"].get("phase") == "Running"]


def test_failure_policy_host_maintenance_restarts_without_counting(up: UpProcess, cleanup: list[str]) -> None:
    name = apply(up, "failure-policy.yaml")
    cleanup.append(name)
    js = get(up, "jobset", name)
    assert [r["name"] for r in js["spec"]["failurePolicy"]["rules"]] == ["failurePolicyRule0", "failurePolicyRule1"]
    node = _running_pods(up, name)[0]["spec"]["nodeName"]
    assert kubectl_run(up.kubeconfig, "annotate", "node", node, "sim.pyjobset.io/fail=true").returncode == 0
    try:
        wait_for(up.kubeconfig, "jsonpath={.status.restarts}=1", f"jobset/{name}")
    finally:
        assert kubectl_run(up.kubeconfig, "annotate", "node", node, "sim.pyjobset.io/fail-").returncode == 0
    wait_for(up.kubeconfig, "condition=Completed", f"jobset/{name}")
    status = get(up, "jobset", name)["status"]
    assert status["restarts"] == 1
    assert status.get("restartsCountTowardsMax", 0) == 0


def test_failure_policy_application_error_fails_fast(up: UpProcess, cleanup: list[str]) -> None:
    name = apply(up, "failure-policy.yaml", rename="failure-policy-app-error")
    cleanup.append(name)
    pod = _running_pods(up, name)[0]["metadata"]["name"]
    assert kubectl_run(up.kubeconfig, "annotate", "pod", pod, "sim.pyjobset.io/exit-now=1").returncode == 0
    wait_for(up.kubeconfig, "condition=Failed", f"jobset/{name}")
    js = get(up, "jobset", name)
    failed = condition(js, "Failed")
    assert failed is not None
    assert failed["reason"] == "FailJobSetFailurePolicyAction"
    assert js["status"].get("restarts", 0) == 0


def test_success_policy_any_completes_on_the_leader(up: UpProcess, cleanup: list[str]) -> None:
    name = apply(up, "success-policy-leader.yaml")
    cleanup.append(name)
    wait_for(up.kubeconfig, "jsonpath={.status.replicatedJobsStatus[1].ready}=1", f"jobset/{name}")
    wait_for(up.kubeconfig, "condition=Completed", f"jobset/{name}")
    leader = get(up, "job", f"{name}-leader-0")
    assert condition(leader, "Complete") is not None
    # The servers never finished, yet the set did; their Job is then deleted as still active.
    wait_for(up.kubeconfig, "delete", f"job/{name}-workers-0")
    assert get(up, "jobset", name)["status"].get("restarts", 0) == 0


TESTED = {
    "pytorch-ddp.yaml": test_pytorch_ddp,
    "jax-multislice.yaml": test_jax_multislice_owns_one_pool_per_slice,
    "mpi-inorder.yaml": test_mpi_launcher_starts_after_workers_are_ready,
    "trainer-v2-initializers.yaml": test_trainer_v2_trains_after_both_initializers,
    "kueue-suspended.yaml": test_kueue_suspended_then_resumed_with_a_node_selector,
    "failure-policy.yaml": test_failure_policy_host_maintenance_restarts_without_counting,
    "success-policy-leader.yaml": test_success_policy_any_completes_on_the_leader,
}
