"""Nothing the cluster sends can stop an informer (issue 13): undecodable objects, frozen connections, stalls.

* An object that does not fit the record is quarantined: the LIST still syncs, the WATCH moves past it, the
  decodable objects keep flowing, the cached version stays (stale) until a decodable one or a delete arrives,
  and the skip is counted by reason and reported once per version.
* A watch connection frozen by a proxy (no FIN, no RST) is noticed within the read-idle bound and replaced.
* An informer that cannot make progress reports ``stalled()``: readiness turns false and the stall gauge moves.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Literal

import aiohttp
import msgspec
import pytest

import kubesim
from api.records import Meta
from cache.client import ApiClient, ClusterConfig, load_cluster_config, resource_path
from cache.informer import Informer, Quarantined
from cache.store import Store
from controller.app import UNDECODABLE_REASON, Controller
from controller.settings import load_settings
from metrics.hub import MetricsHub
from metrics.server import ObservabilityServer

NS = "robust"
SVC = resource_path("", "v1", "services", NS)


class PickyLabels(msgspec.Struct, frozen=True):
    tier: Literal["gold", "silver"] = "gold"


class PickyMeta(Meta, frozen=True, gc=False):
    """A record that is strict on one field the test controls: the ``tier`` label must be gold or silver."""

    labels: PickyLabels = msgspec.field(default_factory=PickyLabels)  # type: ignore[assignment]


class Picky(msgspec.Struct, frozen=True, rename="camel"):
    metadata: PickyMeta = msgspec.field(default_factory=PickyMeta)


def svc(name: str, tier: str) -> dict[str, object]:
    return {"metadata": {"name": name, "labels": {"tier": tier}}, "spec": {"clusterIP": "None"}}


@pytest.fixture
async def sim(tmp_path: Path) -> AsyncIterator[tuple[kubesim.SimCluster, ApiClient]]:
    async with kubesim.SimCluster(nodes=0, bookmark_interval=0.05) as cluster:
        path = cluster.write_kubeconfig(tmp_path / "kubeconfig")
        async with ApiClient(await load_cluster_config(path)) as client:
            await client.create(resource_path("", "v1", "namespaces"), {"metadata": {"name": NS}})
            yield cluster, client


class Changes:
    """Wakes a waiter whenever the informer tells anything (handler, quarantine, watch open)."""

    def __init__(self) -> None:
        self.event = asyncio.Event()
        self.quarantined: list[Quarantined] = []

    def poke(self, *_args: object) -> None:
        self.event.set()

    def on_quarantine(self, item: Quarantined) -> None:
        self.quarantined.append(item)
        self.event.set()

    async def until(self, predicate: Callable[[], bool], limit: float = 10.0) -> None:
        async with asyncio.timeout(limit):
            while not predicate():
                self.event.clear()
                await self.event.wait()


def picky_informer(client: ApiClient, **kw: float) -> tuple[Informer[Picky], Store[Picky], Changes]:
    store: Store[Picky] = Store(lambda o: f"{o.metadata.namespace}/{o.metadata.name}")
    inf = Informer(client, SVC, Picky, store, name="services", backoff_initial=0.01, backoff_max=0.05, **kw)
    changes = Changes()
    inf.add_handler(changes.poke)
    inf.on_quarantine.append(changes.on_quarantine)
    inf.on_watch_open.append(changes.poke)
    return inf, store, changes


@contextlib.asynccontextmanager
async def running(inf: Informer[Picky]) -> AsyncIterator[None]:
    task = asyncio.create_task(inf.run())
    try:
        await asyncio.wait_for(inf.synced.wait(), 10)
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def tier(store: Store[Picky], name: str) -> str | None:
    obj = store.get(f"{NS}/{name}")
    return None if obj is None else obj.metadata.labels.tier


async def test_informer_quarantines_undecodable_objects_and_keeps_streaming(
    sim: tuple[kubesim.SimCluster, ApiClient],
) -> None:
    _, client = sim
    await client.create(SVC, svc("good", "gold"))
    await client.create(SVC, svc("bad-at-list", "bronze"))
    inf, store, changes = picky_informer(client)
    async with running(inf):
        # The LIST synced despite the bad item; the bad item is counted and reported, not cached.
        assert tier(store, "good") == "gold"
        assert store.get(f"{NS}/bad-at-list") is None
        assert inf.decode_errors == {"invalid_value": 1}
        [first] = changes.quarantined
        assert (first.name, first.namespace, first.reason) == ("bad-at-list", NS, "invalid_value")
        assert not first.stale_kept
        assert "$.metadata.labels.tier" in first.detail

        # A cached object turns bad: the stale version stays, the stream moves on to later events.
        await client.patch(f"{SVC}/good", {"metadata": {"labels": {"tier": "bronze"}}})
        await client.create(SVC, svc("later", "silver"))
        await changes.until(lambda: tier(store, "later") == "silver")
        assert tier(store, "good") == "gold"  # present but stale
        assert f"{NS}/good" in inf.quarantined
        assert [q.stale_kept for q in changes.quarantined if q.name == "good"] == [True]
        assert inf.decode_errors == {"invalid_value": 2}

        # A decodable version leaves quarantine; a delete of a still-bad object deletes.
        await client.patch(f"{SVC}/good", {"metadata": {"labels": {"tier": "silver"}}})
        await changes.until(lambda: tier(store, "good") == "silver")
        assert f"{NS}/good" not in inf.quarantined
        await client.patch(f"{SVC}/later", {"metadata": {"labels": {"tier": "tin"}}})
        await changes.until(lambda: f"{NS}/later" in inf.quarantined)
        await client.delete(f"{SVC}/later")
        await changes.until(lambda: store.get(f"{NS}/later") is None)
        assert f"{NS}/later" not in inf.quarantined
        assert inf.decode_errors == {"invalid_value": 3}  # bad-at-list, good (bronze), later (tin); not the delete
        assert [q.name for q in changes.quarantined] == ["bad-at-list", "good", "later"]

        # A re-list reports nothing twice: bad-at-list's version was already counted.
        await inf.list_once()
        assert inf.decode_errors == {"invalid_value": 3}
        assert set(inf.quarantined) == {f"{NS}/bad-at-list"}


async def test_informer_metrics_count_decode_errors_by_reason(sim: tuple[kubesim.SimCluster, ApiClient]) -> None:
    _, client = sim
    await client.create(SVC, svc("bad", "bronze"))
    inf, _store, _changes = picky_informer(client)
    hub = MetricsHub()
    hub.add_informers([inf])
    async with running(inf):
        await hub.render()
        get = hub.registry.get_sample_value
        assert get("informer_decode_errors_total", {"resource": "services", "reason": "invalid_value"}) == 1
        assert get("informer_quarantined_objects", {"resource": "services"}) == 1
        assert get("informer_stalled", {"resource": "services"}) == 0


class FreezingProxy:
    """A loopback TCP proxy; ``freeze()`` stops forwarding on every open connection without closing it (what a
    wedged NAT or proxy does). New connections are forwarded normally."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.frozen: list[asyncio.Event] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: list[asyncio.StreamWriter] = []
        self.server: asyncio.Server | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    def freeze(self) -> None:
        for ev in self.frozen:
            ev.set()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        self._writers += [writer, up_writer]
        frozen = asyncio.Event()
        self.frozen.append(frozen)

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError):
                while data := await src.read(65536):
                    if frozen.is_set():
                        await asyncio.Event().wait()  # hold the bytes forever, close nothing
                    dst.write(data)
                    await dst.drain()

        for task in (asyncio.create_task(pump(reader, up_writer)), asyncio.create_task(pump(up_reader, writer))):
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for w in self._writers:
            w.close()
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


async def test_informer_replaces_a_watch_frozen_without_fin_within_the_idle_bound(
    sim: tuple[kubesim.SimCluster, ApiClient],
) -> None:
    cluster, client = sim
    host, port = cluster.url.removeprefix("http://").rsplit(":", 1)
    proxy = FreezingProxy((host, int(port)))
    proxied = ApiClient(ClusterConfig(server=f"http://127.0.0.1:{await proxy.start()}"))
    try:
        # Bookmarks every 0.05 s; a 1 s idle bound is twenty missed bookmarks.
        inf, store, changes = picky_informer(proxied, watch_idle_timeout=1.0)
        async with running(inf):
            await changes.until(lambda: inf.watch_opens >= 1)
            opens = inf.watch_opens
            restarts = inf.watch_restarts
            proxy.freeze()
            await changes.until(lambda: inf.watch_opens > opens, limit=20)
            assert inf.watch_restarts > restarts
            # The new stream is live: an object created now arrives through it.
            await client.create(SVC, svc("after-freeze", "gold"))
            await changes.until(lambda: tier(store, "after-freeze") == "gold")
    finally:
        await proxied.close()
        await proxy.close()


async def test_informer_stall_fails_readiness_and_moves_the_gauge(sim: tuple[kubesim.SimCluster, ApiClient]) -> None:
    cluster, client = sim
    inf, _store, changes = picky_informer(client, stall_after=0.5)
    hub = MetricsHub()
    hub.add_informers([inf])
    probes = ObservabilityServer(
        render=hub.render,
        metrics_bind_address="0",
        health_bind_address="127.0.0.1:0",
        readiness_checks={"informers-progressing": lambda: not inf.stalled()},
    )
    await probes.start()
    url = f"http://127.0.0.1:{probes.ports['health']}/readyz"
    try:
        async with running(inf), aiohttp.ClientSession() as http:
            assert (await (await http.get(url)).text()) == "ok"
            # Every request for services now fails with 500 and the open watch is cut: a reconnect loop.
            cluster.faults.error_rate, cluster.faults.error_code, cluster.faults.paths = 1.0, 500, ("/services",)
            cluster.store.drop_watches("services")

            async def ticker() -> None:  # wake the waiter now and then to re-check the clock-based predicate
                while True:
                    await asyncio.sleep(0.1)
                    changes.poke()

            tick = asyncio.create_task(ticker())
            try:
                await changes.until(inf.stalled)
                resp = await http.get(url)
                assert resp.status == 500
                assert "[-]informers-progressing failed" in await resp.text()
                await hub.render()
                assert hub.registry.get_sample_value("informer_stalled", {"resource": "services"}) == 1
                since = hub.registry.get_sample_value("informer_seconds_since_progress", {"resource": "services"})
                assert since is not None
                assert since > 0.5
                # The cluster heals: the informer makes progress again and readiness comes back.
                cluster.faults.error_rate = 0.0
                await changes.until(lambda: not inf.stalled())
                assert (await http.get(url)).status == 200
            finally:
                tick.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await tick
    finally:
        await probes.stop()


async def test_undecodable_child_becomes_a_warning_event_on_its_jobset(
    sim: tuple[kubesim.SimCluster, ApiClient],
) -> None:
    _, client = sim
    from api.crdgen import build_crd
    from api.jobset_types import JobSet, ObjectMeta

    await client.create(resource_path("apiextensions.k8s.io", "v1", "customresourcedefinitions"), build_crd())
    ctl = Controller(load_settings(overrides={"leader_election.leader_elect": False}), client)
    js = JobSet(metadata=ObjectMeta(name="train", namespace=NS, uid="uid-1", resource_version="7"))
    ctl.jobsets.upsert(js)
    item = Quarantined(
        resource="pods",
        kind="Pod",
        namespace=NS,
        name="train-workers-0-0",
        uid="pod-uid",
        resource_version="42",
        reason="wrong_type",
        detail="Expected `int | null`, got `str` - at `$.spec.priority`",
        jobset="train",
        stale_kept=False,
    )
    events = resource_path("events.k8s.io", "v1", "events", NS)
    ctl.on_undecodable(item)
    await asyncio.gather(*ctl._event_tasks)
    [event] = (await client.get(events))["items"]
    assert event["type"] == "Warning"
    assert event["reason"] == UNDECODABLE_REASON
    assert event["regarding"]["name"] == "train"
    assert "Pod train-workers-0-0" in event["note"]
    assert "$.spec.priority" in event["note"]
    # Objects of no known JobSet produce no event.
    ctl.on_undecodable(dataclasses.replace(item, jobset="other"))
    assert not ctl._event_tasks


async def test_informer_survives_an_unforeseen_error_by_relisting(sim: tuple[kubesim.SimCluster, ApiClient]) -> None:
    _, client = sim
    await client.create(SVC, svc("present", "gold"))
    inf, store, _changes = picky_informer(client)
    original = inf.list_once
    calls = 0

    async def flaky_list() -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("a bug in a handler path")
        await original()

    inf.list_once = flaky_list  # type: ignore[method-assign]
    async with running(inf):
        assert tier(store, "present") == "gold"
        assert calls == 2


async def test_liveness_fails_only_when_an_informer_task_has_ended(sim: tuple[kubesim.SimCluster, ApiClient]) -> None:
    _, client = sim
    ctl = Controller(load_settings(overrides={"leader_election.leader_elect": False}), client)
    assert ctl.informers_running()  # nothing started yet

    started = asyncio.Event()

    async def ends_at_once() -> None:
        started.set()

    ctl.informers[0].run = ends_at_once  # type: ignore[method-assign]
    stop = asyncio.Event()
    task = asyncio.create_task(ctl.run(stop))
    try:
        async with asyncio.timeout(10):
            await started.wait()  # its task exists and is running: wait for it to end
            await asyncio.wait([ctl._informer_tasks[0]])
        assert not ctl.informers_running()
        assert ctl.informers_progressing()  # an ended informer is a liveness matter, not (yet) a stall
    finally:
        stop.set()
        await task
