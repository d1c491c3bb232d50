"""The reconciler's side of status pacing: it remembers when the Actor's status write succeeded, hands that time
and the window to ``decide`` in the Snapshot, and forgets a JobSet that left the cache. No API server."""

from __future__ import annotations

import datetime as dt
from typing import Any

from api.jobset_types import JobSet
from cache.queue import WorkQueue
from cache.store import Store
from controller.act import Actor
from controller.reconciler import OWNER_INDEX, JobSetReconciler, owner_uid_index
from tests.builders import JobSetBuilder

T = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def _reconciler(js: JobSet) -> tuple[JobSetReconciler, Actor]:
    jobsets: Store[JobSet] = Store(lambda o: o.key)
    jobsets.upsert(js)
    others: Any = Store(lambda o: o.key, {OWNER_INDEX: owner_uid_index})
    actor = Actor(client=None, recorder=None)  # type: ignore[arg-type]
    rec = JobSetReconciler(
        jobsets=jobsets, jobs=others, services=others, actor=actor, queue=WorkQueue(), now=lambda: T, status_window=1.5
    )
    return rec, actor


def test_a_successful_status_write_is_remembered_and_reaches_the_snapshot() -> None:
    js = JobSetBuilder("js").rjob("w", 2).record()
    rec, actor = _reconciler(js)
    assert rec.snapshot(js).status_written_at is None, "nothing written yet: the first change goes at once"
    assert rec.snapshot(js).status_window == 1.5
    for callback in actor.on_status_written:
        callback(js)
    assert rec.snapshot(js).status_written_at == T


def test_a_deleted_jobset_is_forgotten() -> None:
    js = JobSetBuilder("js").rjob("w", 2).record()
    rec, actor = _reconciler(js)
    for callback in actor.on_status_written:
        callback(js)
    rec.on_jobset(js, None)
    assert rec.status_written == {}
