"""Every failure the controller meets is visible where the user looks (issue 13, item 4).

A status write the API server refuses for a reason retrying cannot cure becomes a Warning event
``StatusUpdateFailed`` on the JobSet that quotes the server's words (they name the field) and the fix; part of a
policy the controller had to skip (an invalid failure-policy message pattern) becomes a Warning event
``PolicyNotApplied``. Both run on the simulated cluster with the controller in the test's loop: the refusal is
kubesim's fault injection answering the status PUT with a 422 naming a field, as CRD validation does.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

import kubesim
from api import constants as c
from api.crdgen import build_crd
from cache.client import ApiClient, load_cluster_config, resource_path
from controller.act import REASON_POLICY_NOT_APPLIED, REASON_STATUS_UPDATE_FAILED
from controller.app import Controller
from controller.settings import load_settings
from tests.builders import JobSetBuilder
from tests.conftest import wait_for

NS = "default"


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[tuple[kubesim.SimCluster, ApiClient]]:
    async with kubesim.SimCluster(nodes=2) as sim:
        config = await load_cluster_config(sim.write_kubeconfig(tmp_path / "kubeconfig"))
        async with ApiClient(config) as api:
            await api.create(resource_path("apiextensions.k8s.io", "v1", "customresourcedefinitions"), build_crd())
            await wait_for(
                api,
                resource_path("apiextensions.k8s.io", "v1", "customresourcedefinitions"),
                lambda items: any(
                    cond.get("type") == "Established" and cond.get("status") == "True"
                    for crd in items
                    for cond in crd.get("status", {}).get("conditions") or []
                ),
            )
            ctl = Controller(load_settings(overrides={"leader_election.leader_elect": False}), api)
            stop = asyncio.Event()
            task = asyncio.create_task(ctl.run(stop))
            await asyncio.wait_for(ctl.ready.wait(), 30)
            try:
                yield sim, api
            finally:
                stop.set()
                await task


def warnings(reason: str, name: str) -> Any:
    def pick(items: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
        print("EVENTS", [(e.get("reason"), e.get("type"), e.get("regarding", {}).get("name")) for e in items])
        found = [
            e
            for e in items
            if e.get("reason") == reason and e.get("type") == "Warning" and e.get("regarding", {}).get("name") == name
        ]
        return found or None

    return pick


async def test_a_refused_status_write_becomes_a_warning_event_naming_the_field_and_the_fix(
    world: tuple[kubesim.SimCluster, ApiClient],
) -> None:
    sim, api = world
    faults = sim.faults
    faults.error_code = 422
    faults.invalid_field = "status.replicatedJobsStatus[0].name"
    faults.paths = ("/jobsets/refused/status",)
    faults.verbs = ("PUT",)
    faults.error_rate = 1.0
    await api.create(resource_path(c.GROUP, c.VERSION, c.PLURAL, NS), JobSetBuilder("refused", NS).rjob("w", 1).obj())
    events = await wait_for(
        api, resource_path("events.k8s.io", "v1", "events", NS), warnings(REASON_STATUS_UPDATE_FAILED, "refused")
    )
    note = events[0]["note"]
    assert "status.replicatedJobsStatus[0].name" in note, note
    assert "fix:" in note, note
    # Once the cause is gone the controller carries on by itself (the refusal was requeued with backoff).
    faults.error_rate = 0.0
    done = await wait_for(
        api,
        resource_path(c.GROUP, c.VERSION, c.PLURAL, NS),
        lambda items: [js for js in items if js["metadata"]["name"] == "refused" and js.get("status")] or None,
    )
    assert done[0]["status"]["replicatedJobsStatus"][0]["name"] == "w"


async def test_an_invalid_failure_policy_pattern_is_a_warning_event_not_only_a_log_line(
    world: tuple[kubesim.SimCluster, ApiClient],
) -> None:
    _sim, api = world
    js = JobSetBuilder("patterns", NS).rjob("w", 1).obj()
    js["spec"]["failurePolicy"] = {
        "maxRestarts": 1,
        "rules": [{"name": "bad", "action": "FailJobSet", "onJobFailureMessagePatterns": ["(unclosed"]}],
    }
    await api.create(resource_path(c.GROUP, c.VERSION, c.PLURAL, NS), js)
    jobs = await wait_for(api, resource_path("batch", "v1", "jobs", NS), lambda items: items or None)
    job = jobs[0]
    job["status"] = {
        "startTime": "2026-01-01T00:00:00Z",
        "conditions": [
            {"type": "FailureTarget", "status": "True", "reason": "BackoffLimitExceeded", "message": "boom"},
            {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded", "message": "boom"},
        ],
        "failed": 1,
    }
    await api.replace(resource_path("batch", "v1", "jobs", NS, job["metadata"]["name"], "status"), job)
    events = await wait_for(
        api, resource_path("events.k8s.io", "v1", "events", NS), warnings(REASON_POLICY_NOT_APPLIED, "patterns")
    )
    note = events[0]["note"]
    assert "'bad'" in note, note
    assert "(unclosed" in note, note
