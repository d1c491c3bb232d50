"""Bind-address parsing of the metrics and probe listeners (reference forms: ``:8443``, ``0`` = disabled)."""

from __future__ import annotations

import pytest

from metrics.server import parse_bind_address


@pytest.mark.parametrize(
    ("addr", "expected"),
    [
        (":8443", ("0.0.0.0", 8443)),
        ("127.0.0.1:0", ("127.0.0.1", 0)),
        ("[::1]:9090", ("::1", 9090)),
        ("0", None),
        ("", None),
    ],
)
def test_parse_bind_address(addr: str, expected: tuple[str, int] | None) -> None:
    assert parse_bind_address(addr) == expected


@pytest.mark.parametrize("bad", ["8443", "host:", "host:99999", ":http"])
def test_parse_bind_address_rejects_garbage(bad: str) -> None:
    with pytest.raises(ValueError, match="bind address"):
        parse_bind_address(bad)
