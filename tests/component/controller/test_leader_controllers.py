"""Two controllers against one simulated cluster, each gated by its own Lease elector: a hand-over never lets
both reconcile.

Each "process" is a ``controller.app.Controller`` with its own API client, started with
``leading=elector.wait_leading`` so its workers start only once it holds the Lease, and with
``on_stopped_leading`` shutting its queue and stopping it — the wiring ``pyjobset run --leader-elect`` needs.
Every reconcile and leadership change is stamped with one global sequence number, so the test checks the order
of events, never how long anything took.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from dataclasses import dataclass, field

import pytest

from api import constants as c
from cache.client import ApiClient, load_cluster_config, resource_path
from cache.leader import ClientLeaseApi, LeaderElectionConfig, LeaderElector
from controller.app import Controller
from controller.settings import Settings
from tests.builders import JobSetBuilder
from tests.conftest import EXTERNAL_CONTROLLER, wait_for

LIMIT = 30.0

pytestmark = pytest.mark.skipif(EXTERNAL_CONTROLLER, reason="runs controllers in the test's own loop")


@dataclass
class Timeline:
    seq: itertools.count[int] = field(default_factory=itertools.count)
    events: list[tuple[int, str, str]] = field(default_factory=list)

    def note(self, who: str, what: str) -> None:
        self.events.append((next(self.seq), who, what))

    def first(self, who: str, what: str) -> int:
        return min(s for s, w, e in self.events if w == who and e == what)

    def all(self, who: str, what: str) -> list[int]:
        return [s for s, w, e in self.events if w == who and e == what]


class Observer:
    def __init__(self, timeline: Timeline, who: str) -> None:
        self.timeline = timeline
        self.who = who

    def reconcile_done(self, controller: str, result: str, seconds: float) -> None:
        self.timeline.note(self.who, "reconcile")


class Process:
    """One controller process: client, controller, elector, and the tasks that run them."""

    def __init__(self, who: str, client: ApiClient, settings: Settings, namespace: str, timeline: Timeline) -> None:
        self.who = who
        self.client = client
        self.stop = asyncio.Event()
        self.controller = Controller(settings, client)
        self.controller.reconciler.observers.append(Observer(timeline, who))

        def stopped() -> None:
            timeline.note(who, "stopped")
            self.controller.queue.shut_down()  # no further reconcile starts, at once
            self.stop.set()

        self.elector = LeaderElector(
            ClientLeaseApi(client),
            LeaderElectionConfig(
                namespace=namespace, identity=who, lease_duration=2.0, renew_deadline=1.2, retry_period=0.3
            ),
            on_started_leading=lambda: timeline.note(who, "started"),
            on_stopped_leading=stopped,
        )
        self.campaign = asyncio.create_task(self.elector.run(), name=f"campaign:{who}")
        self.running = asyncio.create_task(
            self.controller.run(self.stop, leading=self.elector.wait_leading), name=f"controller:{who}"
        )

    async def shutdown(self) -> None:
        """Clean shutdown: stop the controller (workers cancelled), then give the Lease back."""
        self.stop.set()
        await self.running
        self.campaign.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.campaign


async def test_hand_over_between_two_controllers_never_overlaps_reconciles(
    kubeconfig: str, api: ApiClient, jobset_crd: None, namespace: str, controller_settings: Settings
) -> None:
    config = await load_cluster_config(kubeconfig)
    timeline = Timeline()
    jobsets = resource_path(c.GROUP, c.VERSION, c.PLURAL, namespace)
    jobs = resource_path("batch", "v1", "jobs", namespace)
    async with ApiClient(config) as client_a, ApiClient(config) as client_b:
        a = Process("a", client_a, controller_settings, namespace, timeline)
        b: Process | None = None
        try:
            async with asyncio.timeout(LIMIT):
                await a.elector.leading.wait()
                await a.controller.ready.wait()
            b = Process("b", client_b, controller_settings, namespace, timeline)
            async with asyncio.timeout(LIMIT):
                await b.controller.ready.wait()

            await api.create(jobsets, JobSetBuilder("first", namespace).rjob("w", 2).obj())
            await wait_for(api, jobs, lambda items: len(items) == 2, limit=LIMIT)
            assert a.controller.reconciler.reconciles > 0
            assert b.controller.reconciler.reconciles == 0, "a candidate's workers must not run"
            assert not b.elector.is_leader

            await a.shutdown()
            async with asyncio.timeout(LIMIT):
                await b.elector.leading.wait()
            await api.create(jobsets, JobSetBuilder("second", namespace).rjob("w", 3).obj())
            await wait_for(api, jobs, lambda items: len(items) == 5, limit=LIMIT)
            assert b.controller.reconciler.reconciles > 0
        finally:
            for proc in (a, b):
                if proc is not None and not proc.running.done():
                    await proc.shutdown()

    a_reconciles = timeline.all("a", "reconcile")
    b_reconciles = timeline.all("b", "reconcile")
    assert a_reconciles
    assert b_reconciles
    assert max(a_reconciles) < timeline.first("a", "stopped") < timeline.first("b", "started")
    assert timeline.first("b", "started") < min(b_reconciles)
