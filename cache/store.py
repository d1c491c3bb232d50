"""An indexed in-memory store of immutable records (the informer's local model of one resource).

Role: key → record, plus secondary indexes (by controller-owner UID, by JobSet label, by node, ...), each a
function from a record to the index values it belongs under. Invariants: indexes always agree with the primary
map after every ``upsert``/``delete``/``replace``; records are shared, never copied or mutated; lookups are
O(1) plus the size of the answer. Listeners (aggregates such as ``cache.tally.ChildTallies``) hear of every
change in the order the store makes it: a replaced record is ``removed`` then ``added``, a re-list is ``cleared``
then every record ``added``, so a listener can always equal an aggregate computed from scratch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Generic, Protocol, TypeVar

R = TypeVar("R")
R_contra = TypeVar("R_contra", contravariant=True)

Indexer = Callable[[R], Iterable[str]]


class StoreListener(Protocol[R_contra]):
    """Told of every change of a store, after its indexes were updated."""

    def added(self, key: str, obj: R_contra) -> None: ...

    def removed(self, key: str, obj: R_contra) -> None: ...

    def cleared(self) -> None: ...


class Store(Generic[R]):
    def __init__(
        self,
        key: Callable[[R], str],
        indexers: dict[str, Indexer[R]] | None = None,
        listeners: Iterable[StoreListener[R]] = (),
    ) -> None:
        self._key = key
        self._listeners: tuple[StoreListener[R], ...] = tuple(listeners)
        self._items: dict[str, R] = {}
        self._indexers: dict[str, Indexer[R]] = dict(indexers or {})
        self._indexes: dict[str, dict[str, dict[str, R]]] = {name: {} for name in self._indexers}
        self._frozen: dict[str, dict[str, tuple[R, ...]]] = {name: {} for name in self._indexers}
        """index → value → the bucket as a tuple, until the bucket next changes (``index_tuple``)."""

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[R]:
        return iter(list(self._items.values()))

    def key_of(self, obj: R) -> str:
        return self._key(obj)

    def get(self, key: str) -> R | None:
        return self._items.get(key)

    def keys(self) -> list[str]:
        return list(self._items)

    def by_index(self, index: str, value: str) -> list[R]:
        bucket = self._indexes[index].get(value)
        return list(bucket.values()) if bucket else []

    def index_tuple(self, index: str, value: str) -> tuple[R, ...]:
        """``by_index`` as a tuple, shared until that bucket changes: a reconcile that follows no change of the
        JobSet's children (the echo of its own status write) copies nothing."""
        frozen = self._frozen[index]
        out = frozen.get(value)
        if out is None:
            bucket = self._indexes[index].get(value)
            if not bucket:
                return ()  # not kept: an absent value is never invalidated
            out = frozen[value] = tuple(bucket.values())
        return out

    def index_count(self, index: str, value: str) -> int:
        bucket = self._indexes[index].get(value)
        return len(bucket) if bucket else 0

    def upsert(self, obj: R, *, key: str | None = None) -> R | None:
        """Insert or replace; returns the previous record under the same key. ``key``, when the caller has it
        already, must be ``key_of(obj)``."""
        if key is None:
            key = self._key(obj)
        items = self._items
        old = items.get(key)
        items[key] = obj
        if old is None:
            self._index(key, obj)
        elif self._indexers:
            self._reindex(key, old, obj)
        if self._listeners:
            for listener in self._listeners:
                if old is not None:
                    listener.removed(key, old)
                listener.added(key, obj)
        return old

    def delete(self, key: str) -> R | None:
        old = self._items.pop(key, None)
        if old is not None:
            self._unindex(key, old)
            for listener in self._listeners:
                listener.removed(key, old)
        return old

    def replace(self, objs: Iterable[R]) -> tuple[list[R], list[tuple[R, R]], list[R]]:
        """Swap in a full LIST result; returns (added, updated as (old, new), deleted)."""
        fresh = {self._key(o): o for o in objs}
        added: list[R] = []
        updated: list[tuple[R, R]] = []
        deleted = [old for key, old in self._items.items() if key not in fresh]
        for key, obj in fresh.items():
            old = self._items.get(key)
            if old is None:
                added.append(obj)
            elif old is not obj:
                updated.append((old, obj))
        self._items = fresh
        self._indexes = {name: {} for name in self._indexers}
        self._frozen = {name: {} for name in self._indexers}
        for key, obj in fresh.items():
            self._index(key, obj)
        for listener in self._listeners:
            listener.cleared()
            for key, obj in fresh.items():
                listener.added(key, obj)
        return added, updated, deleted

    def _index(self, key: str, obj: R) -> None:
        for name, fn in self._indexers.items():
            idx = self._indexes[name]
            frozen = self._frozen[name]
            for value in fn(obj):
                idx.setdefault(value, {})[key] = obj
                frozen.pop(value, None)

    def _reindex(self, key: str, old: R, obj: R) -> None:
        """``old`` is replaced by ``obj`` under ``key``. An update mostly leaves the index values alone (a pod's
        status changes, not its labels): then each bucket only moves the key to its end, pointing at ``obj``
        (the order a remove-then-add gives, which listeners such as ``cache.tally`` see too)."""
        indexes = self._indexes
        for name, fn in self._indexers.items():
            idx = indexes[name]
            frozen = self._frozen[name]
            before = fn(old)
            after = fn(obj)
            if before == after:
                for value in after:
                    same = idx[value]
                    same.pop(key, None)  # re-inserted last, as a remove-then-add would: bucket order = update order
                    same[key] = obj
                    frozen.pop(value, None)
                continue
            for value in before:
                frozen.pop(value, None)
                bucket = idx.get(value)
                if bucket is not None:
                    bucket.pop(key, None)
                    if not bucket:
                        del idx[value]
            for value in after:
                idx.setdefault(value, {})[key] = obj
                frozen.pop(value, None)

    def _unindex(self, key: str, obj: R) -> None:
        for name, fn in self._indexers.items():
            idx = self._indexes[name]
            frozen = self._frozen[name]
            for value in fn(obj):
                frozen.pop(value, None)
                bucket = idx.get(value)
                if bucket is not None:
                    bucket.pop(key, None)
                    if not bucket:
                        del idx[value]
