"""A real Prometheus scrapes the real controller while JobSets run on the simulated cluster.

The controller runs in the test's loop against kubesim (4 nodes x 8 GPUs in 2 pools) with metrics attached, a
Lease leader elector reporting ``leader_election_master_status``, and our ``/metrics`` server; Prometheus
(Debian's package, started on 127.0.0.1 by the test) scrapes it every second with our alert rules loaded.

Scenario: ``train`` starts, fails once, restarts and completes; ``doomed`` fails for good (maxRestarts 0); then
``waiting`` starts with one pod running on 8 GPUs and one that can never be scheduled (16 GPUs), so it stays
Starting while holding GPUs. Every dashboard query and alert base must then parse and return data.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from api import constants as c
from cache.client import ApiClient, load_cluster_config, resource_path
from cache.leader import ClientLeaseApi, LeaderElectionConfig, LeaderElector
from cache.queue import WorkQueue
from controller.app import Controller
from controller.settings import load_settings
from metrics.hub import MetricsHub, informers_for_metrics
from metrics.server import ObservabilityServer
from tests.builders import JobSetBuilder
from tests.component.metrics.test_on_kubesim import Waiter
from tests.component.metrics.test_prometheus_queries import Prom, check_every_query, running_prometheus
from tests.conftest import EXTERNAL_KUBECONFIG

pytestmark = pytest.mark.skipif(bool(EXTERNAL_KUBECONFIG), reason="needs the controller in the test's loop")

GPU = "nvidia.com/gpu"
SIM = "sim.pyjobset.io/"


@pytest.fixture
async def kubeconfig(tmp_path: Path) -> AsyncIterator[str]:
    import kubesim

    async with kubesim.SimCluster(nodes=4, gpus_per_node=8, nodes_per_pool=2) as sim:
        yield sim.write_kubeconfig(tmp_path / "kubeconfig")


def with_gpus(obj: dict[str, Any], rjob_index: int, gpus: int) -> dict[str, Any]:
    pod_spec = obj["spec"]["replicatedJobs"][rjob_index]["template"]["spec"]["template"]["spec"]
    pod_spec["terminationGracePeriodSeconds"] = 0
    pod_spec["containers"][0]["resources"] = {"requests": {GPU: str(gpus)}, "limits": {GPU: str(gpus)}}
    return obj


def train(ns: str) -> dict[str, Any]:
    annotations = {SIM + "run-seconds": "2", SIM + "fail-when": f"{c.RESTART_ATTEMPT_KEY}=0,{c.JOB_INDEX_KEY}=0"}
    obj = (
        JobSetBuilder("train", ns)
        .rjob("workers", 2, parallelism=2, completions=2, backoff_limit=0, pod_annotations=annotations)
        .set("spec.failurePolicy", {"maxRestarts": 2, "rules": [{"name": "nodeFailure", "action": "RestartJobSet"}]})
        .obj()
    )
    return with_gpus(obj, 0, 8)


def doomed(ns: str) -> dict[str, Any]:
    annotations = {SIM + "run-seconds": "1", SIM + "exit-code": "1"}
    return (
        JobSetBuilder("doomed", ns)
        .rjob("w", 1, backoff_limit=0, pod_annotations=annotations)
        .set("spec.failurePolicy", {"maxRestarts": 0})
        .obj()
    )


def waiting(ns: str) -> dict[str, Any]:
    obj = JobSetBuilder("waiting", ns).rjob("small", 1).rjob("big", 1).obj()
    return with_gpus(with_gpus(obj, 0, 8), 1, 16)


@pytest.fixture
async def stack(
    kubeconfig: str, jobset_crd: None, namespace: str, tmp_path: Path
) -> AsyncIterator[tuple[MetricsHub, Waiter, Prom]]:
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
        lease = LeaderElectionConfig(namespace=namespace, lease_duration=3, renew_deadline=2, retry_period=0.5)
        lead = hub.leader(lease.name)
        elector = LeaderElector(
            ClientLeaseApi(client),
            lease,
            on_started_leading=lead.started_leading,
            on_stopped_leading=lead.stopped_leading,
        )
        server = ObservabilityServer(
            hub.render, "127.0.0.1:0", "127.0.0.1:0", readiness_checks={"caches-synced": ctl.ready.is_set}
        )
        await server.start()
        stop = asyncio.Event()
        campaign = asyncio.create_task(elector.run(), name="elector")
        task = asyncio.create_task(ctl.run(stop, leading=elector.wait_leading), name="controller")
        try:
            await asyncio.wait_for(ctl.ready.wait(), 30)
            async with running_prometheus(tmp_path, server.ports["metrics"]) as prom:
                yield hub, waiter, prom
        finally:
            stop.set()
            await task
            campaign.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await campaign
            await server.stop()


async def test_dashboards_and_alerts_over_a_real_run(
    api: ApiClient, namespace: str, stack: tuple[MetricsHub, Waiter, Prom]
) -> None:
    hub, waiter, prom = stack

    def v(metric: str, /, **labels: str) -> float | None:
        return hub.registry.get_sample_value(metric, labels)

    path = resource_path(c.GROUP, c.VERSION, c.PLURAL, namespace)
    await api.create(path, train(namespace))
    await api.create(path, doomed(namespace))
    await waiter.until(lambda: v("jobset_completed_total", jobset_name="train", namespace=namespace) == 1)
    await waiter.until(lambda: v("jobset_failed_total", jobset_name="doomed", namespace=namespace) == 1)
    await api.create(path, waiting(namespace))
    await waiter.until(lambda: v("jobset_gpus_held", namespace=namespace, jobset_name="waiting") == 8)
    assert v("jobset_status", namespace=namespace, jobset_name="waiting", state="Starting") == 1
    assert v("leader_election_master_status", name="6d4f6a47.jobset.x-k8s.io") == 1

    # Two samples of the newest series inside the 1m windows that rate() and increase() use.
    await prom.until(f'count_over_time(jobset_gpus_held{{namespace="{namespace}"}}[1m]) >= 2')
    await prom.until('count_over_time(jobset_completed_total{jobset_name="train"}[1m]) >= 2')
    await check_every_query(prom)
    restarts = await prom.query(f'jobset_restarts_total{{namespace="{namespace}"}}')
    [series] = restarts["data"]["result"]
    assert series["metric"]["rule"] == "nodeFailure"
    assert series["value"][1] == "1"
    idle = await prom.query(f'jobset_gpu_idle_seconds_total{{namespace="{namespace}", jobset_name="waiting"}}')
    assert float(idle["data"]["result"][0]["value"][1]) > 0
