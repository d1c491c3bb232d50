"""Leader election over HTTP against the simulated cluster (``kubesim.SimCluster``): the real Lease resource,
the real optimistic concurrency (409 on a stale resourceVersion), injected 500s on renewals.

Timings are shortened (lease 2 s, renew deadline 1.2 s, retry 0.3 s: the defaults' ordering, with slack for
a busy 2-core machine) so the scenarios take a few seconds of real time; every wait is on an event with a
generous limit, and nothing asserts on how long anything took. A monitor on the callbacks fails the test if
two electors ever lead at once.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

import kubesim
from cache.client import ApiClient, ClusterConfig, resource_path
from cache.leader import LEASE_NAME, ClientLeaseApi, LeaderElectionConfig, LeaderElector, LeaseRecord

NS = "default"
LIMIT = 20.0  # seconds: generous bound on any single wait, only there so a bug fails instead of hanging
JSON = dict[str, Any]


class CountingLeases(ClientLeaseApi):
    """The real HTTP Lease API, counting successful replaces so tests can wait for N renewals."""

    def __init__(self, client: ApiClient) -> None:
        super().__init__(client)
        self.updates = 0
        self.changed = asyncio.Event()

    async def update(self, namespace: str, name: str, lease: JSON) -> JSON:
        out = await super().update(namespace, name, lease)
        self.updates += 1
        self.changed.set()
        return out

    async def wait_updates(self, n: int) -> None:
        target = self.updates + n
        while self.updates < target:
            self.changed.clear()
            await self.changed.wait()


class Monitor:
    def __init__(self) -> None:
        self.leaders: set[str] = set()
        self.log: list[tuple[str, str]] = []
        self.violations: list[str] = []
        self.someone_leads = asyncio.Event()

    def started(self, who: str) -> None:
        if self.leaders:
            self.violations.append(f"{who} started while {sorted(self.leaders)} led")
        self.leaders.add(who)
        self.someone_leads.set()
        self.log.append((who, "started"))

    def stopped(self, who: str) -> None:
        self.leaders.discard(who)
        self.log.append((who, "stopped"))


class Cluster:
    def __init__(self, sim: kubesim.SimCluster, client: ApiClient) -> None:
        self.sim = sim
        self.client = client
        self.monitor = Monitor()
        self.tasks: dict[str, asyncio.Task[None]] = {}

    def elector(self, who: str) -> tuple[LeaderElector, CountingLeases]:
        api = CountingLeases(self.client)
        elector = LeaderElector(
            api,
            LeaderElectionConfig(namespace=NS, identity=who, lease_duration=2.0, renew_deadline=1.2, retry_period=0.3),
            on_started_leading=lambda: self.monitor.started(who),
            on_stopped_leading=lambda: self.monitor.stopped(who),
        )
        self.tasks[who] = asyncio.create_task(elector.run(), name=f"elector:{who}")
        return elector, api

    async def stop(self, who: str) -> None:
        task = self.tasks.pop(who)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async def lease(self) -> LeaseRecord:
        path = resource_path("coordination.k8s.io", "v1", "leases", namespace=NS, name=LEASE_NAME)
        return LeaseRecord.from_lease(await self.client.get(path))


@pytest.fixture
async def cluster() -> AsyncIterator[Cluster]:
    async with (
        kubesim.SimCluster(with_cluster=False) as sim,
        ApiClient(ClusterConfig(server=sim.url), max_retries=2) as client,
    ):
        c = Cluster(sim, client)
        try:
            yield c
        finally:
            sim.faults.error_rate = 0.0
            for who in list(c.tasks):
                await c.stop(who)
        assert c.monitor.violations == []


async def test_two_electors_one_leader_then_hand_over_on_release(cluster: Cluster) -> None:
    a, a_api = cluster.elector("a")
    async with asyncio.timeout(LIMIT):
        await a.leading.wait()
    b, _ = cluster.elector("b")
    async with asyncio.timeout(LIMIT):
        # Eight renewals span more than the 2 s lease: b must have seen them and kept waiting.
        await a_api.wait_updates(8)
    assert a.is_leader
    assert not b.is_leader
    assert b.observed_leader == "a"
    rec = await cluster.lease()
    assert rec.holder == "a"
    assert rec.lease_duration_seconds == 2
    assert rec.transitions == 0
    assert rec.renew_time is not None
    assert rec.renew_time > (rec.acquire_time or "")

    await cluster.stop("a")
    released = await cluster.lease()
    if released.holder == "":  # b may already have taken it
        assert released.lease_duration_seconds == 1
    async with asyncio.timeout(LIMIT):
        await b.leading.wait()
    rec = await cluster.lease()
    assert rec.holder == "b"
    assert rec.transitions == 1
    assert cluster.monitor.log == [("a", "started"), ("a", "stopped"), ("b", "started")]


async def test_leader_that_cannot_renew_stops_and_another_takes_over_after_expiry(cluster: Cluster) -> None:
    a, _ = cluster.elector("a")
    async with asyncio.timeout(LIMIT):
        await a.leading.wait()
    b, _ = cluster.elector("b")
    faults = cluster.sim.faults
    faults.error_code = 500
    faults.paths = ("leases",)
    faults.verbs = ("PUT",)
    faults.error_rate = 1.0
    async with asyncio.timeout(LIMIT):
        await a.lost.wait()
    assert not a.is_leader
    assert not b.is_leader, "b cannot write either, and a's lease has not expired in b's eyes"
    assert cluster.tasks["a"].done(), "a lost leader's campaign ends; the process decides what next"
    faults.error_rate = 0.0
    async with asyncio.timeout(LIMIT):
        await b.leading.wait()
    rec = await cluster.lease()
    assert rec.holder == "b"
    assert rec.transitions == 1
    assert cluster.monitor.log == [("a", "started"), ("a", "stopped"), ("b", "started")]


async def test_stale_replace_is_rejected_so_racing_candidates_cannot_both_win(cluster: Cluster) -> None:
    # Two electors start at the same moment on a fresh cluster: one creates the Lease (the other gets
    # AlreadyExists or a 409 Conflict on its replace) and only one ever leads.
    electors = [cluster.elector(name)[0] for name in ("a", "b", "c")]
    async with asyncio.timeout(LIMIT):
        await cluster.monitor.someone_leads.wait()
    assert sum(e.is_leader for e in electors) == 1
    rec = await cluster.lease()
    assert rec.holder in {"a", "b", "c"}
    assert rec.transitions == 0


class FailingFirst(ClientLeaseApi):
    """The real HTTP Lease API, but every ``get`` raises ``fail`` while it is set; counts attempts."""

    def __init__(self, client: ApiClient) -> None:
        super().__init__(client)
        self.fail: Exception | None = None
        self.attempts = 0
        self.attempted = asyncio.Event()

    async def get(self, namespace: str, name: str) -> JSON | None:
        self.attempts += 1
        self.attempted.set()
        if self.fail is not None:
            raise self.fail
        return await super().get(namespace, name)

    async def wait_attempts(self, n: int) -> None:
        target = self.attempts + n
        while self.attempts < target:
            self.attempted.clear()
            await self.attempted.wait()


async def test_a_lease_that_cannot_be_acquired_says_why_once_per_cause(cluster: Cluster) -> None:
    from structlog.testing import capture_logs

    from cache.errors import Forbidden

    missing = "no-such-namespace"
    api = FailingFirst(cluster.client)
    elector = LeaderElector(
        api,
        LeaderElectionConfig(namespace=missing, identity="a", lease_duration=2.0, renew_deadline=1.2, retry_period=0.3),
    )
    with capture_logs() as logs:
        task = asyncio.create_task(elector.run())
        try:
            async with asyncio.timeout(LIMIT):
                api.fail = Forbidden("leases is forbidden", reason="Forbidden")
                await api.wait_attempts(3)
                api.fail = None  # RBAC fixed; the namespace is still missing: the create answers 404
                await api.wait_attempts(3)
                await cluster.client.create(resource_path("", "v1", "namespaces"), {"metadata": {"name": missing}})
                await elector.wait_leading()
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    blocked = [e for e in logs if e["event"] == "leader_election_blocked"]
    assert [e["log_level"] for e in blocked] == ["warning", "warning"]  # one per distinct cause, not per attempt
    assert "forbidden" in blocked[0]["cause"]
    assert "--leader-elect=false" in blocked[0]["cause"]
    assert f"kubectl create namespace {missing}" in blocked[1]["cause"]
    assert "--leader-elect=false" in blocked[1]["cause"]
    assert not [e for e in logs if e["event"] == "leader_attempt_failed"]
    assert [e["event"] for e in logs if e["event"] == "leader_election_unblocked"] == ["leader_election_unblocked"]
    assert elector.blocked_cause is None
