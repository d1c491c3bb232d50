"""``pyjobset.io/inject-env`` on the simulated cluster: the kubesim Job controller's pods pass our pod webhook.

The JobSet controller and the admission server share the JobSet cache, as ``controller.app`` wires them; the
simulated API server calls the registered webhooks for every pod the simulated Job controller creates. Checked:
ranks across replicated jobs of different parallelism, the coordinator of ``spec.coordinator``, a user's own
value kept, and the same ranks (with the new attempt) after a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

import kubesim
from api import constants as c
from api import extensions as x
from cache.client import ApiClient, load_cluster_config, resource_path
from cache.errors import ApiError
from controller.app import Controller
from controller.settings import load_settings
from controller.webhooks.server import build_webhook_server
from tests.builders import JobSetBuilder
from tests.component.controller.test_admission import SERVICE, SYSTEM_NS, install_webhook_manifests
from tests.conftest import wait_for

JSON = dict[str, Any]
PODS = resource_path("", "v1", "pods")


@pytest.fixture
async def sim() -> AsyncIterator[kubesim.SimCluster]:
    async with kubesim.SimCluster(nodes=8, nodes_per_pool=2) as cluster:
        yield cluster


@pytest.fixture
def kubeconfig(sim: kubesim.SimCluster, tmp_path: Path) -> str:
    return sim.write_kubeconfig(tmp_path / "kubeconfig")


@pytest.fixture
async def stack(
    sim: kubesim.SimCluster, kubeconfig: str, api: ApiClient, jobset_crd: None, tmp_path: Path
) -> AsyncIterator[None]:
    await install_webhook_manifests(api)
    settings = load_settings(overrides={"leader_election.leader_elect": False})
    async with ApiClient(await load_cluster_config(kubeconfig)) as client:
        ctl = Controller(settings, client)
        stop = asyncio.Event()
        task = asyncio.create_task(ctl.run(stop), name="jobset-controller")
        await asyncio.wait_for(ctl.ready.wait(), 30)
        server = build_webhook_server(
            settings, client, ctl.pods, ctl.nodes, host="127.0.0.1", port=0, jobsets=ctl.jobsets
        )
        server.certs.cert_dir = str(tmp_path / "certs")
        assert await server.start()
        assert sim.admission is not None
        sim.admission.endpoints[(SYSTEM_NS, SERVICE)] = f"https://127.0.0.1:{server.bound_port}"
        try:
            yield
        finally:
            stop.set()
            await server.stop()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def training(name: str, namespace: str) -> JSON:
    js = (
        JobSetBuilder(name, namespace)
        .rjob("driver", 1)
        .rjob("workers", 2, parallelism=3, completions=3, backoff_limit=0)
        .set("spec.coordinator", {"replicatedJob": "workers", "jobIndex": 1, "podIndex": 0})
        .set("spec.failurePolicy", {"maxRestarts": 3})
        .annotate(x.INJECT_ENV_KEY, "torch,jax,generic")
        .annotate(x.MASTER_PORT_KEY, "23456")
        .obj()
    )
    main = js["spec"]["replicatedJobs"][1]["template"]["spec"]["template"]["spec"]["containers"][0]
    main["env"] = [{"name": "MASTER_PORT", "value": "9999"}]
    return js


def attempt_pods(attempt: str, count: int) -> Any:
    def check(items: list[JSON]) -> list[JSON] | None:
        live = [
            p
            for p in items
            if not p["metadata"].get("deletionTimestamp")
            and p["metadata"]["labels"].get(c.RESTART_ATTEMPT_KEY) == attempt
        ]
        return live if len(live) == count else None

    return check


def env_of(pod: JSON) -> dict[str, str]:
    return {e["name"]: e.get("value", "") for e in pod["spec"]["containers"][0].get("env", [])}


def ranks(pods: list[JSON]) -> dict[tuple[str, str, str], dict[str, str]]:
    out = {}
    for p in pods:
        labels = p["metadata"]["labels"]
        key = (
            labels[c.REPLICATED_JOB_NAME_KEY],
            labels[c.JOB_INDEX_KEY],
            p["metadata"]["annotations"][c.JOB_COMPLETION_INDEX_ANNOTATION],
        )
        out[key] = env_of(p)
    return out


async def test_pods_get_stable_ranks_across_uneven_replicated_jobs_and_restarts(
    stack: None, api: ApiClient, namespace: str
) -> None:
    await api.create(resource_path(c.GROUP, c.VERSION, c.PLURAL, namespace), training("train", namespace))
    pods = await wait_for(api, resource_path("", "v1", "pods", namespace), attempt_pods("0", 7))
    before = ranks(pods)
    assert sorted(int(e["RANK"]) for e in before.values()) == list(range(7))
    assert before[("driver", "0", "0")]["RANK"] == "0"
    assert before[("workers", "0", "2")]["RANK"] == "3"
    assert before[("workers", "1", "1")]["JAX_PROCESS_ID"] == "5"
    for got in before.values():
        assert got["WORLD_SIZE"] == got["JAX_NUM_PROCESSES"] == got["JOBSET_WORLD_SIZE"] == "7"
        assert got["MASTER_ADDR"] == got["JOBSET_COORDINATOR"] == "train-workers-1-0.train"
        assert got["JAX_COORDINATOR_ADDRESS"] == "train-workers-1-0.train:23456"
        assert got["JOBSET_RESTART_ATTEMPT"] == "0"
    assert before[("driver", "0", "0")]["MASTER_PORT"] == "23456"
    assert before[("workers", "0", "0")]["MASTER_PORT"] == "9999"  # the user's own value is kept

    victim = next(p for p in pods if p["metadata"]["labels"][c.REPLICATED_JOB_NAME_KEY] == "workers")
    await api.patch(
        resource_path("", "v1", "pods", namespace, victim["metadata"]["name"]),
        {"metadata": {"annotations": {"sim.pyjobset.io/exit-now": "3"}}},
    )
    after = ranks(await wait_for(api, resource_path("", "v1", "pods", namespace), attempt_pods("1", 7), limit=60))
    assert after.keys() == before.keys()
    for key, got in after.items():
        assert got["JOBSET_RESTART_ATTEMPT"] == "1"
        assert got["RANK"] == before[key]["RANK"]
        assert got["JOBSET_RANK"] == before[key]["JOBSET_RANK"]


async def test_a_bad_value_is_refused_at_admission_naming_the_annotation(
    stack: None, api: ApiClient, namespace: str
) -> None:
    js = training("bad", namespace)
    js["metadata"]["annotations"][x.INJECT_ENV_KEY] = "pytorch"
    with pytest.raises(ApiError) as err:
        await api.create(resource_path(c.GROUP, c.VERSION, c.PLURAL, namespace), js)
    assert err.value.status == 422
    assert "metadata.annotations[pyjobset.io/inject-env]" in str(err.value)
    assert '"torch", "jax" and "generic"' in str(err.value)
