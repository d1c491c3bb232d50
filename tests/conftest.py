"""Fixtures shared by every tier that talks to a cluster.

A test reaches the cluster only through a kubeconfig, so the same test runs against the simulated cluster
(default: one ``kubesim.SimCluster`` per test, on 127.0.0.1, stopped at teardown) or, when
``PYJOBSET_KUBECONFIG`` is set, against another cluster such as the real control plane of the e2e tier — where
the controller runs as its own process (set ``PYJOBSET_EXTERNAL_CONTROLLER=1``) instead of in the test's loop.
Each test gets its own namespace so tests never see each other's objects on a shared cluster.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from cache.client import ApiClient, load_cluster_config, resource_path
from cache.errors import AlreadyExists, ApiError
from controller.app import Controller
from controller.settings import Settings, load_settings

EXTERNAL_KUBECONFIG = os.environ.get("PYJOBSET_KUBECONFIG")
EXTERNAL_CONTROLLER = os.environ.get("PYJOBSET_EXTERNAL_CONTROLLER") == "1"


@pytest.fixture
async def kubeconfig(tmp_path: Path) -> AsyncIterator[str]:
    if EXTERNAL_KUBECONFIG:
        yield EXTERNAL_KUBECONFIG
        return
    import kubesim

    async with kubesim.SimCluster(nodes=8) as sim:
        yield sim.write_kubeconfig(tmp_path / "kubeconfig")


@pytest.fixture
async def api(kubeconfig: str) -> AsyncIterator[ApiClient]:
    async with ApiClient(await load_cluster_config(kubeconfig)) as client:
        yield client


@pytest.fixture
async def jobset_crd(api: ApiClient) -> None:
    """Install the JobSet CRD generated from the records and wait until the API serves it."""
    from api.crdgen import build_crd

    crds = resource_path("apiextensions.k8s.io", "v1", "customresourcedefinitions")
    with contextlib.suppress(AlreadyExists):
        await api.create(crds, build_crd())

    def established(items: list[dict[str, Any]]) -> bool:
        conditions = ((items[0].get("status") or {}).get("conditions") or []) if items else []
        return any(c.get("type") == "Established" and c.get("status") == "True" for c in conditions)

    # Established means the API server serves the resource (watch-driven: no polling loop).
    await wait_for(api, crds, established, params={"fieldSelector": "metadata.name=jobsets.jobset.x-k8s.io"})
    await api.get(resource_path("jobset.x-k8s.io", "v1alpha2", "jobsets"))


@pytest.fixture
async def namespace(api: ApiClient) -> AsyncIterator[str]:
    name = f"t-{uuid.uuid4().hex[:10]}"
    await api.create(resource_path("", "v1", "namespaces"), {"metadata": {"name": name}})
    yield name
    with contextlib.suppress(ApiError):
        await api.delete(resource_path("", "v1", "namespaces", name=name))


@pytest.fixture
def controller_settings() -> Settings:
    """Override in a test module (or parametrize indirectly) to turn feature gates on."""
    return load_settings(overrides={"leader_election.leader_elect": False})


@pytest.fixture
async def controller(
    kubeconfig: str, jobset_crd: None, controller_settings: Settings
) -> AsyncIterator[Controller | None]:
    """The JobSet controller running in this test's event loop (or None when it runs as its own process)."""
    if EXTERNAL_CONTROLLER:
        yield None
        return
    config = await load_cluster_config(kubeconfig)
    async with ApiClient(config) as client:
        ctl = Controller(controller_settings, client)
        stop = asyncio.Event()
        task = asyncio.create_task(ctl.run(stop))
        await asyncio.wait_for(ctl.ready.wait(), 30)
        try:
            yield ctl
        finally:
            stop.set()
            await task


async def wait_for(
    api: ApiClient, path: str, predicate: Any, *, params: dict[str, str] | None = None, limit: float = 30.0
) -> Any:
    """Wait until ``predicate(GET path)`` is truthy, driven by a WATCH on the collection (no polling loop).

    ``path`` is a collection path; ``predicate`` receives the LIST items. Returns the predicate's value.
    """
    import orjson

    async def check() -> Any:
        body = await api.get(path, params)
        return predicate(body.get("items", [])), body.get("metadata", {}).get("resourceVersion", "")

    async with asyncio.timeout(limit):
        while True:
            value, rv = await check()
            if value:
                return value
            watch_params = {"resourceVersion": rv, "allowWatchBookmarks": "false", "timeoutSeconds": "5"}
            if params:
                watch_params.update(params)
            async with contextlib.aclosing(api.watch(path, watch_params)) as stream:  # close the WATCH on break
                async for line in stream:
                    event = orjson.loads(line)
                    if event.get("type") in ("ADDED", "MODIFIED", "DELETED"):
                        break


def pytest_configure(config: pytest.Config) -> None:
    """With ``PYJOBSET_REQUIRE_KUBECTL=1`` (CI sets it through ``scripts/test``), a missing kubectl is an error,
    never a reason for the kubectl-driven tests (cli, examples, contract) to skip."""
    if os.environ.get("PYJOBSET_REQUIRE_KUBECTL") == "1":
        path = os.environ.get("PYJOBSET_KUBECTL")
        if not path or not os.access(path, os.X_OK):
            raise pytest.UsageError(
                f"PYJOBSET_REQUIRE_KUBECTL=1 but PYJOBSET_KUBECTL={path!r} is not an executable kubectl: "
                "run tests/e2e/build.sh and export PYJOBSET_KUBECTL=$(tests/e2e/build.sh --print-bin-dir)/kubectl"
            )
