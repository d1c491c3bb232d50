"""Shared pieces of the simulated API server's write path: per-request context, JSON helpers, Status helpers.

Role: what :mod:`kubesim.storage.store` and its companions (:mod:`kubesim.storage.writes`, :mod:`kubesim.storage.deletion`,
:mod:`kubesim.storage.watches`) share: the per-request context (the ``fieldValidation`` directive and the warnings an
HTTP request sends back), timestamps, exact-size serialisation and deep copies, the admission attributes,
list pages and continue tokens, and the decoder-style checks that turn malformed bodies into 400s.

Invariants: nothing here touches storage; the context variables are per task, so concurrent HTTP requests never
see each other's directive or warnings; timestamps are RFC 3339 seconds in UTC.
"""

from __future__ import annotations

import base64
import bisect
import secrets
import time
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from kubesim.storage.buckets import Key, WatchEvent
from kubesim.storage.resources import ResourceInfo
from kubesim.util import errors
from kubesim.util.errors import ApiError

JSON = dict[str, Any]

_NAME_CHARS = "bcdfghjklmnpqrstvwxz2456789"
# Per-request context: the fieldValidation directive and the warnings to send back (HTTP sets both).
WARNINGS: ContextVar[list[str] | None] = ContextVar("kubesim_warnings", default=None)
FIELD_VALIDATION: ContextVar[str] = ContextVar("kubesim_field_validation", default="Warn")

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
# Aliases for code inside ``Store``, whose ``list`` method shadows the builtin in annotations.
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


def undecodable(info: ResourceInfo, exc: Exception) -> ApiError:
    """A body whose shape the strategies cannot process: the apiserver's decoder rejects such bodies (400)."""
    return errors.bad_request(
        f'{info.kind} in version "{info.version}" cannot be handled as a {info.kind}: {type(exc).__name__}: {exc}'
    )


def decode_error(info: ResourceInfo, what: str, field: str, want: str) -> ApiError:
    return errors.bad_request(
        f'{info.kind} in version "{info.version}" cannot be handled as a {info.kind}: json: cannot unmarshal '
        f"{what} into Go struct field ObjectMeta.metadata.{field} of type {want}"
    )


def json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "string"


def check_meta_types(info: ResourceInfo, meta: Any) -> None:
    """Reject metadata that would not decode into ObjectMeta (a 400, as the apiserver's decoder does)."""
    if not isinstance(meta, dict):
        raise decode_error(info, json_type(meta), "", "v1.ObjectMeta")
    for fld in ("name", "generateName", "namespace", "resourceVersion", "uid"):
        v = meta.get(fld)
        if v is not None and not isinstance(v, str):
            raise decode_error(info, json_type(v), fld, "string")
    for fld in ("labels", "annotations"):
        m = meta.get(fld)
        if m is None:
            continue
        if not isinstance(m, dict):
            raise decode_error(info, json_type(m), fld, "map[string]string")
        for v in m.values():
            if not isinstance(v, str):
                raise decode_error(info, json_type(v), fld, "string")
    fins = meta.get("finalizers")
    if fins is not None and (not isinstance(fins, list) or not all(isinstance(f, str) for f in fins)):
        raise decode_error(info, json_type(fins), "finalizers", "[]string")
    refs = meta.get("ownerReferences")
    if refs is not None and (not isinstance(refs, list) or not all(isinstance(r, dict) for r in refs)):
        raise decode_error(info, json_type(refs), "ownerReferences", "[]v1.OwnerReference")


def set_field_validation(value: str | None, options: str = "CreateOptions") -> None:
    """Set the request's directive; an unknown one is a 422 on the ``options`` kind (as kube-apiserver)."""
    if value not in (None, "", "Strict", "Warn", "Ignore"):
        cause = errors.field_cause(
            "FieldValueNotSupported",
            "fieldValidation",
            f'Unsupported value: "{value}": supported values: "", "Ignore", "Strict", "Warn"',
        )
        raise errors.invalid(options, "meta.k8s.io", "", [cause])
    FIELD_VALIDATION.set(value or "Warn")


def warn(message: str) -> None:
    """Attach a warning to the current request (sent as a ``Warning`` header over HTTP)."""
    sink = WARNINGS.get()
    if sink is not None:
        sink.append(message)


def same_object(a: JSON, b: JSON) -> bool:
    am, bm = a.get("metadata") or {}, b.get("metadata") or {}
    if {k: v for k, v in a.items() if k != "metadata"} != {k: v for k, v in b.items() if k != "metadata"}:
        return False
    strip = ("managedFields", "resourceVersion")
    return {k: v for k, v in am.items() if k not in strip} == {k: v for k, v in bm.items() if k not in strip}


def spec_changed(new: JSON, old: JSON) -> bool:
    skip = ("metadata", "status", "apiVersion", "kind")
    return {k: v for k, v in new.items() if k not in skip} != {k: v for k, v in old.items() if k not in skip}


def encode_continue(key: Key, rv: int) -> str:
    body = orjson.dumps({"v": "meta.k8s.io/v1", "rv": rv, "start": f"{key[0]}/{key[1]}\x00"})
    return base64.urlsafe_b64encode(body).decode().rstrip("=")


def decode_continue(token: str) -> tuple[Key, int]:
    try:
        body = orjson.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        ns, _, name = str(body["start"]).rstrip("\x00").partition("/")
        return (ns, name), int(body["rv"])
    except (ValueError, KeyError, TypeError):
        raise errors.bad_request("continue key is not valid: illegal base64 data") from None


def count_after(keys: list[Key], last: Key, namespace: str | None) -> int:
    i = bisect.bisect_right(keys, last)
    if namespace is None:
        return len(keys) - i
    j = bisect.bisect_left(keys, (namespace, "\U0010ffff"))
    return max(0, j - i)
