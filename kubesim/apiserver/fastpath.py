"""A lean HTTP/1.1 front for the simulated API server: plain requests served without aiohttp's per-request machinery.

Role: every connection to kubesim starts on :class:`FastProtocol`. It parses each request itself (request line,
headers, a ``Content-Length`` body), hands it to the same handler aiohttp would call
(:meth:`kubesim.apiserver.server.ApiServer.serve`) as a :class:`FastRequest`, and writes the handler's
``web.Response`` back as bytes. That is all a controller's creates, updates, patches, deletes, GETs and LISTs
need, and it costs a fraction of aiohttp's per-request work (task, stream reader, writer, router), which was most
of the server's CPU per create. Anything else -- a WATCH (a streamed response), the ``/kubesim/`` control paths,
any request while faults are injected, HTTP/1.0, chunked or oversized bodies, ``Expect``/``Upgrade``, a
malformed or unusual request line -- makes the connection *hand over*: the aiohttp protocol takes the transport
and is fed every byte from that request on, so it answers exactly as it always did, for the rest of that
connection.

Invariants: responses leave in request order, one request at a time per connection (pipelined requests wait in
the buffer); a request is handed over before any of its bytes were consumed, and never once a response to it
was started; each request runs in a ``contextvars`` context of its own (as aiohttp gives each handler): at once,
without a task, while the server allows it (``FastServer.eager``: kubesim does while no admission webhook is
configured), and in a task from its first wait on (or from the start otherwise); a handler's exception never
escapes (the handler answers 500 itself; a failure here closes the connection); the protocol never reads more
than it can buffer: reading pauses while a request is in progress and the buffer is full, or while the
transport's write buffer is over its high-water mark.
"""

from __future__ import annotations

import asyncio
import contextvars
import http
import logging
import time
import types
from collections.abc import Awaitable, Callable, Coroutine, Generator
from email.utils import formatdate
from typing import Any, Literal
from urllib.parse import parse_qsl

from aiohttp import web
from multidict import MultiDict, MultiDictProxy

from kubesim.apiserver.httputil import MAX_BODY

log = logging.getLogger("kubesim.apiserver.fastpath")

__all__ = ["FastProtocol", "FastRequest", "FastServer"]

MAX_HEAD = 64 * 1024  # a request head longer than this is aiohttp's to refuse (431/400)
_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE"})
_SERVER = "kubesim"
_REASONS = {s.value: s.phrase for s in http.HTTPStatus}
_REFUSED = frozenset({"transfer-encoding", "expect", "upgrade"})  # requests aiohttp answers, not the fast path


class Headers(dict[str, str]):
    """Request headers by lower-cased name (a repeated header's values joined by ``", "``, as HTTP allows);
    looked up case-insensitively."""

    def get(self, key: str, default: Any = None) -> Any:
        return dict.get(self, key.lower(), default)

    def __getitem__(self, key: str) -> str:
        return dict.__getitem__(self, key.lower())

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and dict.__contains__(self, key.lower())


_NO_QUERY: MultiDictProxy[str] = MultiDictProxy(MultiDict())


class FastRequest:
    """The parts of an ``aiohttp.web.Request`` the API handlers read, for one request parsed by the fast path."""

    __slots__ = ("_body", "_query", "content_length", "headers", "method", "path", "query_string")

    def __init__(
        self, method: str, path: str, query_string: str, headers: Headers, body: bytes, length: int | None
    ) -> None:
        self.method = method
        self.path = path
        self.query_string = query_string
        self.headers = headers
        self.content_length = length
        self._body = body
        self._query: MultiDictProxy[str] | None = None if query_string else _NO_QUERY

    @property
    def path_qs(self) -> str:
        return f"{self.path}?{self.query_string}" if self.query_string else self.path

    @property
    def query(self) -> MultiDictProxy[str]:
        if self._query is None:
            self._query = MultiDictProxy(MultiDict(parse_qsl(self.query_string, keep_blank_values=True)))
        return self._query

    @property
    def content_type(self) -> str:
        """The media type without parameters, lower-cased (aiohttp's default when absent)."""
        raw = dict.get(self.headers, "content-type")
        if raw is None:
            return "application/octet-stream"
        return raw.split(";", 1)[0].strip().lower()

    @property
    def can_read_body(self) -> bool:
        return bool(self._body)

    async def read(self) -> bytes:
        return self._body


Handler = Callable[[FastRequest], Awaitable[web.StreamResponse]]


@types.coroutine
def _resumed(coro: Coroutine[Any, Any, None], step: Any) -> Generator[Any, Any, None]:
    """Drive the rest of ``coro``, which was started outside a task and first waited on ``step`` (what it
    yielded): the task running this sees ``step`` and every later wait, and sends and throws into ``coro``."""
    while True:
        try:
            sent = yield step
        except BaseException as exc:  # noqa: BLE001 - a cancellation (or any throw) goes on to the request
            try:
                step = coro.throw(exc)
            except StopIteration:
                return
        else:
            try:
                step = coro.send(sent)
            except StopIteration:
                return


async def _finish(coro: Coroutine[Any, Any, None], step: Any) -> None:
    await _resumed(coro, step)


class _Date:
    """The ``Date`` header value, formatted once per second."""

    second = -1
    value = ""

    @classmethod
    def now(cls) -> str:
        sec = int(time.time())
        if sec != cls.second:
            cls.second, cls.value = sec, formatdate(sec, usegmt=True)
        return cls.value


def encode_response(resp: web.StreamResponse, close: bool) -> bytes | None:
    """The wire bytes of a finished ``web.Response`` (None when it is not one: a streamed response)."""
    body = resp.body if isinstance(resp, web.Response) else None
    if not isinstance(body, bytes):
        return None
    status = resp.status
    head = f"HTTP/1.1 {status} {resp.reason or _REASONS.get(status, '')}\r\n"
    length = True
    for k, v in resp.headers.items():
        if length and k.lower() == "content-length":
            length = False
        head += f"{k}: {v}\r\n"
    if length:
        head += f"Content-Length: {len(body)}\r\n"
    head += f"Date: {_Date.now()}\r\nServer: {_SERVER}\r\n"
    if close:
        head += "Connection: close\r\n"
    return (head + "\r\n").encode("latin-1") + body


class FastServer:
    """The listening side: makes a :class:`FastProtocol` per connection, keeps track of them, closes them."""

    def __init__(
        self,
        handler: Handler,
        fallback: Callable[[], asyncio.Protocol],
        divert: Callable[[FastRequest], bool],
        eager: Callable[[], bool] = lambda: False,
    ) -> None:
        self.handler = handler
        self.eager = eager  # may a request run at once, outside a task, until it first waits?
        self.fallback = fallback  # aiohttp's protocol factory (web.Server)
        self.divert = divert  # requests the handler must see through aiohttp (faults, watches, control)
        self.connections: set[FastProtocol] = set()
        self.handed_over = 0  # connections given to aiohttp (tests and benchmarks read it)

    def __call__(self) -> FastProtocol:
        return FastProtocol(self)

    def close_all(self) -> None:
        for conn in list(self.connections):
            conn.close()


class FastProtocol(asyncio.Protocol):
    """One client connection (see the module docstring)."""

    def __init__(self, server: FastServer) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.buf = b""  # received bytes; those before ``pos`` were requests already taken
        self.pos = 0
        self.busy: asyncio.Task[None] | None = None
        self.reading = True
        self.writable = True
        self.closing = False

    # ---------------------------------------------------------------------------------------- asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.server.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.connections.discard(self)
        self.closing = True
        self.transport = None
        self.buf, self.pos = b"", 0

    def data_received(self, data: bytes) -> None:
        if self.pos:
            self.buf, self.pos = self.buf[self.pos :], 0
        self.buf = self.buf + data if self.buf else data
        if self.busy is None:
            self._next()
        elif len(self.buf) > MAX_BODY + MAX_HEAD:
            self._pause()

    def pause_writing(self) -> None:
        self.writable = False

    def resume_writing(self) -> None:
        self.writable = True
        if self.busy is None and not self.closing:
            self._next()

    # ---------------------------------------------------------------------------------------- requests

    def close(self) -> None:
        self.closing = True
        if self.transport is not None:
            self.transport.close()

    def _pause(self) -> None:
        if self.reading and self.transport is not None:
            self.reading = False
            self.transport.pause_reading()

    def _resume(self) -> None:
        if not self.reading and self.transport is not None:
            self.reading = True
            self.transport.resume_reading()

    def _next(self) -> None:
        """Serve the complete requests in the buffer, one after another (only while none is in progress)."""
        while True:
            if self.closing or self.transport is None or self.pos >= len(self.buf):
                self._resume()
                return
            if not self.writable:
                self._pause()  # the client is not reading its answers: stop reading its requests too
                return
            parsed = self._parse()
            if parsed is None:  # incomplete: wait for more bytes
                self._resume()
                return
            if parsed is False:
                self._hand_over()
                return
            request, end, close = parsed
            if self.server.divert(request):
                self._hand_over()
                return
            if end == len(self.buf):
                self.buf, self.pos = b"", 0
            else:
                self.pos = end
            if self._start(self._serve(request, close)):
                return

    def _start(self, coro: Coroutine[Any, Any, None]) -> bool:
        """Run one request's coroutine: at once, in a context of its own, when the server allows it
        (``FastServer.eager``), and in a task from where it first waits; True while it is in progress."""
        loop = asyncio.get_running_loop()
        if self.server.eager():
            ctx = contextvars.copy_context()
            try:
                step = ctx.run(coro.send, None)
            except StopIteration:
                return False  # answered without waiting: no task, no extra turn of the loop
            task = loop.create_task(_finish(coro, step), context=ctx)
        else:
            task = loop.create_task(coro)
        self.busy = task
        task.add_done_callback(self._done)
        return True

    def _done(self, task: asyncio.Task[None]) -> None:
        self.busy = None
        if not task.cancelled() and not self.closing:
            self._next()

    def _parse(self) -> tuple[FastRequest, int, bool] | Literal[False] | None:
        """(request, where it ends in the buffer, close after it); None while incomplete; False: not ours."""
        buf, pos = self.buf, self.pos
        end = buf.find(b"\r\n\r\n", pos)
        if end < 0:
            return False if len(buf) - pos > MAX_HEAD else None
        lines = buf[pos:end].decode("latin-1").split("\r\n")
        first = lines[0].split(" ")
        if len(first) != 3:
            return False
        method, target, version = first
        if version != "HTTP/1.1" or method not in _METHODS or target[:1] != "/":
            return False
        headers = Headers()
        lengths = 0
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if not sep or not name or name[-1] in " \t" or "\x00" in line:
                return False
            name = name.lower()
            value = value.strip()
            if name in _REFUSED:
                return False
            if name == "content-length":
                lengths += 1
            seen = dict.get(headers, name)
            dict.__setitem__(headers, name, value if seen is None else f"{seen}, {value}")
        length: int | None = None
        if lengths:
            raw_length = dict.__getitem__(headers, "content-length")
            if lengths > 1 or not raw_length.isdigit() or int(raw_length) > MAX_BODY:
                return False
            length = int(raw_length)
        size = end + 4 + (length or 0)
        if len(buf) < size:
            return None
        path, _, query = target.partition("?")
        if "%" in path or "#" in target:
            return False  # percent-decoding rules are aiohttp's (yarl's) to apply
        body = buf[end + 4 : size] if length else b""
        close = "close" in dict.get(headers, "connection", "").lower()
        return FastRequest(method, path, query, headers, body, length), size, close

    async def _serve(self, request: FastRequest, close: bool) -> None:
        try:
            resp = await self.server.handler(request)
            wire = encode_response(resp, close)
            if wire is None:  # a handler streamed (not a fast-path request after all): nothing sane to send
                log.error("fast path: %s %s gave a streamed response; closing", request.method, request.path)
                close = True
            elif self.transport is not None:
                self.transport.write(wire)
        except Exception:
            log.exception("fast path: failed serving %s %s", request.method, request.path)
            close = True
        if close:
            self.close()

    def _hand_over(self) -> None:
        """Give the connection, and every byte from the current request on, to aiohttp's protocol."""
        transport = self.transport
        if transport is None:
            return
        self.server.connections.discard(self)
        self.server.handed_over += 1
        data, self.buf, self.pos = self.buf[self.pos :], b"", 0
        self.transport = None
        self.closing = True
        proto = self.server.fallback()
        transport.set_protocol(proto)
        proto.connection_made(transport)
        if not self.reading:
            transport.resume_reading()
        if data:
            proto.data_received(data)
