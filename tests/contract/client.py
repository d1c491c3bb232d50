"""A deliberately small raw REST client for the API contract suite, configured only from a kubeconfig.

Role: the contract tests must run unchanged against kubesim and against a real kube-apiserver, and must see the
wire exactly (status codes, ``Status`` bodies, headers, watch lines), so they use this thin aiohttp wrapper
instead of a typed client. It understands the kubeconfig fields real clusters use: server, CA (file or data),
client certificate and key (file or data), bearer token, insecure-skip-tls-verify.

Invariants: every call returns a :class:`Reply` (never raises for an HTTP error status); watches are bounded by
an explicit timeout; the session is closed by ``close()``.
"""

from __future__ import annotations

import base64
import io
import os
import ssl
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson
import yaml

JSON = dict[str, Any]


@dataclass
class Reply:
    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)
    raw: bytes = b""

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def obj(self) -> JSON:
        assert isinstance(self.body, dict), self.body
        return self.body


def _materialise(data: str | None, path: str | None, tmpdir: str, name: str) -> str | None:
    if data:
        out = os.path.join(tmpdir, name)
        with open(out, "wb") as fh:
            fh.write(base64.b64decode(data))
        return out
    return path


class Kube:
    """REST access to one cluster."""

    def __init__(self, kubeconfig: str) -> None:
        with open(kubeconfig, encoding="utf-8") as fh:
            cfg = yaml.safe_load(fh)
        ctx_name = cfg.get("current-context")
        ctx = next(c["context"] for c in cfg["contexts"] if c["name"] == ctx_name)
        cluster = next(c["cluster"] for c in cfg["clusters"] if c["name"] == ctx["cluster"])
        user = next((u["user"] for u in cfg.get("users") or [] if u["name"] == ctx.get("user")), {}) or {}
        self.server = str(cluster["server"]).rstrip("/")
        self._tmp = tempfile.TemporaryDirectory()
        self.headers: dict[str, str] = {}
        if user.get("token"):
            self.headers["Authorization"] = f"Bearer {user['token']}"
        self.ssl: ssl.SSLContext | bool = False
        if self.server.startswith("https"):
            base = os.path.dirname(os.path.abspath(kubeconfig))
            ca = _materialise(
                cluster.get("certificate-authority-data"),
                cluster.get("certificate-authority"),
                self._tmp.name,
                "ca.crt",
            )
            ctx_ssl = ssl.create_default_context(cafile=os.path.join(base, ca) if ca else None)
            if cluster.get("insecure-skip-tls-verify"):
                ctx_ssl.check_hostname = False
                ctx_ssl.verify_mode = ssl.CERT_NONE
            cert = _materialise(
                user.get("client-certificate-data"), user.get("client-certificate"), self._tmp.name, "client.crt"
            )
            key = _materialise(user.get("client-key-data"), user.get("client-key"), self._tmp.name, "client.key")
            if cert and key:
                ctx_ssl.load_cert_chain(os.path.join(base, cert), os.path.join(base, key))
            self.ssl = ctx_ssl
        self._session: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
        self._tmp.cleanup()

    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(headers=self.headers)
        return self._session

    async def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        params: dict[str, str] | None = None,
        content_type: str = "application/json",
        raw: bytes | None = None,
        accept: str = "application/json",
    ) -> Reply:
        data: Any = raw if raw is not None else (orjson.dumps(body) if body is not None else None)
        if isinstance(data, bytes) and len(data) > 1024 * 1024:
            data = io.BytesIO(data)
        headers = {"Accept": accept}
        if data is not None:
            headers["Content-Type"] = content_type
        async with self.session().request(
            method, self.server + path, data=data, params=params, headers=headers, ssl=self.ssl
        ) as resp:
            payload = await resp.read()
            try:
                parsed: Any = orjson.loads(payload) if payload else None
            except orjson.JSONDecodeError:
                parsed = payload.decode(errors="replace")
            return Reply(resp.status, parsed, dict(resp.headers), payload)

    async def get(self, path: str, **params: str) -> Reply:
        return await self.request("GET", path, params=params or None)

    async def post(self, path: str, body: Any, **params: str) -> Reply:
        return await self.request("POST", path, body, params=params or None)

    async def put(self, path: str, body: Any, **params: str) -> Reply:
        return await self.request("PUT", path, body, params=params or None)

    async def patch(self, path: str, body: Any, kind: str = "merge", **params: str) -> Reply:
        ctype = {
            "merge": "application/merge-patch+json",
            "json": "application/json-patch+json",
            "strategic": "application/strategic-merge-patch+json",
            "apply": "application/apply-patch+yaml",
        }[kind]
        return await self.request("PATCH", path, body, params=params or None, content_type=ctype)

    async def delete(self, path: str, body: Any = None, **params: str) -> Reply:
        return await self.request("DELETE", path, body, params=params or None)

    async def watch(self, path: str, timeout: float = 20, **params: str) -> AsyncIterator[JSON]:  # noqa: ASYNC109
        """Yield watch events (decoded lines) until the server ends the stream or ``timeout`` passes."""
        q = {"watch": "1", **params}
        tmo = aiohttp.ClientTimeout(total=timeout, sock_read=timeout)
        async with self.session().get(
            self.server + path, params=q, ssl=self.ssl, timeout=tmo, headers={"Accept": "application/json"}
        ) as resp:
            assert resp.status == 200, await resp.text()
            try:
                async for line in resp.content:
                    if line.strip():
                        yield orjson.loads(line)
            except (TimeoutError, aiohttp.ClientPayloadError):
                return


async def until(events: AsyncIterator[JSON], predicate: Any, limit: int = 10_000) -> JSON:
    """The first event satisfying ``predicate`` (bounded; fails if the stream ends first)."""
    n = 0
    async for ev in events:
        n += 1
        if predicate(ev):
            return ev
        if n >= limit:
            break
    raise AssertionError("watch ended before the expected event")
