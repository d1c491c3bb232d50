"""A JobSet's children summed up: the facts ``decide`` needs about each child Job, and their per-attempt tally.

Role: the vocabulary shared by the incremental aggregator (``cache.tally``, fed by every change of the Job store)
and the pure classification (``controller.decide.classify``). ``job_facts`` reduces one Job to what its bucket and
its status counts depend on; none of it depends on the JobSet, which is why a tally can be kept up to date from Job
events alone and combined with the JobSet's ``status.restarts`` only when a reconcile reads it.

Invariants: ``ChildTally`` and ``AttemptTally`` are immutable views (tuples of shared records, copied at C speed
from the aggregator when a snapshot is taken); within an attempt, every tuple keeps the order of the Job store's
owner index (the order a full pass over the snapshot's Jobs sees); ``counts`` values are
``(ready, succeeded, failed, active, suspended, present)`` as ``classify`` counts them for the current attempt;
``ChildTally.names`` is the set of every child's name and ``AttemptTally.live`` the names of the attempt's Jobs not
being deleted, so a reconcile during a restart neither names nor filters every child in Python.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import NamedTuple

from api.records import Job

COMPLETE = "Complete"
FAILED = "Failed"


class JobFacts(NamedTuple):
    """What a Job contributes to its JobSet's classification (behaviour.md §4.3) and status counts (§1.6)."""

    attempt: str | None
    """The ``restart-attempt`` label as written (None when missing)."""
    rjob: str
    """The ``replicatedjob-name`` label ("" when missing)."""
    finished: str
    """"Complete", "Failed" or "" (the first Complete/Failed condition that is True)."""
    ready: bool
    """``succeeded + ready >= min(parallelism, completions or parallelism)``."""
    active: bool
    """``status.active > 0``."""
    suspended: bool
    """``spec.suspend`` is true."""
    deleting: bool
    """``metadata.deletionTimestamp`` is set (the Job is going: deleting it again is pointless)."""


_SHARED: dict[JobFacts, JobFacts] = {}
_SHARED_MAX = 4096


def job_facts(job: Job) -> JobFacts:
    """The facts of ``job``; equal facts are one shared tuple (most Jobs of a JobSet have the same ones)."""
    facts = _facts(job)
    shared = _SHARED.get(facts)
    if shared is not None:
        return shared
    if len(_SHARED) >= _SHARED_MAX:
        _SHARED.clear()
    _SHARED[facts] = facts
    return facts


def _facts(job: Job) -> JobFacts:
    labels = job.metadata.labels
    status = job.status
    finished = ""
    for cond in status.conditions:
        if cond.status == "True" and cond.type in (COMPLETE, FAILED):
            finished = cond.type
            break
    spec = job.spec
    parallelism = spec.parallelism if spec.parallelism is not None else 1
    completions = spec.completions
    needed = parallelism if completions is None or completions > parallelism else completions
    return JobFacts(
        attempt=labels.restart_attempt,
        rjob=labels.replicated_job_name or "",
        finished=finished,
        ready=status.succeeded + (status.ready or 0) >= needed,
        active=status.active > 0,
        suspended=bool(spec.suspend),
        deleting=job.metadata.deletion_timestamp is not None,
    )


@dataclass(frozen=True, slots=True)
class AttemptTally:
    """The children of one JobSet that carry one ``restart-attempt`` label value."""

    attempt: str | None
    jobs: tuple[Job, ...]
    """Every Job of the attempt, whatever its state."""
    active: tuple[Job, ...]
    successful: tuple[Job, ...]
    failed: tuple[Job, ...]
    suspended_active: tuple[Job, ...]
    live: tuple[str, ...]
    """Names of the attempt's Jobs not being deleted (no ``deletionTimestamp``), in ``jobs`` order."""
    counts: Mapping[str, tuple[int, int, int, int, int, int]]
    """rjob label (any value, "" included) → (ready, succeeded, failed, active, suspended, present)."""


@dataclass(frozen=True, slots=True)
class ChildTally:
    """The children of the JobSet with UID ``uid``, grouped by restart attempt (sorted by label)."""

    uid: str
    size: int
    """How many Jobs the tally holds (compared with the snapshot's Job count: a mismatch means "in doubt")."""
    attempts: tuple[AttemptTally, ...]
    names: frozenset[str]
    """The names of all the JobSet's children, every attempt (which names a create would collide with)."""
