"""Fluent builders for JobSet, Job and Pod test objects (plain JSON dicts and decoded records).

Shared by every test tier. Builders return new objects on every call; nothing here talks to a cluster.
Extend by adding functions or methods; never change what an existing one produces.
"""

from __future__ import annotations

import copy
from typing import Any, Self

import msgspec

from api.jobset_types import JobSet, jobset_from_obj
from api.records import Job

JSON = dict[str, Any]


def pod_template(*, restart_policy: str = "Never", annotations: dict[str, str] | None = None) -> JSON:
    return {
        "metadata": {"annotations": dict(annotations or {})},
        "spec": {
            "restartPolicy": restart_policy,
            "containers": [{"name": "main", "image": "busybox"}],
        },
    }


class JobSetBuilder:
    """``JobSetBuilder("test-js").rjob("a", 1).rjob("b", 3).obj()`` → a JobSet dict ready to POST."""

    def __init__(self, name: str = "test-js", namespace: str = "default") -> None:
        self._obj: JSON = {
            "apiVersion": "jobset.x-k8s.io/v1alpha2",
            "kind": "JobSet",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {
                "replicatedJobs": [],
                "network": {"enableDNSHostnames": True, "publishNotReadyAddresses": True},
                "successPolicy": {"operator": "All"},
            },
        }

    def rjob(
        self,
        name: str,
        replicas: int = 1,
        *,
        parallelism: int = 1,
        completions: int = 1,
        completion_mode: str | None = "Indexed",
        group: str | None = None,
        pod_annotations: dict[str, str] | None = None,
        depends_on: list[dict[str, str]] | None = None,
        backoff_limit: int | None = None,
    ) -> Self:
        job_spec: JSON = {
            "parallelism": parallelism,
            "completions": completions,
            "template": pod_template(annotations=pod_annotations),
        }
        if completion_mode is not None:
            job_spec["completionMode"] = completion_mode
        if backoff_limit is not None:
            job_spec["backoffLimit"] = backoff_limit
        rj: JSON = {"name": name, "replicas": replicas, "template": {"spec": job_spec}}
        if group is not None:
            rj["groupName"] = group
        if depends_on is not None:
            rj["dependsOn"] = depends_on
        self._obj["spec"]["replicatedJobs"].append(rj)
        return self

    def set(self, path: str, value: Any) -> Self:
        """Set a dotted path under the object, e.g. ``set("spec.suspend", True)``."""
        node = self._obj
        parts = path.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
        return self

    def annotate(self, key: str, value: str) -> Self:
        self._obj["metadata"].setdefault("annotations", {})[key] = value
        return self

    def obj(self) -> JSON:
        return copy.deepcopy(self._obj)

    def record(self, *, uid: str = "uid-1", restarts: int = 0) -> JobSet:
        obj = self.obj()
        obj["metadata"]["uid"] = uid
        obj.setdefault("status", {})["restarts"] = restarts
        for rj in obj["spec"]["replicatedJobs"]:
            rj.setdefault("groupName", "default")
        return jobset_from_obj(obj)


def job_record(manifest: JSON, *, uid: str = "", status: JSON | None = None) -> Job:
    """A cached Job record from a manifest the controller built (optionally with a status)."""
    obj = copy.deepcopy(manifest)
    obj["metadata"]["uid"] = uid or f"uid-{obj['metadata']['name']}"
    if status is not None:
        obj["status"] = status
    return msgspec.convert(obj, Job)


# --------------------------------------------------------------------------------------------- Job status helpers
# Added for the pure decision tests (tests/unit/decide/); usable by every tier.

T0 = "2026-01-01T00:00:00Z"


def job_condition(ctype: str, status: str = "True", *, reason: str = "", message: str = "", at: str = T0) -> JSON:
    return {"type": ctype, "status": status, "reason": reason, "message": message, "lastTransitionTime": at}


def job_status(
    *,
    active: int = 0,
    ready: int | None = None,
    succeeded: int = 0,
    failed: int = 0,
    start_time: str | None = None,
    conditions: list[JSON] | None = None,
) -> JSON:
    status: JSON = {"active": active, "succeeded": succeeded, "failed": failed, "conditions": list(conditions or [])}
    if ready is not None:
        status["ready"] = ready
    if start_time is not None:
        status["startTime"] = start_time
    return status


def complete_status(*, at: str = T0) -> JSON:
    return job_status(succeeded=1, conditions=[job_condition("Complete", at=at)])


def failed_status(reason: str = "BackoffLimitExceeded", message: str = "", *, at: str = T0) -> JSON:
    return job_status(failed=1, conditions=[job_condition("Failed", reason=reason, message=message, at=at)])


def ready_status(pods: int = 1) -> JSON:
    return job_status(active=pods, ready=pods, start_time=T0)


def with_status(job: Job, status: JSON) -> Job:
    """The same Job record with ``status`` (JSON) replacing its status."""
    obj = msgspec.to_builtins(job)
    obj["status"] = status
    return msgspec.convert(obj, Job)


class DecideWorld:
    """A tiny in-memory stand-in for the acting layer, to drive ``controller.decide.decide`` over several passes.

    It applies a Plan the simplest faithful way: created Jobs appear (with an empty status), deleted Jobs get a
    ``deletionTimestamp`` and disappear on ``gc()``, merge patches of ``spec.suspend`` / sizes are applied, the
    status is replaced. Nothing here sleeps or talks to a cluster.
    """

    def __init__(
        self,
        js: JobSet,
        *,
        gates: dict[str, bool] | None = None,
        service_exists: bool = False,
        max_writes: int | None = None,
        extensions: Any = None,
        stamp_creation: bool = False,
    ) -> None:
        self.js = js
        self.max_writes = max_writes
        self.extensions = extensions
        self.stamp_creation = stamp_creation
        """Give created Jobs ``creationTimestamp`` = the step's time (the startup deadline reads it)."""
        self.jobs: dict[str, Job] = {}
        self.gates = dict(gates or {})
        self.service_exists = service_exists
        self.plans: list[Any] = []

    def snapshot(self) -> Any:
        from api.extensions import Defaults
        from api.plan import Snapshot

        return Snapshot(
            jobset=self.js,
            jobs=tuple(self.jobs.values()),
            service_exists=self.service_exists,
            gates=self.gates,
            extensions=self.extensions if self.extensions is not None else Defaults(),
        )

    def step(self, now: Any = None) -> Any:
        import datetime as dt

        from controller.decide.reconcile import decide

        when = now if now is not None else dt.datetime(2026, 1, 1, 0, 1, tzinfo=dt.UTC)
        plan = (
            decide(self.snapshot(), when)
            if self.max_writes is None
            else decide(self.snapshot(), when, max_writes=self.max_writes)
        )
        self.plans.append(plan)
        for name in plan.delete_jobs:
            obj = msgspec.to_builtins(self.jobs[name])
            obj["metadata"]["deletionTimestamp"] = T0
            self.jobs[name] = msgspec.convert(obj, Job)
        for created in plan.create_jobs:
            manifest = created
            if self.stamp_creation:
                manifest = {**created, "metadata": {**created["metadata"], "creationTimestamp": _rfc3339(when)}}
            self.jobs[manifest["metadata"]["name"]] = job_record(manifest)
        for update in plan.update_jobs:
            obj = msgspec.to_builtins(self.jobs[update.name])
            if update.clear_start_time:
                obj.setdefault("status", {}).pop("startTime", None)
            _merge(obj, update.patch)
            self.jobs[update.name] = msgspec.convert(obj, Job)
        if plan.create_service is not None:
            self.service_exists = True
        if plan.status is not None:
            self.js = msgspec.structs.replace(self.js, status=plan.status)
        if plan.annotations:  # the acting layer's merge patch of metadata.annotations
            annotations = {**self.js.metadata.annotations, **plan.annotations}
            meta = msgspec.structs.replace(
                self.js.metadata, annotations={k: v for k, v in annotations.items() if v is not None}
            )
            self.js = msgspec.structs.replace(self.js, metadata=meta)
        return plan

    def gc(self) -> None:
        """Foreground deletion finished: Jobs with a deletionTimestamp are gone."""
        self.jobs = {n: j for n, j in self.jobs.items() if j.metadata.deletion_timestamp is None}

    def set_status(self, status: JSON, *names: str) -> None:
        for name in names or tuple(self.jobs):
            self.jobs[name] = with_status(self.jobs[name], status)

    def update_spec(self, **changes: Any) -> None:
        self.js = msgspec.structs.replace(self.js, spec=msgspec.structs.replace(self.js.spec, **changes))


def _rfc3339(when: Any) -> str:
    return str(when.strftime("%Y-%m-%dT%H:%M:%SZ"))


def _merge(target: JSON, patch: JSON) -> None:
    """RFC 7386 JSON merge patch, in place."""
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, dict) and isinstance(target.get(key), dict):
            _merge(target[key], value)
        else:
            target[key] = copy.deepcopy(value)
