"""The value forms of the extension annotations (docs/design/extensions.md): edges of counts and durations."""

from __future__ import annotations

from api import extensions as x


def test_a_budget_of_one_restart_is_a_budget() -> None:
    assert x.parse_budget("1/1h") == x.Budget(count=1, window=3600.0)
    assert x.parse_budget("0/1h") is None  # a count must be positive


def test_durations_must_be_positive() -> None:
    assert x.parse_duration("0s") is None
    assert x.parse_duration("0m0s") is None
    assert x.parse_duration("1ms") == 0.001


def test_option_errors_lists_nothing_for_good_or_absent_values_and_names_each_bad_one() -> None:
    assert x.option_errors({}) == []
    assert x.option_errors({x.RESTART_BUDGET: "3/1h", x.STARTUP_DEADLINE: "5m"}) == []
    bad = x.option_errors({x.RESTART_BUDGET: "0/1h", x.STARTUP_DEADLINE: "0s"})
    assert [key for key, _value, _form in bad] == [x.RESTART_BUDGET, x.STARTUP_DEADLINE]
