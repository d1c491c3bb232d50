"""A test harness: an in-process store plus the simulated cluster on fake time.

``async with Harness(nodes=4) as h:`` gives ``h.store`` (a :class:`kubesim.storage.store.Store` sharing the fake
clock), ``h.runner``, the store's garbage collector (``gc=False`` leaves it out), and ``await
h.advance(seconds)``, which moves fake time (firing timers in order) and lets every component settle after each
step, so tests never sleep. Invariant: leaving the ``async with`` stops every task the cluster started.
"""

from __future__ import annotations

import dataclasses
from types import TracebackType
from typing import Any

from kubesim.cluster import ClusterOptions, Runner, start
from kubesim.cluster.clock import FakeClock
from kubesim.storage.gc import GarbageCollector
from kubesim.storage.store import Store

JSON = dict[str, Any]


class Harness:
    def __init__(self, *, gc: bool = True, **options: Any) -> None:
        self.clock = FakeClock()
        self.store = Store(clock=self.clock.now)
        self.gc = GarbageCollector(self.store) if gc else None
        self.options = ClusterOptions(clock=self.clock, **options)
        self._runner: Runner | None = None

    @property
    def runner(self) -> Runner:
        assert self._runner is not None, "use 'async with Harness()'"
        return self._runner

    async def __aenter__(self) -> Harness:
        if self.gc is not None:
            self.gc.start()
        self._runner = await start(self.store, self.options)
        await self.runner.settle()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.runner.stop()
        if self.gc is not None:
            await self.gc.stop()

    async def restart_cluster(self) -> None:
        """Stop the in-cluster components and start fresh ones on the same store (a controller-manager restart)."""
        await self.runner.stop()
        self._runner = await start(self.store, dataclasses.replace(self.options, nodes=0))
        await self.settle()

    async def settle(self) -> None:
        """Run until the cluster and the garbage collector have nothing left to do without time passing."""
        for _ in range(1000):
            await self.runner.settle()
            if self.gc is None:
                return
            await self.gc.idle()
            if self.runner.idle():
                return
        raise TimeoutError("cluster and garbage collector did not settle")

    async def advance(self, seconds: float, step: float = 0.5) -> None:
        """Move fake time forward in steps, settling the cluster after each step."""
        await self.settle()
        remaining = seconds
        while remaining > 1e-9:
            dt = min(step, remaining)
            self.clock.advance(dt)
            remaining -= dt
            await self.settle()

    # ------------------------------------------------------------------ conveniences

    async def create(self, resource: str, obj: JSON) -> JSON:
        out: JSON = await self.store.create(resource, obj)
        await self.settle()
        return out

    def job(self, name: str, namespace: str = "default") -> JSON:
        job = self.store.get_nowait("jobs.batch", name, namespace)
        assert job is not None, f"job {namespace}/{name} not found"
        return job

    async def pods(self, namespace: str = "default", **labels: str) -> list[JSON]:
        selector = ",".join(f"{k}={v}" for k, v in labels.items()) or None
        pods: list[JSON] = await self.store.list("pods", namespace, label_selector=selector)
        return pods

    async def events(self, namespace: str = "default") -> list[tuple[str, str, str]]:
        items = await self.store.list("events", namespace)
        return [(e["involvedObject"].get("name", ""), e["reason"], e["message"]) for e in items]

    def condition(self, obj: JSON, ctype: str) -> JSON | None:
        for cond in (obj.get("status") or {}).get("conditions") or []:
            if cond.get("type") == ctype:
                return dict(cond)
        return None
