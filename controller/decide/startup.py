"""Which child Jobs to create this pass: dependsOn gates, InOrder startup, recreation barriers (behaviour.md §4.4).

Invariants:
* replicated jobs are visited in spec order; a ``dependsOn`` entry is reached when the dependency's computed
  status shows ``replicas == succeeded`` (Complete) or ``replicas == ready + failed + succeeded`` (Ready, as the
  reference counts it); an unreached dependency skips the replicated job, suspended or not;
* InOrder (only when not suspended): a replicated job with every replica started (ready + failed + succeeded ==
  replicas) is passed over; the first one that is not stops the walk with StartupPolicyInProgress=True; a full
  walk sets StartupPolicyCompleted=True (the two conditions flip each other);
* a Job is created only if no child of any bucket (active, succeeded, failed, previous attempt) has its name —
  so ``Recreate`` waits per Job for its predecessor (held by foreground deletion) to disappear; with
  ``BlockingRecreate`` nothing at all is created while any previous-attempt Job still exists;
* new Jobs carry the JobSet's suspend value; with gate RestartJob on they carry ``job-restart-attempt`` from the
  replicated job's ``jobRestarts`` array (0 when absent);
* at most ``limit`` manifests are built per pass, lowest replicated job and index first; ``Creates.more`` says
  that the walk was cut there (the next pass continues, because the created names then exist). A cut walk never
  sets StartupPolicyCompleted.
Cost: O(children + limit) manifests-wise when something is missing (names are checked for at most the indexes
visited), O(replicated jobs) in the steady state; never O(replicas) manifests at once.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from itertools import filterfalse

from api import constants as c
from api.jobset_types import JobSet, ReplicatedJob, ReplicatedJobStatus
from api.jsontypes import JSON
from controller.decide import children as build
from controller.decide import conditions as cond
from controller.decide.classify import Children
from controller.decide.naming import job_names


def is_suspended(js: JobSet) -> bool:
    return bool(js.spec.suspend)


def in_order(js: JobSet) -> bool:
    policy = js.spec.startup_policy
    return policy is not None and policy.startup_policy_order == "InOrder"


def dependencies_reached(
    rjob: ReplicatedJob, replicas_seen: Mapping[str, int], statuses: Mapping[str, ReplicatedJobStatus]
) -> bool:
    """Every ``dependsOn`` entry of ``rjob`` has reached its status (dependencies must precede ``rjob``)."""
    for dep in rjob.depends_on or ():
        st = statuses.get(dep.name)
        replicas = replicas_seen.get(dep.name)
        if st is None or replicas is None:
            return False
        if dep.status == "Complete" and replicas != st.succeeded:
            return False
        if dep.status == "Ready" and replicas != st.ready + st.failed + st.succeeded:
            return False
    return True


def all_started(rjob: ReplicatedJob, st: ReplicatedJobStatus | None) -> bool:
    return st is not None and rjob.replicas == st.ready + st.failed + st.succeeded


def due_replicated_jobs(
    js: JobSet, statuses: Mapping[str, ReplicatedJobStatus], *, ordered: bool
) -> Iterator[ReplicatedJob]:
    """The replicated jobs whose turn it is, in spec order: those whose ``dependsOn`` is reached and, when
    ``ordered`` (InOrder), not yet fully started. An ordered caller handles the first one and stops
    (``mark_in_order_in_progress``)."""
    replicas_seen: dict[str, int] = {}
    for rjob in js.spec.replicated_jobs:
        replicas_seen[rjob.name] = rjob.replicas
        if not dependencies_reached(rjob, replicas_seen, statuses):
            continue
        if ordered and all_started(rjob, statuses.get(rjob.name)):
            continue
        yield rjob


def mark_in_order_in_progress(draft: cond.StatusDraft) -> None:
    draft.set_condition(
        c.COND_STARTUP_IN_PROGRESS, "True", cond.REASON_IN_ORDER_IN_PROGRESS, cond.MSG_IN_ORDER_IN_PROGRESS
    )


@dataclass(frozen=True, slots=True)
class Creates:
    manifests: tuple[JSON, ...]
    more: bool
    """The walk stopped at ``limit``: more Jobs are missing than this pass creates."""


def jobs_to_create(
    js: JobSet,
    kids: Children,
    statuses: Mapping[str, ReplicatedJobStatus],
    draft: cond.StatusDraft,
    *,
    restart_job_gate: bool,
    limit: int,
) -> Creates:
    """Manifests of (at most ``limit`` of) the Jobs to create now; sets the InOrder startup conditions on ``draft``."""
    policy = js.spec.failure_policy
    blocked = bool(kids.previous) and policy is not None and policy.restart_strategy == "BlockingRecreate"
    ordered = in_order(js) and not is_suspended(js)
    existing: frozenset[str] | None = None
    out: list[JSON] = []
    for rjob in due_replicated_jobs(js, statuses, ordered=ordered):
        # Every child was created by this controller under its canonical name, so ``replicas`` children
        # labelled with this rjob (any bucket) means no index is missing: skip the per-name check (O(1)).
        if not blocked and kids.present.get(rjob.name, 0) < rjob.replicas:
            if existing is None:
                existing = kids.names()
            attempts = _job_restart_attempts(rjob, statuses) if restart_job_gate else None
            names = job_names(js.metadata.name, rjob.name, rjob.replicas)
            # The missing names in index order, filtered at C speed (no per-index Python work for existing ones).
            for name in filterfalse(existing.__contains__, names):
                index = _index_of(name)
                if len(out) >= limit:
                    if ordered:
                        mark_in_order_in_progress(draft)
                    return Creates(tuple(out), more=True)
                attempt = attempts[index] if attempts is not None else None
                out.append(build.build_job(js, rjob, index, job_restart_attempt=attempt))
        if ordered:
            mark_in_order_in_progress(draft)
            return Creates(tuple(out), more=False)
    if ordered:
        draft.set_condition(
            c.COND_STARTUP_COMPLETED, "True", cond.REASON_IN_ORDER_COMPLETED, cond.MSG_IN_ORDER_COMPLETED
        )
    return Creates(tuple(out), more=False)


def _index_of(job_name_: str) -> int:
    """The job index a canonical ``<jobset>-<rjob>-<index>`` name ends with."""
    return int(job_name_.rpartition("-")[2])


def _job_restart_attempts(rjob: ReplicatedJob, statuses: Mapping[str, ReplicatedJobStatus]) -> list[int]:
    st = statuses.get(rjob.name)
    values = list(st.job_restarts or ()) if st is not None else []
    values.extend([0] * (rjob.replicas - len(values)))
    return values
