"""The documentation site: it builds strictly, its generated pages match the code, and its examples are valid.

Role: keep ``docs/`` honest as the code moves. The site is built by MkDocs with ``--strict`` (a broken link or
anchor, or a page left out of the navigation, fails); the configuration and metrics references are exactly what
``tools.gendocs`` generates from ``controller.settings`` / ``controller.cli`` and ``metrics.registry``; every
alert of ``deploy/prometheus/jobset-alerts.yaml`` has a runbook section; every JobSet YAML shown on a page
(outside the design pages) passes the CRD schema, the defaulting webhook and the validating webhook; every
dashboard has its picture.

Invariants: the build writes only into a temporary directory; nothing here touches the network (the theme's
web fonts are off and the site links nothing outside the repository).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from api.constants import GATE_ELASTIC_JOBSET, GATE_IN_PLACE_RESTART, GATE_RESTART_JOB
from api.jobset_types import jobset_from_obj
from controller import settings
from controller.webhooks import default_jobset, invalid_status, validate_create, validate_schema_rules
from tools import dashboards, gendocs

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
ALL_GATES = {GATE_IN_PLACE_RESTART: True, GATE_RESTART_JOB: True, GATE_ELASTIC_JOBSET: True}


def test_the_site_builds_strictly(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert out.returncode == 0, f"mkdocs build --strict failed:\n{out.stdout}\n{out.stderr}"
    built = tmp_path / "site"
    for page in ("index.html", "getting-started.html", "operations/configuration.html", "operations/metrics.html"):
        assert (built / page).is_file(), f"{page} missing from the built site"
    html = (built / "operations" / "dashboards.html").read_text(encoding="utf-8")
    assert "dashboard-fleet.png" in html
    assert "fonts.googleapis" not in (built / "index.html").read_text(encoding="utf-8")


def test_generated_reference_pages_match_the_code() -> None:
    stale = [str(p.relative_to(ROOT)) for p in gendocs.drifted()]
    assert not stale, f"regenerate with `python -m tools.gendocs`: {stale}"


def test_the_configuration_reference_lists_every_field_and_flag() -> None:
    page = gendocs.CONFIGURATION_PAGE.read_text(encoding="utf-8")
    for path in ("leaderElection.leaseDuration", "metrics.secure", "internalCertManagement.webhookSecretName"):
        assert f"| `{path}` |" in page
    for flag in ("--metrics-bind-address", "--leader-elect", "--kube-api-qps", "--webhooks"):
        assert f"| `{flag}` |" in page
    assert "--zap-devel" not in page  # hidden flags stay hidden


def test_the_defaults_file_on_the_configuration_page_loads_to_the_defaults(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(gendocs.example_file())
    assert settings.load_settings(path) == settings.Settings()


def test_a_field_without_a_meaning_fails_generation(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(gendocs.MEANINGS, "webhook.port")
    with pytest.raises(LookupError, match=r"webhook\.port: no meaning"):
        gendocs.configuration_page()


def test_a_meaning_for_a_field_that_is_gone_fails_generation(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(gendocs.MEANINGS, "webhook.retired", "a field that no longer exists")
    with pytest.raises(LookupError, match=r"webhook\.retired"):
        gendocs.configuration_page()


def test_the_metrics_reference_lists_every_metric_once() -> None:
    page = gendocs.METRICS_PAGE.read_text(encoding="utf-8")
    names = re.findall(r"^\| `([a-z_]+)` \|", page, flags=re.MULTILINE)
    assert len(names) == len(set(names))
    assert {"controller_runtime_reconcile_total", "workqueue_depth", "jobset_restarts_total"} <= set(names)
    assert set(names) == {d.name for d in gendocs.metric_docs()}


def test_every_alert_has_a_runbook_section() -> None:
    rules = yaml.safe_load(dashboards.ALERTS_FILE.read_text(encoding="utf-8"))["spec"]["groups"]
    alerts = [rule["alert"] for group in rules for rule in group["rules"]]
    assert alerts
    page = (DOCS / "operations" / "alerts.md").read_text(encoding="utf-8")
    headings = set(re.findall(r"^## (\w+)$", page, flags=re.MULTILINE))
    missing = [a for a in alerts if a not in headings]
    assert not missing, f"docs/operations/alerts.md has no section for: {missing}"


def test_every_dashboard_has_a_small_picture_on_its_page() -> None:
    page = (DOCS / "operations" / "dashboards.md").read_text(encoding="utf-8")
    for name in dashboards.DASHBOARDS:
        image = DOCS / "images" / f"dashboard-{name.removesuffix('.json').removeprefix('jobset-')}.png"
        assert image.is_file(), f"{image.relative_to(ROOT)} missing (python -m tools.screenshots)"
        assert image.stat().st_size < 200_000
        assert f"../images/{image.name}" in page
        assert f"`{name}`" in page


# --------------------------------------------------------------------------------------------- examples


def _examples() -> Iterator[tuple[str, dict[str, Any]]]:
    for page in sorted(DOCS.rglob("*.md")):
        if "design" in page.relative_to(DOCS).parts:
            continue
        text = page.read_text(encoding="utf-8")
        for n, block in enumerate(re.findall(r"^```yaml\n(.*?)^```", text, flags=re.MULTILINE | re.DOTALL)):
            doc = yaml.safe_load(block)
            if isinstance(doc, dict) and doc.get("kind") == "JobSet":
                yield f"{page.relative_to(DOCS)}#{n}", doc


EXAMPLES = dict(_examples())


def _crd_schema() -> Mapping[str, Any]:
    crd = yaml.safe_load((ROOT / "deploy" / "crd" / "jobset.x-k8s.io_jobsets.yaml").read_text(encoding="utf-8"))
    version = next(v for v in crd["spec"]["versions"] if v["name"] == "v1alpha2")
    schema: Mapping[str, Any] = version["schema"]["openAPIV3Schema"]
    return schema


def _unknown_fields(value: Any, schema: Mapping[str, Any], path: str) -> Iterator[str]:
    """Fields the API server would prune (not in the structural schema), as dotted paths."""
    if schema.get("x-kubernetes-preserve-unknown-fields"):
        return
    if isinstance(value, dict):
        props = schema.get("properties")
        extra = schema.get("additionalProperties")
        for key, item in value.items():
            if props is not None and key in props:
                yield from _unknown_fields(item, props[key], f"{path}.{key}")
            elif isinstance(extra, dict):
                yield from _unknown_fields(item, extra, f"{path}.{key}")
            elif props is not None or extra is False:
                yield f"{path}.{key}"
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(value):
            yield from _unknown_fields(item, schema["items"], f"{path}[{i}]")


def test_the_pages_show_examples() -> None:
    pages = {where.split("#")[0] for where in EXAMPLES}
    assert "getting-started.md" in pages
    assert len([p for p in pages if p.startswith("tasks/")]) >= 9


@pytest.mark.parametrize("where", sorted(EXAMPLES))
def test_every_example_jobset_is_accepted(where: str) -> None:
    obj = EXAMPLES[where]
    unknown = list(_unknown_fields(obj, _crd_schema(), ""))
    assert not unknown, f"{where}: fields the API server would drop: {unknown}"
    defaulted = default_jobset(obj)
    errors = list(validate_schema_rules(defaulted)) + list(validate_create(defaulted, ALL_GATES))
    assert not errors, invalid_status("JobSet", "jobset.x-k8s.io", obj["metadata"]["name"], errors)["message"]
    assert jobset_from_obj(defaulted).metadata.name == obj["metadata"]["name"]
