"""WATCH over HTTP: chunked JSON-line streams with bookmarks, timeouts, Table and metadata-only views.

Role: :func:`serve_watch` turns a store watcher into the wire form clients read:
one ``{"type": ..., "object": ...}`` line per event, written in batches; periodic BOOKMARKs when
``allowWatchBookmarks`` is set; the watch-list protocol (``sendInitialEvents``: initial ADDED events, then a
bookmark annotated ``k8s.io/initial-events-end``); an ERROR line with the Status when the watch cannot start or
is expired; an orderly end at ``timeoutSeconds``.

Invariants: plain-JSON watchers get the stored bytes framed without re-encoding; the watcher is always
unregistered when the stream ends, however it ends.
"""

from __future__ import annotations

import asyncio

import orjson
from aiohttp import web

from kubesim.apiserver import tables
from kubesim.apiserver.bodies import accepted_view
from kubesim.apiserver.httputil import JSON_CT, Target, as_bool
from kubesim.storage.buckets import BOOKMARK, ERROR, WatchEvent
from kubesim.storage.store import Store
from kubesim.util import errors


async def serve_watch(
    store: Store, bookmark_interval: float, request: web.Request, t: Target, name: str | None = None
) -> web.StreamResponse:
    q = request.query
    field_selector = q.get("fieldSelector")
    if name is not None:
        field_selector = ",".join(filter(None, [field_selector, f"metadata.name={name}"]))
    sie = q.get("sendInitialEvents")
    send_initial = None if sie is None else as_bool(sie)
    if send_initial and q.get("resourceVersionMatch") != "NotOlderThan":
        raise errors.invalid(
            "ListOptions",
            "meta.k8s.io",
            "",
            [
                errors.field_cause(
                    "FieldValueForbidden",
                    "resourceVersionMatch",
                    "Forbidden: sendInitialEvents requires setting resourceVersionMatch to NotOlderThan",
                )
            ],
        )
    bookmarks = as_bool(q.get("allowWatchBookmarks"))
    watcher, initial, err = store.open_watch(
        t.info, t.namespace, q.get("resourceVersion"), q.get("labelSelector"), field_selector, send_initial
    )
    timeout = q.get("timeoutSeconds")
    if timeout:
        try:
            seconds = float(timeout)
        except ValueError:
            seconds = -1.0
        if seconds < 0:
            raise errors.bad_request(f'invalid timeoutSeconds "{timeout}"')
    as_ = accepted_view(request)
    resp = web.StreamResponse(status=200, headers={"Content-Type": JSON_CT, "Transfer-Encoding": "chunked"})
    resp.enable_chunked_encoding()
    await resp.prepare(request)
    convert = t.info.from_storage is not None or t.version != t.info.version or as_ != ""

    def line(ev: WatchEvent) -> bytes:
        if ev.type == BOOKMARK or not convert:
            return ev.line()
        obj = store.view(t.info, orjson.loads(ev.raw), t.version)
        if as_ == "Table":
            obj = tables.table(
                t.info,
                t.version,
                [obj],
                q.get("includeObject", "Metadata"),
                {"resourceVersion": obj["metadata"].get("resourceVersion", "")},
            )
        elif as_.startswith("PartialObjectMetadata"):
            obj = {
                "kind": "PartialObjectMetadata",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": obj.get("metadata", {}),
            }
        return orjson.dumps({"type": ev.type, "object": obj}) + b"\n"

    try:
        if err is not None:
            await resp.write(orjson.dumps({"type": ERROR, "object": err}) + b"\n")
            return resp
        assert watcher is not None
        if initial:
            await resp.write(b"".join(line(ev) for ev in initial))
        if send_initial:
            bm = {
                "kind": t.info.kind,
                "apiVersion": t.info.api_version_for(t.version),
                "metadata": {
                    "resourceVersion": store.resource_version,
                    "annotations": {"k8s.io/initial-events-end": "true"},
                },
            }
            await resp.write(orjson.dumps({"type": BOOKMARK, "object": bm}) + b"\n")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + float(timeout) if timeout else None
        while True:
            while not watcher.queue:
                if watcher.closed:
                    if watcher.error is not None:
                        await resp.write(orjson.dumps({"type": ERROR, "object": watcher.error}) + b"\n")
                    return resp
                watcher.wakeup.clear()
                wait = bookmark_interval if bookmarks else None
                if deadline is not None:
                    left = deadline - loop.time()
                    if left <= 0:
                        return resp
                    wait = left if wait is None else min(wait, left)
                try:
                    await asyncio.wait_for(watcher.wakeup.wait(), wait)
                except TimeoutError:
                    if bookmarks and not watcher.queue:
                        await resp.write(bookmark_line(store, t))
            chunk = []
            while watcher.queue:
                ev = watcher.queue.popleft()
                if ev.type == BOOKMARK and not bookmarks:
                    continue
                chunk.append(line(ev))
            if chunk:
                await resp.write(b"".join(chunk))
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    finally:
        if watcher is not None:
            watcher.close()
    return resp


def bookmark_line(store: Store, t: Target) -> bytes:
    return (
        orjson.dumps(
            {
                "type": BOOKMARK,
                "object": {
                    "kind": t.info.kind,
                    "apiVersion": t.info.api_version_for(t.version),
                    "metadata": {"resourceVersion": store.resource_version},
                },
            }
        )
        + b"\n"
    )
