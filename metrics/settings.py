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
      (``api.records``: ``nvidia.com/gpu``, ``amd.com/gpu``, ``google.com/tpu``), others decode as absent.
    * ``node_pool_label`` — node label that names a node pool; nodes without it are in pool ``""``.
    * ``exposition`` — how ``/metrics`` is rendered: ``"sliced"`` (default: on the event loop in slices of
      ``exposition_slice_seconds``, yielding between slices, so a 65k-series scrape — most of a second of CPU —
      delays an event by about one slice), ``"thread"`` (in a worker thread: the loop competes for the GIL) or
      ``"inline"`` (in one go on the loop: the baseline of benchmark P7 of performance.md).
    """

    per_jobset_series: bool = True
    max_jobsets: int = 5000
    gpu_resource: str = "nvidia.com/gpu"
    node_pool_label: str = "cloud.google.com/gke-nodepool"
    exposition: str = "sliced"
    exposition_slice_seconds: float = 0.002

    def __post_init__(self) -> None:
        if self.max_jobsets < 0:
            raise ValueError(f"metrics: max_jobsets must be >= 0, got {self.max_jobsets}")
        if self.exposition not in ("sliced", "thread", "inline"):
            raise ValueError(f"metrics: exposition must be sliced, thread or inline, got {self.exposition!r}")
        if self.exposition_slice_seconds <= 0:
            raise ValueError("metrics: exposition_slice_seconds must be > 0")
        if not self.gpu_resource:
            raise ValueError("metrics: gpu_resource must not be empty")

    @property
    def jobset_cap(self) -> int:
        """How many JobSets may hold their own series (0 when per-JobSet series are off)."""
        return self.max_jobsets if self.per_jobset_series else 0
