"""Deterministic names, indexes and hashes of JobSet children (behaviour.md §2.1 and §3).

Invariants: every function is total over a decoded JobSet record; an index or replicas value for a replicated
job or group that does not exist is the empty string (as upstream renders it), never an exception.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache

from api.jobset_types import JobSet, ReplicatedJob


def job_name(jobset_name: str, rjob_name: str, job_index: int) -> str:
    """``<jobset>-<rjob>-<jobIndex>``: reused verbatim when a Job is recreated."""
    return f"{jobset_name}-{rjob_name}-{job_index}"


@lru_cache(maxsize=32)
def job_names(jobset_name: str, rjob_name: str, replicas: int) -> tuple[str, ...]:
    """``job_name`` of every index of a replicated job, in index order; memoised (a restart asks for the same
    names on every pass while it waits for the previous attempt to go; a few dozen JobSets' worth are kept)."""
    return tuple(job_name(jobset_name, rjob_name, i) for i in range(replicas))


def job_key(namespace: str, name: str) -> str:
    """Hex SHA-1 of ``<namespace>/<jobName>`` (decision D6: SHA-1 for wire compatibility)."""
    return hashlib.sha1(f"{namespace}/{name}".encode(), usedforsecurity=False).hexdigest()


def subdomain(js: JobSet) -> str:
    """The headless Service name and pod subdomain: ``network.subdomain`` or the JobSet name."""
    net = js.spec.network
    if net is not None and net.subdomain:
        return net.subdomain
    return js.metadata.name


def dns_hostnames_enabled(js: JobSet) -> bool:
    """Whether to create the headless Service and set pod subdomains.

    Decision D3: a missing ``network`` (no defaulting webhook ran) is read as the webhook's defaults, so DNS
    hostnames are on. A present ``network`` whose ``enableDNSHostnames`` is unset is off, as in the reference.
    """
    net = js.spec.network
    return net is None or net.enable_dns_hostnames is True


def publish_not_ready_addresses(js: JobSet) -> bool:
    net = js.spec.network
    if net is None or net.publish_not_ready_addresses is None:
        return True
    return net.publish_not_ready_addresses


def global_replicas(js: JobSet) -> int:
    return sum(r.replicas for r in js.spec.replicated_jobs)


def global_job_index(js: JobSet, rjob_name: str, job_index: int) -> str:
    """Running sum of replicas of preceding replicated jobs plus ``job_index``; "" for an unknown rjob."""
    offset = 0
    for rjob in js.spec.replicated_jobs:
        if rjob.name == rjob_name:
            return str(offset + job_index)
        offset += rjob.replicas
    return ""


def group_replicas(js: JobSet, group: str) -> str:
    """Sum of replicas of replicated jobs in ``group``; "" when no replicated job is in it."""
    members = [r.replicas for r in js.spec.replicated_jobs if r.group_name == group]
    return str(sum(members)) if members else ""


def group_job_index(js: JobSet, rjob_name: str, job_index: int) -> str:
    """Running sum of replicas of preceding rjobs in the same group plus ``job_index``; "" if unknown."""
    target = find_rjob(js, rjob_name)
    if target is None:
        return ""
    offset = 0
    for rjob in js.spec.replicated_jobs:
        if rjob.name == rjob_name:
            return str(offset + job_index)
        if rjob.group_name == target.group_name:
            offset += rjob.replicas
    return ""


def find_rjob(js: JobSet, name: str) -> ReplicatedJob | None:
    for rjob in js.spec.replicated_jobs:
        if rjob.name == name:
            return rjob
    return None


def coordinator_endpoint(js: JobSet) -> str | None:
    """``<js>-<rjob>-<jobIndex>-<podIndex>.<subdomain>`` when ``spec.coordinator`` is set."""
    coord = js.spec.coordinator
    if coord is None:
        return None
    return f"{js.metadata.name}-{coord.replicated_job}-{coord.job_index}-{coord.pod_index}.{subdomain(js)}"
