"""``kubesim.serve``: writes a working kubeconfig once serving and stops cleanly on SIGINT/SIGTERM; the watch-list
protocol (``sendInitialEvents``) and the in-process watch API."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import aiohttp
import orjson
import yaml

from kubesim import SimCluster, serve


async def test_serve_writes_kubeconfig_and_stops_on_sigterm(tmp_path: Path) -> None:
    path = tmp_path / "kubeconfig"
    task = asyncio.create_task(serve(str(path), port=0, nodes=2))
    for _ in range(500):
        if path.exists():
            break
        await asyncio.sleep(0.01)
    cfg = yaml.safe_load(path.read_text())
    assert cfg["current-context"] == "kubesim"
    server = cfg["clusters"][0]["cluster"]["server"]
    assert server.startswith("http://127.0.0.1:")
    async with aiohttp.ClientSession() as http, http.get(f"{server}/api/v1/nodes") as resp:
        nodes = orjson.loads(await resp.read())["items"]
    assert len(nodes) == 2
    os.kill(os.getpid(), signal.SIGTERM)
    await asyncio.wait_for(task, 10)


async def test_watch_list_sends_initial_events_then_an_end_bookmark() -> None:
    async with SimCluster(with_cluster=False) as sim:
        await sim.store.create(
            "configmaps", {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "namespace": "default"}}
        )
        params = {
            "watch": "1",
            "sendInitialEvents": "true",
            "resourceVersionMatch": "NotOlderThan",
            "allowWatchBookmarks": "true",
            "resourceVersion": "",
        }
        events = []
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"{sim.url}/api/v1/namespaces/default/configmaps", params=params) as resp,
        ):
            async for line in resp.content:
                ev = orjson.loads(line)
                events.append(ev)
                if ev["type"] == "BOOKMARK":
                    break
        names = [e["object"]["metadata"]["name"] for e in events if e["type"] == "ADDED"]
        assert "a" in names
        end = events[-1]["object"]["metadata"]
        assert end["annotations"] == {"k8s.io/initial-events-end": "true"}
        bad = dict(params, resourceVersionMatch="Exact")
        async with aiohttp.ClientSession() as http, http.get(f"{sim.url}/api/v1/configmaps", params=bad) as resp:
            assert resp.status == 422


async def test_in_process_watch_streams_fresh_objects() -> None:
    async with SimCluster(with_cluster=False) as sim:
        store = sim.store
        async with store.watch("configmaps", "default", resource_version=store.resource_version) as stream:
            await store.create(
                "configmaps",
                {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "w", "namespace": "default"}},
            )
            kind, obj = await asyncio.wait_for(stream.__anext__(), 5)
            obj["metadata"]["name"] = "changed-by-caller"
        assert kind == "ADDED"
        assert (await store.get("configmaps", "w", "default"))["metadata"]["name"] == "w"
