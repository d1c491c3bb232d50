"""Scrapes authenticated with TokenReview and authorized with SubjectAccessReview, like the reference's endpoint.

The simulated cluster does not serve the review APIs, so a loopback aiohttp server answers them (what a real
kube-apiserver answers for the shipped ``jobset-metrics-reader`` binding): token ``reader`` is a ServiceAccount
allowed to ``get /metrics``, ``stranger`` is authenticated but not allowed, anything else is not authenticated.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from cache.client import ApiClient, ClusterConfig
from metrics.auth import ACCESS_REVIEWS, TOKEN_REVIEWS, MetricsAuthorizer
from metrics.hub import MetricsHub
from metrics.server import ObservabilityServer

USERS = {
    "reader": {
        "username": "system:serviceaccount:monitoring:prometheus",
        "uid": "u-1",
        "groups": ["system:authenticated"],
    },
    "stranger": {"username": "system:serviceaccount:default:nosy", "uid": "u-2", "groups": ["system:authenticated"]},
}


class ReviewApi:
    def __init__(self) -> None:
        self.calls: list[str] = []
        self.seen: list[dict[str, Any]] = []

    async def token_review(self, request: web.Request) -> web.Response:
        self.calls.append("token")
        body = await request.json()
        user = USERS.get(body["spec"]["token"])
        status = {"authenticated": True, "user": user} if user else {"authenticated": False}
        return web.json_response({**body, "status": status}, status=201)

    async def access_review(self, request: web.Request) -> web.Response:
        self.calls.append("access")
        body = await request.json()
        self.seen.append(body["spec"])
        allowed = body["spec"]["user"] == USERS["reader"]["username"] and body["spec"]["nonResourceAttributes"] == {
            "path": "/metrics",
            "verb": "get",
        }
        return web.json_response({**body, "status": {"allowed": allowed}}, status=201)


@pytest.fixture
async def served() -> AsyncIterator[tuple[ReviewApi, int, list[float]]]:
    api = ReviewApi()
    app = web.Application()
    app.router.add_post(TOKEN_REVIEWS, api.token_review)
    app.router.add_post(ACCESS_REVIEWS, api.access_review)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    now = [0.0]
    async with ApiClient(ClusterConfig(server=f"http://127.0.0.1:{port}")) as client:
        authorizer = MetricsAuthorizer(client, ttl_allowed=60, ttl_denied=5, clock=lambda: now[0])
        server = ObservabilityServer(MetricsHub().render, "127.0.0.1:0", "0", metrics_authorizer=authorizer)
        await server.start()
        try:
            yield api, server.ports["metrics"], now
        finally:
            await server.stop()
    await runner.cleanup()


async def scrape(port: int, token: str | None) -> int:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/metrics", headers=headers) as r:
        return r.status


async def test_only_an_allowed_service_account_may_scrape(served: tuple[ReviewApi, int, list[float]]) -> None:
    api, port, _ = served
    assert await scrape(port, None) == 401
    assert await scrape(port, "forged") == 401
    assert await scrape(port, "stranger") == 403
    assert await scrape(port, "reader") == 200
    reader_review = api.seen[-1]
    assert reader_review["user"] == "system:serviceaccount:monitoring:prometheus"
    assert reader_review["groups"] == ["system:authenticated"]
    assert reader_review["uid"] == "u-1"


async def test_verdicts_are_cached_for_their_ttl(served: tuple[ReviewApi, int, list[float]]) -> None:
    api, port, now = served
    assert await scrape(port, "reader") == 200
    assert await scrape(port, "reader") == 200
    assert api.calls == ["token", "access"]
    now[0] = 61.0
    assert await scrape(port, "reader") == 200
    assert api.calls == ["token", "access"] * 2
    assert await scrape(port, "stranger") == 403
    assert await scrape(port, "stranger") == 403
    now[0] = 67.0
    assert await scrape(port, "stranger") == 403
    assert api.calls.count("token") == 4


async def test_an_unreachable_review_api_is_a_server_error_and_not_cached() -> None:
    async with ApiClient(ClusterConfig(server="http://127.0.0.1:9"), max_retries=0) as client:
        authorizer = MetricsAuthorizer(client)
        assert await authorizer.check("Bearer reader", "/metrics") == 500
        assert await authorizer.check("Basic abc", "/metrics") == 401
        assert authorizer._cache == {}
