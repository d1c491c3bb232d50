"""A small deduplicating work queue for the simulated controllers (client-go ``workqueue`` semantics).

Guarantees: fair (FIFO over distinct keys), stingy (a key added many times before it is processed is processed
once), one worker per key (a key re-added while being processed is queued again only after ``done``).
Delayed adds ride on the injected ``Clock``; ``add_rate_limited`` backs off per key exponentially
(``base`` doubling up to ``cap``) until ``forget``.

Invariant: ``get`` never returns a key that is currently being processed.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

from kubesim.cluster.clock import Clock, Timer
from kubesim.util.errors import ApiError

K = TypeVar("K", bound=Hashable)


class WorkQueue(Generic[K]):
    def __init__(self, clock: Clock, *, base_delay: float = 0.005, max_delay: float = 1000.0) -> None:
        self._clock = clock
        self._queue: deque[K] = deque()
        self._dirty: set[K] = set()
        self._processing: set[K] = set()
        self._waiting: dict[K, tuple[float, Timer]] = {}
        self._failures: dict[K, int] = {}
        self._base = base_delay
        self._max = max_delay
        self._wakeup = asyncio.Event()
        self._shutdown = False

    def __len__(self) -> int:
        return len(self._queue)

    def add(self, key: K) -> None:
        if self._shutdown or key in self._dirty:
            return
        self._dirty.add(key)
        if key not in self._processing:
            self._queue.append(key)
            self._wakeup.set()

    def add_after(self, key: K, delay: float) -> None:
        if delay <= 0:
            self.add(key)
            return
        when = self._clock.now() + delay
        current = self._waiting.get(key)
        if current is not None:
            if current[0] <= when:
                return
            current[1].cancel()

        def fire() -> None:
            self._waiting.pop(key, None)
            self.add(key)

        self._waiting[key] = (when, self._clock.call_at(when, fire))

    def add_rate_limited(self, key: K) -> None:
        n = self._failures.get(key, 0)
        self._failures[key] = n + 1
        self.add_after(key, min(self._max, self._base * (2**n)))

    def forget(self, key: K) -> None:
        self._failures.pop(key, None)

    def num_requeues(self, key: K) -> int:
        return self._failures.get(key, 0)

    async def get(self) -> K | None:
        """Next key to process, or ``None`` once shut down."""
        while not self._queue:
            if self._shutdown:
                return None
            self._wakeup.clear()
            await self._wakeup.wait()
        key = self._queue.popleft()
        self._processing.add(key)
        self._dirty.discard(key)
        return key

    def done(self, key: K) -> None:
        self._processing.discard(key)
        if key in self._dirty:
            self._queue.append(key)
            self._wakeup.set()

    def idle(self) -> bool:
        """True when nothing is queued or being processed (delayed keys do not count)."""
        return not self._queue and not self._processing

    def shutdown(self) -> None:
        self._shutdown = True
        for _, timer in self._waiting.values():
            timer.cancel()
        self._waiting.clear()
        self._wakeup.set()


async def run_worker(
    queue: WorkQueue[K],
    sync: Callable[[K], Awaitable[None]],
    what: str,
    log: logging.Logger,
    *,
    forget: bool = True,
) -> None:
    """One worker: sync keys from ``queue`` until it shuts down. A failed sync (an API error) is retried
    rate-limited; a bug with one key is logged and retried too, and never stops the worker. ``forget``: a
    success resets the key's backoff."""
    while True:
        key = await queue.get()
        if key is None:
            return
        try:
            await sync(key)
        except ApiError:
            queue.add_rate_limited(key)
        except Exception:  # a bug with one key must not stop the component
            log.exception("%s sync failed", what, extra={"key": key})
            queue.add_rate_limited(key)
        else:
            if forget:
                queue.forget(key)
        finally:
            queue.done(key)
