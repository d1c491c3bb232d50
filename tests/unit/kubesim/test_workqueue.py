"""The simulated controllers' work queue and fake clock (``kubesim.cluster.workqueue``, ``clock``)."""

from __future__ import annotations

import asyncio

from kubesim.cluster.clock import FakeClock
from kubesim.cluster.timing import wait_until
from kubesim.cluster.workqueue import WorkQueue
from kubesim.util.timefmt import parse_rfc3339, rfc3339


async def test_queue_is_stingy_fair_and_one_worker_per_key() -> None:
    q: WorkQueue[str] = WorkQueue(FakeClock())
    for key in ("a", "b", "a", "c", "b"):
        q.add(key)
    assert len(q) == 3
    first = await q.get()
    assert first == "a"
    q.add("a")  # re-added while processing: not handed out again until done
    assert [await q.get(), await q.get()] == ["b", "c"]
    assert len(q) == 0
    q.done("a")
    assert await q.get() == "a"


async def test_delayed_and_rate_limited_adds_follow_the_clock() -> None:
    clock = FakeClock()
    q: WorkQueue[str] = WorkQueue(clock, base_delay=1.0, max_delay=4.0)
    q.add_after("later", 5)
    q.add_after("later", 10)  # a later deadline for a waiting key is ignored
    clock.advance(4.9)
    assert len(q) == 0
    clock.advance(0.1)
    assert len(q) == 1
    assert await q.get() == "later"
    q.done("later")
    delays = []
    for _ in range(4):
        before = clock.now()
        q.add_rate_limited("flaky")
        while not len(q):
            clock.advance(0.5)
        delays.append(clock.now() - before)
        assert await q.get() == "flaky"
        q.done("flaky")
    assert delays == [1.0, 2.0, 4.0, 4.0]
    q.forget("flaky")
    assert q.num_requeues("flaky") == 0


async def test_shutdown_wakes_getters() -> None:
    q: WorkQueue[str] = WorkQueue(FakeClock())
    getter = asyncio.create_task(q.get())
    await asyncio.sleep(0)
    q.shutdown()
    assert await getter is None


async def test_wait_until_fake_time() -> None:
    clock = FakeClock()
    waiter = asyncio.create_task(wait_until(clock, clock.now() + 3))
    await asyncio.sleep(0)
    assert not waiter.done()
    clock.advance(3)
    await waiter
    assert clock.pending() == 0


def test_timestamps_round_trip() -> None:
    assert parse_rfc3339(rfc3339(1_800_000_000.7)) == 1_800_000_000.0
    assert parse_rfc3339("garbage") is None
    assert parse_rfc3339(None) is None
