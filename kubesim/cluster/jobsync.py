"""The simulated batch/v1 Job controller's decision: (Job, its pods, now, memory) -> a plan. No I/O.

Modelled on ``syncJob`` of the Kubernetes 1.33 Job controller (behaviour learned from its docs and source):

- Pods carry the ``batch.kubernetes.io/job-tracking`` finalizer; a finished pod is counted into
  ``status.succeeded``/``failed`` (or ``completedIndexes``/``failedIndexes``) once, then its finalizer is
  removed. ``JobMemory.counted`` remembers pods counted whose finalizer removal is still in flight.
- Terminal conditions are two-phase as in 1.31+: FailureTarget / SuccessCriteriaMet first, then Failed /
  Complete (same reason and message) once no pod of the Job is terminating.
- Failure reasons and messages: PodFailurePolicy (message from the matched rule), BackoffLimitExceeded "Job has
  reached the specified backoff limit", DeadlineExceeded "Job was active longer than specified deadline",
  MaxFailedIndexesExceeded "Job has exceeded the specified maximal number of failed indexes", FailedIndexes
  "Job has failed indexes"; success reasons CompletionsReached "Reached expected number of succeeded pods" and
  SuccessPolicy "Matched rules at index N".
- Suspend deletes active pods (finalizer stripped first, so they are not counted as failed), sets
  Suspended=True "JobSuspended"; resuming sets it False "JobResumed" and resets ``startTime``.
- Pod creation after failures waits 10 s x 2^(failures-1) (capped at 6 min) since the last failure, globally
  or per index with backoffLimitPerIndex; at most 500 creations or deletions per sync.

Invariant: the input dicts are never mutated; ``JobPlan.status`` is a fresh dict or ``None`` when unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kubesim.cluster.jobutil import (
    INDEX_FAILURE_COUNT_KEY,
    INDEX_IGNORED_FAILURE_COUNT_KEY,
    annotation_int,
    backoff_limit_of,
    completion_index,
    completions_of,
    finished_time,
    format_indexes,
    has_backoff_limit_per_index,
    has_tracking_finalizer,
    is_active,
    is_deleting,
    is_indexed,
    is_job_finished,
    is_pod_failed,
    is_pod_ready,
    is_suspended,
    is_terminating,
    job_condition,
    match_pod_failure_policy,
    meta,
    only_replace_failed,
    parallelism_of,
    parse_indexes,
    phase,
    spec,
    status,
)
from kubesim.util.jsonutil import clone
from kubesim.util.timefmt import parse_rfc3339, rfc3339

JSON = dict[str, Any]

MAX_POD_CREATE_DELETE_PER_SYNC = 500
MSG_BACKOFF = "Job has reached the specified backoff limit"
MSG_DEADLINE = "Job was active longer than specified deadline"
MSG_MAX_FAILED_INDEXES = "Job has exceeded the specified maximal number of failed indexes"
MSG_FAILED_INDEXES = "Job has failed indexes"
MSG_COMPLETIONS = "Reached expected number of succeeded pods"


@dataclass(frozen=True, slots=True)
class Backoff:
    """Pod-failure backoff of one Job (``backoffRecord``): failures since the last success."""

    failures: int = 0
    last_failure: float | None = None


@dataclass(slots=True)
class JobMemory:
    """What the controller remembers about a Job between syncs (lost on restart, like the real one)."""

    counted: set[str] = field(default_factory=set)
    backoff: Backoff = Backoff()


@dataclass(frozen=True, slots=True)
class PodCreate:
    index: int | None
    failure_counts: tuple[int, int] | None = None


@dataclass(frozen=True, slots=True)
class PodDelete:
    name: str
    uid: str
    strip_finalizer: bool


@dataclass(slots=True)
class JobPlan:
    status: JSON | None = None
    creates: list[PodCreate] = field(default_factory=list)
    deletes: list[PodDelete] = field(default_factory=list)
    remove_finalizers: list[tuple[str, str]] = field(default_factory=list)
    """(name, uid) of pods counted in ``status``: remove their tracking finalizer after the status write."""
    events: list[tuple[str, str, str]] = field(default_factory=list)
    requeue_after: float | None = None
    backoff: Backoff = Backoff()


@dataclass(frozen=True, slots=True)
class BackoffSettings:
    base: float = 10.0
    cap: float = 360.0

    def delay(self, failures: int) -> float:
        if failures <= 0:
            return 0.0
        return float(min(self.cap, self.base * (2 ** min(failures - 1, 30))))


def _condition(ctype: str, cstatus: str, reason: str, message: str, now: float) -> JSON:
    ts = rfc3339(now)
    return {
        "type": ctype,
        "status": cstatus,
        "lastProbeTime": ts,
        "lastTransitionTime": ts,
        "reason": reason,
        "message": message,
    }


def _ensure_condition(conds: list[JSON], ctype: str, cstatus: str, reason: str, message: str, now: float) -> bool:
    """``ensureJobConditionStatus``: update in place or append (never appends a False condition)."""
    for i, cond in enumerate(conds):
        if cond.get("type") == ctype:
            if (cond.get("status"), cond.get("reason"), cond.get("message")) != (cstatus, reason, message):
                conds[i] = _condition(ctype, cstatus, reason, message, now)
                return True
            return False
    if cstatus != "False":
        conds.append(_condition(ctype, cstatus, reason, message, now))
        return True
    return False


def _next_backoff(prev: Backoff, succeeded: list[JSON], failed: list[JSON], now: float) -> Backoff:
    if not succeeded and not failed:
        return prev
    fail_times = sorted(finished_time(p, now) for p in failed)
    if not succeeded:
        return Backoff(prev.failures + len(failed), fail_times[-1])
    last_success = max(finished_time(p, now) for p in succeeded)
    later = [t for t in fail_times if t > last_success]
    return Backoff(len(later), later[-1] if later else None)


def _past_backoff_on_failure(job: JSON, pods: list[JSON]) -> bool:
    if (spec(job).get("template") or {}).get("spec", {}).get("restartPolicy") != "OnFailure":
        return False
    total = 0
    for pod in pods:
        if phase(pod) in ("Running", "Pending"):
            st = status(pod)
            for cs in [*(st.get("initContainerStatuses") or []), *(st.get("containerStatuses") or [])]:
                total += int(cs.get("restartCount", 0))
    limit = backoff_limit_of(job)
    return total > 0 if limit == 0 else total >= limit


def _match_success_policy(policy: JSON | None, completions: int, succeeded: set[int]) -> str | None:
    if not policy:
        return None
    for i, rule in enumerate(policy.get("rules") or []):
        want_count = rule.get("succeededCount")
        if rule.get("succeededIndexes") is not None:
            wanted = parse_indexes(rule["succeededIndexes"], completions)
            have = len(wanted & succeeded)
            if (want_count is None and wanted and have == len(wanted)) or (
                want_count is not None and have >= int(want_count)
            ):
                return f"Matched rules at index {i}"
        elif want_count is not None and len(succeeded) >= int(want_count):
            return f"Matched rules at index {i}"
    return None


def _removal_order(pod: JSON) -> tuple[int, int, int, float]:
    """``controller.ActivePods`` order: unscheduled, pending, not ready and newer pods go first."""
    created = parse_rfc3339(meta(pod).get("creationTimestamp")) or 0.0
    return (
        1 if spec(pod).get("nodeName") else 0,
        {"Pending": 0, "Unknown": 1, "Running": 2}.get(phase(pod), 0),
        1 if is_pod_ready(pod) else 0,
        -created,
    )


def _pods_for_removal(job: JSON, active: list[JSON], at_least: int, completions: int | None) -> list[JSON]:
    rm: list[JSON] = []
    left: list[JSON] = []
    if is_indexed(job):
        seen: set[int] = set()
        for pod in sorted(active, key=lambda p: (completion_index(p), _removal_order(p)), reverse=True):
            ix = completion_index(pod)
            if ix < 0 or completions is None or ix >= completions or ix in seen:
                rm.append(pod)
            else:
                seen.add(ix)
                left.append(pod)
    else:
        left = list(active)
    if len(rm) < at_least:
        left.sort(key=_removal_order)
        rm.extend(left[: at_least - len(rm)])
    return rm


def sync_job(
    job: JSON, pods: list[JSON], now: float, memory: JobMemory, settings: BackoffSettings | None = None
) -> JobPlan:
    """Decide one sync of ``job`` given all pods it controls (pods with its controller ownerReference)."""
    settings = settings or BackoffSettings()
    plan = JobPlan(backoff=memory.backoff)
    if is_job_finished(job):
        plan.remove_finalizers = [(meta(p)["name"], meta(p).get("uid", "")) for p in pods if has_tracking_finalizer(p)]
        return plan

    original = status(job)
    st: JSON = clone(dict(original))
    conds: list[JSON] = st.setdefault("conditions", [])
    indexed = is_indexed(job)
    completions = completions_of(job)
    parallelism = parallelism_of(job)
    per_index = has_backoff_limit_per_index(job)
    policy = spec(job).get("podFailurePolicy")
    suspended = is_suspended(job)
    deleting = is_deleting(job)

    def valid(pod: JSON) -> bool:
        if not indexed:
            return True
        ix = completion_index(pod)
        return 0 <= ix < (completions or 0)

    active_pods = [p for p in pods if is_active(p)]
    terminating = sum(1 for p in pods if is_terminating(p))
    ready = sum(1 for p in active_pods if is_pod_ready(p))
    tracked = [p for p in pods if has_tracking_finalizer(p) and meta(p).get("uid", "") not in memory.counted]
    new_succeeded = [p for p in tracked if valid(p) and phase(p) == "Succeeded"]
    new_failed = [p for p in tracked if valid(p) and is_pod_failed(p, job)]
    failed_total = int(st.get("failed", 0)) + sum(1 for p in new_failed if match_pod_failure_policy(policy, p)[1])
    succeeded_total = int(st.get("succeeded", 0)) + len(new_succeeded)

    if st.get("startTime") is None and not suspended:
        st["startTime"] = rfc3339(now)
    plan.backoff = _next_backoff(memory.backoff, new_succeeded, new_failed, now)

    finished: JSON | None = None
    smet = job_condition(job, "SuccessCriteriaMet")
    if smet is not None and smet.get("status") == "True":
        finished = dict(smet)
    if finished is None:
        target = job_condition(job, "FailureTarget")
        if target is not None and target.get("status") == "True":
            finished = _condition("Failed", "True", target.get("reason", ""), target.get("message", ""), now)
        elif policy is not None:
            for pod in pods:
                if is_pod_failed(pod, job):
                    message = match_pod_failure_policy(policy, pod)[0]
                    if message is not None:
                        finished = _condition("FailureTarget", "True", "PodFailurePolicy", message, now)
                        break
    if finished is None:
        start = parse_rfc3339(st.get("startTime"))
        deadline = spec(job).get("activeDeadlineSeconds")
        if failed_total > backoff_limit_of(job) or _past_backoff_on_failure(job, pods):
            finished = _condition("FailureTarget", "True", "BackoffLimitExceeded", MSG_BACKOFF, now)
        elif deadline is not None and start is not None and not suspended:
            remaining = float(deadline) - (now - start)
            if remaining <= 0:
                finished = _condition("FailureTarget", "True", "DeadlineExceeded", MSG_DEADLINE, now)
            else:
                plan.requeue_after = remaining

    succeeded_indexes: set[int] = set()
    failed_indexes: set[int] | None = None
    if indexed and completions is not None:
        succeeded_indexes = parse_indexes(st.get("completedIndexes"), completions)
        succeeded_indexes |= {completion_index(p) for p in new_succeeded}
        if per_index:
            failed_indexes = parse_indexes(st.get("failedIndexes"), completions)
            limit = int(spec(job).get("backoffLimitPerIndex") or 0)
            for pod in new_failed:
                ix = completion_index(pod)
                if ix in succeeded_indexes:
                    continue
                _, counts, action = match_pod_failure_policy(policy, pod)
                if action == "FailIndex" or (counts and annotation_int(pod, INDEX_FAILURE_COUNT_KEY) >= limit):
                    failed_indexes.add(ix)
            if finished is None:
                max_failed = spec(job).get("maxFailedIndexes")
                if max_failed is not None and len(failed_indexes) > int(max_failed):
                    finished = _condition(
                        "FailureTarget", "True", "MaxFailedIndexesExceeded", MSG_MAX_FAILED_INDEXES, now
                    )
                elif failed_indexes and len(failed_indexes) + len(succeeded_indexes) >= completions:
                    finished = _condition("FailureTarget", "True", "FailedIndexes", MSG_FAILED_INDEXES, now)
        if finished is None:
            matched = _match_success_policy(spec(job).get("successPolicy"), completions, succeeded_indexes)
            if matched is not None:
                finished = _condition("SuccessCriteriaMet", "True", "SuccessPolicy", matched, now)
        succeeded_total = len(succeeded_indexes)

    active = len(active_pods)
    if finished is not None:
        for pod in active_pods:
            plan.deletes.append(PodDelete(meta(pod)["name"], meta(pod).get("uid", ""), strip_finalizer=False))
        terminating += len(active_pods)
        ready = 0
        active = 0
    else:
        managed = False
        if not deleting:
            active = _manage(
                job, plan, active_pods, pods, now, settings,
                succeeded_total=succeeded_total, succeeded_indexes=succeeded_indexes,
                failed_indexes=failed_indexes, terminating=terminating, completions=completions,
                parallelism=parallelism,
            )  # fmt: skip
            managed = True
            if suspended:
                terminating += len(active_pods) - active
                ready = 0
        if completions is None:
            complete = succeeded_total > 0 and active == 0
        else:
            complete = succeeded_total >= completions and active == 0
        if complete:
            finished = _condition("SuccessCriteriaMet", "True", "CompletionsReached", MSG_COMPLETIONS, now)
        elif managed:
            if suspended:
                if _ensure_condition(conds, "Suspended", "True", "JobSuspended", "Job suspended", now):
                    plan.events.append(("Normal", "Suspended", "Job suspended"))
            elif _ensure_condition(conds, "Suspended", "False", "JobResumed", "Job resumed", now):
                plan.events.append(("Normal", "Resumed", "Job resumed"))
                st["startTime"] = rfc3339(now)

    st["active"] = active
    st["ready"] = ready
    st["terminating"] = terminating

    # Count finished pods into the status and release their finalizers.
    ordered = sorted(tracked, key=completion_index) if indexed else tracked
    counted_succeeded = int(st.get("succeeded", 0))
    counted_failed = int(st.get("failed", 0))
    fails_job = finished is not None and finished["type"] != "SuccessCriteriaMet"
    for pod in ordered:
        considered_failed = is_pod_failed(pod, job)
        if not (deleting or finished is not None or phase(pod) == "Succeeded" or considered_failed):
            continue
        plan.remove_finalizers.append((meta(pod)["name"], meta(pod).get("uid", "")))
        if phase(pod) == "Succeeded":
            if not indexed:
                counted_succeeded += 1
        elif (considered_failed or fails_job) and valid(pod) and match_pod_failure_policy(policy, pod)[1]:
            counted_failed += 1
    if indexed and completions is not None:
        st["completedIndexes"] = format_indexes(succeeded_indexes)
        counted_succeeded = len(succeeded_indexes)
        if failed_indexes is not None:
            st["failedIndexes"] = format_indexes(failed_indexes)
    st["succeeded"] = counted_succeeded
    st["failed"] = counted_failed
    st["uncountedTerminatedPods"] = {}

    if finished is not None:
        final = finished
        if finished["type"] == "FailureTarget":
            conds.append(finished)
            final = _condition("Failed", "True", finished["reason"], finished["message"], now)
        elif finished["type"] == "SuccessCriteriaMet":
            if job_condition(job, "SuccessCriteriaMet") is None:
                conds.append(finished)
            final = _condition("Complete", "True", finished["reason"], finished["message"], now)
        if terminating == 0:
            _ensure_condition(conds, final["type"], "True", final["reason"], final["message"], now)
            if final["type"] == "Complete":
                st["completionTime"] = rfc3339(now)
                if completions is not None and counted_succeeded > completions:
                    plan.events.append(
                        (
                            "Warning",
                            "TooManySucceededPods",
                            "Too many succeeded pods running after completion count reached",
                        )
                    )
                plan.events.append(("Normal", "Completed", "Job completed"))
            else:
                plan.events.append(("Warning", final["reason"], final["message"]))
            plan.requeue_after = None

    if not conds:
        st.pop("conditions")
    for key in ("active", "failed", "succeeded"):  # omitempty int32 fields of JobStatus
        if st.get(key) == 0:
            st.pop(key)
    if st != dict(original):
        plan.status = st
    return plan


def _manage(
    job: JSON,
    plan: JobPlan,
    active_pods: list[JSON],
    pods: list[JSON],
    now: float,
    settings: BackoffSettings,
    *,
    succeeded_total: int,
    succeeded_indexes: set[int],
    failed_indexes: set[int] | None,
    terminating: int,
    completions: int | None,
    parallelism: int,
) -> int:
    """``manageJob``: the number of active pods after the creations/deletions it adds to ``plan``."""
    active = len(active_pods)
    if is_suspended(job):
        for pod in _pods_for_removal(job, active_pods, active, completions):
            plan.deletes.append(PodDelete(meta(pod)["name"], meta(pod).get("uid", ""), strip_finalizer=True))
        return 0
    if completions is None:
        want = active if succeeded_total > 0 else parallelism
    else:
        want = max(0, min(completions - succeeded_total, parallelism))
    to_delete = _pods_for_removal(job, active_pods, max(0, active - want), completions)
    if to_delete:
        to_delete = to_delete[:MAX_POD_CREATE_DELETE_PER_SYNC]
        for pod in to_delete:
            plan.deletes.append(PodDelete(meta(pod)["name"], meta(pod).get("uid", ""), strip_finalizer=True))
        return active - len(to_delete)
    diff = want - (terminating if only_replace_failed(job) else 0) - active
    if diff <= 0:
        return active
    per_index = failed_indexes is not None
    if not per_index:
        b = plan.backoff
        if b.failures > 0 and b.last_failure is not None:
            remaining = settings.delay(b.failures) - (now - b.last_failure)
            if remaining > 0:
                plan.requeue_after = _min(plan.requeue_after, remaining)
                return active
    diff = min(diff, MAX_POD_CREATE_DELETE_PER_SYNC)
    if not is_indexed(job) or completions is None:
        plan.creates.extend(PodCreate(None) for _ in range(diff))
        return active + diff
    busy = set(succeeded_indexes) | {completion_index(p) for p in active_pods}
    if failed_indexes is not None:
        busy |= failed_indexes
    if only_replace_failed(job):
        busy |= {completion_index(p) for p in pods if is_terminating(p)}
    last_failed: dict[int, JSON] = {}
    if per_index:
        for pod in pods:
            ix = completion_index(pod)
            if ix >= 0 and is_pod_failed(pod, job):
                prev = last_failed.get(ix)
                if prev is None or finished_time(pod, now) >= finished_time(prev, now):
                    last_failed[ix] = pod
    policy = spec(job).get("podFailurePolicy")
    wait: float | None = None
    for ix in range(completions):
        if diff <= 0:
            break
        if ix in busy:
            continue
        counts: tuple[int, int] | None = None
        if per_index:
            prev = last_failed.get(ix)
            failures, ignored = 0, 0
            if prev is not None:
                failures = annotation_int(prev, INDEX_FAILURE_COUNT_KEY)
                ignored = annotation_int(prev, INDEX_IGNORED_FAILURE_COUNT_KEY)
                if match_pod_failure_policy(policy, prev)[2] == "Ignore":
                    ignored += 1
                else:
                    failures += 1
                remaining = settings.delay(failures + ignored) - (now - finished_time(prev, now))
                if remaining > 0:
                    wait = _min(wait, remaining)
                    continue
            counts = (failures, ignored)
        plan.creates.append(PodCreate(ix, counts))
        diff -= 1
    if wait is not None:
        plan.requeue_after = _min(plan.requeue_after, wait)
    return active + len(plan.creates)


def _min(a: float | None, b: float) -> float:
    return b if a is None else min(a, b)
