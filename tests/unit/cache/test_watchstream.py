"""The WATCH transport's HTTP/1.1 response parser (``cache.watchstream``): framing, line splitting, errors, idle
bound and flow control, fed byte strings the way a socket may cut them. No network."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cache.errors import ConnectionFailed, WatchIdle
from cache.watchstream import HIGH_WATER, MAX_HEAD, WatchStream, _Protocol

EVENTS = [b'{"type":"ADDED","object":{"n":1}}', b'{"type":"MODIFIED","object":{"n":2}}', b'{"type":"BOOKMARK"}']
HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"


class _Transport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.closed = False
        self.paused = False

    def close(self) -> None:
        self.closed = True

    def pause_reading(self) -> None:
        self.paused = True

    def resume_reading(self) -> None:
        self.paused = False


def _chunked(*pieces: bytes, trailer: bytes = b"") -> bytes:
    body = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces)
    return body + b"0\r\n" + trailer + b"\r\n"


def _protocol(idle: float | None = None) -> tuple[_Protocol, _Transport]:
    loop = asyncio.get_running_loop()
    p = _Protocol(loop, "WATCH /x", idle)
    t = _Transport()
    p.connection_made(t)
    return p, t


def _feed(p: _Protocol, data: bytes, cuts: list[int]) -> None:
    start = 0
    for cut in sorted({c for c in cuts if 0 < c < len(data)}):
        p.data_received(data[start:cut])
        start = cut
    p.data_received(data[start:])


async def _lines(p: _Protocol) -> list[bytes]:
    stream = WatchStream(p, 200, {})
    return [line async for line in stream]


@settings(max_examples=200, deadline=None)
@given(cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=12), per_event=st.booleans())
def test_any_cut_of_a_chunked_stream_gives_the_same_lines(cuts: list[int], per_event: bool) -> None:
    pieces = [e + b"\n" for e in EVENTS] if per_event else [b"\n".join(EVENTS) + b"\n"]
    data = HEAD + _chunked(*pieces, trailer=b"X-Trailer: 1\r\n")

    async def run() -> list[bytes]:
        p, _ = _protocol()
        _feed(p, data, cuts)
        assert p.head.done()
        assert p.head.result()[0] == 200
        return await _lines(p)

    assert asyncio.run(run()) == EVENTS


async def test_a_line_split_across_chunks_is_joined_and_blank_lines_are_skipped() -> None:
    p, _ = _protocol()
    p.data_received(HEAD + _chunked(b'{"a":', b"1}\n\n", b"\n" + EVENTS[0]))  # the last line has no newline
    assert await _lines(p) == [b'{"a":1}', EVENTS[0]]


@pytest.mark.parametrize(
    ("response", "lines"),
    [
        pytest.param(b'HTTP/1.1 410 Gone\r\nContent-Length: 7\r\n\r\n{"c":1}', [b'{"c":1}'], id="content-length"),
        pytest.param(b"HTTP/1.1 500 Oops\r\nContent-Length: 0\r\n\r\n", [], id="empty"),
    ],
)
async def test_sized_bodies(response: bytes, lines: list[bytes]) -> None:
    p, _ = _protocol()
    p.data_received(response)
    assert p.finished
    assert await _lines(p) == lines


async def test_a_body_until_close_ends_with_the_connection() -> None:
    p, _ = _protocol()
    p.data_received(b"HTTP/1.1 200 OK\r\n\r\n" + EVENTS[0] + b"\n" + EVENTS[1])
    p.connection_lost(None)
    assert await _lines(p) == EVENTS[:2]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        pytest.param(b"SPDY/3 200 OK\r\n\r\n", "malformed status line", id="status-line"),
        pytest.param(b"HTTP/1.1 200 OK\r\nno-colon\r\n\r\n", "malformed header line", id="header"),
        pytest.param(HEAD + b"zz\r\n", "malformed chunk size", id="chunk-size"),
        pytest.param(HEAD + b"2\r\nabXY", "chunk not followed by CRLF", id="chunk-end"),
        pytest.param(b"HTTP/1.1 200 OK\r\nContent-Length: -3\r\n\r\n", "malformed Content-Length", id="length"),
        pytest.param(b"HTTP/1.1 200 OK\r\nX: " + b"a" * (MAX_HEAD + 10), "headers longer", id="huge-head"),
    ],
)
async def test_malformed_responses_fail_the_stream_by_name(data: bytes, message: str) -> None:
    p, t = _protocol()
    p.data_received(data)
    assert isinstance(p.error, ConnectionFailed)
    assert message in str(p.error)
    assert t.closed
    with pytest.raises(ConnectionFailed, match=message):
        await _lines(p)


@pytest.mark.parametrize(
    "data",
    [pytest.param(HEAD + b"20\r\n" + EVENTS[0][:10], id="mid-chunk"), pytest.param(b"HTTP/1.1 200", id="mid-head")],
)
async def test_a_connection_closed_mid_body_is_a_connection_failure(data: bytes) -> None:
    p, _ = _protocol()
    p.data_received(data)
    p.connection_lost(ConnectionResetError("reset"))
    with pytest.raises(ConnectionFailed, match="connection closed"):
        await _lines(p)
    p.discard()  # what open_watch does when the head never came: nobody is left to await it


async def test_what_the_line_callback_raises_ends_the_stream_and_reaches_the_reader() -> None:
    p, t = _protocol()
    p.data_received(HEAD)
    stream = WatchStream(p, 200, {})
    seen: list[bytes] = []

    def on_line(line: bytes) -> None:
        seen.append(line)
        if len(seen) == 2:
            raise ValueError("stop here")

    task = asyncio.ensure_future(stream.deliver(on_line))
    await asyncio.sleep(0)  # deliver() is now waiting for lines
    p.data_received(_chunked(*(e + b"\n" for e in EVENTS)))
    with pytest.raises(ValueError, match="stop here"):
        await task
    assert seen == EVENTS[:2], "no line is handed over after the one that raised"
    assert t.closed


async def test_a_silent_stream_ends_with_watch_idle() -> None:
    p, t = _protocol(idle=0.05)
    p.data_received(HEAD)
    with pytest.raises(WatchIdle, match=r"nothing received for 0\.05s"):
        await _lines(p)
    assert t.closed


async def test_reading_pauses_while_undelivered_lines_pile_up_and_resumes_once_taken() -> None:
    p, t = _protocol()
    big = b"x" * (1024 * 1024)
    p.data_received(HEAD + b"".join(b"%x\r\n%s\n\r\n" % (len(big) + 1, big) for _ in range(HIGH_WATER // len(big))))
    assert t.paused
    stream: Any = WatchStream(p, 200, {})
    for _ in range(HIGH_WATER // len(big) // 2 + 1):
        await stream.__anext__()
    assert not t.paused


async def test_a_refused_connection_is_a_connection_failure_naming_the_server() -> None:
    import socket

    from cache.watchstream import open_watch

    with socket.socket() as probe:  # a loopback port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(ConnectionFailed, match=f"cannot connect to 127.0.0.1:{port}"):
        await open_watch(f"http://127.0.0.1:{port}", "/api/v1/pods?watch=1", {}, ssl_context=None, idle_timeout=None)
