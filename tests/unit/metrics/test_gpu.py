"""GPU occupancy computed at scrape time from the Node and Pod stores: per pool, cluster, per JobSet."""

from __future__ import annotations

import pytest

from cache.store import Store
from metrics.hub import MetricsHub
from metrics.readers import pod_gpus
from metrics.settings import OTHER_JOBSET, MetricsSettings
from tools import synthetic as syn


def gpu_hub(settings: MetricsSettings | None = None) -> tuple[MetricsHub, Store, Store]:
    hub = MetricsHub(settings)
    nodes: Store = Store(lambda n: n.metadata.name)
    pods: Store = Store(lambda p: f"{p.metadata.namespace}/{p.metadata.name}")
    hub.watch_gpus(lambda: nodes, lambda: pods)
    return hub, nodes, pods


def v(hub: MetricsHub, name: str, **labels: str) -> float | None:
    return hub.registry.get_sample_value(name, labels)


def test_allocatable_and_requested_per_pool_and_cluster() -> None:
    hub, nodes, pods = gpu_hub()
    for i in range(3):
        nodes.upsert(syn.node(f"a-{i}", "pool-a", gpus=8))
    nodes.upsert(syn.node("b-0", "pool-b", gpus=4))
    nodes.upsert(syn.node("b-1", "pool-b", gpus=4, ready=False))
    nodes.upsert(syn.node("b-2", "pool-b", gpus=4, unschedulable=True))
    nodes.upsert(syn.node("cpu-0", "cpu-pool", gpus=0))
    js = syn.jobset("train", "ns")
    pods.upsert(syn.pod(js, "w", 0, 0, node="a-0", phase="Running", gpus=8))
    pods.upsert(syn.pod(js, "w", 0, 1, node="a-1", phase="Pending", gpus=8))  # bound, not yet running: held
    pods.upsert(syn.pod(js, "w", 0, 2, node="", phase="Pending", gpus=8))  # unscheduled: not held
    pods.upsert(syn.pod(js, "w", 0, 3, node="a-2", phase="Succeeded", gpus=8))  # finished: released
    pods.upsert(syn.pod(js, "w", 1, 0, node="b-0", phase="Running", gpus=2))
    assert v(hub, "jobset_gpu_allocatable", node_pool="pool-a") == 24
    assert v(hub, "jobset_gpu_allocatable", node_pool="pool-b") == 4
    assert v(hub, "jobset_gpu_unavailable", node_pool="pool-b") == 8
    assert v(hub, "jobset_gpu_requested", node_pool="pool-a") == 16
    assert v(hub, "jobset_gpu_requested", node_pool="pool-b") == 2
    assert v(hub, "jobset_gpu_allocatable", node_pool="cpu-pool") is None
    assert v(hub, "jobset_cluster_gpu_allocatable") == 28
    assert v(hub, "jobset_cluster_gpu_requested") == 18
    # The tracker has never seen this JobSet: its pods count under the shared label.
    assert v(hub, "jobset_gpus_held", namespace="ns", jobset_name=OTHER_JOBSET) == 18


def test_gpus_held_per_jobset_use_the_tracker_label() -> None:
    hub, nodes, pods = gpu_hub(MetricsSettings(max_jobsets=1))
    nodes.upsert(syn.node("n0", "p", gpus=16))
    first, second = syn.jobset("first", "ns"), syn.jobset("second", "ns")
    hub.tracker.on_jobset(None, first)
    hub.tracker.on_jobset(None, second)
    pods.upsert(syn.pod(first, "w", 0, 0, node="n0", phase="Running", gpus=4))
    pods.upsert(syn.pod(second, "w", 0, 0, node="n0", phase="Running", gpus=3))
    assert v(hub, "jobset_gpus_held", namespace="ns", jobset_name="first") == 4
    assert v(hub, "jobset_gpus_held", namespace="ns", jobset_name=OTHER_JOBSET) == 3


def test_pod_on_an_unknown_node_counts_in_the_unnamed_pool() -> None:
    hub, _, pods = gpu_hub()
    pods.upsert(syn.pod(syn.jobset("j", "ns"), "w", 0, 0, node="gone", phase="Running", gpus=1))
    assert v(hub, "jobset_gpu_requested", node_pool="") == 1


@pytest.mark.parametrize(
    ("requests", "limits", "expected"),
    [
        ({"nvidia.com/gpu": "8"}, {}, 8),
        ({}, {"nvidia.com/gpu": "2"}, 2),  # extended resources: request defaults to the limit
        ({"nvidia.com/gpu": "1"}, {"nvidia.com/gpu": "1"}, 1),
        ({"nvidia.com/gpu": "bogus"}, {}, 0),
        ({"cpu": "4"}, {}, 0),
    ],
)
def test_pod_gpus_reads_requests_then_limits(requests: dict[str, str], limits: dict[str, str], expected: int) -> None:
    import msgspec

    from api.records import Pod

    pod = msgspec.convert(
        {"spec": {"containers": [{"resources": {"requests": requests, "limits": limits}}, {"resources": {}}]}}, Pod
    )
    assert pod_gpus(pod, "nvidia.com/gpu") == expected


def test_custom_gpu_resource_and_pool_label() -> None:
    hub, nodes, _ = gpu_hub(MetricsSettings(gpu_resource="amd.com/gpu", node_pool_label="pool"))
    import msgspec

    from api.records import Node

    nodes.upsert(
        msgspec.convert(
            {
                "metadata": {"name": "x", "labels": {"pool": "mi300"}},
                "status": {"allocatable": {"amd.com/gpu": "8"}, "conditions": [{"type": "Ready", "status": "True"}]},
            },
            Node,
        )
    )
    nodes.upsert(syn.node("nv", "other", gpus=8))
    assert v(hub, "jobset_gpu_allocatable", node_pool="mi300") == 8
    assert v(hub, "jobset_cluster_gpu_allocatable") == 8
