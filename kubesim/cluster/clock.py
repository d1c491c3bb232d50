"""Clocks for the simulated cluster: wall time plus timers driven by the event loop.

Every in-cluster component (Job controller, scheduler, kubelet) reads time and arms timers only through a
``Clock``, so tests can swap in ``FakeClock`` and move time forward at once instead of sleeping.

Invariants:
- ``now()`` is seconds since the Unix epoch (float) and never goes backwards.
- A timer callback runs on the event loop thread, at most once, never after ``cancel()``; callbacks are
  plain functions that only schedule work (enqueue a key), never block.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Callable
from typing import Protocol


class Timer(Protocol):
    """A handle on an armed timer."""

    def cancel(self) -> None: ...


class Clock(Protocol):
    """Time source and timer factory used by every simulated component."""

    def now(self) -> float: ...

    def call_at(self, when: float, callback: Callable[[], None]) -> Timer: ...


class RealClock:
    """Wall-clock time; timers ride on the running loop's monotonic clock."""

    def now(self) -> float:
        return time.time()

    def call_at(self, when: float, callback: Callable[[], None]) -> Timer:
        loop = asyncio.get_running_loop()
        return loop.call_later(max(0.0, when - time.time()), callback)


class _FakeTimer:
    __slots__ = ("callback", "cancelled", "when")

    def __init__(self, when: float, callback: Callable[[], None]) -> None:
        self.when = when
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class FakeClock:
    """Manually driven time for tests: ``advance(seconds)`` fires due timers in time order."""

    def __init__(self, start: float = 1_767_225_600.0) -> None:
        self._now = start
        self._heap: list[tuple[float, int, _FakeTimer]] = []
        self._seq = itertools.count()

    def now(self) -> float:
        return self._now

    def call_at(self, when: float, callback: Callable[[], None]) -> Timer:
        timer = _FakeTimer(when, callback)
        heapq.heappush(self._heap, (when, next(self._seq), timer))
        return timer

    def advance(self, seconds: float) -> None:
        """Move time forward, firing every timer that falls due on the way (in order)."""
        target = self._now + seconds
        while self._heap and self._heap[0][0] <= target:
            when, _, timer = heapq.heappop(self._heap)
            self._now = max(self._now, when)
            if not timer.cancelled:
                timer.callback()
        self._now = target

    def pending(self) -> int:
        """Number of armed, uncancelled timers (for tests)."""
        return sum(1 for _, _, t in self._heap if not t.cancelled)

    def next_deadline(self) -> float | None:
        live = [w for w, _, t in self._heap if not t.cancelled]
        return min(live) if live else None
