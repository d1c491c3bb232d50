"""Property tests of the work queue's guarantees against a reference model (hypothesis, fake time).

The model is the specification written as plainly as possible: a FIFO list of distinct ready items, a dirty
set, a processing set and a map of delayed items to (deadline, order). A stateful machine drives the real
queue and the model with the same random operations — add, add_after, add_rate_limited, get, done, advancing
time, shutting down — and checks after every step that both agree and that the three guarantees hold:

* fair: ``get`` returns the model's head (the oldest ready item);
* stingy: a ready item appears in the FIFO once, however often it was added;
* one worker per key: ``get`` never returns an item that is being processed.
"""

from __future__ import annotations

import itertools
from collections.abc import Coroutine
from typing import Any, TypeVar, cast

from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
)

from cache.clock import FakeClock
from cache.queue import QueueShutDown, WorkQueue
from cache.ratelimit import ItemExponentialLimiter

KEYS = st.sampled_from(["a", "b", "c", "d", "e"])
DELAYS = st.sampled_from([-1.0, 0.0, 0.25, 0.5, 1.0, 1.5, 3.0])
STEPS = st.sampled_from([0.0, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0])


T = TypeVar("T")


def run_now(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine that must finish without suspending (``get`` with an item ready, or shut down).

    Driving it by hand keeps the state machine free of event loops; a suspension is itself a failure.
    """
    try:
        coro.send(None)
    except StopIteration as stop:
        return cast(T, stop.value)
    coro.close()
    raise AssertionError("get() suspended although it had an answer ready")


class QueueModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.clock = FakeClock(start=0.0)
        self.limiter_twin = ItemExponentialLimiter(base=0.25, cap=2.0)
        self.q: WorkQueue[str] = WorkQueue(clock=self.clock, rate_limiter=ItemExponentialLimiter(base=0.25, cap=2.0))
        self.ready: list[str] = []
        self.dirty: set[str] = set()
        self.processing: set[str] = set()
        self.delayed: dict[str, tuple[float, int]] = {}
        self.order = itertools.count()
        self.shut = False

    # --- the model ---------------------------------------------------------------------------------------

    def model_add(self, item: str) -> None:
        if self.shut or item in self.dirty:
            return
        self.dirty.add(item)
        if item not in self.processing:
            self.ready.append(item)

    def model_add_after(self, item: str, delay: float) -> None:
        if self.shut:
            return
        if delay <= 0:
            self.model_add(item)
            return
        deadline = self.clock.now() + delay
        current = self.delayed.get(item)
        if current is None or deadline < current[0]:
            self.delayed[item] = (deadline, next(self.order))

    # --- rules -------------------------------------------------------------------------------------------

    @rule(item=KEYS)
    def add(self, item: str) -> None:
        self.q.add(item)
        self.model_add(item)

    @rule(item=KEYS, delay=DELAYS)
    def add_after(self, item: str, delay: float) -> None:
        self.q.add_after(item, delay)
        self.model_add_after(item, delay)

    @rule(item=KEYS)
    def add_rate_limited(self, item: str) -> None:
        assert self.q.num_requeues(item) == self.limiter_twin.num_requeues(item)
        self.q.add_rate_limited(item)
        if not self.shut:
            self.model_add_after(item, self.limiter_twin.when(item))

    @rule(item=KEYS)
    def forget(self, item: str) -> None:
        self.q.forget(item)
        self.limiter_twin.forget(item)
        assert self.q.num_requeues(item) == 0

    @rule(step=STEPS)
    def advance(self, step: float) -> None:
        target = self.clock.now() + step
        due = sorted((when, order, item) for item, (when, order) in self.delayed.items() if when <= target)
        for _, _, item in due:
            del self.delayed[item]
            self.model_add(item)
        self.clock.advance(step)

    @precondition(lambda self: bool(self.ready) and not self.shut)
    @rule()
    def get(self) -> None:
        item = run_now(self.q.get())
        expected = self.ready.pop(0)
        assert item == expected, "fair: the oldest ready item comes first"
        assert item not in self.processing, "one worker per key"
        self.processing.add(item)
        self.dirty.discard(item)

    @precondition(lambda self: bool(self.processing))
    @rule(data=st.data())
    def done(self, data: st.DataObject) -> None:
        item = data.draw(st.sampled_from(sorted(self.processing)))
        self.q.done(item)
        self.processing.discard(item)
        if item in self.dirty and not self.shut:
            self.ready.append(item)

    @rule(item=KEYS)
    def done_for_unheld_item(self, item: str) -> None:
        if item in self.processing:
            return
        self.q.done(item)  # misuse must not duplicate or resurrect anything

    @precondition(lambda self: not self.shut)
    @rule()
    def shut_down(self) -> None:
        self.q.shut_down()
        self.shut = True
        self.ready.clear()
        self.dirty.clear()
        self.delayed.clear()

    @precondition(lambda self: self.shut)
    @rule()
    def get_after_shut_down_raises(self) -> None:
        try:
            run_now(self.q.get())
        except QueueShutDown:
            return
        raise AssertionError("get() after shut_down() must raise QueueShutDown")

    # --- invariants --------------------------------------------------------------------------------------

    @invariant()
    def agrees_with_model(self) -> None:
        assert len(self.q) == len(self.ready)
        assert self.q.processing() == len(self.processing)
        assert self.q.delayed() == len(self.delayed)

    @invariant()
    def stingy(self) -> None:
        assert len(set(self.ready)) == len(self.ready)
        assert not (set(self.ready) & self.processing)


QueueModel.TestCase.settings = settings(max_examples=300, stateful_step_count=60, deadline=None)
test_queue_matches_model = QueueModel.TestCase


@given(st.lists(KEYS, max_size=50))
@settings(deadline=None)
def test_any_burst_of_adds_is_processed_once_per_key_in_first_add_order(adds: list[str]) -> None:
    q: WorkQueue[str] = WorkQueue(clock=FakeClock())
    for item in adds:
        q.add(item)
    out: list[str] = []
    while len(q) and len(out) <= len(adds):  # bounded: a queue that re-hands items out must fail, not hang
        item = run_now(q.get())
        q.done(item)
        out.append(item)
    assert out == list(dict.fromkeys(adds))


# Delays are multiples of 1/8 s so deadline arithmetic is exact in binary floating point.
@given(st.lists(st.tuples(KEYS, st.integers(1, 800).map(lambda n: n / 8)), min_size=1, max_size=30))
@settings(deadline=None)
def test_each_delayed_key_fires_once_at_its_earliest_deadline(calls: list[tuple[str, float]]) -> None:
    clock = FakeClock(start=0.0)
    q: WorkQueue[str] = WorkQueue(clock=clock)
    for item, delay in calls:
        q.add_after(item, delay)
    earliest: dict[str, float] = {}
    for item, delay in calls:
        earliest[item] = min(delay, earliest.get(item, delay))
    fired: dict[str, float] = {}
    for deadline in sorted(set(earliest.values())):
        clock.advance(deadline - clock.now())
        for _ in range(len(earliest) + 1):  # bounded: a queue that re-hands items out must fail, not hang
            if not len(q):
                break
            item = run_now(q.get())
            assert item not in fired, "each delayed key fires once"
            fired[item] = clock.now()
            q.done(item)
    clock.advance(1000.0)
    assert len(q) == 0
    assert fired == earliest
