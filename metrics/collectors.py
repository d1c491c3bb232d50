"""Scrape-time collectors: informer health, per-JobSet state, and GPU occupancy from the Node and Pod stores.

Role: values that are a function of the current cache are computed when Prometheus asks, never written per
event. Each collector builds its families from the ``FamilySpec`` constants of ``metrics.registry``.

Invariants:
* read-only: collectors never change a store, a record or the tracker;
* safe in a worker thread (the server renders ``/metrics`` off the event loop): each collector first copies the
  table it walks (``list(...)`` of a dict or store — one C-level operation under the GIL) and then reads only
  immutable records or scalar fields;
* bounded output: no pod or node names in labels; per-JobSet series use the tracker's capped label.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Protocol

from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from cache import constants as c
from cache.records import Node, Pod
from metrics import registry as reg
from metrics.lifecycle import LifecycleTracker, parse_count, pod_gpus
from metrics.settings import OTHER_JOBSET, MetricsSettings

# --------------------------------------------------------------------------------------------- informers


class Sized(Protocol):
    def __len__(self) -> int: ...


class InformerLike(Protocol):
    """What ``InformerCollector`` reads from a ``cache.informer.Informer``."""

    @property
    def name(self) -> str: ...

    @property
    def store(self) -> Sized: ...

    @property
    def watch_restarts(self) -> int: ...

    @property
    def relists(self) -> int: ...

    def has_synced(self) -> bool: ...


class InformerCollector(Collector):
    """Watch restarts, re-lists, store sizes and sync state of informers."""

    def __init__(self, informers: Callable[[], Sequence[InformerLike]]) -> None:
        self._informers = informers

    def describe(self) -> Iterator[Metric]:
        return iter(())  # families are declared in metrics.registry; nothing to check at registration

    def collect(self) -> Iterator[Metric]:
        restarts = reg.INFORMER_WATCH_RESTARTS.new()
        relists = reg.INFORMER_RELISTS.new()
        objects = reg.INFORMER_OBJECTS.new()
        synced = reg.INFORMER_SYNCED.new()
        for inf in list(self._informers()):
            restarts.add_metric([inf.name], inf.watch_restarts)
            relists.add_metric([inf.name], inf.relists)
            objects.add_metric([inf.name], len(inf.store))
            synced.add_metric([inf.name], 1.0 if inf.has_synced() else 0.0)
        yield from (restarts, relists, objects, synced)


# --------------------------------------------------------------------------------------------- JobSet state

_POD_PHASES = ("expected", "scheduled", "running", "ready")


class LifecycleCollector(Collector):
    """Per-JobSet state, pods, restarts and idle GPU-seconds, plus JobSets per namespace and state.

    JobSets past the series cap are summed into ``jobset_name="__other__"`` (pods, restarts, idle GPU-seconds;
    their state is visible only in ``jobset_state_count``).
    """

    def __init__(self, tracker: LifecycleTracker) -> None:
        self.tracker = tracker

    def describe(self) -> Iterator[Metric]:
        return iter(())

    def collect(self) -> Iterator[Metric]:
        tr = self.tracker
        now = tr.clock()
        views = list(tr.views.values())
        status = reg.JOBSET_STATUS.new()
        seconds = reg.JOBSET_STATE_SECONDS.new()
        pods = reg.JOBSET_PODS.new()
        restarts = reg.JOBSET_RESTARTS.new()
        idle = reg.JOBSET_GPU_IDLE_SECONDS.new()
        counts: dict[tuple[str, str], int] = {}
        # namespace -> [expected, scheduled, running, ready, restarts, idle seconds] of capped JobSets
        other: dict[str, list[float]] = {ns: [0, 0, 0, 0, 0, v] for ns, v in list(tr.retired_other_idle.items())}
        for v in views:
            state = v.state
            if not v.known or not state:
                continue
            ns = v.namespace
            counts[(ns, state)] = counts.get((ns, state), 0) + 1
            figures = (v.pods_expected, v.n_sched, v.n_running, v.n_ready, v.restarts, v.idle_seconds(now))
            if v.label == OTHER_JOBSET:
                agg = other.setdefault(ns, [0, 0, 0, 0, 0, 0.0])
                for i, x in enumerate(figures):
                    agg[i] += x
                continue
            name = v.label
            status.add_metric([ns, name, state], 1.0)
            seconds.add_metric([ns, name, state], max(now - v.state_since, 0.0))
            for phase, n in zip(_POD_PHASES, figures, strict=False):
                pods.add_metric([ns, name, phase], n)
            restarts.add_metric([ns, name], figures[4])
            idle.add_metric([ns, name], figures[5])
        for ns, agg in other.items():
            for phase, n in zip(_POD_PHASES, agg, strict=False):
                pods.add_metric([ns, OTHER_JOBSET, phase], n)
            restarts.add_metric([ns, OTHER_JOBSET], agg[4])
            idle.add_metric([ns, OTHER_JOBSET], agg[5])
        state_count = reg.JOBSET_STATE_COUNT.new()
        for (ns, state), n in sorted(counts.items()):
            state_count.add_metric([ns, state], n)
        yield from (state_count, status, seconds, pods, restarts, idle)


# --------------------------------------------------------------------------------------------- GPU occupancy


def _node_available(node: Node) -> bool:
    if node.spec.unschedulable:
        return False
    return any(cond.type == "Ready" and cond.status == "True" for cond in node.status.conditions)


class GpuCollector(Collector):
    """GPU allocatable vs requested per node pool and for the cluster, and GPUs held per JobSet.

    "Requested" counts pods bound to a node and not finished (Pending-but-bound pods hold their GPUs as far as
    the scheduler is concerned). Only cached pods are seen: with the controller's pod informer filtered to
    JobSet pods, that is the JobSets' share of the cluster.
    """

    def __init__(
        self,
        nodes: Callable[[], Iterable[Node]],
        pods: Callable[[], Iterable[Pod]],
        settings: MetricsSettings,
        label_of: Callable[[str, str], str],
    ) -> None:
        self._nodes = nodes
        self._pods = pods
        self._settings = settings
        self._label_of = label_of

    def describe(self) -> Iterator[Metric]:
        return iter(())

    def collect(self) -> Iterator[Metric]:
        resource = self._settings.gpu_resource
        pool_key = self._settings.node_pool_label
        allocatable: dict[str, int] = {}
        unavailable: dict[str, int] = {}
        requested: dict[str, int] = {}
        pool_of: dict[str, str] = {}
        for node in list(self._nodes()):
            q = node.status.allocatable.get(resource)
            gpus = parse_count(q) if q else 0
            pool = node.metadata.labels.get(pool_key, "")
            pool_of[node.metadata.name] = pool
            if not gpus:
                continue
            target = allocatable if _node_available(node) else unavailable
            target[pool] = target.get(pool, 0) + gpus
        held: dict[tuple[str, str], int] = {}
        for pod in list(self._pods()):
            node_name = pod.spec.node_name
            if not node_name or pod.status.phase in ("Succeeded", "Failed"):
                continue
            gpus = pod_gpus(pod, resource)
            if not gpus:
                continue
            pool = pool_of.get(node_name, "")
            requested[pool] = requested.get(pool, 0) + gpus
            js_name = pod.metadata.labels.get(c.JOBSET_NAME_KEY)
            if js_name:
                ns = pod.metadata.namespace
                key = (ns, self._label_of(ns, js_name))
                held[key] = held.get(key, 0) + gpus
        pools = sorted(set(allocatable) | set(unavailable) | set(requested))
        fam_alloc = reg.GPU_ALLOCATABLE.new()
        fam_unavail = reg.GPU_UNAVAILABLE.new()
        fam_req = reg.GPU_REQUESTED.new()
        for pool in pools:
            fam_alloc.add_metric([pool], allocatable.get(pool, 0))
            fam_unavail.add_metric([pool], unavailable.get(pool, 0))
            fam_req.add_metric([pool], requested.get(pool, 0))
        cluster_alloc = reg.GPU_CLUSTER_ALLOCATABLE.new()
        cluster_alloc.add_metric([], sum(allocatable.values()))
        cluster_req = reg.GPU_CLUSTER_REQUESTED.new()
        cluster_req.add_metric([], sum(requested.values()))
        fam_held = reg.GPU_HELD.new()
        for (ns, name), n in sorted(held.items()):
            fam_held.add_metric([ns, name], n)
        yield from (fam_alloc, fam_unavail, fam_req, cluster_alloc, cluster_req, fam_held)
