"""Small HTTP helpers of the simulated API server: parsed resource paths, JSON and Status responses, flags.

Role: shared by :mod:`kubesim.apiserver.server`, :mod:`kubesim.apiserver.httpwatch` and :mod:`kubesim.apiserver.faults`.

Invariants: every response built here is JSON (``application/json``); a Status response carries the error's
code as its HTTP status and the error's headers (``Retry-After``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import orjson
from aiohttp import web
from multidict import MultiMapping

from kubesim.storage.resources import ResourceInfo
from kubesim.util.errors import ApiError

JSON = dict[str, Any]
MAX_BODY = 3 * 1024 * 1024
JSON_CT = "application/json"


class HttpRequest(Protocol):
    """What the REST handlers read of a request: an ``aiohttp.web.Request`` or the fast path's
    :class:`~kubesim.apiserver.fastpath.FastRequest`."""

    @property
    def method(self) -> str: ...
    @property
    def path(self) -> str: ...
    @property
    def path_qs(self) -> str: ...
    @property
    def query(self) -> MultiMapping[str]: ...
    @property
    def headers(self) -> Mapping[str, str]: ...
    @property
    def content_type(self) -> str: ...
    @property
    def content_length(self) -> int | None: ...
    @property
    def can_read_body(self) -> bool: ...
    async def read(self) -> bytes: ...


@dataclass(slots=True)
class Target:
    """A parsed resource path."""

    info: ResourceInfo
    version: str
    namespace: str | None
    name: str | None
    subresource: str


def json_response(body: bytes, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=body, status=status, content_type=JSON_CT, headers=headers)


def error_response(err: ApiError) -> web.Response:
    return json_response(orjson.dumps(err.status), err.code, err.headers or None)


def aggregated_version(accept: str) -> str | None:
    """``v2``/``v2beta1`` when the client asks for aggregated discovery (first acceptable wins), else None."""
    for part in accept.split(","):
        params = dict(p.strip().split("=", 1) for p in part.split(";")[1:] if "=" in p)
        if params.get("g") == "apidiscovery.k8s.io" and params.get("as") == "APIGroupDiscoveryList":
            if params.get("v") in ("v2", "v2beta1"):
                return params["v"]
        elif part.split(";")[0].strip() in ("application/json", "*/*"):
            return None
    return None


def as_bool(v: str | None) -> bool:
    return v is not None and v.lower() in ("1", "true", "yes")
