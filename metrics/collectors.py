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

from api import constants as c
from api.records import Node, Pod
from cache.informer import DECODE_REASONS
from metrics import registry as reg
from metrics.exposition import PAUSE_EVERY, Item, RowCollector
from metrics.lifecycle import LifecycleTracker
from metrics.readers import parse_count, pod_gpus
from metrics.seam import InformerLike
from metrics.settings import OTHER_JOBSET, MetricsSettings

# --------------------------------------------------------------------------------------------- informers


class InformerCollector(RowCollector):
    """Watch restarts, re-lists, watch events and bytes, store sizes, sync state, decode errors, quarantine and
    stalls of informers."""

    def __init__(self, informers: Callable[[], Sequence[InformerLike]]) -> None:
        self._informers = informers

    def items(self) -> Iterator[Item]:
        infs = list(self._informers())
        yield reg.INFORMER_WATCH_RESTARTS
        yield from (((inf.name,), inf.watch_restarts) for inf in infs)
        yield reg.INFORMER_RELISTS
        yield from (((inf.name,), inf.relists) for inf in infs)
        yield reg.INFORMER_WATCH_EVENTS
        yield from (((inf.name,), inf.watch_events) for inf in infs)
        yield reg.INFORMER_WATCH_BYTES
        yield from (((inf.name,), inf.watch_bytes) for inf in infs)
        yield reg.INFORMER_OBJECTS
        yield from (((inf.name,), len(inf.store)) for inf in infs)
        yield reg.INFORMER_SYNCED
        yield from (((inf.name,), 1.0 if inf.has_synced() else 0.0) for inf in infs)
        yield reg.INFORMER_DECODE_ERRORS
        for inf in infs:
            counts = dict(inf.decode_errors)
            yield from (((inf.name, reason), counts.get(reason, 0)) for reason in DECODE_REASONS)
        yield reg.INFORMER_QUARANTINED
        yield from (((inf.name,), len(inf.quarantined)) for inf in infs)
        yield reg.INFORMER_STALLED
        yield from (((inf.name,), 1.0 if inf.stalled() else 0.0) for inf in infs)
        yield reg.INFORMER_SINCE_PROGRESS
        yield from (((inf.name,), round(inf.seconds_since_progress(), 3)) for inf in infs)


# --------------------------------------------------------------------------------------------- JobSet state

_POD_PHASES = ("expected", "scheduled", "running", "ready")


class LifecycleCollector(RowCollector):
    """Per-JobSet state, pods, restarts, idle and badput GPU-seconds, plus JobSets per namespace and state.

    JobSets past the series cap are summed into ``jobset_name="__other__"`` (pods, restarts, idle GPU-seconds;
    their state is visible only in ``jobset_state_count``).
    """

    def __init__(self, tracker: LifecycleTracker) -> None:
        self.tracker = tracker

    def items(self) -> Iterator[Item]:
        tr = self.tracker
        now = tr.clock()
        views = [v for v in list(tr.views.values()) if v.known and v.state]
        yield None
        counts: dict[tuple[str, str], int] = {}
        own = []
        # namespace -> [expected, scheduled, running, ready, restarts, idle seconds, badput] of capped JobSets
        other: dict[str, list[float]] = {ns: [0, 0, 0, 0, 0, v, 0.0] for ns, v in list(tr.retired_other_idle.items())}
        for ns, lost in list(tr.retired_other_badput.items()):
            other.setdefault(ns, [0, 0, 0, 0, 0, 0.0, 0.0])[6] += lost
        for n, v in enumerate(views):
            if n % PAUSE_EVERY == 0:
                yield None
            counts[(v.namespace, v.state)] = counts.get((v.namespace, v.state), 0) + 1
            if v.label != OTHER_JOBSET:
                own.append(v)
                continue
            agg = other.setdefault(v.namespace, [0, 0, 0, 0, 0, 0.0, 0.0])
            for i, x in enumerate((v.pods_expected, v.n_sched, v.n_running, v.n_ready, v.restarts)):
                agg[i] += x
            agg[5] += v.idle_seconds(now)
            agg[6] += v.badput
        yield reg.JOBSET_STATE_COUNT
        yield from (((ns, state), n) for (ns, state), n in sorted(counts.items()))
        yield reg.JOBSET_STATUS
        yield from (((v.namespace, v.label, v.state), 1.0) for v in own)
        yield reg.JOBSET_STATE_SECONDS
        yield from (((v.namespace, v.label, v.state), max(now - v.state_since, 0.0)) for v in own)
        yield reg.JOBSET_PODS
        for v in own:
            ns, name = v.namespace, v.label
            yield (ns, name, "expected"), v.pods_expected
            yield (ns, name, "scheduled"), v.n_sched
            yield (ns, name, "running"), v.n_running
            yield (ns, name, "ready"), v.n_ready
        for ns, agg in other.items():
            for i, phase in enumerate(_POD_PHASES):
                yield (ns, OTHER_JOBSET, phase), agg[i]
        yield reg.JOBSET_RESTARTS
        yield from (((v.namespace, v.label), v.restarts) for v in own)
        yield from (((ns, OTHER_JOBSET), agg[4]) for ns, agg in other.items())
        yield reg.JOBSET_GPU_IDLE_SECONDS
        yield from (((v.namespace, v.label), v.idle_seconds(now)) for v in own)
        yield from (((ns, OTHER_JOBSET), agg[5]) for ns, agg in other.items())
        yield reg.JOBSET_BADPUT_GPU_SECONDS
        yield from (((v.namespace, v.label), v.badput) for v in own)
        yield from (((ns, OTHER_JOBSET), agg[6]) for ns, agg in other.items())
        yield reg.JOBSET_RESTARTS_TOTAL
        yield from ((key, n) for key, n in list(tr.restart_counts.items()))
        yield reg.JOBSET_FAILED
        yield from ((key, n) for key, n in list(tr.failed.items()))
        yield reg.JOBSET_COMPLETED
        yield from ((key, n) for key, n in list(tr.completed.items()))


# --------------------------------------------------------------------------------------------- GPU occupancy


def _node_available(node: Node) -> bool:
    if node.spec.unschedulable:
        return False
    return any(cond.type == "Ready" and cond.status == "True" for cond in node.status.conditions)


class GpuCollector(RowCollector):
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

    def items(self) -> Iterator[Item]:
        resource = self._settings.gpu_resource
        pool_key = self._settings.node_pool_label
        allocatable: dict[str, int] = {}
        unavailable: dict[str, int] = {}
        requested: dict[str, int] = {}
        pool_of: dict[str, str] = {}
        for n, node in enumerate(list(self._nodes())):
            if n % PAUSE_EVERY == 0:
                yield None
            q = node.status.allocatable.get(resource)
            gpus = parse_count(q) if q else 0
            pool = node.metadata.labels.get(pool_key, "")
            pool_of[node.metadata.name] = pool
            if not gpus:
                continue
            target = allocatable if _node_available(node) else unavailable
            target[pool] = target.get(pool, 0) + gpus
        held: dict[tuple[str, str], int] = {}
        for n, pod in enumerate(list(self._pods())):
            if n % PAUSE_EVERY == 0:
                yield None
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
        yield reg.GPU_ALLOCATABLE
        yield from (((pool,), allocatable.get(pool, 0)) for pool in pools)
        yield reg.GPU_UNAVAILABLE
        yield from (((pool,), unavailable.get(pool, 0)) for pool in pools)
        yield reg.GPU_REQUESTED
        yield from (((pool,), requested.get(pool, 0)) for pool in pools)
        yield reg.GPU_CLUSTER_ALLOCATABLE
        yield (), sum(allocatable.values())
        yield reg.GPU_CLUSTER_REQUESTED
        yield (), sum(requested.values())
        yield reg.GPU_HELD
        yield from (((ns, name), n) for (ns, name), n in sorted(held.items()))
