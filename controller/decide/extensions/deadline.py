"""Startup deadline and fail-fast: Jobs that count as failed for the failure policy without a Failed condition.

Role: ``late_jobs`` finds, once ``startup-deadline`` has passed since the current attempt's first Job was
created (or resumed), the Jobs that still lack all their pods Ready (and are not finished); ``as_failed`` gives
such a Job (or a fail-fast Job with ``FailureTarget``) the Failed condition the failure policy reads, as a copy.

Invariants: pure; nothing while the JobSet is suspended; the synthesized condition's time is the deadline (or the
``FailureTarget`` time), so "first failed Job" stays deterministic; the stored Job is never changed.
"""

from __future__ import annotations

import datetime as dt

import msgspec

from api import extensions as x
from api.jobset_types import JobSet
from api.records import Job, JobCondition
from api.timefmt import format_time, parse_time
from controller.decide.classify import Children, is_job_ready


def as_failed(job: Job, reason: str, message: str, when: str) -> Job:
    failed = JobCondition(type="Failed", status="True", reason=reason, message=message, last_transition_time=when)
    status = msgspec.structs.replace(job.status, conditions=(*job.status.conditions, failed))
    return msgspec.structs.replace(job, status=status)


def _started(job: Job) -> dt.datetime | None:
    """When the Job's clock starts: its creation, or its (re)start when resumed later (``status.startTime`` is
    reset on resume), so a JobSet created suspended is not timed out the moment it is admitted."""
    created = parse_time(job.metadata.creation_timestamp)
    started = parse_time(job.status.start_time)
    if created is None or started is None:
        return created
    return max(created, started)


def late_jobs(js: JobSet, kids: Children, seconds: float, now: dt.datetime) -> tuple[list[Job], float | None]:
    """(Jobs failed by the deadline, seconds until the deadline when it is still ahead and something is unready)."""
    if js.spec.suspend:
        return [], None
    current = (*kids.active, *kids.successful, *kids.failed)
    created = [t for j in current if not j.spec.suspend and (t := _started(j)) is not None]
    if not created:
        return [], None
    unready = [j for j in kids.active if not j.spec.suspend and not is_job_ready(j)]
    if not unready:
        return [], None
    due = min(created) + dt.timedelta(seconds=seconds)
    if now < due:
        return [], (due - now).total_seconds()
    message = f"startup deadline {seconds:g}s exceeded: not all pods of the Job were Ready by {format_time(due)}"
    when = format_time(due)
    return [as_failed(j, x.REASON_STARTUP_DEADLINE_EXCEEDED, message, when) for j in unready], None
