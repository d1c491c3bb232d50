"""Child classification (spec 4.3) and the per-replicated-job status counts (spec 1.6).

Invariants: a Job belongs to exactly one bucket; the previous attempt is decided by the ``restart-attempt``
label alone (and ``job-restart-attempt`` when gate RestartJob is on); deletion timestamps are not considered.
"""

from __future__ import annotations

from dataclasses import dataclass

from cache import constants as c
from cache.jobset_types import JobSet, ReplicatedJobStatus
from cache.records import Job


class ClassifyError(ValueError):
    """A child Job carries a label the controller cannot interpret; the whole reconcile fails (spec 4.3)."""


@dataclass(frozen=True, slots=True)
class Children:
    active: tuple[Job, ...] = ()
    successful: tuple[Job, ...] = ()
    failed: tuple[Job, ...] = ()
    previous: tuple[Job, ...] = ()

    def names(self) -> set[str]:
        return {j.metadata.name for b in (self.active, self.successful, self.failed, self.previous) for j in b}


def is_finished(job: Job) -> tuple[bool, str]:
    """(finished, condition type): Complete or Failed True finishes a Job; nothing else does."""
    for cond in job.status.conditions:
        if cond.status == "True" and cond.type in ("Complete", "Failed"):
            return True, cond.type
    return False, ""


def _int_label(job: Job, key: str) -> int:
    raw = job.metadata.labels.get(key)
    try:
        return int(raw) if raw is not None else 0
    except ValueError as err:
        raise ClassifyError(f"job {job.metadata.name!r} has a non-integer label {key}={raw!r}") from err


def classify(js: JobSet, jobs: tuple[Job, ...], *, restart_job_gate: bool = False) -> Children:
    active: list[Job] = []
    successful: list[Job] = []
    failed: list[Job] = []
    previous: list[Job] = []
    restart_arrays = {r.name: (0,) * r.replicas for r in js.spec.replicated_jobs}
    restart_arrays.update({s.name: s.job_restarts for s in js.status.replicated_jobs_status if s.job_restarts})
    for job in jobs:
        if c.RESTART_ATTEMPT_KEY not in job.metadata.labels:
            raise ClassifyError(f"job {job.metadata.name!r} is missing label {c.RESTART_ATTEMPT_KEY}")
        if _int_label(job, c.RESTART_ATTEMPT_KEY) < js.status.restarts:
            previous.append(job)
            continue
        if restart_job_gate and _is_previous_job_attempt(job, restart_arrays):
            previous.append(job)
            continue
        finished, ctype = is_finished(job)
        if not finished:
            active.append(job)
        elif ctype == "Complete":
            successful.append(job)
        else:
            failed.append(job)
    return Children(tuple(active), tuple(successful), tuple(failed), tuple(previous))


def _is_previous_job_attempt(job: Job, restart_arrays: dict[str, tuple[int, ...]]) -> bool:
    labels = job.metadata.labels
    rjob = labels.get(c.REPLICATED_JOB_NAME_KEY)
    if rjob is None or c.JOB_INDEX_KEY not in labels:
        raise ClassifyError(f"job {job.metadata.name!r} is missing its replicated-job name or job-index label")
    index = _int_label(job, c.JOB_INDEX_KEY)
    if c.JOB_RESTART_ATTEMPT_KEY not in labels:
        return False  # created before the gate was turned on: kept for backward compatibility
    attempt = _int_label(job, c.JOB_RESTART_ATTEMPT_KEY)
    restarts = restart_arrays.get(rjob, ())
    if index >= len(restarts):
        raise ClassifyError(f"job {job.metadata.name!r} has job-index {index} outside the restart array")
    return attempt < restarts[index]


def is_job_ready(job: Job) -> bool:
    """``succeeded + ready >= min(parallelism, completions or parallelism)`` (spec 1.6)."""
    parallelism = job.spec.parallelism if job.spec.parallelism is not None else 1
    completions = job.spec.completions if job.spec.completions is not None else parallelism
    ready = job.status.ready or 0
    return job.status.succeeded + ready >= min(parallelism, completions)


def replicated_jobs_status(
    js: JobSet, children: Children, *, restart_job_gate: bool
) -> tuple[ReplicatedJobStatus, ...]:
    """One entry per spec replicated job, recomputed from current-attempt children."""
    counts: dict[str, dict[str, int]] = {
        r.name: {"ready": 0, "succeeded": 0, "failed": 0, "active": 0, "suspended": 0} for r in js.spec.replicated_jobs
    }

    def bucket(job: Job) -> dict[str, int] | None:
        return counts.get(job.metadata.labels.get(c.REPLICATED_JOB_NAME_KEY, ""))

    for job in children.successful:
        if (b := bucket(job)) is not None:
            b["succeeded"] += 1
    for job in children.failed:
        if (b := bucket(job)) is not None:
            b["failed"] += 1
    for job in children.active:
        if (b := bucket(job)) is None:
            continue
        if is_job_ready(job):
            b["ready"] += 1
        if job.status.active > 0:
            b["active"] += 1
        if job.spec.suspend:
            b["suspended"] += 1
    old = {s.name: s for s in js.status.replicated_jobs_status}
    out = []
    for rjob in js.spec.replicated_jobs:
        prev = old.get(rjob.name)
        carried = restart_job_gate and prev is not None
        out.append(
            ReplicatedJobStatus(
                name=rjob.name,
                **counts[rjob.name],
                job_restarts=prev.job_restarts if carried and prev else None,
                job_restarts_count_towards_max=prev.job_restarts_count_towards_max if carried and prev else None,
            )
        )
    return tuple(out)
