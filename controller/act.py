"""The acting layer: carry out a ``Plan`` against the API server. The only code that writes JobSet children.

Order (behaviour.md §4.1/4.2): previous-attempt and finished deletes → headless Service → PVCs → Job creates → Job
updates (elastic sync, suspend/resume) → one status write → the extensions' ``metadata.annotations`` patch
(``controller.annotate``) → queued events → metrics → TTL deletion.

Invariants:
* no policy here: every decision was made by ``controller.decide``;
* creates and deletes run in bounded parallel batches (at most ``max_parallel`` in flight, like the reference's
  50) through the client's QPS limiter;
* ``Plan.error``: the listed child writes still happen, then the error is raised (no status, no events);
* a failing step stops the plan: later steps, the status write and the queued events are skipped and the error
  is raised for a rate-limited requeue; immediate Warning events (JobCreationFailed, HeadlessServiceCreationFailed,
  PVCCreationFailed) are emitted at once, as the reference does;
* events and metrics of a Plan happen only after its status write succeeded (decision D4);
* every successful write is written through to the cache, so the next reconcile never sees older state.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import msgspec
import structlog

from api.constants import GROUP, PLURAL, VERSION
from api.jobset_types import JobSet, encode_status, to_obj
from api.plan import Plan
from api.records import Job, Service
from cache.client import MERGE_PATCH, ApiClient, resource_path
from cache.errors import AlreadyExists, ApiError, NotFound
from controller.annotate import write_annotations
from controller.events import EventRecorder
from metrics.seam import PlanObserver

log = structlog.get_logger("pyjobset.act")

T = TypeVar("T")


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

    async def execute(self, js: JobSet, plan: Plan) -> float | None:
        """Run ``plan`` for ``js``; returns the requeue-after delay, raises ``ReconcileError`` on failure."""
        ns = js.metadata.namespace
        for note in plan.notes:
            log.info("decision_note", jobset=js.metadata.name, namespace=ns, note=note)
        if plan.delete_jobs:
            await self._delete_jobs(ns, plan.delete_jobs)
        if plan.create_service is not None:
            await self._create_service(js, plan.create_service)
        for pvc in plan.create_pvcs:
            await self._create_pvc(js, pvc)
        if plan.create_jobs:
            await self._create_jobs(js, plan.create_jobs)
        for update in plan.update_jobs:
            await self._update_job(ns, update.name, update.patch, clear_start_time=update.clear_start_time)
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
        return plan.requeue_after

    # ------------------------------------------------------------------------------------ steps

    async def _bounded(self, items: Iterable[T], fn: Callable[[T], Awaitable[None]]) -> list[BaseException]:
        sem = asyncio.Semaphore(self.max_parallel)

        async def one(item: T) -> None:
            async with sem:
                await fn(item)

        results = await asyncio.gather(*(one(i) for i in items), return_exceptions=True)
        return [r for r in results if isinstance(r, BaseException)]

    async def _delete_jobs(self, ns: str, names: Iterable[str]) -> None:
        async def delete(name: str) -> None:
            try:
                resp = await self.client.delete(
                    resource_path("batch", "v1", "jobs", ns, name), propagation="Foreground"
                )
            except NotFound:
                return
            if resp.get("kind") == "Job" and self.jobs is not None:
                self.jobs.upsert_if_newer(msgspec.convert(resp, Job))

        errors = await self._bounded(names, delete)
        if errors:
            raise ReconcileError("; ".join(f"deleting job: {e}" for e in errors))

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

    async def _create_jobs(self, js: JobSet, manifests: Iterable[dict[str, Any]]) -> None:
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

        await self._bounded(manifests, create)
        if failures:
            message = "\n".join(sorted(failures))
            await self.recorder.record(js, "Warning", "JobCreationFailed", message)
            raise ReconcileError(message)

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
            raise ReconcileError(f"writing JobSet status: {err}") from err
        if self.jobsets is not None:
            self.jobsets.upsert_if_newer(self.jobsets.decode(msgspec.json.encode(updated)))
