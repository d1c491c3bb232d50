"""JobSet status conditions and the working copy of a status being decided (behaviour.md §4.9 and §1.6).

Role: ``StatusDraft`` is the one mutable object of a decision. Policy modules change it through its methods;
``decide`` turns it back into an immutable ``JobSetStatus`` and the list of queued events at the end.

Invariants (behaviour.md §4.9, the reference's exact update semantics):
* same type, different status → replaced, with a new ``lastTransitionTime``;
* same type and status, different reason or message → replaced, keeping the old ``lastTransitionTime``;
* identical → no-op, no event;
* absent → appended only when the new status is ``True`` (a False condition is never *added*, only flipped);
* ``StartupPolicyInProgress`` and ``StartupPolicyCompleted`` exclude each other: setting one True flips the other,
  when True, to False without touching its reason, message or time;
* every effective change queues exactly one event: reason and message of the condition, type Warning for
  ``Failed`` and for ``RestartingJobSet=True``, Normal otherwise.
The draft never reads a clock: the decision's ``now`` is handed in once, already rendered as RFC 3339.
"""

from __future__ import annotations

import datetime as dt
from typing import Final, Literal

import msgspec

from api import constants as c
from api.jobset_types import Condition, JobSetStatus, ReplicatedJobStatus
from api.plan import Event, Outcome
from api.timefmt import format_time

# Reasons and messages of conditions and events (copied exactly from the behavioural contract).
REASON_ALL_JOBS_COMPLETED: Final = "AllJobsCompleted"
MSG_ALL_JOBS_COMPLETED: Final = "jobset completed successfully"
REASON_FAILED_JOBS: Final = "FailedJobs"
MSG_FAILED_JOBS: Final = "jobset failed due to one or more job failures"
REASON_REACHED_MAX_RESTARTS: Final = "ReachedMaxRestarts"
MSG_REACHED_MAX_RESTARTS: Final = "jobset failed due to reaching max number of restarts"
REASON_FAIL_JOBSET_ACTION: Final = "FailJobSetFailurePolicyAction"
MSG_FAIL_JOBSET_ACTION: Final = "applying FailJobSet failure policy action"
REASON_SUSPENDED: Final = "SuspendedJobs"
MSG_SUSPENDED: Final = "jobset is suspended"
REASON_RESUMED: Final = "ResumeJobs"
MSG_RESUMED: Final = "jobset is resumed"
REASON_IN_ORDER_IN_PROGRESS: Final = "InOrderStartupPolicyInProgress"
MSG_IN_ORDER_IN_PROGRESS: Final = "in order startup policy is in progress"
REASON_IN_ORDER_COMPLETED: Final = "InOrderStartupPolicyCompleted"
MSG_IN_ORDER_COMPLETED: Final = "in order startup policy has completed"
REASON_DEFAULT_FAILURE_POLICY: Final = "DefaultFailurePolicy"
RULE_REASON_PREFIX: Final = "FailurePolicy_"
REASON_JOBS_READY: Final = "JobsReady"
MSG_JOBS_READY: Final = "all jobs are ready"
REASON_JOBSET_FAILED: Final = "JobSetFailed"
MSG_JOBSET_FAILED: Final = "jobset failed"
REASON_JOBSET_COMPLETED: Final = "JobSetCompleted"
REASON_JOBSET_SUSPENDED: Final = "JobSetSuspended"

_EXCLUSIVE: Final = {
    c.COND_STARTUP_IN_PROGRESS: c.COND_STARTUP_COMPLETED,
    c.COND_STARTUP_COMPLETED: c.COND_STARTUP_IN_PROGRESS,
}

Status = Literal["True", "False"]


def with_first_failed_job(message: str, job_name: str) -> str:
    return f"{message} (first failed job: {job_name})"


def apply_condition(conditions: list[Condition], new: Condition) -> bool:
    """Apply ``new`` (carrying the decision time) to ``conditions`` in place; True if anything changed."""
    changed = False
    found = False
    for i, cur in enumerate(conditions):
        if cur.type == new.type:
            found = True
            if cur.status != new.status:
                conditions[i] = new
                changed = True
            elif cur.reason != new.reason or cur.message != new.message:
                conditions[i] = msgspec.structs.replace(new, last_transition_time=cur.last_transition_time)
                changed = True
        elif new.status == "True" and _EXCLUSIVE.get(new.type) == cur.type and cur.status == "True":
            conditions[i] = msgspec.structs.replace(cur, status="False")
            changed = True
    if not found and new.status == "True":
        conditions.append(new)
        changed = True
    return changed


def event_type(ctype: str, status: str) -> Literal["Normal", "Warning"]:
    if ctype == c.COND_FAILED or (ctype == c.COND_RESTARTING and status == "True"):
        return "Warning"
    return "Normal"


class StatusDraft:
    """A mutable working copy of a JobSet status plus the events its changes queue."""

    __slots__ = (
        "_now",
        "_old",
        "conditions",
        "current_in_place_restart_attempt",
        "events",
        "outcome",
        "previous_in_place_restart_attempt",
        "replicated_jobs_status",
        "restarts",
        "restarts_count_towards_max",
        "terminal_state",
    )

    def __init__(self, old: JobSetStatus, now: dt.datetime) -> None:
        self._old = old
        self._now = format_time(now)
        self.conditions: list[Condition] = list(old.conditions)
        self.restarts = old.restarts
        self.restarts_count_towards_max = old.restarts_count_towards_max
        self.terminal_state = old.terminal_state
        self.replicated_jobs_status: tuple[ReplicatedJobStatus, ...] = old.replicated_jobs_status
        self.previous_in_place_restart_attempt = old.previous_in_place_restart_attempt
        self.current_in_place_restart_attempt = old.current_in_place_restart_attempt
        self.events: list[Event] = []
        self.outcome: Outcome | None = None

    # ------------------------------------------------------------------------------------------- conditions

    def condition(self, ctype: str) -> Condition | None:
        for cond in self.conditions:
            if cond.type == ctype:
                return cond
        return None

    def is_true(self, ctype: str) -> bool:
        cond = self.condition(ctype)
        return cond is not None and cond.status == "True"

    def set_condition(self, ctype: str, status: Status, reason: str, message: str) -> bool:
        """Apply one condition with the 4.9 semantics; queue its event when it changed anything."""
        new = Condition(type=ctype, status=status, reason=reason, message=message, last_transition_time=self._now)
        if not apply_condition(self.conditions, new):
            return False
        self.events.append(Event(type=event_type(ctype, status), reason=reason, message=message))
        return True

    def add_event(self, etype: Literal["Normal", "Warning"], reason: str, message: str) -> None:
        self.events.append(Event(type=etype, reason=reason, message=message))

    # ------------------------------------------------------------------------------------------- compound

    def set_failed(self, reason: str, message: str, outcome: Outcome) -> None:
        """Failed=True, RestartingJobSet=False (if present), terminal state Failed (behaviour.md §4.5)."""
        if self.set_condition(c.COND_FAILED, "True", reason, message):
            self.outcome = outcome
        self.set_condition(c.COND_RESTARTING, "False", REASON_JOBSET_FAILED, MSG_JOBSET_FAILED)
        self.terminal_state = c.COND_FAILED

    def set_completed(self) -> None:
        """Completed=True, RestartingJobSet=False (if present), terminal state Completed (behaviour.md §4.6)."""
        if self.set_condition(c.COND_COMPLETED, "True", REASON_ALL_JOBS_COMPLETED, MSG_ALL_JOBS_COMPLETED):
            self.outcome = Outcome(kind="completed", reason=REASON_ALL_JOBS_COMPLETED)
        self.set_condition(c.COND_RESTARTING, "False", REASON_JOBSET_COMPLETED, MSG_ALL_JOBS_COMPLETED)
        self.terminal_state = c.COND_COMPLETED

    # ------------------------------------------------------------------------------------------- result

    def build(self) -> JobSetStatus | None:
        """The new status, or None when nothing differs from the stored one."""
        new = JobSetStatus(
            conditions=tuple(self.conditions),
            restarts=self.restarts,
            restarts_count_towards_max=self.restarts_count_towards_max,
            terminal_state=self.terminal_state,
            replicated_jobs_status=self.replicated_jobs_status,
            previous_in_place_restart_attempt=self.previous_in_place_restart_attempt,
            current_in_place_restart_attempt=self.current_in_place_restart_attempt,
        )
        return None if new == self._old else new
