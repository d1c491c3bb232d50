"""The JobSet reconciler: key → snapshot from the store → ``decide`` → ``Actor.execute`` → queue verdict.

Role: glue between the cache and the pure policy. Event handlers only map an event to a JobSet key and enqueue
(a storm of pod or Job events for one JobSet costs one reconcile, because the queue deduplicates).

Result rules (controller-runtime's): a ``ReconcileError`` or API error → rate-limited requeue; a requeue-after →
forget the backoff and add after the delay; success → forget. An unexpected exception is logged with the key
and treated like an error (requeue with backoff): the worker never dies.

Bounded passes: ``decide`` cuts a large Plan at ``max_writes`` Job writes (``Plan.more``); the Actor then asks for
a requeue-after of 0, which puts the key at the back of the FIFO, so every other queued JobSet gets a pass before
the big one continues. While a Plan runs, the Actor asks ``still_current`` (a cache read) before every child
write and drops the rest of the Plan once the JobSet is gone, being deleted, or its generation or suspend
changed. Several workers may run ``process_one`` concurrently: the queue never hands one key to two of them.

Incremental classification: with ``tallies`` (a ``cache.tally.ChildTallies`` listening to the Job store), the
snapshot carries the JobSet's child tally and ``decide`` reads counts and buckets instead of classifying every
child: a steady-state reconcile costs O(replicated jobs) plus C-speed tuple copies (well under 2 ms at 15k Jobs).

Status pacing: the reconciler remembers when the Actor last wrote each JobSet's status (this process, this term)
and hands that time with ``status_window`` to ``decide`` in the Snapshot, which holds back a counts-only status
change inside the window (``controller.decide.pacing``); a JobSet that leaves the cache is forgotten.

Never blocking the loop: a full pass of ``decide`` is O(children) (classification), about 1 µs per child Job, so for
a JobSet with at least ``offload_children`` children whose tally cannot be used it runs in a worker thread
(``asyncio.to_thread``). The Snapshot is
immutable (a tuple of frozen records taken on the loop), so the thread shares nothing mutable; the GIL is handed
back to the loop every switch interval (5 ms), so lease renewals, probes, webhooks and informers keep running.
Small JobSets decide inline, in the order the conformance suite pins.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import structlog

from api import constants as c
from api.extensions import Defaults
from api.jobset_types import JobSet
from api.plan import Snapshot
from api.records import Job, Pod, Service
from cache.errors import ApiError, Conflict, NotFound, TerminalError
from cache.queue import QueueShutDown, WorkQueue
from cache.store import Store
from cache.tally import ChildTallies
from controller.act import Actor, ReconcileError
from controller.decide.classify import children_from_tally
from controller.decide.inplace import pod_change_matters
from controller.decide.naming import subdomain
from controller.decide.reconcile import decide
from metrics.seam import ReconcileObserver

log = structlog.get_logger("pyjobset.reconciler")

OWNER_INDEX = "owner-uid"
JOBSET_LABEL_INDEX = "jobset-name"


def owner_uid_index(obj: Job | Service | Pod) -> list[str]:
    """Index children by the UID of a controlling JobSet owner (decision D5 of behaviour.md: O(children) lookups)."""
    for ref in obj.metadata.owner_references:
        if ref.controller and ref.kind == c.KIND and ref.api_version == c.API_VERSION:
            return [ref.uid]
    return []


def jobset_label_index(obj: Pod) -> list[str]:
    name = obj.metadata.labels.get(c.JOBSET_NAME_KEY)
    return [f"{obj.metadata.namespace}/{name}"] if name else []


@dataclass
class JobSetReconciler:
    jobsets: Store[JobSet]
    jobs: Store[Job]
    services: Store[Service]
    actor: Actor
    queue: WorkQueue[str]
    gates: Mapping[str, bool] = field(default_factory=dict)
    pods: Store[Pod] | None = None
    now: Callable[[], dt.datetime] = field(default=lambda: dt.datetime.now(dt.UTC))
    observers: list[ReconcileObserver] = field(default_factory=list)
    reconciles: int = 0
    max_writes: int = c.MAX_CHILD_WRITES_PER_PASS
    """Per-pass bound on Job creates (and on deletes, and on updates) handed to ``decide``."""
    offload_children: int = 2000
    """From this many child Jobs on, a full-pass ``decide`` runs in a worker thread (inline it would cost ≳ 2 ms)."""
    tallies: ChildTallies | None = None
    """Incremental per-JobSet tallies of ``jobs`` (must listen to that store); None: every decide is a full pass."""
    extensions: Defaults = field(default_factory=Defaults)
    status_window: float = 0.0
    """Pacing of counts-only status writes (``controller.decide.pacing``; ``pyjobset.statusCoalescing``)."""
    status_written: dict[str, dt.datetime] = field(default_factory=dict)
    """JobSet UID → when this process last wrote its status; forgotten when the JobSet leaves the cache."""

    def __post_init__(self) -> None:
        if isinstance(self.actor, Actor):  # handler-only tests pass no Actor
            self.actor.on_status_written.append(self._status_written)

    def _status_written(self, js: JobSet) -> None:
        self.status_written[js.metadata.uid] = self.now()

    # ------------------------------------------------------------------------------------ handlers

    def on_jobset(self, old: JobSet | None, new: JobSet | None) -> None:
        obj = new if new is not None else old
        if obj is not None:
            if new is None:
                self.status_written.pop(obj.metadata.uid, None)
            self.queue.add(f"{obj.metadata.namespace}/{obj.metadata.name}")

    def on_owned(self, old: Any, new: Any) -> None:
        """Jobs and Services: enqueue the controlling JobSet (by owner reference)."""
        for obj in (old, new):
            if obj is None:
                continue
            for ref in obj.metadata.owner_references:
                if ref.controller and ref.kind == c.KIND and ref.api_version == c.API_VERSION:
                    self.queue.add(f"{obj.metadata.namespace}/{ref.name}")

    def on_pod(self, old: Pod | None, new: Pod | None) -> None:
        """Pods (gate InPlaceRestart): a change ``decide`` reads is enqueued at once; any other is coalesced
        (at most one reconcile per window per JobSet, ``Pyjobset.pod_event_coalescing``)."""
        add = self.queue.add if pod_change_matters(old, new) else self.queue.add_coalesced
        for obj in (old, new):
            if obj is not None and (name := obj.metadata.labels.get(c.JOBSET_NAME_KEY)):
                add(f"{obj.metadata.namespace}/{name}")

    # ------------------------------------------------------------------------------------ reconcile

    def snapshot(self, js: JobSet) -> Snapshot:
        uid = js.metadata.uid
        jobs = self.jobs.index_tuple(OWNER_INDEX, uid)
        svc = self.services.get(f"{js.metadata.namespace}/{subdomain(js)}")
        pods: tuple[Pod, ...] = ()
        if self.pods is not None and self.gates.get(c.GATE_IN_PLACE_RESTART):
            pods = tuple(self.pods.by_index(JOBSET_LABEL_INDEX, js.key))
        tally = self.tallies.view(uid) if self.tallies is not None else None
        return Snapshot(
            jobset=js,
            jobs=jobs,
            service_exists=svc is not None,
            gates=self.gates,
            pods=pods,
            extensions=self.extensions,
            tally=tally,
            status_written_at=self.status_written.get(uid),
            status_window=self.status_window,
        )

    def full_pass_needed(self, snap: Snapshot) -> bool:
        """Whether ``decide`` will classify every child (no usable tally): O(attempts), no classification."""
        if snap.tally is None:
            return True
        gate = bool(self.gates.get(c.GATE_RESTART_JOB))
        return children_from_tally(snap.jobset, snap.tally, len(snap.jobs), restart_job_gate=gate) is None

    async def reconcile(self, key: str) -> float | None:
        js = self.jobsets.get(key)
        if js is None:
            return None
        snap = self.snapshot(js)
        if len(snap.jobs) >= self.offload_children and self.full_pass_needed(snap):
            plan = await asyncio.to_thread(decide, snap, self.now(), max_writes=self.max_writes)
        else:
            plan = decide(snap, self.now(), max_writes=self.max_writes)
        if plan.is_empty:
            return None
        return await self.actor.execute(js, plan, self.still_current(key, js))

    def still_current(self, key: str, js: JobSet) -> Callable[[], bool]:
        """Whether the cached JobSet is still the one ``js`` a Plan was decided for: same UID and generation, not
        being deleted, same ``suspend``. O(1): one store read."""
        uid, generation, suspend = js.metadata.uid, js.metadata.generation, bool(js.spec.suspend)

        def check() -> bool:
            now = self.jobsets.get(key)
            return (
                now is not None
                and now.metadata.uid == uid
                and now.metadata.deletion_timestamp is None
                and now.metadata.generation == generation
                and bool(now.spec.suspend) == suspend
            )

        return check

    async def process_one(self) -> bool:
        """Take one key from the queue and reconcile it; False once the queue is shut down."""
        try:
            key = await self.queue.get()
        except QueueShutDown:
            return False
        started = time.perf_counter()
        result = "success"
        try:
            requeue_after = await self.reconcile(key)
        except (ReconcileError, ApiError) as err:
            result = "error"
            # Conflicts and transient failures are routine (info); a refusal retrying cannot cure is a warning.
            cause = err if isinstance(err, ApiError) else err.__cause__
            terminal = isinstance(cause, TerminalError) and not isinstance(cause, Conflict | NotFound)
            (log.warning if terminal else log.info)(
                "reconcile_failed", jobset=key, error=str(err), requeues=self.queue.num_requeues(key)
            )
            self.queue.add_rate_limited(key)
        except Exception:
            result = "error"
            log.exception("reconcile_crashed", jobset=key)
            self.queue.add_rate_limited(key)
        else:
            self.queue.forget(key)
            if requeue_after is not None:
                result = "requeue_after"
                self.queue.add_after(key, requeue_after)
        finally:
            self.queue.done(key)
            self.reconciles += 1
        log.debug("reconciled", jobset=key, result=result)
        for obs in self.observers:
            obs.reconcile_done("jobset", result, time.perf_counter() - started)
        return True

    async def run_worker(self) -> None:
        while await self.process_one():
            pass
