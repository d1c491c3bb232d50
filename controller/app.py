"""Wiring of the controller process: client, informers, stores, queue, reconciler, actor, servers.

Role: build every long-lived object once from ``Settings`` and a ``ClusterConfig``, start informers, wait for
their first LIST, freeze the heap (``gc.freeze``: 100k cached records are never scanned again by full
collections), then run the reconcile worker until ``stop`` is set. Invariants: informers run before workers; a
worker only runs while this process leads (when leader election is on); shutdown cancels every task it started.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import structlog

from cache import constants as c
from cache.client import ApiClient, ClusterConfig, resource_path
from cache.informer import Informer
from cache.jobset_types import JobSet
from cache.leader import ClientLeaseApi, LeaderElectionConfig, LeaderElector
from cache.queue import WorkQueue
from cache.records import Job, Pod, Service
from cache.store import Store
from controller.act import Actor
from controller.events import EventRecorder
from controller.reconciler import (
    JOBSET_LABEL_INDEX,
    OWNER_INDEX,
    JobSetReconciler,
    jobset_label_index,
    owner_uid_index,
)
from controller.settings import Settings

log = structlog.get_logger("pyjobset.app")


def _ns_name(obj: Any) -> str:
    return f"{obj.metadata.namespace}/{obj.metadata.name}"


@dataclass
class Controller:
    settings: Settings
    client: ApiClient
    jobsets: Store[JobSet] = field(init=False)
    jobs: Store[Job] = field(init=False)
    services: Store[Service] = field(init=False)
    pods: Store[Pod] | None = field(init=False, default=None)
    informers: list[Informer[Any]] = field(init=False, default_factory=list)
    queue: WorkQueue[str] = field(init=False)
    reconciler: JobSetReconciler = field(init=False)
    ready: asyncio.Event = field(init=False, default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        s = self.settings
        self.jobsets = Store(_ns_name)
        self.jobs = Store(_ns_name, {OWNER_INDEX: owner_uid_index})
        self.services = Store(_ns_name, {OWNER_INDEX: owner_uid_index})
        js_inf = Informer(
            self.client, resource_path(c.GROUP, c.VERSION, c.PLURAL), JobSet, self.jobsets, name="jobsets"
        )
        job_inf = Informer(
            self.client,
            resource_path("batch", "v1", "jobs"),
            Job,
            self.jobs,
            name="jobs",
            label_selector=c.JOBSET_NAME_KEY,
        )
        svc_inf = Informer(self.client, resource_path("", "v1", "services"), Service, self.services, name="services")
        self.informers = [js_inf, job_inf, svc_inf]
        self.queue = WorkQueue(name="jobset")
        actor = Actor(self.client, EventRecorder(self.client), jobs=job_inf, jobsets=js_inf, services=svc_inf)
        self.reconciler = JobSetReconciler(
            jobsets=self.jobsets,
            jobs=self.jobs,
            services=self.services,
            actor=actor,
            queue=self.queue,
            gates=dict(s.feature_gates),
        )
        if s.gate(c.GATE_IN_PLACE_RESTART):
            self.pods = Store(_ns_name, {JOBSET_LABEL_INDEX: jobset_label_index})
            pod_inf = Informer(
                self.client,
                resource_path("", "v1", "pods"),
                Pod,
                self.pods,
                name="pods",
                label_selector=c.JOBSET_NAME_KEY,
            )
            pod_inf.add_handler(self.reconciler.on_pod)
            self.informers.append(pod_inf)
            self.reconciler.pods = self.pods
        js_inf.add_handler(self.reconciler.on_jobset)
        job_inf.add_handler(self.reconciler.on_owned)
        svc_inf.add_handler(self.reconciler.on_owned)

    async def wait_synced(self) -> None:
        await asyncio.gather(*(inf.synced.wait() for inf in self.informers))

    async def run(
        self,
        stop: asyncio.Event,
        *,
        leading: Callable[[], Coroutine[Any, Any, None]] | None = None,
        workers: int = 1,
    ) -> None:
        """Run until ``stop`` is set. ``leading`` (if given) returns once this process holds the lease."""
        tasks = [asyncio.create_task(inf.run(), name=f"informer:{inf.name}") for inf in self.informers]
        try:
            synced = asyncio.create_task(self.wait_synced())
            stopper = asyncio.create_task(stop.wait())
            done, _ = await asyncio.wait({synced, stopper}, return_when=asyncio.FIRST_COMPLETED)
            if stopper in done:
                synced.cancel()
                return
            gc.collect()
            gc.freeze()
            log.info("caches_synced", jobsets=len(self.jobsets), jobs=len(self.jobs), services=len(self.services))
            self.ready.set()
            if leading is not None:
                lead = asyncio.create_task(leading())
                done, _ = await asyncio.wait({lead, stopper}, return_when=asyncio.FIRST_COMPLETED)
                if stopper in done:
                    lead.cancel()
                    return
            tasks += [asyncio.create_task(self.reconciler.run_worker(), name=f"worker-{i}") for i in range(workers)]
            await stopper
        finally:
            self.queue.shut_down()
            for t in tasks:
                t.cancel()
            for t in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await t


class LeadershipLost(Exception):
    """The Lease was lost while leading: the process must exit (non-zero) so a fresh one can campaign."""


async def run_controller(settings: Settings, config: ClusterConfig, stop: asyncio.Event) -> None:
    """Entry point used by ``pyjobset run`` and the demo.

    With leader election on, caches sync at once (a standby is warm) but reconcile workers start only once this
    process holds the Lease; losing it stops everything at once and raises ``LeadershipLost``. The elector has a
    client of its own so that Lease renewals never queue behind a burst of Job creates on the shared bucket.
    """
    cc = settings.client_connection
    async with ApiClient(config, qps=cc.qps, burst=cc.burst) as client:
        controller = Controller(settings, client)
        le = settings.leader_election
        if not le.leader_elect:
            await controller.run(stop)
            return
        async with ApiClient(config, qps=5, burst=10) as lease_client:
            elector = LeaderElector(
                ClientLeaseApi(lease_client),
                LeaderElectionConfig(
                    namespace=le.resource_namespace or settings.namespace,
                    name=le.resource_name,
                    lease_duration=le.lease_duration,
                    renew_deadline=le.renew_deadline,
                    retry_period=le.retry_period,
                ),
            )
            lost = False

            def on_stopped() -> None:
                nonlocal lost
                if not stop.is_set():
                    lost = True
                    log.error("leader_election_lost", lease=le.resource_name)
                controller.queue.shut_down()
                stop.set()

            elector.started_callbacks.append(lambda: log.info("leader_elected", lease=le.resource_name))
            elector.stopped_callbacks.append(on_stopped)
            campaign = asyncio.create_task(elector.run(), name="leader-election")
            try:
                await controller.run(stop, leading=elector.wait_leading)
            finally:
                campaign.cancel()  # releases the Lease on a clean shutdown
                with contextlib.suppress(asyncio.CancelledError):
                    await campaign
            if lost:
                raise LeadershipLost(f"lost the lease {le.resource_name}")
