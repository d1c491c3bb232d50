"""The opt-in extensions' share of a decision (docs/design/extensions.md), kept out of the reference's policy.

Role: ``ExtensionPass`` is created once per ``decide`` call; ``decide`` calls its small hooks at fixed points
(before deleting a previous attempt, when every Job is ready, before and after the failure policy) and finally
``finish`` folds the results into the Plan: a merge patch of ``metadata.annotations`` (the internal state and the
restart history's recovery times), a ``RootCause`` request for the acting layer, and a requeue for timers.

Invariants: pure (``now`` is handed in); with no ``pyjobset.io/`` annotation and the default Configuration every
hook is a no-op except root-cause recording, which changes no status, condition or child write; a Plan with an
error is returned untouched.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

from api import constants as c
from api import extensions as x
from api.plan import Plan, RootCause, Snapshot
from api.records import Job
from api.timefmt import format_micro_time, format_time, parse_time
from controller.decide import conditions as cond
from controller.decide.classify import Children
from controller.decide.extensions import deadline, rootcause
from controller.decide.extensions.state import State, read_state, write_state
from controller.decide.failure import failed_condition, first_failed_job

__all__ = ["ExtensionPass"]

_JOBSET_RESTARTS = ("RestartJobSet", "RestartJobSetAndIgnoreMaxRestarts")


class ExtensionPass:
    """The extension hooks of one decision."""

    __slots__ = ("_annotations", "_now", "_requeue", "_root_cause", "_state", "js", "options")

    def __init__(self, snap: Snapshot, now: dt.datetime) -> None:
        self.js = snap.jobset
        self.options = x.parse_options(self.js.metadata.annotations, snap.extensions)
        self._now = now
        self._state: State | None = None
        self._annotations: dict[str, str | None] = {}
        self._requeue: float | None = None
        self._root_cause: RootCause | None = None

    # ------------------------------------------------------------------------------------------- state

    @property
    def state(self) -> State:
        if self._state is None:
            self._state = read_state(self.js.metadata.annotations)
        return self._state

    def _set_state(self, state: State) -> None:
        self._state = state
        self._annotations[x.STATE] = write_state(state)

    def _requeue_in(self, seconds: float) -> None:
        seconds = max(seconds, 0.0)
        self._requeue = seconds if self._requeue is None else min(self._requeue, seconds)

    # ------------------------------------------------------------------------------------------- hooks

    def hold_previous(self, deletes: tuple[str, ...], draft: cond.StatusDraft) -> tuple[str, ...]:
        """Restart backoff: the previous attempt's Jobs stay until restart n's wait is over."""
        backoff = self.options.backoff
        restarts = self.js.status.restarts
        if backoff is None or not deletes or restarts < 2 or len(self.state.restart_times) < 2:
            return deletes
        previous = parse_time(self.state.restart_times[-2])
        if previous is None:
            return deletes
        wait = backoff.delay(restarts)
        due = previous + dt.timedelta(seconds=wait)
        if self._now >= due:
            return deletes
        current = draft.condition(c.COND_RESTARTING)
        reason = current.reason if current is not None and current.reason else cond.REASON_DEFAULT_FAILURE_POLICY
        draft.set_condition(
            c.COND_RESTARTING,
            "True",
            reason,
            f"restart backoff: restart {restarts} deletes the Jobs of attempt {restarts - 1} at {format_time(due)} "
            f"({wait:g}s after restart {restarts - 1})",
        )
        self._requeue_in((due - self._now).total_seconds())
        return ()

    def on_all_ready(self, draft: cond.StatusDraft) -> None:
        """Every Job has all its pods Ready (or finished): the gang formed; a restart recovered."""
        attempt = self.js.status.restarts
        if self.options.startup_deadline is not None and self.state.ready_attempt != attempt:
            self._set_state(dataclasses.replace(self.state, ready_attempt=attempt))
        if not self.options.record_failures or attempt == 0:
            return
        history = self.js.metadata.annotations.get(x.RESTART_HISTORY)
        if history is None:
            return
        decided = parse_time(self.state.restart_times[-1]) if self.state.restart_times else None
        if decided is None:
            restarting = draft.condition(c.COND_RESTARTING)
            decided = parse_time(restarting.last_transition_time) if restarting is not None else None
        if decided is None:
            return
        seconds = max((self._now - decided).total_seconds(), 0.0)
        updated = rootcause.with_recovered(history, attempt - 1, seconds)
        if updated is not None:
            self._annotations[x.RESTART_HISTORY] = updated

    def extra_failures(self, kids: Children) -> tuple[Job, ...]:
        """Jobs that count as failed for the failure policy although not Failed: fail-fast, startup deadline."""
        out: list[Job] = []
        if self.options.fail_fast:
            for job in kids.active:
                target = job.condition("FailureTarget")
                if target is not None and target.status == "True" and failed_condition(job) is None:
                    out.append(deadline.as_failed(job, target.reason, target.message, target.last_transition_time))
        if self.options.startup_deadline is not None and self.state.ready_attempt != self.js.status.restarts:
            late, wait = deadline.late_jobs(self.js, kids, self.options.startup_deadline, self._now)
            if wait is not None:
                self._requeue_in(wait)
            taken = {j.metadata.name for j in out}
            out.extend(j for j in late if j.metadata.name not in taken)
        return tuple(out)

    def budget_exhausted(self) -> bool:
        """Restart budget: one more restart now would exceed ``count`` restarts within the sliding window."""
        budget = self.options.budget
        if budget is None:
            return False
        since = self._now - dt.timedelta(seconds=budget.window)
        recent = 0
        for raw in self.state.restart_times:
            when = parse_time(raw)
            if when is not None and when > since:
                recent += 1
        return recent + 1 > budget.count

    def after_failure(self, failed: tuple[Job, ...], draft: cond.StatusDraft, first_event: int) -> None:
        """The failure policy ran: keep the restart's decision time, ask for the root cause to be recorded."""
        outcome = draft.outcome
        if outcome is None or not failed:
            return
        restarted = outcome.kind == "restarted" and outcome.action in _JOBSET_RESTARTS
        if restarted and self.options.tracks_restarts:
            self._set_state(self.state.with_restart(format_micro_time(self._now), self.options))
        if not self.options.record_failures or outcome.kind not in ("restarted", "failed"):
            return
        job = first_failed_job(failed)
        fc = failed_condition(job)
        indices = tuple(i for i in range(first_event, len(draft.events)) if draft.events[i].type == "Warning")
        self._root_cause = RootCause(
            job=job.metadata.name,
            job_uid=job.metadata.uid,
            reason=fc.reason if fc is not None else "",
            message=fc.message if fc is not None else "",
            time=fc.last_transition_time if fc is not None else format_time(self._now),
            restart_attempt=self.js.status.restarts,
            action=outcome.action or "FailJobSet",
            rule=outcome.rule,
            restart=restarted,
            event_indices=indices,
        )

    # ------------------------------------------------------------------------------------------- result

    def finish(self, plan: Plan) -> Plan:
        if plan.error is not None or (not self._annotations and self._root_cause is None and self._requeue is None):
            return plan
        requeue = plan.requeue_after
        if self._requeue is not None:
            requeue = self._requeue if requeue is None else min(requeue, self._requeue)
        return dataclasses.replace(
            plan, annotations=dict(self._annotations), root_cause=self._root_cause, requeue_after=requeue
        )
