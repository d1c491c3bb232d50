"""The API client: configuration, one shared aiohttp session, client-side QPS/burst, retries, watches.

Role: every byte the controller exchanges with the API server goes through ``ApiClient``. Configuration
(kubeconfig or in-cluster, TLS, credentials) comes from ``cache.kubeconfig``; requests are plain aiohttp so that
LIST and WATCH bodies reach the informers as raw bytes (never generated client model objects).

Invariants:
* writes and reads share one token bucket (default 500 QPS / 500 burst, like the reference) and a bound on
  requests in flight; watches are long-lived and take a token only to open;
* 429 (honouring Retry-After), 5xx and connection failures are retried with capped exponential backoff up to
  ``max_retries`` times; every other error (404, 409 Conflict/AlreadyExists, 422, ...) surfaces to the caller at
  once as a class of ``cache.errors``;
* the ``Authorization`` header is taken from ``config.credentials`` for each request (tokens rotate); a 401
  makes the client refresh the credential once and repeat the request (or re-open the watch) before surfacing
  ``Unauthorized``;
* credentials never appear in logs or error messages;
* every socket the client opens has TCP keepalive on (first probe after ``KEEPALIVE_IDLE`` s of silence, then
  every ``KEEPALIVE_INTERVAL`` s, dropped after ``KEEPALIVE_COUNT`` unanswered probes: a vanished peer is noticed
  within about a minute); a WATCH may also carry a read-idle bound (``idle_timeout``): a stream that delivers no
  byte for that long ends with ``WatchIdle`` (a proxy that froze the connection still answers keepalive probes,
  so only the idle bound catches it).
"""

from __future__ import annotations

import asyncio
import random
import socket
import types
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import aiohttp
import orjson
import structlog

from api.jsontypes import JSON
from cache.clock import Clock, RealClock
from cache.credentials import CredentialError
from cache.errors import ApiError, ConnectionFailed, Fenced, TransientError, error_for
from cache.kubeconfig import ClusterConfig, KubeconfigError, load_cluster_config
from cache.watchstream import WatchStream, open_watch, set_keepalive

log = structlog.get_logger("pyjobset.client")

__all__ = [
    "APPLY_PATCH",
    "JSON",
    "JSON_PATCH",
    "MERGE_PATCH",
    "STRATEGIC_MERGE_PATCH",
    "USER_AGENT",
    "ApiClient",
    "ClusterConfig",
    "KubeconfigError",
    "TokenBucket",
    "load_cluster_config",
    "resource_path",
]

MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"

USER_AGENT = "pyjobset/0.1"

KEEPALIVE_IDLE = 30
KEEPALIVE_INTERVAL = 10
KEEPALIVE_COUNT = 3


def keepalive_socket(addr_info: tuple[Any, ...]) -> socket.socket:
    """A client socket with TCP keepalive (aiohttp ``socket_factory``): a dead peer is detected by the kernel
    after ``KEEPALIVE_IDLE + KEEPALIVE_COUNT * KEEPALIVE_INTERVAL`` seconds (60 s) instead of never."""
    family, type_, proto = addr_info[0], addr_info[1], addr_info[2]
    sock = socket.socket(family=family, type=type_, proto=proto)
    set_keepalive(sock, (KEEPALIVE_IDLE, KEEPALIVE_INTERVAL, KEEPALIVE_COUNT))
    return sock


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
        self.write_fence: Callable[[], bool] | None = None
        """When set, checked right before every write (any method but GET) is sent, retries included: False
        refuses the write with ``Fenced`` (leader election: a process that lost its authority writes nothing)."""

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                limit=0, ssl=self.config.ssl_context or False, socket_factory=keepalive_socket
            )
            tracing = aiohttp.TraceConfig()
            tracing.on_connection_create_end.append(self._fence_on_connection)
            tracing.on_connection_reuseconn.append(self._fence_on_connection)
            self._session = aiohttp.ClientSession(connector=connector, headers=self._headers, trace_configs=[tracing])
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
        content = {"Content-Type": content_type} if data is not None else {}
        attempt = 0
        reauthorized = self.config.credentials is None
        while True:
            await self.limiter.acquire()
            auth: str | None = None
            try:
                auth = await self._authorization()
                fenced = method != "GET" and self.write_fence is not None
                async with self._in_flight:
                    # The fence is checked after every wait of ours (token bucket, credentials, the in-flight
                    # bound) and again when aiohttp has a connection for the request (``_fence_on_connection``),
                    # so a process frozen while a write waited wakes to a refusal, not to a late write.
                    self._check_fence(method, path, fenced)
                    async with self.session.request(
                        method,
                        url,
                        data=data,
                        headers=_with_auth(content, auth),
                        timeout=aiohttp.ClientTimeout(total=self.request_timeout),
                        trace_request_ctx=_FenceContext(method, path) if fenced else None,
                    ) as resp:
                        payload = await resp.read()
                        self._notify(method, resp.status)
                        if method != "GET":
                            log.debug("api_write", method=method, path=path, code=resp.status)
                        if resp.status < 400:
                            return payload
                        err: ApiError = error_for(resp.status, payload, retry_after=resp.headers.get("Retry-After"))
            except CredentialError as exc:
                err = exc
            except (aiohttp.ClientError, TimeoutError) as exc:
                self._notify(method, 0)
                err = ConnectionFailed(f"{method} {path}: {type(exc).__name__}: {exc}")
            if err.status == 401 and not reauthorized:
                reauthorized = True  # once per call: a credential the server keeps refusing surfaces at once
                try:
                    if await self._reauthorize(auth):
                        continue
                except CredentialError as exc:
                    err = exc
            if not isinstance(err, TransientError) or attempt >= self.max_retries:
                raise err
            delay = err.retry_after if err.retry_after is not None else min(0.1 * 2**attempt, 5.0)
            await asyncio.sleep(delay * (1 + random.random() * 0.1))  # noqa: S311 - jitter, not crypto
            attempt += 1

    def _check_fence(self, method: str, path: str, fenced: bool) -> None:
        if fenced and self.write_fence is not None and not self.write_fence():
            raise Fenced(f"{method} {path}: refused, this process no longer holds the leader lease")

    async def _fence_on_connection(
        self, _session: aiohttp.ClientSession, ctx: types.SimpleNamespace, _params: object
    ) -> None:
        """aiohttp trace hook, called once the request has a connection and just before its headers are written:
        the last point at which a write of a process that lost the lease can still be refused."""
        request = ctx.trace_request_ctx
        if isinstance(request, _FenceContext):
            self._check_fence(request.method, request.path, fenced=True)

    async def _authorization(self) -> str | None:
        """The ``Authorization`` value for the next request (read per request: credentials rotate)."""
        creds = self.config.credentials
        return None if creds is None else await creds.authorization()

    async def _reauthorize(self, rejected: str | None) -> bool:
        """After a 401 for ``rejected``: refresh the credential; True when repeating the request may succeed."""
        creds = self.config.credentials
        return creds is not None and await creds.refresh(rejected)

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

    async def watch(
        self,
        path: str,
        params: Mapping[str, str],
        *,
        idle_timeout: float | None = None,
        on_open: Callable[[], None] | None = None,
    ) -> AsyncIterator[bytes]:
        """Open a WATCH and yield one raw JSON event per line until the server closes the stream.

        ``idle_timeout``: seconds the stream may stay silent (no event, no bookmark) before it is presumed dead
        and ends with ``WatchIdle``; ask for ``allowWatchBookmarks`` so a quiet but healthy stream is not
        mistaken for a dead one. ``on_open`` runs once the server has accepted the WATCH (status < 400).

        The stream runs on a connection of its own through ``cache.watchstream`` (not aiohttp: a fifth of the CPU per
        event), which splits lines without a length limit, so a single large object (a JobSet with many
        templates) is one line like any other.
        """
        stream = await self._open_watch(path, params, idle_timeout)
        try:
            if on_open is not None:
                on_open()
            async for line in stream:
                yield line
        finally:
            stream.close()

    async def watch_into(
        self,
        path: str,
        params: Mapping[str, str],
        on_line: Callable[[bytes], None],
        *,
        idle_timeout: float | None = None,
        on_open: Callable[[], None] | None = None,
    ) -> None:
        """``watch``, with each line handed to ``on_line`` as it arrives (the informers' path: no task switch per
        event); returns when the server ends the stream, raises what ``on_line`` raised or the stream's error."""
        stream = await self._open_watch(path, params, idle_timeout)
        try:
            if on_open is not None:
                on_open()
            await stream.deliver(on_line)
        finally:
            stream.close()

    async def _open_watch(self, path: str, params: Mapping[str, str], idle_timeout: float | None) -> WatchStream:
        """Open the WATCH; a 401 refreshes the credential once and retries; another error status raises."""
        await self.limiter.acquire()
        target = path + "?" + urlencode({**params, "watch": "1"})
        reauthorized = self.config.credentials is None
        while True:
            auth = await self._authorization()
            stream = await open_watch(
                self.config.server,
                target,
                _with_auth(dict(self._headers), auth) or {},
                ssl_context=self.config.ssl_context,
                idle_timeout=idle_timeout,
                keepalive=(KEEPALIVE_IDLE, KEEPALIVE_INTERVAL, KEEPALIVE_COUNT),
            )
            self._notify("WATCH", stream.status)
            if stream.status < 400:
                return stream
            try:
                err = error_for(stream.status, await stream.read_all())
            finally:
                stream.close()
            if stream.status != 401 or reauthorized:
                raise err
            reauthorized = True
            if not await self._reauthorize(auth):
                raise err


def _with_auth(headers: dict[str, str], auth: str | None) -> dict[str, str] | None:
    """Per-request headers: ``headers`` plus ``Authorization`` when there is a credential."""
    if auth:
        return {**headers, "Authorization": auth}
    return headers or None


@dataclass(frozen=True, slots=True)
class _FenceContext:
    """Marks a write whose connection hook must re-check the leader fence."""

    method: str
    path: str
