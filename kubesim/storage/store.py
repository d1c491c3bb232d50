"""The simulated API server's object store and its in-process async API.

Role: every object of the simulated cluster lives here, and every write -- from the HTTP server or from
in-process controllers (Job controller, scheduler, kubelet, garbage collector) -- goes through the same
:class:`Store` methods, which apply the apiserver's semantics: defaults, name generation, uid and timestamps,
optimistic concurrency, status subresources and generation, finalizers and graceful deletion, admission, CRD
schemas. There is no HTTP in this module.

In-process API (all ``resource`` arguments are qualified names: ``"pods"``, ``"nodes"``, ``"jobs.batch"``,
``"jobsets.jobset.x-k8s.io"``, ``"events.events.k8s.io"``; kinds and short names also resolve; all objects are
plain JSON dicts, returned as fresh copies that callers may change):

- ``await store.create(resource, obj, namespace=None)`` -> stored object. ``metadata.generateName`` works.
  Raises :class:`~kubesim.util.errors.ApiError` 409 AlreadyExists, 404 (namespace missing), 422 Invalid, ...
- ``await store.get(resource, name, namespace=None)`` -> object, or ApiError 404 NotFound.
- ``await store.list(resource, namespace=None, label_selector=None, field_selector=None)`` -> list of objects
  in etcd order; ``store.resource_version`` (str) read right after is the list's resourceVersion.
- ``await store.update(resource, obj, namespace=None)`` -> PUT. If ``obj`` carries
  ``metadata.resourceVersion`` and it is stale: ApiError 409 Conflict. For kinds with a status subresource the
  status in ``obj`` is ignored (use ``update_status``).
- ``await store.update_status(resource, obj, namespace=None)`` -> PUT .../status: only ``status`` changes.
- ``await store.patch(resource, name, patch, namespace=None, patch_type="merge", subresource=None,
  field_manager=None, force=False)``; ``patch_type`` is ``"merge"``, ``"json"`` (a list of ops),
  ``"strategic"`` or ``"apply"``. Retries internally on concurrent writes like the apiserver's
  GuaranteedUpdate (unless the patch pins a resourceVersion).
- ``await store.delete(resource, name, namespace=None, propagation_policy=None, grace_period_seconds=None,
  preconditions=None)`` -> the object (deleted, or still present with ``deletionTimestamp`` when finalizers or a
  graceful pod deletion hold it). A running pod bound to a node is deleted gracefully: it gets a
  ``deletionTimestamp`` and stays until the kubelet deletes it with ``grace_period_seconds=0``.
- ``store.watch(resource, namespace=None, resource_version=None, label_selector=None, field_selector=None,
  bookmarks=False)`` -> a :class:`WatchStream`: ``async for type_, obj in stream`` yields ``("ADDED"|
  "MODIFIED"|"DELETED"|"BOOKMARK"|"ERROR", obj)``. With ``resource_version`` None or ``"0"`` it starts with
  synthetic ADDED events for the current objects; with an rv it replays later events, or yields one ERROR
  event (a 410 Expired ``Status``) and ends when that rv is too old. Close with ``stream.close()`` or
  ``async with``.
- ``store.subscribe(callback)`` registers a synchronous ``callback(info, event)`` for every committed change
  (how the garbage collector is driven); callbacks must only enqueue work. ``event`` is a
  :class:`~kubesim.storage.buckets.WatchEvent` (``type``, ``rv``, ``key`` = (namespace, name), ``raw`` bytes,
  ``shared_obj()`` -- decoded once, read-only, valid only during the callback).
- Helpers for controllers: ``store.get_nowait(resource, name, namespace)`` (object or None, synchronous);
  ``await store.update_fn(resource, name, namespace, build, subresource="")`` (read-modify-write with retries:
  ``build`` receives a fresh copy and returns the new object); ``await store.remove_finalizer(resource, name,
  namespace, finalizer)``; ``await store.bind(name, namespace, node)`` (``pods/binding``: sets ``nodeName`` and
  ``PodScheduled``; 409 when already bound); ``store.list_page(info, ...)`` (raw bytes, paginated);
  ``store.info(resource)`` and ``store.bucket(info)`` (the raw storage, read-only).
- Bulk set-up: ``store.seed(resource, obj)`` stores a trusted object synchronously (no admission, no
  validation), e.g. the simulated nodes.
- Fault injection: ``store.expire_watches(resource=None)`` (ERROR 410 to every watcher) and
  ``store.drop_watches(resource=None)`` (streams end).

Field managers: writes that name a ``field_manager`` get ``managedFields`` entries (``Update`` or ``Apply``);
anonymous in-process writes do not, which keeps the controllers' hot paths cheap.

Invariants: one cluster-wide resourceVersion, strictly increasing by one per committed write; a write that
changes nothing is not committed (no new resourceVersion, no event); objects are stored as their serialised
bytes and never shared with callers.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

import orjson

from kubesim.storage import builtins, watches, writes
from kubesim.storage import deletion as lifecycle
from kubesim.storage.buckets import ADDED, DELETED, MODIFIED, Bucket, Entry, Key, WatchEvent
from kubesim.storage.objects import (
    FIELD_VALIDATION,
    WARNINGS,
    AdmissionAttributes,
    AdmissionHook,
    ListPage,
    Located,
    clone,
    compact_dumps,
    count_after,
    decode_continue,
    encode_continue,
    now_rfc3339,
    random_suffix,
    warn,
)
from kubesim.storage.resources import Registry, ResourceInfo, builtin_resources
from kubesim.storage.watches import WatchStream
from kubesim.util import errors
from kubesim.util.errors import ApiError
from kubesim.util.selectors import label_matcher, match_fields, parse_field_selector

__all__ = [
    "FIELD_VALIDATION",
    "WARNINGS",
    "AdmissionAttributes",
    "AdmissionHook",
    "ListPage",
    "Store",
    "WatchStream",
    "clone",
    "compact_dumps",
    "now_rfc3339",
    "random_suffix",
    "warn",
]

JSON = dict[str, Any]
DEFAULT_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")


class Store:
    """The object store with the apiserver's write semantics. See the module docstring for the API."""

    def __init__(self, *, watch_window: int = 50_000, clock: Callable[[], float] = time.time) -> None:
        self.registry = Registry()
        self.clock = clock
        self._buckets: dict[tuple[str, str], Bucket] = {}
        self._rv = 1
        self._window = watch_window
        self._uids: dict[str, tuple[tuple[str, str], Key]] = {}
        self._dependents: dict[str, set[tuple[tuple[str, str], Key]]] = {}
        self._subscribers: list[Callable[[ResourceInfo, WatchEvent], None]] = []
        self.mutating: list[AdmissionHook] = []
        self.validating: list[AdmissionHook] = []
        self.schema: Any = None  # kubesim.storage.schema.SchemaHooks once CRD support is wired in
        self.admission: Any = None  # kubesim.storage.admission.Admission once webhooks are wired in
        self.ips = builtins.ClusterIPs()
        for info in builtin_resources():
            self.register(info)
        for ns in DEFAULT_NAMESPACES:
            self._seed("namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
            self._seed(
                "serviceaccounts",
                {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default", "namespace": ns}},
            )
        self._seed(
            "services",
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {
                    "name": "kubernetes",
                    "namespace": "default",
                    "labels": {"component": "apiserver", "provider": "kubernetes"},
                },
                "spec": {
                    "clusterIP": "10.96.0.1",
                    "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 6443}],
                },
            },
        )
        # Like a freshly started apiserver's watch cache: history before start-up is not replayable.
        for bucket in self._buckets.values():
            bucket.compacted = self._rv

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

    @property
    def resource_version(self) -> str:
        return str(self._rv)

    def subscribe(self, callback: Callable[[ResourceInfo, WatchEvent], None]) -> None:
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

    def _key(self, info: ResourceInfo, name: str, namespace: str | None) -> Key:
        return ((namespace or "") if info.namespaced else "", name)

    def get_entry(self, info: ResourceInfo, name: str, namespace: str | None) -> Entry:
        entry = self.bucket(info).objects.get(self._key(info, name, namespace))
        if entry is None:
            raise errors.not_found(info.resource, info.group, name)
        return entry

    async def get(self, resource: str | ResourceInfo, name: str, namespace: str | None = None) -> JSON:
        info = self.info(resource)
        return self.view(info, self.get_entry(info, name, namespace).obj())

    def get_nowait(self, resource: str | ResourceInfo, name: str, namespace: str | None = None) -> JSON | None:
        """The object or None, synchronously (for controllers' hot paths)."""
        info = self.info(resource)
        entry = self.bucket(info).objects.get(self._key(info, name, namespace))
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
        labels = label_matcher(label_selector)
        fields = parse_field_selector(
            field_selector, info.field_labels or ("metadata.name", "metadata.namespace"), info.kind, info.group
        )
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

    # ------------------------------------------------------------------------------------ watch

    # ------------------------------------------------------------------------------------ commit

    def _index(self, entry: Entry, storage: tuple[str, str], key: Key) -> None:
        self._uids[entry.uid] = (storage, key)
        for owner in entry.owners:
            self._dependents.setdefault(owner, set()).add((storage, key))

    def _unindex(self, entry: Entry, storage: tuple[str, str], key: Key) -> None:
        if self._uids.get(entry.uid, (None, None))[1] == key:
            self._uids.pop(entry.uid, None)
        for owner in entry.owners:
            deps = self._dependents.get(owner)
            if deps is not None:
                deps.discard((storage, key))
                if not deps:
                    del self._dependents[owner]

    def _commit(
        self, info: ResourceInfo, key: Key, obj: JSON | None, old: Entry | None, deleted: JSON | None = None
    ) -> JSON:
        """Write ``obj`` (or delete with final state ``deleted``), bump the rv, publish the event."""
        bucket = self.bucket(info)
        self._rv += 1
        rv = self._rv
        if obj is not None:
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
            result = obj
        else:
            assert deleted is not None
            assert old is not None
            deleted["metadata"]["resourceVersion"] = str(rv)
            raw = compact_dumps(deleted)
            bucket.pop(key)
            self._unindex(old, info.storage, key)
            ev = WatchEvent(DELETED, rv, key, raw, old.labels)
            ev.prev_owners = old.owners
            result = deleted
        bucket.publish(ev)
        for cb in self._subscribers:
            cb(bucket.info, ev)
        ev.release()
        return result

    def seed(self, resource: str, obj: JSON) -> None:
        """Store a trusted object at once: defaults and server fields, no admission or validation, no await.

        For bulk set-up by in-process components (65k simulated nodes); never for client input.
        """
        self._seed(resource, obj)

    def _seed(self, resource: str, obj: JSON) -> None:
        info = self.info(resource)
        meta = obj["metadata"]
        builtins.default(info, obj)
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = now_rfc3339(self.clock)
        builtins.prepare_create(info, obj, meta["uid"], self.ips)
        self._commit(info, self._key(info, meta["name"], meta.get("namespace")), obj, None)

    # ------------------------------------------------------------------------------------ helpers

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

    def entry_at(self, info: ResourceInfo, key: Key) -> Entry | None:
        return self.bucket(info).objects.get(key)

    # ------------------------------------------------------------------------------------ create

    # ------------------------------------------------------------------------------------ update

    # ------------------------------------------------------------------------------------ patch

    # ------------------------------------------------------------------------------------ delete

    # The write path, deletion and watches live in their own modules (see their docstrings).
    create = writes.create
    update = writes.update
    update_status = writes.update_status
    patch = writes.patch
    update_fn = writes.update_fn
    _create = writes._create
    _check_kind = writes._check_kind
    _namespace_for = writes._namespace_for
    _validate = writes._validate
    _apply_schema = writes._apply_schema
    _check_unknown = writes._check_unknown
    _default = writes._default
    _admit = writes._admit
    _check_namespace_open = writes._check_namespace_open
    _prepare_update = writes._prepare_update
    _guaranteed_update = writes._guaranteed_update
    _guaranteed_update_impl = writes._guaranteed_update_impl
    delete = lifecycle.delete
    delete_ex = lifecycle.delete_ex
    _grace_period = lifecycle._grace_period
    remove_finalizer = lifecycle.remove_finalizer
    remove_now = lifecycle.remove_now
    evict = lifecycle.evict
    bind = lifecycle.bind
    open_watch = watches.open_watch
    watch = watches.watch
    bookmark = watches.bookmark
    expire_watches = watches.expire_watches
    drop_watches = watches.drop_watches
