"""The simulated API server's storage and its in-process async API: one handle over four collaborators.

Role: every object of the simulated cluster lives here, and every write -- from the HTTP server or from
in-process controllers (Job controller, scheduler, kubelet, garbage collector) -- goes through the same
:class:`Store` verbs, which apply the apiserver's semantics: defaults, name generation, uid and timestamps,
optimistic concurrency, status subresources and generation, finalizers and graceful deletion, admission, CRD
schemas. There is no HTTP in this module.

Shape: :class:`Store` builds and wires its collaborators by constructor injection and exposes their verbs:
``store.objects`` (:class:`~kubesim.storage.objectstore.ObjectStore`: buckets, resourceVersions, indexes,
reads, commits), ``store.writes`` (:class:`~kubesim.storage.writes.WritePath`), ``store.deletion``
(:class:`~kubesim.storage.deletion.DeletionPath`), ``store.watches`` (:class:`~kubesim.storage.watches.WatchHub`)
and ``store.hooks`` (:class:`~kubesim.storage.hooks.WriteHooks`: CRD schema and admission, filled by
:func:`kubesim.storage.schema.install` and :func:`kubesim.storage.admission.install`).

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
from collections.abc import Callable

from kubesim.storage.deletion import DeletionPath
from kubesim.storage.hooks import WriteHooks
from kubesim.storage.objectstore import ObjectStore
from kubesim.storage.resources import builtin_resources
from kubesim.storage.watches import WatchHub, WatchStream
from kubesim.storage.writes import WritePath
from kubesim.util.jsonutil import clone

__all__ = ["Store", "WatchStream"]

DEFAULT_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
_KUBERNETES_SERVICE = {
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
}


class Store:
    """The object store with the apiserver's write semantics. See the module docstring for the API."""

    def __init__(self, *, watch_window: int = 50_000, clock: Callable[[], float] = time.time) -> None:
        self.hooks = WriteHooks()
        self.objects = ObjectStore(watch_window=watch_window, clock=clock)
        self.writes = WritePath(self.objects, self.hooks)
        self.deletion = DeletionPath(self.objects, self.writes, self.hooks)
        self.watches = WatchHub(self.objects)
        self.registry = self.objects.registry
        self.clock = clock
        # The in-process API: the collaborators' verbs under one handle.
        self.register = self.objects.register
        self.unregister = self.objects.unregister
        self.info = self.objects.info
        self.bucket = self.objects.bucket
        self.subscribe = self.objects.subscribe
        self.view = self.objects.view
        self.serve_raw = self.objects.serve_raw
        self.get_entry = self.objects.get_entry
        self.entry_at = self.objects.entry_at
        self.get = self.objects.get
        self.get_nowait = self.objects.get_nowait
        self.list_page = self.objects.list_page
        self.list = self.objects.list
        self.seed = self.objects.seed
        self.owner_exists = self.objects.owner_exists
        self.dependents = self.objects.dependents
        self.locate_uid = self.objects.locate_uid
        self.create = self.writes.create
        self.update = self.writes.update
        self.update_status = self.writes.update_status
        self.patch = self.writes.patch
        self.update_fn = self.writes.update_fn
        self.bind = self.writes.bind
        self.delete = self.deletion.delete
        self.delete_ex = self.deletion.delete_ex
        self.remove_finalizer = self.deletion.remove_finalizer
        self.remove_now = self.deletion.remove_now
        self.evict = self.deletion.evict
        self.open_watch = self.watches.open_watch
        self.watch = self.watches.watch
        self.bookmark = self.watches.bookmark
        self.expire_watches = self.watches.expire_watches
        self.drop_watches = self.watches.drop_watches
        for info in builtin_resources():
            self.objects.register(info)
        for ns in DEFAULT_NAMESPACES:
            self.objects.seed("namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
            self.objects.seed(
                "serviceaccounts",
                {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default", "namespace": ns}},
            )
        self.objects.seed("services", clone(_KUBERNETES_SERVICE))
        # Like a freshly started apiserver's watch cache: history before start-up is not replayable.
        self.objects.compact_all()

    @property
    def resource_version(self) -> str:
        return self.objects.resource_version
