"""What the demo reads from the controller's own metrics: one scrape of the in-process registry, made structured.

Role: the demo reports what an operator's Prometheus would see, so its progress line, timeline and summary come
from the metrics hub's registry (``jobset_status``, ``jobset_status_restarts``, ``jobset_restarts``,
``jobset_pods``, ``jobset_cluster_gpu_*``, ``jobset_gpu_idle_seconds``, the ``jobset_startup_seconds`` and
``jobset_recovery_seconds`` histograms), not from a side channel. :func:`read` turns the families a registry
collects into a :class:`Reading`; :class:`Histogram` answers count, mean and a bucket-bound quantile.

Invariants: pure (no I/O; the caller runs the hub's pre-scrape hooks first); a family that is absent reads as
zero or empty; sample names are matched with or without the ``_total`` suffix, as prometheus_client names them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Histogram:
    """One histogram merged over its label sets: cumulative bucket counts by upper bound, count and sum."""

    buckets: dict[float, float] = field(default_factory=dict)
    count: float = 0.0
    total: float = 0.0

    @property
    def mean(self) -> float | None:
        return self.total / self.count if self.count else None

    def quantile_bound(self, q: float) -> float | None:
        """The smallest bucket bound holding at least ``q`` of the observations (``inf`` past the last bound)."""
        if not self.count:
            return None
        for bound in sorted(self.buckets):
            if self.buckets[bound] >= q * self.count:
                return bound
        return math.inf


@dataclass
class Reading:
    """One scrape: per-JobSet series keyed by ``(namespace, name)``, cluster GPU gauges, latency histograms."""

    state: dict[tuple[str, str], str] = field(default_factory=dict)
    status_restarts: dict[tuple[str, str], int] = field(default_factory=dict)
    restarts_applied: dict[tuple[str, str], int] = field(default_factory=dict)
    pods: dict[tuple[str, str], dict[str, int]] = field(default_factory=dict)
    gpus_held: dict[tuple[str, str], float] = field(default_factory=dict)
    gpu_idle_seconds: dict[tuple[str, str], float] = field(default_factory=dict)
    gpus_allocatable: float = 0.0
    gpus_requested: float = 0.0
    startup: Histogram = field(default_factory=Histogram)
    recovery: Histogram = field(default_factory=Histogram)

    def pods_in(self, phase: str) -> int:
        return sum(p.get(phase, 0) for p in self.pods.values())

    @property
    def restarts(self) -> int:
        return sum(self.restarts_applied.values())


def _key(labels: dict[str, str]) -> tuple[str, str]:
    return labels.get("namespace", ""), labels.get("jobset_name", "")


def _hist(into: Histogram, sample_name: str, base: str, labels: dict[str, str], value: float) -> None:
    if sample_name == f"{base}_bucket":
        bound = float(labels["le"])
        into.buckets[bound] = into.buckets.get(bound, 0.0) + value
    elif sample_name == f"{base}_count":
        into.count += value
    elif sample_name == f"{base}_sum":
        into.total += value


def read(families: Iterable[Any]) -> Reading:
    """A :class:`Reading` of the metric families a ``CollectorRegistry.collect()`` yields."""
    out = Reading()
    for family in families:
        for sample in family.samples:
            name, labels, value = sample.name, dict(sample.labels), float(sample.value)
            base = name.removesuffix("_total")
            if base == "jobset_status" and value == 1:
                out.state[_key(labels)] = labels.get("state", "")
            elif base == "jobset_status_restarts":
                out.status_restarts[_key(labels)] = int(value)
            elif base == "jobset_restarts":
                key = _key(labels)
                out.restarts_applied[key] = out.restarts_applied.get(key, 0) + int(value)
            elif base == "jobset_pods":
                out.pods.setdefault(_key(labels), {})[labels.get("phase", "")] = int(value)
            elif base == "jobset_gpus_held":
                out.gpus_held[_key(labels)] = value
            elif base == "jobset_gpu_idle_seconds":
                out.gpu_idle_seconds[_key(labels)] = value
            elif base == "jobset_cluster_gpu_allocatable":
                out.gpus_allocatable = value
            elif base == "jobset_cluster_gpu_requested":
                out.gpus_requested = value
            elif family.name == "jobset_startup_seconds":
                _hist(out.startup, name, "jobset_startup_seconds", labels, value)
            elif family.name == "jobset_recovery_seconds":
                _hist(out.recovery, name, "jobset_recovery_seconds", labels, value)
    return out
