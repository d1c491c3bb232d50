"""The simulated kubelet's decision: (pod, its node's health, now) -> new pod status and next wake-up.

Pure, no I/O. The pod annotation contract (``docs``: ``docs/design/simulated-cluster.md``):

- ``sim.pyjobset.io/start-seconds`` (default 0): seconds from the kubelet first seeing the bound pod
  (``status.startTime``) until its containers run and the pod is Ready.
- ``sim.pyjobset.io/run-seconds`` (unset: run until told): seconds each container run lasts.
- ``sim.pyjobset.io/exit-code`` (default 0): the exit code after run-seconds; 0 -> Succeeded, else Failed
  (with restartPolicy OnFailure a non-zero exit restarts the container after CrashLoopBackOff instead).
- ``sim.pyjobset.io/fail-when``: equality selector over the pod's own labels; when it matches, the exit code
  after run-seconds is 1.
- ``sim.pyjobset.io/exit-now``: containers terminate at once with this exit code and the pod ends (no
  restart, whatever the restartPolicy).

A pod being deleted is killed (exit 137). A pod on a failed node fails with a ``DisruptionTarget`` condition,
as after an eviction by the taint manager; a pod bound to a node that no longer exists fails the same way with
reason ``DeletionByPodGC`` (the pod garbage collector's doing) and is then deleted. Terminal pods report
``terminated`` container states (exit code, reason Completed or Error, timestamps); running pods report
``ready`` and ``started``. Containers with startup/readiness probes turn ready only after the probes'
``initialDelaySeconds`` (``dependsOn: Ready`` flows depend on that).

Invariant: ``decide`` returns ``None`` for the status when nothing changes, so feeding our own writes back in
converges; the returned wake-up is the next instant at which the answer would change on its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kubesim.cluster.selectors import match_equality_selector, parse_equality_selector
from kubesim.util.jsonutil import clone
from kubesim.util.timefmt import parse_rfc3339, rfc3339

JSON = dict[str, Any]

START_SECONDS = "sim.pyjobset.io/start-seconds"
RUN_SECONDS = "sim.pyjobset.io/run-seconds"
EXIT_CODE = "sim.pyjobset.io/exit-code"
FAIL_WHEN = "sim.pyjobset.io/fail-when"
EXIT_NOW = "sim.pyjobset.io/exit-now"
KILLED_EXIT_CODE = 137
CRASH_BACKOFF_BASE = 10.0
CRASH_BACKOFF_CAP = 300.0


@dataclass(frozen=True, slots=True)
class KubeletDecision:
    status: JSON | None
    wake_at: float | None


def _float(annotations: dict[str, str], key: str) -> float | None:
    raw = annotations.get(key)
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError:
        return None
    return value if value >= 0 else None


def _int(annotations: dict[str, str], key: str) -> int | None:
    raw = annotations.get(key)
    if raw is None:
        return None
    try:
        return int(raw.strip())
    except ValueError:
        return None


def planned_exit_code(pod: JSON) -> int:
    md = pod.get("metadata") or {}
    annotations = md.get("annotations") or {}
    fail_when = annotations.get(FAIL_WHEN)
    if fail_when:
        try:
            if match_equality_selector(parse_equality_selector(fail_when), md.get("labels") or {}):
                return 1
        except ValueError:
            pass
    code = _int(annotations, EXIT_CODE)
    return 0 if code is None else code


def _pod_ip(pod: JSON) -> str:
    h = abs(hash(pod.get("metadata", {}).get("uid", ""))) % (250 * 250)
    return f"10.{64 + h // 62500 % 64}.{h // 250 % 250}.{h % 250 + 1}"


def probe_delay(pod: JSON) -> float:
    """Seconds after a container starts until its startup and readiness probes first pass."""
    delay = 0.0
    for c in (pod.get("spec") or {}).get("containers") or []:
        total = 0.0
        for probe in ("startupProbe", "readinessProbe"):
            if c.get(probe) is not None:
                total += float(c[probe].get("initialDelaySeconds") or 0)
        delay = max(delay, total)
    return delay


def _container_names(pod: JSON) -> list[tuple[str, str]]:
    sp = pod.get("spec") or {}
    return [(c.get("name", ""), c.get("image", "")) for c in sp.get("containers") or []]


def _set_condition(st: JSON, ctype: str, cstatus: str, ts: str, reason: str | None = None) -> None:
    conds: list[JSON] = st.setdefault("conditions", [])
    for cond in conds:
        if cond.get("type") == ctype:
            if cond.get("status") != cstatus:
                cond["status"] = cstatus
                cond["lastTransitionTime"] = ts
            if reason:
                cond["reason"] = reason
            else:
                cond.pop("reason", None)
            return
    new: JSON = {"type": ctype, "status": cstatus, "lastProbeTime": None, "lastTransitionTime": ts}
    if reason:
        new["reason"] = reason
    conds.append(new)


def _running_statuses(pod: JSON, started: str, restarts: dict[str, int], last: dict[str, JSON]) -> list[JSON]:
    out = []
    for name, image in _container_names(pod):
        cs: JSON = {
            "name": name,
            "image": image,
            "imageID": f"sim://{image}",
            "containerID": f"sim://{name}-{restarts.get(name, 0)}",
            "ready": True,
            "started": True,
            "restartCount": restarts.get(name, 0),
            "state": {"running": {"startedAt": started}},
            "lastState": last.get(name, {}),
        }
        out.append(cs)
    return out


def _terminated(code: int, started: str | None, finished: str, container_id: str) -> JSON:
    term: JSON = {
        "exitCode": code,
        "reason": "Completed" if code == 0 else "Error",
        "finishedAt": finished,
        "containerID": container_id,
    }
    if started:
        term["startedAt"] = started
    return term


def decide(
    pod: JSON, *, node_failed: bool, now: float, host_ip: str = "10.128.0.1", node_gone: bool = False
) -> KubeletDecision:
    """What the kubelet of a bound pod's node does next."""
    md = pod.get("metadata") or {}
    sp = pod.get("spec") or {}
    st0 = pod.get("status") or {}
    phase = st0.get("phase") or "Pending"
    if not sp.get("nodeName") or phase in ("Succeeded", "Failed"):
        return KubeletDecision(None, None)
    annotations: dict[str, str] = md.get("annotations") or {}
    ts = rfc3339(now)
    st = clone(st0)

    if node_failed or node_gone:
        reason, message = (
            ("DeletionByPodGC", "PodGC: node no longer exists")
            if node_gone
            else ("DeletionByTaintManager", "Taint manager: deleting due to NoExecute taint")
        )
        _set_condition(st, "DisruptionTarget", "True", ts, reason)
        for cond in st["conditions"]:
            if cond["type"] == "DisruptionTarget":
                cond["message"] = message
        return KubeletDecision(_finish(pod, st, KILLED_EXIT_CODE, ts), None)
    if md.get("deletionTimestamp"):
        return KubeletDecision(_finish(pod, st, KILLED_EXIT_CODE, ts), None)
    exit_now = _int(annotations, EXIT_NOW)
    if exit_now is not None:
        return KubeletDecision(_finish(pod, st, exit_now, ts), None)

    start_seconds = _float(annotations, START_SECONDS) or 0.0
    run_seconds = _float(annotations, RUN_SECONDS)
    if not st.get("startTime"):
        st["startTime"] = ts
        st["hostIP"] = host_ip
        st["hostIPs"] = [{"ip": host_ip}]
        _set_condition(st, "PodReadyToStartContainers", "True", ts)
        _set_condition(st, "Initialized", "True", ts)
    seen = parse_rfc3339(st["startTime"]) or now
    running_at = seen + start_seconds
    containers = st.get("containerStatuses") or []
    current = containers[0] if containers else None
    state = (current or {}).get("state") or {}

    if ("running" not in state and "waiting" not in state) or (
        "waiting" in state and state["waiting"].get("reason") == "ContainerCreating"
    ):
        if now < running_at:
            if current is None:
                _enter_waiting(pod, st, ts, "ContainerCreating")
                return KubeletDecision(st, running_at)
            return KubeletDecision(None, running_at)
        return _start_running(pod, st, ts, {}, {}, now, run_seconds)

    if "waiting" in state:  # CrashLoopBackOff
        restarts = {c["name"]: int(c.get("restartCount", 0)) for c in containers}
        finished = parse_rfc3339(((current or {}).get("lastState") or {}).get("terminated", {}).get("finishedAt"))
        resume_at = (finished or now) + _crash_backoff(max(restarts.values(), default=1))
        if now < resume_at:
            return KubeletDecision(None, resume_at)
        last = {c["name"]: c.get("lastState") or {} for c in containers}
        return _start_running(pod, st, ts, restarts, last, now, run_seconds)

    started_at = parse_rfc3339(state["running"].get("startedAt")) or now
    exit_at = None if run_seconds is None else started_at + run_seconds
    if exit_at is None or now < exit_at:
        ready_at = started_at + probe_delay(pod)
        if not all(c.get("ready") for c in containers):
            if now < ready_at:
                return KubeletDecision(None, ready_at if exit_at is None else min(ready_at, exit_at))
            for cs in containers:
                cs["ready"] = True
            _set_condition(st, "ContainersReady", "True", ts)
            _set_condition(st, "Ready", "True", ts)
            return KubeletDecision(st, exit_at)
        return KubeletDecision(None, exit_at)
    code = planned_exit_code(pod)
    policy = sp.get("restartPolicy") or "Always"
    if policy == "Always" or (policy == "OnFailure" and code != 0):
        new = []
        for c in containers:
            restarted = dict(c)
            restarted["lastState"] = {
                "terminated": _terminated(
                    code, state["running"].get("startedAt"), rfc3339(exit_at), c.get("containerID", "")
                )
            }
            restarted["restartCount"] = int(c.get("restartCount", 0)) + 1
            restarted["state"] = {
                "waiting": {"reason": "CrashLoopBackOff", "message": "back-off restarting failed container"}
            }
            restarted["ready"] = False
            restarted["started"] = False
            new.append(restarted)
        st["containerStatuses"] = new
        _set_condition(st, "ContainersReady", "False", ts, "ContainersNotReady")
        _set_condition(st, "Ready", "False", ts, "ContainersNotReady")
        return KubeletDecision(st, exit_at + _crash_backoff(max(int(c["restartCount"]) for c in new)))
    return KubeletDecision(_finish(pod, st, code, rfc3339(exit_at)), None)


def _crash_backoff(restarts: int) -> float:
    return float(min(CRASH_BACKOFF_CAP, CRASH_BACKOFF_BASE * 2 ** max(0, min(restarts - 1, 20))))


def _enter_waiting(pod: JSON, st: JSON, ts: str, reason: str) -> None:
    st["containerStatuses"] = [
        {
            "name": name,
            "image": image,
            "imageID": "",
            "ready": False,
            "started": False,
            "restartCount": 0,
            "state": {"waiting": {"reason": reason}},
            "lastState": {},
        }
        for name, image in _container_names(pod)
    ]
    _set_condition(st, "ContainersReady", "False", ts, "ContainersNotReady")
    _set_condition(st, "Ready", "False", ts, "ContainersNotReady")
    st["phase"] = "Pending"


def _start_running(
    pod: JSON,
    st: JSON,
    ts: str,
    restarts: dict[str, int],
    last: dict[str, JSON],
    now: float,
    run_seconds: float | None,
) -> KubeletDecision:
    st["phase"] = "Running"
    st.setdefault("podIP", _pod_ip(pod))
    st.setdefault("podIPs", [{"ip": st["podIP"]}])
    st["containerStatuses"] = _running_statuses(pod, ts, restarts, last)
    init = (pod.get("spec") or {}).get("initContainers") or []
    if init and not st.get("initContainerStatuses"):
        # Regular init containers ran to completion; native sidecars (restartPolicy Always) keep running.
        st["initContainerStatuses"] = [
            {
                "name": c.get("name", ""),
                "image": c.get("image", ""),
                "imageID": "",
                "ready": True,
                "restartCount": 0,
                **(
                    {"started": True, "state": {"running": {"startedAt": ts}}}
                    if c.get("restartPolicy") == "Always"
                    else {"state": {"terminated": _terminated(0, ts, ts, f"sim://{c.get('name', '')}-init")}}
                ),
            }
            for c in init
        ]
    delay = probe_delay(pod)
    exit_at = None if run_seconds is None else now + run_seconds
    if delay > 0:
        for cs in st["containerStatuses"]:
            cs["ready"] = False
        _set_condition(st, "ContainersReady", "False", ts, "ContainersNotReady")
        _set_condition(st, "Ready", "False", ts, "ContainersNotReady")
        ready_at = now + delay
        return KubeletDecision(st, ready_at if exit_at is None else min(ready_at, exit_at))
    _set_condition(st, "ContainersReady", "True", ts)
    _set_condition(st, "Ready", "True", ts)
    return KubeletDecision(st, exit_at)


def _finish(pod: JSON, st: JSON, code: int, finished: str) -> JSON:
    """Terminate every container with ``code``; the pod turns Succeeded (all 0) or Failed."""
    statuses = st.get("containerStatuses") or []
    by_name = {c.get("name"): c for c in statuses}
    out = []
    for name, image in _container_names(pod):
        prev = by_name.get(name) or {}
        running = (prev.get("state") or {}).get("running") or {}
        cid = prev.get("containerID") or f"sim://{name}-0"
        out.append(
            {
                "name": name,
                "image": image,
                "imageID": prev.get("imageID", ""),
                "containerID": cid,
                "ready": False,
                "started": False,
                "restartCount": int(prev.get("restartCount", 0)),
                "state": {"terminated": _terminated(code, running.get("startedAt"), finished, cid)},
                "lastState": prev.get("lastState") or {},
            }
        )
    st["containerStatuses"] = out
    for ics in st.get("initContainerStatuses") or []:
        running = (ics.get("state") or {}).get("running")
        if running is not None:  # a sidecar is stopped once the main containers are done
            ics["state"] = {
                "terminated": _terminated(0, running.get("startedAt"), finished, ics.get("containerID", ""))
            }
            ics["ready"] = False
            ics["started"] = False
    st["phase"] = "Succeeded" if code == 0 else "Failed"
    reason = "PodCompleted" if code == 0 else "PodFailed"
    _set_condition(st, "ContainersReady", "False", finished, reason)
    _set_condition(st, "Ready", "False", finished, reason)
    _set_condition(st, "PodReadyToStartContainers", "False", finished)
    return st
