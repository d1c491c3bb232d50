"""Kubernetes timestamps (``metav1.Time``): RFC 3339 seconds in UTC, formatted and parsed in one place.

Role: the one home of the timestamp format for the store (creation and deletion timestamps), the request
decoders and the in-cluster controllers.

Invariants: formatting truncates to whole seconds and always ends in ``Z``; parsing never raises (garbage gives
None).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from datetime import UTC, datetime


def rfc3339(ts: float) -> str:
    """Kubernetes' second-precision timestamp format (``metav1.Time``)."""
    return _format_second(int(ts))


@functools.lru_cache(maxsize=256)
def _format_second(second: int) -> str:
    return datetime.fromtimestamp(second, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def now_rfc3339(clock: Callable[[], float] = time.time) -> str:
    """The current time of ``clock`` as a timestamp (formatting is cached: this runs on every write)."""
    return rfc3339(clock())


def parse_rfc3339(value: str | None) -> float | None:
    """Parse a ``metav1.Time`` string; ``None`` or garbage gives ``None``."""
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None
