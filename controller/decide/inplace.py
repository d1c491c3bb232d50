"""In-place restart (gate and strategy InPlaceRestart): the controller half of the barrier (behaviour.md §4.10).

Role: read the agents' ``in-place-restart-attempt`` pod annotations and advance the JobSet's
``previousInPlaceRestartAttempt`` / ``currentInPlaceRestartAttempt`` so agents restart in place or lift their
barrier.

Invariants:
* any container or init container restart count above ``maxRestarts`` fails the JobSet (``ReachedMaxRestarts``,
  message without the first-failed-job suffix);
* attempts are read from pods not in phase Failed that carry the annotation; a non-integer or negative value is
  a decision error;
* ``max attempt - (restarts - restartsCountTowardsMax) > maxRestarts`` fails the JobSet the same way;
* the expected pod count is Σ replicas x parallelism and needs completions == parallelism set on every
  replicated job (else a decision error);
* all expected pods at one attempt → ``current`` := that attempt (if different); otherwise, unless nothing was
  collected or the highest attempt is 0, ``previous`` := highest - 1, never decreasing.
Cost: O(pods). ``pod_change_matters`` tells the pod event handler which events can change the decision.
"""

from __future__ import annotations

from api import constants as c
from api.jobset_types import JobSet
from api.plan import Outcome
from api.records import Pod
from controller.decide import conditions as cond


def _failed(draft: cond.StatusDraft) -> None:
    draft.set_failed(
        cond.REASON_REACHED_MAX_RESTARTS,
        cond.MSG_REACHED_MAX_RESTARTS,
        Outcome(kind="failed", reason=cond.REASON_REACHED_MAX_RESTARTS, action="InPlaceRestart"),
    )


def pod_inputs(pod: Pod) -> tuple[object, ...]:
    """Everything of one pod that ``decide`` reads (this module is its only reader of pods): whether it failed,
    its restart attempt annotation, its containers' restart counts, and what files it under its JobSet."""
    status = pod.status
    return (
        status.phase == "Failed",
        pod.metadata.annotations.in_place_restart_attempt,
        tuple(cs.restart_count for cs in status.container_statuses),
        tuple(cs.restart_count for cs in status.init_container_statuses),
        pod.metadata.labels.jobset_name,
        pod.metadata.namespace,
    )


def pod_change_matters(old: Pod | None, new: Pod | None) -> bool:
    """Whether a pod event can change what ``decide`` decides: an add, a delete, a re-created pod, or a change
    of ``pod_inputs``. Events for which it is False (a pod's IP, readiness, conditions, node) may be coalesced
    (``cache.queue.WorkQueue.add_coalesced``)."""
    if old is None or new is None or old.metadata.uid != new.metadata.uid:
        return True
    return pod_inputs(old) != pod_inputs(new)


def expected_pods(js: JobSet) -> int | str:
    """Σ replicas x parallelism, or an error text when some template lacks completions == parallelism."""
    total = 0
    for rjob in js.spec.replicated_jobs:
        spec = rjob.template.get("spec")
        spec = spec if isinstance(spec, dict) else {}
        p, comp = spec.get("parallelism"), spec.get("completions")
        if not isinstance(p, int) or not isinstance(comp, int) or p != comp:
            return f"{rjob.name}: in-place restart requires jobTemplate.spec.completions == parallelism != nil"
        total += rjob.replicas * p
    return total


def reconcile_in_place(js: JobSet, pods: tuple[Pod, ...], draft: cond.StatusDraft) -> str | None:
    """Advance the in-place restart attempts on ``draft``; returns a decision error or None."""
    policy = js.spec.failure_policy
    max_restarts = policy.max_restarts if policy is not None else 0
    highest_restart_count = 0
    for pod in pods:
        for cs in (*pod.status.init_container_statuses, *pod.status.container_statuses):
            highest_restart_count = max(highest_restart_count, cs.restart_count)
    if highest_restart_count > max_restarts:
        _failed(draft)
        return None

    attempts: list[int] = []
    for pod in pods:
        if pod.status.phase == "Failed":
            continue
        raw = pod.metadata.annotations.get(c.IN_PLACE_RESTART_ATTEMPT_KEY)
        if raw is None:
            continue
        try:
            value = int(raw)
        except ValueError:
            value = -1
        if value < 0:
            return f"invalid value for annotation {c.IN_PLACE_RESTART_ATTEMPT_KEY}, must be non-negative integer"
        attempts.append(value)

    highest = max(attempts, default=0)
    uncounted = draft.restarts - draft.restarts_count_towards_max
    if highest - uncounted > max_restarts:
        _failed(draft)
        return None

    expected = expected_pods(js)
    if isinstance(expected, str):
        return expected
    if attempts and len(attempts) == expected and all(a == attempts[0] for a in attempts):
        if draft.current_in_place_restart_attempt != attempts[0]:
            draft.current_in_place_restart_attempt = attempts[0]
        return None
    if not attempts or highest == 0:
        return None
    previous = highest - 1
    old = draft.previous_in_place_restart_attempt
    if old is None or previous > old:
        draft.previous_in_place_restart_attempt = previous
    return None
