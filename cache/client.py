"""The API client: configuration, one shared aiohttp session, client-side QPS/burst, retries, watches.

Role: every byte the controller exchanges with the API server goes through ``ApiClient``. kubernetes_asyncio is
used only to *load configuration* (kubeconfig or in-cluster, auth, TLS); requests are plain aiohttp so that
LIST and WATCH bodies reach the informers as raw bytes (never kubernetes_asyncio model objects).

Invariants:
* writes and reads share one token bucket (default 500 QPS / 500 burst, like the reference) and a bound on
  requests in flight; watches are long-lived and take a token only to open;
* 429 (honouring Retry-After), 5xx and connection failures are retried with capped exponential backoff up to
  ``max_retries`` times; every other error (404, 409 Conflict/AlreadyExists, 422, ...) surfaces to the caller at
  once as a class of ``cache.errors``;
* credentials never appear in logs or error messages.
"""

from __future__ import annotations

import asyncio
import random
import ssl
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import aiohttp
import orjson

from api.jsontypes import JSON
from cache.clock import Clock, RealClock
from cache.errors import ApiError, ConnectionFailed, TransientError, error_for

MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"

USER_AGENT = "pyjobset/0.1"


@dataclass(frozen=True)
class ClusterConfig:
    """Where the API server is and how to authenticate; built from a kubeconfig or the in-cluster files."""

    server: str
    ssl_context: ssl.SSLContext | None = None
    headers: Mapping[str, str] = field(default_factory=dict)


async def load_cluster_config(kubeconfig: str | None = None, *, context: str | None = None) -> ClusterConfig:
    """Read a kubeconfig (or in-cluster configuration when ``kubeconfig`` is None) into a ``ClusterConfig``."""
    from kubernetes_asyncio import config as kconfig  # heavy import, only needed at start-up
    from kubernetes_asyncio.client import Configuration

    cfg = Configuration()
    if kubeconfig is None:
        kconfig.load_incluster_config(client_configuration=cfg)  # type: ignore[no-untyped-call]
    else:
        await kconfig.load_kube_config(config_file=kubeconfig, context=context, client_configuration=cfg)
    server = str(cfg.host).rstrip("/")
    headers: dict[str, str] = {}
    token = cfg.api_key.get("authorization") or cfg.api_key.get("BearerToken")
    if token:
        prefix = cfg.api_key_prefix.get("authorization", "")
        headers["Authorization"] = f"{prefix} {token}".strip() if not token.startswith("Bearer") else token
    elif cfg.username and cfg.password:
        headers["Authorization"] = aiohttp.BasicAuth(cfg.username, cfg.password).encode()
    ctx: ssl.SSLContext | None = None
    if server.startswith("https"):
        ctx = ssl.create_default_context(cafile=cfg.ssl_ca_cert) if cfg.ssl_ca_cert else ssl.create_default_context()
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        if not cfg.verify_ssl:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        if cfg.cert_file and cfg.key_file:
            ctx.load_cert_chain(cfg.cert_file, cfg.key_file)
    return ClusterConfig(server=server, ssl_context=ctx, headers=headers)


class TokenBucket:
    """Awaitable token bucket: ``await acquire()`` returns once a token is available (qps <= 0: unlimited).

    Each caller reserves its token at once (the balance may go negative) and sleeps until its own slot, so
    waiting callers never contend for a lock and timer slack never accumulates across a long burst (a
    reservation, like Go's ``rate.Limiter``, rather than sleeping token by token). Time comes from ``clock``
    (the process's monotonic clock unless a test injects a ``FakeClock``).
    """

    def __init__(self, qps: float, burst: int, *, clock: Clock | None = None) -> None:
        self.qps = qps
        self.burst = max(1, burst)
        self.clock: Clock = clock if clock is not None else RealClock()
        self._tokens = float(self.burst)
        self._last = self.clock.now()

    def reserve(self) -> float:
        """Take one token now; returns how long the caller must wait before using it."""
        now = self.clock.now()
        self._tokens = min(float(self.burst), self._tokens + (now - self._last) * self.qps)
        self._last = now
        self._tokens -= 1
        return 0.0 if self._tokens >= 0 else -self._tokens / self.qps

    async def acquire(self) -> None:
        if self.qps <= 0:
            return
        delay = self.reserve()
        if delay > 0:
            await self.clock.sleep(delay)


def resource_path(
    group: str,
    version: str,
    plural: str,
    namespace: str | None = None,
    name: str | None = None,
    subresource: str | None = None,
) -> str:
    """``/api/v1/...`` for the core group, ``/apis/<group>/<version>/...`` otherwise."""
    base = f"/api/{version}" if group in ("", "core") else f"/apis/{group}/{version}"
    if namespace:
        base += f"/namespaces/{namespace}"
    base += f"/{plural}"
    if name:
        base += f"/{name}"
        if subresource:
            base += f"/{subresource}"
    return base


class ApiClient:
    """Async Kubernetes REST client over one shared aiohttp session."""

    def __init__(
        self,
        config: ClusterConfig,
        *,
        qps: float = 500.0,
        burst: int = 500,
        max_in_flight: int = 50,
        max_retries: int = 5,
        request_timeout: float = 60.0,
        user_agent: str = USER_AGENT,
    ) -> None:
        self.config = config
        self.limiter = TokenBucket(qps, burst)
        self._in_flight = asyncio.Semaphore(max_in_flight)
        self.max_retries = max_retries
        self.request_timeout = request_timeout
        self._headers = {"User-Agent": user_agent, "Accept": "application/json", **config.headers}
        self._session: aiohttp.ClientSession | None = None
        self.on_request: list[Any] = []
        """Callables ``(method, code)`` invoked after every response (REST client metrics hook)."""

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=0, ssl=self.config.ssl_context or False)
            self._session = aiohttp.ClientSession(connector=connector, headers=self._headers)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> ApiClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _notify(self, method: str, code: int) -> None:
        for hook in self.on_request:
            hook(method, code)

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Any = None,
        content_type: str = "application/json",
    ) -> bytes:
        """One API call with retries on transient failures; returns the response body."""
        url = self.config.server + path + (("?" + urlencode(params)) if params else "")
        data = body if isinstance(body, bytes) or body is None else orjson.dumps(body)
        headers = {"Content-Type": content_type} if data is not None else None
        attempt = 0
        while True:
            await self.limiter.acquire()
            try:
                async with (
                    self._in_flight,
                    self.session.request(
                        method,
                        url,
                        data=data,
                        headers=headers,
                        timeout=aiohttp.ClientTimeout(total=self.request_timeout),
                    ) as resp,
                ):
                    payload = await resp.read()
                    self._notify(method, resp.status)
                    if resp.status < 400:
                        return payload
                    err: ApiError = error_for(resp.status, payload, retry_after=resp.headers.get("Retry-After"))
            except (aiohttp.ClientError, TimeoutError) as exc:
                self._notify(method, 0)
                err = ConnectionFailed(f"{method} {path}: {type(exc).__name__}: {exc}")
            if not isinstance(err, TransientError) or attempt >= self.max_retries:
                raise err
            delay = err.retry_after if err.retry_after is not None else min(0.1 * 2**attempt, 5.0)
            await asyncio.sleep(delay * (1 + random.random() * 0.1))  # noqa: S311 - jitter, not crypto
            attempt += 1

    # ------------------------------------------------------------------------------------ verbs

    async def get(self, path: str, params: Mapping[str, str] | None = None) -> JSON:
        result: JSON = orjson.loads(await self.request("GET", path, params=params))
        return result

    async def create(self, path: str, obj: JSON) -> JSON:
        result: JSON = orjson.loads(await self.request("POST", path, body=obj))
        return result

    async def replace(self, path: str, obj: JSON) -> JSON:
        result: JSON = orjson.loads(await self.request("PUT", path, body=obj))
        return result

    async def patch(self, path: str, patch: Any, *, patch_type: str = MERGE_PATCH) -> JSON:
        result: JSON = orjson.loads(await self.request("PATCH", path, body=patch, content_type=patch_type))
        return result

    async def delete(self, path: str, *, propagation: str | None = None) -> JSON:
        body = {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": propagation} if propagation else None
        result: JSON = orjson.loads(await self.request("DELETE", path, body=body))
        return result

    async def watch(self, path: str, params: Mapping[str, str]) -> AsyncIterator[bytes]:
        """Open a WATCH and yield one raw JSON event per line until the server closes the stream.

        Lines are split by hand rather than with ``StreamReader.readline`` so that a single large object (a JobSet
        with many templates) never hits aiohttp's line-length limit.
        """
        await self.limiter.acquire()
        url = self.config.server + path + "?" + urlencode({**params, "watch": "1"})
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=None)
        try:
            async with self.session.get(url, timeout=timeout) as resp:
                self._notify("WATCH", resp.status)
                if resp.status >= 400:
                    raise error_for(resp.status, await resp.read())
                buf = b""
                async for chunk in resp.content.iter_any():
                    buf += chunk
                    if b"\n" not in chunk:
                        continue
                    *lines, buf = buf.split(b"\n")
                    for line in lines:
                        if line.strip():
                            yield line
                if buf.strip():
                    yield buf
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ConnectionFailed(f"WATCH {path}: {type(exc).__name__}: {exc}") from exc
