"""Properties of ``decide`` over arbitrary child states: it never raises and its Plan is self-consistent.

Invariants checked (behaviour.md §4.2-4.4, 4.11): no Job is created under a name that exists; no Job already being
deleted is deleted again; nothing is created in a pass that fails, completes or restarts; a Plan with an error
carries no status and no events; events come only with a status change; the status never loses restarts.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api import constants as c
from api.plan import Snapshot
from api.records import Job
from controller.decide import children
from controller.decide.reconcile import decide
from tests.builders import JobSetBuilder, complete_status, failed_status, job_record, job_status, ready_status

NOW = dt.datetime(2026, 1, 1, 0, 1, tzinfo=dt.UTC)

JOB_STATES = st.sampled_from(["missing", "new", "ready", "complete", "failed", "previous", "deleting"])
POLICIES = st.sampled_from(
    [
        None,
        {"maxRestarts": 2},
        {"maxRestarts": 1, "restartStrategy": "BlockingRecreate"},
        {"maxRestarts": 3, "rules": [{"name": "r", "action": "RestartJob"}]},
        {
            "maxRestarts": 3,
            "rules": [{"name": "r", "action": "FailJobSet", "onJobFailureReasons": ["DeadlineExceeded"]}],
        },
    ]
)


def _status(state: str) -> dict[str, Any]:
    return {
        "new": job_status(),
        "ready": ready_status(),
        "complete": complete_status(),
        "failed": failed_status(),
    }.get(state, job_status())


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    states=st.lists(JOB_STATES, min_size=4, max_size=4),
    policy=POLICIES,
    suspend=st.booleans(),
    in_order=st.booleans(),
    any_success=st.booleans(),
    gate=st.booleans(),
)
def test_decide_plan_is_consistent(
    states: list[str], policy: dict[str, Any] | None, suspend: bool, in_order: bool, any_success: bool, gate: bool
) -> None:
    b = JobSetBuilder("p").rjob("a", 1).rjob("b", 3).set("spec.suspend", suspend)
    if policy is not None:
        b.set("spec.failurePolicy", policy)
    if in_order:
        b.set("spec.startupPolicy", {"startupPolicyOrder": "InOrder"})
    if any_success:
        b.set("spec.successPolicy", {"operator": "Any"})
    js = b.record(restarts=1)
    old = b.record(restarts=0)
    jobs: list[Job] = []
    slots = [(0, 0), (1, 0), (1, 1), (1, 2)]
    for (r, i), state in zip(slots, states, strict=True):
        if state == "missing":
            continue
        source = old if state == "previous" else js
        attempt = 0 if gate else None
        manifest = children.build_job(source, source.spec.replicated_jobs[r], i, job_restart_attempt=attempt)
        job = job_record(manifest, status=_status(state))
        if state == "deleting":
            obj = msgspec.to_builtins(job)
            obj["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
            job = msgspec.convert(obj, Job)
        jobs.append(job)

    plan = decide(Snapshot(jobset=js, jobs=tuple(jobs), service_exists=False, gates={c.GATE_RESTART_JOB: gate}), NOW)

    names = {j.metadata.name for j in jobs}
    deleting = {j.metadata.name for j in jobs if j.metadata.deletion_timestamp is not None}
    created = [m["metadata"]["name"] for m in plan.create_jobs]
    assert not set(created) & names
    assert len(created) == len(set(created))
    assert not set(plan.delete_jobs) & deleting
    assert set(plan.delete_jobs) <= names
    assert {u.name for u in plan.update_jobs} <= names
    if plan.error is not None:
        assert plan.status is None
        assert plan.events == ()
    if plan.events:
        assert plan.status is not None
    if plan.status is not None:
        assert plan.status.restarts >= js.status.restarts
        if plan.status.terminal_state or plan.status.restarts != js.status.restarts:
            assert created == []
    if policy is None and "failed" in states:
        assert plan.status is not None
        assert plan.status.terminal_state == "Failed"
    if suspend:
        assert all(m["spec"]["suspend"] is True for m in plan.create_jobs)
