"""kubesim fault injection: latency, 429/500 on a fraction of calls, dropped watches, forced 410s."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import orjson
import pytest

from kubesim import SimCluster


@pytest.fixture
async def sim() -> AsyncIterator[SimCluster]:
    async with SimCluster(with_cluster=False) as cluster:
        yield cluster


async def test_error_rate_one_answers_429_with_retry_after(sim: SimCluster) -> None:
    sim.faults.error_rate = 1.0
    sim.faults.error_code = 429
    sim.faults.retry_after = 3
    async with aiohttp.ClientSession() as http, http.get(f"{sim.url}/api/v1/namespaces") as resp:
        body = orjson.loads(await resp.read())
        assert resp.status == 429
        assert resp.headers["Retry-After"] == "3"
    assert body["reason"] == "TooManyRequests"
    assert body["details"]["retryAfterSeconds"] == 3


async def test_error_rate_applies_only_to_selected_verbs_and_paths(sim: SimCluster) -> None:
    sim.faults.error_rate = 1.0
    sim.faults.verbs = ("POST",)
    sim.faults.paths = ("/configmaps",)
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{sim.url}/api/v1/namespaces/default/configmaps") as resp:
            assert resp.status == 200
        body = orjson.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}})
        async with http.post(
            f"{sim.url}/api/v1/namespaces/default/configmaps", data=body, headers={"Content-Type": "application/json"}
        ) as resp:
            assert resp.status == 500
            assert orjson.loads(await resp.read())["reason"] == "InternalError"
    assert sim.store.get_nowait("configmaps", "x", "default") is None


async def test_half_error_rate_fails_some_and_never_loses_objects(sim: SimCluster) -> None:
    sim.faults.error_rate = 0.5
    sim.faults.verbs = ("POST",)
    sim.faults.rng.seed(7)
    created = 0
    async with aiohttp.ClientSession() as http:
        for i in range(40):
            body = orjson.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"c{i}"}})
            async with http.post(
                f"{sim.url}/api/v1/namespaces/default/configmaps",
                data=body,
                headers={"Content-Type": "application/json"},
            ) as resp:
                created += resp.status == 201
    stored = [o for o in await sim.store.list("configmaps", "default") if o["metadata"]["name"].startswith("c")]
    assert 0 < created < 40
    assert len(stored) == created


async def test_expire_watches_sends_410_error_event(sim: SimCluster) -> None:
    async with aiohttp.ClientSession() as http:
        rv = sim.store.resource_version
        async with http.get(f"{sim.url}/api/v1/configmaps", params={"watch": "1", "resourceVersion": rv}) as resp:
            await asyncio.sleep(0)
            for _ in range(100):
                if sim.store.bucket(sim.store.info("configmaps")).watchers:
                    break
                await asyncio.sleep(0.01)
            sim.store.expire_watches("configmaps")
            lines = [orjson.loads(line) async for line in resp.content if line.strip()]
    assert lines[-1]["type"] == "ERROR"
    assert lines[-1]["object"]["code"] == 410


async def test_drop_watches_ends_streams_cleanly(sim: SimCluster) -> None:
    stream = sim.store.watch("configmaps", resource_version=sim.store.resource_version)
    sim.store.drop_watches()
    events = [e async for e in stream]
    assert events == []


async def test_latency_holds_api_calls_but_not_health(sim: SimCluster) -> None:
    sim.faults.latency = 3600.0
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{sim.url}/healthz") as resp:
            assert resp.status == 200
        seen = sim.server.requests
        call = asyncio.ensure_future(http.get(f"{sim.url}/api/v1/namespaces"))
        for _ in range(1000):
            if sim.server.requests > seen:
                break
            await asyncio.sleep(0.001)
        await asyncio.sleep(0.05)
        assert not call.done(), "an API call must wait out the injected latency"
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call


async def test_control_endpoint_sets_faults(sim: SimCluster) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.put(
            f"{sim.url}/kubesim/faults", data=orjson.dumps({"errorRate": 1.0, "errorCode": 429})
        ) as resp:
            assert resp.status == 200
        async with http.get(f"{sim.url}/api/v1/pods") as resp:
            assert resp.status == 429
        async with http.put(f"{sim.url}/kubesim/faults", data=orjson.dumps({})) as resp:
            assert resp.status == 200
        async with http.get(f"{sim.url}/api/v1/pods") as resp:
            assert resp.status == 200


async def test_error_codes_mix_429_and_500_and_counts_them(sim: SimCluster) -> None:
    sim.faults.error_rate = 1.0
    sim.faults.error_codes = (429, 500)
    sim.faults.rng.seed(3)
    seen = set()
    async with aiohttp.ClientSession() as http:
        for _ in range(20):
            async with http.get(f"{sim.url}/api/v1/namespaces") as resp:
                seen.add(resp.status)
    assert seen == {429, 500}
    assert sim.faults.counts["429"] + sim.faults.counts["500"] == 20


async def test_hang_holds_a_call_for_hang_seconds(sim: SimCluster) -> None:
    sim.faults.hang_rate = 1.0
    sim.faults.hang_seconds = 3600.0
    async with aiohttp.ClientSession() as http:
        call = asyncio.ensure_future(http.get(f"{sim.url}/api/v1/namespaces"))
        for _ in range(1000):
            if sim.faults.counts["hang"]:
                break
            await asyncio.sleep(0.001)
        assert sim.faults.counts["hang"] == 1
        assert not call.done(), "a hung call must not be answered before hang_seconds"
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        sim.faults.hang_seconds = 0.0
        async with http.get(f"{sim.url}/api/v1/namespaces") as resp:
            assert resp.status == 200  # a hang delays the call, then serves it


async def test_watch_faults_end_the_stream_at_once_and_spare_other_calls(sim: SimCluster) -> None:
    sim.faults.watch_fault_rate = 1.0
    sim.faults.rng.seed(5)
    kinds = []
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{sim.url}/api/v1/configmaps") as resp:
            assert resp.status == 200  # a LIST is not a watch
        for _ in range(8):
            async with http.get(f"{sim.url}/api/v1/configmaps", params={"watch": "1"}) as resp:
                assert resp.status == 200
                lines = [orjson.loads(line) async for line in resp.content if line.strip()]
            if lines:
                assert [(e["type"], e["object"]["code"]) for e in lines] == [("ERROR", 410)]
                kinds.append("watch-expire")
            else:
                kinds.append("watch-drop")
    assert set(kinds) == {"watch-drop", "watch-expire"}
    assert sim.faults.counts == {k: kinds.count(k) for k in set(kinds)}
