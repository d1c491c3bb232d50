"""Two replicas under leader election on kubesim (issue 12, item 4): the leader dies in the middle of a JobSet
restart, the standby finishes the restart with no duplicate and no orphaned Job, and only the replica that
leads exports the per-JobSet and GPU families.

Each replica is wired as ``controller.app.run_controller`` wires a process: its own API client, its own
``MetricsHub`` told of leadership by ``hub.leader(name)``, workers gated on the elector. The leader is "killed"
the way SIGKILL kills a process: from inside the acting layer's callback right after the restart's status write
(``restarts: 1``, before the previous attempt's Jobs are deleted and the new ones created), every task of that
replica is cancelled and its Lease is *not* released, so the standby must wait for it to expire.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest

from api import constants as c
from api.jobset_types import JobSet
from api.plan import Plan
from cache.client import ApiClient, load_cluster_config, resource_path
from cache.leader import LEASE_NAME, ClientLeaseApi, LeaderElectionConfig, LeaderElector
from controller.app import Controller
from controller.settings import Settings
from metrics.hub import MetricsHub
from tests.builders import JobSetBuilder
from tests.conftest import EXTERNAL_CONTROLLER, wait_for

LIMIT = 60.0
FLEET = ("jobset_status", "jobset_state_count", "jobset_cluster_gpu_allocatable", "jobset_pods")
EVERY_REPLICA = ("workqueue_depth", "informer_synced", "leader_election_master_status", "rest_client_requests_total")

pytestmark = pytest.mark.skipif(EXTERNAL_CONTROLLER, reason="runs controllers in the test's own loop")


class Replica:
    """One controller process: client, metrics hub, controller, elector; ``kill()`` stops it like SIGKILL."""

    def __init__(self, who: str, client: ApiClient, settings: Settings, namespace: str) -> None:
        self.who = who
        self.stop = asyncio.Event()
        self.hub = MetricsHub()
        lead = self.hub.leader(LEASE_NAME)
        self.controller = Controller(settings, client, metrics_hub=self.hub)
        self.restart_applied = asyncio.Event()
        self.controller.reconciler.actor.observers.append(self)
        self.kill_on_restart = False
        self.elector = LeaderElector(
            ClientLeaseApi(client),
            LeaderElectionConfig(
                namespace=namespace,
                identity=who,
                lease_duration=2.0,
                renew_deadline=1.5,
                retry_period=0.3,
                release_on_cancel=False,  # a killed process releases nothing; kill() relies on this
            ),
            on_started_leading=lead.started_leading,
            on_stopped_leading=lead.stopped_leading,
        )
        self.elector.stopped_callbacks.append(self._stopped)
        self.campaign = asyncio.create_task(self.elector.run(), name=f"campaign:{who}")
        self.running = asyncio.create_task(
            self.controller.run(self.stop, leading=self.elector.wait_leading), name=f"controller:{who}"
        )

    def _stopped(self) -> None:
        self.controller.queue.shut_down()
        self.stop.set()

    def plan_applied(self, js: JobSet, plan: Plan) -> None:
        if plan.outcome is not None and plan.outcome.kind == "restarted":
            self.restart_applied.set()
            if self.kill_on_restart:
                self.kill()

    def kill(self) -> None:
        """Every task cancelled at its next await, the Lease left as it is (no release, no stop callbacks)."""
        self.campaign.cancel()
        self.running.cancel()

    async def wait_dead(self) -> None:
        for task in (self.campaign, self.running):
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def families(self) -> set[str]:
        body = (await self.hub.render()).decode()
        return {line.split(" ")[0].split("{")[0] for line in body.splitlines() if line and not line.startswith("#")}


def jobs_by_attempt(items: list[dict[str, Any]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for job in items:
        if job["metadata"].get("deletionTimestamp"):
            continue
        out.setdefault(job["metadata"]["labels"][c.RESTART_ATTEMPT_KEY], []).append(job["metadata"]["name"])
    return out


async def test_standby_finishes_a_restart_its_killed_leader_began_and_only_the_leader_exports_fleet_metrics(
    kubeconfig: str, api: ApiClient, jobset_crd: None, namespace: str, controller_settings: Settings
) -> None:
    config = await load_cluster_config(kubeconfig)
    jobsets = resource_path(c.GROUP, c.VERSION, c.PLURAL, namespace)
    jobs = resource_path("batch", "v1", "jobs", namespace)
    # Attempt 0's pods exit 1 after a second (the failure policy restarts the JobSet); attempt 1's succeed.
    sim = {
        "sim.pyjobset.io/run-seconds": "1",
        "sim.pyjobset.io/exit-code": "0",
        "sim.pyjobset.io/fail-when": f"{c.RESTART_ATTEMPT_KEY}=0",
    }
    js = (
        JobSetBuilder("train", namespace)
        .rjob("w", 2, pod_annotations=sim, backoff_limit=0)
        .set("spec.failurePolicy", {"maxRestarts": 3})
    )
    async with ApiClient(config) as client_a, ApiClient(config) as client_b:
        a = Replica("a", client_a, controller_settings, namespace)
        b: Replica | None = None
        try:
            async with asyncio.timeout(LIMIT):
                await a.elector.leading.wait()
                await a.controller.ready.wait()
            b = Replica("b", client_b, controller_settings, namespace)
            async with asyncio.timeout(LIMIT):
                await b.controller.ready.wait()
            a.kill_on_restart = True
            await api.create(jobsets, js.obj())
            await wait_for(api, jobs, lambda items: len(items) == 2, limit=LIMIT)

            leader, standby = await a.families(), await b.families()
            assert set(FLEET) <= leader
            assert standby.isdisjoint(FLEET), "a standby must not export the per-JobSet and GPU families"
            assert set(EVERY_REPLICA) <= standby
            assert set(EVERY_REPLICA) <= leader

            async with asyncio.timeout(LIMIT):
                await a.restart_applied.wait()  # and a was killed right there
                await a.wait_dead()
            killed_at = asyncio.get_running_loop().time()
            status = (await api.get(f"{jobsets}/train"))["status"]
            assert status["restarts"] == 1
            assert b.controller.reconciler.reconciles == 0

            async with asyncio.timeout(LIMIT):
                await b.elector.leading.wait()
            took = asyncio.get_running_loop().time() - killed_at
            print(f"\nkubesim: the standby took the lease {took:.2f} s after the kill")
            assert set(FLEET) <= await b.families()

            def finished(items: list[dict[str, Any]]) -> bool:
                return bool(items) and any(
                    cond["type"] == c.COND_COMPLETED and cond["status"] == "True"
                    for cond in (items[0].get("status") or {}).get("conditions") or []
                )

            await wait_for(api, jobsets, finished, params={"fieldSelector": "metadata.name=train"}, limit=LIMIT)
            final = (await api.get(f"{jobsets}/train"))["status"]
            assert final["restarts"] == 1, "the standby must finish the restart, not start another"
            by_attempt = jobs_by_attempt((await api.get(jobs))["items"])
            assert by_attempt.keys() == {"1"}, f"orphaned Jobs of attempt 0: {by_attempt}"
            assert sorted(by_attempt["1"]) == ["train-w-0", "train-w-1"]
            assert b.controller.reconciler.reconciles > 0
        finally:
            a.kill()
            await a.wait_dead()
            if b is not None:
                b.stop.set()
                await b.running
                b.campaign.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await b.campaign
