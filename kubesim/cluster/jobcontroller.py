"""The simulated batch/v1 Job controller: runs ``jobsync.sync_job`` per Job and applies the plan to the store.

Per sync, in the real controller's order: delete pods (stripping the tracking finalizer first when the plan
says so), create pods in slow-start batches (1, 2, 4, ...; the rest of a sync is skipped after a failed
batch), write the status (optimistic concurrency: a 409 requeues), then release the tracking finalizers of the
pods that status counted, then record Events (SuccessfulCreate, SuccessfulDelete, FailedCreate, Completed,
the failure reason, Suspended, Resumed). Pod events trigger a Job sync at once, or after ``batch_seconds``
(the real controller batches pod updates for 1 s) so that a burst of pod changes costs one sync. Errors
requeue the Job with per-key exponential backoff; the plan's ``requeue_after`` (deadline, pod-failure
backoff) arms a delayed resync.

Jobs with ``spec.managedBy`` naming another controller are left alone. A finished Job with
``ttlSecondsAfterFinished`` is deleted (Foreground) once its TTL has run out, as the TTL-after-finished
controller does. Pods whose controller Job is gone have the tracking finalizer removed (orphan cleanup), so
garbage collection after a Background or Foreground Job deletion completes.

Writes can be throttled like kube-controller-manager's client (``qps``/``burst``; 0 = unlimited).

Invariant: only one sync per Job runs at a time (work-queue guarantee); ``JobMemory`` lives here, keyed by Job.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from typing import Any

from kubesim.cluster.clock import Clock
from kubesim.cluster.events import EventRecorder
from kubesim.cluster.index import ClusterIndex, Key, controller_uid
from kubesim.cluster.jobsync import BackoffSettings, JobMemory, JobPlan, sync_job
from kubesim.cluster.jobutil import TRACKING_FINALIZER, build_pod, is_job_finished
from kubesim.cluster.ratelimit import TokenBucket
from kubesim.cluster.workqueue import WorkQueue, run_worker
from kubesim.storage.store import Store
from kubesim.util.errors import ApiError
from kubesim.util.timefmt import parse_rfc3339

JSON = dict[str, Any]
log = logging.getLogger("kubesim.cluster.jobs")
_SUFFIX_CHARS = "bcdfghjklmnpqrstvwxz2456789"
SLOW_START_INITIAL_BATCH = 1
JOB_CONTROLLER_NAME = "kubernetes.io/job-controller"
MANAGER = "kube-controller-manager"


def _suffix() -> str:
    return "".join(secrets.choice(_SUFFIX_CHARS) for _ in range(5))


class JobController:
    def __init__(
        self,
        store: Store,
        index: ClusterIndex,
        clock: Clock,
        *,
        workers: int = 4,
        backoff: BackoffSettings | None = None,
        events: bool = True,
        batch_seconds: float = 0.0,
        qps: float = 0.0,
        burst: int = 1,
    ) -> None:
        self.store = store
        self.limiter = TokenBucket(clock, qps, burst)
        self.batch_seconds = batch_seconds
        self.index = index
        self.clock = clock
        self.queue: WorkQueue[Key] = WorkQueue(clock)
        self.orphans: WorkQueue[Key] = WorkQueue(clock)
        self.memory: dict[Key, JobMemory] = {}
        self.backoff = backoff or BackoffSettings()
        self.recorder = EventRecorder(store, clock, "job-controller", enabled=events)
        self._workers = workers
        self._tasks: list[asyncio.Task[None]] = []
        self.syncs = 0
        index.handlers.append(self._on_change)

    # ------------------------------------------------------------------ event handlers (never await)

    def _on_change(self, kind: str, key: Key, obj: JSON, deleted: bool) -> None:
        if kind == "jobs":
            self.queue.add(key)
        elif kind == "pods":
            owner = controller_uid(obj)
            job_key = None if owner is None else self.index.job_by_uid.get(owner)
            if job_key is not None:
                if self.batch_seconds > 0:
                    self.queue.add_after(job_key, self.batch_seconds)
                else:
                    self.queue.add(job_key)
            elif not deleted and TRACKING_FINALIZER in ((obj.get("metadata") or {}).get("finalizers") or []):
                # Our finalizer on a pod whose Job is gone (or that was orphaned): release it.
                self.orphans.add(key)

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        for _ in range(self._workers):
            self._tasks.append(asyncio.create_task(run_worker(self.queue, self.sync, "job", log)))
        self._tasks.append(asyncio.create_task(run_worker(self.orphans, self.sync_orphan, "job", log)))

    async def stop(self) -> None:
        self.queue.shutdown()
        self.orphans.shutdown()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()

    def idle(self) -> bool:
        """No work possible without time passing (queues empty, or every worker waits for a rate-limit token)."""
        if self.limiter.waiting:
            return True
        return self.queue.idle() and self.orphans.idle()

    # ------------------------------------------------------------------ syncs

    async def sync_orphan(self, key: Key) -> None:
        pod = self.store.get_nowait("pods", key[1], key[0])
        if pod is None or TRACKING_FINALIZER not in (pod["metadata"].get("finalizers") or []):
            return
        owner = controller_uid(pod)
        if owner is not None and owner in self.index.job_by_uid:
            return
        await self._remove_finalizer(key[1], key[0])

    async def _remove_finalizer(self, name: str, namespace: str) -> None:
        pod = self.store.get_nowait("pods", name, namespace)
        if pod is None or TRACKING_FINALIZER not in (pod["metadata"].get("finalizers") or []):
            return
        await self.limiter.take()
        await self.store.remove_finalizer("pods", name, namespace, TRACKING_FINALIZER)

    async def sync(self, key: Key) -> None:
        ns, name = key
        job = self.store.get_nowait("jobs.batch", name, ns)
        if job is None:
            self.memory.pop(key, None)
            return
        managed_by = (job.get("spec") or {}).get("managedBy")
        if managed_by not in (None, "", JOB_CONTROLLER_NAME):
            return  # another controller (e.g. MultiKueue) owns this Job's status
        self.syncs += 1
        if is_job_finished(job) and await self._expire_if_due(key, job):
            return
        uid = job["metadata"].get("uid", "")
        pods = []
        for pkey in list(self.index.pods_by_owner.get(uid, ())):
            pod = self.store.get_nowait("pods", pkey[1], pkey[0])
            if pod is not None:
                pods.append(pod)
        memory = self.memory.setdefault(key, JobMemory())
        live = {p["metadata"].get("uid") for p in pods if TRACKING_FINALIZER in (p["metadata"].get("finalizers") or [])}
        memory.counted &= live
        plan = sync_job(job, pods, self.clock.now(), memory, self.backoff)
        await self._act(key, job, plan, memory)

    async def _expire_if_due(self, key: Key, job: JSON) -> bool:
        """The TTL-after-finished controller: delete (Foreground) a finished Job whose TTL has run out."""
        ttl = (job.get("spec") or {}).get("ttlSecondsAfterFinished")
        if ttl is None:
            return False
        finished_at = None
        for cond in (job.get("status") or {}).get("conditions") or []:
            if cond.get("type") in ("Complete", "Failed") and cond.get("status") == "True":
                finished_at = parse_rfc3339(cond.get("lastTransitionTime"))
        if finished_at is None:
            return False
        due = finished_at + float(ttl)
        if self.clock.now() < due:
            self.queue.add_after(key, due - self.clock.now())
            return False
        try:
            await self.store.delete(
                "jobs.batch",
                key[1],
                key[0],
                propagation_policy="Foreground",
                preconditions={"uid": job["metadata"].get("uid", "")},
            )
        except ApiError as err:
            if err.code not in (404, 409):
                raise
        return True

    async def _act(self, key: Key, job: JSON, plan: JobPlan, memory: JobMemory) -> None:
        ns = key[0]
        events: list[tuple[str, str, str]] = []
        error: ApiError | None = None
        for d in plan.deletes:
            try:
                if d.strip_finalizer:
                    await self._remove_finalizer(d.name, ns)
                await self.limiter.take()
                await self.store.delete("pods", d.name, ns)
                events.append(("Normal", "SuccessfulDelete", f"Deleted pod: {d.name}"))
            except ApiError as err:
                if err.code != 404:
                    error = err
        failed_creates = 0
        pending = list(plan.creates)
        batch = SLOW_START_INITIAL_BATCH
        while pending:
            chunk, pending = pending[:batch], pending[batch:]
            results = await asyncio.gather(*(self._create(job, c.index, c.failure_counts) for c in chunk))
            errs = [r for r in results if isinstance(r, ApiError)]
            for r in results:
                if isinstance(r, ApiError):
                    events.append(("Warning", "FailedCreate", f"Error creating: {r.message}"))
                else:
                    events.append(("Normal", "SuccessfulCreate", f"Created pod: {r}"))
            if errs:
                error = errs[0]
                failed_creates += len(errs) + len(pending)
                break
            batch *= 2
        status = plan.status
        if status is not None and failed_creates:
            status = dict(status, active=max(0, int(status.get("active", 0)) - failed_creates))
        if status is not None:
            new_job = dict(job, status=status)
            await self.limiter.take()
            try:
                await self.store.update_status("jobs.batch", new_job, ns, field_manager=MANAGER)
            except ApiError as err:
                if err.code == 404:
                    return
                await self._emit(job, events)
                raise
        memory.backoff = plan.backoff
        for pod_name, pod_uid in plan.remove_finalizers:
            memory.counted.add(pod_uid)
            try:
                await self._remove_finalizer(pod_name, ns)
            except ApiError as err:
                if err.code != 404:
                    error = err
                    continue
            memory.counted.discard(pod_uid)
        await self._emit(job, events + plan.events)
        if plan.requeue_after is not None:
            self.queue.add_after(key, plan.requeue_after)
        if error is not None:
            raise error

    async def _create(self, job: JSON, index: int | None, counts: tuple[int, int] | None) -> str | ApiError:
        pod = build_pod(job, index, _suffix(), failure_counts=counts)
        del pod["metadata"]["name"]
        await self.limiter.take()
        try:
            created = await self.store.create("pods", pod, pod["metadata"]["namespace"], field_manager=MANAGER)
        except ApiError as err:
            return err
        return str(created["metadata"]["name"])

    async def _emit(self, job: JSON, events: list[tuple[str, str, str]]) -> None:
        for etype, reason, message in events:
            await self.recorder.emit(job, etype, reason, message)
