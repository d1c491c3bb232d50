"""The alert rules pass ``promtool test rules`` (``deploy/prometheus/tests/*.test.yaml``), and every alert has a
case where it fires and one where it stays silent.

promtool comes with Debian's ``prometheus`` package (``apt-get install -y prometheus``; ``scripts/test`` installs
it in CI). Without it the promtool tests are skipped on a workstation and fail under ``CI=true``. The coverage
check needs no binary: adding an alert to ``tools.dashboards.ALERTS`` without test cases fails here.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tools import dashboards as d

PROMTOOL = shutil.which("promtool")
TEST_FILES = sorted(d.ALERT_TESTS_DIR.glob("*.test.yaml"))


def promtool() -> str:
    if PROMTOOL is None:
        if os.environ.get("CI") == "true":
            pytest.fail("promtool is missing: CI must `apt-get install -y prometheus`")
        pytest.skip("promtool not installed (apt-get install -y prometheus)")
    return PROMTOOL


def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([promtool(), *map(str, args)], capture_output=True, text=True, timeout=120, check=False)


def cases() -> list[dict[str, Any]]:
    """Every ``alert_rule_test`` entry of every test file (with the test's name)."""
    found = []
    for path in TEST_FILES:
        doc = yaml.safe_load(path.read_text())
        assert doc["rule_files"] == ["../" + d.RULES_FILE.name], path
        for test in doc["tests"]:
            for case in test.get("alert_rule_test") or []:
                found.append({**case, "test": test["name"]})
    return found


def test_rule_file_is_valid() -> None:
    result = run("check", "rules", d.RULES_FILE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_alert_rule_unit_tests_pass() -> None:
    assert TEST_FILES
    result = run("test", "rules", *TEST_FILES)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_has_a_firing_and_a_silent_case() -> None:
    rules = yaml.safe_load(d.RULES_FILE.read_text())
    names = {r["alert"] for g in rules["groups"] for r in g["rules"]}
    assert names == {a.name for a in d.ALERTS}
    fires = {c["alertname"] for c in cases() if c.get("exp_alerts")}
    silent = {c["alertname"] for c in cases() if not c.get("exp_alerts")}
    assert names - fires == set(), "alerts without a case where they fire"
    assert names - silent == set(), "alerts without a case where they stay silent"
    assert (fires | silent) - names == set(), "test cases for alerts that do not exist"


def test_the_known_misfires_are_covered() -> None:
    """Every replica down (no series at all) is "no leader"; a cluster without GPUs never has GPUs unused."""
    by_test = {(c["test"], c["alertname"]): c for c in cases()}
    no_series = by_test[("every replica down (no leader series at all) is no leader too", "JobSetControllerNoLeader")]
    assert no_series["exp_alerts"]
    no_gpus = by_test[("a cluster without GPUs (allocatable 0) never has unused GPUs", "ClusterGPUsUnused")]
    assert no_gpus["exp_alerts"] == []
    down = next(a for a in d.ALERTS if a.name == "JobSetControllerDown")
    assert down.expr.startswith("absent(up{")
