"""Rate limiters for the work queue: how long an item must wait before it is retried.

A limiter answers ``when(item)`` with a delay in seconds and records that the item was retried once more;
``forget(item)`` clears an item's history (after a successful reconcile); ``num_requeues(item)`` reports how
many times ``when`` was asked since the last ``forget``.

Invariants:

* :class:`ItemExponentialLimiter`: the n-th retry of an item (n from 0) waits ``base * 2**n`` seconds,
  never more than ``cap``; items are independent; ``forget`` returns the item to ``base``.
* :class:`TokenBucketLimiter`: a bucket shared by all items holding at most ``burst`` tokens, refilled at
  ``qps`` per second; every ``when`` takes one token, borrowing from the future when the bucket is empty, so
  the k-th call beyond the burst waits about ``k / qps``. It has no per-item memory (``num_requeues`` is 0).
* :class:`MaxOfLimiter`: the largest delay of its limiters; every limiter is asked on every call, so each
  keeps its own accounting; ``num_requeues`` is the largest count.
* :func:`default_controller_limiter`: max(per-item 5 ms doubling up to 1000 s, bucket of 100 at 10/s) — the
  controller-runtime default.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Generic, Protocol, TypeVar

from cache.clock import Clock, RealClock

__all__ = [
    "ItemExponentialLimiter",
    "ItemFastSlowLimiter",
    "MaxOfLimiter",
    "RateLimiter",
    "TokenBucketLimiter",
    "default_controller_limiter",
]

T = TypeVar("T", bound=Hashable)
T_contra = TypeVar("T_contra", bound=Hashable, contravariant=True)

# 2**_MAX_EXPONENT * base would overflow a float long before a sane cap is reached; past it we return cap.
_MAX_EXPONENT = 62


class RateLimiter(Protocol[T_contra]):
    """The contract the work queue needs from a limiter."""

    def when(self, item: T_contra) -> float:
        """The delay in seconds before ``item`` may be processed again; counts one more retry."""
        ...

    def forget(self, item: T_contra) -> None:
        """Drop ``item``'s retry history."""
        ...

    def num_requeues(self, item: T_contra) -> int:
        """Retries counted for ``item`` since it was last forgotten."""
        ...


class ItemExponentialLimiter:
    """Per-item exponential backoff: ``base * 2**failures``, capped at ``cap`` seconds."""

    __slots__ = ("_base", "_cap", "_failures")

    def __init__(self, base: float = 0.005, cap: float = 1000.0) -> None:
        if base < 0 or cap < 0:
            raise ValueError("base and cap must be non-negative seconds")
        self._base = base
        self._cap = cap
        self._failures: dict[Hashable, int] = {}

    def when(self, item: Hashable) -> float:
        failures = self._failures.get(item, 0)
        self._failures[item] = failures + 1
        if failures > _MAX_EXPONENT:
            return self._cap
        delay: float = self._base * (1 << failures)
        return min(delay, self._cap)

    def forget(self, item: Hashable) -> None:
        self._failures.pop(item, None)

    def num_requeues(self, item: Hashable) -> int:
        return self._failures.get(item, 0)


class ItemFastSlowLimiter:
    """Per-item: the first ``max_fast_attempts`` retries wait ``fast``, later ones ``slow`` seconds."""

    __slots__ = ("_failures", "_fast", "_max_fast", "_slow")

    def __init__(self, fast: float, slow: float, max_fast_attempts: int) -> None:
        if fast < 0 or slow < 0 or max_fast_attempts < 0:
            raise ValueError("delays and attempts must be non-negative")
        self._fast = fast
        self._slow = slow
        self._max_fast = max_fast_attempts
        self._failures: dict[Hashable, int] = {}

    def when(self, item: Hashable) -> float:
        failures = self._failures.get(item, 0) + 1
        self._failures[item] = failures
        return self._fast if failures <= self._max_fast else self._slow

    def forget(self, item: Hashable) -> None:
        self._failures.pop(item, None)

    def num_requeues(self, item: Hashable) -> int:
        return self._failures.get(item, 0)


class TokenBucketLimiter:
    """A bucket shared by every item: ``burst`` tokens, refilled at ``qps`` tokens per second.

    Like Go's ``rate.Limiter.Reserve``: a call when the bucket is empty still succeeds but takes a token
    from the future, and the returned delay is how long until that token exists.
    """

    __slots__ = ("_burst", "_clock", "_last", "_qps", "_tokens")

    def __init__(self, qps: float = 10.0, burst: int = 100, *, clock: Clock | None = None) -> None:
        if qps <= 0 or burst < 1:
            raise ValueError("qps must be positive and burst at least 1")
        self._qps = float(qps)
        self._burst = float(burst)
        self._clock: Clock = clock if clock is not None else RealClock()
        self._tokens = float(burst)
        self._last: float | None = None

    def when(self, item: Hashable) -> float:
        now = self._clock.now()
        if self._last is not None and now > self._last:
            self._tokens = min(self._burst, self._tokens + (now - self._last) * self._qps)
        if self._last is None or now > self._last:
            self._last = now
        self._tokens -= 1.0
        if self._tokens >= 0.0:
            return 0.0
        return -self._tokens / self._qps

    def forget(self, item: Hashable) -> None:
        return None

    def num_requeues(self, item: Hashable) -> int:
        return 0


class MaxOfLimiter(Generic[T]):
    """The slowest of several limiters: every limiter is consulted, the longest delay wins."""

    __slots__ = ("_limiters",)

    def __init__(self, *limiters: RateLimiter[T]) -> None:
        if not limiters:
            raise ValueError("MaxOfLimiter needs at least one limiter")
        self._limiters = limiters

    def when(self, item: T) -> float:
        # Every limiter must see every call (not short-circuit), so each keeps its own count.
        return max([limiter.when(item) for limiter in self._limiters])

    def forget(self, item: T) -> None:
        for limiter in self._limiters:
            limiter.forget(item)

    def num_requeues(self, item: T) -> int:
        return max(limiter.num_requeues(item) for limiter in self._limiters)


def default_controller_limiter(*, clock: Clock | None = None) -> MaxOfLimiter[Hashable]:
    """max(per-item exponential 5 ms → 1000 s, shared token bucket 10 qps / burst 100)."""
    return MaxOfLimiter(
        ItemExponentialLimiter(0.005, 1000.0),
        TokenBucketLimiter(qps=10.0, burst=100, clock=clock),
    )
