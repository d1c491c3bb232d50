"""Fluent builders for JobSet, Job and Pod test objects (plain JSON dicts and decoded records).

Shared by every test tier. Builders return new objects on every call; nothing here talks to a cluster.
Extend by adding functions or methods; never change what an existing one produces.
"""

from __future__ import annotations

import copy
from typing import Any, Self

import msgspec

from cache.jobset_types import JobSet, jobset_from_obj
from cache.records import Job

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
