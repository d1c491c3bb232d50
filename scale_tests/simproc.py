"""A simulated API server (kubesim) in its own process, filled with benchmark objects and driven over stdin.

Role: give the cache benchmarks a real HTTP API server whose CPU is not the benchmark's: LISTs and WATCHes go
over loopback HTTP as in production, and status updates ("storms") arrive at a timed rate from another process.

    python -m scale_tests.simproc KUBECONFIG --pods N --nodes M --jobsets J

prints ``ready <pods> <nodes>`` once the objects exist, then reads commands, one per line, from stdin:

    storm RATE COUNT    update COUNT pod statuses round-robin at RATE per second (on a schedule: late updates
                        are sent at once, as a burst of watch events would arrive); answers ``done <seconds>``
    (end of input)      stop

Invariants: objects come from ``scale_tests.fixtures`` (realistic ~6 KB pods), with server-owned fields removed;
the process listens on 127.0.0.1 only; nothing here measures the benchmark's side.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from scale_tests import fixtures

SERVER_FIELDS = ("uid", "resourceVersion", "creationTimestamp", "managedFields")


def _clean(obj: dict[str, Any]) -> dict[str, Any]:
    for key in SERVER_FIELDS:
        obj["metadata"].pop(key, None)
    return obj


def pod_name(i: int, jobsets: int) -> str:
    return str(fixtures.pod(i, jobset=f"js-{i % jobsets}")["metadata"]["name"])


async def serve(kubeconfig: str, pods: int, nodes: int, jobsets: int) -> None:
    import kubesim

    async with kubesim.SimCluster(with_cluster=False, watch_window=200_000) as sim:
        store = sim.store
        with contextlib.suppress(Exception):  # "default" may exist already
            await store.create("namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "default"}})
        for i in range(nodes):
            await store.create("nodes", _clean(fixtures.node(i)))
        names = []
        for i in range(pods):
            obj = _clean(fixtures.pod(i, jobset=f"js-{i % jobsets}"))
            names.append(obj["metadata"]["name"])
            await store.create("pods", obj)
        sim.write_kubeconfig(kubeconfig)
        print(f"ready {pods} {nodes}", flush=True)
        loop = asyncio.get_running_loop()
        lines = _stdin_lines(loop)
        async for line in lines:
            cmd = line.split()
            if cmd[:1] == ["storm"]:
                secs = await storm(store, names, float(cmd[1]), int(cmd[2]))
                print(f"done {secs:.3f}", flush=True)


async def _stdin_lines(loop: asyncio.AbstractEventLoop) -> AsyncIterator[str]:
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line:
            return
        yield line


_SEQ = [0]


async def storm(store: Any, names: list[str], rate: float, count: int) -> float:
    """Each update changes the pod (a fresh value every storm: an unchanged object makes no watch event)."""
    start = time.monotonic()
    for n in range(count):
        due = start + n / rate
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        name = names[n % len(names)]
        obj = store.get_nowait("pods", name, "default")
        _SEQ[0] += 1
        obj["status"]["podIP"] = f"10.{_SEQ[0] // 62500 % 250}.{_SEQ[0] // 250 % 250}.{_SEQ[0] % 250}"
        await store.update_status("pods", obj)
    return time.monotonic() - start


@contextlib.asynccontextmanager
async def sim_process(
    kubeconfig: str, *, pods: int = 0, nodes: int = 0, jobsets: int = 10
) -> AsyncIterator[asyncio.subprocess.Process]:
    """Start the simulated server process; yields it once ``ready`` (its kubeconfig is written)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "scale_tests.simproc",
        kubeconfig,
        "--pods",
        str(pods),
        "--nodes",
        str(nodes),
        "--jobsets",
        str(jobsets),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        cwd=Path(__file__).resolve().parent.parent,
    )
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 900)
        if not line.startswith(b"ready"):
            raise RuntimeError(f"simulated API server did not start: {line!r}")
        yield proc
    finally:
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            await asyncio.wait_for(proc.wait(), 30)
        except TimeoutError:
            proc.kill()
            await proc.wait()


async def command(proc: asyncio.subprocess.Process, text: str) -> str:
    """Send one command and return its answer line."""
    assert proc.stdin is not None
    assert proc.stdout is not None
    proc.stdin.write(text.encode() + b"\n")
    await proc.stdin.drain()
    return (await proc.stdout.readline()).decode().strip()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("kubeconfig")
    ap.add_argument("--pods", type=int, default=0)
    ap.add_argument("--nodes", type=int, default=0)
    ap.add_argument("--jobsets", type=int, default=10)
    args = ap.parse_args()
    asyncio.run(serve(args.kubeconfig, args.pods, args.nodes, args.jobsets))


if __name__ == "__main__":
    main()
