"""Cache-layer benchmarks (goals P3-P6, P8 of performance.md), each with its baseline measured in the same run.

Workload: realistic JobSet child pods (~6.4 KB of JSON with managedFields, ``scale_tests/fixtures.py``), nodes
with GPU capacity and Jobs owned by a JobSet. Figures (CPU time via ``time.process_time``, RSS from
``/proc/self/status``) are printed as JSON and written to ``scale_tests/results/bench_cache.json``.

    decode   pods/s per core: our slim record vs orjson dict vs kubernetes_asyncio V1Pod       (context)
    ingest   µs CPU and events/s per watch event: decode + store + handler + enqueue            (P3, P6)
             baseline: the same path with orjson dicts in a dict store
    memory   RSS for 65k nodes + 100k pods + 15k Jobs as slim records                          (P4)
             baseline: orjson dicts, measured on a sample and scaled per object
    cold     CPU to LIST (500-item pages) and decode 100k pods + 65k nodes into the stores      (P5)
    gc       full-collection pause with everything cached, before and after gc.freeze()         (P8)
             baseline: the same number of objects as dicts (sampled and scaled)
    storm    reconciles per event when 60k pod events for 10 JobSets stream through the queue    (P3)
             baseline: a queue without deduplication (every event is one reconcile)

Run: ``.venv/bin/python -m scale_tests.bench_cache [--quick]``. Never a pass/fail test.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from scale_tests import fixtures

RESULTS = Path(__file__).parent / "results"


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def cpu(fn: Any, *args: Any) -> tuple[float, Any]:
    start = time.process_time()
    out = fn(*args)
    return time.process_time() - start, out


# --------------------------------------------------------------------------------------------- decode


def bench_decode(n: int) -> dict[str, Any]:
    import msgspec

    from api.records import Pod

    raws = [orjson.dumps(fixtures.pod(i)) for i in range(n)]
    dec = msgspec.json.Decoder(Pod)
    t_slim, _ = cpu(lambda: [dec.decode(r) for r in raws])
    t_dict, _ = cpu(lambda: [orjson.loads(r) for r in raws])
    from kubernetes_asyncio.client import ApiClient as K8sClient

    few = raws[: max(1, n // 20)]

    async def models() -> float:
        k8s = K8sClient()
        try:
            t, _ = cpu(lambda: [k8s._ApiClient__deserialize(orjson.loads(r), "V1Pod") for r in few])
        finally:
            await k8s.close()
        return t

    t_k8s = asyncio.run(models())
    return {
        "pod_json_bytes": len(raws[0]),
        "slim_record_per_s": round(n / t_slim),
        "orjson_dict_per_s": round(n / t_dict),
        "kubernetes_asyncio_model_per_s": round(len(few) / t_k8s),
        "ratio_slim_vs_k8s_model": round((n / t_slim) / (len(few) / t_k8s), 1),
    }


# --------------------------------------------------------------------------------------------- ingest


def _pod_store() -> Any:
    from api.records import Pod
    from cache.store import Store

    return Store[Pod](lambda p: f"{p.metadata.namespace}/{p.metadata.name}", {"jobset": _jobset_index})


def _jobset_index(p: Any) -> list[str]:
    name = p.metadata.labels.get("jobset.sigs.k8s.io/jobset-name")
    return [f"{p.metadata.namespace}/{name}"] if name else []


def _informer(store: Any) -> Any:
    from api.records import Pod
    from cache.informer import Informer

    return Informer(None, "/api/v1/pods", Pod, store)  # type: ignore[arg-type]


def bench_ingest(pods: int, events: int) -> dict[str, Any]:
    from cache.queue import WorkQueue

    objs = [fixtures.pod(i) for i in range(pods)]
    lines = []
    for e in range(events):
        obj = objs[e % pods]
        obj["metadata"]["resourceVersion"] = str(10_000 + e)
        lines.append(fixtures.watch_line("MODIFIED", obj))

    async def ours() -> float:
        store = _pod_store()
        inf = _informer(store)
        queue: WorkQueue[str] = WorkQueue(name="bench")

        def handler(old: Any, new: Any) -> None:
            obj = new if new is not None else old
            if (name := obj.metadata.labels.get("jobset.sigs.k8s.io/jobset-name")) is not None:
                queue.add(f"{obj.metadata.namespace}/{name}")

        inf.add_handler(handler)
        start = time.process_time()
        for line in lines:
            inf._handle_line(line)
        return time.process_time() - start

    async def dict_baseline() -> float:
        store: dict[str, Any] = {}
        queue: WorkQueue[str] = WorkQueue(name="bench")
        start = time.process_time()
        for line in lines:
            ev = orjson.loads(line)
            obj = ev["object"]
            meta = obj["metadata"]
            store[f"{meta['namespace']}/{meta['name']}"] = obj
            queue.add(f"{meta['namespace']}/{meta['labels']['jobset.sigs.k8s.io/jobset-name']}")
        return time.process_time() - start

    t_ours = asyncio.run(ours())
    t_dict = asyncio.run(dict_baseline())
    return {
        "events": events,
        "us_per_event": round(t_ours / events * 1e6, 2),
        "events_per_s": round(events / t_ours),
        "baseline_dict_us_per_event": round(t_dict / events * 1e6, 2),
        "ratio_vs_dict": round(t_ours / t_dict, 2),
        "goal_P3_us": 20,
        "goal_P6_events_per_s": 100_000,
    }


# --------------------------------------------------------------------------------------------- memory, gc


def _child(mode: str, pods: int, nodes: int, jobs: int) -> dict[str, Any]:
    """Runs in a fresh interpreter so RSS reflects only this workload."""
    import msgspec

    from api.records import Job, Node, Pod

    gc.collect()
    base = rss_mib()
    keep: list[Any] = []
    if mode == "slim":
        dp, dn, dj = msgspec.json.Decoder(Pod), msgspec.json.Decoder(Node), msgspec.json.Decoder(Job)
        for i in range(pods):
            keep.append(dp.decode(orjson.dumps(fixtures.pod(i))))
        for i in range(nodes):
            keep.append(dn.decode(orjson.dumps(fixtures.node(i))))
        for i in range(jobs):
            keep.append(dj.decode(orjson.dumps(fixtures.job(i))))
    else:
        for i in range(pods):
            keep.append(orjson.loads(orjson.dumps(fixtures.pod(i))))
        for i in range(nodes):
            keep.append(orjson.loads(orjson.dumps(fixtures.node(i))))
        for i in range(jobs):
            keep.append(orjson.loads(orjson.dumps(fixtures.job(i))))
    gc.collect()
    used = rss_mib() - base
    t0 = time.perf_counter()
    gc.collect()
    pause = time.perf_counter() - t0
    gc.freeze()
    t0 = time.perf_counter()
    gc.collect()
    pause_frozen = time.perf_counter() - t0
    return {
        "rss_mib": round(used, 1),
        "gc_pause_ms": round(pause * 1e3, 1),
        "gc_pause_frozen_ms": round(pause_frozen * 1e3, 1),
    }


def run_child(mode: str, pods: int, nodes: int, jobs: int) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-m", "scale_tests.bench_cache", "--child", mode, str(pods), str(nodes), str(jobs)],
        check=True,
        capture_output=True,
        text=True,
        cwd=Path(__file__).parent.parent,
    )
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def bench_memory_and_gc(pods: int, nodes: int, jobs: int, sample: int) -> dict[str, Any]:
    slim = run_child("slim", pods, nodes, jobs)
    scale = pods / sample
    dicts = run_child("dict", sample, int(nodes / scale), int(jobs / scale))
    return {
        "objects": {"pods": pods, "nodes": nodes, "jobs": jobs},
        "slim_rss_mib": slim["rss_mib"],
        "slim_gc_pause_ms": slim["gc_pause_ms"],
        "slim_gc_pause_after_freeze_ms": slim["gc_pause_frozen_ms"],
        "baseline_dict_rss_mib_scaled": round(dicts["rss_mib"] * scale, 1),
        "baseline_dict_gc_pause_ms_scaled": round(dicts["gc_pause_ms"] * scale, 1),
        "baseline_sample_pods": sample,
        "ratio_rss_dict_vs_slim": round(dicts["rss_mib"] * scale / max(slim["rss_mib"], 0.1), 1),
        "goal_P4_mib": 400,
        "goal_P8_ms": 100,
    }


# --------------------------------------------------------------------------------------------- cold start


class _PagedClient:
    def __init__(self, pages: dict[str, list[bytes]]) -> None:
        self.pages = pages

    async def request(self, method: str, path: str, params: dict[str, str] | None = None, **_: Any) -> bytes:
        cont = (params or {}).get("continue", "")
        idx = int(cont) if cont else 0
        return self.pages[path][idx]


def _paged(kind: str, items: Iterator[dict[str, Any]], total: int, page: int) -> list[bytes]:
    out = []
    batch: list[dict[str, Any]] = []
    for n, obj in enumerate(items, 1):
        batch.append(obj)
        if len(batch) == page or n == total:
            more = n < total
            out.append(fixtures.list_body(kind, batch, 99, str(len(out) + 1) if more else ""))
            batch = []
    return out


def bench_cold(pods: int, nodes: int) -> dict[str, Any]:
    from api.records import Node, Pod
    from cache.informer import Informer
    from cache.store import Store

    pages = {
        "/api/v1/pods": _paged("Pod", (fixtures.pod(i) for i in range(pods)), pods, 500),
        "/api/v1/nodes": _paged("Node", (fixtures.node(i) for i in range(nodes)), nodes, 500),
    }
    client = _PagedClient(pages)
    pod_store = _pod_store()
    node_store: Store[Node] = Store(lambda n: n.metadata.name)

    async def go() -> float:
        start = time.process_time()
        await Informer(client, "/api/v1/pods", Pod, pod_store).list_once()  # type: ignore[arg-type]
        await Informer(client, "/api/v1/nodes", Node, node_store).list_once()  # type: ignore[arg-type]
        return time.process_time() - start

    t = asyncio.run(go())
    assert len(pod_store) == pods
    assert len(node_store) == nodes
    mib = sum(len(p) for ps in pages.values() for p in ps) / 2**20
    t_json = time.process_time()
    for ps in pages.values():
        for p in ps:
            orjson.loads(p)
    t_json = time.process_time() - t_json
    return {
        "pods": pods,
        "nodes": nodes,
        "list_mib": round(mib, 1),
        "cpu_s": round(t, 2),
        "baseline_orjson_parse_only_cpu_s": round(t_json, 2),
        "goal_P5_s": 2.0,
    }


# --------------------------------------------------------------------------------------------- storm


def bench_storm(events: int, jobsets: int, reconcile_ms: float) -> dict[str, Any]:
    from cache.queue import WorkQueue

    keys = [f"default/js-{i}" for i in range(jobsets)]

    async def run(dedup: bool) -> int:
        queue: WorkQueue[str] = WorkQueue(name="storm")
        plain: asyncio.Queue[str] = asyncio.Queue()
        reconciles = 0
        done_producing = asyncio.Event()

        async def worker() -> None:
            nonlocal reconciles
            while True:
                if dedup:
                    if done_producing.is_set() and len(queue) == 0:
                        return
                    try:
                        key = await asyncio.wait_for(queue.get(), 0.05)
                    except TimeoutError:
                        continue
                else:
                    if done_producing.is_set() and plain.empty():
                        return
                    try:
                        key = await asyncio.wait_for(plain.get(), 0.05)
                    except TimeoutError:
                        continue
                end = time.perf_counter() + reconcile_ms / 1e3
                while time.perf_counter() < end:
                    pass
                reconciles += 1
                if dedup:
                    queue.done(key)

        w = asyncio.create_task(worker())
        # The informer hands over a watch chunk of ~100 events between awaits.
        for e in range(events):
            key = keys[e % jobsets]
            if dedup:
                queue.add(key)
            else:
                plain.put_nowait(key)
            if e % 100 == 99:
                await asyncio.sleep(0)
        done_producing.set()
        await w
        return reconciles

    ours = asyncio.run(run(True))
    base = asyncio.run(run(False))
    return {
        "events": events,
        "jobsets": jobsets,
        "reconcile_ms": reconcile_ms,
        "reconciles": ours,
        "reconciles_per_100_events": round(ours / events * 100, 2),
        "baseline_no_dedup_reconciles": base,
        "goal_P3_per_100_events": 1,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="a tenth of the workload, for a smoke run")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        mode, pods, nodes, jobs = args.child
        print(json.dumps(_child(mode, int(pods), int(nodes), int(jobs))))
        return
    f = 10 if args.quick else 1
    results = {
        "machine": {"python": sys.version.split()[0]},
        "decode": bench_decode(20_000 // f),
        "ingest": bench_ingest(pods=10_000 // f, events=200_000 // f),
        "memory_gc": bench_memory_and_gc(100_000 // f, 65_000 // f, 15_000 // f, sample=10_000 // f),
        "cold": bench_cold(100_000 // f, 65_000 // f),
        "storm": bench_storm(60_000 // f, 10, 2.0),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "bench_cache.json").write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
