"""Child classification (behaviour.md §4.3) and the per-replicated-job status counts (behaviour.md §1.6), in one pass.

Invariants: a Job belongs to exactly one bucket; the previous attempt is decided by the ``restart-attempt``
label alone (and ``job-restart-attempt`` when gate RestartJob is on); deletion timestamps are not considered;
a label the controller cannot interpret raises ``ClassifyError`` (turned into ``Plan.error`` by ``decide``).

Cost: exactly one loop over the Jobs (decision D5); per Job a few dict look-ups. The same pass counts, per
replicated job, the status numbers of 1.6, the suspended active Jobs (for resume) and how many children of any
bucket carry the replicated job's label (for creation), so no later step needs another full scan.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from api import constants as c
from api.jobset_types import JobSet, ReplicatedJobStatus
from api.plan import Snapshot
from api.records import Job
from api.tally import AttemptTally, ChildTally

_RJOB = c.REPLICATED_JOB_NAME_KEY
_ATTEMPT = c.RESTART_ATTEMPT_KEY


class ClassifyError(ValueError):
    """A child Job carries a label the controller cannot interpret; the whole reconcile fails (behaviour.md §4.3)."""


@dataclass(frozen=True, slots=True)
class Children:
    active: tuple[Job, ...] = ()
    successful: tuple[Job, ...] = ()
    failed: tuple[Job, ...] = ()
    previous: tuple[Job, ...] = ()
    counts: dict[str, list[int]] = field(default_factory=dict)
    """rjob name → [ready, succeeded, failed, active, suspended] over current-attempt Jobs."""
    present: dict[str, int] = field(default_factory=dict)
    """rjob name → number of children of any bucket (previous included) labelled with it."""
    suspended_active: tuple[Job, ...] = ()
    """Active Jobs whose ``spec.suspend`` is true (the candidates for resume)."""
    known_names: frozenset[str] | None = field(default=None, compare=False)
    """Every child's name, when the tally had it ready (else ``names`` collects it); not part of equality."""
    previous_live: tuple[str, ...] | None = field(default=None, compare=False)
    """Names of the previous-attempt Jobs not being deleted, when the tally had them ready; not part of equality."""

    def names(self) -> frozenset[str]:
        """The names of every child (any bucket): what a create must not collide with."""
        if self.known_names is not None:
            return self.known_names
        return frozenset(j.metadata.name for b in (self.active, self.successful, self.failed, self.previous) for j in b)

    def previous_deletable(self) -> tuple[str, ...]:
        """Names of the previous-attempt Jobs to delete: those not already being deleted, in store order."""
        if self.previous_live is not None:
            return self.previous_live
        return tuple(j.metadata.name for j in self.previous if j.metadata.deletion_timestamp is None)


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


def is_job_ready(job: Job) -> bool:
    """``succeeded + ready >= min(parallelism, completions or parallelism)`` (behaviour.md §1.6)."""
    parallelism = job.spec.parallelism if job.spec.parallelism is not None else 1
    completions = job.spec.completions if job.spec.completions is not None else parallelism
    ready = job.status.ready or 0
    return job.status.succeeded + ready >= min(parallelism, completions)


def classify(js: JobSet, jobs: tuple[Job, ...], *, restart_job_gate: bool = False) -> Children:
    active: list[Job] = []
    successful: list[Job] = []
    failed: list[Job] = []
    previous: list[Job] = []
    suspended_active: list[Job] = []
    # rjob name -> [ready, succeeded, failed, active, suspended, present (any bucket)]
    counts: dict[str, list[int]] = {r.name: [0, 0, 0, 0, 0, 0] for r in js.spec.replicated_jobs}
    restarts = js.status.restarts
    current_label = str(restarts)
    restart_arrays: dict[str, tuple[int, ...]] = {}
    if restart_job_gate:
        restart_arrays = {r.name: (0,) * r.replicas for r in js.spec.replicated_jobs}
        restart_arrays.update({s.name: s.job_restarts for s in js.status.replicated_jobs_status if s.job_restarts})
    scratch = [0, 0, 0, 0, 0, 0]  # counts of Jobs labelled with an rjob that is not in the spec (ignored)
    counts_get = counts.get
    for job in jobs:
        labels = job.metadata.labels
        bucket = counts_get(labels.replicated_job_name or "") or scratch  # fields, not .get(): the hot loop
        bucket[5] += 1
        attempt = labels.restart_attempt
        if attempt != current_label:  # fast path: the label is the decimal of status.restarts
            if attempt is None:
                raise ClassifyError(f"job {job.metadata.name!r} is missing label {_ATTEMPT}")
            if _int_label(job, _ATTEMPT) < restarts:
                previous.append(job)
                continue
        if restart_job_gate and _is_previous_job_attempt(job, restart_arrays):
            previous.append(job)
            continue
        status = job.status
        if status.conditions:
            finished, ctype = is_finished(job)
            if finished:
                if ctype == "Complete":
                    successful.append(job)
                    bucket[1] += 1
                else:
                    failed.append(job)
                    bucket[2] += 1
                continue
        active.append(job)
        spec = job.spec
        parallelism = spec.parallelism if spec.parallelism is not None else 1
        completions = spec.completions
        needed = parallelism if completions is None or completions > parallelism else completions
        if status.succeeded + (status.ready or 0) >= needed:
            bucket[0] += 1
        if status.active > 0:
            bucket[3] += 1
        if spec.suspend:
            bucket[4] += 1
            suspended_active.append(job)
    return Children(
        tuple(active),
        tuple(successful),
        tuple(failed),
        tuple(previous),
        counts={name: v[:5] for name, v in counts.items()},
        present={name: v[5] for name, v in counts.items()},
        suspended_active=tuple(suspended_active),
    )


def snapshot_children(snap: Snapshot, *, restart_job_gate: bool = False) -> Children:
    """The snapshot's children classified: from its tally when it can be trusted, else by a full pass."""
    if snap.tally is not None:
        kids = children_from_tally(snap.jobset, snap.tally, len(snap.jobs), restart_job_gate=restart_job_gate)
        if kids is not None:
            return kids
    return classify(snap.jobset, snap.jobs, restart_job_gate=restart_job_gate)


def children_from_tally(
    js: JobSet, tally: ChildTally, n_jobs: int, *, restart_job_gate: bool = False
) -> Children | None:
    """``classify`` from a tally, equal to the full pass over the same Jobs; None when in doubt: gate RestartJob on
    (per-Job attempts depend on the JobSet's arrays), a tally of another UID or of another size than the snapshot,
    a missing or non-integer attempt label (the full pass words the error), or more than one attempt on either side
    of ``status.restarts`` (the full pass interleaves them in store order)."""
    if restart_job_gate or tally.uid != js.metadata.uid or tally.size != n_jobs:
        return None
    restarts = js.status.restarts
    current_label = str(restarts)
    current: AttemptTally | None = None
    previous: AttemptTally | None = None
    for group in tally.attempts:
        if group.attempt != current_label:
            if group.attempt is None:
                return None
            try:
                is_previous = int(group.attempt) < restarts
            except ValueError:
                return None
            if is_previous:
                if previous is not None:
                    return None
                previous = group
                continue
        if current is not None:
            return None
        current = group
    counts: dict[str, list[int]] = {r.name: [0, 0, 0, 0, 0] for r in js.spec.replicated_jobs}
    present = dict.fromkeys(counts, 0)
    for group in tally.attempts:
        for rjob, row in group.counts.items():
            if rjob in present:
                present[rjob] += row[5]
                if group is current:
                    counts[rjob] = list(row[:5])
    previous_live = previous.live if previous else ()
    if current is None:
        return Children(
            previous=previous.jobs if previous else (),
            counts=counts,
            present=present,
            known_names=tally.names,
            previous_live=previous_live,
        )
    return Children(
        current.active,
        current.successful,
        current.failed,
        previous.jobs if previous else (),
        counts=counts,
        present=present,
        suspended_active=current.suspended_active,
        known_names=tally.names,
        previous_live=previous_live,
    )


def _is_previous_job_attempt(job: Job, restart_arrays: dict[str, tuple[int, ...]]) -> bool:
    labels = job.metadata.labels
    rjob = labels.get(_RJOB)
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


def replicated_jobs_status(
    js: JobSet, children: Children, *, restart_job_gate: bool
) -> tuple[ReplicatedJobStatus, ...]:
    """One entry per spec replicated job, from the counts of current-attempt children (spec order)."""
    old = {s.name: s for s in js.status.replicated_jobs_status} if restart_job_gate else {}
    out = []
    for rjob in js.spec.replicated_jobs:
        ready, succeeded, failed, active, suspended = children.counts.get(rjob.name, (0, 0, 0, 0, 0))
        prev = old.get(rjob.name)
        out.append(
            ReplicatedJobStatus(
                name=rjob.name,
                ready=ready,
                succeeded=succeeded,
                failed=failed,
                active=active,
                suspended=suspended,
                job_restarts=prev.job_restarts if prev is not None else None,
                job_restarts_count_towards_max=prev.job_restarts_count_towards_max if prev is not None else None,
            )
        )
    return tuple(out)
