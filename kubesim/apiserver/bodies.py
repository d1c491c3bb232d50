"""Request bodies and the ``Accept`` header: what a client sent and which view of an object it wants back.

Role: :func:`read_body` decodes a request body the way kube-apiserver's serializers do (JSON, YAML with an alias
budget, the protobuf kubectl's generators send) and :func:`accepted_view` reads ``Accept`` for the Table and
PartialObjectMetadata views. Shared by the REST handlers (:mod:`kubesim.apiserver.server`), watches over HTTP
(:mod:`kubesim.apiserver.httpwatch`) and the fault-injection paths (:mod:`kubesim.apiserver.faults`).

Invariants: every malformed body is a 400 (413 when too large, 415 for an unknown protobuf kind) naming what
was wrong; nothing here touches the store.
"""

from __future__ import annotations

from typing import Any

import orjson
import yaml
from aiohttp import web

from kubesim.apiserver import protobuf
from kubesim.apiserver.httputil import JSON_CT, MAX_BODY, HttpRequest
from kubesim.util import errors


class _BoundedLoader(yaml.SafeLoader):
    """A safe YAML loader that refuses alias bombs ("billion laughs"), as the apiserver's YAML decoder does."""

    aliases = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            self.aliases += 1
            if self.aliases > 32:  # at most ~1e5 nodes however they nest
                raise yaml.YAMLError("yaml: document contains excessive aliasing")
        return super().compose_node(parent, index)


async def read_raw(request: HttpRequest) -> bytes:
    try:
        return await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise errors.too_large(f"Request entity too large: limit is {MAX_BODY}") from None


async def read_body(request: HttpRequest) -> Any:
    """The decoded body (any JSON value: callers check its shape)."""
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise errors.too_large(f"Request entity too large: limit is {MAX_BODY}")
    raw = await read_raw(request)
    ctype = (request.content_type or JSON_CT).lower()
    if "protobuf" in ctype:
        try:
            return protobuf.decode(raw)
        except KeyError:
            raise errors.unsupported_media_type(ctype) from None
        except (ValueError, UnicodeDecodeError) as exc:
            raise errors.bad_request(f"failed to decode protobuf body: {exc}") from None
    if not raw or raw.isspace():
        raise errors.bad_request("the body of the request was empty")
    if "yaml" in ctype:
        try:
            return yaml.load(raw, Loader=_BoundedLoader)  # noqa: S506 - a SafeLoader with an alias budget
        except yaml.YAMLError as exc:
            raise errors.bad_request(f"error converting YAML to JSON: {exc}".replace("\n", " ")) from None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise errors.bad_request(f"couldn't get version/kind; json parse error: {exc}") from None


def accepted_view(request: HttpRequest) -> str:
    """``Table``, ``PartialObjectMetadata``, ``PartialObjectMetadataList`` or ``""`` (plain JSON)."""
    accept = request.headers.get("Accept", "")
    for part in accept.split(","):
        params = dict(p.strip().split("=", 1) for p in part.split(";")[1:] if "=" in p)
        as_ = params.get("as")
        if as_ and params.get("g") == "meta.k8s.io" and params.get("v") in ("v1", "v1beta1"):
            return as_
        if as_ is None and part.split(";")[0].strip() in ("application/json", "*/*", ""):
            return ""
    return ""
