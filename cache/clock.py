"""Injected time for the work queue, the rate limiters and leader election.

Every component that waits or measures time takes a :class:`Clock` instead of calling ``time`` or
``asyncio.sleep`` directly, so tests can drive time by hand with :class:`FakeClock` and never sleep for real.

Invariants:

* ``now()`` is monotonic seconds; it never goes backwards (wall-clock jumps do not affect it).
* ``call_later(delay, cb)`` runs ``cb`` once, no earlier than ``delay`` seconds of this clock's time from now,
  unless the returned handle is cancelled first. A delay of 0 or less means "as soon as possible".
* :class:`RealClock` reads ``time.monotonic`` and schedules on the running asyncio loop (``loop.call_later``),
  which uses the same monotonic source on the standard loop.
* :class:`FakeClock` only moves when ``advance`` is called; ``advance`` fires due timers in deadline order
  (ties in scheduling order), with ``now()`` equal to each timer's deadline while its callback runs, so a
  callback that schedules again relative to ``now()`` sees consistent time. Timers scheduled by callbacks
  that fall inside the advanced window fire in the same ``advance`` call.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Callable
from typing import Protocol

__all__ = ["Clock", "FakeClock", "RealClock", "TimerHandle"]


class TimerHandle(Protocol):
    """What ``call_later`` returns: something that can be cancelled (``asyncio.TimerHandle`` fits)."""

    def cancel(self) -> None: ...


class Clock(Protocol):
    """Monotonic time plus one-shot timers and an awaitable sleep on the same time base."""

    def now(self) -> float:
        """Monotonic seconds."""
        ...

    def call_later(self, delay: float, callback: Callable[[], None]) -> TimerHandle:
        """Run ``callback`` once after ``delay`` seconds of this clock's time."""
        ...

    async def sleep(self, delay: float) -> None:
        """Wait ``delay`` seconds of this clock's time (cancellable)."""
        ...


class RealClock:
    """The process's monotonic clock; timers run on the running asyncio loop."""

    __slots__ = ()

    def now(self) -> float:
        return time.monotonic()

    def call_later(self, delay: float, callback: Callable[[], None]) -> TimerHandle:
        return asyncio.get_running_loop().call_later(max(delay, 0.0), callback)

    async def sleep(self, delay: float) -> None:
        await asyncio.sleep(max(delay, 0.0))


class _FakeTimer:
    __slots__ = ("callback", "cancelled", "deadline", "seq")

    def __init__(self, deadline: float, seq: int, callback: Callable[[], None]) -> None:
        self.deadline = deadline
        self.seq = seq
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True

    def __lt__(self, other: _FakeTimer) -> bool:
        return (self.deadline, self.seq) < (other.deadline, other.seq)


class FakeClock:
    """A clock for tests: time stands still until :meth:`advance` moves it and fires the timers now due."""

    def __init__(self, start: float = 1000.0) -> None:
        self._now = start
        self._timers: list[_FakeTimer] = []
        self._seq = itertools.count()

    def now(self) -> float:
        return self._now

    def call_later(self, delay: float, callback: Callable[[], None]) -> TimerHandle:
        timer = _FakeTimer(self._now + max(delay, 0.0), next(self._seq), callback)
        heapq.heappush(self._timers, timer)
        return timer

    async def sleep(self, delay: float) -> None:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()

        def wake() -> None:
            if not fut.done():
                fut.set_result(None)

        handle = self.call_later(delay, wake)
        try:
            await fut
        finally:
            handle.cancel()

    def pending(self) -> int:
        """Timers scheduled and not yet fired or cancelled."""
        return sum(1 for t in self._timers if not t.cancelled)

    def next_deadline(self) -> float | None:
        """The earliest live timer's deadline, or ``None`` when nothing is scheduled."""
        while self._timers and self._timers[0].cancelled:
            heapq.heappop(self._timers)
        return self._timers[0].deadline if self._timers else None

    def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds`` (≥ 0), firing every timer due on the way, in deadline order."""
        if seconds < 0:
            raise ValueError("a monotonic clock cannot go backwards")
        target = self._now + seconds
        while self._timers and self._timers[0].deadline <= target:
            timer = heapq.heappop(self._timers)
            if timer.cancelled:
                continue
            self._now = max(self._now, timer.deadline)
            timer.cancelled = True
            timer.callback()
        self._now = target
