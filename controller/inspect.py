"""``pyjobset get`` and ``pyjobset describe`` (also ``kubectl jobset get|describe``): read-only views of JobSets.

Role: fetch a JobSet with its Jobs, pods, nodes and events through :class:`cache.client.ApiClient`, then render
them. Fetching (``fetch_*``) is the only I/O; the models (:func:`summarize`, :func:`describe_model`) and the
renderers (:func:`render_get`, :func:`render_describe`) are pure functions of the fetched objects and ``now``, so
tests check them without a cluster.

What is shown comes from the contract (``docs/design/extensions.md``, "CLI"): ``get`` a line per JobSet (name,
state, restarts, ready Jobs/total, age, latest failure); ``describe`` the tree replicated job → Job → pod counts,
conditions, restart history (the ``pyjobset.io/restart-history`` and ``last-failure`` annotations, "—" when
absent), the placement map under exclusive placement, the GPU view and recent events.

GPU view: a pod *holds* GPUs (``nvidia.com/gpu`` requests, else limits, summed over its containers) while it is
not Succeeded or Failed. The GPUs held by a JobSet that is not fully running are *idle while the gang waits*.
The *badput* of a restart is its recovery time (``recoveredSeconds``) times the GPUs the JobSet holds when all
its pods run (from the pod templates), in GPU-seconds.

Invariants: never writes to the cluster; never raises on malformed objects or annotations (an unreadable value
is shown as such); every error a user can cause is an :class:`InspectError` with a one-line message.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from api import constants as c
from api import extensions as x
from api import timefmt
from cache.client import ApiClient, resource_path
from cache.errors import ApiError, NotFound

__all__ = [
    "GPU_RESOURCE",
    "GetRow",
    "InspectError",
    "describe_model",
    "fetch_describe",
    "fetch_get",
    "render_describe",
    "render_get",
    "summarize",
]

JSON = dict[str, Any]
GPU_RESOURCE: Final = "nvidia.com/gpu"
NONE: Final = "—"
EVENTS_SHOWN: Final = 10


class InspectError(Exception):
    """A one-line message for the user (not found, API not served, cannot connect)."""


# --------------------------------------------------------------------------------------------- reading


def _obj(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _int(value: Any, default: int = 0) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return _obj(obj.get("metadata"))


def _labels(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return _obj(_meta(obj).get("labels"))


def _annotations(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return _obj(_meta(obj).get("annotations"))


def _when(value: Any) -> dt.datetime | None:
    return timefmt.parse_time(value) if isinstance(value, str) else None


def age(since: Any, now: dt.datetime) -> str:
    """kubectl's short durations: ``45s``, ``3m12s``, ``5h4m``, ``2d3h``; ``—`` when unknown."""
    when = _when(since) if not isinstance(since, dt.datetime) else since
    if when is None:
        return NONE
    return duration(max((now - when).total_seconds(), 0.0))


def duration(seconds: float) -> str:
    s = int(seconds)
    if s < 120:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60}s" if s % 60 else f"{s // 60}m"
    if s < 86400:
        return f"{s // 3600}h{(s % 3600) // 60}m" if (s % 3600) // 60 else f"{s // 3600}h"
    return f"{s // 86400}d{(s % 86400) // 3600}h" if (s % 86400) // 3600 else f"{s // 86400}d"


def _true_condition(obj: Mapping[str, Any], ctype: str) -> bool:
    return any(
        _obj(cond).get("type") == ctype and _obj(cond).get("status") == "True"
        for cond in _list(_obj(obj.get("status")).get("conditions"))
    )


def _rjobs(js: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [_obj(r) for r in _list(_obj(js.get("spec")).get("replicatedJobs"))]


def _job_spec(rjob: Mapping[str, Any]) -> Mapping[str, Any]:
    return _obj(_obj(rjob.get("template")).get("spec"))


def pods_per_job(job_spec: Mapping[str, Any]) -> int:
    """Pods a Job runs at once: ``parallelism`` (default 1) capped by ``completions``."""
    par = _int(job_spec.get("parallelism"), 1)
    comp = job_spec.get("completions")
    return min(par, _int(comp, par)) if comp is not None else par


def _quantity(value: Any) -> int:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, str):
        try:
            return int(float(value))
        except ValueError:
            return 0
    return 0


def pod_spec_gpus(pod_spec: Mapping[str, Any], resource: str = GPU_RESOURCE) -> int:
    """GPUs a pod spec asks for: requests (else limits, which extended resources default requests to)."""
    total = 0
    for ctr in _list(pod_spec.get("containers")):
        res = _obj(_obj(ctr).get("resources"))
        q = _obj(res.get("requests")).get(resource) or _obj(res.get("limits")).get(resource)
        total += _quantity(q)
    return total


def _terminal_pod(pod: Mapping[str, Any]) -> bool:
    return _obj(pod.get("status")).get("phase") in ("Succeeded", "Failed")


def gpus_held(pods: Iterable[Mapping[str, Any]], resource: str = GPU_RESOURCE) -> int:
    """GPUs of the pods that are not Succeeded or Failed."""
    return sum(pod_spec_gpus(_obj(p.get("spec")), resource) for p in pods if not _terminal_pod(p))


def gpus_when_running(js: Mapping[str, Any], resource: str = GPU_RESOURCE) -> int:
    """GPUs the JobSet holds when every pod of every Job runs (from its pod templates)."""
    total = 0
    for rjob in _rjobs(js):
        spec = _job_spec(rjob)
        per_pod = pod_spec_gpus(_obj(_obj(spec.get("template")).get("spec")), resource)
        total += _int(rjob.get("replicas"), 1) * pods_per_job(spec) * per_pod
    return total


def _history(js: Mapping[str, Any]) -> tuple[list[Mapping[str, Any]] | None, str | None]:
    """The restart-history records (``None`` when absent), or an error when the annotation is unreadable."""
    raw = _annotations(js).get(x.RESTART_HISTORY_KEY)
    if not isinstance(raw, str):
        return None, None
    try:
        value = json.loads(raw)
    except ValueError:
        return None, f"{x.RESTART_HISTORY_KEY} is not JSON"
    if not isinstance(value, list):
        return None, f"{x.RESTART_HISTORY_KEY} is not a JSON array"
    return [_obj(v) for v in value], None


def last_failure(js: Mapping[str, Any]) -> Mapping[str, Any] | None:
    raw = _annotations(js).get(x.LAST_FAILURE_KEY)
    if not isinstance(raw, str):
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    return value if isinstance(value, Mapping) else None


def cause(record: Mapping[str, Any] | None, *, short: bool = False) -> str:
    """A failure record in a few words: ``workers-1: container main exited 137 on node-3``."""
    if not record:
        return NONE
    job = record.get("job") or record.get("pod") or "?"
    what = ""
    code = record.get("exitCode")
    if record.get("container") and code is not None:
        what = f"container {record['container']} exited {code}"
    elif code is not None:
        what = f"exited {code}"
    if record.get("reason") and (not what or not short):
        what = f"{what}, {record['reason']}" if what else str(record["reason"])
    text = f"{job}: {what or 'failed'}"
    if not short:
        if record.get("pod"):
            text += f" (pod {record['pod']})"
        if record.get("node"):
            text += f" on {record['node']}"
    return text


# --------------------------------------------------------------------------------------------- get


@dataclass(frozen=True)
class GetRow:
    namespace: str
    name: str
    state: str
    restarts: int
    ready_jobs: int
    total_jobs: int
    age: str
    last_failure: str


def jobset_state(js: Mapping[str, Any]) -> str:
    """Completed, Failed, Suspended, Restarting, Running (every Job ready) or Starting."""
    status = _obj(js.get("status"))
    terminal = status.get("terminalState")
    if isinstance(terminal, str) and terminal:
        return terminal
    for ctype in (c.COND_COMPLETED, c.COND_FAILED, c.COND_SUSPENDED):
        if _true_condition(js, ctype):
            return ctype
    if _true_condition(js, c.COND_RESTARTING):
        return "Restarting"
    ready, total = ready_jobs(js)
    return "Running" if total and ready >= total else "Starting"


def ready_jobs(js: Mapping[str, Any]) -> tuple[int, int]:
    """(Jobs ready or succeeded, Jobs the spec asks for), from ``status.replicatedJobsStatus``."""
    total = sum(_int(r.get("replicas"), 1) for r in _rjobs(js))
    ready = sum(
        _int(_obj(s).get("ready")) + _int(_obj(s).get("succeeded"))
        for s in _list(_obj(js.get("status")).get("replicatedJobsStatus"))
    )
    return ready, total


def summarize(js: Mapping[str, Any], now: dt.datetime) -> GetRow:
    meta = _meta(js)
    ready, total = ready_jobs(js)
    return GetRow(
        namespace=str(meta.get("namespace", "")),
        name=str(meta.get("name", "")),
        state=jobset_state(js),
        restarts=_int(_obj(js.get("status")).get("restarts")),
        ready_jobs=ready,
        total_jobs=total,
        age=age(meta.get("creationTimestamp"), now),
        last_failure=cause(last_failure(js), short=True),
    )


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]
    out = []
    for row in (header, *rows):
        cells = [cell.ljust(widths[i]) for i, cell in enumerate(row)]
        out.append("   ".join(cells).rstrip())
    return out


def render_get(rows: Sequence[GetRow], *, all_namespaces: bool) -> str:
    header = ["NAME", "STATE", "RESTARTS", "READY", "AGE", "LAST FAILURE"]
    body = [[r.name, r.state, str(r.restarts), f"{r.ready_jobs}/{r.total_jobs}", r.age, r.last_failure] for r in rows]
    if all_namespaces:
        header = ["NAMESPACE", *header]
        body = [[r.namespace, *line] for r, line in zip(rows, body, strict=True)]
    return "\n".join(_table(header, body)) + "\n"


# --------------------------------------------------------------------------------------------- describe


@dataclass(frozen=True)
class JobLine:
    name: str
    state: str
    pods: str
    gpus: int
    domain: str = ""
    nodes: tuple[str, ...] = ()


@dataclass(frozen=True)
class RJobBlock:
    name: str
    replicas: int
    pods_per_job: int
    jobs: tuple[JobLine, ...]


@dataclass(frozen=True)
class RestartLine:
    attempt: str
    time: str
    cause: str
    action: str
    recovered: str
    badput: str


@dataclass(frozen=True)
class DescribeModel:
    name: str
    namespace: str
    state: str
    restarts: int
    ready_jobs: int
    total_jobs: int
    age: str
    rjobs: tuple[RJobBlock, ...]
    conditions: tuple[tuple[str, str, str, str, str], ...]
    last_failure: str
    restart_history: tuple[RestartLine, ...] | None
    history_error: str | None
    gpus_held: int
    gpus_idle: int
    gpus_running: int
    badput_total: float | None
    exclusive_topology: str | None
    events: tuple[tuple[str, str, str, str], ...]


def job_state(job: Mapping[str, Any]) -> str:
    for ctype in ("Complete", "Failed", "FailureTarget", "SuccessCriteriaMet", "Suspended"):
        if _true_condition(job, ctype):
            return {"FailureTarget": "Failing", "SuccessCriteriaMet": "Completing"}.get(ctype, ctype)
    if _meta(job).get("deletionTimestamp"):
        return "Deleting"
    status = _obj(job.get("status"))
    expected = pods_per_job(_obj(job.get("spec")))
    if _int(status.get("ready")) + _int(status.get("succeeded")) >= expected > 0:
        return "Ready"
    return "Active" if _int(status.get("active")) else "Pending"


def pod_counts(pods: Sequence[Mapping[str, Any]]) -> str:
    """``4 Running (4 Ready), 1 Pending, 1 Terminating``; ``no pods`` for none."""
    counts: dict[str, int] = {}
    ready = 0
    for pod in pods:
        status = _obj(pod.get("status"))
        phase = "Terminating" if _meta(pod).get("deletionTimestamp") else str(status.get("phase") or "Pending")
        counts[phase] = counts.get(phase, 0) + 1
        if phase == "Running" and any(
            _obj(cond).get("type") == "Ready" and _obj(cond).get("status") == "True"
            for cond in _list(status.get("conditions"))
        ):
            ready += 1
    if not counts:
        return "no pods"
    parts = []
    for phase in ("Running", "Pending", "Succeeded", "Failed", "Terminating", *sorted(counts)):
        if phase in counts:
            n = counts.pop(phase)
            parts.append(f"{n} {phase}" + (f" ({ready} Ready)" if phase == "Running" else ""))
    return ", ".join(parts)


def _owned_by(obj: Mapping[str, Any], uid: str) -> bool:
    refs = _list(_meta(obj).get("ownerReferences"))
    return not uid or any(_obj(r).get("uid") == uid for r in refs)


def describe_model(
    js: Mapping[str, Any],
    jobs: Sequence[Mapping[str, Any]],
    pods: Sequence[Mapping[str, Any]],
    nodes: Mapping[str, Mapping[str, Any]],
    events: Sequence[Mapping[str, Any]],
    now: dt.datetime,
) -> DescribeModel:
    """Everything ``describe`` shows, from the fetched objects (see the module docstring)."""
    row = summarize(js, now)
    uid = str(_meta(js).get("uid") or "")
    own_jobs = [j for j in jobs if _owned_by(j, uid)]
    job_uids = {str(_meta(j).get("uid")) for j in own_jobs}
    pods_by_job: dict[str, list[Mapping[str, Any]]] = {}
    for pod in pods:
        for ref in _list(_meta(pod).get("ownerReferences")):
            if _obj(ref).get("uid") in job_uids:
                pods_by_job.setdefault(str(_obj(ref).get("name")), []).append(pod)
    topology = _annotations(js).get(c.EXCLUSIVE_TOPOLOGY_KEY)
    topology = topology if isinstance(topology, str) and topology else None
    blocks = []
    for rjob in _rjobs(js):
        rname = str(rjob.get("name", ""))
        lines = []
        for job in sorted(
            (j for j in own_jobs if _labels(j).get(c.REPLICATED_JOB_NAME_KEY) == rname),
            key=lambda j: (_int_of(_labels(j).get(c.JOB_INDEX_KEY)), str(_meta(j).get("name"))),
        ):
            jname = str(_meta(job).get("name", ""))
            jpods = pods_by_job.get(jname, [])
            node_names = tuple(sorted({str(_obj(p.get("spec")).get("nodeName")) for p in jpods} - {"None", ""}))
            domain = ""
            if topology is not None:
                domains = sorted({str(_labels(nodes.get(n, {})).get(topology, "?")) for n in node_names})
                domain = ",".join(domains) if domains else "(unplaced)"
            lines.append(JobLine(jname, job_state(job), pod_counts(jpods), gpus_held(jpods), domain, node_names))
        blocks.append(RJobBlock(rname, _int(rjob.get("replicas"), 1), pods_per_job(_job_spec(rjob)), tuple(lines)))
    conditions = tuple(
        (
            str(cond.get("type", "")),
            str(cond.get("status", "")),
            str(cond.get("reason", "")),
            age(cond.get("lastTransitionTime"), now),
            str(cond.get("message", "")),
        )
        for cond in (_obj(v) for v in _list(_obj(js.get("status")).get("conditions")))
    )
    own_pods = [p for ps in pods_by_job.values() for p in ps]
    held = gpus_held(own_pods)
    running_gpus = gpus_when_running(js)
    idle = held if row.state not in ("Running", "Completed", "Failed") else 0
    history, history_error = _history(js)
    restart_lines: tuple[RestartLine, ...] | None = None
    badput_total: float | None = None
    if history is not None:
        entries = []
        for record in history:
            recovered = record.get("recoveredSeconds")
            seconds = (
                float(recovered) if isinstance(recovered, int | float) and not isinstance(recovered, bool) else None
            )
            badput = NONE
            if seconds is not None:
                badput = f"{seconds * running_gpus:g}"
                badput_total = (badput_total or 0.0) + seconds * running_gpus
            entries.append(
                RestartLine(
                    attempt=str(record.get("restartAttempt", NONE)),
                    time=str(record.get("time") or NONE),
                    cause=cause(record),
                    action=str(record.get("action") or NONE),
                    recovered=NONE if seconds is None else f"{seconds:g}s",
                    badput=badput,
                )
            )
        restart_lines = tuple(entries)
    ours = [_obj(e) for e in events]
    if uid:
        ours = [e for e in ours if _obj(e.get("involvedObject")).get("uid") in (None, "", uid)]
    recent = sorted(ours, key=_event_time)[-EVENTS_SHOWN:]
    event_lines = tuple(
        (
            age(_event_time(e) or None, now),
            str(e.get("type", "")),
            str(e.get("reason", "")),
            str(e.get("message", "")).replace("\n", " ") + (f" (x{_event_count(e)})" if _event_count(e) > 1 else ""),
        )
        for e in recent
    )
    return DescribeModel(
        name=row.name,
        namespace=row.namespace,
        state=row.state,
        restarts=row.restarts,
        ready_jobs=row.ready_jobs,
        total_jobs=row.total_jobs,
        age=row.age,
        rjobs=tuple(blocks),
        conditions=conditions,
        last_failure=cause(last_failure(js)),
        restart_history=restart_lines,
        history_error=history_error,
        gpus_held=held,
        gpus_idle=idle,
        gpus_running=running_gpus,
        badput_total=badput_total,
        exclusive_topology=topology,
        events=event_lines,
    )


def _event_time(event: Mapping[str, Any]) -> str:
    """When the event last happened: ``series.lastObservedTime``, ``lastTimestamp``, ``eventTime`` or creation."""
    for value in (
        _obj(event.get("series")).get("lastObservedTime"),
        event.get("lastTimestamp"),
        event.get("eventTime"),
        _meta(event).get("creationTimestamp"),
    ):
        if isinstance(value, str) and value:
            return value
    return ""


def _event_count(event: Mapping[str, Any]) -> int:
    return max(_int(_obj(event.get("series")).get("count")), _int(event.get("count")), 1)


def _int_of(value: Any) -> int:
    return int(value) if isinstance(value, str) and value.isdigit() else 0


def _plural(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def render_describe(m: DescribeModel) -> str:
    out = [
        f"Name:          {m.name}",
        f"Namespace:     {m.namespace}",
        f"State:         {m.state}",
        f"Restarts:      {m.restarts}",
        f"Ready Jobs:    {m.ready_jobs}/{m.total_jobs}",
        f"Age:           {m.age}",
        f"Last failure:  {m.last_failure}",
        "GPUs:",
        f"  held:                     {m.gpus_held}",
        f"  idle while gang waits:    {m.gpus_idle}",
        f"  when running:             {m.gpus_running}",
        f"  badput (GPU-seconds):     {NONE if m.badput_total is None else f'{m.badput_total:g}'}",
        "Replicated Jobs:",
    ]
    for block in m.rjobs:
        jobs, pods = _plural(block.replicas, "Job"), _plural(block.pods_per_job, "pod")
        out.append(f"  {block.name}  ({jobs} x {pods} each)")
        if not block.jobs:
            out.append("    (no Jobs)")
        rows = [[j.name, j.state, j.pods, f"{j.gpus} GPUs" if j.gpus else ""] for j in block.jobs]
        out.extend("    " + line for line in (_table(["", "", "", ""], rows)[1:] if rows else []))
    out.append("Conditions:")
    if m.conditions:
        out.extend("  " + line for line in _table(["TYPE", "STATUS", "REASON", "AGE", "MESSAGE"], m.conditions))
    else:
        out.append(f"  {NONE}")
    out.append("Restart History:")
    if m.history_error is not None:
        out.append(f"  (unreadable: {m.history_error})")
    elif not m.restart_history:
        out.append(f"  {NONE}")
    else:
        rows = [[r.attempt, r.time, r.action, r.recovered, r.badput, r.cause] for r in m.restart_history]
        header = ["ATTEMPT", "TIME", "ACTION", "RECOVERED", "BADPUT GPU-s", "ROOT CAUSE"]
        out.extend("  " + line for line in _table(header, rows))
    if m.exclusive_topology is not None:
        out.append(f"Placement ({m.exclusive_topology}):")
        rows = [[j.name, j.domain, ", ".join(j.nodes) or NONE] for b in m.rjobs for j in b.jobs]
        out.extend("  " + line for line in _table(["JOB", "DOMAIN", "NODES"], rows))
    out.append("Events:")
    if m.events:
        out.extend("  " + line for line in _table(["AGE", "TYPE", "REASON", "MESSAGE"], m.events))
    else:
        out.append(f"  {NONE}")
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------------------------- fetching


def _api_error(err: ApiError, what: str) -> InspectError:
    if err.status == 0:
        return InspectError(f"cannot reach the API server: {err}")
    return InspectError(f"{what}: {err}")


async def _items(client: ApiClient, path: str, params: Mapping[str, str] | None = None) -> list[JSON]:
    body = await client.get(path, params)
    return [i for i in _list(body.get("items")) if isinstance(i, dict)]


async def fetch_get(client: ApiClient, namespace: str | None, now: dt.datetime) -> list[GetRow]:
    """The rows of ``get`` (all namespaces when ``namespace`` is None), sorted by namespace and name."""
    try:
        items = await _items(client, resource_path(c.GROUP, c.VERSION, c.PLURAL, namespace))
    except NotFound:
        raise InspectError(f"the cluster does not serve {c.PLURAL}.{c.GROUP} (is the JobSet CRD installed?)") from None
    except ApiError as err:
        raise _api_error(err, "cannot list JobSets") from None
    rows = [summarize(js, now) for js in items]
    return sorted(rows, key=lambda r: (r.namespace, r.name))


async def fetch_describe(client: ApiClient, namespace: str, name: str, now: dt.datetime) -> DescribeModel:
    """The model of ``describe`` for ``namespace/name``."""
    try:
        js = await client.get(resource_path(c.GROUP, c.VERSION, c.PLURAL, namespace, name))
    except NotFound:
        raise InspectError(f'jobset "{name}" not found in namespace "{namespace}"') from None
    except ApiError as err:
        raise _api_error(err, f'cannot read jobset "{name}"') from None
    selector = {"labelSelector": f"{c.JOBSET_NAME_KEY}={name}"}
    try:
        jobs = await _items(client, resource_path("batch", "v1", "jobs", namespace), selector)
        pods = await _items(client, resource_path("", "v1", "pods", namespace), selector)
        events = await _items(
            client,
            resource_path("", "v1", "events", namespace),
            {"fieldSelector": f"involvedObject.kind={c.KIND},involvedObject.name={name}"},
        )
    except ApiError as err:
        raise _api_error(err, f'cannot read the children of jobset "{name}"') from None
    nodes: dict[str, JSON] = {}
    if _annotations(js).get(c.EXCLUSIVE_TOPOLOGY_KEY):
        for node_name in sorted({str(_obj(p.get("spec")).get("nodeName") or "") for p in pods} - {""}):
            try:
                nodes[node_name] = await client.get(resource_path("", "v1", "nodes", name=node_name))
            except ApiError:
                continue  # a node gone or unreadable shows as domain "?"
    return describe_model(js, jobs, pods, nodes, events, now)


async def run_inspect(
    command: str,
    *,
    prog: str,
    kubeconfig: str | None,
    namespace: str | None,
    all_namespaces: bool = False,
    name: str | None = None,
    out: Any = None,
    err: Any = None,
) -> int:
    """``get`` or ``describe``: print the view, or a one-line error (exit 2: configuration, 1: the cluster)."""
    import sys

    from cache.kubeconfig import KubeconfigError, load_cluster_config

    stdout = out if out is not None else sys.stdout
    stderr = err if err is not None else sys.stderr
    try:
        config = await load_cluster_config(kubeconfig)
    except KubeconfigError as exc:
        print(f"{prog}: {exc}", file=stderr)
        return 2
    ns = None if all_namespaces else (namespace or config.namespace or "default")
    now = dt.datetime.now(dt.UTC)
    try:
        async with ApiClient(config, max_retries=1, request_timeout=20.0) as client:
            if command == "get":
                rows = await fetch_get(client, ns, now)
                if not rows:
                    where = "any namespace" if ns is None else f'namespace "{ns}"'
                    print(f"No JobSets found in {where}.", file=stderr)
                    return 0
                stdout.write(render_get(rows, all_namespaces=ns is None))
            else:
                assert name is not None
                stdout.write(render_describe(await fetch_describe(client, ns or "default", name, now)))
    except InspectError as exc:
        print(f"{prog}: {exc}", file=stderr)
        return 1
    except ApiError as exc:
        print(f"{prog}: {_api_error(exc, 'request failed')}", file=stderr)
        return 1
    return 0
