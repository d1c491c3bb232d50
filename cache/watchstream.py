"""The transport of a WATCH: one HTTP/1.1 GET on a connection of its own, its body split into lines.

Role: ``ApiClient.watch`` opens every watch through ``open_watch``. A watch is long-lived and delivers one small JSON
document per event; read through aiohttp's streaming response, each event cost about 50 µs of CPU here (a stream
reader, a read timer re-armed per read, a task wake-up per chunk), more than decoding it. This protocol parses the
response itself and wakes the reader once per batch of lines: about 12 µs per event (P10 of performance.md).

Invariants:
* one connection per watch, closed when the watch ends or is abandoned (watches are not pooled);
* TLS from the cluster configuration's SSLContext (server name = the URL's host), TCP keepalive as on every client
  socket (``cache.client.keepalive_socket``'s timings);
* the body is framed by ``Transfer-Encoding: chunked`` (what the API server sends), ``Content-Length``, or the
  connection's end; a chunked or sized body cut short, a malformed status line, header block or chunk size ends
  the stream with ``ConnectionFailed`` naming what was wrong; the header block is bounded (``MAX_HEAD``);
* blank lines are skipped; a last line without a newline is delivered at the end of the body;
* a stream that receives no byte for ``idle_timeout`` seconds ends with ``WatchIdle`` (checked by one timer per
  idle period, not per read);
* reading pauses while ``HIGH_WATER`` bytes of lines wait for the reader, and resumes once it has taken them, so a
  slow consumer bounds memory instead of buffering the stream.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections import deque
from collections.abc import Callable, Mapping
from typing import cast
from urllib.parse import urlsplit

from cache.errors import ConnectionFailed, WatchIdle

MAX_HEAD = 64 * 1024
"""Bytes a response's status line and headers may take."""
HIGH_WATER = 16 * 1024 * 1024
"""Bytes of undelivered lines at which reading pauses."""

_HEAD, _CHUNK_SIZE, _CHUNK_DATA, _CHUNK_END, _TRAILER, _SIZED, _UNTIL_CLOSE, _DONE = range(8)


class _Protocol(asyncio.Protocol):
    """Parses one HTTP/1.1 response; lines of its body go to ``lines``; ``head`` resolves with the status line."""

    def __init__(self, loop: asyncio.AbstractEventLoop, where: str, idle_timeout: float | None) -> None:
        self.loop = loop
        self.where = where
        self.head: asyncio.Future[tuple[int, dict[str, str]]] = loop.create_future()
        self.lines: deque[bytes] = deque()
        self.queued = 0
        self.error: Exception | None = None
        self.finished = False
        self.transport: asyncio.Transport | None = None
        self._waiter: asyncio.Future[None] | None = None
        self.on_line: Callable[[bytes], None] | None = None
        """When set (``WatchStream.deliver``), lines are handed to it from ``data_received`` instead of queued."""
        self._buf = b""
        self._partial = b""
        self._state = _HEAD
        self._remaining = 0
        self._paused = False
        self._idle = idle_timeout
        self._last = loop.time()
        self._timer: asyncio.TimerHandle | None = None

    # ------------------------------------------------------------------ asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # any loop's stream transport (uvloop's are no subclass)
        if self._idle is not None:
            self._timer = self.loop.call_later(self._idle, self._check_idle)

    def data_received(self, data: bytes) -> None:
        if self.error is not None:
            return
        self._last = self.loop.time()
        try:
            self._parse(self._buf + data if self._buf else data)
        except Exception as err:  # noqa: BLE001 - framing errors, and whatever ``on_line`` raised (e.g. Gone)
            self._fail(err)
            return
        if self.lines or self.finished:
            self._wake()
        if self.queued >= HIGH_WATER and not self._paused and self.transport is not None:
            self._paused = True
            self.transport.pause_reading()

    def eof_received(self) -> bool | None:
        return None  # close the transport; connection_lost decides whether the body was complete

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self._state == _UNTIL_CLOSE:
            self._end_body()
        elif self._state != _DONE and self.error is None:
            cause = f": {type(exc).__name__}: {exc}" if exc is not None else ""
            where = "before the response's headers" if self._state == _HEAD else "in the middle of the body"
            self._fail(ConnectionFailed(f"{self.where}: connection closed {where}{cause}"))
        if not self.head.done():
            self.head.set_exception(self.error or ConnectionFailed(f"{self.where}: connection closed"))
        self._wake()

    # ------------------------------------------------------------------ reader side

    async def wait(self) -> None:
        """Until a line is queued, the body ended, or the stream failed."""
        if self.lines or self.finished or self.error is not None:
            return
        self._waiter = self.loop.create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None

    def take(self) -> bytes:
        line = self.lines.popleft()
        self.queued -= len(line)
        if self._paused and self.queued < HIGH_WATER // 2 and self.transport is not None:
            self._paused = False
            self.transport.resume_reading()
        return line

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self.transport is not None:
            self.transport.close()

    def discard(self) -> None:
        """After a failed connect: nobody will await ``head`` (its exception, if any, is consumed here)."""
        self.close()
        if self.head.done():
            if not self.head.cancelled():
                self.head.exception()
        else:
            self.head.cancel()

    # ------------------------------------------------------------------ parsing

    def _parse(self, buf: bytes) -> None:
        pos, end = 0, len(buf)
        while pos < end:
            state = self._state
            if state == _HEAD:
                stop = self._find(buf, b"\r\n\r\n", pos, MAX_HEAD, "response headers")
                if stop < 0:
                    break
                self._read_head(buf[pos:stop])
                pos = stop + 4
            elif state == _CHUNK_SIZE:
                stop = self._find(buf, b"\r\n", pos, 1024, "chunk size line")
                if stop < 0:
                    break
                size_text = buf[pos:stop].split(b";", 1)[0].strip()
                try:
                    size = int(size_text, 16)
                except ValueError:
                    raise ConnectionFailed(f"{self.where}: malformed chunk size {size_text[:40]!r}") from None
                if size < 0:
                    raise ConnectionFailed(f"{self.where}: malformed chunk size {size_text[:40]!r}")
                pos = stop + 2
                if size == 0:
                    self._state = _TRAILER
                else:
                    self._remaining = size
                    self._state = _CHUNK_DATA
            elif state == _CHUNK_DATA:
                pos = self._take(buf, pos)
                if self._remaining == 0:
                    self._state = _CHUNK_END
            elif state == _CHUNK_END:
                if end - pos < 2:
                    break
                if buf[pos : pos + 2] != b"\r\n":
                    raise ConnectionFailed(f"{self.where}: chunk not followed by CRLF")
                pos += 2
                self._state = _CHUNK_SIZE
            elif state == _TRAILER:
                stop = self._find(buf, b"\r\n", pos, MAX_HEAD, "trailer")
                if stop < 0:
                    break
                empty = stop == pos  # the blank line that ends the trailer (trailer fields are skipped)
                pos = stop + 2
                if empty:
                    self._end_body()
            elif state == _SIZED:
                pos = self._take(buf, pos)
                if self._remaining == 0:
                    self._end_body()
            elif state == _UNTIL_CLOSE:
                self._body(buf[pos:])
                pos = end
            else:  # _DONE: bytes after the body are ignored (the connection is closed after one response)
                pos = end
        self._buf = buf[pos:] if pos < end else b""

    def _find(self, buf: bytes, sep: bytes, pos: int, limit: int, what: str) -> int:
        """Where ``sep`` starts from ``pos``, or -1 to wait for more bytes; raises once ``limit`` bytes came first."""
        stop = buf.find(sep, pos)
        if stop < 0 and len(buf) - pos > limit:
            raise ConnectionFailed(f"{self.where}: {what} longer than {limit} bytes")
        return stop

    def _take(self, buf: bytes, pos: int) -> int:
        """Hand up to ``_remaining`` body bytes from ``pos`` to the line splitter; the new position."""
        take = min(self._remaining, len(buf) - pos)
        self._body(buf[pos : pos + take])
        self._remaining -= take
        return pos + take

    def _read_head(self, block: bytes) -> None:
        status_line, _, rest = block.partition(b"\r\n")
        parts = status_line.split(None, 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
            raise ConnectionFailed(f"{self.where}: malformed status line {status_line[:80]!r}")
        headers: dict[str, str] = {}
        for raw in rest.split(b"\r\n") if rest else ():
            name, sep, value = raw.partition(b":")
            if not sep:
                raise ConnectionFailed(f"{self.where}: malformed header line {raw[:80]!r}")
            key = name.strip().decode("latin-1").lower()
            text = value.strip().decode("latin-1")
            headers[key] = f"{headers[key]}, {text}" if key in headers else text
        encoding = headers.get("transfer-encoding", "").lower()
        if "chunked" in encoding:
            self._state = _CHUNK_SIZE
        elif "content-length" in headers:
            try:
                self._remaining = int(headers["content-length"])
            except ValueError:
                raise ConnectionFailed(
                    f"{self.where}: malformed Content-Length {headers['content-length']!r}"
                ) from None
            if self._remaining < 0:
                raise ConnectionFailed(f"{self.where}: malformed Content-Length {headers['content-length']!r}")
            self._state = _SIZED
            if self._remaining == 0:
                self._end_body()
        else:
            self._state = _UNTIL_CLOSE
        if not self.head.done():
            self.head.set_result((int(parts[1]), headers))

    def _body(self, data: bytes) -> None:
        if b"\n" not in data:
            self._partial += data
            return
        *lines, rest = (self._partial + data).split(b"\n") if self._partial else data.split(b"\n")
        self._partial = rest
        for line in lines:
            if line.strip():
                self._emit(line)

    def _emit(self, line: bytes) -> None:
        if self.on_line is not None:
            self.on_line(line)
        else:
            self.lines.append(line)
            self.queued += len(line)

    def _end_body(self) -> None:
        last, self._partial = self._partial, b""
        if last.strip():
            self._emit(last)
        self._state = _DONE
        self.finished = True

    # ------------------------------------------------------------------ helpers

    def _fail(self, err: Exception) -> None:
        if self.error is None:
            self.error = err
        if not self.head.done():
            self.head.set_exception(err)
        self._wake()
        if self.transport is not None:
            self.transport.close()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _check_idle(self) -> None:
        assert self._idle is not None
        quiet = self.loop.time() - self._last
        if quiet >= self._idle and not self.finished:
            self._fail(WatchIdle(f"{self.where}: nothing received for {self._idle}s (connection presumed dead)"))
            return
        self._timer = self.loop.call_later(max(self._idle - quiet, 0.001), self._check_idle)


class WatchStream:
    """An open WATCH response: ``status``, ``headers``, then ``async for line in stream`` (raw JSON lines)."""

    def __init__(self, protocol: _Protocol, status: int, headers: dict[str, str]) -> None:
        self._p = protocol
        self.status = status
        self.headers = headers

    def __aiter__(self) -> WatchStream:
        return self

    async def __anext__(self) -> bytes:
        p = self._p
        while True:
            if p.lines:
                return p.take()
            if p.error is not None:
                raise p.error
            if p.finished:
                raise StopAsyncIteration
            await p.wait()

    async def deliver(self, on_line: Callable[[bytes], None]) -> None:
        """Hand every line to ``on_line`` as it arrives, from the transport's callback (no task wake-up per event),
        until the body ends; what ``on_line`` raises ends the stream and is raised here."""
        p = self._p
        while p.lines:  # lines that arrived before the reader was ready
            on_line(p.take())
        p.on_line = on_line
        while not p.finished and p.error is None:
            await p.wait()
        if p.error is not None:
            raise p.error

    async def read_all(self) -> bytes:
        """The rest of the body joined (for an error response's Status object)."""
        return b"\n".join([line async for line in self])

    def close(self) -> None:
        self._p.close()


async def open_watch(
    server: str,
    path_and_query: str,
    headers: Mapping[str, str],
    *,
    ssl_context: ssl.SSLContext | None,
    idle_timeout: float | None,
    connect_timeout: float = 10.0,
    keepalive: tuple[int, int, int] = (30, 10, 3),
) -> WatchStream:
    """Connect to ``server`` (``https://host:port[/prefix]``), send the GET and wait for the response's head."""
    url = urlsplit(server)
    if url.scheme not in ("http", "https") or not url.hostname:
        raise ConnectionFailed(f"WATCH {path_and_query}: unsupported server URL {server!r}")
    host = url.hostname
    port = url.port or (443 if url.scheme == "https" else 80)
    where = f"WATCH {path_and_query.split('?', 1)[0]}"
    tls: ssl.SSLContext | None = None
    if url.scheme == "https":
        # As the request path (aiohttp with ssl=False): no context given means no verification.
        tls = ssl_context if ssl_context is not None else _unverified()
    loop = asyncio.get_running_loop()
    protocol = _Protocol(loop, where, idle_timeout)
    try:
        async with asyncio.timeout(connect_timeout):  # not wait_for: on 3.11 it can swallow a cancellation
            transport, _ = await loop.create_connection(
                lambda: protocol, host, port, ssl=tls, server_hostname=host if tls is not None else None
            )
    except (OSError, TimeoutError, ssl.SSLError) as exc:
        protocol.discard()
        raise ConnectionFailed(f"{where}: cannot connect to {host}:{port}: {type(exc).__name__}: {exc}") from exc
    sock = transport.get_extra_info("socket")
    if sock is not None:
        set_keepalive(sock, keepalive)
    netloc = url.netloc.rpartition("@")[2]
    lines = [f"GET {url.path.rstrip('/')}{path_and_query} HTTP/1.1", f"Host: {netloc}"]
    lines.extend(f"{k}: {v}" for k, v in headers.items())
    request = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    try:
        transport.write(request)
        status, head = await protocol.head
    except BaseException:
        protocol.discard()
        raise
    return WatchStream(protocol, status, head)


def _unverified() -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def set_keepalive(sock: socket.socket, timings: tuple[int, int, int]) -> None:
    """TCP keepalive on ``sock``: first probe after ``timings[0]`` s of silence, then every ``timings[1]`` s, dropped
    after ``timings[2]`` unanswered probes (Linux; other platforms keep the system's timings)."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for opt, value in zip(("TCP_KEEPIDLE", "TCP_KEEPINTVL", "TCP_KEEPCNT"), timings, strict=True):
        if hasattr(socket, opt):
            sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, opt), value)
