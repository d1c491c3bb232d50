"""``ApiClient`` with credentials that rotate, against a loopback API server that checks bearer tokens (the
simulated cluster accepts any token): each request carries the current token, and a 401 makes the client
refresh its credential once and repeat the request (or re-open the watch) before surfacing ``Unauthorized``."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiohttp import web

from cache.client import ApiClient, ClusterConfig
from cache.credentials import ExecPlugin, ExecSpec, StaticToken, TokenFile
from cache.errors import Unauthorized

UNAUTHORIZED = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "Unauthorized", "code": 401}


@dataclass
class TokenCheckingServer:
    """Answers GET /api/v1/namespaces and WATCH /api/v1/pods for accepted bearer tokens only; records every
    Authorization header it sees, with the status it answered."""

    accepted: set[str] = field(default_factory=set)
    seen: list[tuple[str, int]] = field(default_factory=list)
    url: str = ""

    def _check(self, request: web.Request) -> web.Response | None:
        auth = request.headers.get("Authorization", "")
        ok = auth.removeprefix("Bearer ") in self.accepted
        self.seen.append((auth.removeprefix("Bearer "), 200 if ok else 401))
        return None if ok else web.json_response(UNAUTHORIZED, status=401)

    async def namespaces(self, request: web.Request) -> web.Response:
        return self._check(request) or web.json_response({"kind": "NamespaceList", "items": []})

    async def pods(self, request: web.Request) -> web.StreamResponse:
        refused = self._check(request)
        if refused is not None:
            return refused
        resp = web.StreamResponse()
        await resp.prepare(request)
        await resp.write(json.dumps({"type": "ADDED", "object": {"metadata": {"name": "p"}}}).encode() + b"\n")
        await resp.write_eof()
        return resp


@pytest.fixture
async def server() -> AsyncIterator[TokenCheckingServer]:
    srv = TokenCheckingServer()
    app = web.Application()
    app.router.add_get("/api/v1/namespaces", srv.namespaces)
    app.router.add_get("/api/v1/pods", srv.pods)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    srv.url = f"http://127.0.0.1:{port}"
    try:
        yield srv
    finally:
        await runner.cleanup()


def rewrite_unseen(path: Path, text: str) -> None:
    """Overwrite a token in place with one of the same length and restore the mtime: invisible to ``stat``."""
    before = os.stat(path)
    with open(path, "r+") as fh:
        fh.write(text)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))


def rotate(path: Path, token: str) -> None:
    tmp = path.with_suffix(".new")
    tmp.write_text(token)
    os.replace(tmp, path)


async def test_rotated_token_file_is_used_by_the_next_request(server: TokenCheckingServer, tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("old")
    server.accepted = {"old"}
    async with ApiClient(ClusterConfig(server=server.url, credentials=TokenFile(str(token)))) as client:
        await client.get("/api/v1/namespaces")
        rotate(token, "new")
        server.accepted = {"new"}  # the old token is revoked at the same moment
        await client.get("/api/v1/namespaces")
    assert server.seen == [("old", 200), ("new", 200)]


async def test_401_rereads_the_token_file_and_repeats_the_request(server: TokenCheckingServer, tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("aaaa")
    creds = TokenFile(str(token))
    server.accepted = {"aaaa"}
    async with ApiClient(ClusterConfig(server=server.url, credentials=creds)) as client:
        await client.get("/api/v1/namespaces")
        rewrite_unseen(token, "bbbb")  # stat unchanged: only the 401 reveals it
        server.accepted = {"bbbb"}
        await client.get("/api/v1/namespaces")
    assert server.seen == [("aaaa", 200), ("aaaa", 401), ("bbbb", 200)]


async def test_a_refused_token_that_cannot_change_surfaces_unauthorized_at_once(server: TokenCheckingServer) -> None:
    async with ApiClient(ClusterConfig(server=server.url, credentials=StaticToken("nope"))) as client:
        with pytest.raises(Unauthorized):
            await client.get("/api/v1/namespaces")
    assert server.seen == [("nope", 401)]


async def test_401_reruns_the_exec_plugin_once(server: TokenCheckingServer, tmp_path: Path) -> None:
    counter = tmp_path / "runs"
    counter.write_text("0")
    script = tmp_path / "plugin.py"
    script.write_text(
        "import json, pathlib, sys\n"
        f"p = pathlib.Path({str(counter)!r})\n"
        "n = int(p.read_text()) + 1\n"
        "p.write_text(str(n))\n"
        "print(json.dumps({'apiVersion': 'client.authentication.k8s.io/v1', 'kind': 'ExecCredential',"
        " 'status': {'token': f'exec-{n}'}}))\n"
    )
    spec = ExecSpec(command=sys.executable, args=(str(script),), api_version="client.authentication.k8s.io/v1")
    server.accepted = {"exec-1"}
    async with ApiClient(ClusterConfig(server=server.url, credentials=ExecPlugin(spec))) as client:
        await client.get("/api/v1/namespaces")
        server.accepted = {"exec-2"}  # revoked early (e.g. the identity provider rotated keys)
        await client.get("/api/v1/namespaces")
        server.accepted = set()  # refused again after the refresh: surfaces rather than looping
        with pytest.raises(Unauthorized):
            await client.get("/api/v1/namespaces")
    assert server.seen == [("exec-1", 200), ("exec-1", 401), ("exec-2", 200), ("exec-2", 401), ("exec-3", 401)]
    assert counter.read_text() == "3"


async def test_watch_refreshes_once_on_401_and_reopens(server: TokenCheckingServer, tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("aaaa")
    server.accepted = {"aaaa"}
    async with ApiClient(ClusterConfig(server=server.url, credentials=TokenFile(str(token)))) as client:
        await client.get("/api/v1/namespaces")
        rewrite_unseen(token, "bbbb")
        server.accepted = {"bbbb"}
        lines = [line async for line in client.watch("/api/v1/pods", {})]
    assert [json.loads(line)["type"] for line in lines] == ["ADDED"]
    assert server.seen[1:] == [("aaaa", 401), ("bbbb", 200)]


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc")
def test_importing_the_app_does_not_load_the_generated_kubernetes_client(tmp_path: Path) -> None:
    # Reading a kubeconfig used to import kubernetes_asyncio, whose generated models cost ~35 MiB of RSS.
    import subprocess

    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "clusters: [{name: c, cluster: {server: 'http://127.0.0.1:1'}}]\nusers: [{name: u, user: {token: t}}]\n"
        "contexts: [{name: x, context: {cluster: c, user: u}}]\ncurrent-context: x\n"
    )
    code = (
        "import asyncio, sys\n"
        "import controller.app, controller.cli\n"
        "from cache.client import load_cluster_config\n"
        f"asyncio.run(load_cluster_config({str(kubeconfig)!r}))\n"
        "print(sorted({m.split('.')[0] for m in sys.modules if m.startswith('kubernetes')}))\n"
    )
    root = Path(__file__).resolve().parents[3]
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
