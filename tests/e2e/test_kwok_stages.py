"""The committed KWOK Stage file is exactly what ``tests/e2e/kwok_stages.py`` generates (no binaries needed)."""

from __future__ import annotations

import yaml

from tests.e2e import kwok_stages
from tests.e2e.harness import STAGES_FILE


def test_committed_stage_file_matches_the_generator() -> None:
    assert STAGES_FILE.read_text() == kwok_stages.render(), "regenerate: python -m tests.e2e.kwok_stages > " + str(
        STAGES_FILE
    )


def test_every_stage_is_a_valid_kwok_stage_with_unique_name() -> None:
    docs = list(yaml.safe_load_all(STAGES_FILE.read_text()))
    names = [d["metadata"]["name"] for d in docs]
    assert len(names) == len(set(names))
    for doc in docs:
        assert doc["apiVersion"] == "kwok.x-k8s.io/v1alpha1"
        assert doc["kind"] == "Stage"
        assert doc["spec"]["resourceRef"]["kind"] in ("Pod", "Node")
        assert doc["spec"]["selector"]["matchExpressions"]
        assert doc["spec"]["steps"]
