"""The API client against the simulated cluster with fault injection (issue 5): retries, limits, errors."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

import kubesim
from cache.client import ApiClient, TokenBucket, load_cluster_config, resource_path
from cache.clock import FakeClock
from cache.errors import AlreadyExists, Conflict, Fenced, Invalid, NotFound, ServerError, TooManyRequests

CM = resource_path("", "v1", "configmaps", "default")


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[kubesim.SimCluster]:
    async with kubesim.SimCluster(nodes=0, with_cluster=False) as sim:
        sim.write_kubeconfig(tmp_path / "kubeconfig")
        yield sim


async def client_for(sim: kubesim.SimCluster, tmp_path: Path, **kw: object) -> tuple[ApiClient, Counter[int]]:
    config = await load_cluster_config(sim.write_kubeconfig(tmp_path / "kc"))
    client = ApiClient(config, **kw)  # type: ignore[arg-type]
    codes: Counter[int] = Counter()
    client.on_request.append(lambda method, code: codes.update([code]))
    return client, codes


async def test_429_is_retried_honouring_retry_after_then_surfaces(cluster: kubesim.SimCluster, tmp_path: Path) -> None:
    f = cluster.faults
    f.error_rate, f.error_code, f.retry_after, f.paths = 1.0, 429, 0, ("/configmaps",)
    client, codes = await client_for(cluster, tmp_path, max_retries=3)
    async with client:
        with pytest.raises(TooManyRequests):
            await client.get(CM)
    assert codes[429] == 4  # the first try and three retries


async def test_transient_500s_are_retried_until_success(cluster: kubesim.SimCluster, tmp_path: Path) -> None:
    f = cluster.faults
    f.error_rate, f.error_code, f.paths, f.rng = 0.5, 500, ("/configmaps",), random.Random(7)
    client, codes = await client_for(cluster, tmp_path, max_retries=10)
    async with client:
        for i in range(20):
            await client.create(CM, {"metadata": {"name": f"cm-{i}"}, "data": {"i": str(i)}})
        f.error_rate = 0.0
        names = {n for i in (await client.get(CM))["items"] if (n := i["metadata"]["name"]).startswith("cm-")}
    assert names == {f"cm-{i}" for i in range(20)}  # every create landed exactly once
    assert codes[500] > 0


async def test_5xx_beyond_the_retry_budget_surfaces_as_server_error(
    cluster: kubesim.SimCluster, tmp_path: Path
) -> None:
    f = cluster.faults
    f.error_rate, f.error_code, f.paths = 1.0, 500, ("/configmaps",)
    client, codes = await client_for(cluster, tmp_path, max_retries=1)
    async with client:
        with pytest.raises(ServerError):
            await client.get(CM)
    assert codes[500] == 2


async def test_terminal_errors_surface_at_once(cluster: kubesim.SimCluster, tmp_path: Path) -> None:
    client, codes = await client_for(cluster, tmp_path)
    async with client:
        created = await client.create(CM, {"metadata": {"name": "x"}})
        with pytest.raises(AlreadyExists):
            await client.create(CM, {"metadata": {"name": "x"}})
        stale = dict(created)
        await client.patch(f"{CM}/x", {"data": {"a": "b"}})
        with pytest.raises(Conflict) as exc:
            await client.replace(f"{CM}/x", {**stale, "data": {"c": "d"}})
        assert not isinstance(exc.value, AlreadyExists)
        with pytest.raises(NotFound):
            await client.get(f"{CM}/absent")
        with pytest.raises(Invalid):
            await client.create(CM, {"metadata": {"name": "Not_A_Valid_Name"}})
    assert codes[409] == 2
    assert codes[404] == 1


async def test_qps_limiter_spaces_requests(cluster: kubesim.SimCluster, tmp_path: Path) -> None:
    # Every request takes a token from the client's bucket: after the burst, the next one is not sent until the
    # bucket's clock reaches its slot (1/qps later). The bucket runs on a FakeClock, so nothing waits for real.
    clock = FakeClock()
    client, codes = await client_for(cluster, tmp_path)
    client.limiter = TokenBucket(qps=50.0, burst=5, clock=clock)
    async with client:
        for _ in range(5):
            await client.get(CM)  # the burst goes out at once
        assert clock.pending() == 0
        sixth = asyncio.create_task(client.get(CM))
        for _ in range(5):
            await asyncio.sleep(0)  # let it reach the bucket
        assert clock.pending() == 1, "the request after the burst did not wait for a token"
        assert not sixth.done()
        assert sum(codes.values()) == 5
        clock.advance(0.02)  # the bucket refills at 50/s
        await sixth
        assert sum(codes.values()) == 6


async def test_write_fence_refuses_writes_without_sending_them_and_lets_reads_through(
    cluster: kubesim.SimCluster, tmp_path: Path
) -> None:
    client, codes = await client_for(cluster, tmp_path)
    may_write = True
    client.write_fence = lambda: may_write
    async with client:
        await client.create(CM, {"metadata": {"name": "before"}})
        may_write = False
        sent = sum(codes.values())
        with pytest.raises(Fenced):
            await client.create(CM, {"metadata": {"name": "after"}})
        with pytest.raises(Fenced):
            await client.delete(f"{CM}/before")
        with pytest.raises(Fenced):
            await client.patch(f"{CM}/before", {"data": {"k": "v"}})
        assert sum(codes.values()) == sent, "a fenced write must never reach the server"
        names = {i["metadata"]["name"] for i in (await client.get(CM))["items"]}
    assert "before" in names
    assert "after" not in names
