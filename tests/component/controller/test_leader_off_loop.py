"""The controller process keeps its Lease while its event loop is blocked (``controller.app`` with leader election).

``run_controller`` runs in this test's loop against a simulated API server on a thread of its own; once it leads,
the loop is blocked (a stand-in for a reconcile that never yields) for 2.5 renew deadlines while the Lease is
read over plain HTTP. The renewals made meanwhile, the unchanged holder and a controller still running (no
``LeadershipLost``) after the block show the renewer does not run on that loop. Timings are shortened (lease 3 s,
renew deadline 2 s, retry 0.4 s); nothing asserts on how long anything took.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

import pytest

from cache.client import ClusterConfig
from controller.app import Running, run_controller
from controller.settings import load_settings
from tests.component.cache.test_leader_thread import LIMIT, RENEW_DEADLINE, ThreadedSim, block_loop


@pytest.fixture
def sim() -> Iterator[ThreadedSim]:
    s = ThreadedSim()
    try:
        yield s
    finally:
        s.close()


async def test_the_controller_keeps_its_lease_while_its_loop_is_blocked(sim: ThreadedSim) -> None:
    settings = load_settings(
        overrides={
            "leader_election.leader_elect": True,
            "leader_election.resource_namespace": "default",
            "leader_election.lease_duration": 3.0,
            "leader_election.renew_deadline": RENEW_DEADLINE,
            "leader_election.retry_period": 0.4,
            "metrics.bind_address": "127.0.0.1:0",
            "metrics.secure": False,
            "health.health_probe_bind_address": "127.0.0.1:0",
        }
    )
    stop = asyncio.Event()
    running = Running()
    task = asyncio.create_task(
        run_controller(settings, ClusterConfig(server=sim.url), stop, webhooks=False, running=running)
    )
    try:
        async with asyncio.timeout(LIMIT):
            await running.started.wait()
        # Wait (off the loop, which must stay free to start the campaign) until the controller holds the Lease.
        await asyncio.to_thread(block_loop, sim, LIMIT, lambda: sim.record().holder != "")
        holder = sim.record().holder
        assert holder, "the controller never took the Lease"
        seen = block_loop(sim, 2.5 * RENEW_DEADLINE)
        assert {r.holder for r in seen} == {holder}
        assert {r.transitions for r in seen} == {0}
        assert len({r.renew_time for r in seen}) >= 4, "the Lease was not renewed while the loop was blocked"
        await asyncio.sleep(0)
        assert not task.done(), "the controller stopped: it lost the Lease while its loop was blocked"
    finally:
        stop.set()
        with contextlib.suppress(asyncio.CancelledError):
            async with asyncio.timeout(LIMIT):
                await task
    assert sim.record().holder == "", "a clean stop releases the Lease"
