"""Dashboards and alert rules are generated from ``tools.dashboards`` and only use metrics we export."""

from __future__ import annotations

import json
import re

import yaml

from metrics.hub import MetricsHub
from metrics.registry import SCRAPE_FAMILIES
from tools import dashboards as d
from tools import synthetic as syn

LABELS = {
    "namespace", "jobset_name", "state", "phase", "trigger", "action", "rule", "reason", "controller", "result",
    "node_pool", "resource", "code", "method", "host", "name", "le", "instance",
}  # fmt: skip
FUNCTIONS = {"histogram_quantile", "clamp_min", "count_over_time", "min_over_time", "max_over_time"}


def exported_names() -> set[str]:
    hub = MetricsHub()
    infs = syn.fake_informers()
    hub.add_informers(infs.values())
    hub.watch_gpus(lambda: infs["nodes"].store, lambda: infs["pods"].store)
    names = {f.name + ("_total" if f.type == "counter" else "") for f in SCRAPE_FAMILIES}
    for family in hub.registry.collect():
        names.add(family.name)
        if family.type == "counter":
            names.add(family.name + "_total")
        if family.type == "histogram":
            names.update(family.name + s for s in ("_bucket", "_sum", "_count"))
    return names


def test_generated_files_are_up_to_date() -> None:
    assert d.drifted() == [], "run: python -m tools.dashboards"


def test_every_query_names_only_exported_metrics() -> None:
    exported = exported_names()
    exprs = [e for _, e in d.queries()] + [a.expr for a in d.ALERTS]
    assert len(exprs) > 40
    for expr in exprs:
        without_strings = re.sub(r'"[^"]*"', '""', expr)
        for ident in re.findall(r"\b[a-z][a-z0-9]*(?:_[a-z0-9]+)+\b", without_strings):
            if ident in LABELS or ident in FUNCTIONS:
                continue
            assert ident in exported, f"{ident!r} in {expr!r}"


def test_dashboards_import_as_they_are() -> None:
    uids = set()
    for name in d.DASHBOARDS:
        dash = json.loads((d.GRAFANA_DIR / name).read_text())
        uids.add(dash["uid"])
        assert dash["templating"]["list"][0]["type"] == "datasource"
        ids = [p["id"] for p in dash["panels"]]
        assert len(ids) == len(set(ids))
        for panel in dash["panels"]:
            assert panel["targets"], panel["title"]
            assert panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24
    assert len(uids) == 4


def test_alert_rules_cover_the_required_situations() -> None:
    rule = yaml.safe_load(d.ALERTS_FILE.read_text())
    assert rule["kind"] == "PrometheusRule"
    names = {r["alert"] for g in rule["spec"]["groups"] for r in g["rules"]}
    for required in ("RestartStorm", "StartupStuck", "ReconcileErrors", "WorkQueueGrowing", "GPUsHeldIdle"):
        assert any(required in n for n in names), required
    for r in rule["spec"]["groups"][0]["rules"]:
        assert r["labels"]["severity"] in {"info", "warning", "critical"}
        assert r["annotations"]["summary"]
