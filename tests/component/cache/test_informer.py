"""Informers against the simulated cluster: sync, events, dropped watches and forced 410s (issue 5).

The invariant under test: whatever the stream does, the store ends equal to the server's truth, and handlers
saw every object's lifecycle exactly once (no lost and no duplicated adds or deletes).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest

import kubesim
from api.records import Service
from cache.client import ApiClient, load_cluster_config, resource_path
from cache.informer import Informer
from cache.store import Store

NS = "informer-test"


def _svc(name: str) -> dict[str, object]:
    return {"metadata": {"name": name}, "spec": {"clusterIP": "None", "selector": {"app": name}}}


class Recorder:
    def __init__(self) -> None:
        self.adds: Counter[str] = Counter()
        self.deletes: Counter[str] = Counter()
        self.updates = 0
        self.changed = asyncio.Event()

    def __call__(self, old: Service | None, new: Service | None) -> None:
        if old is None and new is not None:
            self.adds[new.metadata.name] += 1
        elif new is None and old is not None:
            self.deletes[old.metadata.name] += 1
        else:
            self.updates += 1
        self.changed.set()


@pytest.fixture
async def sim(tmp_path: Path) -> AsyncIterator[tuple[kubesim.SimCluster, ApiClient]]:
    async with kubesim.SimCluster(nodes=0) as cluster:
        path = cluster.write_kubeconfig(tmp_path / "kubeconfig")
        async with ApiClient(await load_cluster_config(path)) as client:
            await client.create(resource_path("", "v1", "namespaces"), {"metadata": {"name": NS}})
            yield cluster, client


@contextlib.asynccontextmanager
async def running(inf: Informer[Service]) -> AsyncIterator[None]:
    task = asyncio.create_task(inf.run())
    try:
        await asyncio.wait_for(inf.synced.wait(), 10)
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def until(rec: Recorder, predicate: object) -> None:
    async with asyncio.timeout(10):
        while not predicate():  # type: ignore[operator]
            rec.changed.clear()
            await rec.changed.wait()


def make(client: ApiClient, page_size: int = 500) -> tuple[Informer[Service], Store[Service], Recorder]:
    store: Store[Service] = Store(lambda s: f"{s.metadata.namespace}/{s.metadata.name}")
    inf = Informer(
        client,
        resource_path("", "v1", "services", NS),
        Service,
        store,
        page_size=page_size,
        backoff_initial=0.01,
        backoff_max=0.05,
    )
    rec = Recorder()
    inf.add_handler(rec)
    return inf, store, rec


async def watch_is_live(client: ApiClient, rec: Recorder) -> None:
    """An object created now reaches the handlers only through an open WATCH: then the stream is live."""
    await client.create(resource_path("", "v1", "services", NS), _svc("probe"))
    await until(rec, lambda: rec.adds["probe"] == 1)
    await client.delete(resource_path("", "v1", "services", NS, "probe"))
    await until(rec, lambda: rec.deletes["probe"] == 1)


async def server_names(client: ApiClient) -> set[str]:
    items = (await client.get(resource_path("", "v1", "services", NS)))["items"]
    return {i["metadata"]["name"] for i in items}


async def test_paginated_list_then_watch(sim: tuple[kubesim.SimCluster, ApiClient]) -> None:
    _, client = sim
    path = resource_path("", "v1", "services", NS)
    for i in range(25):
        await client.create(path, _svc(f"pre-{i}"))
    inf, store, rec = make(client, page_size=7)
    async with running(inf):
        assert inf.has_synced()
        assert len(store) == 25
        await client.create(path, _svc("live"))
        await client.patch(f"{path}/pre-3", {"metadata": {"labels": {"x": "y"}}})
        await client.delete(f"{path}/pre-4")
        await until(rec, lambda: rec.adds["live"] == 1 and rec.deletes["pre-4"] == 1 and rec.updates >= 1)
        assert store.get(f"{NS}/pre-3") is not None
        assert store.get(f"{NS}/pre-3").metadata.labels == {"x": "y"}  # type: ignore[union-attr]
        assert {s.metadata.name for s in store} == await server_names(client)


async def test_dropped_watch_loses_and_duplicates_nothing(sim: tuple[kubesim.SimCluster, ApiClient]) -> None:
    cluster, client = sim
    path = resource_path("", "v1", "services", NS)
    inf, store, rec = make(client)
    async with running(inf):
        for round_ in range(5):
            cluster.store.drop_watches("services")
            await client.create(path, _svc(f"s-{round_}"))
            if round_:
                await client.delete(f"{path}/s-{round_ - 1}")
        await until(rec, lambda: rec.adds["s-4"] == 1 and rec.deletes["s-3"] == 1)
        assert {s.metadata.name for s in store} == await server_names(client) == {"s-4"}
        assert all(n == 1 for n in rec.adds.values()), rec.adds
        assert all(n == 1 for n in rec.deletes.values()), rec.deletes
        assert inf.watch_restarts >= 1  # a drop while reconnecting has no stream to close


async def test_forced_410_relists_and_reports_missed_deletes(sim: tuple[kubesim.SimCluster, ApiClient]) -> None:
    cluster, client = sim
    path = resource_path("", "v1", "services", NS)
    for i in range(3):
        await client.create(path, _svc(f"k-{i}"))
    inf, store, rec = make(client)
    async with running(inf):
        await watch_is_live(client, rec)
        relists = inf.relists
        cluster.store.expire_watches("services")
        await client.delete(f"{path}/k-0")
        await client.create(path, _svc("k-new"))
        await until(rec, lambda: rec.deletes["k-0"] == 1 and rec.adds["k-new"] == 1)
        assert inf.relists > relists
        assert {s.metadata.name for s in store} == await server_names(client) == {"k-1", "k-2", "k-new"}
        assert all(n == 1 for n in rec.adds.values()), rec.adds


async def test_recreated_object_is_a_delete_then_an_add(sim: tuple[kubesim.SimCluster, ApiClient]) -> None:
    cluster, client = sim
    path = resource_path("", "v1", "services", NS)
    await client.create(path, _svc("same"))
    inf, store, rec = make(client)
    async with running(inf):
        old_uid = store.get(f"{NS}/same").metadata.uid  # type: ignore[union-attr]
        await watch_is_live(client, rec)
        cluster.store.expire_watches("services")  # the gap hides the delete and the re-create
        await client.delete(f"{path}/same")
        await client.create(path, _svc("same"))
        await until(rec, lambda: rec.adds["same"] == 2)
        assert rec.deletes["same"] == 1
        assert store.get(f"{NS}/same").metadata.uid != old_uid  # type: ignore[union-attr]


async def test_write_through_never_resurrects_a_deleted_object(sim: tuple[kubesim.SimCluster, ApiClient]) -> None:
    """A DELETE response applied after the watch's DELETED event must not bring the object back."""
    _, client = sim
    path = resource_path("", "v1", "services", NS)
    inf, store, rec = make(client)
    async with running(inf):
        await client.create(path, _svc("gone"))
        await until(rec, lambda: rec.adds["gone"] == 1)
        stale = store.get(f"{NS}/gone")
        assert stale is not None
        await client.delete(f"{path}/gone")
        await until(rec, lambda: rec.deletes["gone"] == 1)
        inf.upsert_if_newer(stale)  # the late write-through of an older version
        assert store.get(f"{NS}/gone") is None
        created = await client.create(path, _svc("fresh"))
        inf.upsert_if_newer(inf.decode(orjson.dumps(created)))  # a create response newer than the watch
        assert store.get(f"{NS}/fresh") is not None


def _bad_svc(name: str) -> dict[str, object]:
    """A Service the record cannot hold (a label value that is not a string), as the admission fuzz suite got a
    JobSet with ``metadata.generateName: null`` stored and the whole JobSet informer stalled on it."""
    return {"metadata": {"name": name, "namespace": NS, "labels": {"a": 5}}, "spec": {"clusterIP": "None"}}


async def test_an_undecodable_object_is_skipped_not_fatal(sim: tuple[kubesim.SimCluster, ApiClient]) -> None:
    cluster, client = sim
    path = resource_path("", "v1", "services", NS)
    await client.create(path, _svc("good-before"))
    cluster.store.seed("services", _bad_svc("bad-listed"))  # trusted insert: no validation stands in the way
    inf, store, rec = make(client)
    async with running(inf):
        assert {s.metadata.name for s in store} == {"good-before"}  # the LIST synced without the bad object
        assert sum(inf.decode_errors.values()) == 1
        cluster.store.seed("services", _bad_svc("bad-watched"))
        await client.create(path, _svc("good-after"))
        await until(rec, lambda: rec.adds["good-after"] == 1)  # the WATCH goes on past the bad event
        assert sum(inf.decode_errors.values()) == 2
        await watch_is_live(client, rec)
    assert rec.adds["bad-listed"] == rec.adds["bad-watched"] == 0
