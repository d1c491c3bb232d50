"""Adapters from the controller's and the cache's hooks to the metrics of ``metrics.registry``.

Role: small objects the wiring plugs into existing hook points —
* ``ReconcileMetrics`` → ``JobSetReconciler.observers`` (a ``metrics.seam.ReconcileObserver``);
* ``WorkQueueMetrics`` → ``WorkQueue(metrics=...)`` (the ``cache.queue.QueueMetrics`` protocol);
* ``RestClientMetrics`` → ``ApiClient.on_request`` (called with ``(method, code)``);
* ``LeaderMetrics`` → leader election callbacks (``started_leading`` / ``stopped_leading``);

Invariants: hooks are O(1), never raise into the caller and never await; label children are resolved once and
reused (a label lookup per event would dominate the cost at 100k events/s).
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import Counter, Histogram

from metrics.registry import Metrics


class ReconcileMetrics:
    """``controller_runtime_reconcile_*`` from the reconciler's ``reconcile_done`` hook."""

    def __init__(self, metrics: Metrics) -> None:
        self._m = metrics
        self._totals: dict[tuple[str, str], Counter] = {}
        self._errors: dict[str, Counter] = {}
        self._times: dict[str, Histogram] = {}

    def reconcile_done(self, controller: str, result: str, seconds: float) -> None:
        key = (controller, result)
        total = self._totals.get(key)
        if total is None:
            total = self._totals[key] = self._m.reconcile_total.labels(controller=controller, result=result)
        total.inc()
        if result == "error":
            errors = self._errors.get(controller)
            if errors is None:
                errors = self._errors[controller] = self._m.reconcile_errors.labels(controller=controller)
            errors.inc()
        hist = self._times.get(controller)
        if hist is None:
            hist = self._times[controller] = self._m.reconcile_time.labels(controller=controller)
        hist.observe(max(seconds, 0.0))

    def declare(self, controller: str) -> None:
        """Create the zero-valued series of ``controller`` so dashboards show 0 rather than no data."""
        for result in ("success", "error", "requeue_after"):
            self._m.reconcile_total.labels(controller=controller, result=result)
        self._m.reconcile_errors.labels(controller=controller)
        self._m.reconcile_time.labels(controller=controller)


class WorkQueueMetrics:
    """The ``cache.queue.QueueMetrics`` protocol for one queue, as client-go's ``workqueue_*`` series."""

    def __init__(self, metrics: Metrics, name: str) -> None:
        self.name = name
        self._depth = metrics.wq_depth.labels(name=name)
        self._adds = metrics.wq_adds.labels(name=name)
        self._queue_duration = metrics.wq_queue_duration.labels(name=name)
        self._work_duration = metrics.wq_work_duration.labels(name=name)
        self._retries = metrics.wq_retries.labels(name=name)
        self._unfinished = metrics.wq_unfinished.labels(name=name)
        self._longest = metrics.wq_longest.labels(name=name)

    def depth(self, value: int) -> None:
        self._depth.set(value)

    def added(self) -> None:
        self._adds.inc()

    def queue_duration(self, seconds: float) -> None:
        self._queue_duration.observe(max(seconds, 0.0))

    def work_duration(self, seconds: float) -> None:
        self._work_duration.observe(max(seconds, 0.0))

    def retried(self) -> None:
        self._retries.inc()

    def unfinished_work(self, total_seconds: float, longest_seconds: float) -> None:
        self._unfinished.set(total_seconds)
        self._longest.set(longest_seconds)


class RestClientMetrics:
    """``rest_client_requests_total{code, method, host}``; an instance is an ``ApiClient.on_request`` hook."""

    def __init__(self, metrics: Metrics, host: str) -> None:
        self._m = metrics
        self.host = host
        self._children: dict[tuple[str, int], Counter] = {}

    def __call__(self, method: str, code: int) -> None:
        key = (method, code)
        child = self._children.get(key)
        if child is None:
            # code 0 means the request never got an answer (connection error), as client-go's "<error>".
            label = str(code) if code else "<error>"
            child = self._children[key] = self._m.rest_requests.labels(code=label, method=method, host=self.host)
        child.inc()


class LeaderMetrics:
    """``leader_election_master_status{name}``: 0 until ``started_leading``, back to 0 on ``stopped_leading``."""

    def __init__(self, metrics: Metrics, name: str, on_change: Callable[[bool], None] | None = None) -> None:
        self._gauge = metrics.leader_status.labels(name=name)
        self._on_change = on_change
        self.set(False)

    def started_leading(self) -> None:
        self.set(True)

    def stopped_leading(self) -> None:
        self.set(False)

    def set(self, leading: bool) -> None:
        self._gauge.set(1 if leading else 0)
        if self._on_change is not None:
            self._on_change(leading)
