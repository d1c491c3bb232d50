"""``api.timefmt``: Kubernetes' ``metav1.Time`` and ``metav1.MicroTime`` wire forms, and reading them back."""

from __future__ import annotations

import datetime as dt

import pytest

from api.timefmt import format_micro_time, format_time, parse_time

PLUS_TWO = dt.timezone(dt.timedelta(hours=2))


def test_time_is_utc_whole_seconds_and_micro_time_keeps_microseconds() -> None:
    when = dt.datetime(2026, 1, 2, 5, 4, 5, 600007, tzinfo=PLUS_TWO)
    assert format_time(when) == "2026-01-02T03:04:05Z"
    assert format_micro_time(when) == "2026-01-02T03:04:05.600007Z"


def test_a_naive_datetime_is_taken_as_utc() -> None:
    naive = dt.datetime(2026, 1, 2, 3, 4, 5, 6)  # noqa: DTZ001 - the naive case is what is tested
    assert format_time(naive) == "2026-01-02T03:04:05Z"
    assert format_micro_time(naive) == "2026-01-02T03:04:05.000006Z"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-01-02T03:04:05Z", dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)),
        ("2026-01-02T03:04:05.000006Z", dt.datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=dt.UTC)),
        ("2026-01-02T05:04:05+02:00", dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)),
        ("2026-01-02T03:04:05", dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)),
    ],
)
def test_parse_reads_what_kubernetes_writes(text: str, expected: dt.datetime) -> None:
    parsed = parse_time(text)
    assert parsed == expected
    assert parsed is not None
    assert parsed.tzinfo is not None


@pytest.mark.parametrize("text", [None, "", "yesterday", "2026-13-01T00:00:00Z"])
def test_parse_answers_none_for_anything_unreadable(text: str | None) -> None:
    assert parse_time(text) is None


def test_format_and_parse_round_trip() -> None:
    when = dt.datetime(2026, 7, 8, 9, 10, 11, 123456, tzinfo=dt.UTC)
    assert parse_time(format_micro_time(when)) == when
    assert parse_time(format_time(when)) == when.replace(microsecond=0)
