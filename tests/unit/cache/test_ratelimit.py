"""Rate limiters: per-item exponential and fast/slow backoff, the shared token bucket, and their maximum.

Table-driven cases pin the exact delays; hypothesis properties check the laws for any parameters: per-item
delays double up to the cap and are independent across items, the bucket never lets more than
``burst + qps * elapsed`` calls become ready, and the combination is the maximum of its parts.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cache.clock import FakeClock
from cache.ratelimit import (
    ItemExponentialLimiter,
    ItemFastSlowLimiter,
    MaxOfLimiter,
    RateLimiter,
    TokenBucketLimiter,
    default_controller_limiter,
)

# --- per-item exponential ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("base", "cap", "expected"),
    [
        pytest.param(0.005, 1000.0, [0.005, 0.01, 0.02, 0.04, 0.08], id="controller-default"),
        pytest.param(1.0, 5.0, [1.0, 2.0, 4.0, 5.0, 5.0], id="capped"),
        pytest.param(0.0, 10.0, [0.0, 0.0, 0.0], id="zero-base"),
        pytest.param(3.0, 2.0, [2.0, 2.0], id="cap-below-base"),
    ],
)
def test_exponential_delays(base: float, cap: float, expected: list[float]) -> None:
    limiter = ItemExponentialLimiter(base, cap)
    assert [limiter.when("a") for _ in expected] == expected
    assert limiter.num_requeues("a") == len(expected)


def test_exponential_reaches_the_cap_after_many_failures_without_overflow() -> None:
    limiter = ItemExponentialLimiter(0.005, 1000.0)
    delays = [limiter.when("a") for _ in range(2000)]
    assert delays[-1] == 1000.0
    assert max(delays) == 1000.0
    assert limiter.num_requeues("a") == 2000


def test_exponential_items_are_independent_and_forget_resets_one() -> None:
    limiter = ItemExponentialLimiter(1.0, 100.0)
    assert [limiter.when("a"), limiter.when("a"), limiter.when("b")] == [1.0, 2.0, 1.0]
    limiter.forget("a")
    limiter.forget("never-seen")
    assert limiter.num_requeues("a") == 0
    assert limiter.num_requeues("b") == 1
    assert limiter.when("a") == 1.0
    assert limiter.when("b") == 2.0


@pytest.mark.parametrize(("base", "cap"), [(-1.0, 1.0), (1.0, -1.0)])
def test_exponential_rejects_negative_parameters(base: float, cap: float) -> None:
    with pytest.raises(ValueError, match="non-negative"):
        ItemExponentialLimiter(base, cap)


@given(
    base=st.floats(min_value=1e-4, max_value=10.0),
    cap=st.floats(min_value=1e-4, max_value=5000.0),
    n=st.integers(min_value=1, max_value=80),
)
def test_exponential_law(base: float, cap: float, n: int) -> None:
    limiter = ItemExponentialLimiter(base, cap)
    delays = [limiter.when("x") for _ in range(n)]
    for i, delay in enumerate(delays):
        assert delay == pytest.approx(min(base * 2**i, cap))
    assert delays == sorted(delays)
    assert limiter.num_requeues("y") == 0


# --- per-item fast/slow ------------------------------------------------------------------------------------


def test_fast_slow_switches_after_the_fast_attempts() -> None:
    limiter = ItemFastSlowLimiter(fast=0.1, slow=3.0, max_fast_attempts=2)
    assert [limiter.when("a") for _ in range(4)] == [0.1, 0.1, 3.0, 3.0]
    assert limiter.when("b") == 0.1
    limiter.forget("a")
    assert limiter.num_requeues("a") == 0
    assert limiter.when("a") == 0.1


def test_fast_slow_rejects_negative_parameters() -> None:
    with pytest.raises(ValueError, match="non-negative"):
        ItemFastSlowLimiter(fast=-1.0, slow=1.0, max_fast_attempts=1)


# --- token bucket ------------------------------------------------------------------------------------------


def test_bucket_allows_the_burst_then_spaces_calls_by_one_over_qps() -> None:
    clock = FakeClock()
    limiter = TokenBucketLimiter(qps=10.0, burst=3, clock=clock)
    delays = [limiter.when(i) for i in range(6)]
    assert delays == pytest.approx([0.0, 0.0, 0.0, 0.1, 0.2, 0.3])


def test_bucket_refills_with_time_up_to_the_burst() -> None:
    clock = FakeClock()
    limiter = TokenBucketLimiter(qps=2.0, burst=2, clock=clock)
    assert [limiter.when("a"), limiter.when("a")] == [0.0, 0.0]
    clock.advance(0.5)  # one token back
    assert limiter.when("a") == 0.0
    assert limiter.when("a") == pytest.approx(0.5)
    clock.advance(100.0)  # refills to burst, not beyond
    assert [limiter.when("a"), limiter.when("a")] == [0.0, 0.0]
    assert limiter.when("a") == pytest.approx(0.5)


def test_bucket_has_no_per_item_memory() -> None:
    limiter = TokenBucketLimiter(qps=1.0, burst=1, clock=FakeClock())
    limiter.when("a")
    limiter.forget("a")
    assert limiter.num_requeues("a") == 0
    assert limiter.when("b") == pytest.approx(1.0), "forget must not return a token"


@pytest.mark.parametrize(("qps", "burst"), [(0.0, 1), (-1.0, 1), (1.0, 0)])
def test_bucket_rejects_bad_parameters(qps: float, burst: int) -> None:
    with pytest.raises(ValueError, match="qps"):
        TokenBucketLimiter(qps=qps, burst=burst, clock=FakeClock())


def test_bucket_on_the_real_clock_allows_its_burst() -> None:
    limiter = TokenBucketLimiter(qps=0.001, burst=2)  # a refill takes 1000 s: no flakiness on a slow machine
    assert limiter.when("a") == 0.0
    assert limiter.when("a") == 0.0
    assert limiter.when("a") > 0.0


@given(
    qps=st.sampled_from([0.5, 1.0, 10.0, 100.0]),
    burst=st.integers(min_value=1, max_value=20),
    gaps=st.lists(st.sampled_from([0.0, 0.0, 0.01, 0.1, 0.5, 2.0]), min_size=1, max_size=120),
)
@settings(deadline=None)
def test_bucket_never_releases_more_than_burst_plus_rate(qps: float, burst: int, gaps: list[float]) -> None:
    clock = FakeClock(start=0.0)
    limiter = TokenBucketLimiter(qps=qps, burst=burst, clock=clock)
    ready_times = []
    for gap in gaps:
        clock.advance(gap)
        delay = limiter.when("k")
        assert delay >= 0.0
        ready_times.append(clock.now() + delay)
    assert ready_times == sorted(ready_times), "reservations are served in call order"
    # In any window [s, e] that starts at a call's ready time, at most burst + qps*(e-s) calls become ready.
    for i, start in enumerate(ready_times):
        for j in range(i, len(ready_times)):
            released = j - i + 1
            assert released <= burst + qps * (ready_times[j] - start) + 1e-6


# --- max of ------------------------------------------------------------------------------------------------


def test_max_of_takes_the_longest_delay_and_asks_every_limiter() -> None:
    clock = FakeClock()
    per_item = ItemExponentialLimiter(1.0, 100.0)
    bucket = TokenBucketLimiter(qps=1.0, burst=2, clock=clock)
    limiter = MaxOfLimiter(per_item, bucket)
    assert limiter.when("a") == 1.0  # per-item 1, bucket 0
    assert limiter.when("b") == 1.0  # per-item 1, bucket 0 (burst spent)
    assert limiter.when("c") == pytest.approx(1.0)  # per-item 1, bucket 1
    assert limiter.when("a") == 2.0  # per-item 2, bucket 2
    assert limiter.when("d") == pytest.approx(3.0)  # per-item 1, bucket 3
    assert limiter.num_requeues("a") == 2
    limiter.forget("a")
    assert per_item.num_requeues("a") == 0
    assert limiter.num_requeues("a") == 0


def test_max_of_needs_a_limiter() -> None:
    with pytest.raises(ValueError, match="at least one"):
        MaxOfLimiter()


def make_pair(clock: FakeClock) -> tuple[RateLimiter[str], RateLimiter[str]]:
    return ItemExponentialLimiter(0.01, 5.0), TokenBucketLimiter(qps=5.0, burst=3, clock=clock)


@given(ops=st.lists(st.tuples(st.sampled_from(["when", "forget"]), st.sampled_from("abc")), max_size=60))
def test_max_of_equals_the_maximum_of_twins_fed_the_same_calls(ops: list[tuple[str, str]]) -> None:
    clock_a, clock_b = FakeClock(), FakeClock()
    combined = MaxOfLimiter(*make_pair(clock_a))
    twins = make_pair(clock_b)
    for op, item in ops:
        if op == "when":
            assert combined.when(item) == max(t.when(item) for t in twins)
        else:
            combined.forget(item)
            for t in twins:
                t.forget(item)
        assert combined.num_requeues(item) == max(t.num_requeues(item) for t in twins)
        clock_a.advance(0.05)
        clock_b.advance(0.05)


def test_default_controller_limiter_is_max_of_5ms_exponential_and_10qps_bucket_of_100() -> None:
    clock = FakeClock()
    limiter = default_controller_limiter(clock=clock)
    # Per-item: 5 ms doubling.
    assert [limiter.when("a") for _ in range(3)] == [0.005, 0.01, 0.02]
    # The bucket: 100 calls so far would be free; 97 more distinct items spend the rest of the burst.
    for i in range(97):
        limiter.when(f"k{i}")
    # The 101st call overall waits 1/10 s for the bucket, more than its per-item 5 ms.
    assert limiter.when("fresh") == pytest.approx(0.1)
    for _ in range(30):
        limiter.when("a")
    assert limiter.when("a") == 1000.0
