"""Every metric the controller exports, declared in one place, on one dedicated ``CollectorRegistry``.

Role: the single catalogue of names, help texts, label sets and histogram buckets. Components that *feed*
metrics (``metrics.hooks``, ``metrics.lifecycle``) hold a ``Metrics`` and touch only its attributes; collectors
that compute values at scrape time (``metrics.lifecycle``, ``metrics.gpu``, ``metrics.hooks``) build their
families from the ``FamilySpec`` constants below, so the catalogue is complete here too.

Invariants:
* names used by existing dashboards are kept exactly: controller-runtime's ``controller_runtime_reconcile_*``,
  client-go's ``workqueue_*`` (label ``name``), ``rest_client_requests_total``, ``leader_election_master_status``
  and the reference's ``jobset_failed_total`` / ``jobset_completed_total`` (labels ``jobset_name``, ``namespace``);
* cardinality is bounded: no label carries a pod or node name; ``jobset_name`` is capped by
  ``MetricsSettings.max_jobsets`` (overflow goes to ``"__other__"``); the other labels take values from small
  closed sets (phase, state, result, action, rule/reason of a JobSet's own failure policy, node pool);
* every histogram has explicit buckets chosen for what it measures;
* nothing is registered on prometheus_client's global default registry.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics import MetricWrapperBase

# --------------------------------------------------------------------------------------------- buckets

RECONCILE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
"""One reconcile: a millisecond when nothing changes, seconds when thousands of Jobs are created."""

QUEUE_BUCKETS = (1e-6, 1e-5, 1e-4, 1e-3, 0.01, 0.1, 1.0, 10.0, 100.0, 1000.0)
"""Work-queue waits and work times span microseconds (idle) to the 1000 s backoff ceiling (client-go's decades)."""

LIFECYCLE_BUCKETS = (1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0, 7200.0)
"""Start-up phases and recovery: seconds for small JobSets, tens of minutes for 15k-node ones waiting on GPUs."""


# --------------------------------------------------------------------------------------------- scrape-time families


@dataclass(frozen=True, slots=True)
class FamilySpec:
    """A metric family computed at scrape time by a custom collector."""

    name: str
    help: str
    type: Literal["gauge", "counter"]
    labels: tuple[str, ...] = ()

    def new(self) -> GaugeMetricFamily | CounterMetricFamily:
        """An empty family of this name, help, type and label set, for one scrape."""
        if self.type == "counter":
            return CounterMetricFamily(self.name, self.help, labels=self.labels)
        return GaugeMetricFamily(self.name, self.help, labels=self.labels)


# Cache health (metrics.collectors.InformerCollector).
INFORMER_WATCH_RESTARTS = FamilySpec(
    "informer_watch_restarts",
    "Times an informer's WATCH ended and was re-opened (timeouts, errors, 410).",
    "counter",
    ("resource",),
)
INFORMER_RELISTS = FamilySpec(
    "informer_relists",
    "Full LISTs an informer performed (the first sync and every 410 Gone).",
    "counter",
    ("resource",),
)
INFORMER_WATCH_EVENTS = FamilySpec(
    "informer_watch_events",
    "Watch events (lines, bookmarks included) an informer received.",
    "counter",
    ("resource",),
)
INFORMER_WATCH_BYTES = FamilySpec(
    "informer_watch_bytes",
    "Bytes of watch events an informer received (JSON, before decoding).",
    "counter",
    ("resource",),
)
INFORMER_OBJECTS = FamilySpec("informer_cache_objects", "Objects held in an informer's store.", "gauge", ("resource",))
INFORMER_SYNCED = FamilySpec(
    "informer_synced", "1 once the informer's first LIST is in its store.", "gauge", ("resource",)
)
INFORMER_DECODE_ERRORS = FamilySpec(
    "informer_decode_errors",
    "Objects (per version) an informer could not decode and skipped, by reason (wrong_type, invalid_value, "
    "missing_field, invalid, malformed_json). The log event informer_object_undecodable names each one.",
    "counter",
    ("resource", "reason"),
)
INFORMER_QUARANTINED = FamilySpec(
    "informer_quarantined_objects",
    "Objects whose latest version did not decode (their previous version, if any, is served stale).",
    "gauge",
    ("resource",),
)
INFORMER_STALLED = FamilySpec(
    "informer_stalled",
    "1 while the informer has made no progress (no LIST, watch event or bookmark) for its stall bound; "
    "readiness fails meanwhile.",
    "gauge",
    ("resource",),
)
INFORMER_SINCE_PROGRESS = FamilySpec(
    "informer_seconds_since_progress",
    "Seconds since the informer last made progress (a LIST, a watch event or bookmark, an orderly watch end).",
    "gauge",
    ("resource",),
)

# JobSet state (metrics.collectors.LifecycleCollector).
JOBSET_STATE_COUNT = FamilySpec(
    "jobset_state_count",
    "JobSets by namespace and state (Suspended, Starting, Running, Restarting, Completed, Failed).",
    "gauge",
    ("namespace", "state"),
)
JOBSET_STATUS = FamilySpec(
    "jobset_status",
    "1 for the JobSet's current state; the series disappears when the JobSet is deleted.",
    "gauge",
    ("namespace", "jobset_name", "state"),
)
JOBSET_STATE_SECONDS = FamilySpec(
    "jobset_state_seconds",
    "Seconds the JobSet has been in its current state (as observed by this controller).",
    "gauge",
    ("namespace", "jobset_name", "state"),
)
JOBSET_PODS = FamilySpec(
    "jobset_pods",
    "Pods of the JobSet's current attempt: expected, scheduled (bound to a node), running, ready.",
    "gauge",
    ("namespace", "jobset_name", "phase"),
)
JOBSET_RESTARTS = FamilySpec(
    "jobset_status_restarts",
    "The JobSet's status.restarts (restarts of the current run).",
    "gauge",
    ("namespace", "jobset_name"),
)
JOBSET_GPU_IDLE_SECONDS = FamilySpec(
    "jobset_gpu_idle_seconds",
    "GPU-seconds held by a JobSet's bound pods while the JobSet was not fully running (waiting for peers, "
    "starting, restarting).",
    "counter",
    ("namespace", "jobset_name"),
)
JOBSET_BADPUT_GPU_SECONDS = FamilySpec(
    "jobset_badput_gpu_seconds",
    "GPU-seconds lost to restarts: for each restart, the time from the failure being acted on until every pod "
    "of the JobSet was Ready again, times the GPUs its pods then held.",
    "counter",
    ("namespace", "jobset_name"),
)

# Per-JobSet counters, kept by the tracker and rendered as rows (no per-JobSet prometheus_client children: a
# family of thousands of them cannot be rendered in slices). Counted only after the status write (D4 of behaviour.md).
JOBSET_FAILED = FamilySpec(
    "jobset_failed", "Times the controller set a JobSet's Failed condition.", "counter", ("jobset_name", "namespace")
)
JOBSET_COMPLETED = FamilySpec(
    "jobset_completed",
    "Times the controller set a JobSet's Completed condition.",
    "counter",
    ("jobset_name", "namespace"),
)
JOBSET_RESTARTS_TOTAL = FamilySpec(
    "jobset_restarts",
    "Restarts applied by the controller, by namespace, JobSet, failure-policy action, matching rule and reason.",
    "counter",
    ("namespace", "jobset_name", "action", "rule", "reason"),
)

# GPU occupancy (metrics.collectors.GpuCollector).
GPU_ALLOCATABLE = FamilySpec(
    "jobset_gpu_allocatable",
    "Allocatable GPUs on Ready, schedulable nodes, per node pool.",
    "gauge",
    ("node_pool",),
)
GPU_UNAVAILABLE = FamilySpec(
    "jobset_gpu_unavailable",
    "Allocatable GPUs on nodes that are NotReady or cordoned, per node pool.",
    "gauge",
    ("node_pool",),
)
GPU_REQUESTED = FamilySpec(
    "jobset_gpu_requested",
    "GPUs requested by cached pods bound to nodes and not finished (Pending-bound or Running), per node pool.",
    "gauge",
    ("node_pool",),
)
GPU_CLUSTER_ALLOCATABLE = FamilySpec(
    "jobset_cluster_gpu_allocatable", "Allocatable GPUs on Ready, schedulable nodes, whole cluster.", "gauge"
)
GPU_CLUSTER_REQUESTED = FamilySpec(
    "jobset_cluster_gpu_requested", "GPUs requested by bound, unfinished cached pods, whole cluster.", "gauge"
)
GPU_HELD = FamilySpec(
    "jobset_gpus_held", "GPUs requested by a JobSet's bound, unfinished pods.", "gauge", ("namespace", "jobset_name")
)

SCRAPE_FAMILIES: tuple[FamilySpec, ...] = (
    INFORMER_WATCH_RESTARTS,
    INFORMER_RELISTS,
    INFORMER_WATCH_EVENTS,
    INFORMER_WATCH_BYTES,
    INFORMER_OBJECTS,
    INFORMER_SYNCED,
    INFORMER_DECODE_ERRORS,
    INFORMER_QUARANTINED,
    INFORMER_STALLED,
    INFORMER_SINCE_PROGRESS,
    JOBSET_STATE_COUNT,
    JOBSET_STATUS,
    JOBSET_STATE_SECONDS,
    JOBSET_PODS,
    JOBSET_RESTARTS,
    JOBSET_GPU_IDLE_SECONDS,
    JOBSET_BADPUT_GPU_SECONDS,
    JOBSET_FAILED,
    JOBSET_COMPLETED,
    JOBSET_RESTARTS_TOTAL,
    GPU_ALLOCATABLE,
    GPU_UNAVAILABLE,
    GPU_REQUESTED,
    GPU_CLUSTER_ALLOCATABLE,
    GPU_CLUSTER_REQUESTED,
    GPU_HELD,
)


# --------------------------------------------------------------------------------------------- event-fed metrics


class Metrics:
    """The event-fed metrics, registered on ``self.registry`` (a fresh registry per instance)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        r = self.registry

        # controller-runtime (names and labels as its dashboards expect).
        self.reconcile_total = Counter(
            "controller_runtime_reconcile",
            "Reconciles per controller and result (success, error, requeue_after).",
            ["controller", "result"],
            registry=r,
        )
        self.reconcile_errors = Counter(
            "controller_runtime_reconcile_errors",
            "Reconciles that ended in an error, per controller.",
            ["controller"],
            registry=r,
        )
        self.reconcile_time = Histogram(
            "controller_runtime_reconcile_time_seconds",
            "Time of one reconcile, per controller.",
            ["controller"],
            buckets=RECONCILE_BUCKETS,
            registry=r,
        )

        # client-go work queue (label ``name``).
        self.wq_depth = Gauge("workqueue_depth", "Items waiting in the work queue.", ["name"], registry=r)
        self.wq_adds = Counter("workqueue_adds", "Items newly added to the work queue.", ["name"], registry=r)
        self.wq_queue_duration = Histogram(
            "workqueue_queue_duration_seconds",
            "Seconds an item waited in the queue before a worker took it.",
            ["name"],
            buckets=QUEUE_BUCKETS,
            registry=r,
        )
        self.wq_work_duration = Histogram(
            "workqueue_work_duration_seconds",
            "Seconds a worker spent on one item.",
            ["name"],
            buckets=QUEUE_BUCKETS,
            registry=r,
        )
        self.wq_retries = Counter("workqueue_retries", "Rate-limited re-adds (retries).", ["name"], registry=r)
        self.wq_unfinished = Gauge(
            "workqueue_unfinished_work_seconds",
            "Seconds of work in progress not yet observed by work_duration (large values mean stuck workers).",
            ["name"],
            registry=r,
        )
        self.wq_longest = Gauge(
            "workqueue_longest_running_processor_seconds",
            "Seconds the longest-running worker has been busy.",
            ["name"],
            registry=r,
        )

        # client-go REST client and leader election.
        self.rest_requests = Counter(
            "rest_client_requests",
            "HTTP requests to the API server, by status code, method and host.",
            ["code", "method", "host"],
            registry=r,
        )
        self.leader_status = Gauge(
            "leader_election_master_status",
            "1 while this process holds the lease named by ``name``, else 0.",
            ["name"],
            registry=r,
        )

        # JobSet lifecycle (per-JobSet counters are rows of metrics.collectors.LifecycleCollector).
        self.terminal = Counter(
            "jobset_terminal_outcomes",
            "JobSets that reached a terminal state, by namespace, state and reason.",
            ["namespace", "state", "reason"],
            registry=r,
        )
        self.startup_phase = Histogram(
            "jobset_startup_phase_seconds",
            "Seconds spent in one start-up phase: jobs_created (start → all Jobs created), pods_scheduled, "
            "pods_running, pods_ready (previous milestone → all pods in that state). ``trigger`` is create, "
            "resume or restart. Fleet-wide (no namespace label): 4 phases x 3 triggers x 15 buckets, whatever the "
            "number of namespaces; per-namespace latency is in jobset_startup_seconds.",
            ["trigger", "phase"],
            buckets=LIFECYCLE_BUCKETS,
            registry=r,
        )
        self.startup_total = Histogram(
            "jobset_startup_seconds",
            "Seconds from the start of an attempt (creation, resume, or restart decided) to all pods ready.",
            ["namespace", "trigger"],
            buckets=LIFECYCLE_BUCKETS,
            registry=r,
        )
        self.recovery = Histogram(
            "jobset_recovery_seconds",
            "Seconds from a failure being acted on (restart decided) until all pods are ready again.",
            ["namespace", "action"],
            buckets=LIFECYCLE_BUCKETS,
            registry=r,
        )
        self.tracked_over_cap = Gauge(
            "jobset_metrics_jobsets_over_cap",
            'JobSets counted under jobset_name="__other__" because of the per-JobSet series cap.',
            registry=r,
        )

    def per_jobset(self) -> list[MetricWrapperBase]:
        """The event-fed JobSet lifecycle metrics: exported by the leader only (``MetricsHub.exports_fleet``)."""
        return [self.terminal, self.startup_phase, self.startup_total, self.recovery, self.tracked_over_cap]
