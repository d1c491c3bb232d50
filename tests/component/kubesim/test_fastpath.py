"""kubesim's fast HTTP/1.1 path (``kubesim.apiserver.fastpath``), spoken to over raw sockets: plain requests are
answered on it in order, byte-split and pipelined requests included; everything else (watches, faults, chunked
or oversized bodies, HTTP/1.0, malformed requests) is handed to aiohttp with the connection and answered as
before."""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import AsyncIterator

import orjson
import pytest
from aiohttp import web

from kubesim import SimCluster
from kubesim.apiserver.fastpath import FastRequest, FastServer

CM_PATH = "/api/v1/namespaces/default/configmaps"


def configmap(name: str) -> bytes:
    return orjson.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"k": "v"}})


def request(method: str, target: str, body: bytes = b"", headers: dict[str, str] | None = None) -> bytes:
    lines = [f"{method} {target} HTTP/1.1", "Host: 127.0.0.1"]
    if body:
        lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    """One response with a ``Content-Length`` body: (status, headers by lower-case name, body)."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:] if ln)}
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return status, headers, body


@pytest.fixture
async def sim() -> AsyncIterator[SimCluster]:
    async with SimCluster(with_cluster=False) as cluster:
        yield cluster


async def connect(sim: SimCluster) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", sim.port)


async def test_pipelined_requests_are_answered_in_order_on_the_fast_path(sim: SimCluster) -> None:
    reader, writer = await connect(sim)
    writer.write(
        request("POST", CM_PATH, configmap("a"))
        + request("GET", f"{CM_PATH}/a")
        + request("GET", f"{CM_PATH}/missing")
        + request("GET", f"{CM_PATH}?labelSelector=x%3Dy&limit=5")
    )
    created = await read_response(reader)
    got = await read_response(reader)
    missing = await read_response(reader)
    listed = await read_response(reader)
    writer.close()
    assert created[0] == 201
    assert created[1]["content-type"] == "application/json"
    assert orjson.loads(created[2])["metadata"]["uid"]
    assert got[0] == 200
    assert orjson.loads(got[2])["data"] == {"k": "v"}
    assert missing[0] == 404
    assert orjson.loads(missing[2])["reason"] == "NotFound"
    assert listed[0] == 200
    assert orjson.loads(listed[2])["items"] == []  # the label selector was decoded from the query
    assert sim.server.fast is not None
    assert sim.server.fast.handed_over == 0


async def test_a_request_split_into_single_bytes_is_served(sim: SimCluster) -> None:
    reader, writer = await connect(sim)
    for b in request("POST", CM_PATH, configmap("split")):
        writer.write(bytes([b]))
        await writer.drain()
    status, _, body = await read_response(reader)
    writer.close()
    assert status == 201
    assert orjson.loads(body)["metadata"]["name"] == "split"


async def test_connection_close_is_honoured(sim: SimCluster) -> None:
    reader, writer = await connect(sim)
    writer.write(request("GET", f"{CM_PATH}/none", headers={"Connection": "close"}))
    status, headers, _ = await read_response(reader)
    assert status == 404
    assert headers["connection"] == "close"
    assert await reader.read() == b""  # the server closed the connection
    writer.close()


async def test_a_watch_hands_the_connection_to_aiohttp_which_streams_it(sim: SimCluster) -> None:
    reader, writer = await connect(sim)
    writer.write(request("GET", CM_PATH))
    status, _, body = await read_response(reader)
    assert status == 200
    rv = orjson.loads(body)["metadata"]["resourceVersion"]
    writer.write(request("GET", f"{CM_PATH}?watch=true&resourceVersion={rv}"))
    head = await reader.readuntil(b"\r\n\r\n")
    assert b" 200 " in head.split(b"\r\n", 1)[0]
    assert b"chunked" in head.lower()
    await sim.store.create("configmaps", orjson.loads(configmap("w")), "default")
    seen = b""
    while b'"ADDED"' not in seen:
        seen += await asyncio.wait_for(reader.readline(), 10)
    writer.close()
    assert b'"name":"w"' in seen
    assert sim.server.fast is not None
    assert sim.server.fast.handed_over == 1


async def test_injected_faults_are_served_by_aiohttp(sim: SimCluster) -> None:
    sim.faults.error_rate = 1.0
    sim.faults.error_code = 429
    reader, writer = await connect(sim)
    writer.write(request("GET", f"{CM_PATH}/a"))
    status, headers, body = await read_response(reader)
    writer.close()
    assert status == 429
    assert headers["retry-after"] == "1"
    assert orjson.loads(body)["reason"] == "TooManyRequests"
    assert sim.faults.counts["429"] == 1


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        # a chunked body: aiohttp decodes it and the create succeeds
        (
            b"POST " + CM_PATH.encode() + b" HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n" + b"%x\r\n" % len(configmap("c")) + configmap("c") + b"\r\n0\r\n\r\n",
            201,
        ),
        # HTTP/1.0 (no keep-alive by default)
        (b"GET " + CM_PATH.encode() + b" HTTP/1.0\r\nHost: x\r\n\r\n", 200),
        # a malformed request line: aiohttp's 400
        (b"NONSENSE\r\n\r\n", 400),
    ],
    ids=["chunked", "http-1.0", "malformed"],
)
async def test_requests_the_fast_path_does_not_parse_are_answered_by_aiohttp(
    sim: SimCluster, raw: bytes, status: int
) -> None:
    reader, writer = await connect(sim)
    writer.write(raw)
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    writer.close()
    assert int(head.split(b" ")[1]) == status
    assert sim.server.fast is not None
    assert sim.server.fast.handed_over == 1


async def test_an_oversized_body_gets_the_413_status(sim: SimCluster) -> None:
    reader, writer = await connect(sim)
    big = b'{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"big"},"data":{"k":"' + b"x" * (3 << 20) + b'"}}'
    writer.write(request("POST", CM_PATH, big))
    status, _, body = await read_response(reader)
    writer.close()
    assert status == 413
    assert orjson.loads(body)["reason"] == "RequestEntityTooLarge"


# ---------------------------------------------------------------------------------------------- eager requests

_SEEN: contextvars.ContextVar[str] = contextvars.ContextVar("seen", default="")


async def test_eager_requests_keep_order_and_context_and_resume_in_a_task_after_they_wait() -> None:
    """A request served at once (no task) that then waits is resumed in a task; each request has its own context
    (a value one sets is not seen by the next) and answers leave in request order."""
    gate = asyncio.Event()
    notes: list[tuple[str, str, bool]] = []

    async def handler(request: FastRequest) -> web.StreamResponse:
        before = _SEEN.get()
        _SEEN.set(request.path)
        if request.path == "/wait":
            await asyncio.sleep(0)
            await gate.wait()
        notes.append((request.path, before, asyncio.current_task() is not None))
        return web.Response(body=request.path.encode(), content_type="text/plain")

    fast = FastServer(handler, asyncio.Protocol, lambda r: False, lambda: True)
    server = await asyncio.get_running_loop().create_server(fast, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(request("GET", "/first") + request("GET", "/wait") + request("GET", "/after"))
        first = await read_response(reader)
        await asyncio.sleep(0.01)  # /wait is parked on the gate; /after must not overtake it
        assert [n[0] for n in notes] == ["/first"]
        gate.set()
        waited = await read_response(reader)
        after = await read_response(reader)
        writer.close()
    finally:
        server.close()
        fast.close_all()
    assert (first[2], waited[2], after[2]) == (b"/first", b"/wait", b"/after")
    assert notes == [("/first", "", False), ("/wait", "", True), ("/after", "", False)]
