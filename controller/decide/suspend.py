"""Suspending and resuming the child Jobs of a JobSet (behaviour.md §4.7).

Invariants:
* suspended JobSet: every active Job whose ``spec.suspend`` is not true gets a ``{"spec": {"suspend": true}}``
  merge patch; Suspended=True (``SuspendedJobs``) and RestartingJobSet=False (``JobSetSuspended``, only flipping
  an existing condition);
* running JobSet: replicated jobs are walked in spec order, skipping those whose dependsOn is not reached; with
  InOrder a fully started replicated job is passed over and the first other one ends the walk (its suspended Jobs
  are resumed, StartupPolicyInProgress=True); only a full walk sets Suspended=False (``ResumeJobs``), which never
  adds the condition to a JobSet that was never suspended;
* resuming a Job clears ``status.startTime`` first when set (``JobUpdate.clear_start_time``), then merges the
  replicated job's current pod template into the Job's: labels, annotations and nodeSelector as maps (template
  wins; keys only on the Job are kept — merge-patch semantics), tolerations and schedulingGates as set unions
  (Job order kept, new template entries appended), and sets ``suspend: false``.
Cost: O(active Jobs).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from api import constants as c
from api.jobset_types import JobSet, ReplicatedJob, ReplicatedJobStatus
from api.jsontypes import JSON
from api.plan import JobUpdate
from api.records import Job
from controller.decide import conditions as cond
from controller.decide.startup import due_replicated_jobs, in_order, mark_in_order_in_progress


def suspend_jobs(active: tuple[Job, ...], draft: cond.StatusDraft) -> list[JobUpdate]:
    updates = [JobUpdate(name=j.metadata.name, patch={"spec": {"suspend": True}}) for j in active if not j.spec.suspend]
    draft.set_condition(c.COND_SUSPENDED, "True", cond.REASON_SUSPENDED, cond.MSG_SUSPENDED)
    draft.set_condition(c.COND_RESTARTING, "False", cond.REASON_JOBSET_SUSPENDED, cond.MSG_SUSPENDED)
    return updates


def resume_jobs(
    js: JobSet,
    active: tuple[Job, ...],  # the active Jobs, or just the suspended ones (only those are resumed)
    statuses: Mapping[str, ReplicatedJobStatus],
    draft: cond.StatusDraft,
) -> list[JobUpdate]:
    suspended_by_rjob: dict[str, list[Job]] = {}
    for job in active:
        if job.spec.suspend:
            suspended_by_rjob.setdefault(job.metadata.labels.get(c.REPLICATED_JOB_NAME_KEY, ""), []).append(job)
    ordered = in_order(js)
    updates: list[JobUpdate] = []
    for rjob in due_replicated_jobs(js, statuses, ordered=ordered):
        updates.extend(resume_update(job, rjob) for job in suspended_by_rjob.get(rjob.name, ()))
        if ordered:
            mark_in_order_in_progress(draft)
            return updates
    draft.set_condition(c.COND_SUSPENDED, "False", cond.REASON_RESUMED, cond.MSG_RESUMED)
    return updates


def resume_update(job: Job, rjob: ReplicatedJob) -> JobUpdate:
    """The merge patch that resumes ``job`` with ``rjob``'s current pod template propagated."""
    tmpl = _mapping(_mapping(rjob.template.get("spec")).get("template"))
    tmeta = _mapping(tmpl.get("metadata"))
    tspec = _mapping(tmpl.get("spec"))
    current = job.spec.template

    pod_meta: JSON = {}
    for key in ("labels", "annotations"):
        values = _str_map(tmeta.get(key))
        if values:
            pod_meta[key] = values
    pod_spec: JSON = {}
    selector = _str_map(tspec.get("nodeSelector"))
    if selector:
        pod_spec["nodeSelector"] = selector
    for key, have in (
        ("tolerations", current.spec.tolerations),
        ("schedulingGates", current.spec.scheduling_gates),
    ):
        merged = _union(have or (), tspec.get(key) or ())
        if len(merged) != len(have or ()):
            pod_spec[key] = merged

    spec: JSON = {"suspend": False}
    template: JSON = {}
    if pod_meta:
        template["metadata"] = pod_meta
    if pod_spec:
        template["spec"] = pod_spec
    if template:
        spec["template"] = template
    return JobUpdate(name=job.metadata.name, patch={"spec": spec}, clear_start_time=job.status.start_time is not None)


def _union(have: Sequence[Any], extra: Sequence[Any]) -> list[Any]:
    out = [dict(x) if isinstance(x, Mapping) else x for x in have]
    for raw in extra:
        item = dict(raw) if isinstance(raw, Mapping) else raw
        if item not in out:
            out.append(item)
    return out


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _str_map(value: object) -> dict[str, str]:
    return {k: v for k, v in _mapping(value).items() if isinstance(v, str)}
