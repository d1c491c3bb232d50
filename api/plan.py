"""The inputs and outputs of a decision: ``Snapshot`` in, ``Plan`` out.

Role: the contract between the pure policy (``controller.decide``) and the acting layer (``controller.act``).
Invariants: both are immutable; a Plan says *what* to change, never how; events in a Plan are emitted by the
acting layer only after the status write succeeded (or when no status write was needed).

How the acting layer runs a Plan, in this order: ``delete_jobs`` (Foreground), ``create_service``,
``create_pvcs`` (AlreadyExists ignored), ``create_jobs`` (bounded-parallel), ``update_jobs`` (in tuple order;
they touch only Jobs that already exist, so their position relative to the creates does not matter), then the
single ``status`` write, then the ``annotations`` merge patch (with the ``root_cause`` record, which may extend
the restart/failure events' messages), then ``events``, then metrics from ``outcome`` (D4 of behaviour.md), then
``delete_jobset`` / ``requeue_after`` (or, with ``more``, an immediate requeue). When ``error`` is set the child
writes listed in the Plan are still performed (they are the ones the reference performs before it fails), but
status, annotations, events and outcome are skipped and the key is requeued with backoff.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from api.extensions import Defaults
from api.jobset_types import JobSet, JobSetStatus
from api.jsontypes import JSON
from api.records import Job, Pod
from api.tally import ChildTally


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything one reconcile of one JobSet may look at, read from the cache."""

    jobset: JobSet
    jobs: tuple[Job, ...]
    """Jobs whose controller owner UID is the JobSet's UID (decision D5: from the owner index)."""
    service_exists: bool
    gates: Mapping[str, bool] = field(default_factory=dict)
    pods: tuple[Pod, ...] = ()
    """The JobSet's pods; filled only when gate InPlaceRestart is on."""
    extensions: Defaults = field(default_factory=Defaults)
    """Cluster-wide defaults of the opt-in extensions (the Configuration's ``pyjobset:`` section)."""
    tally: ChildTally | None = None
    """The children of ``jobs`` summed up incrementally (``cache.tally``); ``decide`` classifies from it when it
    matches (UID, size, attempts) and falls back to a full pass over ``jobs`` otherwise."""
    status_written_at: dt.datetime | None = None
    """When this process last wrote the JobSet's status (None: not since it started leading)."""
    status_window: float = 0.0
    """Seconds within which a counts-only status change waits for the next write (``controller.decide.pacing``);
    0 writes every change at once, as the reference does."""

    def gate(self, name: str) -> bool:
        return bool(self.gates.get(name, False))


@dataclass(frozen=True, slots=True)
class Event:
    type: Literal["Normal", "Warning"]
    reason: str
    message: str


@dataclass(frozen=True, slots=True)
class JobUpdate:
    """A change to a live child Job.

    ``patch`` is a JSON merge patch of the Job; ``clear_start_time`` asks for ``status.startTime`` to be
    cleared through the ``jobs/status`` subresource first (needed before a resumed Job's template can change).
    """

    name: str
    patch: JSON
    clear_start_time: bool = False


@dataclass(frozen=True, slots=True)
class Outcome:
    """What the status write of this Plan means for the lifecycle counters (decision D4).

    ``kind`` "failed" → ``jobset_failed_total`` += 1; "completed" → ``jobset_completed_total`` += 1;
    "restarted" → one restart by ``action`` (a failure-policy action) and ``reason``. Set only when the decision
    effectively changed the JobSet (a Failed/Completed condition newly set, a restart counter bumped), so counting
    it once per successful status write is exact.
    """

    kind: Literal["failed", "completed", "restarted"]
    reason: str
    """Condition reason: FailedJobs, ReachedMaxRestarts, FailJobSetFailurePolicyAction, AllJobsCompleted, or for
    restarts (global and per-Job alike) FailurePolicy_<rule> / DefaultFailurePolicy."""
    action: str = ""
    """The failure-policy action applied (FailJobSet, RestartJobSet, ...), "InPlaceRestart" for the in-place
    barrier failing the JobSet; "" when no policy was involved."""
    rule: str = ""
    """Name of the failure-policy rule that matched; "" for the default policy or none."""
    job: str = ""
    """The (first) failed Job that triggered it; "" for completions and in-place failures."""


@dataclass(frozen=True, slots=True)
class RootCause:
    """Ask the acting layer to record why the JobSet restarted or failed (extension "root-cause records").

    The pods of ``job`` are read at the edge; the pure ``controller.decide.extensions.rootcause`` turns them into
    the ``pyjobset.io/last-failure`` object, appended to ``pyjobset.io/restart-history`` when ``restart`` is set.
    """

    job: str
    job_uid: str
    reason: str
    message: str
    time: str
    restart_attempt: int
    action: str
    rule: str
    restart: bool
    event_indices: tuple[int, ...] = ()
    """Indices into ``Plan.events`` of the restart/failure events whose message gets the root cause appended."""


@dataclass(frozen=True, slots=True)
class Plan:
    create_jobs: tuple[JSON, ...] = ()
    delete_jobs: tuple[str, ...] = ()
    """Names of child Jobs to delete with Foreground propagation (already-deleting ones are never listed)."""
    update_jobs: tuple[JobUpdate, ...] = ()
    create_service: JSON | None = None
    create_pvcs: tuple[JSON, ...] = ()
    status: JobSetStatus | None = None
    """The new status, or None when it is unchanged."""
    events: tuple[Event, ...] = ()
    delete_jobset: bool = False
    """TTL after finished expired: delete the JobSet itself (Foreground)."""
    requeue_after: float | None = None
    error: str | None = None
    """A reconcile error decided purely (e.g. a malformed child label, a RestartJob rule with the gate off):
    no status write and no events; the child writes listed are still performed; requeue with backoff."""
    outcome: Outcome | None = None
    """Lifecycle change carried by ``status``; the acting layer bumps metrics from it after the status write."""
    notes: tuple[str, ...] = ()
    """Diagnostics for the log, decided as data (e.g. an invalid failure-policy message pattern was skipped)."""
    more: bool = False
    """The Plan was cut at the per-pass bound on Job writes: run it, then reconcile the JobSet again at once,
    behind the keys already queued (a huge JobSet proceeds in bounded passes and never starves small ones)."""
    annotations: Mapping[str, str | None] = field(default_factory=dict)
    """A merge patch of ``metadata.annotations`` only (extension state); written after the status write."""
    root_cause: RootCause | None = None

    @property
    def is_empty(self) -> bool:
        return self == Plan()
