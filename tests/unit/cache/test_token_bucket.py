"""The client's token bucket: burst first, then one token per 1/qps, reserved without drift.

Time is a ``FakeClock`` injected into the bucket: ``acquire`` must not return before the clock reaches the
caller's slot, and every check is on what callers observe (who got through), never on the bucket's fields. The
loop only ever runs ready tasks (``asyncio.sleep(0)`` yields), never a timed sleep.
"""

from __future__ import annotations

import asyncio

import pytest

from cache.client import TokenBucket
from cache.clock import FakeClock


async def settle() -> None:
    """Let every ready task run until it blocks again."""
    for _ in range(5):
        await asyncio.sleep(0)


async def start(bucket: TokenBucket, n: int) -> list[asyncio.Task[None]]:
    """``n`` callers that arrive together, in order; returns once each has reserved its slot."""
    tasks = [asyncio.create_task(bucket.acquire()) for _ in range(n)]
    await settle()
    return tasks


def through(tasks: list[asyncio.Task[None]]) -> int:
    return sum(t.done() for t in tasks)


async def test_burst_goes_at_once_then_one_caller_per_interval() -> None:
    clock = FakeClock()
    bucket = TokenBucket(qps=10, burst=3, clock=clock)
    callers = await start(bucket, 6)
    assert through(callers) == 3  # the burst
    for expected in (4, 5, 6):
        clock.advance(0.099)
        await settle()
        assert through(callers) == expected - 1, "a caller got through before its slot"
        clock.advance(0.001)
        await settle()
        assert through(callers) == expected
    assert clock.pending() == 0


async def test_a_caller_after_the_burst_waits_for_a_refill() -> None:
    clock = FakeClock()
    bucket = TokenBucket(qps=50, burst=5, clock=clock)
    await asyncio.gather(*(bucket.acquire() for _ in range(5)))
    assert clock.pending() == 0  # the burst never waited
    (late,) = await start(bucket, 1)
    assert not late.done()
    clock.advance(0.019)
    await settle()
    assert not late.done()
    clock.advance(0.001)  # 1/50 s after the burst
    await settle()
    assert late.done()


async def test_refill_is_capped_at_burst() -> None:
    clock = FakeClock()
    bucket = TokenBucket(qps=10, burst=2, clock=clock)
    await asyncio.gather(bucket.acquire(), bucket.acquire())
    clock.advance(60)  # a long idle time refills only up to the burst
    callers = await start(bucket, 3)
    assert through(callers) == 2
    clock.advance(0.1)
    await settle()
    assert through(callers) == 3


async def test_debt_is_paid_back_by_elapsed_time() -> None:
    clock = FakeClock()
    bucket = TokenBucket(qps=100, burst=1, clock=clock)
    first, second = await start(bucket, 2)
    assert (first.done(), second.done()) == (True, False)
    clock.advance(0.03)  # the reserved slot has passed, and then some
    await settle()
    assert second.done()
    (third,) = await start(bucket, 1)
    assert third.done()  # 0.02 s of surplus refilled the (burst-1) bucket


async def test_reservations_do_not_drift_when_callers_wake_late() -> None:
    # Slots are fixed when callers arrive: waking late (timer slack) does not push later callers further back.
    clock = FakeClock()
    bucket = TokenBucket(qps=10, burst=1, clock=clock)
    callers = await start(bucket, 4)
    assert through(callers) == 1
    clock.advance(0.25)  # one wake-up, late for slot 0.1 and on time for 0.2
    await settle()
    assert through(callers) == 3
    clock.advance(0.05)
    await settle()
    assert through(callers) == 4


async def test_a_cancelled_caller_gives_way() -> None:
    clock = FakeClock()
    bucket = TokenBucket(qps=10, burst=1, clock=clock)
    _, waiting = await start(bucket, 2)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert clock.pending() == 0  # its timer went with it


async def test_unlimited_when_qps_is_zero() -> None:
    clock = FakeClock()
    bucket = TokenBucket(qps=0, burst=1, clock=clock)
    callers = await start(bucket, 1000)
    assert through(callers) == 1000
    assert clock.pending() == 0  # nobody waited on the clock


def test_reserve_reports_each_callers_wait() -> None:
    clock = FakeClock()
    bucket = TokenBucket(qps=10, burst=3, clock=clock)
    assert [bucket.reserve() for _ in range(3)] == [0.0, 0.0, 0.0]
    # Callers arriving together queue up: each waits one more 1/qps than the one before.
    assert [round(bucket.reserve(), 6) for _ in range(3)] == [0.1, 0.2, 0.3]
