"""The top-level decision for one JobSet: ``decide(snapshot, now) -> Plan`` (spec section 4.2).

Role: orchestrate the policy modules in the reference controller's order. Invariants: pure (no I/O, no clock:
``now`` is a parameter); the returned Plan carries a new status only when it differs from the stored one.
"""

from __future__ import annotations

import datetime as dt

import msgspec

from cache import constants as c
from cache.jobset_types import JobSet, JobSetStatus
from controller.decide import children as build
from controller.decide.classify import Children, ClassifyError, classify, replicated_jobs_status
from controller.decide.naming import dns_hostnames_enabled, job_name
from controller.decide.plan import Plan, Snapshot


def decide(snap: Snapshot, now: dt.datetime) -> Plan:
    js = snap.jobset
    if js.metadata.deletion_timestamp is not None:
        return Plan()
    if js.spec.managed_by is not None and js.spec.managed_by != c.CONTROLLER_NAME:
        return Plan()
    gate_restart_job = snap.gate(c.GATE_RESTART_JOB)
    try:
        kids = classify(js, snap.jobs, restart_job_gate=gate_restart_job)
    except ClassifyError as err:
        return Plan(error=str(err))

    new_rjs = replicated_jobs_status(js, kids, restart_job_gate=gate_restart_job)
    status = js.status
    if new_rjs != status.replicated_jobs_status:
        status = _replace_status(js, replicated_jobs_status=new_rjs)

    service = None
    if dns_hostnames_enabled(js) and not snap.service_exists:
        service = build.build_headless_service(js)

    return Plan(
        create_jobs=_jobs_to_create(js, kids),
        create_service=service,
        status=status if status != js.status else None,
    )


def _jobs_to_create(js: JobSet, kids: Children) -> tuple[dict[str, object], ...]:
    existing = kids.names()
    out = []
    for rjob in js.spec.replicated_jobs:
        for index in range(rjob.replicas):
            if job_name(js.metadata.name, rjob.name, index) not in existing:
                out.append(build.build_job(js, rjob, index))
    return tuple(out)


def _replace_status(js: JobSet, **changes: object) -> JobSetStatus:
    return msgspec.structs.replace(js.status, **changes)
