"""Leader election renewing from its own thread (``cache.leader_thread``): a blocked controller loop keeps the Lease.

The simulated API server runs on a thread of its own too, so it answers while the test's loop is blocked — as
a real API server would while the controller's loop is held by a long reconcile. The test's loop is blocked on
purpose (``time.sleep`` inside a coroutine, reading the Lease over plain synchronous HTTP meanwhile) for more
than twice the renew deadline. Timings are shortened (lease 3 s, renew deadline 2 s, retry 0.4 s). Nothing
asserts on how long anything took: the assertions are on the Lease (holder, renewTime, transitions) and the
write fence; the monotonic clock only sets how long the block lasts and bounds the waits so a bug fails instead
of hanging.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import orjson
import pytest

import kubesim
from cache.client import ApiClient, ClusterConfig, resource_path
from cache.errors import Fenced
from cache.leader import LEASE_NAME, ClientLeaseApi, LeaderElectionConfig, LeaderElector, LeaseRecord
from cache.leader_thread import ThreadedLeaderElector

NS = "default"
LIMIT = 30.0  # seconds: bound on any wait, only there so a bug fails instead of hanging
RENEW_DEADLINE = 2.0
JSON = dict[str, Any]
LEASE_PATH = resource_path("coordination.k8s.io", "v1", "leases", namespace=NS, name=LEASE_NAME)


def config(identity: str) -> LeaderElectionConfig:
    return LeaderElectionConfig(
        namespace=NS, identity=identity, lease_duration=3.0, renew_deadline=RENEW_DEADLINE, retry_period=0.4
    )


class ThreadedSim:
    """kubesim on its own thread and loop, with synchronous reads and writes of the Lease."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="leader-thread-kubesim", daemon=True)
        self.thread.start()
        self.sim = kubesim.SimCluster(with_cluster=False)
        asyncio.run_coroutine_threadsafe(self.sim.start(), self.loop).result(LIMIT)
        self.url = self.sim.url

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.sim.stop(), self.loop).result(LIMIT)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(LIMIT)
        self.loop.close()

    def lease(self) -> JSON:
        """The Lease, or ``{}`` before anyone created it."""
        try:
            with urllib.request.urlopen(self.url + LEASE_PATH, timeout=LIMIT) as resp:
                out: JSON = orjson.loads(resp.read())
                return out
        except urllib.error.HTTPError as err:
            if err.code != 404:
                raise
            return {}

    def record(self) -> LeaseRecord:
        return LeaseRecord.from_lease(self.lease())

    def take_lease(self, holder: str) -> None:
        """Another candidate takes the Lease (a replace at the current resourceVersion, as a rival would)."""
        lease = self.lease()
        lease["spec"]["holderIdentity"] = holder
        request = urllib.request.Request(
            self.url + LEASE_PATH,
            data=orjson.dumps(lease),
            method="PUT",
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=LIMIT) as resp:
            assert resp.status == 200


@pytest.fixture
def sim() -> Iterator[ThreadedSim]:
    s = ThreadedSim()
    try:
        yield s
    finally:
        s.close()


@pytest.fixture
async def client(sim: ThreadedSim) -> AsyncIterator[ApiClient]:
    async with ApiClient(ClusterConfig(server=sim.url), max_retries=1) as c:
        yield c


async def lead(elector: Any) -> asyncio.Task[None]:
    task: asyncio.Task[None] = asyncio.create_task(elector.run(), name="elector")
    async with asyncio.timeout(LIMIT):
        await elector.wait_leading()
    return task


async def stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def block_loop(sim: ThreadedSim, seconds: float, until: Callable[[], bool] = lambda: False) -> list[LeaseRecord]:
    """Hold the calling thread (and so its event loop) for ``seconds`` or until ``until()``, reading the Lease
    every 50 ms; returns every distinct record seen."""
    seen = [sim.record()]
    start = time.monotonic()
    while time.monotonic() - start < seconds and not until():
        time.sleep(0.05)
        rec = sim.record()
        if rec != seen[-1]:
            seen.append(rec)
    return seen


@pytest.mark.parametrize("threaded", [True, False], ids=["own-thread", "on-the-loop"])
async def test_a_blocked_controller_loop_keeps_the_lease_only_when_renewing_from_a_thread(
    sim: ThreadedSim, threaded: bool
) -> None:
    """The renewer on its own thread renews all through a block of the loop longer than the renew deadline and
    keeps the Lease; on the loop (the contrast, and proof the block is real) nothing is renewed meanwhile and the
    write fence is shut when the loop wakes."""
    cluster = ClusterConfig(server=sim.url)
    lease_client: ApiClient | None = None
    elector: ThreadedLeaderElector | LeaderElector
    if threaded:
        elector = ThreadedLeaderElector(cluster, config("a"))
    else:
        lease_client = ApiClient(cluster)
        elector = LeaderElector(ClientLeaseApi(lease_client), config("a"))
    task = await lead(elector)
    try:
        before = sim.record()
        assert before.holder == "a"
        seen = block_loop(sim, 2.5 * RENEW_DEADLINE)  # a "reconcile" that holds the loop; 5 renew periods
        renewals = [r for r in seen[1:] if r.renew_time != before.renew_time]
        assert all(r.holder == "a" and r.transitions == 0 for r in seen), seen
        if threaded:
            assert len(renewals) >= 3, f"renewTime advanced only {len(renewals)} times while the loop was blocked"
            assert [r.renew_time or "" for r in seen] == sorted(r.renew_time or "" for r in seen)
            assert elector.may_write()
            await asyncio.sleep(0)  # the loop runs again: nothing was lost meanwhile
            assert elector.is_leader
            assert not elector.lost.is_set()
            assert sim.record().holder == "a"
        else:
            assert renewals == [], "the on-loop elector cannot renew while its loop is blocked"
            assert not elector.may_write(), "its renew deadline passed while it was blocked"
    finally:
        await stop(task)
        if lease_client is not None:
            await lease_client.close()


async def test_a_lease_taken_while_the_loop_is_blocked_fences_writes_at_once(
    sim: ThreadedSim, client: ApiClient
) -> None:
    """The renewer notices the rival on its own thread and shuts the fence before the blocked loop hears of it;
    the write the loop sends when it wakes is refused, then ``run()`` returns and the stopped callbacks run."""
    stopped: list[str] = []
    elector = ThreadedLeaderElector(
        ClusterConfig(server=sim.url), config("a"), on_stopped_leading=lambda: stopped.append("a")
    )
    client.write_fence = elector.may_write
    task = await lead(elector)
    try:
        assert elector.may_write()
        sim.take_lease("rival")
        block_loop(sim, LIMIT, until=lambda: not elector.may_write())
        assert not elector.may_write(), "the renewer did not notice the rival"
        assert elector.is_leader, "the blocked loop has not been told yet: only the fence knows"
        assert stopped == []
        cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "late-write"}}
        with pytest.raises(Fenced):
            await client.create(resource_path("", "v1", "configmaps", namespace=NS), cm)
        async with asyncio.timeout(LIMIT):
            await task  # run() returns once the loss is delivered
        assert stopped == ["a"]
        assert not elector.is_leader
        assert elector.lost.is_set()
        assert sim.record().holder == "rival", "a lost leader never takes the Lease back in that run"
        listed = await client.get(resource_path("", "v1", "configmaps", namespace=NS))
        names = [i["metadata"]["name"] for i in listed["items"]]
        assert "late-write" not in names
    finally:
        await stop(task)


async def test_a_renewer_that_cannot_reach_the_api_shuts_the_fence_at_its_renew_deadline(sim: ThreadedSim) -> None:
    elector = ThreadedLeaderElector(ClusterConfig(server=sim.url), config("a"))
    task = await lead(elector)
    try:
        faults = sim.sim.faults
        faults.verbs, faults.error_rate = ("PUT",), 1.0  # every renewal (a replace) answered 500 from now on
        seen = block_loop(sim, LIMIT, until=lambda: not elector.may_write())
        assert not elector.may_write(), "the fence stayed open past the renew deadline"
        assert {r.holder for r in seen} == {"a"}, "nobody else took the Lease: the deadline alone shut the fence"
        faults.error_rate, faults.verbs = 0.0, ()
        async with asyncio.timeout(LIMIT):
            await task
        assert elector.lost.is_set()
    finally:
        sim.sim.faults.error_rate, sim.sim.faults.verbs = 0.0, ()
        await stop(task)


async def test_cancelling_run_releases_the_lease_and_ends_the_thread(sim: ThreadedSim) -> None:
    elector = ThreadedLeaderElector(ClusterConfig(server=sim.url), config("a"))
    task = await lead(elector)
    thread = elector.thread
    assert thread is not None
    assert thread.is_alive()
    await stop(task)
    assert task.cancelled()
    assert not thread.is_alive()
    assert not elector.may_write()
    released = sim.record()
    assert released.holder == ""
    assert released.lease_duration_seconds == 1
