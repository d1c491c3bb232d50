"""The incremental child tally (``cache.tally``) against a full pass (issue 18, item 3).

Properties: for random sequences of Job inserts, replacements, deletes and re-lists on a ``Store`` with a
``ChildTallies`` listener, (1) every JobSet's tally equals the tally built from scratch over the store's owner-index
bucket; (2) the ``Children`` read from the tally equal ``classify`` over the same Jobs whenever the tally is
trusted; (3) ``decide`` with the tally gives the same Plan as ``decide`` with a full pass. Deterministic tests check
that the tally is trusted in the states that matter (steady, restarting) and distrusted when in doubt.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api import constants as c
from api.jobset_types import JobSet
from api.plan import Snapshot
from api.records import Job
from cache.store import Store
from cache.tally import ChildTallies
from controller.decide import children as build
from controller.decide.classify import children_from_tally, classify
from controller.decide.reconcile import decide
from controller.reconciler import OWNER_INDEX, owner_uid_index
from tests.builders import JobSetBuilder, job_condition, ready_status

NOW = dt.datetime(2026, 1, 1, 0, 1, tzinfo=dt.UTC)
UIDS = ("uid-a", "uid-b")
RJOBS = {"lead": 1, "work": 3}


def _jobset(uid: str, restarts: int, policy: Any) -> JobSet:
    b = JobSetBuilder(f"js-{uid}").rjob("lead", RJOBS["lead"]).rjob("work", RJOBS["work"])
    if policy is not None:
        b = b.set("spec.failurePolicy", policy)
    return b.record(uid=uid, restarts=restarts)


_BASE = {uid: _jobset(uid, 0, None) for uid in UIDS}


@st.composite
def jobs(draw: st.DrawFn) -> Job:
    uid = draw(st.sampled_from(UIDS))
    js = _BASE[uid]
    rjob_name = draw(st.sampled_from(sorted(RJOBS)))
    rjob = next(r for r in js.spec.replicated_jobs if r.name == rjob_name)
    index = draw(st.integers(0, RJOBS[rjob_name]))  # one past the end: a Job the spec no longer has
    manifest = build.build_job(js, rjob, index)
    labels = manifest["metadata"]["labels"]
    attempt = draw(st.sampled_from(["0", "0", "1", "2", "01", None, "x"]))
    if attempt is None:
        labels.pop(c.RESTART_ATTEMPT_KEY, None)
    else:
        labels[c.RESTART_ATTEMPT_KEY] = attempt
    if draw(st.integers(0, 9)) == 0:
        labels[c.REPLICATED_JOB_NAME_KEY] = "gone"
    conds = []
    kind = draw(st.sampled_from(["running", "running", "complete", "failed", "both", "false"]))
    minute = draw(st.integers(0, 3))
    at = f"2026-01-01T00:00:0{minute}Z"
    if kind in ("complete", "both"):
        conds.append(job_condition("Complete", at=at))
    if kind in ("failed", "both"):
        conds.append(job_condition("Failed", reason="BackoffLimitExceeded", at=at))
    if kind == "false":
        conds.append(job_condition("Failed", "False", at=at))
    status: dict[str, Any] = {
        "active": draw(st.integers(0, 2)),
        "ready": draw(st.sampled_from([None, 0, 1, 2])),
        "succeeded": draw(st.integers(0, 2)),
        "conditions": conds,
    }
    manifest["spec"]["parallelism"] = draw(st.sampled_from([None, 1, 2]))
    manifest["spec"]["completions"] = draw(st.sampled_from([None, 1, 3]))
    manifest["spec"]["suspend"] = draw(st.booleans())
    manifest["status"] = status
    manifest["metadata"]["uid"] = f"job-{draw(st.integers(0, 3))}"
    if draw(st.integers(0, 7)) == 0:
        manifest["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    if draw(st.integers(0, 15)) == 0:
        manifest["metadata"]["ownerReferences"] = []  # an orphan: in no tally
    return msgspec.convert(manifest, Job)


def _key(job: Job) -> str:
    return job.key


EVENTS = st.one_of(
    st.tuples(st.just("upsert"), jobs()),
    st.tuples(st.just("delete"), jobs()),
    st.tuples(st.just("relist"), st.lists(jobs(), max_size=6)),
)


def _from_scratch(store: Store[Job], uid: str) -> Any:
    fresh = ChildTallies(owner_uid_index)
    for job in store.by_index(OWNER_INDEX, uid):
        fresh.added(job.key, job)
    return fresh.view(uid)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    events=st.lists(EVENTS, min_size=1, max_size=25),
    restarts=st.integers(0, 2),
    policy=st.sampled_from([None, {"maxRestarts": 3}, {"maxRestarts": 3, "restartStrategy": "BlockingRecreate"}]),
    suspend=st.booleans(),
)
def test_incremental_tally_equals_full_pass(
    events: list[tuple[str, Any]], restarts: int, policy: Any, suspend: bool
) -> None:
    tallies = ChildTallies(owner_uid_index)
    store: Store[Job] = Store(_key, {OWNER_INDEX: owner_uid_index}, listeners=[tallies])
    for kind, arg in events:
        if kind == "upsert":
            store.upsert(arg)
        elif kind == "delete":
            store.delete(arg.key)
        else:
            store.replace(arg)
        for uid in UIDS:
            assert tallies.view(uid) == _from_scratch(store, uid)
            assert store.index_tuple(OWNER_INDEX, uid) == tuple(store.by_index(OWNER_INDEX, uid))  # cached tuple

    for uid in UIDS:
        js = _jobset(uid, restarts, policy)
        if suspend:
            js = msgspec.structs.replace(js, spec=msgspec.structs.replace(js.spec, suspend=True))
        kids = tuple(store.by_index(OWNER_INDEX, uid))
        tally = tallies.view(uid)
        tallied = children_from_tally(js, tally, len(kids))
        if tallied is not None:
            full_kids = classify(js, kids)
            assert tallied == full_kids
            assert tallied.names() == full_kids.names()  # the tally's cached name set, not collected
            assert tallied.previous_deletable() == full_kids.previous_deletable()
        full = decide(Snapshot(jobset=js, jobs=kids, service_exists=True), NOW)
        fast = decide(Snapshot(jobset=js, jobs=kids, service_exists=True, tally=tally), NOW)
        assert fast == full


def _steady(uid: str, restarts: int) -> tuple[JobSet, Store[Job], ChildTallies]:
    js = _jobset(uid, restarts, {"maxRestarts": 3})
    tallies = ChildTallies(owner_uid_index)
    store: Store[Job] = Store(_key, {OWNER_INDEX: owner_uid_index}, listeners=[tallies])
    for rjob in js.spec.replicated_jobs:
        for i in range(rjob.replicas):
            manifest = build.build_job(js, rjob, i)
            manifest["metadata"]["uid"] = f"job-{rjob.name}-{i}"
            manifest["status"] = ready_status()
            store.upsert(msgspec.convert(manifest, Job))
    return js, store, tallies


def test_tally_is_trusted_in_steady_state_and_after_a_restart() -> None:
    js, store, tallies = _steady("uid-a", 0)
    jobs_now = tuple(store.by_index(OWNER_INDEX, "uid-a"))
    kids = children_from_tally(js, tallies.view("uid-a"), len(jobs_now))
    assert kids is not None
    assert len(kids.active) == 4
    assert kids.counts == {"lead": [1, 0, 0, 1, 0], "work": [3, 0, 0, 3, 0]}
    restarted = _jobset("uid-a", 1, {"maxRestarts": 3})
    kids = children_from_tally(restarted, tallies.view("uid-a"), len(jobs_now))
    assert kids is not None
    assert len(kids.previous) == 4
    assert not kids.active


def test_tally_is_distrusted_when_in_doubt() -> None:
    js, store, tallies = _steady("uid-a", 0)
    n = len(store.by_index(OWNER_INDEX, "uid-a"))
    tally = tallies.view("uid-a")
    assert children_from_tally(js, tally, n - 1) is None  # size mismatch with the snapshot
    other = _jobset("uid-b", 0, None)
    assert children_from_tally(other, tally, n) is None  # another JobSet with the same name (UID mismatch)
    assert children_from_tally(js, tally, n, restart_job_gate=True) is None
    job = store.by_index(OWNER_INDEX, "uid-a")[0]
    labels = msgspec.structs.replace(job.metadata.labels, restart_attempt="x")
    bad = msgspec.structs.replace(job, metadata=msgspec.structs.replace(job.metadata, labels=labels))
    store.upsert(bad)
    tally = tallies.view("uid-a")
    assert children_from_tally(js, tally, n) is None  # the full pass words the error
    plan = decide(
        Snapshot(jobset=js, jobs=tuple(store.by_index(OWNER_INDEX, "uid-a")), service_exists=True, tally=tally), NOW
    )
    assert plan.error is not None
    assert "non-integer label" in plan.error


def test_a_relist_rebuilds_the_tally_from_scratch() -> None:
    _, store, tallies = _steady("uid-a", 0)
    survivors = store.by_index(OWNER_INDEX, "uid-a")[:2]
    store.replace(survivors)
    tally = tallies.view("uid-a")
    assert tally.size == 2
    assert tally == _from_scratch(store, "uid-a")
    store.replace([])
    assert len(tallies) == 0
    assert tallies.view("uid-a").size == 0


def test_the_name_set_survives_status_changes_and_follows_creates_and_deletes() -> None:
    _, store, tallies = _steady("uid-a", 0)
    names = tallies.view("uid-a").names
    assert names == {j.metadata.name for j in store.by_index(OWNER_INDEX, "uid-a")}
    job = store.by_index(OWNER_INDEX, "uid-a")[0]
    store.upsert(msgspec.structs.replace(job, status=msgspec.convert({"active": 0}, type(job.status))))
    assert tallies.view("uid-a").names is names  # a replace under the same name: nothing rebuilt
    assert tallies.view("uid-a").attempts[0] is tallies.view("uid-a").attempts[0]  # no change: no copy
    assert store.index_tuple(OWNER_INDEX, "uid-a") is store.index_tuple(OWNER_INDEX, "uid-a")
    store.delete(job.key)
    assert tallies.view("uid-a").names == names - {job.metadata.name}
    store.upsert(job)
    assert tallies.view("uid-a").names == names
    other = store.by_index(OWNER_INDEX, "uid-a")[1]
    store.delete(other.key)
    store.delete(job.key)  # two deletes before a read: both names go
    assert tallies.view("uid-a").names == names - {job.metadata.name, other.metadata.name}


def test_live_names_leave_out_jobs_being_deleted() -> None:
    _, store, tallies = _steady("uid-a", 0)
    job = store.by_index(OWNER_INDEX, "uid-a")[0]
    going = msgspec.structs.replace(
        job, metadata=msgspec.structs.replace(job.metadata, deletion_timestamp="2026-01-01T00:00:00Z")
    )
    store.upsert(going)
    (attempt,) = tallies.view("uid-a").attempts
    assert job.metadata.name not in attempt.live
    assert len(attempt.live) == len(attempt.jobs) - 1
    restarted = _jobset("uid-a", 1, {"maxRestarts": 3})
    kids = children_from_tally(restarted, tallies.view("uid-a"), len(store.by_index(OWNER_INDEX, "uid-a")))
    assert kids is not None
    assert kids.previous_deletable() == attempt.live
