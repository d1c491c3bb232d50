"""``pyjobset get`` / ``describe`` fetching on the simulated cluster, with the controller running.

A JobSet restarts twice (a worker exits 137 in each of the first two attempts); the views show the restarts, the
tree of the third attempt's Jobs and pods, the GPU view, the controller's restart events and — once an annotation
says so — the restart history. Errors are one line.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest

from api import constants as c
from api import extensions as x
from cache.client import ApiClient, resource_path
from controller.app import Controller
from controller.inspect import InspectError, fetch_describe, fetch_get, render_describe
from tests.builders import JobSetBuilder
from tests.conftest import wait_for

JSON = dict[str, Any]


def gpu_training(name: str, namespace: str) -> JSON:
    obj = (
        JobSetBuilder(name, namespace)
        .rjob("driver", 1, backoff_limit=0)
        .rjob("workers", 2, parallelism=2, completions=2, backoff_limit=0)
        .set("spec.failurePolicy", {"maxRestarts": 3})
        .obj()
    )
    for rj in obj["spec"]["replicatedJobs"]:
        ctr = rj["template"]["spec"]["template"]["spec"]["containers"][0]
        ctr["resources"] = {"limits": {"nvidia.com/gpu": "8"}}
    return obj


def attempt_running(attempt: int, count: int) -> Any:
    def check(items: list[JSON]) -> list[JSON] | None:
        live = [
            p
            for p in items
            if not p["metadata"].get("deletionTimestamp")
            and p["metadata"]["labels"].get(c.RESTART_ATTEMPT_KEY) == str(attempt)
            and p.get("status", {}).get("phase") == "Running"
        ]
        return live if len(live) == count else None

    return check


def all_ready(items: list[JSON]) -> bool:
    status = items[0].get("status", {}) if items else {}
    return sum(s.get("ready", 0) for s in status.get("replicatedJobsStatus", [])) == 3


async def restart_twice(api: ApiClient, namespace: str, name: str) -> None:
    await api.create(resource_path(c.GROUP, c.VERSION, c.PLURAL, namespace), gpu_training(name, namespace))
    pods_path = resource_path("", "v1", "pods", namespace)
    for attempt in (0, 1):
        pods = await wait_for(api, pods_path, attempt_running(attempt, 5), limit=60)
        victim = next(p for p in pods if p["metadata"]["labels"][c.REPLICATED_JOB_NAME_KEY] == "workers")
        await api.patch(
            resource_path("", "v1", "pods", namespace, victim["metadata"]["name"]),
            {"metadata": {"annotations": {"sim.pyjobset.io/exit-now": "137"}}},
        )
    await wait_for(api, pods_path, attempt_running(2, 5), limit=60)
    await wait_for(
        api,
        resource_path(c.GROUP, c.VERSION, c.PLURAL, namespace),
        all_ready,
        params={"fieldSelector": f"metadata.name={name}"},
    )


async def test_views_of_a_jobset_that_restarted_twice(
    controller: Controller | None, api: ApiClient, namespace: str
) -> None:
    await restart_twice(api, namespace, "train")

    def both_recovered(items: list[JSON]) -> bool:
        raw = (items[0]["metadata"].get("annotations") or {}).get(x.RESTART_HISTORY_KEY) if items else None
        history = json.loads(raw) if raw else []
        return len(history) == 2 and all("recoveredSeconds" in h for h in history)

    await wait_for(
        api,
        resource_path(c.GROUP, c.VERSION, c.PLURAL, namespace),
        both_recovered,
        params={"fieldSelector": "metadata.name=train"},
    )
    now = dt.datetime.now(dt.UTC)
    rows = await fetch_get(api, namespace, now)
    # The controller's root-cause recorder (docs/design/extensions.md) wrote last-failure and restart-history.
    assert [(r.name, r.state, r.restarts, r.ready_jobs, r.total_jobs) for r in rows] == [("train", "Running", 2, 3, 3)]
    assert rows[0].last_failure.startswith("train-workers-"), rows[0].last_failure
    assert "exited 137" in rows[0].last_failure, rows[0].last_failure
    assert [r.name for r in await fetch_get(api, None, now) if r.namespace == namespace] == ["train"]

    model = await fetch_describe(api, namespace, "train", now)
    assert model.restarts == 2
    tree = {b.name: [(j.name, j.state, j.pods, j.gpus) for j in b.jobs] for b in model.rjobs}
    assert tree == {
        "driver": [("train-driver-0", "Ready", "1 Running (1 Ready)", 8)],
        "workers": [
            ("train-workers-0", "Ready", "2 Running (2 Ready)", 16),
            ("train-workers-1", "Ready", "2 Running (2 Ready)", 16),
        ],
    }
    assert (model.gpus_held, model.gpus_idle, model.gpus_running) == (40, 0, 40)
    assert any(reason == "RestartJobSetFailurePolicyAction" for _, _, reason, _ in model.events)
    assert model.restart_history is not None
    assert [r.attempt for r in model.restart_history] == ["0", "1"]
    # Both restarts recovered (every new Job ready again), so each has a recovery time and a badput figure.
    assert all(r.recovered.endswith("s") and r.badput != "—" for r in model.restart_history), model.restart_history
    assert model.last_failure.startswith("train-workers-")
    text = render_describe(model)
    assert "Restart History:\n  —\n" not in text
    assert "exited 137" in text


async def test_missing_jobset_is_a_one_line_error(
    controller: Controller | None, api: ApiClient, namespace: str
) -> None:
    with pytest.raises(InspectError, match=f'^jobset "nope" not found in namespace "{namespace}"$'):
        await fetch_describe(api, namespace, "nope", dt.datetime.now(dt.UTC))
    assert await fetch_get(api, namespace, dt.datetime.now(dt.UTC)) == []
