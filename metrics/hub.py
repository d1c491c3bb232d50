"""The metrics layer assembled: one registry, the lifecycle tracker, the collectors.

Role: ``MetricsHub`` owns everything the process exports and implements the seam of ``metrics.seam``:
``hub.reconcile`` is a ``ReconcileObserver``, ``hub.tracker`` a ``PlanObserver``, and ``hub.watch(WatchedInformers(
jobsets=..., jobs=..., pods=..., nodes=...))`` registers the informers it reads by typed handle. The composition
root (``controller.app.Controller.attach_metrics``) does the wiring; this module never sees the controller.
``render()`` produces the Prometheus text exposition for ``/metrics``.

Invariants:
* one hub per process (or per test): a fresh ``CollectorRegistry``, never prometheus_client's global one;
* ``pre_scrape`` callables run on the event loop before each scrape (they may touch loop-owned state, e.g. the
  work queue's in-progress timers); rendering then runs in slices on the loop (``metrics.exposition``) or, when
  configured, in a worker thread, where collectors only read;
* ``watch`` adds handlers to the informers it is given, it never replaces theirs;
* with leader election (``leader(name)`` was called) the per-JobSet and GPU families — the lifecycle and GPU
  collectors and the event-fed ``jobset_*`` lifecycle metrics (``Metrics.per_jobset``) — are exported only while
  this process leads: a standby's caches see the same cluster, and ``sum()`` over replicas must not count it
  twice. Health, queue, REST client, reconcile, informer and leader-status metrics are exported by every replica.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import urlsplit

from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.registry import Collector

from api.constants import JOBSET_NAME_KEY
from api.records import Node, Pod
from cache.client import ApiClient, resource_path
from cache.informer import Informer
from cache.store import Store
from metrics.collectors import GpuCollector, InformerCollector, LifecycleCollector
from metrics.exposition import render_now, render_sliced
from metrics.hooks import LeaderMetrics, ReconcileMetrics, RestClientMetrics, WorkQueueMetrics
from metrics.lifecycle import LifecycleTracker
from metrics.registry import Metrics
from metrics.seam import InformerLike, WatchedInformers
from metrics.settings import MetricsSettings

__all__ = ["CONTENT_TYPE_LATEST", "MetricsHub", "api_host", "informers_for_metrics"]


class MetricsHub:
    """Everything the process exports (see the module docstring)."""

    def __init__(self, settings: MetricsSettings | None = None, *, clock: Callable[[], float] = time.time) -> None:
        self.settings = settings if settings is not None else MetricsSettings()
        self.metrics = Metrics()
        self.registry = self.metrics.registry
        self._informers: list[InformerLike] = []
        self.tracker = LifecycleTracker(self.metrics, self.settings, clock=clock, synced=self._informers_synced)
        self.reconcile = ReconcileMetrics(self.metrics)
        self.pre_scrape: list[Callable[[], Any]] = [self.tracker.poll_synced]
        self.sources: list[Collector] = [m for m in vars(self.metrics).values() if isinstance(m, MetricWrapperBase)]
        """What ``/metrics`` exports, in order: the event-fed metrics, then the scrape-time collectors."""
        self._election = False
        self._leading = False
        self._fleet: list[Collector] = list(self.metrics.per_jobset())
        """Sources exported only while ``exports_fleet()`` (see the module docstring)."""
        self._register(LifecycleCollector(self.tracker), fleet=True)
        self._register(InformerCollector(lambda: self._informers))
        self._gpu: GpuCollector | None = None
        self.slice_observer: Callable[[float, float], None] | None = None
        """Benchmarks: told the wall and CPU seconds of every slice of a sliced render."""

    def _register(self, collector: Collector, *, fleet: bool = False) -> None:
        self.registry.register(collector)
        self.sources.append(collector)
        if fleet:
            self._fleet.append(collector)

    def exports_fleet(self) -> bool:
        """True when the per-JobSet and GPU families are exported: no leader election, or this process leads."""
        return not self._election or self._leading

    def exported(self) -> list[Collector]:
        """The sources ``/metrics`` renders now, in order (``sources`` less the fleet ones on a standby)."""
        if self.exports_fleet():
            return list(self.sources)
        return [s for s in self.sources if all(s is not f for f in self._fleet)]

    def _set_leading(self, leading: bool) -> None:
        self._leading = leading

    # ------------------------------------------------------------------------------------ feeding

    def _informers_synced(self) -> bool:
        return bool(self._informers) and all(inf.has_synced() for inf in self._informers)

    def queue_metrics(self, name: str) -> WorkQueueMetrics:
        """The ``metrics=`` argument for ``WorkQueue(name=name, ...)``."""
        return WorkQueueMetrics(self.metrics, name)

    def rest_client(self, host: str) -> RestClientMetrics:
        """An ``ApiClient.on_request`` hook labelled with the API server's ``host``."""
        return RestClientMetrics(self.metrics, host)

    def leader(self, name: str) -> LeaderMetrics:
        """``leader_election_master_status{name}``, starting at 0. Calling it means this process runs under leader
        election: from then on the per-JobSet and GPU families are exported only while it leads."""
        self._election = True
        return LeaderMetrics(self.metrics, name, on_change=self._set_leading)

    def add_informers(self, informers: Iterable[InformerLike]) -> None:
        """Export these informers' health; the tracker starts witnessing milestones once all have synced."""
        self._informers.extend(informers)

    def watch(self, informers: WatchedInformers) -> None:
        """Read these informers: ``jobsets``, ``jobs`` and ``pods`` feed the lifecycle tracker, ``nodes`` with
        ``pods`` enable the GPU collector, and every one (``exported`` first, in its order) is exported."""
        informers.jobsets.add_handler(self.tracker.on_jobset)
        informers.jobs.add_handler(self.tracker.on_job)
        pods, nodes = informers.pods, informers.nodes
        if pods is not None:
            pods.add_handler(self.tracker.on_pod)
        self.add_informers(informers.all())
        if nodes is not None and pods is not None:
            self.watch_gpus(lambda: nodes.store, lambda: pods.store)

    def watch_gpus(self, nodes: Callable[[], Iterable[Node]], pods: Callable[[], Iterable[Pod]]) -> None:
        """Register the GPU occupancy collector over a Node and a Pod store (each: a callable giving records)."""
        if self._gpu is not None:
            return
        self._gpu = GpuCollector(nodes, pods, self.settings, self.tracker.label_of)
        self._register(self._gpu, fleet=True)

    # ------------------------------------------------------------------------------------ exposition

    def render_sync(self) -> bytes:
        """The text exposition (``CONTENT_TYPE_LATEST``) in one go; safe in a worker thread."""
        return render_now(self.exported())

    async def render(self) -> bytes:
        """Run the pre-scrape hooks on the loop, then render as ``settings.exposition`` says."""
        for hook in self.pre_scrape:
            hook()
        mode = self.settings.exposition
        sources = self.exported()
        if mode == "sliced":
            return await render_sliced(
                sources, budget=self.settings.exposition_slice_seconds, on_slice=self.slice_observer
            )
        if mode == "thread":
            return await asyncio.to_thread(render_now, sources)
        return render_now(sources)


# --------------------------------------------------------------------------------------------- wiring


def informers_for_metrics(client: ApiClient, present: Iterable[str] = ()) -> list[Informer[Any]]:
    """The informers the lifecycle tracker and the GPU collector read and the controller may lack: ``pods``
    (JobSet pods only, by the ``jobset-name`` label selector) and ``nodes``, skipping names in ``present``.

    Add them to the controller's informer list before ``attach`` (they then run, sync and are exported like
    the others). Both are read-only LIST+WATCH; the shipped RBAC already grants pods and nodes get/list/watch.
    """
    made: list[Informer[Any]] = []
    have = set(present)
    if "pods" not in have:
        pods: Store[Pod] = Store(_ns_name, {POD_JOBSET_INDEX: _pod_jobset})
        made.append(
            Informer(client, resource_path("", "v1", "pods"), Pod, pods, name="pods", label_selector=JOBSET_NAME_KEY)
        )
    if "nodes" not in have:
        nodes: Store[Node] = Store(lambda n: n.metadata.name)
        made.append(Informer(client, resource_path("", "v1", "nodes"), Node, nodes, name="nodes"))
    return made


def _ns_name(obj: Any) -> str:
    return f"{obj.metadata.namespace}/{obj.metadata.name}"


POD_JOBSET_INDEX = "jobset-name"


def _pod_jobset(pod: Pod) -> list[str]:
    name = pod.metadata.labels.get(JOBSET_NAME_KEY)
    return [f"{pod.metadata.namespace}/{name}"] if name else []


def api_host(server: str) -> str:
    """The ``host`` label of ``rest_client_requests_total`` for an API server URL (``https://h:6443`` → ``h:6443``)."""
    return urlsplit(server).netloc or server
