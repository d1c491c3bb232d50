"""Leader election on a ``coordination.k8s.io/v1`` Lease, with client-go's protocol and timings.

Only the leader reconciles. ``LeaderElector.run()`` campaigns until it holds the Lease, renews it every
``retry_period``, and returns as soon as leadership is lost; cancelling ``run()`` (a clean shutdown) stops
leading and then releases the Lease so a successor can take over at once. ``run_as_leader`` wraps that around a
unit of work: the work starts when leadership is won and is cancelled the moment it is lost.

The Lease API is injected (:class:`LeaseApi`: get / create / update of a Lease as a JSON dict, with optimistic
concurrency), so the elector does not depend on a particular client; :class:`ClientLeaseApi` adapts
``cache.client.ApiClient``. Time is an injected :class:`~cache.clock.Clock` (monotonic, for every decision)
plus a wall clock used only for the ``acquireTime``/``renewTime`` stamps written into the Lease.

Protocol (``tryAcquireOrRenew``): read the Lease; create it if missing; if another identity holds it and the
record has not changed for ``leaseDurationSeconds`` *as measured on our own clock since we first observed that
record* (never by comparing the stamps in it: clocks across machines disagree), take it, else wait. Taking or
renewing is a replace carrying the resourceVersion we read, so of two racing candidates exactly one wins (the
other gets 409 Conflict). A new holder bumps ``leaseTransitions`` and stamps ``acquireTime``; a renewal keeps
both and stamps ``renewTime``. Release writes ``holderIdentity: ""`` and ``leaseDurationSeconds: 1``.

Invariants (why two processes never lead at once):

* A leader's authority lasts ``renew_deadline`` from the *start* of its last successful attempt (taken before
  the read, so before the write). Each renewal attempt is cut off at that deadline; at the deadline, or as soon
  as a read shows another holder, the elector stops leading synchronously — callbacks run and ``leading`` is
  cleared before any other coroutine runs.
* A candidate waits ``leaseDurationSeconds`` from when it *observed* the current record, which is after the
  leader wrote it, so it can take over no earlier than ``lease_duration - renew_deadline`` (5 s by default)
  after the old leader stopped.
* Work is stopped before the Lease is released on shutdown; a lost leader never renews again in that ``run``.
* ``may_write()`` is the write fence: false as soon as the renew deadline has passed on our clock, even before
  the renew loop has run (a process resumed after SIGSTOP); ``ApiClient.write_fence`` checks it before each write.
* Deliberately stricter than client-go, whose renew deadline runs from the start of each retry *round*: with
  an API so slow that a renewal (read + replace) takes more than ``(renew_deadline - retry_period) / 2``, we
  give up leadership rather than risk outliving a write a candidate has already started timing.
* Defaults: lease 15 s, renew deadline 10 s, retry 2 s; candidates retry with jitter (up to 2.2 x retry).

A candidate that cannot acquire the Lease for a reason retrying will not fix by itself — the namespace does not
exist (404 on create) or RBAC forbids Leases (403) — keeps retrying (an operator may fix it), but says why at
WARNING with the fix, once per distinct cause (``blocked_cause``), not at info on every attempt.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import math
import random
import socket
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import structlog

from api.jsontypes import JSON
from api.timefmt import format_micro_time
from cache.client import ApiClient, resource_path
from cache.clock import Clock, RealClock
from cache.errors import Forbidden, NotFound

__all__ = [
    "LEASE_NAME",
    "ClientLeaseApi",
    "Elector",
    "LeaderElectionConfig",
    "LeaderElector",
    "LeaseApi",
    "LeaseRecord",
    "default_identity",
    "run_as_leader",
]

log = structlog.get_logger("pyjobset.leader")

LEASE_NAME = "6d4f6a47.jobset.x-k8s.io"
"""The reference controller's Lease name; running both against one cluster must never give two leaders."""

JITTER_FACTOR = 1.2
"""Candidates sleep ``retry_period * (1 + random() * JITTER_FACTOR)`` between attempts (client-go's factor)."""

R = TypeVar("R")


class LeaseApi(Protocol):
    """Get / create / replace one Lease. ``update`` must fail (raise) when the resourceVersion is stale."""

    async def get(self, namespace: str, name: str) -> JSON | None:
        """The Lease, or ``None`` when it does not exist."""
        ...

    async def create(self, namespace: str, lease: JSON) -> JSON:
        """Create the Lease; raise if it already exists."""
        ...

    async def update(self, namespace: str, name: str, lease: JSON) -> JSON:
        """Replace the Lease (optimistic concurrency on ``metadata.resourceVersion``)."""
        ...


class Elector(Protocol):
    """What the controller needs of an elector: :class:`LeaderElector` on the caller's loop, or
    ``cache.leader_thread.ThreadedLeaderElector`` renewing from a thread of its own."""

    started_callbacks: list[Callable[[], None]]
    stopped_callbacks: list[Callable[[], None]]

    @property
    def identity(self) -> str: ...

    @property
    def is_leader(self) -> bool: ...

    def may_write(self) -> bool: ...

    async def run(self) -> None: ...

    async def wait_leading(self) -> None: ...


class ClientLeaseApi:
    """:class:`LeaseApi` over ``cache.client.ApiClient`` (HTTP errors surface as ``cache.errors`` classes).

    Give it an ``ApiClient`` of its own (controller-runtime does the same): renewals behind the bulk writers'
    shared QPS bucket would wait out a 15k-Job creation burst (30 s at 500 QPS) and lose the Lease mid-burst.
    Two calls per ``retry_period`` are all it needs (e.g. ``qps=5, burst=10``).
    """

    def __init__(self, client: ApiClient) -> None:
        self._client = client

    async def get(self, namespace: str, name: str) -> JSON | None:
        try:
            return await self._client.get(_lease_path(namespace, name))
        except NotFound:
            return None

    async def create(self, namespace: str, lease: JSON) -> JSON:
        return await self._client.create(_lease_path(namespace, None), lease)

    async def update(self, namespace: str, name: str, lease: JSON) -> JSON:
        return await self._client.replace(_lease_path(namespace, name), lease)


def _lease_path(namespace: str, name: str | None) -> str:
    return resource_path("coordination.k8s.io", "v1", "leases", namespace=namespace, name=name)


def default_identity() -> str:
    """``<hostname>_<uuid>``: unique per process, readable in ``kubectl get lease``."""
    return f"{socket.gethostname()}_{uuid.uuid4()}"


@dataclass(frozen=True, slots=True)
class LeaderElectionConfig:
    """Where the Lease lives, who we are, and the timings (seconds; client-go's defaults).

    ``lease_duration`` is written into the Lease rounded up to whole seconds (the field is an integer), so
    sub-second values are only useful in tests, and then other candidates still wait at least 1 s.
    """

    namespace: str
    identity: str = field(default_factory=default_identity)
    name: str = LEASE_NAME
    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0
    release_on_cancel: bool = True

    def __post_init__(self) -> None:
        if not self.namespace or not self.name:
            raise ValueError("leader election needs the Lease's namespace and name")
        if not self.identity:
            raise ValueError("leader election needs a non-empty identity")
        if not self.lease_duration > self.renew_deadline > JITTER_FACTOR * self.retry_period > 0:
            raise ValueError(
                "leader election needs leaseDuration > renewDeadline > 1.2 x retryPeriod > 0 "
                f"(got {self.lease_duration}s, {self.renew_deadline}s, {self.retry_period}s)"
            )

    @property
    def lease_duration_seconds(self) -> int:
        return max(1, math.ceil(self.lease_duration))


@dataclass(frozen=True, slots=True)
class LeaseRecord:
    """The election fields of a Lease's spec."""

    holder: str = ""
    lease_duration_seconds: int = 0
    acquire_time: str | None = None
    renew_time: str | None = None
    transitions: int = 0

    @classmethod
    def from_lease(cls, lease: JSON) -> LeaseRecord:
        spec = lease.get("spec") or {}
        return cls(
            holder=spec.get("holderIdentity") or "",
            lease_duration_seconds=int(spec.get("leaseDurationSeconds") or 0),
            acquire_time=spec.get("acquireTime"),
            renew_time=spec.get("renewTime"),
            transitions=int(spec.get("leaseTransitions") or 0),
        )

    def spec(self) -> JSON:
        out: JSON = {
            "holderIdentity": self.holder,
            "leaseDurationSeconds": self.lease_duration_seconds,
            "leaseTransitions": self.transitions,
        }
        if self.acquire_time is not None:
            out["acquireTime"] = self.acquire_time
        if self.renew_time is not None:
            out["renewTime"] = self.renew_time
        return out


def blocked_cause(exc: Exception, namespace: str) -> str | None:
    """The operator-facing reason and fix when ``exc`` means the Lease cannot be acquired until someone acts;
    None for errors that retrying can cure (timeouts, 5xx, conflicts)."""
    if isinstance(exc, NotFound):
        return (
            f"the Lease namespace {namespace!r} does not exist: create it (kubectl create namespace {namespace}), "
            "set leaderElection.resourceNamespace (--config) to an existing one, "
            "or run with --leader-elect=false"
        )
    if isinstance(exc, Forbidden):
        return (
            f"forbidden to read or write Leases (coordination.k8s.io) in namespace {namespace!r}: grant the "
            "controller's ServiceAccount get/create/update on leases there (deploy/rbac), "
            "or run with --leader-elect=false"
        )
    return None


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class _Lost(Exception):
    """Raised inside an attempt when a read shows that another identity now holds the Lease."""


class LeaderElector:
    """Campaigns for, renews and releases one Lease; see the module docstring for the guarantees."""

    def __init__(
        self,
        api: LeaseApi,
        config: LeaderElectionConfig,
        *,
        clock: Clock | None = None,
        wall: Callable[[], dt.datetime] = _utc_now,
        rng: random.Random | None = None,
        on_started_leading: Callable[[], None] | None = None,
        on_stopped_leading: Callable[[], None] | None = None,
        on_new_leader: Callable[[str], None] | None = None,
    ) -> None:
        self.api = api
        self.config = config
        self._clock: Clock = clock if clock is not None else RealClock()
        self._wall = wall
        self._rng = rng if rng is not None else random.Random()  # noqa: S311 - jitter, not crypto
        self.started_callbacks: list[Callable[[], None]] = [on_started_leading] if on_started_leading else []
        self.stopped_callbacks: list[Callable[[], None]] = [on_stopped_leading] if on_stopped_leading else []
        self.new_leader_callbacks: list[Callable[[str], None]] = [on_new_leader] if on_new_leader else []
        self.leading = asyncio.Event()
        """Set while this process leads; cleared synchronously when it stops."""
        self.lost = asyncio.Event()
        """Set when leadership ended in the current ``run`` (lost or given up on shutdown)."""
        self._is_leader = False
        self._lease: JSON | None = None  # the last Lease we read or wrote (for its resourceVersion)
        self._observed: LeaseRecord | None = None
        self._observed_at = 0.0  # our clock when the current record was first seen
        self._deadline = 0.0  # while leading: authority ends here unless renewed
        # The write fence, published as one float so another thread reads it atomically (``may_write``): the
        # deadline while leading, -inf otherwise. Written only by the thread running ``run()``.
        self._authority_until = -math.inf
        self._leader_seen = ""
        self.blocked_cause: str | None = None
        """Why acquiring is failing, when it is a cause an operator must fix (see the module docstring)."""

    # --- state ---------------------------------------------------------------------------------------------

    @property
    def is_leader(self) -> bool:
        return self._is_leader

    @property
    def identity(self) -> str:
        return self.config.identity

    def may_write(self) -> bool:
        """True while this process leads *and* its authority has not run out on our clock (a write fence).

        ``is_leader`` is cleared by the renew loop, which only runs when the event loop gets to it: a process that
        was frozen (SIGSTOP, a long GC or swap pause) past its renew deadline wakes with ``is_leader`` still set
        while a standby may already lead. Checking the deadline itself before each write closes that window.

        Safe to call from any thread (``cache.leader_thread`` runs the elector on a thread of its own and the
        writers ask from the controller's loop): it reads one float attribute, replaced whole on every change,
        and the clock (``time.monotonic`` in production)."""
        return self._clock.now() < self._authority_until

    @property
    def observed_leader(self) -> str:
        """The holder of the Lease as last read (empty when none)."""
        return self._leader_seen

    async def wait_leading(self) -> None:
        """Return once this process leads (pair with ``run()`` running in another task)."""
        await self.leading.wait()

    # --- the campaign --------------------------------------------------------------------------------------

    async def run(self) -> None:
        """Campaign until leading, renew until lost (then return); on cancellation stop and release."""
        self.lost.clear()
        try:
            await self._acquire()
            await self._renew()
        except asyncio.CancelledError:
            if self._is_leader:
                self._stop_leading("shutdown")
                if self.config.release_on_cancel:
                    await self._release()
            raise

    async def _acquire(self) -> None:
        cfg = self.config
        while True:
            started = self._clock.now()
            ok = False
            try:
                ok = await self._within(self._try_acquire_or_renew(started), cfg.renew_deadline)
            except (TimeoutError, _Lost):
                ok = False
            except Exception as exc:  # noqa: BLE001 - any failure of the injected API is one failed attempt
                self._attempt_failed(exc)
            if ok:
                if self.blocked_cause is not None:
                    log.info("leader_election_unblocked", lease=cfg.name, namespace=cfg.namespace)
                    self.blocked_cause = None
                self._start_leading(started)
                return
            await self._clock.sleep(cfg.retry_period * (1.0 + self._rng.random() * JITTER_FACTOR))

    def _attempt_failed(self, exc: Exception) -> None:
        """Log a failed acquire attempt: a cause the operator must fix at WARNING once, anything else at info."""
        cfg = self.config
        cause = blocked_cause(exc, cfg.namespace)
        if cause is None:
            log.info("leader_attempt_failed", lease=cfg.name, identity=cfg.identity, error=repr(exc))
            return
        if cause != self.blocked_cause:
            self.blocked_cause = cause
            log.warning(
                "leader_election_blocked",
                lease=cfg.name,
                namespace=cfg.namespace,
                cause=cause,
                error=str(exc),
                note="still retrying every retry period; this message repeats only if the cause changes",
            )

    async def _renew(self) -> None:
        cfg = self.config
        while True:
            await self._clock.sleep(min(cfg.retry_period, max(self._deadline - self._clock.now(), 0.0)))
            while True:
                remaining = self._deadline - self._clock.now()
                if remaining <= 0:
                    self._stop_leading("renew_deadline_passed")
                    return
                started = self._clock.now()
                try:
                    ok = await self._within(self._try_acquire_or_renew(started), remaining)
                except _Lost:
                    self._stop_leading("lease_taken")
                    return
                except TimeoutError:
                    ok = False
                except Exception as exc:  # noqa: BLE001 - any failure of the injected API is one failed attempt
                    log.info("leader_renew_failed", lease=cfg.name, identity=cfg.identity, error=repr(exc))
                    ok = False
                if ok:
                    self._deadline = started + cfg.renew_deadline
                    self._authority_until = self._deadline
                    break
                if self._deadline - self._clock.now() <= 0:
                    self._stop_leading("renew_deadline_passed")
                    return
                await self._clock.sleep(min(cfg.retry_period, self._deadline - self._clock.now()))

    async def _try_acquire_or_renew(self, started: float) -> bool:
        """One attempt; True when we hold the Lease afterwards. Raises ``_Lost`` if a leader sees a rival."""
        cfg = self.config
        stamp = format_micro_time(self._wall())
        lease = await self.api.get(cfg.namespace, cfg.name)
        if lease is None:
            record = LeaseRecord(cfg.identity, cfg.lease_duration_seconds, stamp, stamp, 0)
            body: JSON = {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {"name": cfg.name, "namespace": cfg.namespace},
                "spec": record.spec(),
            }
            self._lease = await self.api.create(cfg.namespace, body)
            self._observe(record)
            return True
        current = LeaseRecord.from_lease(lease)
        self._observe(current)
        if current.holder and current.holder != cfg.identity:
            if self._is_leader:
                raise _Lost
            expires = self._observed_at + current.lease_duration_seconds
            if self._clock.now() < expires:
                return False
        if current.holder == cfg.identity:
            record = LeaseRecord(
                cfg.identity, cfg.lease_duration_seconds, current.acquire_time or stamp, stamp, current.transitions
            )
        else:
            record = LeaseRecord(cfg.identity, cfg.lease_duration_seconds, stamp, stamp, current.transitions + 1)
        body = dict(lease)
        body["spec"] = {**(lease.get("spec") or {}), **record.spec()}
        self._lease = await self.api.update(cfg.namespace, cfg.name, body)
        self._observe(record)
        return True

    def _observe(self, record: LeaseRecord) -> None:
        if record != self._observed:
            self._observed = record
            self._observed_at = self._clock.now()
        if record.holder != self._leader_seen:
            self._leader_seen = record.holder
            log.info("leader_observed", lease=self.config.name, leader=record.holder or None)
            for callback in self.new_leader_callbacks:
                callback(record.holder)

    async def _within(self, coro: Coroutine[Any, Any, R], seconds: float) -> R:
        """Await ``coro`` but cancel it after ``seconds`` of our clock (then raise TimeoutError).

        Not ``asyncio.timeout``: that runs on the loop's time, and every decision here runs on the injected
        clock so tests can drive it."""
        task = asyncio.ensure_future(coro)
        expired = False
        current = asyncio.current_task()
        # Cancellations already pending on our task (e.g. a release during shutdown) are not ours to judge.
        cancelling_before = current.cancelling() if current is not None else 0

        def expire() -> None:
            nonlocal expired
            expired = True
            task.cancel()

        handle = self._clock.call_later(seconds, expire)
        try:
            return await task
        except asyncio.CancelledError:
            if expired and (current is None or current.cancelling() <= cancelling_before):
                raise TimeoutError from None
            raise
        finally:
            handle.cancel()

    # --- transitions ---------------------------------------------------------------------------------------

    def _start_leading(self, started: float) -> None:
        self._deadline = started + self.config.renew_deadline
        self._authority_until = self._deadline
        self._is_leader = True
        self.leading.set()
        log.info("leader_started", lease=self.config.name, identity=self.config.identity)
        for callback in self.started_callbacks:
            callback()

    def _stop_leading(self, why: str) -> None:
        if not self._is_leader:
            return
        self._authority_until = -math.inf  # the fence closes first, before any callback runs
        self._is_leader = False
        self.leading.clear()
        self.lost.set()
        log.warning("leader_stopped", lease=self.config.name, identity=self.config.identity, reason=why)
        for callback in self.stopped_callbacks:
            callback()

    async def _release(self) -> None:
        """Hand the Lease back (holder empty, duration 1 s) so a successor need not wait for expiry."""
        cfg = self.config
        lease = self._lease
        if lease is None or LeaseRecord.from_lease(lease).holder != cfg.identity:
            return
        stamp = format_micro_time(self._wall())
        observed = self._observed or LeaseRecord()
        record = LeaseRecord("", 1, stamp, stamp, observed.transitions)
        body = dict(lease)
        body["spec"] = {**(lease.get("spec") or {}), **record.spec()}
        try:
            self._lease = await self._within(self.api.update(cfg.namespace, cfg.name, body), cfg.retry_period)
        except Exception as exc:  # noqa: BLE001 - a failed release only delays the successor
            # Someone else already holds it, or the API is unreachable: the Lease then expires on its own.
            log.info("leader_release_failed", lease=cfg.name, identity=cfg.identity, error=repr(exc))
            return
        self._observe(record)
        log.info("leader_released", lease=cfg.name, identity=cfg.identity)


async def run_as_leader(elector: Elector, work: Callable[[], Awaitable[None]]) -> bool:
    """Campaign, run ``work()`` while leading, cancel it the moment leadership is lost.

    Returns True if ``work`` finished on its own (the Lease is then released), False if leadership was lost
    (``work`` was cancelled). Cancelling this coroutine cancels ``work`` first, then releases the Lease. An
    exception from ``work`` propagates after the Lease is released.
    """
    campaign = asyncio.create_task(elector.run(), name=f"leader-election:{elector.identity}")
    work_task: asyncio.Task[None] | None = None

    def stop_work() -> None:
        if work_task is not None:
            work_task.cancel()

    elector.stopped_callbacks.append(stop_work)
    try:
        leading = asyncio.create_task(elector.wait_leading())
        await asyncio.wait({campaign, leading}, return_when=asyncio.FIRST_COMPLETED)
        if not leading.done():
            leading.cancel()
            await campaign  # the campaign ended without leading: propagate its error
            return False
        if not elector.is_leader:
            return False

        async def wrapped() -> None:
            await work()

        work_task = asyncio.create_task(wrapped(), name=f"leader-work:{elector.identity}")
        await asyncio.wait({campaign, work_task}, return_when=asyncio.FIRST_COMPLETED)
        if work_task.done() and not work_task.cancelled():
            error = work_task.exception()
            campaign.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await campaign
            if error is not None:
                raise error
            return True
        with contextlib.suppress(asyncio.CancelledError):
            await work_task
        await campaign
        return False
    finally:
        elector.stopped_callbacks.remove(stop_work)
        if work_task is not None and not work_task.done():
            work_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await work_task
        if not campaign.done():
            campaign.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await campaign
