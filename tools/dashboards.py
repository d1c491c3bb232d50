"""Grafana dashboards and Prometheus alert rules, built as code.

Role: the single source of ``deploy/grafana/*.json`` (fleet overview, JobSet drill-down, controller health, GPU
occupancy) and ``deploy/prometheus/jobset-alerts.yaml`` (a ``monitoring.coreos.com/v1`` PrometheusRule: restart
storm, stuck start-up, reconcile errors, queue growth, stuck worker, GPUs held idle, GPUs unused, no leader,
controller down) with the same rules as a plain rule file, ``jobset-alerts.rules.yaml``, which the hand-written
``promtool test rules`` cases in ``deploy/prometheus/tests/`` load.
``python -m tools.dashboards`` rewrites the files; ``--check`` exits 1 when they drifted from this module.

Invariants:
* every query uses only metric names declared in ``metrics.registry`` (a test checks each against a real
  Prometheus scraping our exposition: it must parse and return data);
* each alert is ``<base query> <comparison>``; ``Alert.base`` is what the test runs, so "returns data" is
  checked without waiting for a threshold to be crossed;
* output is deterministic (sorted keys, fixed ids), so the drift check is an exact comparison;
* dashboards take a ``datasource`` variable, so they import as they are into any Grafana with Prometheus.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tools import drift

ROOT = Path(__file__).resolve().parent.parent
GRAFANA_DIR = ROOT / "deploy" / "grafana"
PROMETHEUS_DIR = ROOT / "deploy" / "prometheus"
ALERTS_FILE = PROMETHEUS_DIR / "jobset-alerts.yaml"
RULES_FILE = PROMETHEUS_DIR / "jobset-alerts.rules.yaml"
"""The same rules as a plain Prometheus rule file (``rule_files:``; what ``promtool test rules`` loads)."""
ALERT_TESTS_DIR = PROMETHEUS_DIR / "tests"

JSON = dict[str, Any]
DS = {"type": "prometheus", "uid": "${datasource}"}
NS = 'namespace=~"$namespace"'
JS = 'namespace=~"$namespace", jobset_name=~"$jobset"'
RI = "$__rate_interval"
WQ = 'name="jobset"'
CTL = 'controller="jobset"'
LEASE = "6d4f6a47.jobset.x-k8s.io"
METRICS_JOB = "jobset-controller-manager-metrics-service"
"""The ``job`` label of our targets: the Prometheus Operator names a ServiceMonitor's job after the Service."""

VARIABLE_VALUES = {
    "$namespace": ".*",
    "$jobset": ".*",
    "$pool": ".*",
    "$__rate_interval": "1m",
    "${datasource}": "prometheus",
}
"""What the query check substitutes for the dashboards' template variables."""


# --------------------------------------------------------------------------------------------- panels


@dataclass(frozen=True)
class Panel:
    title: str
    exprs: tuple[tuple[str, str], ...]
    """``(expr, legend)`` pairs."""
    kind: str = "timeseries"
    unit: str = "short"
    width: int = 12
    height: int = 8
    description: str = ""


def _panel(p: Panel, pid: int, x: int, y: int) -> JSON:
    targets: list[JSON] = [
        {"datasource": DS, "expr": expr, "legendFormat": legend, "refId": chr(ord("A") + i)}
        for i, (expr, legend) in enumerate(p.exprs)
    ]
    out: JSON = {
        "id": pid,
        "type": p.kind,
        "title": p.title,
        "description": p.description,
        "datasource": DS,
        "gridPos": {"h": p.height, "w": p.width, "x": x, "y": y},
        "fieldConfig": {"defaults": {"unit": p.unit}, "overrides": []},
        "options": {},
        "targets": targets,
    }
    if p.kind == "table":
        for t in targets:
            t["format"] = "table"
            t["instant"] = True
        out["transformations"] = [{"id": "merge", "options": {}}]
    return out


def _variable(name: str, query: str, label: str) -> JSON:
    return {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": DS,
        "query": {"query": query, "refId": f"{name}-var"},
        "definition": query,
        "includeAll": True,
        "allValue": ".*",
        "multi": True,
        "refresh": 2,
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "sort": 1,
    }


def _dashboard(uid: str, title: str, panels: list[Panel], variables: list[JSON]) -> JSON:
    laid: list[JSON] = []
    x = y = row_h = 0
    for i, p in enumerate(panels, start=1):
        if x + p.width > 24:
            x, y, row_h = 0, y + row_h, 0
        laid.append(_panel(p, i, x, y))
        x += p.width
        row_h = max(row_h, p.height)
    ds_var: JSON = {
        "name": "datasource",
        "label": "Data source",
        "type": "datasource",
        "query": "prometheus",
        "current": {},
        "hide": 0,
    }
    return {
        "uid": uid,
        "title": title,
        "tags": ["jobset", "pyjobset"],
        "timezone": "browser",
        "schemaVersion": 39,
        "version": 1,
        "editable": True,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "templating": {"list": [ds_var, *variables]},
        "annotations": {"list": []},
        "panels": laid,
    }


def _quantiles(metric: str, by: str, selector: str) -> tuple[tuple[str, str], ...]:
    return tuple(
        (
            f"histogram_quantile({q}, sum by (le, {by}) (rate({metric}_bucket{{{selector}}}[{RI}])))",
            f"p{int(q * 100)} {{{{{by}}}}}",
        )
        for q in (0.5, 0.9, 0.99)
    )


def fleet() -> JSON:
    panels = [
        Panel("JobSets by state", ((f"sum by (state) (jobset_state_count{{{NS}}})", "{{state}}"),)),
        Panel(
            "Restarts by namespace, action and reason",
            (
                (
                    f"sum by (namespace, action, reason) (increase(jobset_restarts_total{{{NS}}}[{RI}]))",
                    "{{namespace}} {{action}} {{reason}}",
                ),
            ),
        ),
        Panel("Start-up (created/resumed/restarted → all pods ready)",
              _quantiles("jobset_startup_seconds", "trigger", NS), unit="s"),
        Panel("Start-up p90 by phase", (
            (f"histogram_quantile(0.9, sum by (le, phase) (rate(jobset_startup_phase_seconds_bucket[{RI}])))",
             "{{phase}}"),
        ), unit="s"),
        Panel("Recovery (failure acted on → all pods ready)", _quantiles("jobset_recovery_seconds", "action", NS),
              unit="s"),
        Panel("Terminal outcomes", (
            (f"sum by (state, reason) (increase(jobset_terminal_outcomes_total{{{NS}}}[{RI}]))",
             "{{state}} {{reason}}"),
            (f"sum(increase(jobset_failed_total{{{NS}}}[{RI}]))", "failed (reference counter)"),
            (f"sum(increase(jobset_completed_total{{{NS}}}[{RI}]))", "completed (reference counter)"),
        )),
        Panel("Most restarted JobSets (1h)", (
            (f"topk(10, sum by (namespace, jobset_name) (increase(jobset_restarts_total{{{NS}}}[1h])))", ""),
        ), kind="table"),
        Panel("GPUs held while not fully running", (
            (f"sum by (namespace) (rate(jobset_gpu_idle_seconds_total{{{NS}}}[{RI}]))", "{{namespace}}"),
        )),
    ]  # fmt: skip
    ns_var = _variable("namespace", "label_values(jobset_state_count, namespace)", "Namespace")
    return _dashboard("jobset-fleet", "JobSet / Fleet overview", panels, [ns_var])


def drilldown() -> JSON:
    panels = [
        Panel("State", ((f"jobset_status{{{JS}}}", "{{jobset_name}} {{state}}"),), kind="table"),
        Panel("Seconds in current state", ((f"jobset_state_seconds{{{JS}}}", "{{jobset_name}} {{state}}"),), unit="s"),
        Panel("Pods of the current attempt", ((f"jobset_pods{{{JS}}}", "{{jobset_name}} {{phase}}"),)),
        Panel("Restarts (status.restarts)", ((f"jobset_status_restarts{{{JS}}}", "{{jobset_name}}"),)),
        Panel("Restarts by action, rule and reason", (
            (f"sum by (jobset_name, action, rule, reason) (jobset_restarts_total{{{JS}}})",
             "{{jobset_name}} {{action}} {{rule}} {{reason}}"),
        ), kind="table"),
        Panel("GPUs held", ((f"jobset_gpus_held{{{JS}}}", "{{jobset_name}}"),)),
        Panel("GPUs held while not fully running", (
            (f"rate(jobset_gpu_idle_seconds_total{{{JS}}}[{RI}])", "{{jobset_name}}"),
        )),
        Panel("Terminal counters (reference)", (
            (f"jobset_failed_total{{{JS}}}", "failed {{jobset_name}}"),
            (f"jobset_completed_total{{{JS}}}", "completed {{jobset_name}}"),
        )),
    ]  # fmt: skip
    variables = [
        _variable("namespace", "label_values(jobset_status, namespace)", "Namespace"),
        _variable("jobset", 'label_values(jobset_status{namespace=~"$namespace"}, jobset_name)', "JobSet"),
    ]
    return _dashboard("jobset-drilldown", "JobSet / Drill-down", panels, variables)


def controller_health() -> JSON:
    panels = [
        Panel("Reconciles by result", (
            (f"sum by (result) (rate(controller_runtime_reconcile_total{{{CTL}}}[{RI}]))", "{{result}}"),
        ), unit="ops"),
        Panel("Reconcile errors", (
            (f"sum(rate(controller_runtime_reconcile_errors_total{{{CTL}}}[{RI}]))", "errors/s"),
        ), unit="ops"),
        Panel("Reconcile time", _quantiles("controller_runtime_reconcile_time_seconds", "controller", CTL), unit="s"),
        Panel("Work queue depth and adds", (
            (f"workqueue_depth{{{WQ}}}", "depth"),
            (f"rate(workqueue_adds_total{{{WQ}}}[{RI}])", "adds/s"),
            (f"rate(workqueue_retries_total{{{WQ}}}[{RI}])", "retries/s"),
        )),
        Panel("Queue wait and work time p99", (
            (f"histogram_quantile(0.99, sum by (le) (rate(workqueue_queue_duration_seconds_bucket{{{WQ}}}[{RI}])))",
             "queue wait"),
            (f"histogram_quantile(0.99, sum by (le) (rate(workqueue_work_duration_seconds_bucket{{{WQ}}}[{RI}])))",
             "work"),
        ), unit="s"),
        Panel("Unfinished work", (
            (f"workqueue_unfinished_work_seconds{{{WQ}}}", "unfinished"),
            (f"workqueue_longest_running_processor_seconds{{{WQ}}}", "longest running"),
        ), unit="s"),
        Panel("API requests by code and method", (
            (f"sum by (code, method) (rate(rest_client_requests_total[{RI}]))", "{{method}} {{code}}"),
        ), unit="reqps"),
        Panel("Leader", ((f'leader_election_master_status{{name="{LEASE}"}}', "{{instance}}"),)),
        Panel("Cache sizes", (("informer_cache_objects", "{{resource}}"),)),
        Panel("Watch restarts and re-lists", (
            (f"sum by (resource) (increase(informer_watch_restarts_total[{RI}]))", "restarts {{resource}}"),
            (f"sum by (resource) (increase(informer_relists_total[{RI}]))", "relists {{resource}}"),
            ("min by (resource) (informer_synced)", "synced {{resource}}"),
        )),
    ]  # fmt: skip
    return _dashboard("jobset-controller", "JobSet / Controller health", panels, [])


def gpu() -> JSON:
    pool = 'node_pool=~"$pool"'
    panels = [
        Panel("Cluster GPUs: allocatable vs requested", (
            ("jobset_cluster_gpu_allocatable", "allocatable"),
            ("jobset_cluster_gpu_requested", "requested"),
        )),
        Panel("Cluster GPU occupancy", (
            ("jobset_cluster_gpu_requested / clamp_min(jobset_cluster_gpu_allocatable, 1)", "requested / allocatable"),
        ), unit="percentunit"),
        Panel("Per pool: allocatable, requested, unavailable", (
            (f"jobset_gpu_allocatable{{{pool}}}", "allocatable {{node_pool}}"),
            (f"jobset_gpu_requested{{{pool}}}", "requested {{node_pool}}"),
            (f"jobset_gpu_unavailable{{{pool}}}", "unavailable {{node_pool}}"),
        )),
        Panel("Per pool occupancy", (
            (f"jobset_gpu_requested{{{pool}}} / clamp_min(jobset_gpu_allocatable{{{pool}}}, 1)", "{{node_pool}}"),
        ), unit="percentunit"),
        Panel("GPUs held per JobSet (top 20)", (
            ("topk(20, jobset_gpus_held)", "{{namespace}}/{{jobset_name}}"),
        )),
        Panel("GPUs held while not fully running (avg over interval)", (
            (f"sum by (namespace) (rate(jobset_gpu_idle_seconds_total[{RI}]))", "{{namespace}}"),
        )),
    ]  # fmt: skip
    variables = [_variable("pool", "label_values(jobset_gpu_allocatable, node_pool)", "Node pool")]
    return _dashboard("jobset-gpu", "JobSet / GPU occupancy", panels, variables)


DASHBOARDS = {
    "jobset-fleet.json": fleet,
    "jobset-drilldown.json": drilldown,
    "jobset-controller.json": controller_health,
    "jobset-gpu.json": gpu,
}


# --------------------------------------------------------------------------------------------- alerts


@dataclass(frozen=True)
class Alert:
    """``base`` returns data on a healthy installation (the Prometheus test checks it). The rule is
    ``<base> <comparison>`` (``and <guard>`` when given), or ``absent(<base>)`` for an ``absent`` alert, which fires
    when the healthy series are missing altogether."""

    name: str
    base: str
    comparison: str
    duration: str
    severity: str
    summary: str
    description: str
    guard: str = ""
    absent: bool = False

    @property
    def expr(self) -> str:
        if self.absent:
            return f"absent({self.base})"
        rule = f"{self.base} {self.comparison}"
        return f"{rule} and {self.guard}" if self.guard else rule


ALERTS = (
    Alert(
        "JobSetRestartStorm",
        "sum by (namespace, jobset_name) (increase(jobset_restarts_total[30m]))",
        "> 3",
        "0m",
        "warning",
        "JobSet {{ $labels.namespace }}/{{ $labels.jobset_name }} restarted more than 3 times in 30 minutes",
        "Look at the restart reasons (JobSet drill-down dashboard) and the failing pods' nodes.",
    ),
    Alert(
        "JobSetStartupStuck",
        'max by (namespace, jobset_name, state) (jobset_state_seconds{state=~"Starting|Restarting"})',
        "> 1800",
        "5m",
        "warning",
        "JobSet {{ $labels.namespace }}/{{ $labels.jobset_name }} has been {{ $labels.state }} for over 30 minutes",
        "Its pods are not all ready: check scheduling (capacity, quotas, placement) in the drill-down dashboard.",
    ),
    Alert(
        "JobSetReconcileErrors",
        "sum by (controller) (rate(controller_runtime_reconcile_errors_total[10m])) / clamp_min(sum by (controller) "
        "(rate(controller_runtime_reconcile_total[10m])), 1e-9)",
        "> 0.1",
        "15m",
        "warning",
        "More than 10% of {{ $labels.controller }} reconciles fail",
        "See the controller log (event reconcile_failed) and the API request codes on the controller dashboard.",
    ),
    Alert(
        "JobSetWorkQueueGrowing",
        'workqueue_depth{name="jobset"}',
        "> 1000",
        "15m",
        "warning",
        "The JobSet work queue has held over 1000 keys for 15 minutes",
        "Workers cannot keep up: check reconcile time and API client throttling.",
    ),
    Alert(
        "JobSetWorkerStuck",
        'workqueue_longest_running_processor_seconds{name="jobset"}',
        "> 300",
        "5m",
        "critical",
        "A JobSet reconcile has been running for over 5 minutes",
        "A worker is blocked (API server unreachable or very slow?).",
    ),
    Alert(
        "JobSetGPUsHeldIdle",
        "sum by (namespace) (rate(jobset_gpu_idle_seconds_total[30m]))",
        "> 64",
        "30m",
        "warning",
        "Namespace {{ $labels.namespace }} held over 64 GPUs on average in JobSets that were not fully running",
        "GPUs are bound to pods waiting for their peers or a restart; check stuck start-ups and restart storms.",
    ),
    Alert(
        "ClusterGPUsUnused",
        "sum(jobset_cluster_gpu_requested) / clamp_min(sum(jobset_cluster_gpu_allocatable), 1)",
        "< 0.5",
        "1h",
        "info",
        "Less than half of the cluster's allocatable GPUs are requested by JobSet pods",
        "Capacity is idle: check queued workloads (Kueue) and unschedulable JobSets.",
        guard="sum(jobset_cluster_gpu_allocatable) > 0",  # a cluster without GPUs has nothing to leave unused
    ),
    Alert(
        "JobSetControllerNoLeader",
        # ``or vector(0)``: with every replica down there is no series at all, and that is "no leader" too.
        f'(max(leader_election_master_status{{name="{LEASE}"}}) or vector(0))',
        "< 1",
        "5m",
        "critical",
        "No JobSet controller replica holds the lease",
        "Nothing reconciles JobSets: check the controller pods and the Lease in jobset-system.",
    ),
    Alert(
        "JobSetControllerInformerStalled",
        "max by (resource) (informer_stalled)",
        "> 0",
        "5m",
        "critical",
        "The controller's {{ $labels.resource }} cache has made no progress (no LIST, event or bookmark) for minutes",
        "Its view of the cluster is stale and the replica is unready: see informer_disconnected / informer_watch_idle "
        "in its log (API server unreachable, RBAC, a proxy dropping watches).",
    ),
    Alert(
        "JobSetControllerUndecodableObjects",
        "sum by (resource, reason) (increase(informer_decode_errors_total[30m]))",
        "> 0",
        "0m",
        "warning",
        "The controller skipped {{ $labels.resource }} it could not decode ({{ $labels.reason }})",
        "The log event informer_object_undecodable names each object and field; JobSets they belong to carry a "
        "Warning event UndecodableObject. Such objects are ignored (or served stale) until they change.",
    ),
    Alert(
        "JobSetControllerDown",
        f'up{{job="{METRICS_JOB}"}} == 1',
        "",
        "5m",
        "critical",
        "No JobSet controller replica has been scraped successfully for 5 minutes",
        "Every replica is down or unreachable (or the ServiceMonitor selects nothing): check the controller "
        "Deployment in jobset-system, its pods' logs and the metrics Service's endpoints.",
        absent=True,
    ),
)


def alert_rules() -> JSON:
    rules = [
        {
            "alert": a.name,
            "expr": a.expr,
            "for": a.duration,
            "labels": {"severity": a.severity},
            "annotations": {"summary": a.summary, "description": a.description},
        }
        for a in ALERTS
    ]
    return {"groups": [{"name": "jobset.rules", "rules": rules}]}


def prometheus_rule() -> JSON:
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {
            "name": "jobset-alerts",
            "namespace": "jobset-system",
            "labels": {"app.kubernetes.io/name": "jobset", "app.kubernetes.io/component": "alerting"},
        },
        "spec": alert_rules(),
    }


# --------------------------------------------------------------------------------------------- files


def rendered() -> dict[Path, str]:
    """Every generated file and its exact content."""
    out = {
        GRAFANA_DIR / name: json.dumps(build(), indent=2, sort_keys=True) + "\n" for name, build in DASHBOARDS.items()
    }
    header = "# Generated by `python -m tools.dashboards`; edit tools/dashboards.py, not this file.\n"
    out[ALERTS_FILE] = header + yaml.safe_dump(prometheus_rule(), sort_keys=False, width=1000)
    out[RULES_FILE] = header + yaml.safe_dump(alert_rules(), sort_keys=False, width=1000)
    return out


def queries() -> list[tuple[str, str]]:
    """``(where, expr)`` for every dashboard target and template variable query, variables substituted."""
    found: list[tuple[str, str]] = []
    for name, build in DASHBOARDS.items():
        dash = build()
        for var in dash["templating"]["list"]:
            m = re.fullmatch(r"label_values\((.+), (\w+)\)", var.get("definition", ""))
            if m:
                found.append((f"{name}: variable {var['name']}", substitute(f"count by ({m[2]}) ({m[1]})")))
        for panel in dash["panels"]:
            for t in panel["targets"]:
                found.append((f"{name}: {panel['title']}", substitute(t["expr"])))
    return found


def substitute(expr: str) -> str:
    for var, value in VARIABLE_VALUES.items():
        expr = expr.replace(var, value)
    return expr


def drifted() -> list[Path]:
    return drift.drifted(rendered())


def main(argv: list[str] | None = None) -> int:
    return drift.main(argv, rendered, "tools.dashboards", __doc__, "exit 1 if the files differ from this generator")


if __name__ == "__main__":
    raise SystemExit(main())
