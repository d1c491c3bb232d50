"""The acting layer: carry out a ``Plan`` against the API server. The only code that writes JobSet children.

Order (behaviour.md §4.1/4.2): previous-attempt and finished deletes → headless Service → PVCs → Job creates → Job
updates (elastic sync, suspend/resume) → one status write → the extensions' ``metadata.annotations`` patch
(``controller.annotate``) → queued events → metrics → TTL deletion.

Invariants:
* no policy here: every decision was made by ``controller.decide``;
* creates, deletes and updates run through a pool of at most ``max_parallel`` workers (like the reference's 50)
  that take the next item only when one finishes, through the client's QPS limiter: memory and event-loop work
  are bounded by what is in flight, never by the size of the Plan;
* a Plan is abandoned as soon as ``still_current()`` says the JobSet it was decided for is gone, being deleted,
  suspended/resumed or changed (checked before every child write): no further child write starts (at most the
  ``max_parallel`` in flight complete), the status and events are skipped, and ``execute`` asks for an immediate
  requeue so the next pass decides from the new state;
* ``Plan.error``: the listed child writes still happen, then the error is raised (no status, no events);
* a failing step stops the plan: later steps, the status write and the queued events are skipped and the error
  is raised for a rate-limited requeue; immediate Warning events (JobCreationFailed, HeadlessServiceCreationFailed,
  PVCCreationFailed) are emitted at once, as the reference does;
* events and metrics of a Plan happen only after its status write succeeded (decision D4);
* every successful write is written through to the cache, so the next reconcile never sees older state.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import msgspec
import structlog

from api.constants import GROUP, PLURAL, VERSION
from api.jobset_types import JobSet, encode_status, to_obj
from api.plan import JobUpdate, Plan
from api.records import Job, Service
from cache.client import MERGE_PATCH, ApiClient, resource_path
from cache.errors import AlreadyExists, ApiError, BadRequest, Forbidden, Invalid, NotFound
from controller.annotate import write_annotations
from controller.events import EventRecorder
from metrics.seam import PlanObserver

log = structlog.get_logger("pyjobset.act")

T = TypeVar("T")


def _always() -> bool:
    return True


REASON_STATUS_UPDATE_FAILED = "StatusUpdateFailed"
"""Warning event reason: the API server refused the JobSet status write (ours; the reference only logs it)."""
REASON_POLICY_NOT_APPLIED = "PolicyNotApplied"
"""Warning event reason: part of the JobSet's policy could not be honoured (e.g. an invalid pattern skipped)."""


def status_rejected_message(err: ApiError) -> str:
    """The event message for a refused status write: the server's words (they name the field) and the fix."""
    if isinstance(err, Forbidden):
        fix = "grant the controller's ServiceAccount update on jobsets/status (deploy/rbac)"
    else:
        fix = (
            "correct the field named above in the JobSet (without the pyjobset webhook only the CRD's schema "
            "checks it), then the controller retries"
        )
    return f"the API server refused the JobSet status update: {err}; fix: {fix}"


class ReconcileError(Exception):
    """A Plan could not be carried out (or decide reported an error); the key is requeued with backoff."""


class WriteThrough(Protocol):
    """The informers' write-through entry point (``Informer.upsert_if_newer``) plus a decoder."""

    def upsert_if_newer(self, obj: Any) -> None: ...

    def decode(self, raw: bytes) -> Any: ...


@dataclass
class Actor:
    client: ApiClient
    recorder: EventRecorder
    jobs: WriteThrough | None = None
    jobsets: WriteThrough | None = None
    services: WriteThrough | None = None
    max_parallel: int = 50
    observers: list[PlanObserver] = field(default_factory=list)
    on_status_written: list[Callable[[JobSet], None]] = field(default_factory=list)
    """Called after each status write the API server accepted (the reconciler paces counts-only writes by it)."""

    async def execute(self, js: JobSet, plan: Plan, still_current: Callable[[], bool] | None = None) -> float | None:
        """Run ``plan`` for ``js``; returns the requeue-after delay, raises ``ReconcileError`` on failure.

        ``still_current`` (read from the cache) is asked before each child write; once it answers False the rest
        of the Plan is dropped and 0 (requeue now) is returned.
        """
        ns = js.metadata.namespace
        current = still_current if still_current is not None else _always
        for note in plan.notes:
            # A note is something the user asked for that could not be honoured (e.g. an invalid failure-policy
            # pattern skipped): it must reach the user where they look, not only the log.
            log.warning("decision_note", jobset=js.metadata.name, namespace=ns, note=note)
            await self.recorder.record(js, "Warning", REASON_POLICY_NOT_APPLIED, note)
        if plan.delete_jobs and not await self._delete_jobs(ns, plan.delete_jobs, current):
            return self._superseded(js, plan)
        if plan.create_service is not None:
            await self._create_service(js, plan.create_service)
        for pvc in plan.create_pvcs:
            await self._create_pvc(js, pvc)
        if plan.create_jobs and not await self._create_jobs(js, plan.create_jobs, current):
            return self._superseded(js, plan)
        if plan.update_jobs and not await self._update_jobs(ns, plan.update_jobs, current):
            return self._superseded(js, plan)
        if plan.error is not None:
            # The child writes above are the ones the reference performs before failing; status, events and
            # metrics are skipped and the key is requeued with backoff.
            raise ReconcileError(plan.error)
        if plan.status is not None:
            await self._write_status(js, plan)
        events = plan.events
        if plan.annotations or plan.root_cause is not None:  # opt-in extensions (controller.annotate)
            events = await write_annotations(self.client, js, plan, self.jobsets)
        for event in events:
            await self.recorder.record(js, event.type, event.reason, event.message)
        for observer in self.observers:
            observer.plan_applied(js, plan)
        if plan.delete_jobset:
            try:
                await self.client.delete(
                    resource_path(GROUP, VERSION, PLURAL, ns, js.metadata.name), propagation="Foreground"
                )
            except NotFound:
                pass
            except ApiError as err:
                raise ReconcileError(f"deleting JobSet after its TTL: {err}") from err
        if plan.more:
            return 0.0  # the rest of a cut Plan: again at once, behind the keys already queued
        return plan.requeue_after

    @staticmethod
    def _superseded(js: JobSet, plan: Plan) -> float:
        log.info(
            "plan_superseded",
            jobset=js.metadata.name,
            namespace=js.metadata.namespace,
            reason="the JobSet is gone, being deleted, or changed since the plan was decided",
            planned_creates=len(plan.create_jobs),
        )
        return 0.0

    # ------------------------------------------------------------------------------------ steps

    async def _bounded(
        self, items: Sequence[T], fn: Callable[[T], Awaitable[None]], current: Callable[[], bool]
    ) -> tuple[list[Exception], bool]:
        """Run ``fn`` over ``items`` with at most ``max_parallel`` in flight; (errors, completed).

        Workers share one iterator, so only ``max_parallel`` coroutines exist whatever ``len(items)``; each asks
        ``current()`` before taking an item, and once it is False no worker starts another (completed is False).
        """
        pending = iter(items)
        errors: list[Exception] = []
        stopped = False

        async def worker() -> None:
            nonlocal stopped
            for item in pending:
                if stopped or not current():
                    stopped = True
                    return
                try:
                    await fn(item)
                except Exception as err:  # noqa: BLE001 - collected and reported by the caller
                    errors.append(err)

        await asyncio.gather(*(worker() for _ in range(min(self.max_parallel, len(items)))))
        return errors, not stopped

    async def _delete_jobs(self, ns: str, names: Sequence[str], current: Callable[[], bool]) -> bool:
        async def delete(name: str) -> None:
            try:
                resp = await self.client.delete(
                    resource_path("batch", "v1", "jobs", ns, name), propagation="Foreground"
                )
            except NotFound:
                return
            if resp.get("kind") == "Job" and self.jobs is not None:
                self.jobs.upsert_if_newer(msgspec.convert(resp, Job))

        errors, completed = await self._bounded(names, delete, current)
        if errors:
            raise ReconcileError("; ".join(f"deleting job: {e}" for e in errors))
        return completed

    async def _create_service(self, js: JobSet, manifest: dict[str, Any]) -> None:
        ns = js.metadata.namespace
        try:
            created = await self.client.create(resource_path("", "v1", "services", ns), manifest)
        except AlreadyExists:
            return  # a same-named Service is used as-is (behaviour.md §3)
        except ApiError as err:
            await self.recorder.record(js, "Warning", "HeadlessServiceCreationFailed", str(err))
            raise ReconcileError(f"creating headless service: {err}") from err
        if self.services is not None:
            self.services.upsert_if_newer(msgspec.convert(created, Service))

    async def _create_pvc(self, js: JobSet, manifest: dict[str, Any]) -> None:
        try:
            await self.client.create(resource_path("", "v1", "persistentvolumeclaims", js.metadata.namespace), manifest)
        except AlreadyExists:
            return
        except ApiError as err:
            await self.recorder.record(js, "Warning", "PVCCreationFailed", str(err))
            raise ReconcileError(f"creating PVC: {err}") from err

    async def _create_jobs(self, js: JobSet, manifests: Sequence[dict[str, Any]], current: Callable[[], bool]) -> bool:
        path = resource_path("batch", "v1", "jobs", js.metadata.namespace)
        failures: list[str] = []

        async def create(manifest: dict[str, Any]) -> None:
            name = manifest["metadata"]["name"]
            try:
                created = await self.client.create(path, manifest)
            except ApiError as err:
                failures.append(f'job "{name}" creation failed with error: {err}')
                return
            if self.jobs is not None:
                self.jobs.upsert_if_newer(msgspec.convert(created, Job))

        _, completed = await self._bounded(manifests, create, current)
        if failures:
            message = "\n".join(sorted(failures))
            await self.recorder.record(js, "Warning", "JobCreationFailed", message)
            raise ReconcileError(message)
        return completed

    async def _update_jobs(self, ns: str, updates: Sequence[JobUpdate], current: Callable[[], bool]) -> bool:
        """Updates in tuple order, one at a time (a failure stops the rest, as before)."""
        for update in updates:
            if not current():
                return False
            await self._update_job(ns, update.name, update.patch, clear_start_time=update.clear_start_time)
        return True

    async def _update_job(self, ns: str, name: str, patch: dict[str, Any], *, clear_start_time: bool) -> None:
        path = resource_path("batch", "v1", "jobs", ns, name)
        try:
            if clear_start_time:
                await self.client.patch(path + "/status", {"status": {"startTime": None}}, patch_type=MERGE_PATCH)
            updated = await self.client.patch(path, patch, patch_type=MERGE_PATCH)
        except ApiError as err:
            raise ReconcileError(f"updating job {name!r}: {err}") from err
        if self.jobs is not None:
            self.jobs.upsert_if_newer(msgspec.convert(updated, Job))

    async def _write_status(self, js: JobSet, plan: Plan) -> None:
        assert plan.status is not None
        body = to_obj(js)
        body["status"] = encode_status(plan.status)
        path = resource_path(GROUP, VERSION, PLURAL, js.metadata.namespace, js.metadata.name, "status")
        try:
            updated = await self.client.replace(path, body)
        except ApiError as err:
            if isinstance(err, Invalid | BadRequest | Forbidden):
                # Retrying cannot cure it: say so on the JobSet (the recorder aggregates repeats into a series).
                await self.recorder.record(js, "Warning", REASON_STATUS_UPDATE_FAILED, status_rejected_message(err))
            raise ReconcileError(f"writing JobSet status: {err}") from err
        for callback in self.on_status_written:
            callback(js)
        if self.jobsets is not None:
            self.jobsets.upsert_if_newer(self.jobsets.decode(msgspec.json.encode(updated)))
