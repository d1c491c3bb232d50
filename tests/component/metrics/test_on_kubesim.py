"""The acceptance story end to end: the real controller on the simulated cluster, with metrics attached.

A JobSet of 2 Jobs x 2 pods, each pod asking for a whole 8-GPU node (4 nodes in 2 pools), starts; one Job's
pods fail in the first attempt (``sim.pyjobset.io/fail-when``), the failure policy restarts the JobSet once, the
second attempt runs and completes. The metrics must then show exactly one restart with the rule's labels, a
start-up and a restart observation of every phase, one recovery, one completion, and — while the second attempt
runs — the right GPU occupancy figures.

The controller is wired the way ``Controller.attach_metrics`` documents: a work queue built with
``hub.queue_metrics``, and the Pod and Node informers of ``informers_for_metrics`` added for the tracker and the
GPU collector.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from api import constants as c
from cache.client import ApiClient, load_cluster_config, resource_path
from cache.queue import WorkQueue
from controller.app import Controller
from controller.settings import load_settings
from metrics.hub import MetricsHub, informers_for_metrics
from tests.builders import JobSetBuilder
from tests.conftest import EXTERNAL_KUBECONFIG

pytestmark = pytest.mark.skipif(bool(EXTERNAL_KUBECONFIG), reason="needs the controller in the test's loop")

GPU = "nvidia.com/gpu"


@pytest.fixture
async def kubeconfig(tmp_path: Path) -> AsyncIterator[str]:
    import kubesim

    async with kubesim.SimCluster(nodes=4, gpus_per_node=8, nodes_per_pool=2) as sim:
        yield sim.write_kubeconfig(tmp_path / "kubeconfig")


class Waiter:
    """Resolves when ``predicate()`` holds, re-checked after every informer event and applied plan (no polling)."""

    def __init__(self) -> None:
        self.checks: list[tuple[Callable[[], bool], asyncio.Event]] = []

    def plan_applied(self, _js: Any, _plan: Any) -> None:
        self.handler(None, None)

    def handler(self, _old: Any, _new: Any) -> None:
        for predicate, event in self.checks:
            if not event.is_set() and predicate():
                event.set()

    async def until(self, predicate: Callable[[], bool], limit: float = 30.0) -> None:
        event = asyncio.Event()
        if predicate():
            return
        self.checks.append((predicate, event))
        async with asyncio.timeout(limit):
            await event.wait()


@pytest.fixture
async def wired(kubeconfig: str, jobset_crd: None) -> AsyncIterator[tuple[MetricsHub, Waiter]]:
    config = await load_cluster_config(kubeconfig)
    hub = MetricsHub()
    waiter = Waiter()
    async with ApiClient(config) as client:
        ctl = Controller(load_settings(overrides={"leader_election.leader_elect": False}), client)
        queue: WorkQueue[str] = WorkQueue(name="jobset", metrics=hub.queue_metrics("jobset"))
        ctl.queue = ctl.reconciler.queue = queue
        ctl.informers += informers_for_metrics(client, (inf.name for inf in ctl.informers))
        ctl.attach_metrics(hub)
        for inf in ctl.informers:
            inf.add_handler(waiter.handler)
        ctl.reconciler.actor.observers.append(waiter)
        stop = asyncio.Event()
        task = asyncio.create_task(ctl.run(stop))
        await asyncio.wait_for(ctl.ready.wait(), 30)
        try:
            yield hub, waiter
        finally:
            stop.set()
            await task


def story(namespace: str) -> dict[str, Any]:
    obj = (
        JobSetBuilder("train", namespace)
        .rjob(
            "workers",
            2,
            parallelism=2,
            completions=2,
            backoff_limit=0,
            pod_annotations={
                "sim.pyjobset.io/run-seconds": "2",
                "sim.pyjobset.io/fail-when": f"{c.RESTART_ATTEMPT_KEY}=0,{c.JOB_INDEX_KEY}=0",
            },
        )
        .set("spec.failurePolicy", {"maxRestarts": 2, "rules": [{"name": "nodeFailure", "action": "RestartJobSet"}]})
        .obj()
    )
    pod_spec = obj["spec"]["replicatedJobs"][0]["template"]["spec"]["template"]["spec"]
    pod_spec["terminationGracePeriodSeconds"] = 0
    pod_spec["containers"][0]["resources"] = {"requests": {GPU: "8"}, "limits": {GPU: "8"}}
    return obj


async def test_start_fail_restart_complete_shows_in_the_metrics(
    api: ApiClient, namespace: str, wired: tuple[MetricsHub, Waiter]
) -> None:
    hub, waiter = wired

    def v(metric: str, /, **labels: str) -> float | None:
        return hub.registry.get_sample_value(metric, labels)

    assert v("jobset_cluster_gpu_allocatable") == 32
    assert v("jobset_gpu_allocatable", node_pool="pool-0") == 16
    await api.create(resource_path(c.GROUP, c.VERSION, c.PLURAL, namespace), story(namespace))

    def second_attempt_running() -> bool:
        view = hub.tracker.views.get(f"{namespace}/train")
        return view is not None and view.attempt == 1 and view.state == "Running"

    await waiter.until(second_attempt_running)
    gpu_figures = {
        "cluster_requested": v("jobset_cluster_gpu_requested"),
        "pool_0_requested": v("jobset_gpu_requested", node_pool="pool-0"),
        "pool_1_requested": v("jobset_gpu_requested", node_pool="pool-1"),
        "held": v("jobset_gpus_held", namespace=namespace, jobset_name="train"),
    }
    assert gpu_figures == {"cluster_requested": 32, "pool_0_requested": 16, "pool_1_requested": 16, "held": 32}

    def completed() -> bool:
        return v("jobset_completed_total", jobset_name="train", namespace=namespace) == 1

    await waiter.until(completed)
    restarts = [
        s
        for m in hub.registry.collect()
        if m.name == "jobset_restarts"
        for s in m.samples
        if s.name.endswith("_total") and s.labels["namespace"] == namespace
    ]
    assert len(restarts) == 1
    assert restarts[0].value == 1
    assert restarts[0].labels["jobset_name"] == "train"
    assert restarts[0].labels["action"] == "RestartJobSet"
    assert restarts[0].labels["rule"] == "nodeFailure"
    for trigger in ("create", "restart"):
        for phase in ("jobs_created", "pods_scheduled", "pods_running", "pods_ready"):
            labels = {"trigger": trigger, "phase": phase}
            assert v("jobset_startup_phase_seconds_count", **labels) == 1, labels
        assert v("jobset_startup_seconds_count", namespace=namespace, trigger=trigger) == 1
    assert v("jobset_recovery_seconds_count", namespace=namespace, action="RestartJobSet") == 1
    assert v("jobset_completed_total", jobset_name="train", namespace=namespace) == 1
    assert v("jobset_failed_total", jobset_name="train", namespace=namespace) is None
    assert v("controller_runtime_reconcile_total", controller="jobset", result="success") > 0  # type: ignore[operator]
    assert v("workqueue_adds_total", name="jobset") > 0  # type: ignore[operator]
    assert v("rest_client_requests_total", code="201", method="POST", host=f"127.0.0.1:{api_port(api)}") > 0  # type: ignore[operator]


def api_port(api: ApiClient) -> str:
    return api.config.server.rsplit(":", 1)[1]
