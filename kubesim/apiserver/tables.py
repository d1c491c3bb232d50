"""Server-side printing: ``meta.k8s.io/v1 Table`` responses for ``kubectl get``.

Role: kubectl asks for ``application/json;as=Table;v=v1;g=meta.k8s.io`` and prints the columns the server
returns. This module builds those tables: kubectl's familiar columns for the built-in kinds it is used with
(pods, jobs, nodes, namespaces, services, events), a CRD's ``additionalPrinterColumns`` (simple JSONPath), and
``NAME``/``AGE`` for everything else. Columns with ``priority: 1`` appear only with ``-o wide``.

Invariants: every row carries ``object`` as PartialObjectMetadata (``includeObject=Metadata``, the default),
the full object (``Object``) or nothing (``None``), as the apiserver does.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from typing import Any

from kubesim.storage.resources import ResourceInfo

JSON = dict[str, Any]

NAME_COL = {"name": "Name", "type": "string", "format": "name", "description": "Name", "priority": 0}
AGE_COL = {"name": "Age", "type": "string", "format": "", "description": "Age", "priority": 0}


def _col(name: str, priority: int = 0, type_: str = "string") -> JSON:
    return {"name": name, "type": type_, "format": "", "description": name, "priority": priority}


def age(ts: str | None, now: float | None = None) -> str:
    if not ts:
        return "<unknown>"
    try:
        then = datetime.strptime(ts, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()
    except ValueError:
        return "<invalid>"
    secs = int((now if now is not None else time.time()) - then)
    return human_duration(max(0, secs))


def human_duration(secs: int) -> str:
    if secs < 120:
        return f"{secs}s"
    mins = secs // 60
    if mins < 10:
        return f"{mins}m{secs % 60}s" if secs % 60 else f"{mins}m"
    if mins < 180:
        return f"{mins}m"
    hours = mins // 60
    if hours < 48:
        return f"{hours}h"
    return f"{hours // 24}d"


def _pod_row(obj: JSON) -> tuple[list[JSON], list[Any]]:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    cs = status.get("containerStatuses") or []
    ready = sum(1 for c in cs if c.get("ready"))
    total = len(spec.get("containers") or [])
    reason = status.get("reason") or status.get("phase") or ""
    for c in cs:
        state = c.get("state") or {}
        if "waiting" in state and state["waiting"].get("reason"):
            reason = state["waiting"]["reason"]
        elif "terminated" in state and state["terminated"].get("reason"):
            reason = state["terminated"]["reason"]
    if (obj.get("metadata") or {}).get("deletionTimestamp"):
        reason = "Terminating"
    restarts = sum(int(c.get("restartCount") or 0) for c in cs)
    cols = [
        NAME_COL,
        _col("Ready"),
        _col("Status"),
        _col("Restarts", 0, "string"),
        AGE_COL,
        _col("IP", 1),
        _col("Node", 1),
        _col("Nominated Node", 1),
        _col("Readiness Gates", 1),
    ]
    cells = [
        f"{ready}/{total}",
        reason,
        str(restarts),
        None,
        status.get("podIP") or "<none>",
        spec.get("nodeName") or "<none>",
        status.get("nominatedNodeName") or "<none>",
        "<none>",
    ]
    return cols, cells


def _job_row(obj: JSON) -> tuple[list[JSON], list[Any]]:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    conds = {c.get("type"): c.get("status") for c in status.get("conditions") or []}
    if conds.get("Failed") == "True":
        state = "Failed"
    elif conds.get("Complete") == "True":
        state = "Complete"
    elif conds.get("Suspended") == "True":
        state = "Suspended"
    elif conds.get("FailureTarget") == "True":
        state = "FailureTarget"
    elif conds.get("SuccessCriteriaMet") == "True":
        state = "SuccessCriteriaMet"
    else:
        state = "Running"
    completions = spec.get("completions")
    comp = (
        f"{status.get('succeeded', 0)}/{completions}"
        if completions is not None
        else f"{status.get('succeeded', 0)}/1 of {spec.get('parallelism', 1)}"
    )
    duration = ""
    if status.get("startTime"):
        end = status.get("completionTime")
        try:
            start = datetime.strptime(status["startTime"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()
            stop = datetime.strptime(end, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp() if end else time.time()
            duration = human_duration(int(stop - start))
        except ValueError:
            duration = ""
    tspec = (spec.get("template") or {}).get("spec") or {}
    containers = tspec.get("containers") or []
    sel = (spec.get("selector") or {}).get("matchLabels") or {}
    cols = [
        NAME_COL,
        _col("Status"),
        _col("Completions"),
        _col("Duration"),
        AGE_COL,
        _col("Containers", 1),
        _col("Images", 1),
        _col("Selector", 1),
    ]
    cells = [
        state,
        comp,
        duration,
        None,
        ",".join(c.get("name", "") for c in containers),
        ",".join(c.get("image", "") for c in containers),
        ",".join(f"{k}={v}" for k, v in sel.items()),
    ]
    return cols, cells


def _node_row(obj: JSON) -> tuple[list[JSON], list[Any]]:
    status, spec = obj.get("status") or {}, obj.get("spec") or {}
    ready = next((c.get("status") for c in status.get("conditions") or [] if c.get("type") == "Ready"), None)
    state = "Ready" if ready == "True" else "NotReady" if ready else "Unknown"
    if spec.get("unschedulable"):
        state += ",SchedulingDisabled"
    labels = (obj.get("metadata") or {}).get("labels") or {}
    roles = ",".join(sorted(k.split("/", 1)[1] for k in labels if k.startswith("node-role.kubernetes.io/")))
    info = status.get("nodeInfo") or {}
    addr = {a.get("type"): a.get("address") for a in status.get("addresses") or []}
    cols = [
        NAME_COL,
        _col("Status"),
        _col("Roles"),
        AGE_COL,
        _col("Version"),
        _col("Internal-IP", 1),
        _col("External-IP", 1),
        _col("OS-Image", 1),
        _col("Kernel-Version", 1),
        _col("Container-Runtime", 1),
    ]
    cells = [
        state,
        roles or "<none>",
        None,
        info.get("kubeletVersion", ""),
        addr.get("InternalIP", "<none>"),
        addr.get("ExternalIP", "<none>"),
        info.get("osImage", "<unknown>"),
        info.get("kernelVersion", "<unknown>"),
        info.get("containerRuntimeVersion", "<unknown>"),
    ]
    return cols, cells


def _ns_row(obj: JSON) -> tuple[list[JSON], list[Any]]:
    return [NAME_COL, _col("Status"), AGE_COL], [(obj.get("status") or {}).get("phase", ""), None]


def _svc_row(obj: JSON) -> tuple[list[JSON], list[Any]]:
    spec = obj.get("spec") or {}
    ports = ",".join(f"{p.get('port')}/{p.get('protocol', 'TCP')}" for p in spec.get("ports") or [])
    sel = ",".join(f"{k}={v}" for k, v in (spec.get("selector") or {}).items())
    cols = [
        NAME_COL,
        _col("Type"),
        _col("Cluster-IP"),
        _col("External-IP"),
        _col("Port(s)"),
        AGE_COL,
        _col("Selector", 1),
    ]
    return cols, [
        spec.get("type", "ClusterIP"),
        spec.get("clusterIP", ""),
        "<none>",
        ports or "<none>",
        None,
        sel or "<none>",
    ]


def _event_row(obj: JSON) -> tuple[list[JSON], list[Any]]:
    io = obj.get("involvedObject") or obj.get("regarding") or {}
    last = obj.get("lastTimestamp") or obj.get("eventTime") or (obj.get("metadata") or {}).get("creationTimestamp")
    cols = [_col("Last Seen"), _col("Type"), _col("Reason"), _col("Object"), _col("Message")]
    return cols, [
        age(last if isinstance(last, str) else None),
        obj.get("type", ""),
        obj.get("reason", ""),
        f"{str(io.get('kind', '')).lower()}/{io.get('name', '')}",
        obj.get("message") or obj.get("note") or "",
    ]


_ROWS = {
    ("", "pods"): _pod_row,
    ("batch", "jobs"): _job_row,
    ("", "nodes"): _node_row,
    ("", "namespaces"): _ns_row,
    ("", "services"): _svc_row,
    ("", "events"): _event_row,
    ("events.k8s.io", "events"): _event_row,
}

_FILTER = re.compile(r"^\[\?\(@\.([\w.]+)\s*==\s*['\"]([^'\"]*)['\"]\)\]")


def jsonpath(obj: Any, path: str) -> Any:
    """Evaluate the simple JSONPath CRD printer columns use: ``.a.b``, ``.a[0]``, ``.a[?(@.k=="v")].b``."""
    cur: Any = obj
    rest = path.strip().lstrip("{").rstrip("}")
    while rest and cur is not None:
        if rest.startswith("."):
            m = re.match(r"^\.([^.\[]+)", rest)
            if not m:
                break
            cur = cur.get(m.group(1)) if isinstance(cur, dict) else None
            rest = rest[m.end() :]
        elif rest.startswith("[?"):
            fm = _FILTER.match(rest)
            if not fm or not isinstance(cur, list):
                return None
            key, val = fm.group(1), fm.group(2)
            cur = next((i for i in cur if isinstance(i, dict) and str(jsonpath(i, "." + key)) == val), None)
            rest = rest[fm.end() :]
        elif rest.startswith("["):
            m = re.match(r"^\[(\d+)\]", rest)
            if not m or not isinstance(cur, list):
                return None
            idx = int(m.group(1))
            cur = cur[idx] if idx < len(cur) else None
            rest = rest[m.end() :]
        else:
            break
    return cur


def _crd_row(info: ResourceInfo, version: str, obj: JSON) -> tuple[list[JSON], list[Any]]:
    cols = [NAME_COL]
    cells: list[Any] = []
    spec_cols: list[JSON] = []
    for ver in ((info.crd or {}).get("spec") or {}).get("versions") or []:
        if ver.get("name") == version:
            spec_cols = ver.get("additionalPrinterColumns") or []
    has_age = False
    for c in spec_cols:
        cols.append(
            {
                "name": c.get("name", ""),
                "type": c.get("type", "string"),
                "format": c.get("format", ""),
                "description": c.get("description", ""),
                "priority": c.get("priority", 0),
            }
        )
        v = jsonpath(obj, c.get("jsonPath", ""))
        if c.get("type") == "date":
            has_age = has_age or c.get("jsonPath") == ".metadata.creationTimestamp"
            v = age(v if isinstance(v, str) else None)
        cells.append(v)
    if not spec_cols:
        cols.append(AGE_COL)
        cells.append(None)
    return cols, cells


def table(info: ResourceInfo, version: str, objs: list[JSON], include: str, meta: JSON) -> JSON:
    """A Table for ``objs`` (with ``None`` age cells filled from creationTimestamp)."""
    cols: list[JSON] = [NAME_COL, AGE_COL]
    rows: list[JSON] = []
    for obj in objs:
        m = obj.get("metadata") or {}
        if info.crd is not None:
            cols, cells = _crd_row(info, version, obj)
        elif (fn := _ROWS.get((info.group, info.resource))) is not None:
            cols, cells = fn(obj)
        else:
            cells = [None]
        if info.storage != ("", "events") and info.group != "events.k8s.io":
            cells = [m.get("name", ""), *cells]
        cells = [age(m.get("creationTimestamp")) if c is None else c for c in cells]
        row: JSON = {"cells": cells}
        if include == "Object":
            row["object"] = obj
        elif include != "None":
            row["object"] = {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": m}
        rows.append(row)
    if not objs:
        if info.crd is not None:
            cols, _ = _crd_row(info, version, {})
        elif (fn := _ROWS.get((info.group, info.resource))) is not None:
            cols, _ = fn({})
    return {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": meta, "columnDefinitions": cols, "rows": rows}
