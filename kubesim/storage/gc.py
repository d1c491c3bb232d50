"""Garbage collection and namespace termination, as kube-controller-manager does them.

Role: an in-process controller fed by :meth:`Store.subscribe`:

- **Owner references**: when an owner is gone, dependents whose owners are all gone are deleted (with the
  propagation their own finalizers ask for, else Background); dependents that still have a live owner just lose
  the dangling reference. A dependent created with only absent owners is collected too.
- **Foreground**: an owner carrying the ``foregroundDeletion`` finalizer has its dependents deleted (a dependent
  that has dependents of its own is deleted in the foreground too); the finalizer is removed once no dependent
  with ``blockOwnerDeletion: true`` remains, which lets the owner go.
- **Orphan**: an owner carrying the ``orphan`` finalizer has its reference removed from every dependent, then
  the finalizer is removed.
- **Namespaces**: a terminating namespace has all its content deleted; when nothing is left in it, it goes.

Invariants: the subscriber callback only enqueues (it runs inside a store commit); all work happens in one
task, in order; an object vanishing or changing under the collector (404/409) is not an error -- the next event
about it brings the collector back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from kubesim.storage.buckets import ADDED, DELETED, MODIFIED, Key, WatchEvent
from kubesim.storage.resources import ResourceInfo
from kubesim.storage.store import Store
from kubesim.util.errors import ApiError

JSON = dict[str, Any]
log = logging.getLogger("kubesim.storage.gc")

FOREGROUND = "foregroundDeletion"
ORPHAN = "orphan"
CRD_CLEANUP = "customresourcecleanup.apiextensions.k8s.io"
ROOT_CA_DESCRIPTION = (
    "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as "
    "the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of "
    "Kubernetes clusters."
)
SIMULATED_CA = "-----BEGIN CERTIFICATE-----\nkubesim has no serving CA\n-----END CERTIFICATE-----\n"


class GarbageCollector:
    """Owner-reference GC, foreground/orphan finalizers and namespace termination."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._queue: asyncio.Queue[tuple[Any, ...]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._pending: set[tuple[Any, ...]] = set()
        self._terminating: set[str] = set()
        self._foreground: set[str] = set()  # UIDs of owners waiting for their dependents' deletion
        store.subscribe(self._on_event)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="kubesim-gc")
            for _, name in self.store.bucket(self.store.info("namespaces")).sorted_keys():
                self._put(("namespace_added", name))

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def idle(self) -> None:
        """Wait until every queued item has been processed (for tests and benchmarks)."""
        await self._queue.join()

    def _put(self, item: tuple[Any, ...]) -> None:
        if item not in self._pending:
            self._pending.add(item)
            self._queue.put_nowait(item)

    # ------------------------------------------------------------------------------------ events

    def _on_event(self, info: ResourceInfo, ev: WatchEvent) -> None:
        raw = ev.raw
        if ev.type == DELETED:
            obj = ev.shared_obj()
            meta = obj.get("metadata") or {}
            uid = meta.get("uid", "")
            self._foreground.discard(uid)
            if uid and self.store.dependents(uid):
                self._put(("owner_gone", uid))
            for ref in meta.get("ownerReferences") or []:
                owner = self.store.locate_uid(ref.get("uid", ""))
                if owner is not None:
                    self._put(("deleting", owner[0].storage, owner[1]))
            if ev.key[0] in self._terminating:
                self._put(("namespace", ev.key[0]))
            return
        if b'"deletionTimestamp"' in raw:
            obj = ev.shared_obj()
            meta = obj.get("metadata") or {}
            if info.storage == ("", "namespaces"):
                self._terminating.add(meta.get("name", ""))
                self._put(("namespace", meta.get("name", "")))
            fins = meta.get("finalizers") or []
            if FOREGROUND in fins or ORPHAN in fins or CRD_CLEANUP in fins:
                self._put(("deleting", info.storage, ev.key))
        if ev.type == ADDED and info.storage == ("", "namespaces"):
            self._put(("namespace_added", ev.key[1]))
        if ev.type == ADDED and ev.owners:
            # Only a dependent with an absent owner needs the collector (no decoding on the hot path).
            exists, foreground = self.store.owner_exists, self._foreground
            for uid in ev.owners:
                if uid in foreground or not exists(uid, ev.key[0]):
                    self._put(("check", info.storage, ev.key))
                    break
        elif ev.type == MODIFIED and ev.prev_owners and ev.prev_owners != ev.owners:
            # A dependent that dropped a reference may unblock a foreground owner.
            for uid in ev.prev_owners:
                owner = self.store.locate_uid(uid)
                if owner is not None:
                    self._put(("deleting", owner[0].storage, owner[1]))

    # ------------------------------------------------------------------------------------ worker

    async def _run(self) -> None:
        while True:
            item = await self._queue.get()
            self._pending.discard(item)
            try:
                await self._process(item)
            except ApiError as err:
                if err.code not in (404, 409):
                    log.warning("gc: %s failed: %s", item, err.message)
            except Exception:
                log.exception("gc: %s failed", item)
            finally:
                self._queue.task_done()

    async def _process(self, item: tuple[Any, ...]) -> None:
        kind = item[0]
        if kind == "owner_gone":
            for dinfo, dkey in self.store.dependents(item[1]):
                await self._attempt_delete(dinfo, dkey)
        elif kind in ("check", "deleting"):
            info = self._info(item[1])
            if info is not None and kind == "check":
                await self._attempt_delete(info, item[2])
            elif info is not None:
                await self._deleting(info, item[2])
        elif kind == "namespace":
            await self._namespace(item[1])
        elif kind == "namespace_added":
            await self._namespace_added(item[1])

    def _info(self, storage: tuple[str, str]) -> ResourceInfo | None:
        for info in self.store.registry.all():
            if info.storage == storage and (info.group, info.resource) == storage:
                return info
        return None

    def _obj(self, info: ResourceInfo, key: Key) -> JSON | None:
        entry = self.store.entry_at(info, key)
        return None if entry is None else entry.obj()

    def _owner_state(self, ref: JSON, namespace: str) -> str:
        """``solid``, ``waiting`` (being deleted in the foreground) or ``dangling``."""
        uid = ref.get("uid", "")
        if not self.store.owner_exists(uid, namespace):
            return "dangling"
        loc = self.store.locate_uid(uid)
        if loc is None:
            return "dangling"
        owner = self._obj(*loc)
        if owner is None:
            return "dangling"
        meta = owner.get("metadata") or {}
        if meta.get("deletionTimestamp") and FOREGROUND in (meta.get("finalizers") or []):
            return "waiting"
        return "solid"

    async def _attempt_delete(self, info: ResourceInfo, key: Key) -> None:
        obj = self._obj(info, key)
        if obj is None:
            return
        meta = obj.get("metadata") or {}
        refs = meta.get("ownerReferences") or []
        if not refs:
            return
        states = [(ref, self._owner_state(ref, key[0])) for ref in refs]
        solid = [r for r, s in states if s == "solid"]
        dangling = [r for r, s in states if s == "dangling"]
        waiting = [r for r, s in states if s == "waiting"]
        if solid:
            if not dangling:
                return
            drop = {r.get("uid") for r in dangling}

            def build(o: JSON) -> JSON:
                kept = [r for r in o["metadata"].get("ownerReferences") or [] if r.get("uid") not in drop]
                o["metadata"]["ownerReferences"] = kept
                if not kept:
                    del o["metadata"]["ownerReferences"]
                return o

            await self.store.update_fn(info, key[1], key[0] or None, build, field_manager="kubesim-gc")
            return
        if meta.get("deletionTimestamp"):
            return
        fins = meta.get("finalizers") or []
        if waiting and self.store.dependents(meta.get("uid", "")):
            policy = "Foreground"
        elif ORPHAN in fins:
            policy = "Orphan"
        elif FOREGROUND in fins:
            policy = "Foreground"
        else:
            policy = "Background"
        await self.store.delete(
            info, key[1], key[0] or None, propagation_policy=policy, preconditions={"uid": meta.get("uid")}
        )

    async def _deleting(self, info: ResourceInfo, key: Key) -> None:
        obj = self._obj(info, key)
        if obj is None:
            return
        meta = obj.get("metadata") or {}
        if not meta.get("deletionTimestamp"):
            return
        fins = meta.get("finalizers") or []
        uid = meta.get("uid", "")
        name, ns = key[1], key[0] or None
        if ORPHAN in fins:
            for dinfo, dkey in self.store.dependents(uid):

                def build(o: JSON) -> JSON:
                    kept = [r for r in o["metadata"].get("ownerReferences") or [] if r.get("uid") != uid]
                    o["metadata"]["ownerReferences"] = kept
                    if not kept:
                        del o["metadata"]["ownerReferences"]
                    return o

                with contextlib.suppress(ApiError):
                    await self.store.update_fn(dinfo, dkey[1], dkey[0] or None, build, field_manager="kubesim-gc")
            await self.store.remove_finalizer(info, name, ns, ORPHAN)
        elif FOREGROUND in fins:
            self._foreground.add(uid)
            blocking = 0
            for dinfo, dkey in self.store.dependents(uid):
                dobj = self._obj(dinfo, dkey)
                if dobj is None:
                    continue
                dmeta = dobj.get("metadata") or {}
                ref: JSON = next((r for r in dmeta.get("ownerReferences") or [] if r.get("uid") == uid), {})
                if ref.get("blockOwnerDeletion"):
                    blocking += 1
                if not dmeta.get("deletionTimestamp"):
                    await self._attempt_delete(dinfo, dkey)
            if blocking == 0:
                self._foreground.discard(uid)
                await self.store.remove_finalizer(info, name, ns, FOREGROUND)
        if CRD_CLEANUP in fins and info.storage == ("apiextensions.k8s.io", "customresourcedefinitions"):
            await self._crd_cleanup(obj, name)

    async def _crd_cleanup(self, crd: JSON, name: str) -> None:
        spec = crd.get("spec") or {}
        target = self.store.registry.get(spec.get("group", ""), (spec.get("names") or {}).get("plural", ""))
        if target is not None:
            bucket = self.store.bucket(target)
            for key in list(bucket.objects):
                with contextlib.suppress(ApiError):
                    await self.store.delete(target, key[1], key[0] or None, propagation_policy="Background")
            if bucket.objects:
                await asyncio.sleep(0.05)
                self._put(("deleting", ("apiextensions.k8s.io", "customresourcedefinitions"), ("", name)))
                return
            self.store.unregister(target.group, target.resource)
        await self.store.remove_finalizer("customresourcedefinitions.apiextensions.k8s.io", name, None, CRD_CLEANUP)

    async def _namespace_added(self, ns: str) -> None:
        """What the serviceaccount and root-CA publisher controllers put in every new namespace."""
        seeds: tuple[tuple[str, JSON], ...] = (
            ("serviceaccounts", {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default"}}),
            (
                "configmaps",
                {
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "metadata": {
                        "name": "kube-root-ca.crt",
                        "annotations": {"kubernetes.io/description": ROOT_CA_DESCRIPTION},
                    },
                    "data": {"ca.crt": SIMULATED_CA},
                },
            ),
        )
        for resource, obj in seeds:
            name = "default" if resource == "serviceaccounts" else "kube-root-ca.crt"
            if self.store.get_nowait(resource, name, ns) is None:
                with contextlib.suppress(ApiError):
                    await self.store.create(resource, obj, ns, field_manager="kube-controller-manager")

    async def _namespace(self, ns: str) -> None:
        ns_info = self.store.info("namespaces")
        obj = self._obj(ns_info, ("", ns))
        if obj is None or not (obj.get("metadata") or {}).get("deletionTimestamp"):
            self._terminating.discard(ns)
            return
        remaining = 0
        for info in self.store.registry.all():
            if not info.namespaced or info.storage != (info.group, info.resource):
                continue
            bucket = self.store.bucket(info)
            if not bucket.by_namespace.get(ns):
                continue
            for key in bucket.keys_from((ns, "")):
                if key[0] != ns:
                    break
                remaining += 1
                entry = bucket.objects.get(key)
                if entry is None or b'"deletionTimestamp"' in entry.raw:
                    continue
                with contextlib.suppress(ApiError):
                    await self.store.delete(info, key[1], ns, propagation_policy="Background")
        if remaining == 0:
            self._terminating.discard(ns)
            if (obj.get("metadata") or {}).get("finalizers"):
                return  # metadata finalizers held by someone else still keep it
            self.store.remove_now(ns_info, ("", ns))
