"""The top-level decision for one JobSet: ``decide(snapshot, now) -> Plan`` (behaviour.md §4.1 and §4.2).

Role: orchestrate the policy modules in the reference controller's order:
managedBy → classify children → replicatedJobsStatus → finished? (delete active Jobs, TTL) → delete previous
attempt → RestartingJobSet=False JobsReady → failure policy (returns) → success policy (returns when met) →
headless Service → PVCs → elastic sync → create Jobs → suspend / resume → in-place restart.

Invariants: pure (no I/O, no clock: ``now`` is a parameter, no exceptions for control flow: a decision error is
``Plan.error``); the Plan carries a new status only when it differs from the stored one; ``replicatedJobsStatus``
is compared as a map keyed by name and, when it changes, written name-descending as the reference persists it;
each step costs O(children) at most (decision D5), so a 15k-Job JobSet decides in milliseconds; a Plan carries at
most ``max_writes`` Job creates, at most ``max_writes`` Job deletes and at most ``max_writes`` Job updates, and
says ``more`` when it was cut, so that a JobSet of any size is built and applied in bounded passes (the
reconciler requeues it behind the other keys) and never as one plan of ``replicas`` manifests; a status change
that is only ``replicatedJobsStatus`` counts is written at most once per ``Snapshot.status_window`` (``pacing``).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable
from typing import TypeVar

from api import constants as c
from api.jobset_types import JobSet, ReplicatedJobStatus
from api.jsontypes import JSON
from api.plan import JobUpdate, Plan, Snapshot
from api.records import Job
from controller.decide import children as build
from controller.decide import conditions as cond
from controller.decide import failure, pacing, startup, success
from controller.decide.classify import ClassifyError, replicated_jobs_status, snapshot_children
from controller.decide.elastic import elastic_updates
from controller.decide.extensions import ExtensionPass
from controller.decide.inplace import reconcile_in_place
from controller.decide.naming import dns_hostnames_enabled
from controller.decide.suspend import resume_jobs, suspend_jobs
from controller.decide.ttl import decide_ttl

T = TypeVar("T")


def decide(snap: Snapshot, now: dt.datetime, *, max_writes: int = c.MAX_CHILD_WRITES_PER_PASS) -> Plan:
    """The Plan for one pass over ``snap`` (see the module docstring); ``max_writes`` bounds each kind of Job write."""
    ext = ExtensionPass(snap, now)  # opt-in extensions (docs/design/extensions.md): hooks below, folded in here
    return _paced(snap, now, ext.finish(_decide(snap, now, ext, max_writes)))


def _paced(snap: Snapshot, now: dt.datetime, plan: Plan) -> Plan:
    """``plan`` with a counts-only status change held back until the pacing window ends (``decide.pacing``)."""
    if plan.status is None:
        return plan
    wait = pacing.deferral(
        plan.status,
        snap.jobset.status,
        has_events=bool(plan.events or plan.annotations) or plan.outcome is not None or plan.root_cause is not None,
        written_at=snap.status_written_at,
        window=snap.status_window,
        now=now,
    )
    if wait is None:
        return plan
    requeue = wait if plan.requeue_after is None else min(plan.requeue_after, wait)
    return dataclasses.replace(plan, status=None, requeue_after=requeue)


def _decide(snap: Snapshot, now: dt.datetime, ext: ExtensionPass, max_writes: int) -> Plan:
    js = snap.jobset
    if js.metadata.deletion_timestamp is not None:
        return Plan()
    if is_managed_elsewhere(js):
        return Plan()
    gate_restart_job = snap.gate(c.GATE_RESTART_JOB)
    try:
        kids = snapshot_children(snap, restart_job_gate=gate_restart_job)
    except ClassifyError as err:
        return Plan(error=str(err))

    draft = cond.StatusDraft(js.status, now)
    new_rjs = replicated_jobs_status(js, kids, restart_job_gate=gate_restart_job)
    if not same_replicated_jobs_status(new_rjs, js.status.replicated_jobs_status):
        draft.replicated_jobs_status = tuple(sorted(new_rjs, key=lambda s: s.name, reverse=True))
    statuses = {s.name: s for s in new_rjs}
    notes: list[str] = []

    # 4. A finished JobSet only cleans up its active Jobs and waits for its TTL.
    if draft.is_true(c.COND_COMPLETED) or draft.is_true(c.COND_FAILED):
        ttl = decide_ttl(js, now)
        deletes, more = _bounded(_deletable(kids.active), max_writes)
        return _plan(
            draft,
            notes,
            delete_jobs=deletes,
            delete_jobset=ttl.delete_jobset and not more,
            requeue_after=ttl.requeue_after,
            error=ttl.error,
            more=more,
        )

    # 5. Jobs of a previous attempt go (foreground, so same-name recreation waits for their pods).
    deletes, more = _bounded(ext.hold_previous(kids.previous_deletable(), draft), max_writes)

    # 6. After a restart, every Job ready or succeeded again ends the RestartingJobSet episode.
    suspended = startup.is_suspended(js)
    if not suspended and sum(s.ready + s.succeeded for s in new_rjs) == sum(
        r.replicas for r in js.spec.replicated_jobs
    ):
        draft.set_condition(c.COND_RESTARTING, "False", cond.REASON_JOBS_READY, cond.MSG_JOBS_READY)
        ext.on_all_ready(draft)

    # 7. Failures first; nothing is created in a pass that applies the failure policy.
    failed = kids.failed + ext.extra_failures(kids)
    if failed:
        first_event = len(draft.events)
        error = failure.execute(
            js, failed, draft, notes, restart_job_gate=gate_restart_job, budget_exhausted=ext.budget_exhausted()
        )
        ext.after_failure(failed, draft, first_event)
        return _plan(draft, notes, delete_jobs=deletes, error=error, more=more)

    # 8. Successes.
    if kids.successful and success.is_met(js, kids.successful):
        draft.set_completed()
        return _plan(draft, notes, delete_jobs=deletes, more=more)

    # 9-10. Headless Service and PVCs (both even while suspended, as the reference does).
    service = build.build_headless_service(js) if dns_hostnames_enabled(js) and not snap.service_exists else None
    pvcs = build.build_pvcs(js)

    # 11. Elastic sync.
    updates: list[JobUpdate] = []
    if snap.gate(c.GATE_ELASTIC_JOBSET):
        updates.extend(elastic_updates(js, kids.active))

    # 12. Create what is missing and allowed to start.
    creates = startup.jobs_to_create(js, kids, statuses, draft, restart_job_gate=gate_restart_job, limit=max_writes)

    # 13. Suspend or resume.
    if suspended:
        updates.extend(suspend_jobs(kids.active, draft))
    else:
        updates.extend(resume_jobs(js, kids.suspended_active, statuses, draft))

    # 14. In-place restart barrier.
    error = None
    policy = js.spec.failure_policy
    if policy is not None and policy.restart_strategy == "InPlaceRestart":
        if snap.gate(c.GATE_IN_PLACE_RESTART):
            error = reconcile_in_place(js, snap.pods, draft)
        else:
            notes.append("restartStrategy InPlaceRestart ignored: feature gate InPlaceRestart is off")

    bounded_updates, more_updates = _bounded(tuple(updates), max_writes)
    return _plan(
        draft,
        notes,
        delete_jobs=deletes,
        create_jobs=creates.manifests,
        update_jobs=bounded_updates,
        create_service=service,
        create_pvcs=tuple(pvcs),
        error=error,
        more=more or creates.more or more_updates,
    )


def is_managed_elsewhere(js: JobSet) -> bool:
    """``spec.managedBy`` names another controller (e.g. MultiKueue): we must not touch the JobSet at all."""
    return js.spec.managed_by is not None and js.spec.managed_by != c.CONTROLLER_NAME


def same_replicated_jobs_status(a: Iterable[ReplicatedJobStatus], b: Iterable[ReplicatedJobStatus]) -> bool:
    """Semantic equality of two list-maps keyed by name (order does not matter)."""
    left = {s.name: s for s in a}
    right = {s.name: s for s in b}
    return left == right


def _deletable(jobs: tuple[Job, ...]) -> tuple[str, ...]:
    return tuple(j.metadata.name for j in jobs if j.metadata.deletion_timestamp is None)


def _bounded(items: tuple[T, ...], limit: int) -> tuple[tuple[T, ...], bool]:
    """The first ``limit`` items, and whether any were left for a later pass."""
    return (items, False) if len(items) <= limit else (items[:limit], True)


def _plan(
    draft: cond.StatusDraft,
    notes: list[str],
    *,
    delete_jobs: tuple[str, ...] = (),
    create_jobs: tuple[JSON, ...] = (),
    update_jobs: tuple[JobUpdate, ...] = (),
    create_service: JSON | None = None,
    create_pvcs: tuple[JSON, ...] = (),
    delete_jobset: bool = False,
    requeue_after: float | None = None,
    error: str | None = None,
    more: bool = False,
) -> Plan:
    """Assemble the Plan; with a decision error, status, events and outcome are dropped (behaviour.md §4.1 step 4)."""
    status = None if error is not None else draft.build()
    return Plan(
        create_jobs=create_jobs,
        delete_jobs=delete_jobs,
        update_jobs=update_jobs,
        create_service=create_service,
        create_pvcs=create_pvcs,
        status=status,
        events=tuple(draft.events) if status is not None else (),
        delete_jobset=delete_jobset,
        requeue_after=requeue_after,
        error=error,
        outcome=draft.outcome if status is not None else None,
        notes=tuple(notes),
        more=more,
    )
