"""Benchmark of the simulated API server (kubesim): how big a cluster it serves, and how fast.

Workload (defaults; all tunable by flags):

1. ``SimCluster(nodes=65000)`` start-up: seconds until the server has all 65k simulated nodes (the in-cluster
   half creates them through the store), then a paginated LIST of the nodes over HTTP.
2. Pod creation: 100k realistic JobSet-child pods -- a share over HTTP (one aiohttp session, 50 requests in
   flight, like the controller's client) and the rest through the in-process API -- reported as creates/s.
3. A paginated LIST of the 100k pods over HTTP (``limit=500``), as an informer's initial list does.
4. Watch fan-out: W HTTP watchers on pods (``allowWatchBookmarks``) while N status updates are committed;
   events delivered per second across all watchers, and the time until every watcher has seen every update.
5. Memory: RSS growth per stored pod and per stored node (the store keeps each object's serialised bytes).

Prints one JSON document and writes it to ``scale_tests/results/bench_kubesim.json`` in the common schema
(``scale_tests/record.py``). No other simulated API server runs here, so every figure says ``baseline: null``
with that reason (in-process figures are given beside the HTTP ones as notes). It never passes or fails on
absolute time.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import resource
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kubesim import SimCluster
from scale_tests import record

JSON = dict[str, Any]


def rss_bytes() -> int:
    with open("/proc/self/statm", encoding="ascii") as fh:
        return int(fh.read().split()[1]) * resource.getpagesize()


def pod(i: int, ns: str = "bench") -> JSON:
    job = i // 8
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"js-rj-{job}-{i % 8}-abcde",
            "namespace": ns,
            "labels": {
                "jobset.sigs.k8s.io/jobset-name": "js",
                "jobset.sigs.k8s.io/replicatedjob-name": "rj",
                "jobset.sigs.k8s.io/job-index": str(job),
                "jobset.sigs.k8s.io/restart-attempt": "0",
                "batch.kubernetes.io/job-name": f"js-rj-{job}",
                "batch.kubernetes.io/job-completion-index": str(i % 8),
            },
            "annotations": {
                "batch.kubernetes.io/job-completion-index": str(i % 8),
                "jobset.sigs.k8s.io/global-replicas": "12500",
            },
        },
        "spec": {
            "hostname": f"js-rj-{job}-{i % 8}",
            "subdomain": "js",
            "restartPolicy": "Never",
            "nodeSelector": {"cloud.google.com/gke-nodepool": f"pool-{job % 4000}"},
            "containers": [
                {
                    "name": "main",
                    "image": "registry.example.com/train:1.2.3",
                    "command": ["python", "-m", "train"],
                    "env": [{"name": "JOB_COMPLETION_INDEX", "value": str(i % 8)}],
                    "resources": {
                        "requests": {"cpu": "8", "memory": "32Gi", "nvidia.com/gpu": "8"},
                        "limits": {"nvidia.com/gpu": "8"},
                    },
                }
            ],
        },
    }


async def list_all(http: aiohttp.ClientSession, url: str, limit: int, decode: bool = False) -> tuple[int, int, int]:
    """(items, pages, bytes) of a paginated LIST; without ``decode`` only the list metadata is parsed, so the
    figure is the server's (and the wire's) cost, not the benchmark client's JSON decoding."""
    items = pages = size = 0
    token = ""
    while True:
        params = {"limit": str(limit)}
        if token:
            params["continue"] = token
        async with http.get(url, params=params) as resp:
            body = await resp.read()
        if decode:
            doc = orjson.loads(body)
            items += len(doc["items"])
            meta = doc["metadata"]
        else:
            head = body[: body.index(b',"items":[')] + b"}"
            meta = orjson.loads(head)["metadata"]
            items += body.count(b'"kind":"Pod"') or body.count(b'"kind":"Node"')
        pages += 1
        size += len(body)
        token = meta.get("continue", "")
        if not token:
            return items, pages, size


async def bench_nodes(nodes: int) -> JSON:
    gc.collect()
    before = rss_bytes()
    t0 = time.perf_counter()
    sim = SimCluster(nodes=nodes)
    await sim.start()
    try:
        started = time.perf_counter() - t0
        count = len(sim.store.bucket(sim.store.info("nodes")).objects)
        grown = rss_bytes() - before
        async with aiohttp.ClientSession() as http:
            t1 = time.perf_counter()
            items, pages, size = await list_all(http, f"{sim.url}/api/v1/nodes", 500)
            listed = time.perf_counter() - t1
        return {
            "nodes": count,
            "start_seconds": round(started, 3),
            "rss_bytes_per_node": round(grown / max(count, 1)),
            "list_nodes_seconds": round(listed, 3),
            "list_nodes_items": items,
            "list_nodes_pages": pages,
            "list_nodes_mb": round(size / 2**20, 1),
        }
    finally:
        await sim.stop()


async def bench_pods(pods: int, http_pods: int, watchers: int, updates: int, concurrency: int) -> JSON:
    out: JSON = {}
    async with SimCluster(with_cluster=False, watch_window=max(200_000, updates * 2)) as sim:
        store = sim.store
        await store.create("namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "bench"}})
        gc.collect()
        before = rss_bytes()
        url = f"{sim.url}/api/v1/namespaces/bench/pods"
        conn = aiohttp.TCPConnector(limit=concurrency)
        async with aiohttp.ClientSession(connector=conn) as http:
            # -- creates over HTTP, bounded concurrency
            sem = asyncio.Semaphore(concurrency)
            failures = 0

            async def post(i: int) -> None:
                nonlocal failures
                async with (
                    sem,
                    http.post(url, data=orjson.dumps(pod(i)), headers={"Content-Type": "application/json"}) as resp,
                ):
                    await resp.read()
                    failures += resp.status != 201

            t0 = time.perf_counter()
            await asyncio.gather(*(post(i) for i in range(http_pods)))
            http_secs = time.perf_counter() - t0
            out["http_creates_per_second"] = round(http_pods / http_secs)
            out["http_create_failures"] = failures
            # -- the same from a client in another process: the server's own CPU per create
            n_ext = max(1, http_pods // 2)
            cpu0 = time.process_time()
            t0 = time.perf_counter()
            proc = await asyncio.create_subprocess_exec(
                sys.executable, __file__, "--client", url, str(http_pods), str(n_ext), str(concurrency)
            )
            await proc.wait()
            out["http_external_client_creates_per_second"] = round(n_ext / (time.perf_counter() - t0))
            out["http_server_cpu_us_per_create"] = round((time.process_time() - cpu0) / n_ext * 1e6)
            # -- creates in process
            t0 = time.perf_counter()
            for i in range(http_pods + n_ext, pods):
                await store.create("pods", pod(i))
                if i % 5000 == 0:
                    await asyncio.sleep(0)
            inproc = pods - http_pods - n_ext
            out["inprocess_creates_per_second"] = round(inproc / max(time.perf_counter() - t0, 1e-9))
            gc.collect()
            out["pods"] = len(store.bucket(store.info("pods")).objects)
            out["rss_bytes_per_pod"] = round((rss_bytes() - before) / max(out["pods"], 1))
            # -- paginated LIST (server + wire; then the same with the client decoding every page)
            t0 = time.perf_counter()
            items, pages, size = await list_all(http, url, 500)
            secs = time.perf_counter() - t0
            out["list_pods_items"] = items
            out["list_pods_seconds"] = round(secs, 3)
            out["list_pods_items_per_second"] = round(items / secs)
            out["list_pods_pages"] = pages
            out["list_pods_mb"] = round(size / 2**20, 1)
            t0 = time.perf_counter()
            await list_all(http, url, 500, decode=True)
            out["list_pods_with_client_decode_seconds"] = round(time.perf_counter() - t0, 3)
            info = store.info("pods")
            t0 = time.perf_counter()
            token: str | None = None
            while True:
                page = store.list_page(info, "bench", limit=500, continue_token=token)
                token = page.continue_token or None
                if token is None:
                    break
            out["list_pods_inprocess_pages_seconds"] = round(time.perf_counter() - t0, 3)
            # -- watch fan-out
            rv = store.resource_version
            targets = [f"js-rj-{i // 8}-{i % 8}-abcde" for i in range(updates)]
            received = [0] * watchers
            done = asyncio.Event()

            async def watch(k: int) -> None:
                params = {"watch": "1", "resourceVersion": rv, "allowWatchBookmarks": "true"}
                timeout = aiohttp.ClientTimeout(total=None, sock_read=None)
                async with http.get(url, params=params, timeout=timeout) as resp:
                    async for line in resp.content:
                        if b'"MODIFIED"' in line[:24]:
                            received[k] += 1
                            if all(r >= updates for r in received):
                                done.set()
                            if received[k] >= updates:
                                return

            tasks = [asyncio.create_task(watch(k)) for k in range(watchers)]
            while sum(len(b.watchers) for b in [store.bucket(store.info("pods"))]) < watchers:
                await asyncio.sleep(0.01)
            t0 = time.perf_counter()
            for n, name in enumerate(targets):
                obj = store.get_nowait("pods", name, "bench")
                assert obj is not None
                obj["status"] = {"phase": "Running", "podIP": f"10.0.{n // 250 % 250}.{n % 250}"}
                await store.update_status("pods", obj)
                if n % 1000 == 0:
                    await asyncio.sleep(0)
            commit_secs = time.perf_counter() - t0
            await asyncio.wait_for(done.wait(), 600)
            fan_secs = time.perf_counter() - t0
            await asyncio.gather(*tasks)
            out["watchers"] = watchers
            out["status_updates"] = updates
            out["status_updates_per_second"] = round(updates / commit_secs)
            out["watch_events_delivered_per_second"] = round(updates * watchers / fan_secs)
            out["watch_fanout_seconds"] = round(fan_secs, 3)
    return out


async def external_client(url: str, first: int, count: int, concurrency: int) -> None:
    """Client half of the cross-process create measurement (run as ``--client``)."""
    sem = asyncio.Semaphore(concurrency)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as http:

        async def post(i: int) -> None:
            async with (
                sem,
                http.post(url, data=orjson.dumps(pod(i)), headers={"Content-Type": "application/json"}) as resp,
            ):
                await resp.read()

        await asyncio.gather(*(post(first + i) for i in range(count)))


async def main() -> None:
    if len(sys.argv) == 6 and sys.argv[1] == "--client":
        await external_client(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]))
        return
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nodes", type=int, default=65_000)
    ap.add_argument("--pods", type=int, default=100_000)
    ap.add_argument("--http-pods", type=int, default=10_000)
    ap.add_argument("--watchers", type=int, default=4)
    ap.add_argument("--updates", type=int, default=20_000)
    ap.add_argument("--concurrency", type=int, default=50)
    args = ap.parse_args()
    load_before = record.load_average()
    result: JSON = {"workload_concurrency": args.concurrency}
    if args.nodes:
        result["nodes"] = await bench_nodes(args.nodes)
    result["pods"] = await bench_pods(args.pods, args.http_pods, args.watchers, args.updates, args.concurrency)
    doc = record.document(
        "bench_kubesim", figures(result), load_before=load_before, workload=vars(args), details=result
    )
    record.write(doc, command="python -m scale_tests.bench_kubesim " + " ".join(sys.argv[1:]))
    print(json.dumps(doc, indent=2, ensure_ascii=False))


NO_BASELINE = "no other simulated API server runs here to compare with"


def figures(r: JSON) -> list[JSON]:
    p = r["pods"]
    out = []
    if "nodes" in r:
        n = r["nodes"]
        out.append(
            record.figure(
                "kubesim",
                f"SimCluster start-up until its {n['nodes']:,} nodes exist (in process, no kubeconfig written)",
                n["start_seconds"],
                "s",
                baseline_reason=NO_BASELINE,
                size=f"{n['nodes']:,} nodes",
            )
        )
    out += [
        record.figure(
            "kubesim",
            f"paginated LIST of {p['list_pods_items']:,} pods over HTTP (500 per page, {p['list_pods_mb']:g} MiB), "
            "client parses list metadata only",
            p["list_pods_seconds"],
            "s",
            baseline_reason=NO_BASELINE,
            size=f"{p['pods']:,} pods",
            note=f"{p['list_pods_inprocess_pages_seconds']:g} s for the same pages in process",
        ),
        record.figure(
            "kubesim",
            f"pod creates over HTTP ({r['workload_concurrency']} in flight, client in the same process)",
            p["http_creates_per_second"],
            "creates/s",
            baseline_reason=NO_BASELINE,
            size=f"{p['pods']:,} pods",
            note=f"server CPU {p['http_server_cpu_us_per_create']:,} µs per create (client in another process); "
            f"{p['inprocess_creates_per_second']:,}/s in process",
        ),
        record.figure(
            "kubesim",
            f"watch events delivered per second to {p['watchers']} HTTP watchers while "
            f"{p['status_updates']:,} status updates commit",
            p["watch_events_delivered_per_second"],
            "events/s",
            baseline_reason=NO_BASELINE,
            size=f"{p['pods']:,} pods",
        ),
        record.figure(
            "kubesim",
            "RSS growth per stored pod (the store keeps serialised bytes)",
            round(p["rss_bytes_per_pod"] / 1024, 2),
            "KiB",
            baseline_reason=NO_BASELINE,
            size=f"{p['pods']:,} pods",
        ),
    ]
    return out


if __name__ == "__main__":
    asyncio.run(main())
