"""Decoded JSON as every package handles it: the ``JSON`` object alias and the one deep-copy helper.

Role: the single spelling of "a decoded JSON object" for type hints, and the single way to copy decoded JSON
before changing it (builders copy templates out of shared records; the webhooks copy admission input before
defaulting or comparing it).

Invariants: pure, no I/O; ``json_copy`` never shares a ``dict`` or ``list`` with its input, keeps every other
value (scalars, tuples, other mappings) as the same object, works at any nesting depth, and never raises.
"""

from __future__ import annotations

from typing import Any, TypeVar

import msgspec

__all__ = ["JSON", "json_copy"]

JSON = dict[str, Any]
"""A decoded JSON object."""

_T = TypeVar("_T")

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder().decode


def json_copy(value: _T) -> _T:
    """A deep copy of decoded JSON: every ``dict`` and ``list`` is new, everything else is kept as it is.

    Plain JSON goes through a msgspec round trip (about four times faster than walking it in Python); the
    round trip is used only when it gives back a value equal to the input, so a value it would alter (a tuple,
    a non-string key, a non-finite float) or cannot handle (nesting deeper than the recursion limit) takes
    the iterative walk instead, which has no depth limit.
    """
    if not isinstance(value, dict | list):
        return value
    try:
        fast = _decode(_encode(value))
        if fast == value:
            return fast  # type: ignore[no-any-return]
    except (RecursionError, TypeError, ValueError, OverflowError, msgspec.MsgspecError):
        pass
    return _walk_copy(value)  # type: ignore[no-any-return]


def _walk_copy(value: dict[Any, Any] | list[Any]) -> Any:
    root: Any = {} if isinstance(value, dict) else []
    stack: list[tuple[Any, Any]] = [(value, root)]
    while stack:
        source, target = stack.pop()
        items = source.items() if isinstance(source, dict) else enumerate(source)
        for key, child in items:
            if isinstance(child, dict | list):
                copied: Any = {} if isinstance(child, dict) else []
                stack.append((child, copied))
            else:
                copied = child
            if isinstance(target, dict):
                target[key] = copied
            else:
                target.append(copied)
    return root
