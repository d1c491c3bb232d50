"""Work-queue behaviour, case by case: FIFO, dedup, one worker per key, delays, rate limits, shutdown, metrics.

Time is a ``FakeClock`` everywhere except one test of the real clock's timer path; "the loop ran" is a few
``asyncio.sleep(0)`` yields, never a timed sleep.
"""

from __future__ import annotations

import asyncio
from collections.abc import Hashable

import pytest

from cache.clock import FakeClock, RealClock
from cache.queue import QueueShutDown, WorkQueue
from cache.ratelimit import ItemExponentialLimiter


async def settle() -> None:
    """Let every ready task run until it blocks again."""
    for _ in range(5):
        await asyncio.sleep(0)


def make(clock: FakeClock | None = None, **kw: object) -> WorkQueue[str]:
    return WorkQueue(clock=clock or FakeClock(), **kw)  # type: ignore[arg-type]


async def drain(q: WorkQueue[str], *, done: bool = True) -> list[str]:
    out: list[str] = []
    while len(q):
        if len(out) > 1000:
            raise AssertionError("the queue keeps handing items out")
        item = await q.get()
        out.append(item)
        if done:
            q.done(item)
    return out


# --- fair and stingy ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("adds", "expected"),
    [
        pytest.param("", [], id="empty"),
        pytest.param("abc", ["a", "b", "c"], id="fifo"),
        pytest.param("aaa", ["a"], id="dedup-one-key"),
        pytest.param("abab", ["a", "b"], id="dedup-keeps-first-position"),
        pytest.param("cbacba", ["c", "b", "a"], id="dedup-order-of-first-add"),
    ],
)
async def test_items_come_out_once_in_order_of_first_add(adds: str, expected: list[str]) -> None:
    q = make()
    for item in adds:
        q.add(item)
    assert len(q) == len(expected)
    assert await drain(q) == expected
    assert len(q) == 0


async def test_non_string_hashable_items() -> None:
    q: WorkQueue[tuple[str, int]] = WorkQueue(clock=FakeClock())
    q.add(("ns", 1))
    q.add(("ns", 1))
    q.add(("ns", 2))
    assert [await q.get(), await q.get()] == [("ns", 1), ("ns", 2)]


# --- one worker per key ------------------------------------------------------------------------------------


async def test_item_readded_while_processing_is_held_until_done() -> None:
    q = make()
    q.add("a")
    assert await q.get() == "a"
    q.add("a")
    q.add("a")
    assert len(q) == 0, "a key being processed must not be handed to a second worker"
    assert q.processing() == 1
    q.done("a")
    assert len(q) == 1
    assert await q.get() == "a"
    q.done("a")
    assert len(q) == 0
    assert q.processing() == 0


async def test_item_not_readded_while_processing_is_not_requeued_by_done() -> None:
    q = make()
    q.add("a")
    await q.get()
    q.done("a")
    assert len(q) == 0


async def test_readded_item_goes_to_the_back_after_done() -> None:
    q = make()
    q.add("a")
    await q.get()
    q.add("a")
    q.add("b")
    q.done("a")
    assert await drain(q) == ["b", "a"]


@pytest.mark.parametrize("state", ["unknown", "queued", "already-done"])
async def test_done_for_an_item_not_in_processing_changes_nothing(state: str) -> None:
    q = make()
    if state == "queued":
        q.add("a")
    elif state == "already-done":
        q.add("a")
        await q.get()
        q.done("a")
    before = len(q)
    q.done("a")
    assert len(q) == before
    assert await drain(q) == (["a"] if state == "queued" else [])


async def test_two_workers_never_hold_the_same_key() -> None:
    q = make()
    seen_together: list[str] = []
    holding: set[str] = set()

    async def worker() -> None:
        while True:
            try:
                item = await q.get()
            except QueueShutDown:
                return
            if item in holding:
                seen_together.append(item)
            holding.add(item)
            await asyncio.sleep(0)
            q.add(item)  # an event arrives for the key while it is being reconciled
            await asyncio.sleep(0)
            holding.discard(item)
            q.done(item)

    tasks = [asyncio.create_task(worker()) for _ in range(3)]
    for round_ in range(20):
        q.add(f"k{round_ % 2}")
        await settle()
    q.shut_down()
    await asyncio.gather(*tasks)
    assert seen_together == []


# --- waiting getters ---------------------------------------------------------------------------------------


async def test_get_waits_for_an_add() -> None:
    q = make()
    getter = asyncio.create_task(q.get())
    await settle()
    assert not getter.done()
    q.add("a")
    assert await getter == "a"


async def test_waiting_getters_are_served_in_arrival_order() -> None:
    q = make()
    first = asyncio.create_task(q.get())
    await settle()
    second = asyncio.create_task(q.get())
    await settle()
    q.add("x")
    q.add("y")
    assert await first == "x"
    assert await second == "y"


async def test_cancelled_getter_passes_its_wakeup_on() -> None:
    q = make()
    first = asyncio.create_task(q.get())
    second = asyncio.create_task(q.get())
    await settle()
    q.add("a")  # wakes `first`
    first.cancel()  # ...which is cancelled before it takes the item
    await settle()
    assert first.cancelled()
    assert second.done()
    assert second.result() == "a"


async def test_cancelled_getter_that_was_not_woken_leaves_the_queue_consistent() -> None:
    q = make()
    getter = asyncio.create_task(q.get())
    await settle()
    getter.cancel()
    await settle()
    q.add("a")
    assert len(q) == 1
    assert await q.get() == "a"


# --- delays --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("delay", [0.0, -1.0, -1e-9])
async def test_add_after_without_positive_delay_adds_now(delay: float) -> None:
    q = make()
    q.add_after("a", delay)
    assert len(q) == 1
    assert q.delayed() == 0


@pytest.mark.parametrize(
    ("delays", "fires_at"),
    [
        pytest.param([5.0], 5.0, id="single"),
        pytest.param([5.0, 2.0], 2.0, id="earlier-deadline-wins"),
        pytest.param([2.0, 5.0], 2.0, id="later-deadline-ignored"),
        pytest.param([5.0, 2.0, 10.0, 3.0], 2.0, id="earliest-of-many"),
        pytest.param([4.0, 4.0], 4.0, id="same-deadline"),
    ],
)
async def test_add_after_fires_once_at_the_earliest_deadline(delays: list[float], fires_at: float) -> None:
    clock = FakeClock()
    q = make(clock)
    for d in delays:
        q.add_after("a", d)
    assert q.delayed() == 1
    clock.advance(fires_at - 0.001)
    assert len(q) == 0
    clock.advance(0.001)
    assert len(q) == 1
    assert q.delayed() == 0
    clock.advance(100.0)
    assert len(q) == 1, "superseded deadlines must not add the item again"
    assert await drain(q) == ["a"]
    clock.advance(100.0)
    assert len(q) == 0


async def test_add_after_measures_deadlines_from_the_time_of_each_call() -> None:
    clock = FakeClock()
    q = make(clock)
    q.add_after("a", 5.0)  # deadline t+5
    clock.advance(4.0)
    q.add_after("a", 2.0)  # deadline t+6: later, ignored
    clock.advance(1.0)
    assert len(q) == 1


async def test_delayed_items_fire_in_deadline_order() -> None:
    clock = FakeClock()
    q = make(clock)
    q.add_after("late", 3.0)
    q.add_after("early", 1.0)
    q.add_after("middle", 2.0)
    clock.advance(10.0)
    assert await drain(q) == ["early", "middle", "late"]


async def test_delayed_item_already_queued_is_deduplicated() -> None:
    clock = FakeClock()
    q = make(clock)
    q.add("a")
    q.add_after("a", 1.0)
    clock.advance(1.0)
    assert await drain(q) == ["a"]


async def test_delayed_item_firing_while_processing_waits_for_done() -> None:
    clock = FakeClock()
    q = make(clock)
    q.add("a")
    await q.get()
    q.add_after("a", 1.0)
    clock.advance(1.0)
    assert len(q) == 0
    q.done("a")
    assert len(q) == 1


async def test_add_after_wakes_a_waiting_getter_when_due() -> None:
    clock = FakeClock()
    q = make(clock)
    getter = asyncio.create_task(q.get())
    q.add_after("a", 1.0)
    await settle()
    assert not getter.done()
    clock.advance(1.0)
    assert await getter == "a"


async def test_real_clock_delays_run_on_the_loop() -> None:
    q: WorkQueue[str] = WorkQueue(clock=RealClock())
    q.add_after("a", 0.001)
    assert len(q) == 0
    assert await asyncio.wait_for(q.get(), 10) == "a"
    q.shut_down()


# --- rate limiting -----------------------------------------------------------------------------------------


async def test_add_rate_limited_backs_off_per_item_and_forget_resets() -> None:
    clock = FakeClock()
    q = make(clock, rate_limiter=ItemExponentialLimiter(base=1.0, cap=100.0))
    expected_delays = [1.0, 2.0, 4.0, 8.0]
    for n, delay in enumerate(expected_delays):
        assert q.num_requeues("a") == n
        q.add_rate_limited("a")
        clock.advance(delay - 0.01)
        assert len(q) == 0, f"retry {n} came before {delay}s"
        clock.advance(0.01)
        assert await drain(q) == ["a"]
    q.forget("a")
    assert q.num_requeues("a") == 0
    q.add_rate_limited("a")
    clock.advance(1.0)
    assert len(q) == 1


async def test_default_limiter_is_the_controller_one() -> None:
    clock = FakeClock()
    q = make(clock)
    q.add_rate_limited("a")
    assert q.num_requeues("a") == 1
    clock.advance(0.005)
    assert len(q) == 1
    await drain(q)
    q.add_rate_limited("a")
    clock.advance(0.0099)
    assert len(q) == 0
    clock.advance(0.0001)
    assert len(q) == 1


# --- shutdown ----------------------------------------------------------------------------------------------


async def test_shut_down_wakes_waiting_getters_with_queue_shut_down() -> None:
    q = make()
    getters = [asyncio.create_task(q.get()) for _ in range(3)]
    await settle()
    q.shut_down()
    results = await asyncio.gather(*getters, return_exceptions=True)
    assert all(isinstance(r, QueueShutDown) for r in results)


async def test_after_shut_down_get_raises_even_with_items_and_adds_are_ignored() -> None:
    clock = FakeClock()
    q = make(clock)
    q.add("queued")
    q.add_after("delayed", 1.0)
    q.shut_down()
    q.shut_down()  # idempotent
    assert q.shutting_down
    with pytest.raises(QueueShutDown):
        await q.get()
    q.add("x")
    q.add_after("y", 0.0)
    q.add_rate_limited("z")
    clock.advance(10.0)
    assert len(q) == 0
    assert q.delayed() == 0
    with pytest.raises(QueueShutDown):
        await q.get()


async def test_done_after_shut_down_releases_wait_idle() -> None:
    q = make()
    q.add("a")
    q.add("b")
    a = await q.get()
    b = await q.get()
    q.shut_down()
    idle = asyncio.create_task(q.wait_idle())
    await settle()
    q.done(a)
    await settle()
    assert not idle.done()
    q.done(b)
    await asyncio.wait_for(idle, 10)
    await q.wait_idle()  # already idle: returns at once


# --- metrics -----------------------------------------------------------------------------------------------


class RecordingMetrics:
    def __init__(self) -> None:
        self.depths: list[int] = []
        self.adds = 0
        self.queue_durations: list[float] = []
        self.work_durations: list[float] = []
        self.retries = 0
        self.unfinished: list[tuple[float, float]] = []

    def depth(self, value: int) -> None:
        self.depths.append(value)

    def added(self) -> None:
        self.adds += 1

    def queue_duration(self, seconds: float) -> None:
        self.queue_durations.append(seconds)

    def work_duration(self, seconds: float) -> None:
        self.work_durations.append(seconds)

    def retried(self) -> None:
        self.retries += 1

    def unfinished_work(self, total_seconds: float, longest_seconds: float) -> None:
        self.unfinished.append((total_seconds, longest_seconds))


async def test_metrics_hooks_see_depth_adds_durations_retries_and_unfinished_work() -> None:
    clock = FakeClock()
    m = RecordingMetrics()
    q: WorkQueue[str] = WorkQueue(clock=clock, metrics=m, rate_limiter=ItemExponentialLimiter(1.0, 10.0))
    q.add("a")
    q.add("a")  # deduplicated: not counted
    q.add("b")
    assert m.adds == 2
    assert m.depths == [1, 2]
    clock.advance(3.0)
    a = await q.get()
    assert m.queue_durations == [3.0]
    assert m.depths[-1] == 1
    clock.advance(2.0)
    b = await q.get()
    assert m.queue_durations == [3.0, 5.0]
    clock.advance(1.0)
    q.report_unfinished()
    assert m.unfinished == [(3.0 + 1.0, 3.0)]
    q.done(a)
    q.done(b)
    assert m.work_durations == [3.0, 1.0]
    q.add_rate_limited("a")
    assert m.retries == 1
    q.report_unfinished()
    assert m.unfinished[-1] == (0.0, 0.0)


async def test_queue_without_metrics_reports_nothing() -> None:
    q = make()
    q.report_unfinished()  # no metrics attached: a no-op, must not fail
    q.add("a")
    assert q.name == ""


def test_queue_is_generic_over_hashables() -> None:
    q: WorkQueue[Hashable] = WorkQueue(name="x")
    assert q.name == "x"
    assert len(q) == 0
