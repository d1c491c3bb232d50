"""Pure helpers of the simulated Job controller: pod classification, indexes, failure policy, pod building.

Everything here reads plain JSON dicts (as stored by the simulated API server) and never mutates them.
Behaviour follows the batch/v1 Job controller of Kubernetes 1.33 (learned from its documentation and
source, not copied): interval strings like ``"0-2,5"``; the pod failure policy matches rules in order, exit
codes only of terminated non-zero containers (regular, then init), conditions by type and status; FailJob
messages name the container/condition, the rule action and its index.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from kubesim.util.jsonutil import clone
from kubesim.util.timefmt import parse_rfc3339

JSON = dict[str, Any]

TRACKING_FINALIZER = "batch.kubernetes.io/job-tracking"
COMPLETION_INDEX_KEY = "batch.kubernetes.io/job-completion-index"
INDEX_FAILURE_COUNT_KEY = "batch.kubernetes.io/job-index-failure-count"
INDEX_IGNORED_FAILURE_COUNT_KEY = "batch.kubernetes.io/job-index-ignored-failure-count"
CONTROLLER_UID_KEY = "batch.kubernetes.io/controller-uid"
JOB_NAME_KEY = "batch.kubernetes.io/job-name"
LEGACY_CONTROLLER_UID_KEY = "controller-uid"
LEGACY_JOB_NAME_KEY = "job-name"
MAX_INT32 = 2_147_483_647


# ---------------------------------------------------------------- small accessors


def meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return obj.get("metadata") or {}


def spec(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return obj.get("spec") or {}


def status(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return obj.get("status") or {}


def phase(pod: Mapping[str, Any]) -> str:
    return str(status(pod).get("phase") or "Pending")


def is_terminal(pod: Mapping[str, Any]) -> bool:
    return phase(pod) in ("Succeeded", "Failed")


def is_deleting(obj: Mapping[str, Any]) -> bool:
    return bool(meta(obj).get("deletionTimestamp"))


def has_tracking_finalizer(pod: Mapping[str, Any]) -> bool:
    return TRACKING_FINALIZER in (meta(pod).get("finalizers") or [])


def pod_condition(pod: Mapping[str, Any], ctype: str) -> Mapping[str, Any] | None:
    for cond in status(pod).get("conditions") or []:
        if cond.get("type") == ctype:
            return dict(cond)
    return None


def is_pod_ready(pod: Mapping[str, Any]) -> bool:
    cond = pod_condition(pod, "Ready")
    return cond is not None and cond.get("status") == "True"


def is_active(pod: Mapping[str, Any]) -> bool:
    """``controller.FilterActivePods``: not terminal and not being deleted."""
    return not is_terminal(pod) and not is_deleting(pod)


def is_terminating(pod: Mapping[str, Any]) -> bool:
    return is_deleting(pod) and not is_terminal(pod)


def completion_index(pod: Mapping[str, Any]) -> int:
    """The pod's completion index from its annotation (the label is ignored), or -1."""
    raw = (meta(pod).get("annotations") or {}).get(COMPLETION_INDEX_KEY)
    if raw is None or not raw.isdigit() or (len(raw) > 1 and raw[0] == "0"):
        return -1
    value = int(raw)
    return value if value <= MAX_INT32 else -1


def annotation_int(pod: Mapping[str, Any], key: str) -> int:
    raw = (meta(pod).get("annotations") or {}).get(key)
    try:
        return max(0, int(raw)) if raw is not None else 0
    except ValueError:
        return 0


def finished_time(pod: Mapping[str, Any], default: float) -> float:
    """When a pod finished: the latest container ``finishedAt``, else its deletion time, else ``default``."""
    best: float | None = None
    st = status(pod)
    for cs in [*(st.get("containerStatuses") or []), *(st.get("initContainerStatuses") or [])]:
        term = (cs.get("state") or {}).get("terminated") or {}
        ts = parse_rfc3339(term.get("finishedAt"))
        if ts is not None and (best is None or ts > best):
            best = ts
    if best is None:
        deleted = parse_rfc3339(meta(pod).get("deletionTimestamp"))
        if deleted is not None:  # the deletion was requested a grace period before deletionTimestamp
            best = deleted - float(meta(pod).get("deletionGracePeriodSeconds") or 0)
    return default if best is None else best


# ---------------------------------------------------------------- interval strings


def parse_indexes(text: str | None, completions: int) -> set[int]:
    """Parse ``"0-2,5"``; entries at or beyond ``completions`` and garbage are dropped."""
    out: set[int] = set()
    if not text:
        return out
    for part in text.split(","):
        lo_s, _, hi_s = part.partition("-")
        try:
            lo = int(lo_s)
            hi = int(hi_s) if hi_s else lo
        except ValueError:
            continue
        out.update(range(max(lo, 0), min(hi, completions - 1) + 1))
    return out


def format_indexes(indexes: Iterable[int]) -> str:
    """``"0-2,4,7,8"``: runs of three or more as ranges, a pair as two entries (as the Job controller)."""
    ordered = sorted(set(indexes))
    parts: list[str] = []
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        if j - i >= 2:
            parts.append(f"{ordered[i]}-{ordered[j]}")
        else:
            parts.extend(str(x) for x in ordered[i : j + 1])
        i = j + 1
    return ",".join(parts)


# ---------------------------------------------------------------- pod failure policy


def _terminated_exit(cs: Mapping[str, Any]) -> int | None:
    term = (cs.get("state") or {}).get("terminated")
    if term is None:
        return None
    return int(term.get("exitCode", 0))


def _match_exit_codes(pod: Mapping[str, Any], req: Mapping[str, Any]) -> tuple[str, int] | None:
    st = status(pod)
    want_name = req.get("containerName")
    values = list(req.get("values") or [])
    op = req.get("operator")
    for statuses in (st.get("containerStatuses") or [], st.get("initContainerStatuses") or []):
        for cs in statuses:
            code = _terminated_exit(cs)
            if code is None or code == 0:
                continue
            if want_name and want_name != cs.get("name"):
                continue
            if (op == "In" and code in values) or (op == "NotIn" and code not in values):
                return str(cs.get("name", "")), code
    return None


def _match_conditions(pod: Mapping[str, Any], patterns: list[Mapping[str, Any]]) -> str | None:
    for cond in status(pod).get("conditions") or []:
        for pat in patterns:
            if cond.get("type") == pat.get("type") and cond.get("status") == (pat.get("status") or "True"):
                return str(cond.get("type"))
    return None


def match_pod_failure_policy(
    policy: Mapping[str, Any] | None, pod: Mapping[str, Any]
) -> tuple[str | None, bool, str | None]:
    """(FailJob message or None, counts toward backoff?, matched action or None) for a failed pod."""
    if policy is None:
        return None, True, None
    ns, name = meta(pod).get("namespace", ""), meta(pod).get("name", "")
    for index, rule in enumerate(policy.get("rules") or []):
        action = rule.get("action")
        if rule.get("onExitCodes") is not None:
            hit = _match_exit_codes(pod, rule["onExitCodes"])
            if hit is None:
                continue
            message = (
                f"Container {hit[0]} for pod {ns}/{name} failed with exit code {hit[1]} "
                f"matching {action} rule at index {index}"
            )
        elif rule.get("onPodConditions") is not None:
            ctype = _match_conditions(pod, list(rule["onPodConditions"]))
            if ctype is None:
                continue
            message = f"Pod {ns}/{name} has condition {ctype} matching {action} rule at index {index}"
        else:
            continue
        if action == "Ignore":
            return None, False, action
        if action == "FailJob":
            return message, True, action
        if action in ("Count", "FailIndex"):
            return None, True, action
    return None, True, None


# ---------------------------------------------------------------- job spec reading (API defaults applied)


def completions_of(job: Mapping[str, Any]) -> int | None:
    sp = spec(job)
    if "completions" in sp and sp["completions"] is not None:
        return int(sp["completions"])
    if sp.get("parallelism") is None:
        return 1
    return None


def parallelism_of(job: Mapping[str, Any]) -> int:
    value = spec(job).get("parallelism")
    return 1 if value is None else int(value)


def backoff_limit_of(job: Mapping[str, Any]) -> int:
    sp = spec(job)
    if sp.get("backoffLimit") is not None:
        return int(sp["backoffLimit"])
    return MAX_INT32 if sp.get("backoffLimitPerIndex") is not None else 6


def is_indexed(job: Mapping[str, Any]) -> bool:
    return spec(job).get("completionMode") == "Indexed"


def is_suspended(job: Mapping[str, Any]) -> bool:
    return bool(spec(job).get("suspend"))


def has_backoff_limit_per_index(job: Mapping[str, Any]) -> bool:
    return is_indexed(job) and spec(job).get("backoffLimitPerIndex") is not None


def only_replace_failed(job: Mapping[str, Any]) -> bool:
    sp = spec(job)
    return sp.get("podReplacementPolicy") == "Failed" or sp.get("podFailurePolicy") is not None


def is_pod_failed(pod: Mapping[str, Any], job: Mapping[str, Any]) -> bool:
    if phase(pod) == "Failed":
        return True
    if only_replace_failed(job):
        return False
    return is_deleting(pod) and phase(pod) != "Succeeded"


def job_condition(job: Mapping[str, Any], ctype: str) -> Mapping[str, Any] | None:
    for cond in status(job).get("conditions") or []:
        if cond.get("type") == ctype:
            return dict(cond)
    return None


def is_job_finished(job: Mapping[str, Any]) -> bool:
    for ctype in ("Complete", "Failed"):
        cond = job_condition(job, ctype)
        if cond is not None and cond.get("status") == "True":
            return True
    return False


def default_job(job: JSON) -> JSON:
    """Apply the API server's batch/v1 Job defaults to a Job being created (returns a new dict).

    Offered to the simulated API server: parallelism, completions, backoffLimit, completionMode, suspend,
    manualSelector, podReplacementPolicy, the generated selector and the template labels it implies.
    """
    out = clone(job)
    sp = out.setdefault("spec", {})
    if sp.get("completions") is None and sp.get("parallelism") is None:
        sp["completions"] = 1
        sp["parallelism"] = 1
    if sp.get("parallelism") is None:
        sp["parallelism"] = 1
    if sp.get("backoffLimit") is None:
        sp["backoffLimit"] = MAX_INT32 if sp.get("backoffLimitPerIndex") is not None else 6
    sp.setdefault("completionMode", "NonIndexed")
    sp.setdefault("suspend", False)
    if sp.get("podReplacementPolicy") is None:
        sp["podReplacementPolicy"] = "Failed" if sp.get("podFailurePolicy") is not None else "TerminatingOrFailed"
    uid = meta(out).get("uid", "")
    name = meta(out).get("name", "")
    if not sp.get("manualSelector") and uid:
        sp["selector"] = {"matchLabels": {CONTROLLER_UID_KEY: uid}}
        labels = sp.setdefault("template", {}).setdefault("metadata", {}).setdefault("labels", {})
        labels.setdefault(CONTROLLER_UID_KEY, uid)
        labels.setdefault(LEGACY_CONTROLLER_UID_KEY, uid)
        labels.setdefault(JOB_NAME_KEY, name)
        labels.setdefault(LEGACY_JOB_NAME_KEY, name)
    return out


# ---------------------------------------------------------------- building pods


def build_pod(
    job: Mapping[str, Any],
    index: int | None,
    suffix: str,
    *,
    failure_counts: tuple[int, int] | None = None,
) -> JSON:
    """The pod the Job controller creates for ``index`` (None for NonIndexed), named with ``suffix``."""
    template = clone(spec(job).get("template") or {})
    pmeta: JSON = dict(template.get("metadata") or {})
    pspec: JSON = template.get("spec") or {}
    jname = str(meta(job).get("name", ""))
    juid = str(meta(job).get("uid", ""))
    labels = dict(pmeta.get("labels") or {})
    for key, value in (
        (CONTROLLER_UID_KEY, juid),
        (LEGACY_CONTROLLER_UID_KEY, juid),
        (JOB_NAME_KEY, jname),
        (LEGACY_JOB_NAME_KEY, jname),
    ):
        labels.setdefault(key, value)
    annotations = dict(pmeta.get("annotations") or {})
    if index is not None:
        prefix = f"{jname}-{index}-"
        annotations[COMPLETION_INDEX_KEY] = str(index)
        labels[COMPLETION_INDEX_KEY] = str(index)
        pspec["hostname"] = f"{jname}-{index}"
        if failure_counts is not None:
            annotations[INDEX_FAILURE_COUNT_KEY] = str(failure_counts[0])
            if failure_counts[1] > 0:
                annotations[INDEX_IGNORED_FAILURE_COUNT_KEY] = str(failure_counts[1])
        for key in ("containers", "initContainers"):
            for container in pspec.get(key) or []:
                env = [e for e in container.get("env") or [] if e.get("name") != "JOB_COMPLETION_INDEX"]
                env.append(
                    {
                        "name": "JOB_COMPLETION_INDEX",
                        "valueFrom": {
                            "fieldRef": {
                                "apiVersion": "v1",
                                "fieldPath": f"metadata.annotations['{COMPLETION_INDEX_KEY}']",
                            }
                        },
                    }
                )
                container["env"] = env
    else:
        prefix = f"{jname}-"
    finalizers = list(pmeta.get("finalizers") or [])
    if TRACKING_FINALIZER not in finalizers:
        finalizers.append(TRACKING_FINALIZER)
    new_meta: JSON = {
        "name": (prefix + suffix) if len(prefix) + len(suffix) <= 63 else prefix[: 63 - len(suffix)] + suffix,
        "generateName": prefix,
        "namespace": meta(job).get("namespace", "default"),
        "labels": labels,
        "annotations": annotations,
        "finalizers": finalizers,
        "ownerReferences": [
            {
                "apiVersion": "batch/v1",
                "kind": "Job",
                "name": jname,
                "uid": juid,
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ],
    }
    if not annotations:
        del new_meta["annotations"]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": new_meta, "spec": pspec, "status": {"phase": "Pending"}}
