"""Shared pieces of the storage layer: per-request context, admission attributes, list pages, decoder checks.

Role: what the object store (:mod:`kubesim.storage.objectstore`) and the write paths (:mod:`kubesim.storage.writes`,
:mod:`kubesim.storage.deletion`) share: the per-request context (the ``fieldValidation`` directive and the
warnings an HTTP request sends back), the admission attributes, list pages and continue tokens, and the
decoder-style checks that turn malformed bodies into 400s.

Invariants: nothing here touches storage; the context variables are per task, so concurrent HTTP requests never
see each other's directive or warnings.
"""

from __future__ import annotations

import base64
import bisect
import secrets
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import orjson

from kubesim.storage.buckets import Key
from kubesim.storage.resources import ResourceInfo
from kubesim.util import errors

JSON = dict[str, Any]

_NAME_CHARS = "bcdfghjklmnpqrstvwxz2456789"
# Per-request context: the fieldValidation directive and the warnings to send back (HTTP sets both).
WARNINGS: ContextVar[list[str] | None] = ContextVar("kubesim_warnings", default=None)
FIELD_VALIDATION: ContextVar[str] = ContextVar("kubesim_field_validation", default="Warn")


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


@dataclass(slots=True)
class ListPage:
    """One page of a LIST: raw items, the list resourceVersion and the continue token."""

    items: list[bytes]
    resource_version: str
    continue_token: str
    remaining: int | None


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


def report_unknown_fields(info: ResourceInfo, unknown: list[str]) -> None:
    """Unknown fields under the request's directive: a 400 (``Strict``), warnings (``Warn``) or nothing."""
    if not unknown:
        return
    mode = FIELD_VALIDATION.get()
    if mode == "Strict":
        fields = ", ".join(f'unknown field "{u}"' for u in unknown)
        raise errors.bad_request(
            f'{info.kind} in version "{info.version}" cannot be handled as a {info.kind}: '
            f"strict decoding error: {fields}"
        )
    if mode == "Warn":
        for u in unknown:
            warn(f'unknown field "{u}"')


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
