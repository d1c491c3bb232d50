"""The metrics layer assembled: one registry, the lifecycle tracker, the collectors, and the wiring helper.

Role: ``MetricsHub`` owns everything the process exports; ``attach(hub, controller)`` plugs it into a running
controller's hook points without importing the controller (every parameter is typed structurally), and
``render()`` produces the Prometheus text exposition for ``/metrics``.

Invariants:
* one hub per process (or per test): a fresh ``CollectorRegistry``, never prometheus_client's global one;
* ``pre_scrape`` callables run on the event loop before each scrape (they may touch loop-owned state, e.g. the
  work queue's in-progress timers); rendering then runs in slices on the loop (``metrics.exposition``) or, when
  configured, in a worker thread, where collectors only read;
* ``attach`` never replaces a hook list, it appends to it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol
from urllib.parse import urlsplit

from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.registry import Collector

from api.constants import JOBSET_NAME_KEY
from api.records import Node, Pod
from cache.client import ApiClient, resource_path
from cache.informer import Informer
from cache.store import Store
from metrics.collectors import GpuCollector, InformerCollector, InformerLike, LifecycleCollector
from metrics.exposition import render_now, render_sliced
from metrics.hooks import LeaderMetrics, ReconcileMetrics, RestClientMetrics, WorkQueueMetrics
from metrics.lifecycle import LifecycleTracker
from metrics.registry import Metrics
from metrics.settings import MetricsSettings

__all__ = ["CONTENT_TYPE_LATEST", "ControllerLike", "MetricsHub", "attach", "informers_for_metrics"]


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
        self._register(LifecycleCollector(self.tracker))
        self._register(InformerCollector(lambda: self._informers))
        self._gpu: GpuCollector | None = None
        self.slice_observer: Callable[[float, float], None] | None = None
        """Benchmarks: told the wall and CPU seconds of every slice of a sliced render."""

    def _register(self, collector: Collector) -> None:
        self.registry.register(collector)
        self.sources.append(collector)

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
        """``leader_election_master_status{name}``, starting at 0."""
        return LeaderMetrics(self.metrics, name)

    def add_informers(self, informers: Iterable[InformerLike]) -> None:
        """Export these informers' health; the tracker starts witnessing milestones once all have synced."""
        self._informers.extend(informers)

    def watch_gpus(self, nodes: Callable[[], Iterable[Node]], pods: Callable[[], Iterable[Pod]]) -> None:
        """Register the GPU occupancy collector over a Node and a Pod store (each: a callable giving records)."""
        if self._gpu is not None:
            return
        self._gpu = GpuCollector(nodes, pods, self.settings, self.tracker.label_of)
        self._register(self._gpu)

    # ------------------------------------------------------------------------------------ exposition

    def render_sync(self) -> bytes:
        """The text exposition (``CONTENT_TYPE_LATEST``) in one go; safe in a worker thread."""
        return render_now(self.sources)

    async def render(self) -> bytes:
        """Run the pre-scrape hooks on the loop, then render as ``settings.exposition`` says."""
        for hook in self.pre_scrape:
            hook()
        mode = self.settings.exposition
        if mode == "sliced":
            return await render_sliced(
                self.sources, budget=self.settings.exposition_slice_seconds, on_slice=self.slice_observer
            )
        if mode == "thread":
            return await asyncio.to_thread(self.render_sync)
        return self.render_sync()


# --------------------------------------------------------------------------------------------- wiring


class _HasObservers(Protocol):
    @property
    def observers(self) -> list[Any]: ...


class _Reconciler(_HasObservers, Protocol):
    @property
    def actor(self) -> _HasObservers: ...


class _Client(Protocol):
    @property
    def on_request(self) -> list[Any]: ...

    @property
    def config(self) -> Any: ...


class _Queue(Protocol):
    @property
    def name(self) -> str: ...

    def report_unfinished(self) -> None: ...


class _Informer(InformerLike, Protocol):
    @property
    def store(self) -> Any: ...

    def add_handler(self, handler: Callable[[Any, Any], None]) -> None: ...


class ControllerLike(Protocol):
    """What ``attach`` needs from ``controller.app.Controller`` (structural: metrics never imports it)."""

    @property
    def client(self) -> _Client: ...

    @property
    def queue(self) -> _Queue: ...

    @property
    def reconciler(self) -> _Reconciler: ...

    @property
    def informers(self) -> Sequence[_Informer]: ...


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


def attach(hub: MetricsHub, controller: ControllerLike, *, controller_name: str = "jobset") -> None:
    """Plug ``hub`` into a controller's hooks.

    * reconciler observers (``controller_runtime_reconcile_*``) and actor observers (restarts, outcomes);
    * the API client's ``on_request`` (``rest_client_requests_total``, host from the client's server URL);
    * informer handlers by informer name: ``jobsets``, ``jobs``, ``pods`` feed the lifecycle tracker;
      ``nodes`` plus ``pods`` enable the GPU collector; every informer is exported by ``InformerCollector``;
    * the queue's in-progress timers are reported before each scrape.

    The queue's ``workqueue_*`` hooks must be given at construction: ``WorkQueue(metrics=hub.queue_metrics(
    name))``; leader election reports through ``hub.leader(name)``.
    """
    hub.reconcile.declare(controller_name)
    controller.reconciler.observers.append(hub.reconcile)
    controller.reconciler.actor.observers.append(hub.tracker)
    server = str(getattr(controller.client.config, "server", ""))
    controller.client.on_request.append(hub.rest_client(urlsplit(server).netloc or server))
    hub.pre_scrape.append(controller.queue.report_unfinished)
    by_name = {inf.name: inf for inf in controller.informers}
    handlers: dict[str, Callable[[Any, Any], None]] = {
        "jobsets": hub.tracker.on_jobset,
        "jobs": hub.tracker.on_job,
        "pods": hub.tracker.on_pod,
    }
    for name, handler in handlers.items():
        if name in by_name:
            by_name[name].add_handler(handler)
    hub.add_informers(controller.informers)
    if "nodes" in by_name and "pods" in by_name:
        node_store, pod_store = by_name["nodes"].store, by_name["pods"].store
        hub.watch_gpus(lambda: node_store, lambda: pod_store)
