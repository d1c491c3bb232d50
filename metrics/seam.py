"""The observer seam between the controller and the metrics: what the controller tells the metrics, and how the
metrics are handed the informers they read.

Role: ``metrics`` owns these interfaces and the controller calls them, so neither package needs the other's
internals. ``ReconcileObserver`` is called by the reconciler after every reconcile, ``PlanObserver`` by the acting
layer after a Plan's status write succeeded (D4 of behaviour.md), ``LeadershipObserver`` by the leader elector's
callbacks; ``InformerHandle[R]`` is an informer of records ``R``
as the metrics read it (``cache.informer.Informer[R]`` satisfies it structurally), and ``WatchedInformers`` names
each informer the lifecycle tracker and the GPU collector need by its role and record type — registration is by
typed handle, never by looking informers up by name. The composition root (``controller.app``) wires the
implementations (``metrics.hub.MetricsHub``) in.

Invariants: only Protocols and plain records here — no state, no I/O; it imports ``api`` only; the
controller reaches ``metrics`` through this module and the composition root alone (import-linter independence
contract); observers never raise into the caller and never await.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

from api.jobset_types import JobSet
from api.plan import Plan
from api.records import Job, Node, Pod

R_co = TypeVar("R_co", covariant=True)

__all__ = [
    "InformerHandle",
    "InformerLike",
    "LeadershipObserver",
    "PlanObserver",
    "ReconcileObserver",
    "Records",
    "Sized",
    "WatchedInformers",
]


class ReconcileObserver(Protocol):
    """Told the outcome of every reconcile: ``result`` is ``success``, ``error`` or ``requeue_after``."""

    def reconcile_done(self, controller: str, result: str, seconds: float) -> None: ...


class PlanObserver(Protocol):
    """Told about a Plan once its status write succeeded (decision D4): restarts and terminal outcomes."""

    def plan_applied(self, js: JobSet, plan: Plan) -> None: ...


class LeadershipObserver(Protocol):
    """Told when this process starts and stops leading (leader election callbacks)."""

    def started_leading(self) -> None: ...

    def stopped_leading(self) -> None: ...


class Sized(Protocol):
    def __len__(self) -> int: ...


class InformerLike(Protocol):
    """What the metrics export about any informer: name, store size, watch restarts, re-lists, watch events and
    bytes, sync state, decode
    errors and quarantined objects, stalls."""

    @property
    def name(self) -> str: ...

    @property
    def store(self) -> Sized: ...

    @property
    def watch_restarts(self) -> int: ...

    @property
    def relists(self) -> int: ...

    @property
    def watch_events(self) -> int: ...

    @property
    def watch_bytes(self) -> int: ...

    @property
    def decode_errors(self) -> dict[str, int]: ...

    @property
    def quarantined(self) -> dict[str, str]: ...

    def has_synced(self) -> bool: ...

    def stalled(self) -> bool: ...

    def seconds_since_progress(self) -> float: ...


class Records(Protocol[R_co]):
    """A store of records ``R`` as the metrics read it (``cache.store.Store[R]``): its size and its records."""

    def __len__(self) -> int: ...

    def __iter__(self) -> Iterator[R_co]: ...


class InformerHandle(InformerLike, Protocol[R_co]):
    """An informer of records ``R``: its store and its event handlers (``(old, new)``, either may be None)."""

    @property
    def store(self) -> Records[R_co]: ...

    def add_handler(self, handler: Callable[[R_co | None, R_co | None], None]) -> None: ...


@dataclass(frozen=True, slots=True)
class WatchedInformers:
    """The informers the metrics read, by role. ``jobsets``, ``jobs`` and ``pods`` feed the lifecycle tracker;
    ``nodes`` with ``pods`` enable the GPU collector. ``exported`` lists the informers whose health is exported,
    in export order (e.g. all of a controller's); a role informer it leaves out is exported after them."""

    jobsets: InformerHandle[JobSet]
    jobs: InformerHandle[Job]
    pods: InformerHandle[Pod] | None = None
    nodes: InformerHandle[Node] | None = None
    exported: Sequence[InformerLike] = ()

    def all(self) -> list[InformerLike]:
        """Every informer to export, each once: ``exported``, then the role informers it left out."""
        found = list(self.exported)
        for inf in (self.jobsets, self.jobs, self.pods, self.nodes):
            if inf is not None and all(inf is not seen for seen in found):
                found.append(inf)
        return found
