"""Status write pacing: a status change that is only counts is written at most once per window per JobSet.

Role: pure rule applied by ``decide`` when it assembles a Plan. A JobSet of N Jobs sees each Job go active, then
ready, then succeeded; written one by one, that is two or three status writes per Job (a full JobSet object over
the wire each time, the same for every watcher of JobSets). The counts in ``status.replicatedJobsStatus`` are
read by people and by Kueue, both of which are served as well by the value of a moment later.

Rule (``deferral``):
* only a *counts-only* change is ever deferred: the new status equals the stored one once its
  ``replicatedJobsStatus`` is put back, and the pass queued no event. A condition, ``restarts``,
  ``terminalState`` or an in-place attempt is written at once, with the counts of that moment;
* the first counts-only change after a quiet window is written at once (leading edge): a lone change is never
  delayed;
* one inside the window is deferred: no status write, and the Plan asks to be requeued when the window ends, so
  the latest counts are written then (trailing edge) — unless a later pass writes them first;
* ``window <= 0`` or no record of a previous write (a new leader, a new JobSet) writes at once, exactly as the
  reference controller does.

Only the write is paced, never the decision: every Job event is still reconciled at once, so a state that lasts
less than the window (every Job ready again for a moment before the next failure) is still seen and acted on —
coalescing the reconciles of count-only Job events was tried and dropped for that reason (and it saved no CPU
measurable on the real plane: the reconciles that write nothing are cheap).

Invariants: no I/O, no clock of its own (``now`` and the time of the last write are inputs); the deferral never
hides a change for longer than ``window`` while the controller runs.
"""

from __future__ import annotations

import datetime as dt

import msgspec

from api.jobset_types import JobSetStatus


def counts_only(new: JobSetStatus, old: JobSetStatus) -> bool:
    """Whether ``new`` differs from ``old`` in ``replicatedJobsStatus`` alone (or not at all)."""
    return msgspec.structs.replace(new, replicated_jobs_status=old.replicated_jobs_status) == old


def deferral(
    new: JobSetStatus,
    old: JobSetStatus,
    *,
    has_events: bool,
    written_at: dt.datetime | None,
    window: float,
    now: dt.datetime,
) -> float | None:
    """Seconds to wait before writing ``new`` (the rest of the window), or None to write it now."""
    if window <= 0 or written_at is None or has_events or not counts_only(new, old):
        return None
    remaining = window - (now - written_at).total_seconds()
    return remaining if remaining > 0 else None
