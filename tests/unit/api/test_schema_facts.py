"""The schema facts other packages read from ``api.jobset_types`` instead of restating them."""

from __future__ import annotations

import msgspec
import pytest

from api import jobset_types as t


def _records() -> list[type[msgspec.Struct]]:
    return [v for v in vars(t).values() if isinstance(v, type) and issubclass(v, t._Record) and v is not t._Record]


def test_every_crd_default_is_also_the_records_python_default() -> None:
    seen = {}
    for record in _records():
        for field in msgspec.structs.fields(record):
            try:
                crd_default = t.schema_default(record, field.name)
            except LookupError:
                continue
            seen[f"{record.__name__}.{field.name}"] = crd_default
            assert field.default == crd_default, f"{record.__name__}.{field.name}"
    assert seen == {
        "ReplicatedJob.group_name": "default",
        "ReplicatedJob.replicas": 1,
        "FailurePolicy.restart_strategy": "Recreate",
        "RetentionPolicy.when_deleted": "Delete",
    }


def test_a_field_without_a_crd_default_is_a_lookup_error() -> None:
    with pytest.raises(LookupError, match=r"FailurePolicy\.max_restarts"):
        t.schema_default(t.FailurePolicy, "max_restarts")


def test_enum_value_tuples_follow_their_literal_types_in_order() -> None:
    assert t.FAILURE_ACTIONS == (
        "FailJobSet",
        "RestartJobSet",
        "RestartJobSetAndIgnoreMaxRestarts",
        "RestartJob",
        "RestartJobAndIgnoreMaxRestarts",
    )
    assert t.RESTART_STRATEGIES == ("Recreate", "BlockingRecreate", "InPlaceRestart")
    assert set(t.RESTART_JOB_ACTIONS) <= set(t.FAILURE_ACTIONS)
