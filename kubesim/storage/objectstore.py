"""The object store: buckets of stored bytes, the cluster-wide resourceVersion, the uid/owner indexes, commits.

Role: the one owner of what is stored. :class:`ObjectStore` serves resources (a :class:`Registry` plus one
:class:`~kubesim.storage.buckets.Bucket` per stored resource), hands out resourceVersions, keeps the uid and
owner-reference indexes the garbage collector reads, and commits writes: :meth:`ObjectStore.commit` stores an
object, :meth:`ObjectStore.commit_delete` removes one; both publish the change to watchers and subscribers. It
also answers reads (get, list pages in etcd order). It knows no write semantics beyond "store these bytes":
checks, defaults and admission live in :mod:`kubesim.storage.writes` and :mod:`kubesim.storage.deletion`.

Invariants: one cluster-wide resourceVersion, strictly increasing by one per commit; objects are stored as
their serialised bytes and never shared with callers; subscribers run synchronously inside a commit, after the
watchers were fed.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import orjson

from kubesim.storage import builtins
from kubesim.storage.buckets import ADDED, DELETED, MODIFIED, Bucket, Entry, Key, WatchEvent
from kubesim.storage.objects import ListPage, count_after, decode_continue, encode_continue
from kubesim.storage.resources import Registry, ResourceInfo
from kubesim.util import errors
from kubesim.util.errors import ApiError
from kubesim.util.jsonutil import compact_dumps
from kubesim.util.selectors import FieldReq, LabelMatcher, label_matcher, match_fields, parse_field_selector
from kubesim.util.timefmt import now_rfc3339

JSON = dict[str, Any]
Storage = tuple[str, str]  # (group, resource) of the stored form
Located = list[tuple[ResourceInfo, Key]]
Subscriber = Callable[[ResourceInfo, WatchEvent], None]


def selectors(
    info: ResourceInfo, label_selector: str | None, field_selector: str | None
) -> tuple[LabelMatcher | None, list[FieldReq]]:
    """The parsed ``labelSelector`` (None: everything) and ``fieldSelector`` of a LIST or WATCH of ``info``."""
    allowed = info.field_labels or ("metadata.name", "metadata.namespace")
    return label_matcher(label_selector), parse_field_selector(field_selector, allowed, info.kind, info.group)


class ObjectStore:
    """Buckets, resourceVersions, indexes and commits (see the module docstring)."""

    def __init__(self, *, watch_window: int = 50_000, clock: Callable[[], float] = time.time) -> None:
        self.registry = Registry()
        self.clock = clock
        self.ips = builtins.ClusterIPs()
        self._buckets: dict[Storage, Bucket] = {}
        self._rv = 1
        self._window = watch_window
        self._uids: dict[str, tuple[Storage, Key]] = {}
        self._dependents: dict[str, set[tuple[Storage, Key]]] = {}
        self._subscribers: list[Subscriber] = []

    # ------------------------------------------------------------------------------------ registry

    def register(self, info: ResourceInfo) -> None:
        """Serve a resource (CRDs call this when established)."""
        self.registry.add(info)
        bucket = self._buckets.get(info.storage)
        if bucket is None:
            bucket = self._buckets[info.storage] = Bucket(info, self._window)
            bucket.compacted = self._rv
        elif info.storage == (info.group, info.resource):
            bucket.info = info

    def unregister(self, group: str, resource: str) -> None:
        info = self.registry.remove(group, resource)
        if info is not None:
            bucket = self._buckets.pop(info.storage, None)
            if bucket is not None:
                for key, entry in bucket.objects.items():
                    self._unindex(entry, info.storage, key)
                bucket.close_watchers()

    def compact_all(self) -> None:
        """Forget the history so far, as a freshly started apiserver's watch cache does."""
        for bucket in self._buckets.values():
            bucket.compacted = self._rv

    def info(self, resource: str | ResourceInfo) -> ResourceInfo:
        if isinstance(resource, ResourceInfo):
            return resource
        info = self.registry.lookup(resource)
        if info is None:
            raise ApiError(
                errors.status(404, "NotFound", "the server could not find the requested resource", {"kind": resource})
            )
        return info

    def bucket(self, info: ResourceInfo) -> Bucket:
        return self._buckets[info.storage]

    def buckets(self) -> Iterator[Bucket]:
        """Every stored resource's bucket (read-only use: fan-out of bookmarks and faults)."""
        return iter(tuple(self._buckets.values()))

    @property
    def revision(self) -> int:
        """The resourceVersion of the last commit."""
        return self._rv

    @property
    def resource_version(self) -> str:
        return str(self._rv)

    def subscribe(self, callback: Subscriber) -> None:
        self._subscribers.append(callback)

    # ------------------------------------------------------------------------------------ views

    def view(self, info: ResourceInfo, obj: JSON, version: str | None = None) -> JSON:
        """The stored form of ``obj`` as served by ``info`` (conversion for alias views, apiVersion)."""
        if info.from_storage is not None:
            obj = info.from_storage(obj)
        if version and version != info.version:
            obj["apiVersion"] = info.api_version_for(version)
        return obj

    def serve_raw(self, info: ResourceInfo, raw: bytes, version: str | None = None) -> bytes:
        if info.from_storage is None and (not version or version == info.version):
            return raw
        return orjson.dumps(self.view(info, orjson.loads(raw), version))

    # ------------------------------------------------------------------------------------ reads

    def key(self, info: ResourceInfo, name: str, namespace: str | None) -> Key:
        return ((namespace or "") if info.namespaced else "", name)

    def entry_at(self, info: ResourceInfo, key: Key) -> Entry | None:
        return self.bucket(info).objects.get(key)

    def get_entry(self, info: ResourceInfo, name: str, namespace: str | None) -> Entry:
        entry = self.entry_at(info, self.key(info, name, namespace))
        if entry is None:
            raise errors.not_found(info.resource, info.group, name)
        return entry

    async def get(self, resource: str | ResourceInfo, name: str, namespace: str | None = None) -> JSON:
        info = self.info(resource)
        return self.view(info, self.get_entry(info, name, namespace).obj())

    def get_nowait(self, resource: str | ResourceInfo, name: str, namespace: str | None = None) -> JSON | None:
        """The object or None, synchronously (for controllers' hot paths)."""
        info = self.info(resource)
        entry = self.entry_at(info, self.key(info, name, namespace))
        return None if entry is None else self.view(info, entry.obj())

    def list_page(
        self,
        info: ResourceInfo,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        limit: int = 0,
        continue_token: str | None = None,
    ) -> ListPage:
        """One page of raw objects (stored form) in etcd key order."""
        bucket = self.bucket(info)
        labels, fields = selectors(info, label_selector, field_selector)
        start: Key | None = None
        rv = self._rv
        if continue_token:
            start, rv = decode_continue(continue_token)
        if namespace and info.namespaced and (start is None or start < (namespace, "")):
            keys = bucket.keys_from((namespace, ""))
        else:
            keys = bucket.keys_after(start)
        items: list[bytes] = []
        objects = bucket.objects
        last: Key | None = None
        more = False
        for key in keys:
            if namespace and info.namespaced and key[0] != namespace:
                break
            entry = objects.get(key)
            if entry is None:
                continue
            if labels is not None and not labels(entry.labels or {}):
                continue
            if fields and not match_fields(fields, entry.obj()):
                continue
            if limit and len(items) >= limit:
                more = True
                break
            items.append(entry.raw)
            last = key
        token = ""
        remaining: int | None = None
        if more and last is not None:
            token = encode_continue(last, rv)
            if labels is None and not fields:
                remaining = count_after(bucket.sorted_keys(), last, namespace if info.namespaced else None)
        return ListPage(items, str(rv), token, remaining)

    async def list(
        self,
        resource: str | ResourceInfo,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> list[JSON]:
        info = self.info(resource)
        page = self.list_page(info, namespace, label_selector, field_selector)
        return [self.view(info, orjson.loads(raw)) for raw in page.items]

    # ------------------------------------------------------------------------------------ owner index

    def owner_exists(self, uid: str, namespace: str) -> bool:
        loc = self._uids.get(uid)
        if loc is None:
            return False
        return loc[1][0] in ("", namespace)

    def dependents(self, uid: str) -> Located:
        out = []
        for storage, key in self._dependents.get(uid, ()):
            bucket = self._buckets.get(storage)
            if bucket is not None:
                out.append((bucket.info, key))
        return out

    def locate_uid(self, uid: str) -> tuple[ResourceInfo, Key] | None:
        loc = self._uids.get(uid)
        if loc is None or loc[0] not in self._buckets:
            return None
        return self._buckets[loc[0]].info, loc[1]

    def _index(self, entry: Entry, storage: Storage, key: Key) -> None:
        self._uids[entry.uid] = (storage, key)
        for owner in entry.owners:
            self._dependents.setdefault(owner, set()).add((storage, key))

    def _unindex(self, entry: Entry, storage: Storage, key: Key) -> None:
        if self._uids.get(entry.uid, (None, None))[1] == key:
            self._uids.pop(entry.uid, None)
        for owner in entry.owners:
            deps = self._dependents.get(owner)
            if deps is not None:
                deps.discard((storage, key))
                if not deps:
                    del self._dependents[owner]

    # ------------------------------------------------------------------------------------ commits

    def commit(self, info: ResourceInfo, key: Key, obj: JSON, old: Entry | None) -> JSON:
        """Store ``obj`` at ``key`` (replacing ``old``), bump the rv, publish ADDED/MODIFIED; returns ``obj``."""
        bucket = self.bucket(info)
        self._rv += 1
        rv = self._rv
        meta = obj["metadata"]
        meta["resourceVersion"] = str(rv)
        raw = compact_dumps(obj)
        owners = tuple(r.get("uid", "") for r in meta.get("ownerReferences") or ())
        labels = meta.get("labels")
        entry = Entry(raw, rv, meta.get("uid", ""), dict(labels) if labels else None, owners)
        if old is not None:
            self._unindex(old, info.storage, key)
        bucket.put(key, entry)
        self._index(entry, info.storage, key)
        ev = WatchEvent(
            MODIFIED if old is not None else ADDED,
            rv,
            key,
            raw,
            entry.labels,
            old.raw if old is not None else None,
            old.labels if old is not None else None,
        )
        ev.owners = entry.owners
        if old is not None:
            ev.prev_owners = old.owners
        self._publish(bucket, ev)
        return obj

    def commit_delete(self, info: ResourceInfo, key: Key, final: JSON, old: Entry) -> JSON:
        """Remove ``old`` from ``key``, bump the rv, publish DELETED with ``final`` (its last state)."""
        bucket = self.bucket(info)
        self._rv += 1
        final["metadata"]["resourceVersion"] = str(self._rv)
        raw = compact_dumps(final)
        bucket.pop(key)
        self._unindex(old, info.storage, key)
        ev = WatchEvent(DELETED, self._rv, key, raw, old.labels)
        ev.prev_owners = old.owners
        self._publish(bucket, ev)
        return final

    def _publish(self, bucket: Bucket, ev: WatchEvent) -> None:
        bucket.publish(ev)
        for cb in self._subscribers:
            cb(bucket.info, ev)
        ev.release()

    def seed(self, resource: str, obj: JSON) -> None:
        """Store a trusted object at once: defaults and server fields, no admission or validation, no await.

        For bulk set-up by in-process components (65k simulated nodes); never for client input.
        """
        info = self.info(resource)
        meta = obj["metadata"]
        builtins.default(info, obj)
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = now_rfc3339(self.clock)
        builtins.prepare_create(info, obj, meta["uid"], self.ips)
        self.commit(info, self.key(info, meta["name"], meta.get("namespace")), obj, None)
