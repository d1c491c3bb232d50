"""Raw object storage and watch fan-out: the layer under :mod:`kubesim.storage.objectstore`.

Role: keep every stored object as its serialised JSON bytes (plus its labels, owner UIDs and resourceVersion),
keep a bounded per-resource window of recent events for watches that start at an old resourceVersion, and fan
each event out to the live watchers. Nothing here knows Kubernetes semantics beyond keys and labels.

Invariants:
- ``Bucket.objects`` maps ``(namespace, name)`` to an :class:`Entry`; ``namespace`` is ``""`` for
  cluster-scoped resources. An entry's ``raw`` is exactly the bytes served for it.
- ``Bucket.events`` holds the most recent events in resourceVersion order; ``Bucket.compacted`` is the
  resourceVersion of the newest event dropped from it, so a watch from ``rv`` is served iff ``rv >= compacted``.
- An event's object is serialised once (the stored bytes) and framed per watcher without re-encoding.
- Watchers are fed synchronously at commit time, so a watcher sees the events of a resource in commit order and
  a bookmark enqueued after them is never ahead of an undelivered event.
"""

from __future__ import annotations

import asyncio
import bisect
from collections import deque
from collections.abc import Callable
from typing import Any

import orjson

from kubesim.storage.resources import ResourceInfo
from kubesim.util.selectors import FieldReq, LabelMatcher, match_fields

JSON = dict[str, Any]
Key = tuple[str, str]

ADDED = "ADDED"
MODIFIED = "MODIFIED"
DELETED = "DELETED"
BOOKMARK = "BOOKMARK"
ERROR = "ERROR"
MAX_QUEUED = 250_000  # events a single watcher may have pending before it is cut off


_PREFIX = {t: b'{"type":"' + t.encode() + b'","object":' for t in ("ADDED", "MODIFIED", "DELETED", "BOOKMARK")}


class Entry:
    """One stored object."""

    __slots__ = ("labels", "owners", "raw", "rv", "uid")

    def __init__(self, raw: bytes, rv: int, uid: str, labels: dict[str, str] | None, owners: tuple[str, ...]):
        self.raw = raw
        self.rv = rv
        self.uid = uid
        self.labels = labels
        self.owners = owners

    def obj(self) -> JSON:
        out: JSON = orjson.loads(self.raw)
        return out


class WatchEvent:
    """One change, shared by every watcher of its resource."""

    __slots__ = ("_obj", "key", "labels", "owners", "prev_labels", "prev_owners", "prev_raw", "raw", "rv", "type")

    def __init__(
        self,
        type_: str,
        rv: int,
        key: Key,
        raw: bytes,
        labels: dict[str, str] | None,
        prev_raw: bytes | None = None,
        prev_labels: dict[str, str] | None = None,
    ) -> None:
        self.type = type_
        self.rv = rv
        self.key = key
        self.raw = raw
        self.labels = labels
        self.prev_raw = prev_raw
        self.prev_labels = prev_labels
        self.owners: tuple[str, ...] = ()  # owner UIDs after the change (set by the store on commit)
        self.prev_owners: tuple[str, ...] = ()  # and before it
        self._obj: JSON | None = None

    def line(self) -> bytes:
        """The watch-stream line for this event (``{"type":...,"object":...}\\n``) around the stored bytes.

        Not cached: events stay in the replay window, and a cached copy of every line would double its memory.
        """
        return _PREFIX[self.type] + self.raw + b"}\n"

    def release(self) -> None:
        """Drop what only the live fan-out needed, before the event sits in the replay window."""
        self._obj = None
        self.prev_raw = None

    def cached_obj(self) -> JSON | None:
        """The shared decoded object if a subscriber already decoded it, else None (decodes nothing)."""
        return self._obj

    def shared_obj(self) -> JSON:
        """The decoded object, decoded once and shared: callers must not change it."""
        if self._obj is None:
            self._obj = orjson.loads(self.raw)
        return self._obj


class Watcher:
    """A live subscriber to one resource, optionally filtered by namespace, labels and fields."""

    def __init__(
        self,
        bucket: Bucket,
        namespace: str | None,
        labels: LabelMatcher | None,
        fields: list[FieldReq],
    ) -> None:
        self.bucket = bucket
        self.namespace = namespace
        self.labels = labels
        self.fields = fields
        self.queue: deque[WatchEvent] = deque()
        self.wakeup = asyncio.Event()
        self.closed = False
        self.error: JSON | None = None  # a Status to send as an ERROR event before closing

    @property
    def filtered(self) -> bool:
        return self.labels is not None or bool(self.fields)

    def matches(self, labels: dict[str, str] | None, raw: bytes, obj: JSON | None = None) -> bool:
        if self.labels is not None and not self.labels(labels or {}):
            return False
        if self.fields:
            return match_fields(self.fields, obj if obj is not None else orjson.loads(raw))
        return True

    def offer(self, ev: WatchEvent) -> None:
        """Queue ``ev`` if it concerns this watcher, turning filter transitions into ADDED/DELETED."""
        if self.closed:
            return
        if self.namespace is not None and ev.key[0] != self.namespace:
            return
        if ev.type == BOOKMARK or not self.filtered:
            self._append(ev)
            return
        now = self.matches(ev.labels, ev.raw, ev.shared_obj() if self.fields else None)
        if ev.type == MODIFIED:
            # Replayed events no longer carry the previous object: field filters then assume no transition.
            before = (
                now if (self.fields and ev.prev_raw is None) else self.matches(ev.prev_labels, ev.prev_raw or ev.raw)
            )
            if now and not before:
                ev = WatchEvent(ADDED, ev.rv, ev.key, ev.raw, ev.labels)
            elif before and not now:
                ev = WatchEvent(DELETED, ev.rv, ev.key, ev.raw, ev.labels)
            elif not now:
                return
        elif not now:
            return
        self._append(ev)

    def _append(self, ev: WatchEvent) -> None:
        if len(self.queue) >= MAX_QUEUED:
            # A consumer this far behind is cut off, as the apiserver does with a watcher whose buffer is full;
            # its client re-watches from the last resourceVersion it saw.
            self.close()
            return
        self.queue.append(ev)
        self.wakeup.set()

    def close(self, error: JSON | None = None) -> None:
        if error is not None and not self.closed:
            self.error = error
        self.closed = True
        self.bucket.watchers.discard(self)
        self.wakeup.set()


class Bucket:
    """All objects of one stored resource, its recent events and its watchers."""

    def __init__(self, info: ResourceInfo, window: int) -> None:
        self.info = info
        self.objects: dict[Key, Entry] = {}
        self.events: deque[WatchEvent] = deque()
        self.window = window
        self.compacted = 0
        self.watchers: set[Watcher] = set()
        self._sorted: list[Key] | None = None
        self.by_namespace: dict[str, int] = {}

    def sorted_keys(self) -> list[Key]:
        """Keys in etcd order (namespace, then name), rebuilt lazily after inserts or removals."""
        if self._sorted is None:
            self._sorted = sorted(self.objects)
        return self._sorted

    def keys_after(self, start: Key | None) -> list[Key]:
        keys = self.sorted_keys()
        if start is None:
            return keys
        return keys[bisect.bisect_right(keys, start) :]

    def keys_from(self, start: Key) -> list[Key]:
        keys = self.sorted_keys()
        return keys[bisect.bisect_left(keys, start) :]

    def put(self, key: Key, entry: Entry) -> Entry | None:
        old = self.objects.get(key)
        self.objects[key] = entry
        if old is None:
            self._sorted = None
            self.by_namespace[key[0]] = self.by_namespace.get(key[0], 0) + 1
        return old

    def pop(self, key: Key) -> Entry | None:
        old = self.objects.pop(key, None)
        if old is not None:
            self._sorted = None
            n = self.by_namespace.get(key[0], 0) - 1
            if n > 0:
                self.by_namespace[key[0]] = n
            else:
                self.by_namespace.pop(key[0], None)
        return old

    def publish(self, ev: WatchEvent) -> None:
        self.events.append(ev)
        if len(self.events) > self.window:
            self.compacted = self.events.popleft().rv
        for w in tuple(self.watchers):
            w.offer(ev)

    def events_since(self, rv: int) -> list[WatchEvent] | None:
        """Events newer than ``rv``, or None when some of them were already compacted away."""
        if rv < self.compacted:
            return None
        out: list[WatchEvent] = []
        for ev in reversed(self.events):
            if ev.rv <= rv:
                break
            out.append(ev)
        out.reverse()
        return out

    def add_watcher(self, namespace: str | None, labels: LabelMatcher | None, fields: list[FieldReq]) -> Watcher:
        w = Watcher(self, namespace, labels, fields)
        self.watchers.add(w)
        return w

    def close_watchers(self, error_for: Callable[[Watcher], JSON | None] | None = None) -> None:
        for w in tuple(self.watchers):
            w.close(error_for(w) if error_for else None)
