"""The placement-repair controller against the simulated API server (behaviour.md §5.3, D1: the pods/status write).

Pods are created by hand (no Job controller involved): a leader bound to a pool-0 node and followers whose node
selector names pool-1. Followers carry a test finalizer so that, after the controller deletes them, they stay
visible with their ``deletionTimestamp`` and the condition written through ``pods/status``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

import kubesim
from api import constants as c
from api.records import Node, Pod
from cache.client import ApiClient, resource_path
from cache.errors import ApiError
from cache.informer import Informer
from cache.store import Store
from controller.placement import (
    POD_JOB_KEY_INDEX,
    POD_NAME_INDEX,
    VIOLATION_MESSAGE,
    VIOLATION_REASON,
    PlacementRepair,
    pod_job_key_index,
    pod_name_index,
)
from tests.conftest import wait_for

JSON = dict[str, Any]
POOL = "cloud.google.com/gke-nodepool"
HOLD = "test.pyjobset.io/hold"


@pytest.fixture
async def sim() -> AsyncIterator[kubesim.SimCluster]:
    async with kubesim.SimCluster(nodes=4, nodes_per_pool=2) as cluster:
        yield cluster


@pytest.fixture
def kubeconfig(sim: kubesim.SimCluster, tmp_path: Path) -> str:
    return sim.write_kubeconfig(tmp_path / "kubeconfig")


@pytest.fixture
async def repair(api: ApiClient) -> AsyncIterator[PlacementRepair]:
    pods: Store[Pod] = Store(lambda p: p.key, {POD_NAME_INDEX: pod_name_index, POD_JOB_KEY_INDEX: pod_job_key_index})
    nodes: Store[Node] = Store(lambda n: n.key)
    pod_inf = Informer(api, resource_path("", "v1", "pods"), Pod, pods, name="pods", label_selector=c.JOBSET_NAME_KEY)
    node_inf = Informer(api, resource_path("", "v1", "nodes"), Node, nodes, name="nodes")
    ctl = PlacementRepair(pods, nodes, api)
    pod_inf.add_handler(ctl.on_pod)
    ctl.informer = pod_inf  # type: ignore[attr-defined]  # for tests that wait on cache events
    informers = [asyncio.create_task(inf.run(), name=f"informer:{inf.name}") for inf in (pod_inf, node_inf)]
    worker = asyncio.create_task(ctl.run(), name="placement-repair")
    try:
        yield ctl
    finally:
        ctl.queue.shut_down()
        for t in informers:
            t.cancel()
        for t in [*informers, worker]:
            with contextlib.suppress(asyncio.CancelledError):
                await t


def pod(name: str, ns: str, owner: JSON, *, index: str, node_name: str = "", selector: str | None = None) -> JSON:
    meta: JSON = {
        "name": name,
        "namespace": ns,
        "labels": {c.JOBSET_NAME_KEY: "js", c.REPLICATED_JOB_NAME_KEY: "rj", c.JOB_INDEX_KEY: "0", c.JOB_KEY: "k1"},
        "annotations": {c.EXCLUSIVE_TOPOLOGY_KEY: POOL, c.JOB_COMPLETION_INDEX_ANNOTATION: index},
        "ownerReferences": [
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "name": "owner",
                "uid": owner["metadata"]["uid"],
                "controller": True,
            }
        ],
    }
    spec: JSON = {"containers": [{"name": "c", "image": "busybox"}]}
    if node_name:
        spec["nodeName"] = node_name
    else:
        meta["finalizers"] = [HOLD]
    if selector is not None:
        spec["nodeSelector"] = {POOL: selector}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec}


async def release(api: ApiClient, ns: str) -> None:
    listed = await api.get(resource_path("", "v1", "pods", ns))
    for p in listed["items"]:
        if HOLD in (p["metadata"].get("finalizers") or []):
            with contextlib.suppress(ApiError):
                await api.patch(
                    resource_path("", "v1", "pods", ns, p["metadata"]["name"]), {"metadata": {"finalizers": None}}
                )


async def test_misplaced_followers_are_marked_then_deleted(
    repair: PlacementRepair, api: ApiClient, namespace: str
) -> None:
    owner = await api.create(resource_path("", "v1", "configmaps", namespace), {"metadata": {"name": "owner"}})
    create = resource_path("", "v1", "pods", namespace)
    try:
        await api.create(create, pod("js-rj-0-1-aaaaa", namespace, owner, index="1", selector="pool-1"))
        await api.create(create, pod("js-rj-0-2-bbbbb", namespace, owner, index="2", selector="pool-0"))
        await api.create(create, pod("js-rj-0-0-lllll", namespace, owner, index="0", node_name="sim-node-00000"))

        def disrupted(items: list[JSON]) -> list[JSON] | None:
            followers = [p for p in items if p["metadata"]["annotations"][c.JOB_COMPLETION_INDEX_ANNOTATION] != "0"]
            done = [p for p in followers if p["metadata"].get("deletionTimestamp")]
            return followers if len(done) == 2 else None

        followers = await wait_for(api, create, disrupted)
        for p in followers:  # every follower, including the one already in the right pool
            (cond,) = [x for x in p["status"]["conditions"] if x["type"] == "DisruptionTarget"]
            assert (cond["status"], cond["reason"], cond["message"]) == ("True", VIOLATION_REASON, VIOLATION_MESSAGE)
        leader = await api.get(f"{create}/js-rj-0-0-lllll")
        assert not leader["metadata"].get("deletionTimestamp")
        assert repair.repairs >= 1  # a follower event seen before the delete may repeat the (idempotent) repair
    finally:
        await release(api, namespace)


async def test_well_placed_followers_are_left_alone(repair: PlacementRepair, api: ApiClient, namespace: str) -> None:
    owner = await api.create(resource_path("", "v1", "configmaps", namespace), {"metadata": {"name": "owner"}})
    create = resource_path("", "v1", "pods", namespace)
    try:
        await api.create(create, pod("js-rj-0-1-aaaaa", namespace, owner, index="1", selector="pool-0"))
        # Once the scheduled leader is in the cache, judge it (the worker does the same on the same event).
        cached = asyncio.Event()
        repair.informer.add_handler(  # type: ignore[attr-defined]
            lambda _old, new: cached.set() if new is not None and new.spec.node_name else None
        )
        await api.create(create, pod("js-rj-0-0-lllll", namespace, owner, index="0", node_name="sim-node-00001"))
        await asyncio.wait_for(cached.wait(), 30)
        await repair.reconcile(f"{namespace}/js-rj-0-0-lllll")
        assert repair.repairs == 0
        follower = await api.get(f"{create}/js-rj-0-1-aaaaa")
        assert not follower["metadata"].get("deletionTimestamp")
        assert not any(x["type"] == "DisruptionTarget" for x in follower.get("status", {}).get("conditions") or [])
    finally:
        await release(api, namespace)
