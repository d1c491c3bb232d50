"""Watches: registering watchers, replay from a resourceVersion, bookmarks, and the in-process stream.

Role: :class:`WatchHub` is the WATCH half of :class:`~kubesim.storage.store.Store` (``open_watch``, ``watch``,
``bookmark``, ``expire_watches``, ``drop_watches``) and :class:`WatchStream` the in-process
``async for type_, obj in stream`` iterator. The HTTP server (:mod:`kubesim.apiserver.httpwatch`) frames the same
watcher queues as JSON lines.

Invariants: a watch without a resourceVersion (or ``"0"``) starts with synthetic ADDED events for the current
objects; a watch from a resourceVersion older than the resource's replay window gets one ERROR event with a
410 ``Expired`` Status and nothing else; registration and the initial events happen without yielding, so no
change can slip between them.
"""

from __future__ import annotations

import orjson

from kubesim.storage.buckets import ADDED, BOOKMARK, ERROR, Watcher, WatchEvent
from kubesim.storage.objects import JSON
from kubesim.storage.objectstore import ObjectStore, selectors
from kubesim.storage.resources import ResourceInfo
from kubesim.util import errors


class WatchStream:
    """An in-process watch: ``async for type_, obj in stream``. Objects are fresh dicts."""

    def __init__(
        self,
        objects: ObjectStore,
        info: ResourceInfo,
        watcher: Watcher | None,
        initial: list[WatchEvent],
        error: JSON | None = None,
        bookmarks: bool = False,
    ) -> None:
        self._objects = objects
        self._info = info
        self.watcher = watcher
        self._initial = initial
        self._error = error
        self._bookmarks = bookmarks
        self._done = False

    def __aiter__(self) -> WatchStream:
        return self

    async def __anext__(self) -> tuple[str, JSON]:
        while True:
            if self._done:
                raise StopAsyncIteration
            if self._error is not None:
                err, self._error = self._error, None
                self._done = True
                return ERROR, err
            if self._initial:
                ev = self._initial.pop(0)
            else:
                w = self.watcher
                if w is None:
                    self._done = True
                    raise StopAsyncIteration
                while not w.queue:
                    if w.closed:
                        self._done = True
                        if w.error is not None:
                            return ERROR, w.error
                        raise StopAsyncIteration
                    w.wakeup.clear()
                    await w.wakeup.wait()
                ev = w.queue.popleft()
            if ev.type == BOOKMARK and not self._bookmarks:
                continue
            return ev.type, self._objects.view(self._info, orjson.loads(ev.raw))

    def close(self) -> None:
        self._done = True
        if self.watcher is not None:
            self.watcher.close()

    async def __aenter__(self) -> WatchStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()


class WatchHub:
    """Watch registration, replay, bookmarks and watch faults over one :class:`ObjectStore`."""

    def __init__(self, objects: ObjectStore) -> None:
        self.objects = objects

    def open_watch(
        self,
        info: ResourceInfo,
        namespace: str | None = None,
        resource_version: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        send_initial_events: bool | None = None,
    ) -> tuple[Watcher | None, list[WatchEvent], JSON | None]:
        """Register a watcher; returns it, the events to send first, and a Status to send as ERROR instead."""
        bucket = self.objects.bucket(info)
        labels, fields = selectors(info, label_selector, field_selector)
        ns = namespace if info.namespaced and namespace else None
        initial: list[WatchEvent] = []
        if send_initial_events is None:
            send_initial_events = resource_version in (None, "", "0")
        if send_initial_events:
            for raw in self.objects.list_page(info, ns, label_selector, field_selector).items:
                obj = orjson.loads(raw)
                meta = obj.get("metadata") or {}
                initial.append(
                    WatchEvent(
                        ADDED,
                        int(meta.get("resourceVersion") or 0),
                        (meta.get("namespace", ""), meta.get("name", "")),
                        raw,
                        meta.get("labels"),
                    )
                )
        if resource_version not in (None, "", "0") and not send_initial_events:
            try:
                rv = int(str(resource_version))
            except ValueError:
                raise errors.bad_request(f'invalid resource version: "{resource_version}"') from None
            replay = bucket.events_since(rv)
            if replay is None:
                return (
                    None,
                    [],
                    errors.status(410, "Expired", f"too old resource version: {rv} ({bucket.compacted + 1})"),
                )
            w = bucket.add_watcher(ns, labels, fields)
            for ev in replay:
                w.offer(ev)
            return w, [], None
        w = bucket.add_watcher(ns, labels, fields)
        return w, initial, None

    def watch(
        self,
        resource: str | ResourceInfo,
        namespace: str | None = None,
        resource_version: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        bookmarks: bool = False,
    ) -> WatchStream:
        info = self.objects.info(resource)
        w, initial, err = self.open_watch(info, namespace, resource_version, label_selector, field_selector)
        return WatchStream(self.objects, info, w, initial, err, bookmarks)

    def bookmark(self) -> None:
        """Send a BOOKMARK at the current resourceVersion to every watcher of every resource."""
        rv = self.objects.revision
        for bucket in self.objects.buckets():
            if not bucket.watchers:
                continue
            info = bucket.info
            raw = orjson.dumps(
                {"kind": info.kind, "apiVersion": info.api_version, "metadata": {"resourceVersion": str(rv)}}
            )
            ev = WatchEvent(BOOKMARK, rv, ("", ""), raw, None)
            for w in tuple(bucket.watchers):
                w.offer(ev)

    def expire_watches(self, resource: str | ResourceInfo | None = None) -> None:
        """Fault injection: close watchers with a 410 Expired ERROR event."""
        infos = [self.objects.info(resource)] if resource is not None else [b.info for b in self.objects.buckets()]
        for info in infos:
            self.objects.bucket(info).close_watchers(
                lambda w: errors.status(410, "Expired", "too old resource version: 1 (2)")
            )

    def drop_watches(self, resource: str | ResourceInfo | None = None) -> None:
        """Fault injection: end watch streams without an error, as a dropped connection does."""
        infos = [self.objects.info(resource)] if resource is not None else [b.info for b in self.objects.buckets()]
        for info in infos:
            self.objects.bucket(info).close_watchers()
