"""kubesim: a simulated Kubernetes cluster for tests, demos and what-if runs (never a production component).

Role: ``SimCluster`` wires together the storage (:mod:`kubesim.storage`: the object store with the apiserver's
write semantics, CRDs, admission, the garbage and namespace collectors), the HTTP API server
(:mod:`kubesim.apiserver`) and the in-cluster behaviour (:mod:`kubesim.cluster`: Job controller, scheduler,
kubelets, nodes)::

    async with SimCluster(port=0, nodes=0, gpus_per_node=8, nodes_per_pool=16) as sim:
        sim.url                      # http://127.0.0.1:<port>
        sim.store                    # the in-process API (see kubesim.storage.store)
        sim.write_kubeconfig(path)   # context/user/cluster named "kubesim"
        sim.faults                   # fault injection knobs (kubesim.apiserver.faults.Faults)
        sim.admission.endpoints      # (namespace, service) -> "https://127.0.0.1:<port>" for webhooks
        sim.cluster                  # the kubesim.cluster Runner (None with with_cluster=False)

Keyword options: ``bookmark_interval`` (seconds between watch BOOKMARKs, default 1), ``watch_window`` (events
kept per resource for watches from an old resourceVersion), ``with_cluster`` (False: API server only),
``clock`` (time source of object timestamps), ``cluster_options`` (extra ``ClusterOptions`` fields; a ``clock``
there is shared with the store).

``serve(kubeconfig_path, port, nodes, gpus_per_node, nodes_per_pool)`` runs one until SIGINT/SIGTERM and writes
the kubeconfig once it serves (``pyjobset sim`` calls it).

Layers (checked by import-linter): ``apiserver`` and ``cluster`` (independent of each other) over ``storage``
over ``util``. ``util`` holds what every layer shares (errors, selectors, JSON copies, timestamps).

Invariants: the server listens on 127.0.0.1 only; leaving the ``async with`` block stops the cluster
controllers first, then the garbage collector, then the HTTP server, and leaves no task behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Callable
from typing import Any

import yaml

from kubesim.apiserver.faults import Faults
from kubesim.apiserver.server import ApiServer
from kubesim.cluster import ClusterOptions, Runner
from kubesim.cluster import start as start_cluster
from kubesim.storage import admission, schema
from kubesim.storage.gc import GarbageCollector
from kubesim.storage.store import Store
from kubesim.util.errors import ApiError

__all__ = ["ApiError", "Faults", "SimCluster", "Store", "serve"]


class SimCluster:
    """A running simulated cluster: store + API server + collectors (+ ``kubesim.cluster`` if present)."""

    def __init__(
        self,
        port: int = 0,
        nodes: int = 0,
        gpus_per_node: int = 8,
        nodes_per_pool: int = 16,
        *,
        bookmark_interval: float = 1.0,
        watch_window: int = 50_000,
        with_cluster: bool = True,
        clock: Callable[[], float] | None = None,
        cluster_options: dict[str, Any] | None = None,
    ) -> None:
        shared = (cluster_options or {}).get("clock")
        if clock is None and shared is not None and callable(getattr(shared, "now", None)):
            clock = shared.now  # object timestamps and the in-cluster controllers' time agree
        self.store = Store(watch_window=watch_window, clock=clock or time.time)
        self.server = ApiServer(self.store, bookmark_interval=bookmark_interval)
        self.gc = GarbageCollector(self.store)
        self._port = port
        self._nodes = nodes
        self._gpus = gpus_per_node
        self._per_pool = nodes_per_pool
        self._with_cluster = with_cluster
        self._cluster_options = dict(cluster_options or {})
        self.cluster: Runner | None = None  # the runner kubesim.cluster.start returned
        self.admission: admission.Admission | None = None  # .endpoints maps webhook services to URLs
        self.url = ""

    @property
    def faults(self) -> Faults:
        return self.server.faults

    @property
    def port(self) -> int:
        return self.server.port

    async def start(self) -> SimCluster:
        schema.install(self.store)
        self.admission = admission.install(self.store)
        port = await self.server.start(self._port)
        self.url = f"http://127.0.0.1:{port}"
        self.gc.start()
        if self._with_cluster:
            opts = ClusterOptions(
                nodes=self._nodes,
                gpus_per_node=self._gpus,
                nodes_per_pool=self._per_pool,
                **self._cluster_options,
            )
            try:
                self.cluster = await start_cluster(self.store, opts)
            except BaseException:
                await self.gc.stop()
                await self.server.stop()
                raise
        return self

    async def stop(self) -> None:
        if self.cluster is not None:
            runner, self.cluster = self.cluster, None
            await runner.stop()
        await self.gc.stop()
        await self.server.stop()
        if self.admission is not None:
            await self.admission.close()

    async def __aenter__(self) -> SimCluster:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def kubeconfig(self) -> dict[str, Any]:
        return {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "kubesim", "cluster": {"server": self.url}}],
            "users": [{"name": "kubesim", "user": {"token": "kubesim"}}],
            "contexts": [
                {"name": "kubesim", "context": {"cluster": "kubesim", "user": "kubesim", "namespace": "default"}}
            ],
            "current-context": "kubesim",
            "preferences": {},
        }

    def write_kubeconfig(self, path: str | os.PathLike[str]) -> str:
        """Write a kubeconfig for this cluster (atomically) and return its path."""
        path = os.fspath(path)
        tmp = f"{path}.tmp{os.getpid()}"
        with open(tmp, "w", encoding="utf-8") as fh:
            yaml.safe_dump(self.kubeconfig(), fh)
        os.replace(tmp, path)
        return path


async def serve(
    kubeconfig_path: str,
    port: int = 0,
    nodes: int = 0,
    gpus_per_node: int = 8,
    nodes_per_pool: int = 16,
) -> None:
    """Run a simulated cluster until SIGINT/SIGTERM; write the kubeconfig once it serves."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    async with SimCluster(port=port, nodes=nodes, gpus_per_node=gpus_per_node, nodes_per_pool=nodes_per_pool) as sim:
        sim.write_kubeconfig(kubeconfig_path)
        await stop.wait()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.remove_signal_handler(sig)
