"""JobSet lifecycle metrics: start-up phases, recovery, restarts, terminal outcomes, per-JobSet state.

Role: ``LifecycleTracker`` is fed by informer events (``on_jobset``, ``on_job``, ``on_pod`` — the handler
signature ``(old, new)``) and by applied ``api.plan.Plan``s (``plan_applied``, the ``metrics.seam.PlanObserver``
the acting layer calls only after the status write succeeded: decision D4 of behaviour.md). It
keeps, per JobSet, O(1)-updated counts of the current attempt's Jobs and pods (created / scheduled / running /
ready) and times the milestones of each *attempt window*:

    start (creation, resume, or restart decided) → all Jobs created → all pods scheduled → all pods running
    → all pods ready

observing ``jobset_startup_phase_seconds`` per phase, ``jobset_startup_seconds`` for the whole, and
``jobset_recovery_seconds`` (failure acted on → all pods ready again) for restart windows; each such recovery
also adds its duration times the GPUs then held to the JobSet's ``jobset_badput_gpu_seconds_total``.
``LifecycleCollector`` (``metrics.collectors``) renders the per-JobSet state at scrape time; the series of a
deleted JobSet vanish with it.

States (``jobset_status``): Completed / Failed (condition True), Suspended (``spec.suspend``), Running (all Jobs
of the current attempt exist and all its pods are ready), Restarting (not all ready after a restart was acted
on), Starting (otherwise: creating, scheduling, waiting for peers, or a pod was lost without a restart yet).
Per-JobSet counters (``jobset_failed_total``, ``jobset_completed_total``, ``jobset_restarts_total``) live here as
plain dicts, counted once per applied Plan outcome, and are dropped with their JobSet.

Invariants:
* only what was witnessed is measured: a milestone already reached when the tracker first looks at a JobSet
  (controller start-up, or the tracker not yet ``synced``) has no time, and a phase is observed only when both
  of its ends have times — a controller restart never produces bogus latencies;
* counts include only the current attempt's objects (label ``restart-attempt`` == ``status.restarts``, JobSet
  UID label matching, not being deleted); a restart re-counts from the JobSet's own pod and Job maps;
* every handler is O(1) per event (a restart is O(objects of that JobSet)); handlers never raise into the
  informer and never await;
* ``jobset_name`` label values are capped (``MetricsSettings.jobset_cap``): JobSets past the cap share
  ``"__other__"``, and the counters of that shared series stay monotonic when its members are deleted;
* GPU-seconds "held while not fully running" are integrated exactly at every change of held GPUs or state, and
  the open interval is added at scrape time (no sampling, no per-event gauge writes).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import structlog

from api import constants as c
from api.jobset_types import JobSet
from api.plan import Plan
from api.records import Job, Pod
from metrics.readers import PodState, attempt_of, condition_true, parse_time, pod_state, pods_per_job
from metrics.registry import Metrics
from metrics.settings import OTHER_JOBSET, MetricsSettings

log = structlog.get_logger("pyjobset.metrics.lifecycle")

PHASES = ("jobs_created", "pods_scheduled", "pods_running", "pods_ready")
STATES = ("Suspended", "Starting", "Running", "Restarting", "Completed", "Failed")
RUNNING = "Running"


class _Window:
    """One attempt being timed: milestone times (None = reached but not witnessed)."""

    __slots__ = ("action", "per_job", "reached", "recovery_t0", "t0", "trigger")

    def __init__(
        self,
        trigger: str,
        t0: float | None,
        *,
        action: str = "",
        recovery_t0: float | None = None,
        per_job: bool = False,
    ) -> None:
        self.trigger = trigger
        self.t0 = t0
        self.action = action
        self.recovery_t0 = recovery_t0
        self.per_job = per_job
        self.reached: dict[str, float | None] = {}


class _View:
    """What the tracker knows about one JobSet."""

    __slots__ = (
        "attempt",
        "badput",
        "created",
        "held",
        "idle_acc",
        "idle_mark",
        "jobs",
        "jobs_expected",
        "known",
        "label",
        "n_jobs",
        "n_ready",
        "n_running",
        "n_sched",
        "name",
        "namespace",
        "pods",
        "pods_expected",
        "restart_labels",
        "restarts",
        "state",
        "state_since",
        "suspended",
        "terminal",
        "uid",
        "window",
    )

    def __init__(self, namespace: str, name: str) -> None:
        self.namespace = namespace
        self.name = name
        self.label = OTHER_JOBSET
        self.known = False
        self.uid = ""
        self.created: float | None = None
        self.suspended = False
        self.terminal = ""
        self.attempt = 0
        self.restarts = 0
        self.jobs_expected = 0
        self.pods_expected = 0
        self.jobs: dict[str, tuple[str, int, bool]] = {}  # job key -> (uid label, attempt, counted)
        self.pods: dict[str, PodState] = {}
        self.n_jobs = self.n_sched = self.n_running = self.n_ready = 0
        self.held = 0
        self.window: _Window | None = None
        self.state = ""
        self.state_since = 0.0
        self.idle_acc = 0.0
        self.idle_mark = 0.0
        self.badput = 0.0
        self.restart_labels: set[tuple[str, str, str]] = set()

    def matches(self, uid: str, attempt: int) -> bool:
        return attempt == self.attempt and (not uid or not self.uid or uid == self.uid)

    def recount(self) -> None:
        self.n_jobs = sum(1 for uid, att, ok in self.jobs.values() if ok and self.matches(uid, att))
        n_sched = n_running = n_ready = 0
        for uid, attempt, counted, bound, running, ready, _ in self.pods.values():
            if counted and self.matches(uid, attempt):
                n_sched += bound
                n_running += running
                n_ready += ready
        self.n_sched, self.n_running, self.n_ready = n_sched, n_running, n_ready

    def all_ready(self) -> bool:
        return self.n_jobs >= self.jobs_expected and self.n_ready >= self.pods_expected

    def derive_state(self) -> str:
        if self.terminal:
            return self.terminal
        if self.suspended:
            return "Suspended"
        if self.all_ready():
            return RUNNING
        if self.window is not None and self.window.recovery_t0 is not None:
            return "Restarting"
        return "Starting"

    def idle_seconds(self, now: float) -> float:
        if self.state and self.state != RUNNING and self.held:
            return self.idle_acc + self.held * max(now - self.idle_mark, 0.0)
        return self.idle_acc


class LifecycleTracker:
    """Per-JobSet lifecycle bookkeeping fed by store events and applied Plans (see the module docstring)."""

    def __init__(
        self,
        metrics: Metrics,
        settings: MetricsSettings | None = None,
        *,
        clock: Callable[[], float] = time.time,
        synced: Callable[[], bool] | None = None,
    ) -> None:
        self.m = metrics
        self.settings = settings if settings is not None else MetricsSettings()
        self.clock = clock
        self._synced_check = synced
        self.synced = synced is None
        self.views: dict[str, _View] = {}
        self._admitted: set[str] = set()
        self.failed: dict[tuple[str, str], int] = {}
        """``jobset_failed_total`` by (jobset_name label, namespace)."""
        self.completed: dict[tuple[str, str], int] = {}
        """``jobset_completed_total`` by (jobset_name label, namespace)."""
        self.restart_counts: dict[tuple[str, str, str, str, str], int] = {}
        """``jobset_restarts_total`` by (namespace, jobset_name label, action, rule, reason)."""
        self.retired_other_idle: dict[str, float] = {}
        """Idle GPU-seconds of deleted ``__other__`` JobSets, per namespace (keeps that counter monotonic)."""
        self.retired_other_badput: dict[str, float] = {}
        """Badput GPU-seconds of deleted ``__other__`` JobSets, per namespace (likewise)."""
        self.over_cap = 0

    # ------------------------------------------------------------------------------------ labels

    def label_of(self, namespace: str, name: str) -> str:
        """The ``jobset_name`` label value of a JobSet (its name, or ``__other__`` past the cap)."""
        view = self.views.get(f"{namespace}/{name}")
        return view.label if view is not None else OTHER_JOBSET

    def _admit(self, view: _View) -> None:
        key = f"{view.namespace}/{view.name}"
        if key in self._admitted:
            view.label = view.name
        elif len(self._admitted) < self.settings.jobset_cap:
            self._admitted.add(key)
            view.label = view.name
        else:
            view.label = OTHER_JOBSET
            self.over_cap += 1
            self.m.tracked_over_cap.set(self.over_cap)

    def _view(self, namespace: str, name: str) -> _View:
        key = f"{namespace}/{name}"
        view = self.views.get(key)
        if view is None:
            view = self.views[key] = _View(namespace, name)
        return view

    # ------------------------------------------------------------------------------------ sync

    def poll_synced(self) -> bool:
        """Check the injected sync predicate; on the first True, look at every JobSet for the first time."""
        if self.synced:
            return True
        if self._synced_check is not None and self._synced_check():
            self.mark_synced()
        return self.synced

    def mark_synced(self) -> None:
        """The caches hold a first full LIST: from now on milestones are witnessed as they happen."""
        if self.synced:
            return
        self.synced = True
        now = self.clock()
        for view in list(self.views.values()):
            if view.known:
                self._first_sight(view, now)

    def _first_sight(self, view: _View, now: float) -> None:
        view.state = view.derive_state()
        from_creation = view.state == "Starting" and view.restarts == 0 and view.created is not None
        view.state_since = view.created if from_creation and view.created is not None else now
        view.idle_mark = now
        if view.state in ("Starting", "Restarting"):
            t0 = view.created if view.restarts == 0 else None
            view.window = _Window("create" if view.restarts == 0 else "restart", t0)
            self._advance(view, now, witnessed=False)

    # ------------------------------------------------------------------------------------ informer handlers

    def on_jobset(self, old: JobSet | None, new: JobSet | None) -> None:
        try:
            if not self.synced:
                self.poll_synced()
            if new is None:
                if old is not None:
                    self._deleted(old)
                return
            self._jobset_changed(new)
        except Exception:
            log.exception("metrics_jobset_handler_failed")

    def _jobset_changed(self, js: JobSet) -> None:
        meta = js.metadata
        view = self._view(meta.namespace, meta.name)
        if view.known and view.uid and meta.uid and view.uid != meta.uid:
            self._deleted_view(view)  # deleted and re-created under the same name
            view = self._view(meta.namespace, meta.name)
        now = self.clock()
        first = not view.known
        if first:
            view.known = True
            self._admit(view)
        was_suspended = view.suspended
        prev_attempt = view.attempt
        view.uid = meta.uid
        view.created = parse_time(meta.creation_timestamp)
        view.suspended = bool(js.spec.suspend)
        status = js.status
        view.restarts = status.restarts
        view.terminal = (
            "Completed"
            if condition_true(status, c.COND_COMPLETED)
            else "Failed"
            if condition_true(status, c.COND_FAILED)
            else ""
        )
        view.jobs_expected = sum(rj.replicas for rj in js.spec.replicated_jobs)
        view.pods_expected = sum(rj.replicas * pods_per_job(rj.template) for rj in js.spec.replicated_jobs)
        view.attempt = max(view.attempt, status.restarts)
        if not self.synced:
            view.recount()
            return
        if first:
            view.recount()
            self._first_sight_after_sync(view, now)
            return
        if view.attempt != prev_attempt:
            # A restart we did not see decided (another leader applied it): time it from now. Our own restarts
            # bump ``attempt`` in ``plan_applied`` first, so they never get here.
            view.recount()
            window = view.window
            recovery_t0 = window.recovery_t0 if window is not None else None
            view.window = _Window("restart", now, action="unknown", recovery_t0=recovery_t0 or now)
        if was_suspended and not view.suspended and not view.terminal:
            view.window = _Window("resume", now)
        self._advance(view, now)

    def _first_sight_after_sync(self, view: _View, now: float) -> None:
        """A JobSet created while we watch: its attempt starts at its creation (or at resume, if suspended)."""
        view.idle_mark = now
        if view.terminal or view.suspended:
            view.state = view.derive_state()
            view.state_since = now
            return
        if view.restarts == 0:
            view.window = _Window("create", view.created if view.created is not None else now)
            view.state = "Starting"
            view.state_since = view.created if view.created is not None else now
            self._advance(view, now)
        else:
            self._first_sight(view, now)

    def _child_view(self, old: Job | Pod | None, new: Job | Pod | None) -> tuple[_View, str] | None:
        """The view of the JobSet a child Job or pod belongs to (created on a new child) and the child's key;
        None for a child without the jobset-name label or the deletion of one we never saw."""
        if not self.synced:
            self.poll_synced()
        obj = new if new is not None else old
        if obj is None:
            return None
        name = obj.metadata.labels.get(c.JOBSET_NAME_KEY)
        if not name:
            return None
        view = self.views.get(f"{obj.metadata.namespace}/{name}")
        if view is None:
            if new is None:
                return None
            view = self._view(obj.metadata.namespace, name)
        return view, obj.key

    def on_job(self, old: Job | None, new: Job | None) -> None:
        try:
            found = self._child_view(old, new)
            if found is None:
                return
            view, key = found
            prev = view.jobs.pop(key, None)
            if prev is not None and prev[2] and view.matches(prev[0], prev[1]):
                view.n_jobs -= 1
            if new is not None:
                labels = new.metadata.labels
                entry = (
                    labels.get(c.JOBSET_UID_KEY) or "",
                    attempt_of(labels.get(c.RESTART_ATTEMPT_KEY)),
                    new.metadata.deletion_timestamp is None,
                )
                view.jobs[key] = entry
                if entry[2] and view.matches(entry[0], entry[1]):
                    view.n_jobs += 1
            self._touched(view)
        except Exception:
            log.exception("metrics_job_handler_failed")

    def on_pod(self, old: Pod | None, new: Pod | None) -> None:
        try:
            found = self._child_view(old, new)
            if found is None:
                return
            view, key = found
            now = self.clock()
            prev = view.pods.pop(key, None)
            held_before = view.held
            if prev is not None:
                uid, attempt, counted, bound, running, ready, held = prev
                view.held -= held
                if counted and view.matches(uid, attempt):
                    view.n_sched -= bound
                    view.n_running -= running
                    view.n_ready -= ready
            if new is not None:
                st = view.pods[key] = pod_state(new, self.settings.gpu_resource)
                uid, attempt, counted, bound, running, ready, held = st
                view.held += held
                if counted and view.matches(uid, attempt):
                    view.n_sched += bound
                    view.n_running += running
                    view.n_ready += ready
            if view.held != held_before:
                self._integrate(view, now, held_before)
            self._touched(view, now)
        except Exception:
            log.exception("metrics_pod_handler_failed")

    def _touched(self, view: _View, now: float | None = None) -> None:
        if not view.known:
            if not view.pods and not view.jobs:
                self.views.pop(f"{view.namespace}/{view.name}", None)
            return
        if self.synced:
            self._advance(view, self.clock() if now is None else now)

    # ------------------------------------------------------------------------------------ applied plans

    def plan_applied(self, js: JobSet, plan: Plan) -> None:
        """``metrics.seam.PlanObserver``, called by the acting layer after the status write succeeded: restarts and
        terminal outcomes, exactly once."""
        try:
            outcome = plan.outcome
            if outcome is None:
                return
            meta = js.metadata
            view = self.views.get(js.key)
            if view is None or not view.known:
                self._jobset_changed(js)
                view = self._view(meta.namespace, meta.name)
            label = view.label
            ns = meta.namespace
            now = self.clock()
            if outcome.kind == "restarted":
                action = outcome.action or "RestartJobSet"
                labels = (action, outcome.rule, outcome.reason)
                key = (ns, label, *labels)
                self.restart_counts[key] = self.restart_counts.get(key, 0) + 1
                view.restart_labels.add(labels)
                old = view.window
                recovery_t0 = old.recovery_t0 if old is not None and old.recovery_t0 is not None else now
                status = plan.status
                # Compare with the JobSet the plan was decided on: the watch event of our own status write may
                # already have moved ``view.attempt`` (the acting layer awaits event writes before observers).
                bumped = status is not None and status.restarts > js.status.restarts
                if status is not None and status.restarts > view.attempt:
                    view.attempt = view.restarts = status.restarts
                    view.recount()
                # Without a new attempt number (per-Job restarts) the old Jobs still count: time recovery only.
                view.window = _Window("restart", now, action=action, recovery_t0=recovery_t0, per_job=not bumped)
                if self.synced:
                    self._advance(view, now)
            elif outcome.kind in ("failed", "completed"):
                counts = self.failed if outcome.kind == "failed" else self.completed
                counts[(label, ns)] = counts.get((label, ns), 0) + 1
                state = "Failed" if outcome.kind == "failed" else "Completed"
                self.m.terminal.labels(namespace=ns, state=state, reason=outcome.reason).inc()
                view.terminal = state
                view.window = None
                if self.synced:
                    self._advance(view, now)
        except Exception:
            log.exception("metrics_plan_observer_failed", jobset=js.key)

    # ------------------------------------------------------------------------------------ milestones

    def _advance(self, view: _View, now: float, *, witnessed: bool = True) -> None:
        window = view.window
        if window is not None and (view.terminal or view.suspended):
            view.window = window = None
        if window is not None:
            self._milestones(view, window, now, witnessed=witnessed)
        state = view.derive_state()
        if state != view.state:
            self._integrate(view, now, view.held)
            view.state = state
            view.state_since = now

    def _milestones(self, view: _View, window: _Window, now: float, *, witnessed: bool) -> None:
        stamp = now if witnessed else None
        reached = window.reached
        if window.per_job:
            # A per-Job restart keeps the attempt label: only "all pods ready again" is meaningful.
            if view.all_ready():
                self._done(view, window, stamp)
            return
        checks = (
            view.jobs_expected > 0 and view.n_jobs >= view.jobs_expected,
            view.n_sched >= view.pods_expected,
            view.n_running >= view.pods_expected,
            view.n_ready >= view.pods_expected,
        )
        prev_time = window.t0
        for phase, ok in zip(PHASES, checks, strict=True):
            if phase in reached:
                prev_time = reached[phase]
                continue
            if not ok:
                return
            reached[phase] = stamp
            if stamp is not None and prev_time is not None:
                self.m.startup_phase.labels(window.trigger, phase).observe(max(stamp - prev_time, 0))
            prev_time = stamp
        self._done(view, window, stamp)

    def _done(self, view: _View, window: _Window, stamp: float | None) -> None:
        view.window = None
        if stamp is None:
            return
        if window.t0 is not None and not window.per_job:
            self.m.startup_total.labels(view.namespace, window.trigger).observe(max(stamp - window.t0, 0))
        if window.recovery_t0 is not None:
            action = window.action or "unknown"
            recovered = max(stamp - window.recovery_t0, 0)
            self.m.recovery.labels(view.namespace, action).observe(recovered)
            view.badput += recovered * view.held

    def _integrate(self, view: _View, now: float, held: int) -> None:
        """Close the idle-GPU interval that ran with ``held`` GPUs in ``view.state``."""
        if view.state and view.state != RUNNING and held:
            view.idle_acc += held * max(now - view.idle_mark, 0.0)
        view.idle_mark = now

    # ------------------------------------------------------------------------------------ deletion

    def _deleted(self, js: JobSet) -> None:
        view = self.views.get(js.key)
        if view is not None and (not view.uid or not js.metadata.uid or view.uid == js.metadata.uid):
            self._deleted_view(view)

    def _deleted_view(self, view: _View) -> None:
        key = f"{view.namespace}/{view.name}"
        now = self.clock()
        self.views.pop(key, None)
        ns, label = view.namespace, view.label
        if label == OTHER_JOBSET:
            self.retired_other_idle[ns] = self.retired_other_idle.get(ns, 0.0) + view.idle_seconds(now)
            self.retired_other_badput[ns] = self.retired_other_badput.get(ns, 0.0) + view.badput
            if view.known:
                self.over_cap = max(self.over_cap - 1, 0)
                self.m.tracked_over_cap.set(self.over_cap)
            return
        self._admitted.discard(key)
        self.failed.pop((label, ns), None)
        self.completed.pop((label, ns), None)
        for labels in view.restart_labels:
            self.restart_counts.pop((ns, label, *labels), None)
