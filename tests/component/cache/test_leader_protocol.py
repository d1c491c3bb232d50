"""Leader election against an in-memory Lease server with per-elector faults, on fake time.

The server keeps one Lease with a resourceVersion and rejects stale replaces (409), like the API server. Each
elector reaches it through its own view that can be partitioned (calls fail) or hung (calls never return), so
split-brain scenarios the real cluster cannot stage on demand are tested here; ``test_leader_kubesim.py`` runs
the same elector over HTTP against the simulated cluster.

The safety invariant is checked by a monitor on the electors' callbacks: a leader may start only when no other
elector leads, and a takeover after a partition comes at least ``lease_duration - renew_deadline`` after the
old leader stopped. Time is a ``FakeClock``; assertions on it are deterministic, never wall-clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import datetime as dt
import random
from collections.abc import Callable
from typing import Any, TypeVar

import pytest

from api.timefmt import format_micro_time
from cache.clock import FakeClock
from cache.errors import AlreadyExists, ConnectionFailed, error_for
from cache.leader import (
    LEASE_NAME,
    LeaderElectionConfig,
    LeaderElector,
    LeaseRecord,
    run_as_leader,
)

NS = "jobset-system"
JSON = dict[str, Any]
R = TypeVar("R")


class LeaseServer:
    """One namespace's Leases with the API server's optimistic concurrency."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.leases: dict[str, JSON] = {}
        self.rv = 0
        self.writes: list[tuple[str, LeaseRecord]] = []  # (writer, record) in order
        self.write_times: list[tuple[float, str]] = []

    def get(self, name: str) -> JSON | None:
        lease = self.leases.get(name)
        return copy.deepcopy(lease) if lease is not None else None

    def create(self, who: str, lease: JSON) -> JSON:
        name = lease["metadata"]["name"]
        if name in self.leases:
            raise AlreadyExists("exists", reason="AlreadyExists")
        return self._store(who, name, lease)

    def update(self, who: str, name: str, lease: JSON) -> JSON:
        current = self.leases.get(name)
        if current is None:
            raise error_for(404, b"{}")
        if lease["metadata"].get("resourceVersion") != current["metadata"]["resourceVersion"]:
            raise error_for(409, b'{"reason": "Conflict"}')
        return self._store(who, name, lease)

    def _store(self, who: str, name: str, lease: JSON) -> JSON:
        self.rv += 1
        stored = copy.deepcopy(lease)
        stored["metadata"]["resourceVersion"] = str(self.rv)
        self.leases[name] = stored
        self.writes.append((who, LeaseRecord.from_lease(stored)))
        self.write_times.append((self.clock.now(), who))
        return copy.deepcopy(stored)

    def record(self, name: str = LEASE_NAME) -> LeaseRecord:
        return LeaseRecord.from_lease(self.leases[name])


class LeaseView:
    """One elector's connection to the server: ``partitioned`` calls fail, ``hung`` calls never return, and
    ``latency`` seconds of fake time pass on each call (half before the server acts, half after)."""

    def __init__(self, server: LeaseServer, who: str) -> None:
        self.server = server
        self.who = who
        self.partitioned = False
        self.hung = False
        self.latency = 0.0
        self.calls = 0

    async def _call(self, op: Callable[[], R]) -> R:
        self.calls += 1
        await asyncio.sleep(0)  # every call suspends, like real I/O, so electors interleave
        if self.hung:
            await asyncio.Event().wait()
        if self.partitioned:
            raise ConnectionFailed("partitioned")
        if self.latency:
            await self.server.clock.sleep(self.latency / 2)
        result = op()
        if self.latency:
            await self.server.clock.sleep(self.latency / 2)
        return result

    async def get(self, namespace: str, name: str) -> JSON | None:
        return await self._call(lambda: self.server.get(name))

    async def create(self, namespace: str, lease: JSON) -> JSON:
        return await self._call(lambda: self.server.create(self.who, lease))

    async def update(self, namespace: str, name: str, lease: JSON) -> JSON:
        return await self._call(lambda: self.server.update(self.who, name, lease))


class Monitor:
    """Records leadership transitions on the fake clock and flags two leaders at once."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.leaders: set[str] = set()
        self.events: list[tuple[float, str, str]] = []
        self.violations: list[str] = []

    def started(self, who: str) -> None:
        if self.leaders:
            self.violations.append(f"{who} started leading while {sorted(self.leaders)} led")
        self.leaders.add(who)
        self.events.append((self.clock.now(), who, "started"))

    def stopped(self, who: str) -> None:
        self.leaders.discard(who)
        self.events.append((self.clock.now(), who, "stopped"))

    def times(self, who: str, what: str) -> list[float]:
        return [t for t, w, e in self.events if w == who and e == what]


class World:
    def __init__(self, *, lease: float = 15.0, renew: float = 10.0, retry: float = 2.0) -> None:
        self.clock = FakeClock(start=0.0)
        self.server = LeaseServer(self.clock)
        self.monitor = Monitor(self.clock)
        self.timings = {"lease_duration": lease, "renew_deadline": renew, "retry_period": retry}
        self.views: dict[str, LeaseView] = {}
        self.electors: dict[str, LeaderElector] = {}
        self.tasks: dict[str, asyncio.Task[None]] = {}

    def wall(self) -> dt.datetime:
        return dt.datetime(2026, 1, 1, tzinfo=dt.UTC) + dt.timedelta(seconds=self.clock.now())

    def elector(self, who: str, seed: int = 0) -> LeaderElector:
        view = self.views.setdefault(who, LeaseView(self.server, who))
        elector = LeaderElector(
            view,
            LeaderElectionConfig(namespace=NS, identity=who, **self.timings),  # type: ignore[arg-type]
            clock=self.clock,
            wall=self.wall,
            rng=random.Random(seed),
            on_started_leading=lambda: self.monitor.started(who),
            on_stopped_leading=lambda: self.monitor.stopped(who),
        )
        self.electors[who] = elector
        return elector

    def start(self, who: str, seed: int = 0) -> LeaderElector:
        elector = self.electors.get(who) or self.elector(who, seed)
        self.tasks[who] = asyncio.create_task(elector.run(), name=f"elector:{who}")
        return elector

    async def stop(self, who: str) -> None:
        """Cancel an elector's campaign, moving fake time while its release runs (it may hang until cut off)."""
        task = self.tasks.pop(who)
        task.cancel()
        for _ in range(400):
            await settle()
            if task.done():
                break
            self.clock.advance(0.125)
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async def stop_all(self) -> None:
        for who in list(self.tasks):
            await self.stop(who)

    async def run_for(self, seconds: float, step: float = 0.125) -> None:
        """Advance fake time in small steps, letting every task run to its next wait in between."""
        for _ in range(round(seconds / step)):
            await settle()
            self.clock.advance(step)
        await settle()

    async def run_until(self, predicate: Any, limit: float, step: float = 0.125) -> float:
        """Advance fake time until ``predicate()``; return the fake time it took (fails past ``limit``)."""
        start = self.clock.now()
        for _ in range(round(limit / step)):
            await settle()
            if predicate():
                return self.clock.now() - start
            self.clock.advance(step)
        await settle()
        assert predicate(), f"condition not reached within {limit}s of fake time"
        return self.clock.now() - start

    def leaders(self) -> list[str]:
        return sorted(w for w, e in self.electors.items() if e.is_leader)


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


@pytest.fixture
async def world() -> Any:
    w = World()
    yield w
    await w.stop_all()
    assert w.monitor.violations == []


# --- configuration -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lease", "renew", "retry"),
    [
        pytest.param(10.0, 10.0, 2.0, id="renew-not-below-lease"),
        pytest.param(15.0, 2.0, 2.0, id="renew-not-above-jittered-retry"),
        pytest.param(15.0, 10.0, 0.0, id="zero-retry"),
    ],
)
def test_config_rejects_unsafe_timings(lease: float, renew: float, retry: float) -> None:
    with pytest.raises(ValueError, match="leaseDuration > renewDeadline"):
        LeaderElectionConfig(namespace=NS, lease_duration=lease, renew_deadline=renew, retry_period=retry)


def test_config_defaults_are_client_go_and_the_reference_lease_name() -> None:
    cfg = LeaderElectionConfig(namespace=NS)
    assert (cfg.lease_duration, cfg.renew_deadline, cfg.retry_period) == (15.0, 10.0, 2.0)
    assert cfg.name == "6d4f6a47.jobset.x-k8s.io"
    assert cfg.identity
    assert cfg.identity != LeaderElectionConfig(namespace=NS).identity
    assert cfg.lease_duration_seconds == 15
    assert (
        LeaderElectionConfig(
            namespace=NS, lease_duration=0.9, renew_deadline=0.5, retry_period=0.1
        ).lease_duration_seconds
        == 1
    )


@pytest.mark.parametrize("kwargs", [{"namespace": ""}, {"namespace": NS, "identity": ""}])
def test_config_needs_a_namespace_and_an_identity(kwargs: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="needs"):
        LeaderElectionConfig(**kwargs)  # type: ignore[arg-type]


def test_micro_time_is_rfc3339_utc_with_microseconds() -> None:
    when = dt.datetime(2026, 3, 4, 5, 6, 7, 8, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    assert format_micro_time(when) == "2026-03-04T03:06:07.000008Z"


# --- acquiring and renewing --------------------------------------------------------------------------------


async def test_first_elector_creates_the_lease_and_leads(world: World) -> None:
    a = world.start("a")
    await world.run_until(lambda: a.is_leader, 1.0)
    assert a.leading.is_set()
    rec = world.server.record()
    assert rec.holder == "a"
    assert rec.lease_duration_seconds == 15
    assert rec.transitions == 0
    assert rec.acquire_time == rec.renew_time == "2026-01-01T00:00:00.000000Z"
    lease = world.server.leases[LEASE_NAME]
    assert lease["apiVersion"] == "coordination.k8s.io/v1"
    assert lease["kind"] == "Lease"
    assert lease["metadata"] == {"name": LEASE_NAME, "namespace": NS, "resourceVersion": "1"}
    assert world.monitor.times("a", "started") == [0.0]


async def test_leader_renews_every_retry_period_keeping_acquire_time(world: World) -> None:
    a = world.start("a")
    await world.run_for(7.0)
    renewals = [rec for who, rec in world.server.writes if who == "a"]
    assert len(renewals) == 4, "a create at 0 s, then renewals at 2, 4 and 6 s"
    assert {r.acquire_time for r in renewals} == {"2026-01-01T00:00:00.000000Z"}
    assert [r.renew_time for r in renewals][-1] == "2026-01-01T00:00:06.000000Z"
    assert {r.transitions for r in renewals} == {0}
    assert a.is_leader


async def test_a_candidate_never_leads_while_the_leader_renews(world: World) -> None:
    a = world.start("a")
    await world.run_until(lambda: a.is_leader, 1.0)
    b = world.start("b", seed=1)
    await world.run_for(120.0)
    assert a.is_leader
    assert not b.is_leader
    assert b.observed_leader == "a"
    assert world.monitor.times("b", "started") == []


async def test_candidate_takes_a_lease_whose_holder_vanished_after_the_lease_duration(world: World) -> None:
    # A Lease left behind by a crashed process (nobody renews it).
    world.server.create(
        "ghost",
        {
            "metadata": {"name": LEASE_NAME, "namespace": NS},
            "spec": {"holderIdentity": "ghost", "leaseDurationSeconds": 15, "leaseTransitions": 3},
        },
    )
    b = world.start("b")
    waited = await world.run_until(lambda: b.is_leader, 30.0)
    assert waited >= 15.0, "must wait the full lease duration from its first observation"
    rec = world.server.record()
    assert rec.holder == "b"
    assert rec.transitions == 4
    assert rec.acquire_time == rec.renew_time


async def test_racing_candidates_on_a_free_lease_elect_exactly_one(world: World) -> None:
    world.server.create(
        "old",
        {"metadata": {"name": LEASE_NAME, "namespace": NS}, "spec": {"holderIdentity": "", "leaseTransitions": 1}},
    )
    electors = [world.start(name, seed=i) for i, name in enumerate("abcd")]
    await world.run_for(30.0)
    assert len(world.leaders()) == 1
    assert sum(e.is_leader for e in electors) == 1
    assert world.server.record().transitions == 2


# --- release and hand-over ---------------------------------------------------------------------------------


async def test_clean_shutdown_releases_and_a_successor_takes_over_without_waiting_for_expiry(world: World) -> None:
    a = world.start("a")
    await world.run_until(lambda: a.is_leader, 1.0)
    b = world.start("b", seed=1)
    await world.run_for(10.0)
    await world.stop("a")
    assert not a.is_leader
    assert a.lost.is_set()
    rec = world.server.record()
    assert rec.holder == ""
    assert rec.lease_duration_seconds == 1
    assert rec.transitions == 0
    waited = await world.run_until(lambda: b.is_leader, 15.0)
    assert waited <= 2.0 * (1 + 1.2) + 0.1, "one jittered retry after the release, not a lease expiry"
    assert world.server.record().holder == "b"
    assert world.server.record().transitions == 1
    assert world.monitor.times("a", "stopped")[0] <= world.monitor.times("b", "started")[0]


async def test_shutdown_stops_leading_before_the_lease_is_released(world: World) -> None:
    a = world.elector("a")
    holder_when_stopped: list[str] = []
    a.stopped_callbacks.append(lambda: holder_when_stopped.append(world.server.record().holder))
    world.start("a")
    await world.run_until(lambda: a.is_leader, 1.0)
    await world.stop("a")
    assert holder_when_stopped == ["a"], "work must stop while we still hold the Lease, never after a successor"
    assert world.server.record().holder == ""


async def test_release_is_skipped_when_disabled(world: World) -> None:
    elector = LeaderElector(
        world.views.setdefault("a", LeaseView(world.server, "a")),
        LeaderElectionConfig(namespace=NS, identity="a", release_on_cancel=False),
        clock=world.clock,
        wall=world.wall,
    )
    task = asyncio.create_task(elector.run())
    await world.run_until(lambda: elector.is_leader, 1.0)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert not elector.is_leader
    assert world.server.record().holder == "a"


async def test_release_failure_does_not_block_shutdown(world: World) -> None:
    a = world.start("a")
    await world.run_until(lambda: a.is_leader, 1.0)
    world.views["a"].hung = True
    await world.stop("a")
    assert not a.is_leader
    assert world.server.record().holder == "a", "the Lease then simply expires"


# --- losing the lease --------------------------------------------------------------------------------------


@pytest.mark.parametrize("latency", [0.0, 1.5], ids=["fast-api", "slow-api"])
@pytest.mark.parametrize("fault", ["partitioned", "hung"])
async def test_leader_cut_off_stops_by_its_renew_deadline_and_the_successor_waits_out_the_lease(
    world: World, fault: str, latency: float
) -> None:
    a = world.start("a")
    world.views["a"].latency = latency
    await world.run_until(lambda: a.is_leader, 10.0)
    b = world.start("b", seed=7)
    await world.run_for(7.0)
    setattr(world.views["a"], fault, True)
    await world.run_until(lambda: not a.is_leader, 15.0)
    stopped_at = world.monitor.times("a", "stopped")[0]
    # With latency the server applies a replace some time after the attempt started; authority is counted
    # from the start, so it ends no later than renew_deadline after the last write.
    last_write = max(t for t, who in world.server.write_times if who == "a")
    assert stopped_at <= last_write + 10.0 + 1e-9, "authority ends renew_deadline after the last good attempt"
    assert a.lost.is_set()
    await world.run_until(lambda: b.is_leader, 30.0)
    started_at = world.monitor.times("b", "started")[0]
    assert started_at - stopped_at >= 15.0 - 10.0 - 1e-9
    # The cut-off elector's campaign has ended; healing its link must not make it lead again.
    setattr(world.views["a"], fault, False)
    await world.run_for(20.0)
    assert not a.is_leader
    assert world.tasks["a"].done()


async def test_slow_api_within_the_renew_deadline_keeps_the_leader(world: World) -> None:
    a = world.start("a")
    await world.run_until(lambda: a.is_leader, 1.0)
    b = world.start("b", seed=3)
    # A renewal (read + replace) takes 3 s: started 2 s after the previous one ended, it still completes
    # inside the 10 s of authority the previous one granted (2 x 3 s + 2 s <= 10 s).
    world.views["a"].latency = 1.5
    world.views["b"].latency = 1.5
    await world.run_for(90.0)
    assert a.is_leader
    assert not b.is_leader


async def test_api_too_slow_to_renew_in_time_costs_leadership_but_never_safety(world: World) -> None:
    a = world.start("a")
    await world.run_until(lambda: a.is_leader, 1.0)
    world.start("b", seed=3)
    await world.run_for(3.0)
    world.views["a"].latency = 12.0  # each attempt is cut off before its replace returns
    await world.run_until(lambda: not a.is_leader, 15.0)
    await world.run_for(60.0)
    assert world.leaders() == ["b"]
    a_stop = world.monitor.times("a", "stopped")[0]
    assert world.monitor.times("b", "started")[0] - a_stop >= 15.0 - 10.0 - 1e-9


async def test_leader_that_reads_a_rival_holder_stops_at_once(world: World) -> None:
    a = world.start("a")
    await world.run_until(lambda: a.is_leader, 1.0)
    await world.run_for(1.0)
    # Someone (e.g. an operator, or a process with a skewed view) overwrote the Lease.
    lease = world.server.get(LEASE_NAME)
    assert lease is not None
    lease["spec"]["holderIdentity"] = "rival"
    world.server.update("rival", LEASE_NAME, lease)
    took = await world.run_until(lambda: not a.is_leader, 3.0)
    assert took <= 2.0, "detected on the next renewal, not at the renew deadline"
    assert world.tasks["a"].done()


async def test_renewal_conflicts_are_retried_until_the_deadline(world: World) -> None:
    a = world.start("a")
    await world.run_until(lambda: a.is_leader, 1.0)
    original = world.server.update
    conflicts = 0

    def flaky(who: str, name: str, lease: JSON) -> JSON:
        nonlocal conflicts
        if conflicts < 2:
            conflicts += 1
            raise error_for(409, b'{"reason": "Conflict"}')
        return original(who, name, lease)

    world.server.update = flaky  # type: ignore[method-assign]
    await world.run_for(20.0)
    assert conflicts == 2
    assert a.is_leader, "two failed renewals inside the deadline do not cost leadership"


async def test_elector_can_campaign_again_after_losing(world: World) -> None:
    a = world.start("a")
    await world.run_until(lambda: a.is_leader, 1.0)
    world.views["a"].partitioned = True
    await world.run_until(world.tasks["a"].done, 15.0)
    world.views["a"].partitioned = False
    world.start("a")
    await world.run_until(lambda: a.is_leader, 10.0)
    assert world.server.record().holder == "a"
    assert not a.lost.is_set()


# --- run_as_leader -----------------------------------------------------------------------------------------


async def test_run_as_leader_runs_work_only_while_leading_and_cancels_it_on_loss(world: World) -> None:
    a = world.elector("a")
    log: list[str] = []
    started = asyncio.Event()

    async def work() -> None:
        log.append("work-started" if a.is_leader else "work-started-without-lease")
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            log.append("work-cancelled" if not a.is_leader else "work-cancelled-while-leading")
            raise

    runner = asyncio.create_task(run_as_leader(a, work))
    await world.run_until(started.is_set, 1.0)
    world.views["a"].partitioned = True
    await world.run_until(runner.done, 15.0)
    assert await runner is False
    assert log == ["work-started", "work-cancelled"]
    assert len(a.stopped_callbacks) == 1, "run_as_leader removed its hook"


async def test_run_as_leader_returns_true_and_releases_when_work_finishes(world: World) -> None:
    a = world.elector("a")
    runner = asyncio.create_task(run_as_leader(a, lambda: world.clock.sleep(3.0)))
    await world.run_until(runner.done, 10.0)
    assert await runner is True
    assert world.server.record().holder == ""


async def test_run_as_leader_propagates_a_work_error_after_releasing(world: World) -> None:
    a = world.elector("a")

    async def work() -> None:
        raise RuntimeError("boom")

    runner = asyncio.create_task(run_as_leader(a, work))
    await world.run_until(runner.done, 5.0)
    with pytest.raises(RuntimeError, match="boom"):
        await runner
    assert world.server.record().holder == ""


async def test_cancelling_run_as_leader_stops_work_before_releasing(world: World) -> None:
    a = world.elector("a")
    order: list[str] = []

    async def work() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            order.append(f"work-ended holder={world.server.record().holder!r}")

    runner = asyncio.create_task(run_as_leader(a, work))
    await world.run_until(lambda: a.is_leader, 1.0)
    await settle()
    runner.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await runner
    assert order == ["work-ended holder='a'"]
    assert world.server.record().holder == ""


# --- randomized schedules ----------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(12))
async def test_random_partitions_restarts_and_hangs_never_give_two_leaders(seed: int) -> None:
    rng = random.Random(seed)
    w = World()
    names = ["a", "b", "c"]
    for i, name in enumerate(names):
        w.start(name, seed=seed * 10 + i)
    try:
        for _ in range(40):
            who = rng.choice(names)
            action = rng.choice(["partition", "heal", "hang", "restart", "wait"])
            view = w.views[who]
            if action == "partition":
                view.partitioned = True
            elif action == "heal":
                view.partitioned = False
                view.hung = False
            elif action == "hang":
                view.hung = True
            elif action == "restart":
                if who in w.tasks:
                    await w.stop(who)
                view.partitioned = view.hung = False
                w.start(who, seed=rng.randrange(1000))
            await w.run_for(rng.choice([0.5, 2.0, 5.0, 12.0]), step=0.125)
            for name in names:
                if name in w.tasks and w.tasks[name].done():
                    w.tasks.pop(name)
                    w.start(name, seed=rng.randrange(1000))  # a real process would restart its campaign
        assert w.monitor.violations == []
        # Heal everything: someone must lead again.
        for view in w.views.values():
            view.partitioned = view.hung = False
        await w.run_for(40.0, step=0.125)
        for name in names:
            if name in w.tasks and w.tasks[name].done():
                w.tasks.pop(name)
                w.start(name)
        await w.run_until(lambda: len(w.leaders()) == 1, 40.0, step=0.125)
        assert w.monitor.violations == []
    finally:
        for view in w.views.values():
            view.partitioned = view.hung = False
        await w.stop_all()


async def test_write_fence_closes_at_the_renew_deadline_even_before_the_renew_loop_runs(world: World) -> None:
    """A leader frozen (SIGSTOP) past its renew deadline wakes still flagged leader: ``may_write`` must say no
    at once, before its renew loop gets to run and notice, so no write of the frozen process goes out."""
    a = world.start("a")
    await world.run_until(lambda: a.is_leader, 1.0)
    await world.run_for(3.0)
    assert a.may_write()
    world.clock.advance(10.5)  # frozen: no task ran while the clock moved past the renew deadline (10 s)
    assert a.is_leader, "nothing has run yet: the flag is stale"
    assert not a.may_write()
    await settle()
    assert not a.is_leader
    assert not a.may_write()


async def test_a_candidate_may_never_write(world: World) -> None:
    a = world.start("a")
    await world.run_until(lambda: a.is_leader, 1.0)
    b = world.start("b", seed=1)
    await world.run_for(5.0)
    assert a.may_write()
    assert not b.may_write()
