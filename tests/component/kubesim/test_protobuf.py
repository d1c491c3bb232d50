"""kubesim's protobuf body decoding: envelope, ObjectMeta and the four kinds; malformed input is an error."""

from __future__ import annotations

import pytest

from kubesim.apiserver import protobuf


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _ld(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _envelope(api_version: str, kind: str, raw: bytes) -> bytes:
    type_meta = _ld(1, api_version.encode()) + _ld(2, kind.encode())
    return protobuf.MAGIC + _ld(1, type_meta) + _ld(2, raw)


def test_configmap_with_labels_and_data() -> None:
    meta = _ld(1, b"cm") + _ld(2, b"") + _ld(11, _ld(1, b"app") + _ld(2, b"x"))
    raw = _ld(1, meta) + _ld(2, _ld(1, b"k") + _ld(2, b"v"))
    obj = protobuf.decode(_envelope("v1", "ConfigMap", raw))
    assert obj == {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "cm", "labels": {"app": "x"}},
        "data": {"k": "v"},
    }


def test_namespace_and_unknown_fields_are_skipped() -> None:
    raw = _ld(1, _ld(1, b"ns1")) + _ld(2, _ld(1, b"kubernetes")) + _varint(99 << 3 | 0) + _varint(5)
    obj = protobuf.decode(_envelope("v1", "Namespace", raw))
    assert obj["metadata"] == {"name": "ns1"}
    assert obj["spec"] == {"finalizers": ["kubernetes"]}


def test_other_kinds_and_malformed_bodies_raise() -> None:
    with pytest.raises(KeyError):
        protobuf.decode(_envelope("v1", "Pod", b""))
    with pytest.raises(ValueError, match="truncated"):
        protobuf.decode(protobuf.MAGIC + _varint(1 << 3 | 2) + _varint(50) + b"short")
    with pytest.raises(ValueError, match="envelope"):
        protobuf.decode(b"{}")
