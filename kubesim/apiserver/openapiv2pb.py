"""The OpenAPI v2 document in protobuf (gnostic ``openapi.v2.Document``), as kube-apiserver serves it.

Role: client-go's ``OpenAPISchema()`` asks ``/openapi/v2`` for
``application/com.github.proto-openapi.spec.v2@v1.0+protobuf`` and parses the answer as protobuf; kubectl uses
it when the v3 documents do not know a group-version (``kubectl create -f`` of a kind no API serves). JSON there
is a parse error, and a 406 a download error, where kube-apiserver's answer lets kubectl go on to say ``no
matches for kind``. This module encodes kubesim's JSON v2 document to that message.

Invariants: the encoding follows the gnostic ``OpenAPIv2.proto`` field numbers; what it encodes is the document
kubesim serves as JSON — swagger, info, every path with its operations (operation id, query and body
parameters, responses, ``x-`` extensions) and every definition's schema (type, format, description, ``$ref``,
properties, items, required, additionalProperties, ``x-`` extensions; other JSON Schema keywords are left out,
which only makes kubectl's client-side checks more lenient). Extensions carry their value as YAML (JSON is
YAML), as gnostic's ``Any.yaml`` does.
"""

from __future__ import annotations

from typing import Any

import orjson

JSON = dict[str, Any]
MEDIA_TYPE = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"
_ACCEPTED = {MEDIA_TYPE, "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"}


def negotiate(accept: str) -> str | None:
    """``"protobuf"`` or ``"json"`` for the first acceptable media type of ``accept`` (none given: JSON); ``None``
    when nothing acceptable is offered (the server's 406)."""
    if not accept.strip():
        return "json"
    for part in accept.split(","):
        media = part.split(";")[0].strip()
        if media in _ACCEPTED:
            return "protobuf"
        if media in ("application/json", "application/*", "*/*"):
            return "json"
    return None


def _varint(n: int) -> bytes:
    out = bytearray()
    n &= (1 << 64) - 1
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _msg(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _str(number: int, value: Any) -> bytes:
    return _msg(number, str(value).encode()) if value not in (None, "") else b""


def _bool(number: int, value: Any) -> bytes:
    return _varint(number << 3) + b"\x01" if value is True else b""


def _extensions(number: int, obj: JSON) -> bytes:
    """``x-`` keys as repeated ``NamedAny{name, Any{yaml}}``."""
    out = b""
    for key, value in obj.items():
        if key.startswith("x-"):
            out += _msg(number, _str(1, key) + _msg(2, _str(2, orjson.dumps(value).decode())))
    return out


def schema(s: JSON) -> bytes:
    """A JSON Schema object as ``Schema``."""
    out = _str(1, s.get("$ref")) + _str(2, s.get("format")) + _str(4, s.get("description"))
    for name in s.get("required") or []:
        out += _str(19, name)
    extra = s.get("additionalProperties")
    if isinstance(extra, dict):
        out += _msg(21, _msg(1, schema(extra)))
    elif isinstance(extra, bool):
        out += _msg(21, _varint(2 << 3) + (b"\x01" if extra else b"\x00"))
    kind = s.get("type")
    if kind:
        out += _msg(22, b"".join(_str(1, t) for t in (kind if isinstance(kind, list) else [kind])))
    items = s.get("items")
    if isinstance(items, dict):
        out += _msg(23, _msg(1, schema(items)))
    props = s.get("properties")
    if isinstance(props, dict):
        out += _msg(25, b"".join(_msg(1, _str(1, k) + _msg(2, schema(v))) for k, v in props.items()))
    return out + _extensions(31, s)


def _parameter(p: JSON) -> bytes:
    """One entry of ``parameters`` as ``ParametersItem{Parameter{...}}`` (body, or a query/path sub-schema)."""
    if p.get("in") == "body":
        body = _str(2, p.get("name")) + _str(3, "body") + _bool(4, p.get("required"))
        body += _msg(5, schema(p.get("schema") or {}))
        return _msg(1, _msg(1, body))
    # QueryParameterSubSchema and PathParameterSubSchema share required/in/description/name; type differs.
    sub, type_field, unique_field = (4, 5, 19) if p.get("in") == "path" else (3, 6, 20)
    fields = _bool(1, p.get("required")) + _str(2, p.get("in")) + _str(3, p.get("description"))
    fields += _str(4, p.get("name")) + _str(type_field, p.get("type")) + _bool(unique_field, p.get("uniqueItems"))
    return _msg(1, _msg(2, _msg(sub, fields)))


def _operation(op: JSON) -> bytes:
    out = b"".join(_str(1, t) for t in op.get("tags") or [])
    out += _str(3, op.get("description")) + _str(5, op.get("operationId"))
    out += b"".join(_msg(8, _parameter(p)) for p in op.get("parameters") or [])
    codes = b""
    for code, resp in (op.get("responses") or {}).items():
        codes += _msg(1, _str(1, code) + _msg(2, _msg(1, _str(1, (resp or {}).get("description")))))
    if codes:
        out += _msg(9, codes)
    return out + _extensions(13, op)


_VERBS = {"get": 2, "put": 3, "post": 4, "delete": 5, "options": 6, "head": 7, "patch": 8}


def encode_document(doc: JSON) -> bytes:
    """kubesim's v2 document (JSON form) as a serialized ``openapi.v2.Document``."""
    info = doc.get("info") or {}
    out = _str(1, doc.get("swagger", "2.0")) + _msg(2, _str(1, info.get("title")) + _str(2, info.get("version")))
    paths = b""
    for path, item in (doc.get("paths") or {}).items():
        body = b"".join(_msg(_VERBS[v], _operation(op)) for v, op in item.items() if v in _VERBS)
        paths += _msg(2, _str(1, path) + _msg(2, body))
    out += _msg(8, paths)
    defs = b"".join(_msg(1, _str(1, k) + _msg(2, schema(v))) for k, v in (doc.get("definitions") or {}).items())
    return out + _msg(9, defs)
