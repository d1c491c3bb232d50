"""Exclusive placement end to end on the simulated cluster: JobSet controller, webhooks, scheduler, repair.

Everything runs as in a real cluster: the JobSet controller creates Jobs carrying the exclusive-topology
annotation, the simulated Job controller creates pods, the simulated API server sends them to our pod webhooks
(leader affinities, follower node selectors, followers held back until their leader is scheduled), the
simulated scheduler honours the affinities, and the placement-repair controller watches the pods.

The cluster has 4 node pools of 2 nodes (``cloud.google.com/gke-nodepool``: pool-0 .. pool-3).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest

import kubesim
from api import constants as c
from api.records import Node, Pod
from cache.client import ApiClient, load_cluster_config, resource_path
from cache.informer import Informer
from cache.store import Store
from controller.app import Controller
from controller.placement import POD_INDEXERS, VIOLATION_REASON, PlacementRepair
from controller.reconciler import JOBSET_LABEL_INDEX, jobset_label_index
from controller.settings import load_settings
from controller.webhooks.server import WebhookServer, build_webhook_server
from tests.builders import JobSetBuilder
from tests.component.controller.test_admission import SERVICE, SYSTEM_NS, install_webhook_manifests
from tests.conftest import wait_for

JSON = dict[str, Any]
POOL = "cloud.google.com/gke-nodepool"
ADMISSION = "admissionregistration.k8s.io"


@pytest.fixture
async def sim() -> AsyncIterator[kubesim.SimCluster]:
    # Replacement pods after a repair should not wait out the 10 s pod-failure backoff of a real Job controller.
    options = {"pod_failure_backoff_seconds": 0.05, "pod_failure_backoff_max_seconds": 0.5}
    async with kubesim.SimCluster(nodes=8, nodes_per_pool=2, cluster_options=options) as cluster:
        yield cluster


@pytest.fixture
def kubeconfig(sim: kubesim.SimCluster, tmp_path: Path) -> str:
    return sim.write_kubeconfig(tmp_path / "kubeconfig")


@dataclass
class Stack:
    api: ApiClient
    server: WebhookServer
    repair: PlacementRepair
    nodes: Store[Node]


@pytest.fixture
async def stack(
    sim: kubesim.SimCluster, kubeconfig: str, api: ApiClient, jobset_crd: None, tmp_path: Path
) -> AsyncIterator[Stack]:
    """Webhooks + JobSet controller + placement repair, wired the way ``controller.app`` should wire them."""
    await install_webhook_manifests(api)
    settings = load_settings(overrides={"leader_election.leader_elect": False})
    async with ApiClient(await load_cluster_config(kubeconfig)) as client:
        pods: Store[Pod] = Store(lambda p: p.key, {JOBSET_LABEL_INDEX: jobset_label_index, **POD_INDEXERS})
        nodes: Store[Node] = Store(lambda n: n.key)
        pod_inf = Informer(
            client, resource_path("", "v1", "pods"), Pod, pods, name="pods", label_selector=c.JOBSET_NAME_KEY
        )
        node_inf = Informer(client, resource_path("", "v1", "nodes"), Node, nodes, name="nodes")
        repair = PlacementRepair(pods, nodes, client)
        pod_inf.add_handler(repair.on_pod)
        server = build_webhook_server(settings, client, pods, nodes, host="127.0.0.1", port=0)
        server.certs.cert_dir = str(tmp_path / "certs")
        tasks = [asyncio.create_task(inf.run(), name=f"informer:{inf.name}") for inf in (pod_inf, node_inf)]
        await asyncio.wait_for(asyncio.gather(pod_inf.synced.wait(), node_inf.synced.wait()), 30)
        assert await server.start()
        assert sim.admission is not None
        sim.admission.endpoints[(SYSTEM_NS, SERVICE)] = f"https://127.0.0.1:{server.bound_port}"
        tasks.append(asyncio.create_task(repair.run(), name="placement-repair"))
        ctl = Controller(settings, client)
        stop = asyncio.Event()
        tasks.append(asyncio.create_task(ctl.run(stop), name="jobset-controller"))
        await asyncio.wait_for(ctl.ready.wait(), 30)
        try:
            yield Stack(client, server, repair, nodes)
        finally:
            stop.set()
            repair.queue.shut_down()
            await server.stop()
            for t in tasks[:2]:
                t.cancel()
            for t in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await t


def exclusive_jobset(name: str, namespace: str, *, pods_per_job: int, jobs: int) -> JSON:
    js = (
        JobSetBuilder(name, namespace)
        .rjob("w", jobs, parallelism=pods_per_job, completions=pods_per_job, backoff_limit=100)
        .annotate(c.EXCLUSIVE_TOPOLOGY_KEY, POOL)
        .obj()
    )
    # Deletions by the repair controller carry DisruptionTarget: the Job ignores them (the documented pairing).
    js["spec"]["replicatedJobs"][0]["template"]["spec"]["podFailurePolicy"] = {
        "rules": [{"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]}]
    }
    return js


def pools_by_job(pods: list[JSON], nodes: Store[Node]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for p in pods:
        node = nodes.get(p["spec"].get("nodeName", ""))
        out.setdefault(p["metadata"]["labels"][c.JOB_KEY], set()).add(node.metadata.labels[POOL] if node else "?")
    return out


def placed(expected: int) -> Any:
    def check(items: list[JSON]) -> list[JSON] | None:
        live = [p for p in items if not p["metadata"].get("deletionTimestamp")]
        if len(live) == expected and all(p["spec"].get("nodeName") for p in live):
            return live
        return None

    return check


async def test_each_job_gets_a_node_pool_of_its_own(stack: Stack, namespace: str) -> None:
    path = resource_path("jobset.x-k8s.io", "v1alpha2", "jobsets", namespace)
    for name in ("alpha", "beta"):
        await stack.api.create(path, exclusive_jobset(name, namespace, pods_per_job=2, jobs=2))
    pods = await wait_for(stack.api, resource_path("", "v1", "pods", namespace), placed(8), limit=60)
    by_job = pools_by_job(pods, stack.nodes)
    assert len(by_job) == 4
    assert all(len(pools) == 1 for pools in by_job.values()), by_job  # every job's pods in one pool
    assert len(set().union(*by_job.values())) == 4, by_job  # and no two jobs share a pool
    for p in pods:
        ann = p["metadata"]["annotations"]
        if ann[c.JOB_COMPLETION_INDEX_ANNOTATION] == "0":
            assert p["spec"]["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
            assert p["metadata"]["labels"][c.PRIORITY_KEY] == "0"
        else:
            node = stack.nodes.get(p["spec"]["nodeName"])
            assert node is not None
            assert p["spec"]["nodeSelector"][POOL] == node.metadata.labels[POOL]
    assert stack.repair.repairs == 0


async def watch_disruptions(api: ApiClient, namespace: str, seen: list[str]) -> None:
    path = resource_path("", "v1", "pods", namespace)
    listed = await api.get(path)
    params = {"resourceVersion": listed["metadata"]["resourceVersion"], "allowWatchBookmarks": "false"}
    async for line in api.watch(path, params):
        pod = orjson.loads(line).get("object") or {}
        for cond in (pod.get("status") or {}).get("conditions") or []:
            if cond.get("type") == "DisruptionTarget" and cond.get("reason") == VIOLATION_REASON:
                seen.append(pod["metadata"]["name"])


async def test_follower_that_escaped_the_webhooks_is_repaired(stack: Stack, namespace: str) -> None:
    api = stack.api
    path = resource_path("jobset.x-k8s.io", "v1alpha2", "jobsets", namespace)
    await api.create(path, exclusive_jobset("gamma", namespace, pods_per_job=3, jobs=1))
    pods_path = resource_path("", "v1", "pods", namespace)
    pods = await wait_for(api, pods_path, placed(3), limit=60)
    (pool,) = pools_by_job(pods, stack.nodes).values()

    # The pod webhooks go away for a moment (say a botched re-install): a replacement follower is admitted
    # without its leader's node selector, so nothing keeps it in the leader's pool.
    saved: dict[str, JSON] = {}
    for plural, name in (
        ("mutatingwebhookconfigurations", "jobset-mutating-webhook-configuration"),
        ("validatingwebhookconfigurations", "jobset-validating-webhook-configuration"),
    ):
        conf_path = resource_path(ADMISSION, "v1", plural, name=name)
        conf = await api.get(conf_path)
        saved[conf_path] = copy.deepcopy(conf)
        conf["webhooks"] = [h for h in conf["webhooks"] if not h["name"].endswith("pod.kb.io")]
        await api.replace(conf_path, conf)

    seen: list[str] = []
    watcher = asyncio.create_task(watch_disruptions(api, namespace, seen))
    try:
        follower = next(p for p in pods if p["metadata"]["annotations"][c.JOB_COMPLETION_INDEX_ANNOTATION] == "1")
        await api.delete(f"{pods_path}/{follower['metadata']['name']}")

        def escaped(items: list[JSON]) -> bool:
            return any(
                p["metadata"]["annotations"][c.JOB_COMPLETION_INDEX_ANNOTATION] != "0"
                and POOL not in (p["spec"].get("nodeSelector") or {})
                for p in items
            )

        await wait_for(api, pods_path, escaped, limit=30)
        # Put the pod webhooks back; the repair controller must still find and fix the misplaced follower.
        for conf_path, conf in saved.items():
            current = await api.get(conf_path)
            conf["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
            await api.replace(conf_path, conf)

        def repaired(items: list[JSON]) -> list[JSON] | None:
            live: list[JSON] | None = placed(3)(items)
            if not live or not seen:
                return None
            followers = [p for p in live if p["metadata"]["annotations"][c.JOB_COMPLETION_INDEX_ANNOTATION] != "0"]
            if all((p["spec"].get("nodeSelector") or {}).get(POOL) in pool for p in followers):
                return live
            return None

        live = await wait_for(api, pods_path, repaired, limit=60)
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
    assert stack.repair.repairs >= 1
    assert pools_by_job(live, stack.nodes) == {live[0]["metadata"]["labels"][c.JOB_KEY]: pool}
    leader = next(p for p in live if p["metadata"]["annotations"][c.JOB_COMPLETION_INDEX_ANNOTATION] == "0")
    assert leader["metadata"]["name"] not in seen  # the leader is never disrupted
