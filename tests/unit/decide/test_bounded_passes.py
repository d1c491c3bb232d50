"""Bounded passes (behaviour.md §4 "Bounded passes"): a large JobSet's Plan is cut into bounded batches.

``decide`` carries at most ``max_writes`` Job creates (and deletes, and updates) per pass and says ``more``; the
next pass continues where the last one stopped, so a JobSet of any size is created in ⌈N / max_writes⌉ passes
without a duplicate, and a JobSet of ``replicas: 100000`` never yields 100,000 manifests at once.
"""

from __future__ import annotations

import datetime as dt

from api import constants as c
from api.plan import Snapshot
from controller.decide.reconcile import decide
from tests.builders import DecideWorld, JobSetBuilder, failed_status

NOW = dt.datetime(2026, 1, 1, 0, 1, tzinfo=dt.UTC)


def test_a_large_jobset_is_created_in_bounded_passes_without_duplicates() -> None:
    world = DecideWorld(JobSetBuilder("big").rjob("a", 7).rjob("b", 16).record(), max_writes=5)
    sizes: list[int] = []
    created: list[str] = []
    for _ in range(10):
        plan = world.step()
        sizes.append(len(plan.create_jobs))
        created += [m["metadata"]["name"] for m in plan.create_jobs]
        if not plan.more:
            break
    assert sizes == [5, 5, 5, 5, 3]
    assert [p.more for p in world.plans] == [True, True, True, True, False]
    assert len(created) == len(set(created)) == 23
    # Lowest replicated job and index first, so dependants and coordinators come up in spec order.
    assert created[:8] == [f"big-a-{i}" for i in range(7)] + ["big-b-0"]


def test_a_plan_never_carries_more_than_the_bound_whatever_the_replicas() -> None:
    js = JobSetBuilder("huge").rjob("w", 100_000).record()
    plan = decide(Snapshot(jobset=js, jobs=(), service_exists=True), NOW)
    assert len(plan.create_jobs) == c.MAX_CHILD_WRITES_PER_PASS
    assert plan.more


def test_a_plan_within_the_bound_is_not_marked_more() -> None:
    world = DecideWorld(JobSetBuilder("small").rjob("a", 3).record(), max_writes=3)
    plan = world.step()
    assert len(plan.create_jobs) == 3
    assert not plan.more
    assert world.step().is_empty


def test_in_order_startup_is_not_completed_by_a_cut_pass() -> None:
    js = JobSetBuilder("ord").rjob("a", 4).set("spec.startupPolicy", {"startupPolicyOrder": "InOrder"}).record()
    world = DecideWorld(js, max_writes=3)
    plan = world.step()
    assert plan.more
    assert len(plan.create_jobs) == 3
    assert plan.status is not None
    types = {cond.type: cond.status for cond in plan.status.conditions}
    assert types.get(c.COND_STARTUP_IN_PROGRESS) == "True"
    assert c.COND_STARTUP_COMPLETED not in types


def test_deletes_of_a_previous_attempt_are_bounded_too() -> None:
    world = DecideWorld(
        JobSetBuilder("r").rjob("w", 12).set("spec.failurePolicy", {"maxRestarts": 3}).record(), max_writes=5
    )
    while world.step().more:
        pass
    assert len(world.jobs) == 12
    world.set_status(failed_status(), "r-w-0")
    restart = world.step()
    assert restart.status is not None
    assert restart.status.restarts == 1
    deleted: list[str] = []
    for _ in range(5):
        plan = world.step()
        assert len(plan.delete_jobs) <= 5
        deleted += plan.delete_jobs
        if not plan.more:
            break
    assert sorted(deleted) == sorted(world.jobs)
    assert len(deleted) == 12


def test_suspending_a_large_jobset_patches_jobs_in_bounded_passes() -> None:
    world = DecideWorld(JobSetBuilder("s").rjob("w", 9).record(), max_writes=4)
    while world.step().more:
        pass
    world.update_spec(suspend=True)
    patched: list[str] = []
    for _ in range(5):
        plan = world.step()
        assert len(plan.update_jobs) <= 4
        patched += [u.name for u in plan.update_jobs]
        if not plan.more:
            break
    assert sorted(patched) == sorted(world.jobs)
    assert all(job.spec.suspend for job in world.jobs.values())


def test_a_finished_jobset_is_not_deleted_by_its_ttl_while_deletes_remain() -> None:
    js = JobSetBuilder("t").rjob("w", 6).set("spec.ttlSecondsAfterFinished", 0).record()
    world = DecideWorld(js, max_writes=4)
    while world.step().more:
        pass
    world.set_status(failed_status(), "t-w-0")
    world.step()  # fails the JobSet (no failure policy)
    assert world.js.status.terminal_state == "Failed"
    first = world.step()  # 5 active Jobs to delete, 4 per pass
    assert len(first.delete_jobs) == 4
    assert first.more
    assert not first.delete_jobset
    last = world.step()
    assert len(last.delete_jobs) == 1
    assert not last.more
    assert last.delete_jobset
