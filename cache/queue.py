"""The work queue between event handlers and reconcile workers, with client-go's guarantees.

Event handlers ``add`` keys (JobSet ``"namespace/name"`` strings); workers loop ``item = await get()``,
reconcile, then ``done(item)``. Pure asyncio, no threads, no locks: every method except ``get`` is
synchronous and runs to completion on the loop.

Invariants (client-go ``util/workqueue`` semantics):

* **Fair**: items are handed out in the order they were first added (FIFO); getters are served FIFO too.
* **Stingy**: an item added any number of times before a worker takes it is handed out once
  (``dirty`` holds every item waiting to be processed; an item is in the FIFO at most once).
* **One worker per key**: an item that is being processed (between ``get`` and ``done``) is never handed
  out again; if it is re-added meanwhile it is marked dirty and queued again only by ``done``.
* **Delays**: ``add_after(item, d)`` with ``d <= 0`` is ``add``; otherwise the item is added when the clock
  reaches its deadline. An item waits under one deadline only: a later ``add_after`` with an earlier deadline
  replaces it, one with a later deadline is ignored. ``add_rate_limited`` is ``add_after(item,
  limiter.when(item))``; ``forget`` and ``num_requeues`` go to the limiter.
* **Shut down**: after ``shut_down()`` adds are ignored, delayed items are dropped, and every pending or
  future ``get`` raises :class:`QueueShutDown` at once (unlike client-go, queued items are not drained: the
  controller stops work immediately, e.g. on losing the lease, and a new leader re-lists everything).
  ``done`` keeps working so in-flight workers can finish; ``wait_idle`` waits for them.
* **Coalescing** (ours, not client-go's): ``add_coalesced(item)`` is for events that do not change what the
  reconcile decides (e.g. a pod's IP or readiness when only its restart attempt is read). It is ``add`` when the
  item was last handed out at least ``coalesce_window`` seconds ago (or never); otherwise the item is added when
  that window ends, so such events cost at most one reconcile per window per item, however many arrive. A plain
  ``add`` is never delayed, and handing the item out drops its pending coalesced add (the reconcile reads the
  latest state anyway). ``coalesce_window=0`` makes ``add_coalesced`` exactly ``add``.
* ``len(queue)`` counts items ready to be handed out — not the ones being processed, not the delayed ones.

Cost: ``add``/``get``/``done`` are O(1) (a set and a deque); ``add_after`` is O(log n) on a heap with lazy
deletion of superseded deadlines; one clock timer is armed, for the earliest deadline.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections import deque
from collections.abc import Hashable
from typing import Generic, Protocol, TypeVar

from cache.clock import Clock, RealClock, TimerHandle
from cache.ratelimit import RateLimiter, default_controller_limiter

__all__ = ["QueueMetrics", "QueueShutDown", "WorkQueue"]

T = TypeVar("T", bound=Hashable)


class QueueShutDown(Exception):
    """Raised by ``WorkQueue.get`` once the queue is shut down."""


class QueueMetrics(Protocol):
    """Hooks a metrics backend implements (client-go's workqueue metrics); the queue calls them inline.

    All durations are in seconds of the queue's clock. Implementations must be cheap and must not raise.
    """

    def depth(self, value: int) -> None:
        """Items ready to be handed out changed to ``value``."""
        ...

    def added(self) -> None:
        """An item was newly marked dirty (deduplicated adds are not counted)."""
        ...

    def queue_duration(self, seconds: float) -> None:
        """An item was handed out ``seconds`` after it was first added."""
        ...

    def work_duration(self, seconds: float) -> None:
        """A worker called ``done`` ``seconds`` after ``get`` handed it the item."""
        ...

    def retried(self) -> None:
        """``add_rate_limited`` was called."""
        ...

    def unfinished_work(self, total_seconds: float, longest_seconds: float) -> None:
        """Sum of the running times of items in processing, and the longest one (see ``report_unfinished``)."""
        ...


class WorkQueue(Generic[T]):
    """A fair, stingy, one-worker-per-key asyncio work queue with delayed and rate-limited adds."""

    __slots__ = (
        "_add_times",
        "_clock",
        "_coalesce_window",
        "_coalesced",
        "_delay_seq",
        "_delayed",
        "_dirty",
        "_heap",
        "_idle_waiters",
        "_last_start",
        "_limiter",
        "_metrics",
        "_name",
        "_processing",
        "_queue",
        "_shutting_down",
        "_start_times",
        "_timer",
        "_timer_deadline",
        "_waiters",
    )

    def __init__(
        self,
        *,
        name: str = "",
        rate_limiter: RateLimiter[T] | None = None,
        clock: Clock | None = None,
        metrics: QueueMetrics | None = None,
        coalesce_window: float = 0.0,
    ) -> None:
        if coalesce_window < 0:
            raise ValueError(f"coalesce_window must be >= 0 seconds, got {coalesce_window}")
        self._name = name
        self._coalesce_window = coalesce_window
        # Coalescing: when each item was last handed out (in hand-out order, those older than the window dropped
        # as hand-outs go), and the items whose pending delayed add came from add_coalesced (dropped when the item
        # is handed out).
        self._last_start: dict[T, float] = {}
        self._coalesced: set[T] = set()
        self._clock: Clock = clock if clock is not None else RealClock()
        self._limiter: RateLimiter[T] = (
            rate_limiter if rate_limiter is not None else default_controller_limiter(clock=self._clock)
        )
        self._metrics = metrics
        self._queue: deque[T] = deque()
        self._dirty: set[T] = set()
        self._processing: set[T] = set()
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._idle_waiters: list[asyncio.Future[None]] = []
        self._shutting_down = False
        # Delayed items: item -> (deadline, seq) is authoritative; heap entries whose seq no longer matches
        # were superseded by an earlier deadline and are skipped when popped.
        self._delayed: dict[T, tuple[float, int]] = {}
        self._heap: list[tuple[float, int, T]] = []
        self._delay_seq = itertools.count()
        self._timer: TimerHandle | None = None
        self._timer_deadline = 0.0
        # Only kept when metrics are attached, so the plain path pays nothing for them.
        self._add_times: dict[T, float] = {}
        self._start_times: dict[T, float] = {}

    @property
    def name(self) -> str:
        return self._name

    @property
    def shutting_down(self) -> bool:
        return self._shutting_down

    def __len__(self) -> int:
        return len(self._queue)

    def processing(self) -> int:
        """Items handed out and not yet ``done``."""
        return len(self._processing)

    def delayed(self) -> int:
        """Items waiting for an ``add_after`` deadline."""
        return len(self._delayed)

    # --- adding -------------------------------------------------------------------------------------------

    def add(self, item: T) -> None:
        if self._shutting_down or item in self._dirty:
            return
        self._dirty.add(item)
        metrics = self._metrics
        if metrics is not None:
            metrics.added()
            self._add_times.setdefault(item, self._clock.now())
        if item in self._processing:
            return
        self._queue.append(item)
        if metrics is not None:
            metrics.depth(len(self._queue))
        waiters = self._waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                break

    def add_after(self, item: T, delay: float) -> None:
        if self._shutting_down:
            return
        if delay <= 0:
            self.add(item)
            return
        deadline = self._clock.now() + delay
        current = self._delayed.get(item)
        if current is not None and current[0] <= deadline:
            return
        seq = next(self._delay_seq)
        self._delayed[item] = (deadline, seq)
        self._coalesced.discard(item)  # add_coalesced marks its own deadline after this
        heapq.heappush(self._heap, (deadline, seq, item))
        if self._timer is None or deadline < self._timer_deadline:
            self._arm(deadline)

    def add_coalesced(self, item: T) -> None:
        """``add``, or — when ``item`` was handed out less than ``coalesce_window`` ago — ``add`` once that
        window has passed (see the module docstring)."""
        window = self._coalesce_window
        if self._shutting_down or item in self._dirty:
            return
        if window <= 0:
            self.add(item)
            return
        now = self._clock.now()
        last = self._last_start.get(item)
        if last is None:
            if item not in self._processing:
                self.add(item)  # not handed out within the window (or ever): at once
                return
            last = now  # being processed since before we tracked it: count the window from now
        wait = last + window - now
        if wait <= 0:
            self.add(item)
            return
        current = self._delayed.get(item)
        if current is not None and current[0] <= now + wait:
            return  # already due by then (coalesced or not)
        self.add_after(item, wait)
        self._coalesced.add(item)

    def _note_start(self, item: T) -> None:
        """Remember when ``item`` was handed out; start times older than the window are forgotten now and then
        (they no longer delay anything), so the map holds about the items handed out within one window."""
        now = self._clock.now()
        starts = self._last_start
        starts.pop(item, None)  # re-inserted last: the map stays in hand-out order
        starts[item] = now
        horizon = now - self._coalesce_window
        for key in list(itertools.islice(starts, 2)):  # the oldest first: amortised O(1) per hand-out
            if starts[key] > horizon:
                break
            del starts[key]

    def add_rate_limited(self, item: T) -> None:
        if self._shutting_down:
            return
        if self._metrics is not None:
            self._metrics.retried()
        self.add_after(item, self._limiter.when(item))

    def forget(self, item: T) -> None:
        self._limiter.forget(item)

    def num_requeues(self, item: T) -> int:
        return self._limiter.num_requeues(item)

    # --- delayed items ------------------------------------------------------------------------------------

    def _arm(self, deadline: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer_deadline = deadline
        self._timer = self._clock.call_later(deadline - self._clock.now(), self._fire)

    def _fire(self) -> None:
        self._timer = None
        if self._shutting_down:
            return
        now = self._clock.now()
        heap = self._heap
        delayed = self._delayed
        while heap and heap[0][0] <= now:
            _, seq, item = heapq.heappop(heap)
            current = delayed.get(item)
            if current is None or current[1] != seq:
                continue  # superseded by an earlier deadline, already fired
            del delayed[item]
            self._coalesced.discard(item)
            self.add(item)
        # Drop superseded entries at the top so the timer is armed for a live deadline.
        while heap and delayed.get(heap[0][2], (0.0, -1))[1] != heap[0][1]:
            heapq.heappop(heap)
        if heap:
            self._arm(heap[0][0])

    # --- taking -------------------------------------------------------------------------------------------

    async def get(self) -> T:
        """The next item, waiting while none is ready; raises :class:`QueueShutDown` once shut down."""
        queue = self._queue
        while not queue or self._shutting_down:
            if self._shutting_down:
                raise QueueShutDown(self._name)
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            except BaseException:
                waiter.cancel()
                # We may have been woken for an item we will not take: pass the wake-up on.
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
                elif queue and not self._shutting_down:
                    self._wake_one()
                raise
        item = queue.popleft()
        self._processing.add(item)
        self._dirty.discard(item)
        if self._coalesce_window > 0:
            if self._coalesced and item in self._coalesced:
                self._coalesced.discard(item)
                self._delayed.pop(item, None)  # its heap entry is skipped when popped
            self._note_start(item)
        metrics = self._metrics
        if metrics is not None:
            now = self._clock.now()
            metrics.depth(len(queue))
            added_at = self._add_times.pop(item, None)
            if added_at is not None:
                metrics.queue_duration(now - added_at)
            self._start_times[item] = now
        return item

    def _wake_one(self) -> None:
        waiters = self._waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def done(self, item: T) -> None:
        """Mark ``item`` processed; if it was re-added meanwhile, queue it again now."""
        processing = self._processing
        if item not in processing:
            return
        processing.discard(item)
        metrics = self._metrics
        if metrics is not None:
            started = self._start_times.pop(item, None)
            if started is not None:
                metrics.work_duration(self._clock.now() - started)
        if item in self._dirty and not self._shutting_down:
            self._queue.append(item)
            if metrics is not None:
                metrics.depth(len(self._queue))
            self._wake_one()
        if not processing and self._idle_waiters:
            for waiter in self._idle_waiters:
                if not waiter.done():
                    waiter.set_result(None)
            self._idle_waiters.clear()

    # --- shutting down ------------------------------------------------------------------------------------

    def shut_down(self) -> None:
        """Stop handing out work: pending and later ``get`` calls raise, adds are ignored, delays dropped."""
        if self._shutting_down:
            return
        self._shutting_down = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._delayed.clear()
        self._coalesced.clear()
        self._last_start.clear()
        self._heap.clear()
        self._queue.clear()
        self._dirty.clear()
        self._add_times.clear()
        waiters, self._waiters = self._waiters, deque()
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)
        if self._metrics is not None:
            self._metrics.depth(0)

    async def wait_idle(self) -> None:
        """Wait until no item is being processed (e.g. after ``shut_down``, for in-flight workers)."""
        if not self._processing:
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._idle_waiters.append(waiter)
        await waiter

    def report_unfinished(self) -> None:
        """Push in-progress work time to the metrics hooks (call periodically or at scrape time)."""
        metrics = self._metrics
        if metrics is None:
            return
        now = self._clock.now()
        total = 0.0
        longest = 0.0
        for started in self._start_times.values():
            running = now - started
            total += running
            longest = max(longest, running)
        metrics.unfinished_work(total, longest)
