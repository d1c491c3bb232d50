"""Decoding of Kubernetes protobuf request bodies for the few kinds kubectl's generators send that way.

Role: ``kubectl create namespace|configmap|secret|serviceaccount`` use client-go's typed clients, which send
``application/vnd.kubernetes.protobuf`` bodies. kube-apiserver decodes protobuf for every built-in kind; kubesim
decodes these four (the envelope ``k8s\\x00`` + ``runtime.Unknown``, then the object by field number, as
``k8s.io/api/core/v1/generated.proto`` numbers them) into the JSON form the rest of kubesim works with. Any other
kind in protobuf is a 415, so the client sees a clear error instead of a wrong object.

Invariants: empty strings and zero times (which Go always marshals) mean unset; decoding never trusts lengths
beyond the buffer (a truncated body is a ``ValueError``); unknown field numbers are skipped, as protobuf
requires; the result is plain JSON (bytes fields base64-encoded, as JSON carries them).
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from typing import Any

from kubesim.util.timefmt import rfc3339

JSON = dict[str, Any]
MAGIC = b"k8s\x00"
Field = tuple[int, int, Any]  # number, wire type, value (int for varints, bytes for length-delimited)


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    shift = result = 0
    while True:
        if pos >= len(buf) or shift > 63:
            raise ValueError("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7


def fields(buf: bytes) -> Iterator[Field]:
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
            yield number, wire, value
        elif wire == 2:
            length, pos = _varint(buf, pos)
            if pos + length > len(buf):
                raise ValueError("truncated length-delimited field")
            yield number, wire, buf[pos : pos + length]
            pos += length
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        else:
            raise ValueError(f"unsupported wire type {wire}")
        if pos > len(buf):
            raise ValueError("truncated fixed field")


def _str(v: Any) -> str:
    return bytes(v).decode("utf-8")


def _map_entry(v: bytes, value: Callable[[bytes], Any]) -> tuple[str, Any]:
    key, val = "", value(b"")
    for n, _, x in fields(v):
        if n == 1:
            key = _str(x)
        elif n == 2:
            val = value(x)
    return key, val


def _time(v: bytes) -> str | None:
    seconds = 0
    for n, _, x in fields(v):
        if n == 1:
            seconds = int(x)
    if not seconds:
        return None  # Go marshals the zero time: it means unset
    return rfc3339(seconds)


def _owner_ref(v: bytes) -> JSON:
    names = {5: "apiVersion", 1: "kind", 3: "name", 4: "uid"}
    out: JSON = {}
    for n, _, x in fields(v):
        if n in names:
            out[names[n]] = _str(x)
        elif n == 6:
            out["controller"] = bool(x)
        elif n == 7:
            out["blockOwnerDeletion"] = bool(x)
    return out


def object_meta(buf: bytes) -> JSON:
    strings = {1: "name", 2: "generateName", 3: "namespace", 5: "uid", 6: "resourceVersion"}
    out: JSON = {}
    for n, _, v in fields(buf):
        if n in strings:
            if v:  # Go marshals empty strings of non-pointer fields: empty means unset
                out[strings[n]] = _str(v)
        elif n == 7:
            if v:
                out["generation"] = int(v)
        elif n == 8:
            stamp = _time(v)
            if stamp:
                out["creationTimestamp"] = stamp
        elif n == 11:
            k, val = _map_entry(v, _str)
            out.setdefault("labels", {})[k] = val
        elif n == 12:
            k, val = _map_entry(v, _str)
            out.setdefault("annotations", {})[k] = val
        elif n == 13:
            out.setdefault("ownerReferences", []).append(_owner_ref(v))
        elif n == 14:
            out.setdefault("finalizers", []).append(_str(v))
    return out


def _b64(v: bytes) -> str:
    return base64.b64encode(bytes(v)).decode()


def _local_ref(v: bytes) -> JSON:
    return {"name": next((_str(x) for n, _, x in fields(v) if n == 1), "")}


def _configmap(buf: bytes) -> JSON:
    out: JSON = {}
    for n, _, v in fields(buf):
        if n == 2:
            k, val = _map_entry(v, _str)
            out.setdefault("data", {})[k] = val
        elif n == 3:
            k, val = _map_entry(v, _b64)
            out.setdefault("binaryData", {})[k] = val
        elif n == 4:
            out["immutable"] = bool(v)
    return out


def _secret(buf: bytes) -> JSON:
    out: JSON = {}
    for n, _, v in fields(buf):
        if n == 2:
            k, val = _map_entry(v, _b64)
            out.setdefault("data", {})[k] = val
        elif n == 3:
            if v:
                out["type"] = _str(v)
        elif n == 4:
            k, val = _map_entry(v, _str)
            out.setdefault("stringData", {})[k] = val
        elif n == 5:
            out["immutable"] = bool(v)
    return out


def _namespace(buf: bytes) -> JSON:
    out: JSON = {}
    for n, _, v in fields(buf):
        if n == 2:
            fins = [_str(x) for m, _, x in fields(v) if m == 1]
            out["spec"] = {"finalizers": fins} if fins else {}
    return out


def _service_account(buf: bytes) -> JSON:
    out: JSON = {}
    for n, _, v in fields(buf):
        if n == 2:  # ObjectReference: name is field 3
            out.setdefault("secrets", []).append({"name": next((_str(x) for m, _, x in fields(v) if m == 3), "")})
        elif n == 3:
            out.setdefault("imagePullSecrets", []).append(_local_ref(v))
        elif n == 4:
            out["automountServiceAccountToken"] = bool(v)
    return out


KINDS: dict[str, Callable[[bytes], JSON]] = {
    "ConfigMap": _configmap,
    "Secret": _secret,
    "Namespace": _namespace,
    "ServiceAccount": _service_account,
}


def decode(body: bytes) -> JSON:
    """A protobuf request body as JSON; ``ValueError`` for malformed input, ``KeyError`` for other kinds."""
    if not body.startswith(MAGIC):
        raise ValueError("protobuf body without the k8s envelope")
    api_version = kind = ""
    raw = b""
    for n, _, v in fields(body[len(MAGIC) :]):
        if n == 1:
            for m, _, x in fields(v):
                if m == 1:
                    api_version = _str(x)
                elif m == 2:
                    kind = _str(x)
        elif n == 2:
            raw = bytes(v)
    decoder = KINDS[kind]
    obj: JSON = {"apiVersion": api_version, "kind": kind, "metadata": {}}
    for n, _, v in fields(raw):
        if n == 1:
            obj["metadata"] = object_meta(v)
    obj.update(decoder(raw))
    return obj
