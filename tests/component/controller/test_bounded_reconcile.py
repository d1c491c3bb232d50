"""Never block, never starve, stop when told: the controller with a large JobSet in flight on kubesim.

* a small JobSet gets its Jobs while a large one is still being created (bounded passes, requeued behind it);
* deleting or suspending a JobSet in the middle of one Plan stops its creates: no create starts after the
  controller's cache has seen the change, at most the ``max_parallel`` in flight finish;
* a JobSet over our admission limits cannot be created through the real admission path (see test_admission).

The large JobSets are created suspended, so their Jobs make no pods and the simulated cluster stays light.
Everything is awaited by watch or by the controller's own queue; nothing asserts on wall-clock time.
"""

from __future__ import annotations

import asyncio
from typing import Any

from cache.client import ApiClient, load_cluster_config, resource_path
from controller.app import Controller
from controller.settings import JOBSET_GROUP_KIND, load_settings
from tests.builders import JobSetBuilder
from tests.conftest import wait_for

JSON = dict[str, Any]
JOBS = resource_path("batch", "v1", "jobs")


def jobsets(ns: str) -> str:
    return resource_path("jobset.x-k8s.io", "v1alpha2", "jobsets", ns)


def big(ns: str, name: str, replicas: int) -> JSON:
    return JobSetBuilder(name, ns).rjob("w", replicas).set("spec.suspend", True).obj()


async def jobs_of(api: ApiClient, ns: str, name: str) -> list[JSON]:
    body = await api.get(
        resource_path("batch", "v1", "jobs", ns), {"labelSelector": f"jobset.sigs.k8s.io/jobset-name={name}"}
    )
    return list(body.get("items", []))


class CreateCounter:
    """Counts Job creates as the controller's client starts them (wrapping ``ApiClient.create``)."""

    def __init__(self, client: ApiClient) -> None:
        self.started = 0
        self.started_running = 0
        """Creates of Jobs with ``spec.suspend`` false."""
        self.finished = 0
        inner = client.create

        async def counting(path: str, body: JSON, *args: Any, **kwargs: Any) -> Any:
            is_job = path.endswith("/jobs")
            self.started += is_job
            self.started_running += is_job and not body["spec"].get("suspend")
            try:
                return await inner(path, body, *args, **kwargs)
            finally:
                self.finished += is_job

        client.create = counting  # type: ignore[method-assign]


async def test_a_small_jobset_gets_its_jobs_while_a_large_one_is_in_flight(
    api: ApiClient, namespace: str, controller: Controller | None
) -> None:
    assert controller is not None
    controller.reconciler.max_writes = 10
    controller.reconciler.offload_children = 100  # the big one is decided in a worker thread from then on
    total = 1000
    await api.create(jobsets(namespace), big(namespace, "huge", total))
    # The large one is in flight: some of its Jobs exist.
    await wait_for(api, resource_path("batch", "v1", "jobs", namespace), lambda items: len(items) >= 10)

    await api.create(jobsets(namespace), JobSetBuilder("small", namespace).rjob("a", 2).obj())
    selector = {"labelSelector": "jobset.sigs.k8s.io/jobset-name=small"}
    await wait_for(api, resource_path("batch", "v1", "jobs", namespace), lambda items: len(items) == 2, params=selector)

    # The small one did not wait for the large one to finish: it was served between two bounded passes.
    assert len(await jobs_of(api, namespace, "huge")) < total


async def test_deleting_a_jobset_mid_plan_stops_its_creates(
    api: ApiClient, namespace: str, controller: Controller | None
) -> None:
    assert controller is not None
    total = 1000
    controller.reconciler.max_writes = total  # one Plan for everything: the stop must happen inside it
    counter = CreateCounter(controller.client)
    seen: dict[str, int] = {}
    observed = asyncio.Event()

    def on_jobset(old: Any, new: Any) -> None:
        if new is None and old is not None and old.metadata.name == "huge":
            seen["started"], seen["finished"] = counter.started, counter.finished
            observed.set()

    controller.informers[0].add_handler(on_jobset)
    await api.create(jobsets(namespace), big(namespace, "huge", total))
    await wait_for(api, resource_path("batch", "v1", "jobs", namespace), lambda items: len(items) >= 20)
    await api.delete(f"{jobsets(namespace)}/huge")

    await observed.wait()
    await controller.queue.wait_idle()  # the superseded Plan has returned, its in-flight creates included
    assert counter.started == seen["started"], "no Job create may start once the deletion is in the cache"
    assert counter.finished - seen["finished"] <= controller.reconciler.actor.max_parallel
    assert counter.started < total


async def test_suspending_a_jobset_mid_plan_stops_its_creates(
    api: ApiClient, namespace: str, controller: Controller | None
) -> None:
    assert controller is not None
    total = 1000
    controller.reconciler.max_writes = total
    counter = CreateCounter(controller.client)
    seen: dict[str, int] = {}
    observed = asyncio.Event()

    def on_jobset(old: Any, new: Any) -> None:
        if old is not None and new is not None and new.spec.suspend and not old.spec.suspend:
            seen["running"] = counter.started_running
            observed.set()

    controller.informers[0].add_handler(on_jobset)
    running = JobSetBuilder("huge", namespace).rjob("w", total).obj()
    await api.create(jobsets(namespace), running)
    await wait_for(api, resource_path("batch", "v1", "jobs", namespace), lambda items: len(items) >= 20)
    await api.patch(f"{jobsets(namespace)}/huge", {"spec": {"suspend": True}})

    await observed.wait()
    await controller.queue.wait_idle()
    # The Plan decided for the running JobSet started no create after the cache saw the suspension; the passes
    # after it create the missing Jobs suspended.
    assert counter.started_running == seen["running"]
    assert seen["running"] < total
    await wait_for(api, resource_path("batch", "v1", "jobs", namespace), lambda items: len(items) == total)
    created = await jobs_of(api, namespace, "huge")
    assert sum(1 for j in created if not j["spec"].get("suspend")) <= seen["running"]


async def test_group_kind_concurrency_runs_several_workers(kubeconfig: str, jobset_crd: None, namespace: str) -> None:
    """``controller.groupKindConcurrency`` starts that many workers; JobSets are reconciled side by side."""
    settings = load_settings(
        overrides={
            "leader_election.leader_elect": False,
            "controller.group_kind_concurrency": {JOBSET_GROUP_KIND: 3},
        }
    )
    async with ApiClient(await load_cluster_config(kubeconfig)) as client:
        ctl = Controller(settings, client)
        stop = asyncio.Event()
        task = asyncio.create_task(ctl.run(stop))
        try:
            await asyncio.wait_for(ctl.ready.wait(), 30)
            await client.create(jobsets(namespace), big(namespace, "one", 30))
            await client.create(jobsets(namespace), JobSetBuilder("two", namespace).rjob("a", 2).obj())
            await wait_for(
                client, resource_path("batch", "v1", "jobs", namespace), lambda items: len(items) == 32, limit=60
            )
            workers = [t for t in asyncio.all_tasks() if t.get_name().startswith("worker-") and not t.done()]
            assert len(workers) == 3
        finally:
            stop.set()
            await task
