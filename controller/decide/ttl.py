"""TTL after finished: when a Completed or Failed JobSet deletes itself (behaviour.md §4.8).

Invariants:
* only finished JobSets with ``ttlSecondsAfterFinished`` set are considered;
* the finish time is the ``lastTransitionTime`` of the Completed=True or Failed=True condition; a missing or
  unparsable time is a decision error, never an exception;
* ``now >= finish + ttl`` → delete the JobSet (Foreground); otherwise requeue after the remaining seconds;
  ``ttl == 0`` deletes at once.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from api import constants as c
from api.jobset_types import JobSet
from api.timefmt import parse_time


@dataclass(frozen=True, slots=True)
class TTLDecision:
    delete_jobset: bool = False
    requeue_after: float | None = None
    error: str | None = None


def finish_time(js: JobSet) -> str:
    for cond in js.status.conditions:
        if cond.type in (c.COND_COMPLETED, c.COND_FAILED) and cond.status == "True":
            return cond.last_transition_time
    return ""


def decide_ttl(js: JobSet, now: dt.datetime) -> TTLDecision:
    ttl = js.spec.ttl_seconds_after_finished
    if ttl is None:
        return TTLDecision()
    finished_at = parse_time(finish_time(js))
    if finished_at is None:
        return TTLDecision(error=f"jobset {js.key} is finished but its finish condition has no valid transition time")
    if now.tzinfo is None:
        now = now.replace(tzinfo=dt.UTC)
    remaining = (finished_at + dt.timedelta(seconds=ttl) - now).total_seconds()
    if remaining <= 0:
        return TTLDecision(delete_jobset=True)
    return TTLDecision(requeue_after=remaining)
