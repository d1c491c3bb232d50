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
  Raises :class:`~kubesim.errors.ApiError` 409 AlreadyExists, 404 (namespace missing), 422 Invalid, ...
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
  :class:`~kubesim.storage.WatchEvent` (``type``, ``rv``, ``key`` = (namespace, name), ``raw`` bytes,
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

import base64
import bisect
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from kubesim import builtins, errors, knownfields
from kubesim import patch as patching
from kubesim.errors import ApiError
from kubesim.resources import Registry, ResourceInfo, builtin_resources
from kubesim.selectors import label_matcher, match_fields, parse_field_selector, selector_object_matcher
from kubesim.storage import (
    ADDED,
    BOOKMARK,
    DELETED,
    ERROR,
    MODIFIED,
    Bucket,
    Entry,
    Key,
    Watcher,
    WatchEvent,
)

JSON = dict[str, Any]

_NAME_CHARS = "bcdfghjklmnpqrstvwxz2456789"
_PATCH_RETRIES = 8
# Per-request context: the fieldValidation directive and the warnings to send back (HTTP sets both).
WARNINGS: ContextVar[list[str] | None] = ContextVar("kubesim_warnings", default=None)
FIELD_VALIDATION: ContextVar[str] = ContextVar("kubesim_field_validation", default="Warn")
DEFAULT_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")


_STAMP: list[Any] = [-1, ""]


def now_rfc3339(clock: Callable[[], float] = time.time) -> str:
    """RFC 3339 seconds, as Kubernetes writes timestamps (cached per second: this is on every write)."""
    sec = int(clock())
    if _STAMP[0] != sec:
        _STAMP[0] = sec
        _STAMP[1] = datetime.fromtimestamp(sec, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return str(_STAMP[1])


def compact_dumps(obj: Any) -> bytes:
    """``orjson.dumps`` into an exactly sized ``bytes``: orjson's result keeps its growth buffer (4-8 KB for a
    typical pod), which would triple the memory of every stored object."""
    return memoryview(orjson.dumps(obj)).tobytes()


def clone(obj: Any) -> Any:
    """A deep copy of a JSON value (an orjson round trip is several times faster than ``copy.deepcopy``)."""
    return orjson.loads(orjson.dumps(obj))


def random_suffix(n: int = 5) -> str:
    return "".join(secrets.choice(_NAME_CHARS) for _ in range(n))


@dataclass(slots=True)
class AdmissionAttributes:
    """What admission plugins (webhooks) see about one write."""

    operation: str  # CREATE | UPDATE | DELETE
    info: ResourceInfo
    namespace: str
    name: str
    obj: JSON | None
    old: JSON | None
    subresource: str
    dry_run: bool
    options: JSON


AdmissionHook = Callable[[AdmissionAttributes], Awaitable[JSON | None]]
# Aliases used inside ``Store``, whose ``list`` method shadows the builtin in annotations.
Hooks = list[AdmissionHook]
Events = list[WatchEvent]
Located = list[tuple[ResourceInfo, Key]]


@dataclass(slots=True)
class ListPage:
    """One page of a LIST: raw items, the list resourceVersion and the continue token."""

    items: list[bytes]
    resource_version: str
    continue_token: str
    remaining: int | None


class WatchStream:
    """An in-process watch: ``async for type_, obj in stream``. Objects are fresh dicts."""

    def __init__(
        self,
        store: Store,
        info: ResourceInfo,
        watcher: Watcher | None,
        initial: list[WatchEvent],
        error: JSON | None = None,
        bookmarks: bool = False,
    ) -> None:
        self._store = store
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
            return ev.type, self._store.view(self._info, orjson.loads(ev.raw))

    def close(self) -> None:
        self._done = True
        if self.watcher is not None:
            self.watcher.close()

    async def __aenter__(self) -> WatchStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()


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
        self.schema: Any = None  # kubesim.schema.SchemaHooks once CRD support is wired in
        self.admission: Any = None  # kubesim.admission.Admission once webhooks are wired in
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
            field_selector, info.field_labels or ("metadata.name", "metadata.namespace"), info.kind
        )
        start: Key | None = None
        rv = self._rv
        if continue_token:
            start, rv = _decode_continue(continue_token)
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
            token = _encode_continue(last, rv)
            if labels is None and not fields:
                remaining = _count_after(bucket.sorted_keys(), last, namespace if info.namespaced else None)
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

    def open_watch(
        self,
        info: ResourceInfo,
        namespace: str | None = None,
        resource_version: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        send_initial_events: bool | None = None,
    ) -> tuple[Watcher | None, Events, JSON | None]:
        """Register a watcher; returns it, the events to send first, and a Status to send as ERROR instead."""
        bucket = self.bucket(info)
        labels = label_matcher(label_selector)
        fields = parse_field_selector(
            field_selector, info.field_labels or ("metadata.name", "metadata.namespace"), info.kind
        )
        ns = namespace if info.namespaced and namespace else None
        initial: Events = []
        if send_initial_events is None:
            send_initial_events = resource_version in (None, "", "0")
        if send_initial_events:
            for raw in self.list_page(info, ns, label_selector, field_selector).items:
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
        info = self.info(resource)
        w, initial, err = self.open_watch(info, namespace, resource_version, label_selector, field_selector)
        return WatchStream(self, info, w, initial, err, bookmarks)

    def bookmark(self) -> None:
        """Send a BOOKMARK at the current resourceVersion to every watcher of every resource."""
        rv = self._rv
        for bucket in self._buckets.values():
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
        infos = [self.info(resource)] if resource is not None else [b.info for b in self._buckets.values()]
        for info in infos:
            self.bucket(info).close_watchers(lambda w: errors.status(410, "Expired", "too old resource version: 1 (2)"))

    def drop_watches(self, resource: str | ResourceInfo | None = None) -> None:
        """Fault injection: end watch streams without an error, as a dropped connection does."""
        infos = [self.info(resource)] if resource is not None else [b.info for b in self._buckets.values()]
        for info in infos:
            self.bucket(info).close_watchers()

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
            result = obj
        else:
            assert deleted is not None
            assert old is not None
            deleted["metadata"]["resourceVersion"] = str(rv)
            raw = compact_dumps(deleted)
            bucket.pop(key)
            self._unindex(old, info.storage, key)
            ev = WatchEvent(DELETED, rv, key, raw, old.labels)
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

    def _check_kind(self, info: ResourceInfo, obj: Any) -> JSON:
        if not isinstance(obj, dict):
            raise errors.bad_request("the body of the request was not a JSON object")
        kind = obj.get("kind")
        api_version = obj.get("apiVersion")
        if not kind:
            obj["kind"] = info.kind
        elif kind != info.kind:
            raise errors.bad_request(
                f"the kind of the object ({kind}) does not match the kind of the resource ({info.kind})"
            )
        if not api_version:
            obj["apiVersion"] = info.api_version
        else:
            group, _, version = str(api_version).rpartition("/")
            if group != info.group or version not in info.versions:
                raise errors.bad_request(
                    f"the API version in the data ({api_version}) does not match the expected API version "
                    f"({info.api_version})"
                )
            obj["apiVersion"] = info.api_version
        meta = obj.get("metadata")
        if meta is None:
            obj["metadata"] = {}
        else:
            _check_meta_types(info, meta)
        return obj

    def _namespace_for(self, info: ResourceInfo, obj: JSON, namespace: str | None) -> str:
        meta = obj["metadata"]
        if not info.namespaced:
            meta.pop("namespace", None)
            return ""
        body_ns = meta.get("namespace")
        if namespace and body_ns and body_ns != namespace:
            raise errors.bad_request(
                "the namespace of the provided object does not match the namespace sent on the request"
            )
        ns = namespace or body_ns or "default"
        meta["namespace"] = ns
        return str(ns)

    def _validate(self, info: ResourceInfo, obj: JSON, old: JSON | None, subresource: str = "") -> None:
        causes = builtins.validate(info, obj, old, subresource)
        if info.crd is not None and self.schema is not None:
            causes += self.schema.validate(info, obj, old)
        if causes:
            meta = obj.get("metadata") or {}
            raise errors.invalid(info.kind, info.group, meta.get("name") or meta.get("generateName", ""), causes)

    def _apply_schema(self, info: ResourceInfo) -> JSON | None:
        """The structural schema server-side apply merges a custom resource with."""
        if info.crd is None:
            return None
        for ver in (info.crd.get("spec") or {}).get("versions") or []:
            if ver.get("name") == info.version:
                schema = (ver.get("schema") or {}).get("openAPIV3Schema")
                return schema if isinstance(schema, dict) else None
        return None

    def _check_unknown(self, info: ResourceInfo, obj: JSON) -> None:
        """Drop (``Warn``/``Ignore``) or reject (``Strict``) fields a built-in kind does not have."""
        if info.crd is not None:
            return  # the CRD's structural schema prunes (kubesim.schema)
        mode = FIELD_VALIDATION.get()
        if WARNINGS.get() is None and mode != "Strict":
            return  # in-process writers (the simulated controllers) send only known fields
        unknown = knownfields.unknown_fields(info, obj)
        if not unknown:
            return
        if mode == "Strict":
            fields = ", ".join(f'unknown field "{u}"' for u in unknown)
            raise errors.bad_request(
                f'{info.kind} in version "{info.version}" cannot be handled as a {info.kind}: '
                f"strict decoding error: {fields}"
            )
        if mode == "Warn":
            for u in unknown:
                warn(f'unknown field "{u}"')

    def _default(self, info: ResourceInfo, obj: JSON) -> None:
        if info.crd is not None:
            if self.schema is not None:
                self.schema.default(info, obj)
        else:
            builtins.default(info, obj)

    async def _admit(self, hooks: Hooks, attrs: AdmissionAttributes) -> JSON | None:
        """Run hooks in order; the changed object, or None when no hook changed it."""
        changed = None
        for hook in hooks:
            result = await hook(attrs)
            if result is not None:
                changed = attrs.obj = result
        return changed

    # ------------------------------------------------------------------------------------ create

    async def create(
        self,
        resource: str | ResourceInfo,
        obj: JSON,
        namespace: str | None = None,
        *,
        dry_run: bool = False,
        field_manager: str | None = None,
        subresource: str = "",
        field_validation: str | None = None,
        owned: bool = False,
    ) -> JSON:
        """POST. ``owned=True`` hands ``obj`` over (the HTTP layer's freshly decoded body): it is not copied."""
        info = self.info(resource)
        try:
            if not owned:
                obj = clone(obj)
            return await self._create(info, obj, namespace, dry_run, field_manager, subresource, field_validation)
        except (AttributeError, TypeError, KeyError, ValueError, IndexError) as exc:
            raise _undecodable(info, exc) from None

    async def _create(
        self,
        info: ResourceInfo,
        obj: JSON,
        namespace: str | None,
        dry_run: bool,
        field_manager: str | None,
        subresource: str,
        field_validation: str | None,
    ) -> JSON:
        _set_field_validation(field_validation)
        if info.to_storage is not None:
            obj = info.to_storage(self._check_kind(info, obj))
        else:
            self._check_kind(info, obj)
        info_store = self.bucket(info).info
        ns = self._namespace_for(info, obj, namespace)
        meta = obj["metadata"]
        for fld in ("resourceVersion", "uid", "deletionTimestamp", "deletionGracePeriodSeconds", "selfLink"):
            if fld == "resourceVersion" and meta.get(fld):
                raise errors.bad_request("resourceVersion should not be set on objects to be created")
            meta.pop(fld, None)
        self._check_unknown(info_store, obj)
        self._default(info_store, obj)
        if self.mutating:
            attrs = AdmissionAttributes(
                "CREATE",
                info,
                ns,
                meta.get("name", ""),
                obj,
                None,
                subresource,
                dry_run,
                {"kind": "CreateOptions", "apiVersion": "meta.k8s.io/v1"},
            )
            mutated = await self._admit(self.mutating, attrs)
            if mutated is not None:
                obj = mutated
                meta = obj.setdefault("metadata", {})
                self._default(info_store, obj)
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = str(meta["generateName"]) + random_suffix()
        name = meta.get("name", "")
        uid = str(uuid.uuid4())
        meta["uid"] = uid
        meta["creationTimestamp"] = now_rfc3339(self.clock)
        if builtins.has_generation(info_store):
            meta["generation"] = 1
        else:
            meta.pop("generation", None)
        builtins.prepare_create(info_store, obj, uid, self.ips)
        if info_store.crd is not None and self.schema is not None:
            self.schema.prepare_create(info_store, obj)
        if field_manager and field_manager != "unknown":
            patching.track_update(
                None,
                obj,
                field_manager,
                "",
                info_store.strategic,
                now_rfc3339(self.clock),
                info.api_version,
                self._apply_schema(info_store),
            )
        patching.record_manager(obj, field_manager or "unknown", "Update", now_rfc3339(self.clock), info.api_version)
        self._validate(info_store, obj, None)
        if self.validating:
            attrs = AdmissionAttributes(
                "CREATE",
                info,
                ns,
                name,
                obj,
                None,
                subresource,
                dry_run,
                {"kind": "CreateOptions", "apiVersion": "meta.k8s.io/v1"},
            )
            await self._admit(self.validating, attrs)
        key = self._key(info, name, ns)
        bucket = self.bucket(info)
        if key in bucket.objects:
            raise errors.already_exists(info.resource, info.group, name)
        if info.namespaced:
            self._check_namespace_open(info, ns, name)
        if dry_run:
            return self.view(info, obj)
        self._commit(info_store, key, obj, None)
        # ``obj`` was serialised into the store and is not referenced by it: the caller may keep it.
        return self.view(info, obj)

    def _check_namespace_open(self, info: ResourceInfo, ns: str, name: str) -> None:
        ns_entry = self._buckets[("", "namespaces")].objects.get(("", ns))
        if ns_entry is None:
            raise errors.not_found("namespaces", "", ns)
        ns_obj = ns_entry.obj()
        if (ns_obj.get("metadata") or {}).get("deletionTimestamp"):
            raise errors.forbidden(
                info.resource,
                info.group,
                name,
                f"unable to create new content in namespace {ns} because it is being terminated",
                {
                    "reason": "NamespaceTerminating",
                    "message": f"namespace {ns} is being terminated",
                    "field": "metadata.namespace",
                },
            )

    # ------------------------------------------------------------------------------------ update

    def _prepare_update(self, info: ResourceInfo, new: JSON, old: JSON, subresource: str) -> JSON:
        meta = new["metadata"]
        old_meta = old["metadata"]
        if subresource == "binding":
            bound: JSON = clone(old)
            bound["spec"] = new.get("spec", {})
            bound["status"] = new.get("status", {})
            return bound
        if subresource == "status":
            status = new.get("status")
            merged: JSON = clone(old)
            if status is None:
                merged.pop("status", None)
            else:
                merged["status"] = status
            if meta.get("managedFields") is not None:
                merged["metadata"]["managedFields"] = meta["managedFields"]
            return merged
        for fld in (
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "namespace",
            "generation",
        ):
            if fld in old_meta:
                meta[fld] = old_meta[fld]
            else:
                meta.pop(fld, None)
        if info.status:
            if "status" in old:
                new["status"] = old["status"]
            else:
                new.pop("status", None)
        if info.storage == ("", "namespaces"):
            new["status"] = old.get("status", {})
        if builtins.has_generation(info) and _spec_changed(new, old):
            meta["generation"] = int(old_meta.get("generation") or 0) + 1
        if old_meta.get("deletionTimestamp"):
            added = set(meta.get("finalizers") or []) - set(old_meta.get("finalizers") or [])
            if added:
                raise errors.invalid(
                    info.kind,
                    info.group,
                    meta.get("name", ""),
                    [
                        errors.field_cause(
                            "FieldValueForbidden",
                            "metadata.finalizers",
                            "Forbidden: no new finalizers can be added if the object is being deleted, found new "
                            f"finalizers []string{{{', '.join(f'{chr(34)}{a}{chr(34)}' for a in sorted(added))}}}",
                        )
                    ],
                )
        return new

    async def update(
        self,
        resource: str | ResourceInfo,
        obj: JSON,
        namespace: str | None = None,
        *,
        subresource: str = "",
        dry_run: bool = False,
        field_manager: str | None = None,
        name: str | None = None,
        field_validation: str | None = None,
        owned: bool = False,
    ) -> JSON:
        """PUT. ``owned=True`` hands ``obj`` over (it is not copied)."""
        info = self.info(resource)
        _set_field_validation(field_validation)
        if not owned:
            obj = clone(obj)
        if info.to_storage is not None:
            obj = info.to_storage(self._check_kind(info, obj))
        else:
            self._check_kind(info, obj)
        info_store = self.bucket(info).info
        ns = self._namespace_for(info, obj, namespace)
        meta = obj["metadata"]
        body_name = meta.get("name")
        if name is not None and body_name and body_name != name:
            raise errors.bad_request(
                f"the name of the object ({body_name}) does not match the name on the URL ({name})"
            )
        name = name or body_name
        if not name:
            raise errors.bad_request("name is required")
        meta["name"] = name
        want_rv = meta.get("resourceVersion")
        if not want_rv and info_store.crd is not None:
            raise errors.invalid(
                info.kind,
                info.group,
                name,
                [
                    errors.field_cause(
                        "FieldValueInvalid",
                        "metadata.resourceVersion",
                        "Invalid value: 0x0: must be specified for an update",
                    )
                ],
            )
        return await self._guaranteed_update(
            info, ns, name, lambda _old: obj, subresource, dry_run, field_manager, "Update", pinned=bool(want_rv)
        )

    async def update_status(
        self, resource: str | ResourceInfo, obj: JSON, namespace: str | None = None, **kw: Any
    ) -> JSON:
        return await self.update(resource, obj, namespace, subresource="status", **kw)

    async def _guaranteed_update(self, info: ResourceInfo, *args: Any, **kw: Any) -> JSON:
        try:
            return await self._guaranteed_update_impl(info, *args, **kw)
        except (AttributeError, TypeError, KeyError, ValueError, IndexError) as exc:
            raise _undecodable(info, exc) from None

    async def _guaranteed_update_impl(
        self,
        info: ResourceInfo,
        ns: str,
        name: str,
        build: Callable[[JSON], JSON],
        subresource: str,
        dry_run: bool,
        field_manager: str | None,
        operation: str,
        pinned: bool,
        create_if_missing: Callable[[], Awaitable[JSON]] | None = None,
    ) -> JSON:
        """Read, build the new object from the old one, admit, then commit if nobody wrote meanwhile."""
        info_store = self.bucket(info).info
        key = self._key(info, name, ns)
        for _attempt in range(_PATCH_RETRIES):
            entry = self.bucket(info).objects.get(key)
            if entry is None:
                if create_if_missing is not None:
                    return await create_if_missing()
                raise errors.not_found(info.resource, info.group, name)
            old = entry.obj()
            new = build(entry.obj())
            if info.to_storage is not None and new.get("apiVersion") != "v1":
                new = info.to_storage(new)
            new_meta = new.setdefault("metadata", {})
            want_rv = new_meta.get("resourceVersion")
            if want_rv and str(want_rv) != str(entry.rv):
                raise errors.conflict(info.resource, info.group, name, errors.STALE)
            uid = new_meta.get("uid")
            if uid and uid != old["metadata"].get("uid"):
                raise errors.conflict(
                    info.resource,
                    info.group,
                    name,
                    f"Precondition failed: UID in precondition: {uid}, UID in object meta: "
                    f"{old['metadata'].get('uid')}",
                )
            new_meta["name"] = name
            if not subresource:
                self._check_unknown(info_store, new)
            self._default(info_store, new)
            new = self._prepare_update(info_store, new, old, subresource)
            if self.mutating:
                attrs = AdmissionAttributes(
                    "UPDATE",
                    info,
                    ns,
                    name,
                    new,
                    old,
                    subresource,
                    dry_run,
                    {"kind": "UpdateOptions", "apiVersion": "meta.k8s.io/v1"},
                )
                mutated = await self._admit(self.mutating, attrs)
                if mutated is not None:
                    new = self._prepare_update(info_store, mutated, old, subresource)
            patching.record_manager(
                new, field_manager or "unknown", operation, now_rfc3339(self.clock), info.api_version, subresource
            )
            if operation == "Update" and field_manager and field_manager != "unknown":
                patching.track_update(
                    old,
                    new,
                    field_manager,
                    subresource,
                    info_store.strategic,
                    now_rfc3339(self.clock),
                    info.api_version,
                    self._apply_schema(info_store),
                )
            self._validate(info_store, new, old, subresource)
            if self.validating:
                attrs = AdmissionAttributes(
                    "UPDATE",
                    info,
                    ns,
                    name,
                    new,
                    old,
                    subresource,
                    dry_run,
                    {"kind": "UpdateOptions", "apiVersion": "meta.k8s.io/v1"},
                )
                await self._admit(self.validating, attrs)
            current = self.bucket(info).objects.get(key)
            if current is not entry:
                if pinned or current is None:
                    if current is None:
                        raise errors.not_found(info.resource, info.group, name)
                    raise errors.conflict(info.resource, info.group, name, errors.STALE)
                continue
            new["metadata"]["resourceVersion"] = old["metadata"].get("resourceVersion")
            if _same(new, old):
                return self.view(info, old)
            if dry_run:
                return self.view(info, new)
            nmeta = new["metadata"]
            if (
                nmeta.get("deletionTimestamp")
                and not nmeta.get("finalizers")
                and not nmeta.get("deletionGracePeriodSeconds")
            ):
                return self.view(info, self._commit(info_store, key, None, entry, deleted=new))
            return self.view(info, self._commit(info_store, key, new, entry))
        raise errors.conflict(info.resource, info.group, name, errors.STALE)

    # ------------------------------------------------------------------------------------ patch

    async def patch(
        self,
        resource: str | ResourceInfo,
        name: str,
        patch: Any,
        namespace: str | None = None,
        *,
        patch_type: str = "merge",
        subresource: str = "",
        dry_run: bool = False,
        field_manager: str | None = None,
        force: bool = False,
        field_validation: str | None = None,
    ) -> JSON:
        info = self.info(resource)
        _set_field_validation(field_validation)
        ns = (namespace or "default") if info.namespaced else ""
        info_store = self.bucket(info).info
        if patch_type == "strategic" and not info_store.strategic:
            raise ApiError(
                errors.status(
                    415,
                    "UnsupportedMediaType",
                    "strategic merge patch is not supported for custom resources; use merge or json patch",
                )
            )
        pinned = False
        if patch_type in ("merge", "strategic") and isinstance(patch, dict):
            meta = patch.get("metadata")
            pinned = isinstance(meta, dict) and bool(meta.get("resourceVersion"))
        manager = field_manager or ("unknown" if patch_type != "apply" else "")
        if patch_type == "apply" and not field_manager:
            raise errors.bad_request(
                'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is required for apply patch'
            )

        def build(old: JSON) -> JSON:
            view = self.view(info, old)
            if patch_type == "merge":
                out = patching.merge_patch(view, patch)
            elif patch_type == "json":
                out = patching.json_patch(view, patch)
            elif patch_type == "strategic":
                out = patching.strategic_merge(view, patch)
            elif patch_type == "apply":
                out = patching.apply(
                    view,
                    patch,
                    manager,
                    force,
                    info_store.strategic,
                    subresource,
                    schema=self._apply_schema(info_store),
                )
            else:
                raise ApiError(errors.status(415, "UnsupportedMediaType", f"unsupported patch type {patch_type}"))
            if not isinstance(out, dict):
                raise errors.bad_request("the patch did not produce an object")
            return out

        async def create_missing() -> JSON:
            obj = clone(patch)
            if not isinstance(obj, dict):
                raise errors.bad_request("apply patch must be an object")
            obj.setdefault("metadata", {})["name"] = name
            obj = patching.apply({}, obj, manager, force, info_store.strategic, "", creating=True)
            return await self.create(
                info, obj, ns or None, dry_run=dry_run, field_manager=manager, field_validation=FIELD_VALIDATION.get()
            )

        return await self._guaranteed_update(
            info,
            ns,
            name,
            build,
            subresource,
            dry_run,
            manager,
            "Apply" if patch_type == "apply" else "Update",
            pinned,
            create_missing if patch_type == "apply" and not subresource else None,
        )

    # ------------------------------------------------------------------------------------ delete

    async def delete(
        self,
        resource: str | ResourceInfo,
        name: str,
        namespace: str | None = None,
        *,
        propagation_policy: str | None = None,
        grace_period_seconds: int | None = None,
        preconditions: JSON | None = None,
        dry_run: bool = False,
        orphan_dependents: bool | None = None,
        api_group_version: str | None = None,
    ) -> JSON:
        obj, _ = await self.delete_ex(
            resource,
            name,
            namespace,
            propagation_policy=propagation_policy,
            grace_period_seconds=grace_period_seconds,
            preconditions=preconditions,
            dry_run=dry_run,
            orphan_dependents=orphan_dependents,
            api_group_version=api_group_version,
        )
        return obj

    async def delete_ex(
        self,
        resource: str | ResourceInfo,
        name: str,
        namespace: str | None = None,
        *,
        propagation_policy: str | None = None,
        grace_period_seconds: int | None = None,
        preconditions: JSON | None = None,
        dry_run: bool = False,
        orphan_dependents: bool | None = None,
        api_group_version: str | None = None,
    ) -> tuple[JSON, bool]:
        """Delete; returns the object and whether it is gone (False: held by finalizers or grace)."""
        info = self.info(resource)
        if preconditions is not None and not isinstance(preconditions, dict):
            raise errors.bad_request("DeleteOptions.preconditions must be an object")
        if grace_period_seconds is not None and not isinstance(grace_period_seconds, int):
            raise errors.bad_request("DeleteOptions.gracePeriodSeconds must be an integer")
        if propagation_policy is not None and not isinstance(propagation_policy, str):
            raise errors.bad_request("DeleteOptions.propagationPolicy must be a string")
        info_store = self.bucket(info).info
        ns = (namespace or "default") if info.namespaced else ""
        key = self._key(info, name, ns)
        entry = self.bucket(info).objects.get(key)
        if entry is None:
            raise errors.not_found(info.resource, info.group, name)
        old = entry.obj()
        meta = old["metadata"]
        if preconditions:
            if preconditions.get("uid") and preconditions["uid"] != meta.get("uid"):
                raise errors.conflict(
                    info.resource,
                    info.group,
                    name,
                    f"Precondition failed: UID in precondition: {preconditions['uid']}, "
                    f"UID in object meta: {meta.get('uid')}",
                )
            prv = preconditions.get("resourceVersion")
            if prv and str(prv) != meta.get("resourceVersion"):
                raise errors.conflict(
                    info.resource,
                    info.group,
                    name,
                    f"Precondition failed: ResourceVersion in precondition: {prv}, "
                    f"ResourceVersion in object meta: {meta.get('resourceVersion')}",
                )
        if propagation_policy not in (None, "Orphan", "Background", "Foreground"):
            raise errors.invalid(
                "DeleteOptions",
                "meta.k8s.io",
                "",
                [
                    errors.field_cause(
                        "FieldValueNotSupported",
                        "propagationPolicy",
                        f'Unsupported value: "{propagation_policy}": supported values: "Foreground", "Background", '
                        '"Orphan", "nil"',
                    )
                ],
            )
        if propagation_policy is None:
            if orphan_dependents is True:
                propagation_policy = "Orphan"
            elif orphan_dependents is False:
                propagation_policy = "Background"
            elif info_store.storage == ("batch", "jobs") and (api_group_version in (None, "batch/v1")):
                propagation_policy = "Orphan"
            else:
                propagation_policy = "Background"
        if self.validating:
            attrs = AdmissionAttributes(
                "DELETE",
                info,
                ns,
                name,
                None,
                self.view(info, clone(old)),
                "",
                dry_run,
                {"kind": "DeleteOptions", "apiVersion": "meta.k8s.io/v1", "propagationPolicy": propagation_policy},
            )
            await self._admit(self.validating, attrs)
        if dry_run:
            return self.view(info, old), False
        new = clone(old)
        nmeta = new["metadata"]
        finalizers = list(nmeta.get("finalizers") or [])
        if propagation_policy == "Orphan" and "orphan" not in finalizers:
            finalizers.append("orphan")
            finalizers = [f for f in finalizers if f != "foregroundDeletion"]
        elif propagation_policy == "Foreground" and "foregroundDeletion" not in finalizers:
            finalizers.append("foregroundDeletion")
            finalizers = [f for f in finalizers if f != "orphan"]
        elif propagation_policy == "Background":
            finalizers = [f for f in finalizers if f not in ("orphan", "foregroundDeletion")]
        if (
            propagation_policy == "Orphan"
            and not self._dependents.get(meta.get("uid", ""))
            and not meta.get("finalizers")
        ):
            finalizers = [f for f in finalizers if f != "orphan"]
        grace = self._grace_period(info_store, old, grace_period_seconds)
        if info_store.storage == ("", "namespaces") and name in ("default", "kube-system", "kube-public"):
            raise errors.forbidden("namespaces", "", name, "this namespace may not be deleted")
        if info_store.storage == ("", "namespaces"):
            if not meta.get("deletionTimestamp"):
                nmeta["deletionTimestamp"] = now_rfc3339(self.clock)
                nmeta["deletionGracePeriodSeconds"] = 0
                new.setdefault("status", {})["phase"] = "Terminating"
                if finalizers != (meta.get("finalizers") or []):
                    nmeta["finalizers"] = finalizers
                return self._commit(info_store, key, new, entry), False
            return old, False
        if meta.get("deletionTimestamp"):
            # Already being deleted: only a shorter grace period (a kubelet's final delete) changes anything.
            held = bool(meta.get("finalizers"))
            if grace == 0 and not held:
                return self.view(info, self._commit(info_store, key, None, entry, deleted=new)), True
            changed = False
            if grace < int(meta.get("deletionGracePeriodSeconds") or 0):
                nmeta["deletionGracePeriodSeconds"] = grace
                nmeta["deletionTimestamp"] = now_rfc3339(lambda: self.clock() + grace)
                changed = True
            if finalizers != list(meta.get("finalizers") or []) and finalizers:
                nmeta["finalizers"] = finalizers
                changed = True
            if changed:
                return self.view(info, self._commit(info_store, key, new, entry)), False
            return self.view(info, old), False
        if finalizers or grace > 0:
            nmeta["finalizers"] = finalizers
            if not finalizers:
                nmeta.pop("finalizers", None)
            nmeta["deletionTimestamp"] = now_rfc3339(lambda: self.clock() + grace)
            nmeta["deletionGracePeriodSeconds"] = grace
            if meta.get("generation"):
                nmeta["generation"] = int(meta["generation"]) + 1
            return self.view(info, self._commit(info_store, key, new, entry)), False
        return self.view(info, self._commit(info_store, key, None, entry, deleted=new)), True

    def _grace_period(self, info: ResourceInfo, obj: JSON, requested: int | None) -> int:
        if info.storage != ("", "pods"):
            return 0
        spec = obj.get("spec") or {}
        phase = (obj.get("status") or {}).get("phase")
        if not spec.get("nodeName") or phase in ("Succeeded", "Failed"):
            return 0
        if requested is not None:
            return max(0, int(requested))
        return int(spec.get("terminationGracePeriodSeconds", 30) or 0)

    async def update_fn(
        self,
        resource: str | ResourceInfo,
        name: str,
        namespace: str | None,
        build: Callable[[JSON], JSON],
        *,
        subresource: str = "",
        field_manager: str | None = None,
    ) -> JSON:
        """Read-modify-write with retries: ``build`` gets a fresh copy of the object and returns the new one."""
        info = self.info(resource)
        ns = (namespace or "default") if info.namespaced else ""
        return await self._guaranteed_update(info, ns, name, build, subresource, False, field_manager, "Update", False)

    async def remove_finalizer(
        self, resource: str | ResourceInfo, name: str, namespace: str | None, finalizer: str
    ) -> None:
        """Drop one finalizer (used by the garbage collector); the object goes when none remain."""
        info = self.info(resource)

        def build(old: JSON) -> JSON:
            fins = [f for f in old["metadata"].get("finalizers") or [] if f != finalizer]
            old["metadata"]["finalizers"] = fins
            if not fins:
                del old["metadata"]["finalizers"]
            return old

        try:
            await self._guaranteed_update(info, namespace or "", name, build, "", False, "kubesim-gc", "Update", False)
        except ApiError as err:
            if err.code != 404:
                raise

    def remove_now(self, info: ResourceInfo, key: Key) -> None:
        """Final removal bypassing finalizers (namespace controller after its content is gone)."""
        entry = self.bucket(info).objects.get(key)
        if entry is not None:
            self._commit(self.bucket(info).info, key, None, entry, deleted=entry.obj())

    async def evict(self, name: str, namespace: str, grace_period_seconds: int | None = None) -> JSON:
        """POST pods/<name>/eviction: honour PodDisruptionBudgets (429 when one allows no disruption), mark the
        pod ``DisruptionTarget`` (reason ``EvictionByEvictionAPI``) and delete it gracefully."""
        pod = self.get_entry(self.info("pods"), name, namespace).obj()
        labels = (pod.get("metadata") or {}).get("labels") or {}
        for pdb in await self.list("poddisruptionbudgets.policy", namespace):
            selector = (pdb.get("spec") or {}).get("selector")
            if selector is None or not selector_object_matcher(selector)(labels):
                continue
            if int((pdb.get("status") or {}).get("disruptionsAllowed") or 0) < 1:
                raise ApiError(
                    errors.status(
                        429,
                        "TooManyRequests",
                        "Cannot evict pod as it would violate the pod's disruption budget.",
                        {
                            "causes": [
                                {
                                    "reason": "DisruptionBudget",
                                    "message": f"The disruption budget "
                                    f"{pdb['metadata']['name']} needs 1 healthy pods and has 0 currently",
                                }
                            ]
                        },
                    ),
                    {"Retry-After": "10"},
                )
        phase = (pod.get("status") or {}).get("phase")
        if phase not in ("Succeeded", "Failed"):

            def mark(obj: JSON) -> JSON:
                conds = obj.setdefault("status", {}).setdefault("conditions", [])
                conds[:] = [c for c in conds if c.get("type") != "DisruptionTarget"]
                conds.append(
                    {
                        "type": "DisruptionTarget",
                        "status": "True",
                        "reason": "EvictionByEvictionAPI",
                        "message": "Eviction API: evicting",
                        "lastTransitionTime": now_rfc3339(self.clock),
                    }
                )
                return obj

            await self.update_fn("pods", name, namespace, mark, subresource="status", field_manager="kube-apiserver")
        return await self.delete("pods", name, namespace, grace_period_seconds=grace_period_seconds)

    async def bind(self, name: str, namespace: str, node: str) -> JSON:
        """POST pods/<name>/binding: set ``spec.nodeName`` once (409 when already bound)."""
        info = self.info("pods")

        def build(old: JSON) -> JSON:
            spec = old.setdefault("spec", {})
            if spec.get("nodeName"):
                raise errors.conflict("pods", "", name, f'pod {name} is already assigned to node "{spec["nodeName"]}"')
            if old["metadata"].get("deletionTimestamp"):
                raise errors.conflict("pods", "", name, "pod is being deleted, cannot be assigned to a host")
            spec["nodeName"] = node
            conds = old.setdefault("status", {}).setdefault("conditions", [])
            conds[:] = [c for c in conds if c.get("type") != "PodScheduled"]
            conds.append(
                {
                    "type": "PodScheduled",
                    "status": "True",
                    "lastProbeTime": None,
                    "lastTransitionTime": now_rfc3339(self.clock),
                }
            )
            return old

        return await self._guaranteed_update(
            info, namespace, name, build, "binding", False, "kube-scheduler", "Update", False
        )


def _undecodable(info: ResourceInfo, exc: Exception) -> ApiError:
    """A body whose shape the strategies cannot process: the apiserver's decoder rejects such bodies (400)."""
    return errors.bad_request(
        f'{info.kind} in version "{info.version}" cannot be handled as a {info.kind}: {type(exc).__name__}: {exc}'
    )


def _decode_error(info: ResourceInfo, what: str, field: str, want: str) -> ApiError:
    return errors.bad_request(
        f'{info.kind} in version "{info.version}" cannot be handled as a {info.kind}: json: cannot unmarshal '
        f"{what} into Go struct field ObjectMeta.metadata.{field} of type {want}"
    )


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "string"


def _check_meta_types(info: ResourceInfo, meta: Any) -> None:
    """Reject metadata that would not decode into ObjectMeta (a 400, as the apiserver's decoder does)."""
    if not isinstance(meta, dict):
        raise _decode_error(info, _json_type(meta), "", "v1.ObjectMeta")
    for fld in ("name", "generateName", "namespace", "resourceVersion", "uid"):
        v = meta.get(fld)
        if v is not None and not isinstance(v, str):
            raise _decode_error(info, _json_type(v), fld, "string")
    for fld in ("labels", "annotations"):
        m = meta.get(fld)
        if m is None:
            continue
        if not isinstance(m, dict):
            raise _decode_error(info, _json_type(m), fld, "map[string]string")
        for v in m.values():
            if not isinstance(v, str):
                raise _decode_error(info, _json_type(v), fld, "string")
    fins = meta.get("finalizers")
    if fins is not None and (not isinstance(fins, list) or not all(isinstance(f, str) for f in fins)):
        raise _decode_error(info, _json_type(fins), "finalizers", "[]string")
    refs = meta.get("ownerReferences")
    if refs is not None and (not isinstance(refs, list) or not all(isinstance(r, dict) for r in refs)):
        raise _decode_error(info, _json_type(refs), "ownerReferences", "[]v1.OwnerReference")


def _set_field_validation(value: str | None) -> None:
    value = value or "Warn"
    if value not in ("Strict", "Warn", "Ignore"):
        raise errors.bad_request(f'fieldValidation must be one of "Ignore", "Warn" or "Strict", got "{value}"')
    FIELD_VALIDATION.set(value)


def warn(message: str) -> None:
    """Attach a warning to the current request (sent as a ``Warning`` header over HTTP)."""
    sink = WARNINGS.get()
    if sink is not None:
        sink.append(message)


def _same(a: JSON, b: JSON) -> bool:
    am, bm = a.get("metadata") or {}, b.get("metadata") or {}
    if {k: v for k, v in a.items() if k != "metadata"} != {k: v for k, v in b.items() if k != "metadata"}:
        return False
    strip = ("managedFields", "resourceVersion")
    return {k: v for k, v in am.items() if k not in strip} == {k: v for k, v in bm.items() if k not in strip}


def _spec_changed(new: JSON, old: JSON) -> bool:
    skip = ("metadata", "status", "apiVersion", "kind")
    return {k: v for k, v in new.items() if k not in skip} != {k: v for k, v in old.items() if k not in skip}


def _encode_continue(key: Key, rv: int) -> str:
    body = orjson.dumps({"v": "meta.k8s.io/v1", "rv": rv, "start": f"{key[0]}/{key[1]}\x00"})
    return base64.urlsafe_b64encode(body).decode().rstrip("=")


def _decode_continue(token: str) -> tuple[Key, int]:
    try:
        body = orjson.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        ns, _, name = str(body["start"]).rstrip("\x00").partition("/")
        return (ns, name), int(body["rv"])
    except (ValueError, KeyError, TypeError):
        raise errors.bad_request("continue key is not valid: illegal base64 data") from None


def _count_after(keys: list[Key], last: Key, namespace: str | None) -> int:
    i = bisect.bisect_right(keys, last)
    if namespace is None:
        return len(keys) - i
    j = bisect.bisect_left(keys, (namespace, "\U0010ffff"))
    return max(0, j - i)
