"""Status write pacing (``controller.decide.pacing``): counts-only status changes wait for the window, conditions
never do. Pure: snapshots and plans only."""

from __future__ import annotations

import dataclasses
import datetime as dt

import msgspec
import pytest

from api import constants as c
from api.jobset_types import JobSetStatus, ReplicatedJobStatus
from controller.decide import pacing
from controller.decide.reconcile import decide
from tests.builders import DecideWorld, JobSetBuilder, complete_status, failed_status, ready_status

T = dt.datetime(2026, 1, 1, 0, 1, tzinfo=dt.UTC)


def _world() -> DecideWorld:
    world = DecideWorld(JobSetBuilder("js").rjob("w", 3).record())
    world.step(T)  # creates the three Jobs, writes the first status
    return world


def _decide(world: DecideWorld, *, written_at: dt.datetime | None, now: dt.datetime, window: float = 1.0):  # type: ignore[no-untyped-def]
    snap = dataclasses.replace(world.snapshot(), status_written_at=written_at, status_window=window)
    return decide(snap, now)


def _ready(world: DecideWorld) -> int:
    return sum(s.ready for s in world.js.status.replicated_jobs_status)


def test_a_counts_only_change_inside_the_window_waits_for_its_end() -> None:
    world = _world()
    world.set_status(ready_status(), "js-w-0")
    plan = _decide(world, written_at=T, now=T + dt.timedelta(seconds=0.25))
    assert plan.status is None, "counts-only change deferred"
    assert plan.requeue_after == pytest.approx(0.75), "requeued for the window's end"


def test_the_first_counts_only_change_after_a_quiet_window_is_written_at_once() -> None:
    world = _world()
    world.set_status(ready_status(), "js-w-0")
    plan = _decide(world, written_at=T, now=T + dt.timedelta(seconds=1.0))
    assert plan.status is not None
    assert sum(s.ready for s in plan.status.replicated_jobs_status) == 1
    assert plan.requeue_after is None


@pytest.mark.parametrize(
    ("written_at", "window"),
    [pytest.param(None, 1.0, id="no-previous-write"), pytest.param(T, 0.0, id="window-off")],
)
def test_without_a_previous_write_or_with_the_window_off_every_change_is_written(
    written_at: dt.datetime | None, window: float
) -> None:
    world = _world()
    world.set_status(ready_status(), "js-w-0")
    plan = _decide(world, written_at=written_at, now=T, window=window)
    assert plan.status is not None


def test_the_deferred_counts_are_the_latest_when_the_window_ends() -> None:
    world = _world()
    world.set_status(ready_status(), "js-w-0")
    assert _decide(world, written_at=T, now=T + dt.timedelta(seconds=0.2)).status is None
    world.set_status(ready_status(), "js-w-1")
    assert _decide(world, written_at=T, now=T + dt.timedelta(seconds=0.6)).status is None
    plan = _decide(world, written_at=T, now=T + dt.timedelta(seconds=1.1))
    assert plan.status is not None
    assert sum(s.ready for s in plan.status.replicated_jobs_status) == 2


def test_a_condition_change_is_never_deferred() -> None:
    world = _world()
    world.set_status(complete_status())
    plan = _decide(world, written_at=T, now=T + dt.timedelta(seconds=0.1))
    assert plan.status is not None, "Completed is written at once"
    assert plan.status.terminal_state == c.COND_COMPLETED
    assert plan.events, "with its event"


def test_a_failure_restart_is_never_deferred() -> None:
    world = DecideWorld(JobSetBuilder("js").rjob("w", 3).set("spec.failurePolicy", {"maxRestarts": 2}).record())
    world.step(T)
    world.set_status(failed_status(), "js-w-1")
    plan = _decide(world, written_at=T, now=T + dt.timedelta(seconds=0.1))
    assert plan.status is not None
    assert plan.status.restarts == 1


def test_a_deferral_keeps_the_child_writes_of_the_same_pass() -> None:
    world = DecideWorld(JobSetBuilder("js").rjob("w", 3).record(), max_writes=2)
    first = world.step(T)
    assert len(first.create_jobs) == 2
    assert first.more
    world.set_status(ready_status(), "js-w-0")
    plan = _decide(world, written_at=T, now=T + dt.timedelta(seconds=0.5))
    assert [m["metadata"]["name"] for m in plan.create_jobs] == ["js-w-2"], "the cut Plan's rest is still created"
    assert plan.status is None
    assert plan.requeue_after == pytest.approx(0.5)


def _status(ready: int, **changes: object) -> JobSetStatus:
    rjs = (ReplicatedJobStatus(name="w", ready=ready, succeeded=0, failed=0, active=3, suspended=0),)
    return msgspec.structs.replace(JobSetStatus(replicated_jobs_status=rjs), **changes)


@pytest.mark.parametrize(
    ("new", "expected"),
    [
        pytest.param(_status(2), True, id="counts"),
        pytest.param(_status(1), True, id="unchanged"),
        pytest.param(_status(2, restarts=1), False, id="restarts"),
        pytest.param(_status(1, terminal_state="Completed"), False, id="terminal-state"),
        pytest.param(_status(1, restarts_count_towards_max=1), False, id="restarts-towards-max"),
        pytest.param(_status(1, current_in_place_restart_attempt=1), False, id="in-place-attempt"),
    ],
)
def test_counts_only_compares_everything_but_the_counts(new: JobSetStatus, expected: bool) -> None:
    assert pacing.counts_only(new, _status(1)) is expected


def test_deferral_with_events_writes_at_once() -> None:
    later = T + dt.timedelta(seconds=0.1)
    assert pacing.deferral(_status(2), _status(1), has_events=True, written_at=T, window=1.0, now=later) is None
    assert pacing.deferral(_status(2), _status(1), has_events=False, written_at=T, window=1.0, now=later) == (
        pytest.approx(0.9)
    )


@pytest.mark.parametrize(
    ("seconds", "requeue"),
    [
        pytest.param(240.0, 0.8, id="window-ends-first"),
        pytest.param(299.9, 0.1, id="deadline-comes-first"),
    ],
)
def test_a_deferral_keeps_the_earlier_of_the_plans_own_requeue_and_the_windows_end(
    seconds: float, requeue: float
) -> None:
    from api import extensions as x

    js = JobSetBuilder("js").rjob("w", 3).annotate(x.STARTUP_DEADLINE, "5m").record()
    world = DecideWorld(js, stamp_creation=True)
    world.step(T)
    world.set_status(ready_status(), "js-w-0")  # the gang is not complete: the deadline asks for a requeue
    now = T + dt.timedelta(seconds=seconds)
    plan = _decide(world, written_at=now - dt.timedelta(seconds=0.2), now=now)
    assert plan.status is None
    assert plan.requeue_after == pytest.approx(requeue)
