"""Settings of the metrics layer: cardinality limits, resource names and exposition options.

Role: one frozen dataclass with documented defaults, passed to every metrics component. Invariants: values are
validated at construction (a bad value fails at start-up with a clear message); nothing here changes at run time.
"""

from __future__ import annotations

from dataclasses import dataclass

OTHER_JOBSET = "__other__"
"""The ``jobset_name`` label value that aggregates JobSets beyond the per-JobSet cap (or all, when it is off)."""


@dataclass(frozen=True, slots=True)
class MetricsSettings:
    """How the metrics layer bounds its output. Units: counts and seconds.

    * ``per_jobset_series`` — emit series labelled with ``jobset_name`` (state, pods, GPUs held, restarts,
      terminal outcomes). When off, every JobSet is counted under ``jobset_name="__other__"`` of its namespace.
    * ``max_jobsets`` — at most this many JobSets get their own series (first come, first served; a slot is
      freed when its JobSet is deleted); the rest aggregate under ``"__other__"``. Each JobSet costs about ten
      series, so the default (5,000) bounds the per-JobSet part near 50k series.
    * ``gpu_resource`` — the extended resource counted as a GPU; it must be one the slim Pod record keeps
      (``cache.records``: ``nvidia.com/gpu``, ``amd.com/gpu``, ``google.com/tpu``), others decode as absent.
    * ``node_pool_label`` — node label that names a node pool; nodes without it are in pool ``""``.
    * ``threaded_exposition`` — render ``/metrics`` in a worker thread, so a 65k-series scrape (~0.4 s of CPU)
      does not stall the event loop (the GIL is still handed back every switch interval, 5 ms by default).
    """

    per_jobset_series: bool = True
    max_jobsets: int = 5000
    gpu_resource: str = "nvidia.com/gpu"
    node_pool_label: str = "cloud.google.com/gke-nodepool"
    threaded_exposition: bool = True

    def __post_init__(self) -> None:
        if self.max_jobsets < 0:
            raise ValueError(f"metrics: max_jobsets must be >= 0, got {self.max_jobsets}")
        if not self.gpu_resource:
            raise ValueError("metrics: gpu_resource must not be empty")

    @property
    def jobset_cap(self) -> int:
        """How many JobSets may hold their own series (0 when per-JobSet series are off)."""
        return self.max_jobsets if self.per_jobset_series else 0
