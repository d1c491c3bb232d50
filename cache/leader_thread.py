"""Leader election on a thread of its own, so that no reconcile can delay a renewal.

Role: run :class:`cache.leader.LeaderElector` — the same protocol and timings (client-go's: lease 15 s, renew
deadline 10 s, retry 2 s unless configured) — on a dedicated thread with its own asyncio loop and its own
``ApiClient`` (its own HTTP session and connections), built from the controller's ``ClusterConfig``: the same
TLS context and the same credentials provider (tokens rotate; ``cache.credentials`` is safe to share across
loops). The controller's loop may be held for a while by a long piece of work (building the plan of a very
large JobSet, a full garbage collection of a big cache, a slow callback); on the loop, the renewal would wait
behind it and a stall longer than the renew deadline would cost the Lease. Here it does not wait: while the
main thread runs Python the renewer still gets the interpreter every switch interval (5 ms by default), and
while the main thread sleeps or waits on I/O it runs freely. What still delays it is one native call that holds
the interpreter throughout (decoding one enormous JSON body, a full garbage collection), by that call's length;
the controller keeps those short (incremental plans, ``gc.freeze`` of the cache) for its own loop's sake anyway.

The object offers the controller's loop what :class:`~cache.leader.LeaderElector` offers (``run``,
``wait_leading``, ``leading``/``lost`` events, the three callback lists, ``is_leader``, ``may_write``), so
``controller.app`` and :func:`cache.leader.run_as_leader` use either.

Invariants:

* ``may_write()`` is the thread elector's own fence, readable from any thread: false from the moment the
  elector stops leading (before any callback runs) or its renew deadline passes on the monotonic clock — even
  while the controller's loop is blocked and has not yet heard of the loss, so the writes it sends when it
  wakes are refused (``ApiClient.write_fence``).
* Callbacks run on the loop that called ``run()``, in the order the elector went through its transitions;
  ``leading``, ``lost`` and ``is_leader`` are that loop's view and change only there.
* ``run()`` returns when the elector has lost the Lease (after the stopped callbacks ran). Cancelling it stops
  leading and releases the Lease on the thread and returns (re-raising the cancellation) only when the thread
  has finished, so a clean shutdown hands the Lease over before the process exits.
* One ``run()`` per object. The thread touches nothing of the controller's loop but ``call_soon_threadsafe``.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from typing import Any

from cache.client import ApiClient, ClusterConfig
from cache.leader import ClientLeaseApi, LeaderElectionConfig, LeaderElector, LeaseApi

__all__ = ["ThreadedLeaderElector"]

LEASE_CLIENT_QPS = 5.0
LEASE_CLIENT_BURST = 10
"""The renewer's own client needs two calls per retry period; its bucket is never shared with bulk writers."""


class ThreadedLeaderElector:
    """A :class:`LeaderElector` campaigning on its own thread and loop (see the module docstring)."""

    def __init__(
        self,
        cluster: ClusterConfig,
        config: LeaderElectionConfig,
        *,
        lease_api: Callable[[ApiClient], LeaseApi] = ClientLeaseApi,
        qps: float = LEASE_CLIENT_QPS,
        burst: int = LEASE_CLIENT_BURST,
        on_started_leading: Callable[[], None] | None = None,
        on_stopped_leading: Callable[[], None] | None = None,
        on_new_leader: Callable[[str], None] | None = None,
    ) -> None:
        self.cluster = cluster
        self.config = config
        self._lease_api = lease_api
        self._qps = qps
        self._burst = burst
        self.started_callbacks: list[Callable[[], None]] = [on_started_leading] if on_started_leading else []
        self.stopped_callbacks: list[Callable[[], None]] = [on_stopped_leading] if on_stopped_leading else []
        self.new_leader_callbacks: list[Callable[[str], None]] = [on_new_leader] if on_new_leader else []
        self.leading = asyncio.Event()
        """Set on the caller's loop while this process leads (as that loop has heard)."""
        self.lost = asyncio.Event()
        """Set on the caller's loop when leadership ended in this ``run``."""
        self._is_leader = False
        self._lock = threading.Lock()  # guards the hand-over of the thread's loop and task to ``_request_stop``
        self._elector: LeaderElector | None = None
        self._thread: threading.Thread | None = None
        self._thread_loop: asyncio.AbstractEventLoop | None = None
        self._campaign: asyncio.Task[Any] | None = None
        self._stop_requested = False

    # --- state (read on the caller's loop) -----------------------------------------------------------------

    @property
    def identity(self) -> str:
        return self.config.identity

    @property
    def is_leader(self) -> bool:
        """Whether this process leads, as the caller's loop has been told (``may_write`` is the live fence)."""
        return self._is_leader

    @property
    def observed_leader(self) -> str:
        elector = self._elector
        return elector.observed_leader if elector is not None else ""

    @property
    def blocked_cause(self) -> str | None:
        elector = self._elector
        return elector.blocked_cause if elector is not None else None

    @property
    def thread(self) -> threading.Thread | None:
        """The renewer's thread while ``run()`` is active (tests, diagnostics)."""
        return self._thread

    def may_write(self) -> bool:
        """The write fence, from any thread: the renewing elector leads and its authority has not run out."""
        elector = self._elector
        return elector is not None and elector.may_write()

    async def wait_leading(self) -> None:
        await self.leading.wait()

    # --- the campaign --------------------------------------------------------------------------------------

    async def run(self) -> None:
        """Campaign on the thread until the Lease is lost (then return); on cancellation release and re-raise."""
        loop = asyncio.get_running_loop()
        if self._thread is not None:
            raise RuntimeError("ThreadedLeaderElector.run() may be called once")
        self.lost.clear()
        finished: asyncio.Future[BaseException | None] = loop.create_future()
        thread = threading.Thread(
            target=self._thread_main, args=(loop, finished), name=f"leader-election:{self.identity}", daemon=True
        )
        self._thread = thread
        thread.start()
        try:
            error = await asyncio.shield(finished)
        except asyncio.CancelledError:
            self._request_stop()
            await asyncio.shield(finished)  # the thread stops leading and releases the Lease first
            raise
        finally:
            if finished.done():
                thread.join()  # it has posted its last callback and is returning: a join of microseconds
        if error is not None:
            raise error

    def _thread_main(self, main: asyncio.AbstractEventLoop, finished: asyncio.Future[BaseException | None]) -> None:
        error: BaseException | None = None
        try:
            asyncio.run(self._campaign_main(main))
        except asyncio.CancelledError:
            pass  # a requested stop
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's loop, raised there by run()
            error = exc
        self._post(main, _settle, finished, error)

    async def _campaign_main(self, main: asyncio.AbstractEventLoop) -> None:
        async with ApiClient(self.cluster, qps=self._qps, burst=self._burst) as client:
            elector = LeaderElector(
                self._lease_api(client),
                self.config,
                on_started_leading=lambda: self._post(main, self._started),
                on_stopped_leading=lambda: self._post(main, self._stopped),
                on_new_leader=lambda who: self._post(main, self._new_leader, who),
            )
            with self._lock:
                if self._stop_requested:
                    return
                self._elector = elector
                self._thread_loop = asyncio.get_running_loop()
                self._campaign = asyncio.current_task()
            await elector.run()

    def _request_stop(self) -> None:
        with self._lock:
            self._stop_requested = True
            loop, task = self._thread_loop, self._campaign
        if loop is not None and task is not None:
            with contextlib.suppress(RuntimeError):  # the thread's loop has closed: nothing left to stop
                loop.call_soon_threadsafe(task.cancel)

    @staticmethod
    def _post(main: asyncio.AbstractEventLoop, fn: Callable[..., None], *args: Any) -> None:
        with contextlib.suppress(RuntimeError):  # the caller's loop is closed: nobody is left to tell
            main.call_soon_threadsafe(fn, *args)

    # --- transitions, on the caller's loop -----------------------------------------------------------------

    def _started(self) -> None:
        self._is_leader = True
        self.leading.set()
        for callback in list(self.started_callbacks):
            callback()

    def _stopped(self) -> None:
        if not self._is_leader:
            return
        self._is_leader = False
        self.leading.clear()
        self.lost.set()
        for callback in list(self.stopped_callbacks):
            callback()

    def _new_leader(self, who: str) -> None:
        for callback in list(self.new_leader_callbacks):
            callback(who)


def _settle(finished: asyncio.Future[BaseException | None], error: BaseException | None) -> None:
    if not finished.done():
        finished.set_result(error)
