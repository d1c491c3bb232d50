"""The acting layer's share of the extensions: write ``metadata.annotations`` and complete root-cause records.

Role: given a Plan's ``annotations`` merge patch and ``root_cause`` request, read the failed Job's pods from the
API server (by the Job controller's ``batch.kubernetes.io/controller-uid`` label; only when a restart or failure
was just decided, so the read is rare), let the pure ``rootcause`` module build the record, and patch the
JobSet's annotations with a JSON merge patch of ``metadata.annotations`` only.

Invariants: annotations owned by others are never sent, so never overwritten; a failed pod read degrades the record
(no pod details), never the reconcile; the events returned are the Plan's, with the root cause appended to the
restart/failure events' messages (reasons unchanged) when a failed pod was found.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import msgspec
import structlog

from api import extensions as x
from api.constants import GROUP, PLURAL, VERSION
from api.jobset_types import JobSet
from api.plan import Event, Plan
from cache.client import MERGE_PATCH, ApiClient, resource_path
from cache.errors import ApiError
from controller.decide.extensions import rootcause

log = structlog.get_logger("pyjobset.annotate")

CONTROLLER_UID_LABEL = "batch.kubernetes.io/controller-uid"


async def write_annotations(client: ApiClient, js: JobSet, plan: Plan, jobsets: Any | None) -> tuple[Event, ...]:
    """Apply the Plan's annotation changes; returns the events to record (possibly with extended messages)."""
    patch: dict[str, str | None] = dict(plan.annotations)
    events = plan.events
    request = plan.root_cause
    ns = js.metadata.namespace
    if request is not None:
        pods: list[dict[str, Any]] = []
        if request.job_uid:
            try:
                listed = await client.get(
                    resource_path("", "v1", "pods", ns), {"labelSelector": f"{CONTROLLER_UID_LABEL}={request.job_uid}"}
                )
                pods = list(listed.get("items") or [])
            except ApiError as err:
                log.info("root_cause_pods_unreadable", jobset=js.metadata.name, namespace=ns, error=str(err))
        record = rootcause.build_record(request, pods)
        patch[x.LAST_FAILURE] = rootcause.encode_record(record)
        if request.restart:
            current = patch.get(x.RESTART_HISTORY) or js.metadata.annotations.get(x.RESTART_HISTORY)
            patch[x.RESTART_HISTORY] = rootcause.merge_history(current, record)
        suffix = rootcause.event_suffix(record)
        if suffix:
            wanted = set(request.event_indices)
            events = tuple(
                dataclasses.replace(e, message=e.message + suffix) if i in wanted else e for i, e in enumerate(events)
            )
    if patch:
        path = resource_path(GROUP, VERSION, PLURAL, ns, js.metadata.name)
        try:
            updated = await client.patch(path, {"metadata": {"annotations": patch}}, patch_type=MERGE_PATCH)
        except ApiError as err:
            log.info("annotations_not_written", jobset=js.metadata.name, namespace=ns, error=str(err))
        else:
            if jobsets is not None:
                jobsets.upsert_if_newer(jobsets.decode(msgspec.json.encode(updated)))
    return events
