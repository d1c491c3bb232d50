"""Informers: LIST then WATCH one resource into a ``Store`` of slim records, and tell handlers what changed.

Role: keep the local model current with client-go's contract:
* LIST in pages, then WATCH from the list's resourceVersion with ``allowWatchBookmarks``;
* a 410 Gone (which arrives as an ``ERROR`` watch event, or as the status of the WATCH request) re-lists, and
  the re-list is diffed against the store so handlers see exactly the adds, updates and deletes they missed;
* disconnects reconnect with jittered exponential backoff (0.8 s → 30 s, reset after 2 minutes healthy);
* an update whose UID differs from the stored one is a delete followed by a re-create: handlers get both;
* nothing the server sends can stop the stream (issue 13): an object that does not decode into the record is
  *quarantined* (below), and a stream silent for longer than ``watch_idle_timeout`` (no event, no bookmark) is
  torn down and re-opened.

Quarantine: a LIST item or watch event whose object fails to decode is skipped; the informer still moves past
its resourceVersion. The failure is counted in ``decode_errors[reason]``, logged once per object and
resourceVersion at warning (kind, namespace/name, and msgspec's message with the offending field's path), and
reported to the ``on_quarantine`` callbacks (the controller turns it into a Warning Event on the owning JobSet).
If an earlier version of the object is cached, that version *stays* (present but stale) until a decodable
version or its deletion arrives: dropping it would tell the reconciler a Job or pod vanished, and it would act
on that (create a replacement, count a failure). A ``DELETED`` event always deletes, decodable or not.

Progress and stalls: ``last_progress`` (monotonic clock) moves when a LIST completes, a watch line (event or bookmark)
is handled, or the server ends a watch in order (``timeoutSeconds``). With bookmarks every minute from the API
server (kubesim: every ``bookmark_interval``), a healthy informer makes progress at least that often;
``stalled()`` is true once none came for ``stall_after`` seconds (default 300 s: longer than the 180 s idle bound
plus the largest reconnect backoff, so a dead watch that is replaced in time never counts as a stall).

Invariants: raw bytes are decoded straight into the record type (never kubernetes_asyncio models); handlers
only map events to keys and enqueue (they must not block or await); ``synced`` is set once the first LIST is
in the store and never cleared; no single object can block the stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar, cast

import msgspec
import structlog

from api.constants import JOBSET_NAME_KEY
from api.records import compactor
from cache.client import ApiClient
from cache.errors import ApiError, Gone, WatchIdle
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
    """A LIST page whose items are decoded one by one (the slow path, after the whole page failed)."""

    metadata: _ListMeta = msgspec.field(default_factory=_ListMeta)
    items: list[msgspec.Raw] = msgspec.field(default_factory=list)


class _LooseMeta(msgspec.Struct):
    name: Any = ""
    namespace: Any = ""
    uid: Any = ""
    resourceVersion: Any = ""  # noqa: N815 - wire name
    labels: Any = None


class _Loose(msgspec.Struct):
    """Just enough of an undecodable object to name it: every field typed ``Any``, so this cannot fail on
    well-formed JSON."""

    kind: Any = ""
    metadata: _LooseMeta = msgspec.field(default_factory=_LooseMeta)


@dataclass(frozen=True, slots=True)
class Quarantined:
    """One object an informer could not decode and skipped (see the module docstring)."""

    resource: str
    """The informer's name (``pods``, ``nodes``, ...)."""
    kind: str
    namespace: str
    name: str
    uid: str
    resource_version: str
    reason: str
    """A small closed set, for the metric label: ``wrong_type``, ``invalid_value``, ``missing_field``,
    ``invalid``, ``malformed_json``."""
    detail: str
    """msgspec's message, with the path of the offending field (``... - at `$.spec.containers[0]...```)."""
    jobset: str | None
    """The ``jobset-name`` label, when the object is a JobSet's child."""
    stale_kept: bool
    """An earlier, decodable version of the object stays in the store."""

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}" if self.namespace else self.name


QuarantineHandler = Callable[[Quarantined], None]


DECODE_REASONS = ("wrong_type", "invalid_value", "missing_field", "invalid", "malformed_json")
"""Every value ``decode_reason`` answers (the metric exports each from 0, so the first error is an increase)."""


def decode_reason(err: msgspec.DecodeError) -> str:
    """Map a msgspec error to a bounded metric label."""
    if not isinstance(err, msgspec.ValidationError):
        return "malformed_json"
    msg = str(err)
    if msg.startswith("Expected "):
        return "wrong_type"
    if msg.startswith("Invalid enum value"):
        return "invalid_value"
    if msg.startswith("Object missing required field"):
        return "missing_field"
    return "invalid"


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


class _Event(msgspec.Struct):
    type: str
    object: msgspec.Raw


class _TypedEvent(msgspec.Struct, Generic[R], gc=False):
    """A watch event decoded in one pass (transient: untracked by the cyclic collector, one allocation less
    counted towards its next run per event)."""

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


def rv_newer(candidate: str, current: str) -> bool:
    """Whether resourceVersion ``candidate`` is newer than ``current`` (numeric when both are; else differ)."""
    if candidate.isdigit() and current.isdigit():
        if len(candidate) == len(current):
            return candidate > current  # digit strings of equal length order as their numbers do
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
        watch_idle_timeout: float | None = 180.0,
        stall_after: float = 300.0,
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
        self.watch_events = 0
        """Watch lines received (bookmarks and errors included); with ``watch_bytes``, what the server sent."""
        self.watch_bytes = 0
        self._list_decoder = msgspec.json.Decoder(_List[record_type])  # type: ignore[valid-type]
        self._item_decoder = msgspec.json.Decoder(record_type)
        self._event_decoder = msgspec.json.Decoder(_Event)
        self._typed_event_decoder = msgspec.json.Decoder(_TypedEvent[record_type])  # type: ignore[valid-type]
        self._status_decoder = msgspec.json.Decoder(_StatusObj)
        self._bookmark_decoder = msgspec.json.Decoder(_Bookmark)
        self._raw_list_decoder = msgspec.json.Decoder(_RawList)
        self._loose_decoder = msgspec.json.Decoder(_Loose)
        self._compact = compactor(record_type)
        """Shares a decoded record's repeated strings with its cached predecessor (``api.records.compactor``)."""
        self._backoff_initial = backoff_initial
        self._backoff_max = backoff_max
        self.watch_idle_timeout = watch_idle_timeout
        """Seconds a WATCH may deliver nothing (no event, no bookmark) before it is presumed dead and replaced.
        kube-apiserver 1.37 sends a bookmark about every 60 s (the first one after 60-120 s, measured), so 180 s
        means the stream missed two to three; a healthy quiet watch is not torn down. A frozen connection is
        thus replaced at most 180 s after its last byte (plus the reconnect backoff)."""
        self.stall_after = stall_after
        """Seconds without progress after which ``stalled()`` is true (readiness fails, the stall gauge is 1)."""
        self.decode_errors: dict[str, int] = {}
        """Objects skipped because they did not decode, by reason (cumulative)."""
        self.quarantined: dict[str, str] = {}
        """Key → resourceVersion of every object whose latest version did not decode."""
        self._reported: dict[str, str] = {}
        self.on_quarantine: list[QuarantineHandler] = []
        self.on_watch_open: list[Callable[[], None]] = []
        """Called each time the server accepts a WATCH (tests await reconnects with it)."""
        self.watch_opens = 0
        self.last_progress: float | None = None
        """``time.monotonic()`` of the last progress (see the module docstring); None until ``run`` starts."""

    def add_handler(self, handler: Handler) -> None:
        self.handlers.append(handler)

    def has_synced(self) -> bool:
        return self.synced.is_set()

    def _progress(self) -> None:
        self.last_progress = time.monotonic()

    def seconds_since_progress(self, now: float | None = None) -> float:
        """Seconds since the last progress (0 before ``run`` starts). Monotonic clock, so a metrics scrape in
        a worker thread may call it."""
        if self.last_progress is None:
            return 0.0
        return max(0.0, (time.monotonic() if now is None else now) - self.last_progress)

    def stalled(self, now: float | None = None) -> bool:
        """True when no progress was made for more than ``stall_after`` seconds."""
        return self.seconds_since_progress(now) > self.stall_after

    # ------------------------------------------------------------------------------------ quarantine

    def _quarantine(self, raw: bytes, err: msgspec.DecodeError) -> str | None:
        """Skip one undecodable object: count, log once, tell the callbacks. Returns its store key (None when
        even its name cannot be read)."""
        reason = decode_reason(err)
        try:
            loose = self._loose_decoder.decode(raw)
        except msgspec.DecodeError:
            loose = _Loose()
        meta = loose.metadata
        name, namespace, rv = _text(meta.name), _text(meta.namespace), _text(meta.resourceVersion)
        labels = meta.labels if isinstance(meta.labels, dict) else {}
        key = self._key_for(namespace, name) if name else None
        if key is None:
            self.decode_errors[reason] = self.decode_errors.get(reason, 0) + 1
            log.warning("informer_object_undecodable", informer=self.name, reason=reason, error=str(err), name=None)
            return None
        already = self.quarantined.get(key) == rv or self._reported.get(key) == rv
        self.quarantined[key] = rv
        if already:
            return key  # this very version was already counted, logged and reported
        self.decode_errors[reason] = self.decode_errors.get(reason, 0) + 1
        item = Quarantined(
            resource=self.name,
            kind=_text(loose.kind),
            namespace=namespace,
            name=name,
            uid=_text(meta.uid),
            resource_version=rv,
            reason=reason,
            detail=str(err),
            jobset=_text(labels.get(JOBSET_NAME_KEY)) or None,
            stale_kept=self.store.get(key) is not None,
        )
        log.warning(
            "informer_object_undecodable",
            informer=self.name,
            kind=item.kind,
            namespace=namespace or None,
            name=name,
            resource_version=rv,
            reason=reason,
            error=item.detail,
            stale_version_kept=item.stale_kept,
        )
        for handler in self.on_quarantine:
            try:
                handler(item)
            except Exception:
                log.exception("informer_quarantine_handler_failed", informer=self.name)
        return key

    def _key_for(self, namespace: str, name: str) -> str:
        """The store key of an object known only by namespace and name (the store's key function reads just
        ``metadata.name`` and ``metadata.namespace``)."""
        return self.store.key_of(cast("R", _Loose(metadata=_LooseMeta(name=name, namespace=namespace))))

    def _decoded(self, key: str) -> None:
        """A decodable version of ``key`` arrived (or it was deleted): it leaves quarantine."""
        if self.quarantined:
            self.quarantined.pop(key, None)

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
        # Quarantine is rebuilt from this LIST (objects deleted meanwhile leave it); versions already reported
        # are not reported again.
        self._reported, self.quarantined = self.quarantined, {}
        try:
            rv = await self._list_pages(items)
        except BaseException:
            self.quarantined = {**self._reported, **self.quarantined}
            raise
        finally:
            self._reported = {}
        compact = self._compact
        if compact is not None:
            store = self.store
            cached = len(store) > 0
            for item in items:
                compact(item, store.get(store.key_of(item)) if cached else None)
        added, updated, deleted = self.store.replace(items)
        self.resource_version = rv
        self.relists += 1
        self._progress()
        for obj in deleted:
            self._emit(obj, None)
        for obj in added:
            self._emit(None, obj)
        for old, new in updated:
            if old.metadata.resource_version != new.metadata.resource_version:
                self._emit(old, new)
        self.synced.set()

    async def _list_pages(self, items: list[R]) -> str:
        """Fetch every page into ``items``; returns the list's resourceVersion."""
        cont = ""
        rv = ""
        while True:
            params = {"limit": str(self.page_size)}
            if cont:
                params["continue"] = cont
            if self.label_selector:
                params["labelSelector"] = self.label_selector
            body = await self.client.request("GET", self.path, params=params)
            try:
                page = self._list_decoder.decode(body)
            except msgspec.ValidationError:
                page_meta = self._decode_page_slowly(body, items)
            else:
                items.extend(page.items)
                page_meta = page.metadata
            rv = page_meta.resourceVersion or rv
            cont = page_meta.continue_
            self._progress()  # a long paged LIST (100k pods) is progress page by page
            if not cont:
                return rv

    def _decode_page_slowly(self, body: bytes, items: list[R]) -> _ListMeta:
        """Decode a LIST page item by item: undecodable items are quarantined (their cached version, if any,
        is kept); the rest are appended to ``items``."""
        page = self._raw_list_decoder.decode(body)
        for raw in page.items:
            try:
                items.append(self._item_decoder.decode(raw))
            except msgspec.DecodeError as err:
                key = self._quarantine(raw, err)
                stale = self.store.get(key) if key is not None else None
                if stale is not None:
                    items.append(stale)
        return page.metadata

    # ------------------------------------------------------------------------------------ WATCH

    async def _watch_once(self) -> None:
        params = {
            "resourceVersion": self.resource_version,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(random.randint(300, 600)),  # noqa: S311 - spread reconnects (as client-go)
        }
        if self.label_selector:
            params["labelSelector"] = self.label_selector
        await self.client.watch_into(
            self.path, params, self._watch_line, idle_timeout=self.watch_idle_timeout, on_open=self._watch_opened
        )

    def _watch_line(self, line: bytes) -> None:
        """One watch line, called from the stream's transport as it arrives (``ApiClient.watch_into``)."""
        self.watch_events += 1
        self.watch_bytes += len(line)
        self._handle_line(line)
        self._progress()

    def _watch_opened(self) -> None:
        self.watch_opens += 1
        for callback in self.on_watch_open:
            try:
                callback()
            except Exception:
                log.exception("informer_watch_open_callback_failed", informer=self.name)

    def _handle_line(self, line: bytes) -> None:
        # Fast path: ADDED/MODIFIED/DELETED decode in one pass straight into the record. A BOOKMARK's partial
        # object decodes too (every record field has a default); an ERROR's Status object does not fit the
        # record, so it (and anything unexpected) takes the two-step path below.
        typed: _TypedEvent[R] | None
        try:
            typed = self._typed_event_decoder.decode(line)
        except msgspec.DecodeError:
            typed = None
        if typed is not None:
            if typed.type in ("ADDED", "MODIFIED", "DELETED"):
                self._apply(typed.type, typed.object)
                return
            if typed.type == "BOOKMARK":
                self.resource_version = typed.object.metadata.resource_version or self.resource_version
                return
        try:
            event = self._event_decoder.decode(line)
        except msgspec.DecodeError as err:
            # Not even an event envelope: nothing to name or to advance past. Skip the line, keep the stream.
            self._quarantine(line, err)
            return
        etype = event.type
        if etype == "BOOKMARK":
            with contextlib.suppress(msgspec.DecodeError):  # a bookmark we cannot read only costs its progress
                rv = self._bookmark_decoder.decode(event.object).metadata.resourceVersion
                self.resource_version = rv or self.resource_version
            return
        if etype == "ERROR":
            try:
                status = self._status_decoder.decode(event.object)
            except msgspec.DecodeError:
                status = _StatusObj(message="unreadable ERROR event")
            if status.code == 410:
                raise Gone(status.message or "resourceVersion too old", reason=status.reason)
            raise ApiError(status.message or "watch error", status=status.code, reason=status.reason)
        try:
            obj = self._item_decoder.decode(event.object)
        except msgspec.DecodeError as err:
            self._skip_undecodable(etype, event.object, err)
            return
        self._apply(etype, obj)

    def _skip_undecodable(self, etype: str, raw: bytes, err: msgspec.DecodeError) -> None:
        """A watch event whose object does not decode: move past its resourceVersion; a DELETED still deletes
        (and is not reported: the object is gone, nothing is left to fix)."""
        if etype == "DELETED":
            key, rv = self._loose_key(raw)
            if key is None:
                self._quarantine(raw, err)  # cannot even name it: count and log
                return
            self.resource_version = rv or self.resource_version
            self._decoded(key)
            old = self.store.delete(key)
            if old is not None:
                self._emit(old, None)
            return
        key = self._quarantine(raw, err)
        if key is not None:
            self.resource_version = self.quarantined.get(key) or self.resource_version

    def _loose_key(self, raw: bytes) -> tuple[str | None, str]:
        """Store key (None when the name cannot be read) and resourceVersion of an undecodable object."""
        try:
            meta = self._loose_decoder.decode(raw).metadata
        except msgspec.DecodeError:
            return None, ""
        name = _text(meta.name)
        return (self._key_for(_text(meta.namespace), name) if name else None), _text(meta.resourceVersion)

    def _apply(self, etype: str, obj: R) -> None:
        # The hot path of ingest (P6 of performance.md): one store lookup, no call that can be avoided.
        meta = obj.metadata
        rv = meta.resource_version
        if rv:
            self.resource_version = rv
        store = self.store
        key = store.key_of(obj)
        if self.quarantined:
            self.quarantined.pop(key, None)  # a decodable version arrived (or it was deleted)
        if etype == "DELETED":
            old = store.delete(key)
            self._emit(old if old is not None else obj, None)
            return
        cur = store.get(key)
        if cur is not None:
            cur_meta = cur.metadata
            if rv_newer(cur_meta.resource_version, rv):
                return  # our own write-through already holds a newer version of this object
            if cur_meta.uid != meta.uid:
                cur = None  # a re-created object: the store's replace is a delete and an add (below)
                old = store.delete(key)
                if old is not None:
                    self._emit(old, None)
        if self._compact is not None:
            self._compact(obj, cur)
        store.upsert(obj, key=key)
        for handler in self.handlers:
            try:
                handler(cur, obj)
            except Exception:
                log.exception("informer_handler_failed", informer=self.name)

    async def run(self) -> None:
        """LIST + WATCH forever (until cancelled), re-listing on 410 and reconnecting with backoff."""
        loop = asyncio.get_running_loop()
        backoff = self._backoff_initial
        need_list = True
        if self.last_progress is None:
            self._progress()  # the stall clock starts now
        while True:
            started = loop.time()
            try:
                if need_list:
                    await self.list_once()
                    need_list = False
                await self._watch_once()
                # The server closed the stream (timeoutSeconds): resume from the last resourceVersion.
                self.watch_restarts += 1
                self._progress()
                continue
            except Gone:
                log.info("informer_relist", informer=self.name, reason="410 Gone")
                need_list = True
                self.watch_restarts += 1
                continue
            except asyncio.CancelledError:
                raise
            except WatchIdle as err:
                self.watch_restarts += 1
                log.warning("informer_watch_idle", informer=self.name, error=str(err))
            except (ApiError, msgspec.DecodeError) as err:
                self.watch_restarts += 1
                log.warning("informer_disconnected", informer=self.name, error=str(err))
            except Exception:
                # A bug or an unforeseen answer must not end the informer for good: start over with a LIST.
                self.watch_restarts += 1
                need_list = True
                log.exception("informer_failed", informer=self.name)
            if loop.time() - started > 120:
                backoff = self._backoff_initial
            await asyncio.sleep(backoff * (0.5 + random.random()))  # noqa: S311 - jitter
            backoff = min(backoff * 2, self._backoff_max)

    def upsert_if_newer(self, obj: R) -> None:
        """Write-through for our own writes: store a server response unless the cache already has newer."""
        key = self.store.key_of(obj)
        cur = self.store.get(key)
        rv = obj.metadata.resource_version
        if self._compact is not None:
            self._compact(obj, cur)
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
