"""The client's token bucket: burst first, then one token per 1/qps, reserved without drift."""

from __future__ import annotations

import pytest

from cache import client as client_mod
from cache.client import TokenBucket


class _Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def monotonic(self) -> float:
        return self.t


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> _Clock:
    fake = _Clock()
    monkeypatch.setattr(client_mod.time, "monotonic", fake.monotonic)
    return fake


def test_burst_then_spaced_reservations(clock: _Clock) -> None:
    bucket = TokenBucket(qps=10, burst=3)
    assert [bucket.reserve() for _ in range(3)] == [0.0, 0.0, 0.0]
    # Callers arriving together queue up: each waits one more 1/qps than the one before.
    assert [round(bucket.reserve(), 6) for _ in range(3)] == [0.1, 0.2, 0.3]


def test_refill_is_capped_at_burst(clock: _Clock) -> None:
    bucket = TokenBucket(qps=10, burst=2)
    bucket.reserve()
    bucket.reserve()
    clock.t += 60  # a long idle time refills only up to the burst
    assert [bucket.reserve() for _ in range(2)] == [0.0, 0.0]
    assert round(bucket.reserve(), 6) == 0.1


def test_debt_is_paid_back_by_elapsed_time(clock: _Clock) -> None:
    bucket = TokenBucket(qps=100, burst=1)
    bucket.reserve()
    assert round(bucket.reserve(), 6) == 0.01
    clock.t += 0.03  # the reserved slot has passed, and then some
    assert bucket.reserve() == 0.0


async def test_unlimited_when_qps_is_zero() -> None:
    bucket = TokenBucket(qps=0, burst=1)
    for _ in range(1000):
        await bucket.acquire()
