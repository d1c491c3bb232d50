"""Condition update semantics of behaviour.md §4.9 (conformance 124) and the status draft."""

from __future__ import annotations

import datetime as dt

import pytest

from api import constants as c
from api.jobset_types import Condition, JobSetStatus
from api.timefmt import format_time
from controller.decide import conditions as cond

OLD = "2025-12-31T00:00:00Z"
NOW = dt.datetime(2026, 1, 1, 12, 0, 0, tzinfo=dt.UTC)
NOW_S = "2026-01-01T12:00:00Z"


def _draft(*conds: Condition) -> cond.StatusDraft:
    return cond.StatusDraft(JobSetStatus(conditions=conds), NOW)


def _c(ctype: str, status: str, reason: str = "R", message: str = "m", at: str = OLD) -> Condition:
    return Condition(type=ctype, status=status, reason=reason, message=message, last_transition_time=at)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("existing", "new", "changed", "expected"),
    [
        pytest.param(
            (),
            ("Completed", "True", "R", "m"),
            True,
            [_c("Completed", "True", at=NOW_S)],
            id="c124-absent-true-appended",
        ),
        pytest.param((), ("Suspended", "False", "R", "m"), False, [], id="c124-absent-false-not-added"),
        pytest.param(
            (_c("Suspended", "True"),),
            ("Suspended", "False", "ResumeJobs", "jobset is resumed"),
            True,
            [_c("Suspended", "False", "ResumeJobs", "jobset is resumed", at=NOW_S)],
            id="c124-status-change-new-time",
        ),
        pytest.param(
            (_c("RestartingJobSet", "True", "FailurePolicy_a"),),
            ("RestartingJobSet", "True", "FailurePolicy_b", "m"),
            True,
            [_c("RestartingJobSet", "True", "FailurePolicy_b", at=OLD)],
            id="c124-reason-change-keeps-time",
        ),
        pytest.param(
            (_c("Failed", "True", "A", "one"),),
            ("Failed", "True", "A", "two"),
            True,
            [_c("Failed", "True", "A", "two", at=OLD)],
            id="c124-message-change-keeps-time",
        ),
        pytest.param(
            (_c("Completed", "True"),),
            ("Completed", "True", "R", "m"),
            False,
            [_c("Completed", "True")],
            id="c124-identical-noop",
        ),
        pytest.param(
            (_c("StartupPolicyInProgress", "True", "InOrderStartupPolicyInProgress", "x"),),
            ("StartupPolicyCompleted", "True", "InOrderStartupPolicyCompleted", "y"),
            True,
            [
                _c("StartupPolicyInProgress", "False", "InOrderStartupPolicyInProgress", "x", at=OLD),
                _c("StartupPolicyCompleted", "True", "InOrderStartupPolicyCompleted", "y", at=NOW_S),
            ],
            id="c124-startup-completed-flips-in-progress",
        ),
        pytest.param(
            (
                _c("StartupPolicyInProgress", "False", "InOrderStartupPolicyInProgress", "x"),
                _c("StartupPolicyCompleted", "True", "InOrderStartupPolicyCompleted", "y"),
            ),
            ("StartupPolicyInProgress", "True", "InOrderStartupPolicyInProgress", "x"),
            True,
            [
                _c("StartupPolicyInProgress", "True", "InOrderStartupPolicyInProgress", "x", at=NOW_S),
                _c("StartupPolicyCompleted", "False", "InOrderStartupPolicyCompleted", "y", at=OLD),
            ],
            id="c124-startup-in-progress-flips-completed",
        ),
    ],
)
def test_condition_update_semantics(
    existing: tuple[Condition, ...], new: tuple[str, str, str, str], changed: bool, expected: list[Condition]
) -> None:
    draft = _draft(*existing)
    assert draft.set_condition(new[0], new[1], new[2], new[3]) is changed  # type: ignore[arg-type]
    assert draft.conditions == expected
    assert len(draft.events) == (1 if changed else 0)


@pytest.mark.parametrize(
    ("ctype", "status", "etype"),
    [
        pytest.param(c.COND_FAILED, "True", "Warning", id="c124-failed-is-warning"),
        pytest.param(c.COND_RESTARTING, "True", "Warning", id="c124-restarting-true-is-warning"),
        pytest.param(c.COND_RESTARTING, "False", "Normal", id="c124-restarting-false-is-normal"),
        pytest.param(c.COND_COMPLETED, "True", "Normal", id="c124-completed-is-normal"),
        pytest.param(c.COND_SUSPENDED, "False", "Normal", id="c124-resumed-is-normal"),
    ],
)
def test_event_per_change_with_type(ctype: str, status: str, etype: str) -> None:
    draft = _draft(_c(ctype, "True" if status == "False" else "False"))
    draft.set_condition(ctype, status, "Why", "what")  # type: ignore[arg-type]
    assert [(e.type, e.reason, e.message) for e in draft.events] == [(etype, "Why", "what")]


def test_unchanged_draft_builds_none_and_changed_builds_status() -> None:
    old = JobSetStatus(restarts=2, conditions=(_c("Suspended", "True"),))
    draft = cond.StatusDraft(old, NOW)
    assert draft.build() is None
    draft.set_condition("Suspended", "True", "R", "m")
    assert draft.build() is None
    draft.restarts += 1
    new = draft.build()
    assert new is not None
    assert new.restarts == 3


def test_rfc3339_renders_utc_seconds() -> None:
    assert format_time(dt.datetime(2026, 5, 1, 3, 4, 5, 999, tzinfo=dt.timezone(dt.timedelta(hours=2)))) == (
        "2026-05-01T01:04:05Z"
    )
