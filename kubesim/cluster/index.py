"""The shared in-process view of the simulated cluster the controllers work from, fed by ``Store.subscribe``.

Role: keep O(1) indexes (pods by controller-owner UID, pods by node, Job keys by UID) and fan every committed
change of pods, Jobs, nodes and namespaces out to the registered handlers. It keeps keys, not objects: handlers
get the event's shared decoded object (which they must never change) and controllers read current objects from
the store with ``get_nowait``, so memory stays O(objects) small at 100k pods.

Invariants: the subscribe callback runs synchronously inside the store's commit, so after any ``await
store.<write>`` returns, the indexes already reflect it (no expectations bookkeeping needed); handlers only
update indexes and enqueue work, never await.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import orjson

from kubesim.storage.store import Store

JSON = dict[str, Any]
log = logging.getLogger("kubesim.cluster")
Key = tuple[str, str]
Handler = Callable[[str, Key, JSON, bool], None]
"""(kind, key, object, deleted) -- the object is shared and read-only (its final state when deleted)."""

RESOURCE = {"pods": "pods", "jobs": "jobs.batch", "nodes": "nodes", "namespaces": "namespaces"}
# Replay order at start matters: nodes and namespaces before the pods that refer to them.
KINDS = {("", "nodes"): "nodes", ("", "namespaces"): "namespaces", ("batch", "jobs"): "jobs", ("", "pods"): "pods"}


def controller_uid(obj: JSON | None) -> str | None:
    if obj is None:
        return None
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("controller"):
            return str(ref.get("uid", ""))
    return None


class ClusterIndex:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.pods_by_owner: dict[str, set[Key]] = {}
        self.pods_by_node: dict[str, set[Key]] = {}
        self.pod_owner: dict[Key, str] = {}
        self.pod_node: dict[Key, str] = {}
        self.job_by_uid: dict[str, Key] = {}
        self.handlers: list[Handler] = []
        self.active = False
        self.hint: tuple[Key, JSON] | None = None

    def start(self) -> None:
        """Subscribe, then replay the current objects as additions (synchronously, so nothing is missed)."""
        self.active = True
        self.store.subscribe(self._on_commit)
        for kind in KINDS.values():
            info = self.store.info(RESOURCE[kind])
            for key, entry in list(self.store.bucket(info).objects.items()):
                self._apply(kind, key, entry.obj(), deleted=False)

    def stop(self) -> None:
        self.active = False
        self.handlers.clear()

    def _on_commit(self, info: Any, ev: Any) -> None:
        if not self.active:
            return
        kind = KINDS.get(info.storage)
        if kind is None or ev.type not in ("ADDED", "MODIFIED", "DELETED"):
            return
        # Decode privately instead of ``ev.shared_obj()``: that caches the dict on the event, and the store keeps
        # a window of recent events, which would pin ~10 KB per node/pod in memory.
        hint = self.hint
        if hint is not None and ev.type == "ADDED" and ev.key == hint[0]:
            obj = hint[1]  # the dict we just seeded: identical to what was committed, no decode needed
        else:
            cached = ev.cached_obj()
            obj = cached if cached is not None else orjson.loads(ev.raw)
        self._apply(kind, ev.key, obj, deleted=ev.type == "DELETED")

    def _apply(self, kind: str, key: Key, obj: JSON, *, deleted: bool) -> None:
        if kind == "pods":
            self._index_pod(key, None if deleted else obj)
        elif kind == "jobs":
            uid = (obj.get("metadata") or {}).get("uid", "")
            if deleted:
                if self.job_by_uid.get(uid) == key:
                    del self.job_by_uid[uid]
            else:
                self.job_by_uid[uid] = key
        for handler in list(self.handlers):
            try:
                handler(kind, key, obj, deleted)
            except Exception:  # we run inside the store's commit: never fail the writer
                log.exception("cluster event handler failed", extra={"kind": kind, "key": key})

    def _index_pod(self, key: Key, pod: JSON | None) -> None:
        owner = controller_uid(pod)
        node = ((pod or {}).get("spec") or {}).get("nodeName") if pod is not None else None
        prev_owner = self.pod_owner.get(key)
        if prev_owner != owner:
            if prev_owner is not None:
                self._discard(self.pods_by_owner, prev_owner, key)
                del self.pod_owner[key]
            if owner is not None:
                self.pods_by_owner.setdefault(owner, set()).add(key)
                self.pod_owner[key] = owner
        prev_node = self.pod_node.get(key)
        if prev_node != node:
            if prev_node is not None:
                self._discard(self.pods_by_node, prev_node, key)
                del self.pod_node[key]
            if node:
                self.pods_by_node.setdefault(node, set()).add(key)
                self.pod_node[key] = node

    @staticmethod
    def _discard(index: dict[str, set[Key]], k: str, key: Key) -> None:
        members = index.get(k)
        if members is not None:
            members.discard(key)
            if not members:
                del index[k]
