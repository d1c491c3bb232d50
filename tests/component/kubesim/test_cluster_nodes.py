"""Simulated nodes: shape, pools, and the ``sim.pyjobset.io/fail`` annotation."""

from __future__ import annotations

from typing import Any

from kubesim.cluster.testing import Harness

JSON = dict[str, Any]


def ready(node: JSON) -> str:
    return str(next(c["status"] for c in node["status"]["conditions"] if c["type"] == "Ready"))


async def test_nodes_have_capacity_labels_and_pools() -> None:
    async with Harness(nodes=10, gpus_per_node=4, nodes_per_pool=4) as h:
        nodes = await h.store.list("nodes")
        assert len(nodes) == 10
        first = nodes[0]
        labels = first["metadata"]["labels"]
        assert labels["kubernetes.io/hostname"] == first["metadata"]["name"]
        assert labels["kubernetes.io/os"] == "linux"
        assert labels["topology.kubernetes.io/zone"].startswith("sim-zone-")
        assert first["status"]["capacity"]["nvidia.com/gpu"] == "4"
        assert first["status"]["allocatable"]["nvidia.com/gpu"] == "4"
        assert {"cpu", "memory", "pods"} <= set(first["status"]["allocatable"])
        assert ready(first) == "True"
        pools: dict[str, int] = {}
        for n in nodes:
            pool = n["metadata"]["labels"]["cloud.google.com/gke-nodepool"]
            pools[pool] = pools.get(pool, 0) + 1
        assert sorted(pools.values()) == [2, 4, 4]


async def test_no_gpu_resource_when_gpus_per_node_is_zero() -> None:
    async with Harness(nodes=1, gpus_per_node=0) as h:
        (node,) = await h.store.list("nodes")
        assert "nvidia.com/gpu" not in node["status"]["capacity"]


async def test_failed_node_goes_not_ready_and_fails_its_pods_with_disruption_target() -> None:
    async with Harness(nodes=1) as h:
        await h.create(
            "jobs.batch",
            {
                "apiVersion": "batch/v1",
                "kind": "Job",
                "metadata": {"name": "victim", "namespace": "default"},
                "spec": {
                    "backoffLimit": 0,
                    "template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "i"}]}},
                },
            },
        )
        (pod,) = await h.pods()
        node_name = pod["spec"]["nodeName"]
        await h.store.patch("nodes", node_name, {"metadata": {"annotations": {"sim.pyjobset.io/fail": "true"}}})
        await h.settle()
        node = await h.store.get("nodes", node_name)
        assert ready(node) == "False"
        assert {(t["key"], t["effect"]) for t in node["spec"]["taints"]} == {
            ("node.kubernetes.io/not-ready", "NoSchedule"),
            ("node.kubernetes.io/not-ready", "NoExecute"),
        }
        (pod,) = await h.pods()
        assert pod["status"]["phase"] == "Failed"
        disruption = h.condition(pod, "DisruptionTarget")
        assert disruption is not None
        assert disruption["status"] == "True"
        assert disruption["reason"] == "DeletionByTaintManager"
        job = h.job("victim")
        assert job["status"]["failed"] == 1
        events = await h.events()
        assert (node_name, "NodeNotReady", f"Node {node_name} status is now: NodeNotReady") in events
        assert any(r == "TaintManagerEviction" for name, r, _ in events if name == pod["metadata"]["name"])

        await h.store.patch("nodes", node_name, {"metadata": {"annotations": {"sim.pyjobset.io/fail": None}}})
        await h.settle()
        node = await h.store.get("nodes", node_name)
        assert ready(node) == "True"
        assert not node["spec"].get("taints")


async def test_pod_failure_policy_can_ignore_node_failures() -> None:
    rules = [{"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]}]
    async with Harness(nodes=2) as h:
        await h.create(
            "jobs.batch",
            {
                "apiVersion": "batch/v1",
                "kind": "Job",
                "metadata": {"name": "tolerant", "namespace": "default"},
                "spec": {
                    "backoffLimit": 0,
                    "podFailurePolicy": {"rules": rules},
                    "template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "i"}]}},
                },
            },
        )
        (pod,) = await h.pods()
        await h.store.patch(
            "nodes", pod["spec"]["nodeName"], {"metadata": {"annotations": {"sim.pyjobset.io/fail": "true"}}}
        )
        await h.advance(10)
        job = h.job("tolerant")
        assert job["status"].get("failed", 0) == 0
        assert h.condition(job, "Failed") is None
        live = [p for p in await h.pods() if p["status"]["phase"] == "Running"]
        assert len(live) == 1
        assert live[0]["spec"]["nodeName"] != pod["spec"]["nodeName"]  # the failed node is tainted


async def test_pods_of_a_deleted_node_fail_and_are_collected() -> None:
    async with Harness(nodes=1) as h:
        await h.create(
            "jobs.batch",
            {
                "apiVersion": "batch/v1",
                "kind": "Job",
                "metadata": {"name": "orphan-node", "namespace": "default"},
                "spec": {
                    "backoffLimit": 0,
                    "template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "i"}]}},
                },
            },
        )
        (pod,) = await h.pods()
        await h.store.delete("nodes", pod["spec"]["nodeName"])
        await h.settle()
        assert await h.pods() == []
        job = h.job("orphan-node")
        assert job["status"]["failed"] == 1
        assert h.condition(job, "Failed") is not None
