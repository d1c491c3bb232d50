"""``add_coalesced``: events that do not change the decision cost at most one reconcile per window per key,
while a plain ``add`` (Job and JobSet events, decisive pod changes) is never delayed. FakeClock throughout."""

from __future__ import annotations

import itertools

import pytest

from cache.clock import FakeClock
from cache.queue import WorkQueue


def make(clock: FakeClock, window: float = 2.0) -> WorkQueue[str]:
    return WorkQueue(clock=clock, coalesce_window=window)


async def reconcile(q: WorkQueue[str]) -> str:
    item = await q.get()
    q.done(item)
    return item


async def test_first_event_of_a_quiet_key_is_immediate() -> None:
    q = make(FakeClock())
    q.add_coalesced("a")
    assert len(q) == 1
    assert await reconcile(q) == "a"


async def test_a_storm_costs_one_reconcile_per_window() -> None:
    clock = FakeClock(start=0.0)
    q = make(clock, window=2.0)
    reconciles: list[float] = []
    for _ in range(1000):  # 100 events per second for 10 s
        q.add_coalesced("a")
        while len(q):
            await reconcile(q)
            reconciles.append(clock.now())
        clock.advance(0.01)
    # one at once, then one as each 2 s window ends (this loop hands the item out at its next 10 ms step)
    assert reconciles[0] == 0.0
    assert 5 <= len(reconciles) <= 6, reconciles
    assert reconciles[-1] >= 8.0
    gaps = [b - a for a, b in itertools.pairwise(reconciles)]
    assert all(gap >= 2.0 - 1e-9 for gap in gaps), gaps


async def test_the_delayed_add_fires_when_the_window_ends() -> None:
    clock = FakeClock(start=0.0)
    q = make(clock, window=2.0)
    q.add_coalesced("a")
    await reconcile(q)  # handed out at t=0
    clock.advance(0.5)
    q.add_coalesced("a")
    assert len(q) == 0
    assert q.delayed() == 1
    clock.advance(1.4)
    assert len(q) == 0
    clock.advance(0.1)  # t=2.0: the window since the last hand-out is over
    assert len(q) == 1


async def test_a_plain_add_is_never_delayed_and_drops_the_pending_coalesced_add() -> None:
    clock = FakeClock(start=0.0)
    q = make(clock, window=2.0)
    q.add_coalesced("a")
    await reconcile(q)
    q.add_coalesced("a")
    assert q.delayed() == 1
    q.add("a")  # e.g. a Job failed: react now
    assert len(q) == 1
    assert await reconcile(q) == "a"
    assert q.delayed() == 0, "the reconcile just run read the latest state: no extra one at the window's end"
    clock.advance(10.0)
    assert len(q) == 0


async def test_a_rate_limited_retry_is_not_dropped_by_a_hand_out() -> None:
    clock = FakeClock(start=0.0)
    q = make(clock, window=2.0)
    q.add_coalesced("a")
    item = await q.get()
    q.add_after(item, 1.0)  # a retry after an error
    q.done(item)
    q.add("a")
    await reconcile(q)
    clock.advance(1.0)
    assert len(q) == 1


async def test_an_event_during_the_reconcile_waits_for_the_window() -> None:
    clock = FakeClock(start=0.0)
    q = make(clock, window=2.0)
    q.add_coalesced("a")
    item = await q.get()
    clock.advance(0.3)
    q.add_coalesced("a")
    q.done(item)
    assert len(q) == 0
    clock.advance(1.7)
    assert len(q) == 1


async def test_keys_are_coalesced_independently() -> None:
    clock = FakeClock(start=0.0)
    q = make(clock, window=2.0)
    q.add_coalesced("a")
    await reconcile(q)
    q.add_coalesced("a")
    q.add_coalesced("b")
    assert len(q) == 1
    assert await reconcile(q) == "b"


async def test_zero_window_is_a_plain_add() -> None:
    clock = FakeClock(start=0.0)
    q = make(clock, window=0.0)
    for _ in range(3):
        q.add_coalesced("a")
        assert await reconcile(q) == "a"


def test_a_negative_window_is_refused_naming_it() -> None:
    with pytest.raises(ValueError, match="coalesce_window"):
        WorkQueue(clock=FakeClock(), coalesce_window=-1.0)


async def test_shut_down_drops_pending_coalesced_adds() -> None:
    clock = FakeClock(start=0.0)
    q = make(clock, window=2.0)
    q.add_coalesced("a")
    await reconcile(q)
    q.add_coalesced("a")
    q.shut_down()
    clock.advance(5.0)
    assert len(q) == 0


async def test_a_reconcile_from_a_plain_add_opens_the_window_too() -> None:
    clock = FakeClock(start=0.0)
    q = make(clock, window=2.0)
    q.add("a")  # e.g. a Job event
    await reconcile(q)
    q.add_coalesced("a")
    assert len(q) == 0
    clock.advance(2.0)
    assert len(q) == 1


async def test_start_times_are_forgotten_once_older_than_the_window() -> None:
    clock = FakeClock(start=0.0)
    q = make(clock, window=1.0)
    for i in range(1000):
        q.add(f"k{i}")
        await reconcile(q)
        clock.advance(0.01)
    # about the items handed out within the last window (1 s / 10 ms), not all 1000
    assert len(q._last_start) <= 110
