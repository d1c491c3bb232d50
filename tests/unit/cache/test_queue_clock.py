"""The injected clocks the queue, limiters and elector run on: ``FakeClock`` semantics and ``RealClock`` basics."""

from __future__ import annotations

import asyncio

import pytest

from cache.clock import FakeClock, RealClock


def test_fake_clock_stands_still_until_advanced() -> None:
    clock = FakeClock(start=5.0)
    assert clock.now() == 5.0
    clock.advance(0.0)
    assert clock.now() == 5.0
    clock.advance(2.5)
    assert clock.now() == 7.5


def test_fake_clock_refuses_to_go_backwards() -> None:
    with pytest.raises(ValueError, match="backwards"):
        FakeClock().advance(-1.0)


def test_fake_timers_fire_in_deadline_order_then_scheduling_order_seeing_their_own_deadline() -> None:
    clock = FakeClock(start=0.0)
    fired: list[tuple[str, float]] = []
    clock.call_later(3.0, lambda: fired.append(("c", clock.now())))
    clock.call_later(1.0, lambda: fired.append(("a", clock.now())))
    clock.call_later(1.0, lambda: fired.append(("b", clock.now())))
    clock.call_later(-5.0, lambda: fired.append(("now", clock.now())))
    clock.advance(2.0)
    assert fired == [("now", 0.0), ("a", 1.0), ("b", 1.0)]
    assert clock.now() == 2.0
    assert clock.pending() == 1
    assert clock.next_deadline() == 3.0
    clock.advance(1.0)
    assert fired[-1] == ("c", 3.0)
    assert clock.next_deadline() is None


def test_timers_scheduled_by_callbacks_inside_the_window_fire_in_the_same_advance() -> None:
    clock = FakeClock(start=0.0)
    ticks: list[float] = []

    def tick() -> None:
        ticks.append(clock.now())
        if len(ticks) < 10:
            clock.call_later(1.0, tick)

    clock.call_later(1.0, tick)
    clock.advance(4.5)
    assert ticks == [1.0, 2.0, 3.0, 4.0]
    assert clock.now() == 4.5


def test_cancelled_fake_timers_never_fire() -> None:
    clock = FakeClock(start=0.0)
    fired: list[str] = []
    handle = clock.call_later(1.0, lambda: fired.append("x"))
    handle.cancel()
    assert clock.pending() == 0
    assert clock.next_deadline() is None
    clock.advance(5.0)
    assert fired == []


async def test_fake_sleep_returns_only_after_advance() -> None:
    clock = FakeClock(start=0.0)
    sleeper = asyncio.create_task(clock.sleep(2.0))
    await asyncio.sleep(0)
    clock.advance(1.9)
    await asyncio.sleep(0)
    assert not sleeper.done()
    clock.advance(0.1)
    await asyncio.wait_for(sleeper, 10)


async def test_cancelled_fake_sleep_leaves_no_timer() -> None:
    clock = FakeClock(start=0.0)
    sleeper = asyncio.create_task(clock.sleep(2.0))
    await asyncio.sleep(0)
    assert clock.pending() == 1
    sleeper.cancel()
    with pytest.raises(asyncio.CancelledError):
        await sleeper
    assert clock.pending() == 0


async def test_real_clock_is_monotonic_and_its_timers_and_sleep_run_on_the_loop() -> None:
    clock = RealClock()
    before = clock.now()
    fired = asyncio.Event()
    clock.call_later(0.0, fired.set)
    await asyncio.wait_for(fired.wait(), 10)
    await clock.sleep(-1.0)  # negative delays mean "now"
    assert clock.now() >= before
    handle = clock.call_later(1000.0, fired.clear)
    handle.cancel()
