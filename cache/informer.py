"""Informers: LIST then WATCH one resource into a ``Store`` of slim records, and tell handlers what changed.

Role: keep the local model current with client-go's contract:
* LIST in pages, then WATCH from the list's resourceVersion with ``allowWatchBookmarks``;
* a 410 Gone (which arrives as an ``ERROR`` watch event, or as the status of the WATCH request) re-lists, and
  the re-list is diffed against the store so handlers see exactly the adds, updates and deletes they missed;
* disconnects reconnect with jittered exponential backoff (0.8 s → 30 s, reset after 2 minutes healthy);
* an update whose UID differs from the stored one is a delete followed by a re-create: handlers get both;
* an object that does not decode into the record (a field of the wrong type that the API server stored anyway)
  is skipped with a warning and counted in ``skipped``: one bad object never stalls the informer for the rest.

Invariants: raw bytes are decoded straight into the record type (never kubernetes_asyncio models); handlers
only map events to keys and enqueue (they must not block or await); ``synced`` is set once the first LIST is
in the store and never cleared.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Callable
from typing import Any, Generic, Protocol, TypeVar

import msgspec
import structlog

from cache.client import ApiClient
from cache.errors import ApiError, Gone
from cache.store import Store

log = structlog.get_logger("pyjobset.informer")


class _Meta(Protocol):
    @property
    def uid(self) -> str: ...

    @property
    def resource_version(self) -> str: ...


class HasMeta(Protocol):
    @property
    def metadata(self) -> _Meta: ...


R = TypeVar("R", bound=HasMeta)
Handler = Callable[[Any, Any], None]
"""``handler(old, new)``: add is (None, new), delete is (old, None), update is (old, new)."""


class _ListMeta(msgspec.Struct):
    resourceVersion: str = ""  # noqa: N815 - wire name
    continue_: str = msgspec.field(default="", name="continue")


class _List(msgspec.Struct, Generic[R]):
    metadata: _ListMeta = msgspec.field(default_factory=_ListMeta)
    items: list[R] = msgspec.field(default_factory=list)


class _RawList(msgspec.Struct):
    metadata: _ListMeta = msgspec.field(default_factory=_ListMeta)
    items: list[msgspec.Raw] = msgspec.field(default_factory=list)


class _Event(msgspec.Struct):
    type: str
    object: msgspec.Raw


class _TypedEvent(msgspec.Struct, Generic[R]):
    type: str
    object: R


class _StatusObj(msgspec.Struct):
    code: int = 0
    reason: str = ""
    message: str = ""


class _BookmarkMeta(msgspec.Struct):
    resourceVersion: str = ""  # noqa: N815 - wire name


class _Bookmark(msgspec.Struct):
    metadata: _BookmarkMeta = msgspec.field(default_factory=_BookmarkMeta)


class _NameMeta(msgspec.Struct):
    name: Any = ""
    namespace: Any = ""
    resourceVersion: Any = ""  # noqa: N815 - wire name


class _Named(msgspec.Struct):
    """Just enough of any object to name it in a log line and keep the watch position."""

    metadata: _NameMeta = msgspec.field(default_factory=_NameMeta)


def rv_newer(candidate: str, current: str) -> bool:
    """Whether resourceVersion ``candidate`` is newer than ``current`` (numeric when both are; else differ)."""
    if candidate.isdigit() and current.isdigit():
        return int(candidate) > int(current)
    return candidate != current


class Informer(Generic[R]):
    def __init__(
        self,
        client: ApiClient,
        path: str,
        record_type: type[R],
        store: Store[R],
        *,
        name: str = "",
        label_selector: str | None = None,
        page_size: int = 500,
        backoff_initial: float = 0.8,
        backoff_max: float = 30.0,
    ) -> None:
        self.client = client
        self.path = path
        self.store = store
        self.name = name or path
        self.label_selector = label_selector
        self.page_size = page_size
        self.handlers: list[Handler] = []
        self.synced = asyncio.Event()
        self.resource_version = ""
        self.watch_restarts = 0
        self.relists = 0
        self._list_decoder = msgspec.json.Decoder(_List[record_type])  # type: ignore[valid-type]
        self._item_decoder = msgspec.json.Decoder(record_type)
        self._event_decoder = msgspec.json.Decoder(_Event)
        self._typed_event_decoder = msgspec.json.Decoder(_TypedEvent[record_type])  # type: ignore[valid-type]
        self._status_decoder = msgspec.json.Decoder(_StatusObj)
        self._bookmark_decoder = msgspec.json.Decoder(_Bookmark)
        self._raw_list_decoder = msgspec.json.Decoder(_RawList)
        self._named_decoder = msgspec.json.Decoder(_Named)
        self.skipped = 0
        self._backoff_initial = backoff_initial
        self._backoff_max = backoff_max

    def add_handler(self, handler: Handler) -> None:
        self.handlers.append(handler)

    def has_synced(self) -> bool:
        return self.synced.is_set()

    def _emit(self, old: R | None, new: R | None) -> None:
        if old is not None and new is not None and old.metadata.uid != new.metadata.uid:
            self._emit(old, None)
            self._emit(None, new)
            return
        for handler in self.handlers:
            try:
                handler(old, new)
            except Exception:
                log.exception("informer_handler_failed", informer=self.name)

    # ------------------------------------------------------------------------------------ LIST

    async def list_once(self) -> None:
        """LIST every page, swap the result into the store and emit the differences."""
        items: list[R] = []
        cont = ""
        rv = ""
        while True:
            params = {"limit": str(self.page_size)}
            if cont:
                params["continue"] = cont
            if self.label_selector:
                params["labelSelector"] = self.label_selector
            raw = await self.client.request("GET", self.path, params=params)
            meta: _ListMeta
            try:
                page = self._list_decoder.decode(raw)
                items.extend(page.items)
                meta = page.metadata
            except msgspec.ValidationError:
                lenient = self._raw_list_decoder.decode(raw)  # one bad item: decode the others one by one
                items.extend(obj for item in lenient.items if (obj := self._decode_or_skip(item)) is not None)
                meta = lenient.metadata
            rv = meta.resourceVersion or rv
            cont = meta.continue_
            if not cont:
                break
        added, updated, deleted = self.store.replace(items)
        self.resource_version = rv
        self.relists += 1
        for obj in deleted:
            self._emit(obj, None)
        for obj in added:
            self._emit(None, obj)
        for old, new in updated:
            if old.metadata.resource_version != new.metadata.resource_version:
                self._emit(old, new)
        self.synced.set()

    # ------------------------------------------------------------------------------------ WATCH

    async def _watch_once(self) -> None:
        params = {
            "resourceVersion": self.resource_version,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(random.randint(300, 600)),  # noqa: S311 - spread reconnects
        }
        if self.label_selector:
            params["labelSelector"] = self.label_selector
        async for line in self.client.watch(self.path, params):
            self._handle_line(line)

    def _handle_line(self, line: bytes) -> None:
        # Fast path: ADDED/MODIFIED/DELETED decode in one pass straight into the record. A BOOKMARK's partial
        # object decodes too (every record field has a default); an ERROR's Status object does not fit the
        # record, so it (and anything unexpected) takes the two-step path below.
        typed: _TypedEvent[R] | None
        try:
            typed = self._typed_event_decoder.decode(line)
        except msgspec.ValidationError:
            typed = None
        if typed is not None:
            if typed.type in ("ADDED", "MODIFIED", "DELETED"):
                self._apply(typed.type, typed.object)
                return
            if typed.type == "BOOKMARK":
                self.resource_version = typed.object.metadata.resource_version or self.resource_version
                return
        event = self._event_decoder.decode(line)
        etype = event.type
        if etype == "BOOKMARK":
            self.resource_version = self._bookmark_decoder.decode(event.object).metadata.resourceVersion
            return
        if etype == "ERROR":
            status = self._status_decoder.decode(event.object)
            if status.code == 410:
                raise Gone(status.message or "resourceVersion too old", reason=status.reason)
            raise ApiError(status.message or "watch error", status=status.code, reason=status.reason)
        obj = self._decode_or_skip(event.object)
        if obj is None:
            with contextlib.suppress(msgspec.DecodeError):
                rv = self._named_decoder.decode(event.object).metadata.resourceVersion
                self.resource_version = rv if isinstance(rv, str) and rv else self.resource_version
            return
        self._apply(etype, obj)

    def _decode_or_skip(self, raw: bytes | msgspec.Raw) -> R | None:
        """The record, or None (logged and counted) for an object of a shape the record cannot hold."""
        try:
            return self._item_decoder.decode(raw)
        except msgspec.ValidationError as err:
            self.skipped += 1
            try:
                meta = self._named_decoder.decode(raw).metadata
                name, namespace = str(meta.name), str(meta.namespace)
            except msgspec.DecodeError:
                name = namespace = "?"
            log.warning("informer_skipped_object", informer=self.name, namespace=namespace, name=name, error=str(err))
            return None

    def _apply(self, etype: str, obj: R) -> None:
        self.resource_version = obj.metadata.resource_version or self.resource_version
        key = self.store.key_of(obj)
        if etype == "DELETED":
            old = self.store.delete(key)
            self._emit(old if old is not None else obj, None)
            return
        cur = self.store.get(key)
        if cur is not None and rv_newer(cur.metadata.resource_version, obj.metadata.resource_version):
            return  # our own write-through already holds a newer version of this object
        old = self.store.upsert(obj)
        self._emit(old, obj)

    async def run(self) -> None:
        """LIST + WATCH forever (until cancelled), re-listing on 410 and reconnecting with backoff."""
        loop = asyncio.get_running_loop()
        backoff = self._backoff_initial
        need_list = True
        while True:
            started = loop.time()
            try:
                if need_list:
                    await self.list_once()
                    need_list = False
                await self._watch_once()
                # The server closed the stream (timeoutSeconds): resume from the last resourceVersion.
                self.watch_restarts += 1
                continue
            except Gone:
                log.info("informer_relist", informer=self.name, reason="410 Gone")
                need_list = True
                self.watch_restarts += 1
                continue
            except asyncio.CancelledError:
                raise
            except (ApiError, msgspec.DecodeError) as err:
                self.watch_restarts += 1
                log.warning("informer_disconnected", informer=self.name, error=str(err))
            if loop.time() - started > 120:
                backoff = self._backoff_initial
            await asyncio.sleep(backoff * (0.5 + random.random()))  # noqa: S311 - jitter
            backoff = min(backoff * 2, self._backoff_max)

    def upsert_if_newer(self, obj: R) -> None:
        """Write-through for our own writes: store a server response unless the cache already has newer."""
        key = self.store.key_of(obj)
        cur = self.store.get(key)
        rv = obj.metadata.resource_version
        if cur is None:
            # Absent: either not seen yet (a create) or already deleted by a watch event we applied (a foreground
            # delete of a Job without pods finishes at once). Only an object newer than everything the watch
            # delivered can be the former; resurrecting the latter would hide a deleted Job forever.
            if not self.resource_version or rv_newer(rv, self.resource_version):
                self.store.upsert(obj)
        elif rv_newer(rv, cur.metadata.resource_version):
            self.store.upsert(obj)  # handlers hear of it from the watch event that follows

    def decode(self, raw: bytes) -> R:
        return self._item_decoder.decode(raw)


async def run_all(informers: list[Informer[Any]]) -> None:
    """Run several informers until cancelled; cancellation stops them all."""
    tasks = [asyncio.create_task(inf.run(), name=f"informer:{inf.name}") for inf in informers]
    try:
        await asyncio.gather(*tasks)
    finally:
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
