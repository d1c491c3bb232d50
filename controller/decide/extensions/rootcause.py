"""Root-cause records: why did the JobSet restart or fail? (``pyjobset.io/last-failure`` and ``restart-history``).

Role: pure functions over plain JSON. ``build_record`` picks, among the pods of the first failed Job, the pod
that failed first and inside it the container responsible (the earliest non-zero termination), or, for a pod
that failed with nothing but ``status.reason`` (``UnexpectedAdmissionError``, ``Evicted`` ...), that reason;
``merge_history`` appends a record to the history (at most ``HISTORY_LIMIT``, oldest first); ``with_recovered``
fills in ``recoveredSeconds``; ``event_suffix`` is what the restart/failure event's message gains.

Invariants: the record always has exactly the keys ``job, pod, container, exitCode, reason, node, time,
restartAttempt, action, rule`` (``null`` where unknown); history elements add ``recoveredSeconds`` only once
known; an unreadable stored history is replaced, never an error; re-recording the same restart attempt replaces
the last element instead of appending a duplicate.
"""

from __future__ import annotations

import json
from typing import Any

from api import extensions as x
from api.jsontypes import JSON
from api.plan import RootCause

_FAR = "9999-12-31T23:59:59Z"


def _failure_of(pod: JSON) -> tuple[str, str | None, int | None, str | None]:
    """(time, container, exit code, reason) of one failed pod."""
    st = pod.get("status") or {}
    best: tuple[str, str | None, int | None, str | None] | None = None
    for cs in (*(st.get("initContainerStatuses") or ()), *(st.get("containerStatuses") or ())):
        term = (cs.get("state") or {}).get("terminated") or {}
        code = term.get("exitCode")
        if not isinstance(code, int) or code == 0:
            continue
        when = str(term.get("finishedAt") or _FAR)
        if best is None or when < best[0]:
            best = (when, str(cs.get("name") or ""), code, term.get("reason"))
    if best is not None:
        when, container, code, reason = best
        return when, container, code, st.get("reason") or reason
    times = [str(cnd.get("lastTransitionTime")) for cnd in st.get("conditions") or () if cnd.get("lastTransitionTime")]
    when = (
        max(times)
        if times
        else str(st.get("startTime") or (pod.get("metadata") or {}).get("creationTimestamp") or _FAR)
    )
    return when, None, None, st.get("reason")


def build_record(request: RootCause, pods: list[JSON]) -> dict[str, Any]:
    """The ``last-failure`` object for ``request`` given the pods of its Job (possibly none any more)."""
    chosen: tuple[str, str, JSON, str | None, int | None, str | None] | None = None
    for pod in pods:
        if (pod.get("status") or {}).get("phase") != "Failed":
            continue
        when, container, code, reason = _failure_of(pod)
        name = str((pod.get("metadata") or {}).get("name") or "")
        if chosen is None or (when, name) < (chosen[0], chosen[1]):
            chosen = (when, name, pod, container, code, reason)
    record: dict[str, Any] = {
        "job": request.job,
        "pod": None,
        "container": None,
        "exitCode": None,
        "reason": request.reason or None,
        "node": None,
        "time": request.time or None,
        "restartAttempt": request.restart_attempt,
        "action": request.action,
        "rule": request.rule or None,
    }
    if chosen is not None:
        when, name, pod, container, code, reason = chosen
        record.update(
            pod=name,
            container=container,
            exitCode=code,
            reason=reason or request.reason or None,
            node=(pod.get("spec") or {}).get("nodeName") or None,
            time=when if when != _FAR else request.time or None,
        )
    return record


def _load(raw: str | None) -> list[dict[str, Any]]:
    if not raw:
        return []
    try:
        data = json.loads(raw)
    except ValueError:
        return []
    return [e for e in data if isinstance(e, dict)] if isinstance(data, list) else []


def _dump(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def encode_record(record: dict[str, Any]) -> str:
    return _dump(record)


def merge_history(raw: str | None, record: dict[str, Any]) -> str:
    history = _load(raw)
    if history and history[-1].get("restartAttempt") == record["restartAttempt"]:
        history[-1] = dict(record)
    else:
        history.append(dict(record))
    return _dump(history[-x.HISTORY_LIMIT :])


def with_recovered(raw: str, restart_attempt: int, seconds: float) -> str | None:
    """The history with ``recoveredSeconds`` on the element of ``restart_attempt``; None when nothing changes."""
    history = _load(raw)
    if not history or history[-1].get("restartAttempt") != restart_attempt or "recoveredSeconds" in history[-1]:
        return None
    history[-1]["recoveredSeconds"] = round(seconds, 3)
    return _dump(history)


def event_suffix(record: dict[str, Any]) -> str:
    """`` (root cause: pod P, container C, exit code 1, node N, at T)``; "" when no pod is known."""
    if record.get("pod") is None:
        return ""
    parts = [f"pod {record['pod']}"]
    if record.get("container") is not None:
        parts.append(f"container {record['container']}")
    if record.get("exitCode") is not None:
        parts.append(f"exit code {record['exitCode']}")
    if record.get("reason"):
        parts.append(f"reason {record['reason']}")
    if record.get("node"):
        parts.append(f"node {record['node']}")
    if record.get("time"):
        parts.append(f"at {record['time']}")
    return f" (root cause: {', '.join(parts)})"
