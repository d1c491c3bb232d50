"""Kubernetes resource quantities (``resource.Quantity``) as integers in milli-units.

``parse_milli("500m") == 500``, ``parse_milli("2") == 2000``, ``parse_milli("1Gi") == 1024**3 * 1000``.
Invariant: results are exact integers (rounded up, like the API's ``MilliValue``), so sums never drift.
Unparseable strings raise ``ValueError``.
"""

from __future__ import annotations

import functools
import math
from decimal import Decimal, InvalidOperation

_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "": Decimal(1),
    "k": Decimal("1e3"),
    "M": Decimal("1e6"),
    "G": Decimal("1e9"),
    "T": Decimal("1e12"),
    "P": Decimal("1e15"),
    "E": Decimal("1e18"),
}


def parse_milli(value: str | int | float) -> int:
    if isinstance(value, int | float):
        return math.ceil(Decimal(str(value)) * 1000)
    return _parse_text(value)


@functools.lru_cache(maxsize=4096)
def _parse_text(value: str) -> int:
    text = value.strip()
    if not text:
        raise ValueError("empty quantity")
    multiplier: Decimal
    number = text
    if text[-2:] in _BINARY:
        multiplier, number = Decimal(_BINARY[text[-2:]]), text[:-2]
    elif text[-1] in _DECIMAL and not text[-1].isdigit():
        multiplier, number = _DECIMAL[text[-1]], text[:-1]
    else:
        multiplier = Decimal(1)
    try:
        amount = Decimal(number) * multiplier * 1000
    except InvalidOperation as exc:
        raise ValueError(f"invalid quantity {value!r}") from exc
    if not amount.is_finite():
        raise ValueError(f"invalid quantity {value!r}")
    return math.ceil(amount)
