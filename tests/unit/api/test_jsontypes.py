"""``api.jsontypes.json_copy``: the one deep copy of decoded JSON, fast path and fallback alike."""

from __future__ import annotations

import math
from typing import Any

from api.jsontypes import json_copy


def _containers(value: Any) -> list[Any]:
    out: list[Any] = []
    stack = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            out.append(node)
            stack.extend(node.values())
        elif isinstance(node, list):
            out.append(node)
            stack.extend(node)
    return out


def test_plain_json_is_copied_without_sharing_a_container() -> None:
    value = {"a": [1, 2.5, {"b": None, "c": True}], "d": {"e": "x", "big": 2**70, "neg": -0.0}}
    copied = json_copy(value)
    assert copied == value
    shared = {id(c) for c in _containers(value)} & {id(c) for c in _containers(copied)}
    assert not shared
    copied["a"][2]["b"] = 1
    assert value["a"][2]["b"] is None


def test_values_a_round_trip_would_alter_are_kept_exactly() -> None:
    inner = {"k": 1}
    value = {"t": (inner, 2), 3: "int key", "f": [math.inf]}
    copied = json_copy(value)
    assert list(copied) == ["t", 3, "f"]
    assert copied["t"] is value["t"]  # tuples are kept as they are, not turned into lists
    assert copied["f"] == [math.inf]
    assert copied["f"] is not value["f"]
    nan_copy = json_copy([math.nan])
    assert len(nan_copy) == 1
    assert math.isnan(nan_copy[0])


def test_nesting_deeper_than_the_recursion_limit_is_copied() -> None:
    value: list[Any] = []
    node = value
    for _ in range(5000):
        child: list[Any] = []
        node.append({"n": child})
        node = child
    copied = json_copy(value)
    depth, mine, theirs = 0, copied, value
    while theirs:
        assert mine is not theirs
        assert mine[0] is not theirs[0]
        mine, theirs = mine[0]["n"], theirs[0]["n"]
        depth += 1
    assert depth == 5000
    assert mine == []


def test_scalars_come_back_unchanged() -> None:
    for scalar in (None, True, 0, "s", 1.5):
        assert json_copy(scalar) is scalar
