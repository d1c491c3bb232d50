"""Kubernetes timestamps on the wire: RFC 3339 in UTC, as ``metav1.Time`` and ``metav1.MicroTime`` write them.

Role: the one place that formats and parses the times the controller writes (condition transition times, pod
disruption conditions, event and Lease stamps) and reads (condition times for TTL, creation times for metrics).
``metav1.Time`` has second precision (Go layout ``2006-01-02T15:04:05Z07:00``, always written in UTC with ``Z``);
``metav1.MicroTime`` adds six fractional digits (``2006-01-02T15:04:05.000000Z07:00``).

Invariants: pure, standard library only; a naive datetime is taken as UTC, an aware one is converted to UTC;
``parse_time`` never raises and returns an aware datetime or ``None``.
"""

from __future__ import annotations

import datetime as dt
from typing import Final

__all__ = ["MICRO_TIME_FORMAT", "TIME_FORMAT", "format_micro_time", "format_time", "parse_time"]

TIME_FORMAT: Final = "%Y-%m-%dT%H:%M:%SZ"
"""``metav1.Time``: whole seconds, UTC."""
MICRO_TIME_FORMAT: Final = "%Y-%m-%dT%H:%M:%S.%fZ"
"""``metav1.MicroTime``: microseconds, UTC."""


def _utc(when: dt.datetime) -> dt.datetime:
    return when.replace(tzinfo=dt.UTC) if when.tzinfo is None else when.astimezone(dt.UTC)


def format_time(when: dt.datetime) -> str:
    """``when`` as a ``metav1.Time`` (``2026-01-02T03:04:05Z``); the fraction of a second is dropped."""
    return _utc(when).strftime(TIME_FORMAT)


def format_micro_time(when: dt.datetime) -> str:
    """``when`` as a ``metav1.MicroTime`` (``2026-01-02T03:04:05.000006Z``)."""
    return _utc(when).strftime(MICRO_TIME_FORMAT)


def parse_time(value: str | None) -> dt.datetime | None:
    """An RFC 3339 time (``Z`` or a numeric offset, any fraction) as an aware datetime; ``None`` when empty or
    unreadable. A value without an offset is taken as UTC."""
    if not value:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value)
    except (TypeError, ValueError):
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=dt.UTC)
