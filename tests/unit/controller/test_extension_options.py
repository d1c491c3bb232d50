"""Extension annotations at admission, the ``pyjobset:`` Configuration section, and the typed options behind them
(docs/design/extensions.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from api import extensions as x
from controller.settings import ConfigError, load_settings
from controller.webhooks import validate_create, validate_update
from controller.webhooks.jobset_validation import rejection_status
from tests.builders import JobSetBuilder


def jobset(annotations: dict[str, str] | None = None, reasons: list[str] | None = None) -> dict[str, Any]:
    b = JobSetBuilder("test-js").rjob("replicated-job-a", 1)
    for key, value in (annotations or {}).items():
        b.annotate(key, value)
    if reasons is not None:
        b.set("spec.failurePolicy", {"rules": [{"name": "r", "action": "FailJobSet", "onJobFailureReasons": reasons}]})
    return b.obj()


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("10s", 10.0), ("5m", 300.0), ("1h30m", 5400.0), ("500ms", 0.5), ("1.5s", 1.5), (" 2m ", 120.0)],
)
def test_durations(text: str, seconds: float) -> None:
    assert x.parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "0s", "10", "-5s", "5x", "m", "1d", "10s,"])
def test_bad_durations(text: str) -> None:
    assert x.parse_duration(text) is None


def test_budget_and_backoff_forms() -> None:
    assert x.parse_budget("3/1h") == x.Budget(count=3, window=3600.0)
    assert x.parse_backoff("10s,5m") == x.Backoff(base=10.0, max=300.0)
    for bad in ("3", "0/1h", "x/1h", "3/", "3/1y", "-1/1h"):
        assert x.parse_budget(bad) is None, bad
    for bad in ("", "10s,5m,1h", "fast", "10s,"):
        assert x.parse_backoff(bad) is None, bad


def test_malformed_annotations_count_as_absent_in_the_controller() -> None:
    opts = x.parse_options({x.FAIL_FAST: "yes", x.STARTUP_DEADLINE: "soon"}, x.Defaults(fail_fast=True))
    assert (opts.fail_fast, opts.startup_deadline) == (True, None)


@pytest.mark.parametrize(
    ("key", "value", "form"),
    [
        (x.STARTUP_DEADLINE, "10 minutes", x.FORM_DURATION),
        (x.RESTART_BACKOFF, "10s,5m,1h", x.FORM_BACKOFF),
        (x.RESTART_BUDGET, "3 per hour", x.FORM_BUDGET),
        (x.FAIL_FAST, "yes", x.FORM_BOOL),
    ],
)
def test_admission_refuses_a_bad_value_naming_the_annotation_and_the_form(key: str, value: str, form: str) -> None:
    obj = jobset({key: value})
    errors = validate_create(obj, {})
    assert [(e.field, e.bad_value) for e in errors] == [(f"metadata.annotations[{key}]", value)]
    status = rejection_status(obj, errors)
    assert status["code"] == 422
    assert key in status["message"]
    assert form in status["message"]
    # The same check on UPDATE (annotations are mutable).
    assert [e.field for e in validate_update(obj, jobset(), {})] == [f"metadata.annotations[{key}]"]


def test_admission_accepts_good_values() -> None:
    good = {
        x.STARTUP_DEADLINE: "10m",
        x.RESTART_BACKOFF: "10s,5m",
        x.RESTART_BUDGET: "3/1h",
        x.FAIL_FAST: "true",
    }
    assert list(validate_create(jobset(good), {})) == []


def test_startup_deadline_reason_is_accepted_in_rules_only_with_the_annotation() -> None:
    reasons = ["StartupDeadlineExceeded"]
    assert list(validate_create(jobset({x.STARTUP_DEADLINE: "10m"}, reasons), {})) == []
    refused = validate_create(jobset(None, reasons), {})
    assert [e.detail for e in refused] == [
        "invalid job failure reason 'StartupDeadlineExceeded' in failure policy is not a recognized job failure reason"
    ]


def test_configuration_section_is_decoded_strictly(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("pyjobset:\n  recordFailures: false\n  failFast: true\n")
    s = load_settings(path)
    assert (s.pyjobset.record_failures, s.pyjobset.fail_fast) == (False, True)
    assert load_settings().pyjobset.record_failures is True
    path.write_text("pyjobset:\n  failfast: true\n")
    with pytest.raises(ConfigError, match=r"pyjobset\.failfast: unknown field .* known fields here: failFast"):
        load_settings(path)
    path.write_text("pyjobset:\n  failFast: 'yes'\n")
    with pytest.raises(ConfigError, match=r"pyjobset\.failFast: expected true or false"):
        load_settings(path)
