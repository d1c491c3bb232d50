"""The failure policy: what to do once a current-attempt child Job has failed (behaviour.md §4.5).

Role: pick the rule and the failed Job it applies to, then apply one of the five actions to the status draft.

Invariants:
* no ``failurePolicy`` → Failed, reason ``FailedJobs``, naming the earliest failed Job;
* rules are evaluated in order; a rule applies to a failed Job iff its reasons list is empty or contains the Job's
  Failed-condition reason, the Job carries a ``replicatedjob-name`` label that the targets list (empty = all)
  contains, and its message-pattern list is empty or one *valid* pattern RE2-searches the Failed message; the
  first rule with a matching Job wins and is applied to its earliest-failing matching Job;
* invalid patterns are skipped and reported as data (``notes``), never raised;
* no matching rule → the default action RestartJobSet on the earliest failed Job (reason ``DefaultFailurePolicy``);
* "earliest" is the Failed condition's ``lastTransitionTime``; ties keep the first Job in snapshot order;
* the restart budget is ``restartsCountTowardsMax`` plus, with gate RestartJob on, every
  ``jobRestartsCountTowardsMax`` entry; only RestartJobSet and RestartJob are limited by it;
* RestartJob actions with the gate off are a decision error (returned, not raised).
Cost: O(rules x failed Jobs).
"""

from __future__ import annotations

import functools
from typing import Any, Final

import msgspec

from api import constants as c
from api.extensions import REASON_RESTART_BUDGET_EXCEEDED
from api.jobset_types import (
    RESTART_JOB_ACTIONS,
    FailureAction,
    FailurePolicy,
    FailurePolicyRule,
    JobSet,
    ReplicatedJobStatus,
)
from api.plan import Outcome
from api.records import Job, JobCondition
from controller.decide import conditions as cond

try:  # google-re2: the same regular-expression dialect as the reference (Go's regexp is RE2).
    import re2 as _re

    _OPTIONS: Any = _re.Options()
    _OPTIONS.log_errors = False  # a bad user pattern must not write to stderr from a pure decision

    def _compile_raw(pattern: str) -> Any:
        return _re.compile(pattern, options=_OPTIONS)

except ImportError:  # pragma: no cover - the dependency is declared; fall back to the standard library
    import re as _re

    def _compile_raw(pattern: str) -> Any:
        return _re.compile(pattern)


DEFAULT_ACTION: Final[FailureAction] = "RestartJobSet"
MSG_RESTART_BUDGET_EXCEEDED: Final = "jobset failed due to exceeding its restart budget (pyjobset.io/restart-budget)"


def action_message(action: str, job_name: str) -> str:
    """``applying <Action> failure policy action (first failed job: X)`` (also the action event's reason base)."""
    return cond.with_first_failed_job(f"applying {action} failure policy action", job_name)


def action_event_reason(action: str) -> str:
    return f"{action}FailurePolicyAction"


@functools.lru_cache(maxsize=1024)
def compile_pattern(pattern: str) -> tuple[Any, str]:
    """(compiled pattern, "") or (None, error text) for an invalid one. Memoised: patterns are immutable spec."""
    try:
        return _compile_raw(pattern), ""
    except Exception as err:  # noqa: BLE001 - both re and re2 raise their own error types
        text = err.args[0] if err.args else err
        if isinstance(text, bytes):
            text = text.decode(errors="replace")
        return None, str(text)


def failed_condition(job: Job) -> JobCondition | None:
    for jc in job.status.conditions:
        if jc.type == "Failed" and jc.status == "True":
            return jc
    return None


def first_failed_job(failed: tuple[Job, ...]) -> Job:
    """The Job whose Failed condition has the earliest ``lastTransitionTime`` (ties: first in snapshot order)."""
    best = _earliest_failed(failed)
    return best if best is not None else failed[0]


def _earliest_failed(
    failed: tuple[Job, ...], rule: FailurePolicyRule | None = None, notes: list[str] | None = None
) -> Job | None:
    """The earliest-failing Job (ties: first in snapshot order) that ``rule`` applies to (any Job without one);
    the rule is only tried on a Job that fails earlier than the best so far, so ``notes`` gets what it did."""
    best: Job | None = None
    best_time = ""
    for job in failed:
        fc = failed_condition(job)
        if fc is None or (best is not None and not fc.last_transition_time < best_time):
            continue
        if rule is None or rule_applies(rule, job, fc, notes if notes is not None else []):
            best, best_time = job, fc.last_transition_time
    return best


def rule_applies(rule: FailurePolicyRule, job: Job, fc: JobCondition, notes: list[str]) -> bool:
    if rule.on_job_failure_reasons and fc.reason not in rule.on_job_failure_reasons:
        return False
    rjob = job.metadata.labels.get(c.REPLICATED_JOB_NAME_KEY, "")
    if not rjob:
        return False
    if rule.target_replicated_jobs and rjob not in rule.target_replicated_jobs:
        return False
    if not rule.on_job_failure_message_patterns:
        return True
    for pattern in rule.on_job_failure_message_patterns:
        compiled, error = compile_pattern(pattern)
        if compiled is None:
            note = f"failure policy rule {rule.name!r}: invalid message pattern {pattern!r} skipped: {error}"
            if note not in notes:
                notes.append(note)
            continue
        if compiled.search(fc.message) is not None:
            return True
    return False


def first_matching_rule(
    rules: tuple[FailurePolicyRule, ...], failed: tuple[Job, ...], notes: list[str]
) -> tuple[FailurePolicyRule, Job] | None:
    """The first rule that applies to some failed Job, with the earliest-failing Job it applies to."""
    for rule in rules:
        best = _earliest_failed(failed, rule, notes)
        if best is not None:
            return rule, best
    return None


def restart_budget_used(draft: cond.StatusDraft, *, restart_job_gate: bool) -> int:
    total = draft.restarts_count_towards_max
    if restart_job_gate:
        for rjs in draft.replicated_jobs_status:
            total += sum(rjs.job_restarts_count_towards_max or ())
    return total


def execute(
    js: JobSet,
    failed: tuple[Job, ...],
    draft: cond.StatusDraft,
    notes: list[str],
    *,
    restart_job_gate: bool,
    budget_exhausted: bool = False,
) -> str | None:
    """Apply the failure policy to ``draft``; returns a decision error or None. ``budget_exhausted`` (extension
    ``pyjobset.io/restart-budget``): a JobSet-wide restart fails the JobSet with ``RestartBudgetExceeded``."""
    policy = js.spec.failure_policy
    if policy is None:
        job = first_failed_job(failed)
        draft.set_failed(
            cond.REASON_FAILED_JOBS,
            cond.with_first_failed_job(cond.MSG_FAILED_JOBS, job.metadata.name),
            Outcome(kind="failed", reason=cond.REASON_FAILED_JOBS, job=job.metadata.name),
        )
        return None
    match = first_matching_rule(policy.rules, failed, notes)
    if match is None:
        action: FailureAction = DEFAULT_ACTION
        rule_name = ""
        job = first_failed_job(failed)
        restart_reason = cond.REASON_DEFAULT_FAILURE_POLICY
    else:
        rule, job = match
        action, rule_name = rule.action, rule.name
        restart_reason = cond.RULE_REASON_PREFIX + rule.name
    return _apply(
        js,
        policy,
        action,
        rule_name,
        restart_reason,
        job,
        draft,
        restart_job_gate=restart_job_gate,
        budget_exhausted=budget_exhausted,
    )


def _apply(
    js: JobSet,
    policy: FailurePolicy,
    action: FailureAction,
    rule_name: str,
    restart_reason: str,
    job: Job,
    draft: cond.StatusDraft,
    *,
    restart_job_gate: bool,
    budget_exhausted: bool = False,
) -> str | None:
    name = job.metadata.name
    if action in RESTART_JOB_ACTIONS and not restart_job_gate:
        return f"failure policy action {action} requires feature gate {c.GATE_RESTART_JOB}"

    if action == "FailJobSet":
        draft.set_failed(
            cond.REASON_FAIL_JOBSET_ACTION,
            cond.with_first_failed_job(cond.MSG_FAIL_JOBSET_ACTION, name),
            Outcome(kind="failed", reason=cond.REASON_FAIL_JOBSET_ACTION, action=action, rule=rule_name, job=name),
        )
        return None

    counts_towards_max = action in ("RestartJobSet", "RestartJob")
    if counts_towards_max and restart_budget_used(draft, restart_job_gate=restart_job_gate) >= policy.max_restarts:
        draft.set_failed(
            cond.REASON_REACHED_MAX_RESTARTS,
            cond.with_first_failed_job(cond.MSG_REACHED_MAX_RESTARTS, name),
            Outcome(kind="failed", reason=cond.REASON_REACHED_MAX_RESTARTS, action=action, rule=rule_name, job=name),
        )
        return None

    if budget_exhausted and action in ("RestartJobSet", "RestartJobSetAndIgnoreMaxRestarts"):
        draft.set_failed(
            REASON_RESTART_BUDGET_EXCEEDED,
            cond.with_first_failed_job(MSG_RESTART_BUDGET_EXCEEDED, name),
            Outcome(kind="failed", reason=REASON_RESTART_BUDGET_EXCEEDED, action=action, rule=rule_name, job=name),
        )
        return None

    message = action_message(action, name)
    if action in ("RestartJobSet", "RestartJobSetAndIgnoreMaxRestarts"):
        draft.restarts += 1
        if counts_towards_max:
            draft.restarts_count_towards_max += 1
        draft.set_condition(c.COND_RESTARTING, "True", restart_reason, message)
    else:
        error = _bump_job_restarts(js, job, draft, counts_towards_max=counts_towards_max)
        if error is not None:
            return error
    draft.add_event("Warning", action_event_reason(action), message)
    draft.outcome = Outcome(kind="restarted", reason=restart_reason, action=action, rule=rule_name, job=name)
    return None


def _bump_job_restarts(js: JobSet, job: Job, draft: cond.StatusDraft, *, counts_towards_max: bool) -> str | None:
    """Per-Job restart (gate RestartJob): bump the failed Job's entries of its replicated job's arrays."""
    labels = job.metadata.labels
    rjob_name = labels.get(c.REPLICATED_JOB_NAME_KEY, "")
    replicas = next((r.replicas for r in js.spec.replicated_jobs if r.name == rjob_name), None)
    try:
        index = int(labels.get(c.JOB_INDEX_KEY, ""))
    except ValueError:
        return f"job {job.metadata.name!r} has no valid {c.JOB_INDEX_KEY} label"
    if replicas is None or not 0 <= index < replicas:
        return f"job {job.metadata.name!r} does not map to an index of a replicated job of this JobSet"

    def bumped(values: tuple[int, ...] | None) -> tuple[int, ...]:
        out = list(values or ())
        out.extend([0] * (replicas - len(out)))
        out[index] += 1
        return tuple(out)

    entries: list[ReplicatedJobStatus] = []
    for rjs in draft.replicated_jobs_status:
        if rjs.name != rjob_name:
            entries.append(rjs)
            continue
        entries.append(
            msgspec.structs.replace(
                rjs,
                job_restarts=bumped(rjs.job_restarts),
                job_restarts_count_towards_max=(
                    bumped(rjs.job_restarts_count_towards_max)
                    if counts_towards_max
                    else rjs.job_restarts_count_towards_max
                ),
            )
        )
    draft.replicated_jobs_status = tuple(entries)
    return None
