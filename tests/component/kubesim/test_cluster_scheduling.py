"""The simulated scheduler against the store: gates, unschedulable pods, throughput."""

from __future__ import annotations

from typing import Any

from kubesim.cluster.testing import Harness

JSON = dict[str, Any]


def bare_pod(name: str, **spec: Any) -> JSON:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "i"}], **spec},
    }


async def test_scheduling_gates_hold_a_pod_until_removed() -> None:
    async with Harness(nodes=1) as h:
        await h.create("pods", bare_pod("gated", schedulingGates=[{"name": "example.com/wait"}]))
        pod = await h.store.get("pods", "gated", "default")
        assert not pod["spec"].get("nodeName")
        await h.store.patch("pods", "gated", {"spec": {"schedulingGates": None}}, "default")
        await h.settle()
        pod = await h.store.get("pods", "gated", "default")
        assert pod["spec"]["nodeName"] == "sim-node-00000"
        assert h.condition(pod, "PodScheduled") is not None
        assert pod["status"]["phase"] == "Running"


async def test_unschedulable_pod_reports_why_and_is_placed_when_capacity_appears() -> None:
    async with Harness(nodes=1, gpus_per_node=8) as h:
        big = {"limits": {"nvidia.com/gpu": "16"}}
        pod = bare_pod("big")
        pod["spec"]["containers"][0]["resources"] = big
        await h.create("pods", pod)
        stuck = await h.store.get("pods", "big", "default")
        cond = h.condition(stuck, "PodScheduled")
        assert cond is not None
        assert (cond["status"], cond["reason"]) == ("False", "Unschedulable")
        assert cond["message"].startswith("0/1 nodes are available: 1 Insufficient nvidia.com/gpu.")
        assert ("big", "FailedScheduling", cond["message"]) in await h.events()

        node = await h.store.get("nodes", "sim-node-00000")
        node["status"]["allocatable"]["nvidia.com/gpu"] = "16"
        await h.store.update_status("nodes", node)
        await h.advance(1)
        placed = await h.store.get("pods", "big", "default")
        assert placed["spec"]["nodeName"] == "sim-node-00000"


async def test_other_scheduler_names_are_left_alone() -> None:
    async with Harness(nodes=1) as h:
        await h.create("pods", bare_pod("mine", schedulerName="my-scheduler"))
        pod = await h.store.get("pods", "mine", "default")
        assert not pod["spec"].get("nodeName")


async def test_throughput_limit_spaces_bindings() -> None:
    async with Harness(nodes=4, scheduler_pods_per_second=2) as h:
        for i in range(6):
            await h.store.create("pods", bare_pod(f"p{i}"))
        await h.settle()

        async def bound() -> int:
            return sum(1 for p in await h.store.list("pods", "default") if p["spec"].get("nodeName"))

        first = await bound()
        await h.advance(1, step=0.25)
        second = await bound()
        await h.advance(2, step=0.25)
        third = await bound()
        assert first <= 1
        assert second - first == 2
        assert third == 6


async def test_kueue_style_resume_with_a_new_node_selector() -> None:
    async with Harness(nodes=4, nodes_per_pool=2) as h:
        await h.create(
            "jobs.batch",
            {
                "apiVersion": "batch/v1",
                "kind": "Job",
                "metadata": {"name": "queued", "namespace": "default"},
                "spec": {
                    "suspend": True,
                    "completionMode": "Indexed",
                    "completions": 2,
                    "parallelism": 2,
                    "template": {
                        "spec": {
                            "restartPolicy": "Never",
                            "nodeSelector": {"kubernetes.io/os": "non-existing-os"},
                            "containers": [{"name": "c", "image": "i"}],
                        }
                    },
                },
            },
        )
        await h.store.patch(
            "jobs.batch",
            "queued",
            {
                "spec": {
                    "suspend": False,
                    "template": {
                        "spec": {"nodeSelector": {"kubernetes.io/os": None, "cloud.google.com/gke-nodepool": "pool-1"}}
                    },
                }
            },
            "default",
        )
        await h.settle()
        pods = await h.pods()
        assert len(pods) == 2
        assert {p["spec"]["nodeName"] for p in pods} == {"sim-node-00002", "sim-node-00003"}
        assert all(p["status"]["phase"] == "Running" for p in pods)


async def test_pending_pods_count_as_active() -> None:
    async with Harness(nodes=1) as h:
        pod_spec = {
            "restartPolicy": "Never",
            "nodeSelector": {"kubernetes.io/os": "non-existing-os"},
            "containers": [{"name": "c", "image": "i"}],
        }
        await h.create(
            "jobs.batch",
            {
                "apiVersion": "batch/v1",
                "kind": "Job",
                "metadata": {"name": "stuck", "namespace": "default"},
                "spec": {"completions": 3, "parallelism": 3, "template": {"spec": pod_spec}},
            },
        )
        status = h.job("stuck")["status"]
        assert (status["active"], status["ready"]) == (3, 0)
        for p in await h.pods():
            cond = h.condition(p, "PodScheduled")
            assert cond is not None
            assert cond["reason"] == "Unschedulable"


async def test_claims_of_a_scheduled_pod_become_bound() -> None:
    async with Harness(nodes=1) as h:
        await h.create(
            "persistentvolumeclaims",
            {
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "metadata": {"name": "data", "namespace": "default"},
                "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
            },
        )
        pod = bare_pod("user", volumes=[{"name": "d", "persistentVolumeClaim": {"claimName": "data"}}])
        await h.create("pods", pod)
        claim = await h.store.get("persistentvolumeclaims", "data", "default")
        assert claim["status"]["phase"] == "Bound"
        assert claim["status"]["capacity"] == {"storage": "1Gi"}
