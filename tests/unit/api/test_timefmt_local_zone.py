"""``api.timefmt`` does not depend on the machine's local time zone (its invariant: naive means UTC).

Found by mutation testing (docs/design/mutation-testing.md): on a machine whose zone is UTC, converting through
the local zone gives the same text, so these tests set another zone for their duration.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator

import pytest

from api.timefmt import format_micro_time, format_time

PLUS_TWO = dt.timezone(dt.timedelta(hours=2))


@pytest.fixture
def local_zone_far_from_utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("TZ", "XYZ-5:30")  # a POSIX zone string: UTC+5:30, no tz database needed
    time.tzset()
    assert time.timezone == -(5 * 3600 + 1800)
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.mark.usefixtures("local_zone_far_from_utc")
def test_naive_and_aware_times_ignore_the_local_zone() -> None:
    naive = dt.datetime(2026, 1, 2, 3, 4, 5, 6)  # noqa: DTZ001 - the naive case is what is tested
    assert format_time(naive) == "2026-01-02T03:04:05Z"
    assert format_micro_time(naive) == "2026-01-02T03:04:05.000006Z"
    aware = dt.datetime(2026, 1, 2, 5, 4, 5, tzinfo=PLUS_TWO)
    assert format_time(aware) == "2026-01-02T03:04:05Z"
