"""Benchmark of the simulated API server (kubesim): how big a cluster it serves, and how fast.

Workload (defaults; all tunable by flags):

1. ``SimCluster(nodes=65000)`` start-up: seconds until the server has all 65k simulated nodes (the in-cluster
   half creates them through the store), then a paginated LIST of the nodes over HTTP.
2. Pod creation: 100k realistic JobSet-child pods -- a share over HTTP (one aiohttp session, 50 requests in
   flight, like the controller's client), a share from a client in another process (so the CPU is the
   server's), the rest through the in-process API -- reported as creates/s.
2b. Job creation (goal P12, docs/design/performance.md): the batch/v1 Jobs a 15k-replica JobSet's controller
   posts (``build_job``, owned by a JobSet that exists), from a client in ANOTHER process: ``--concurrency``
   HTTP/1.1 keep-alive connections with one request in flight each (what the controller's aiohttp session does,
   with aiohttp's request headers), requests encoded before the clock starts, so the client's own cost is small
   and the figure is the server's: creates/s (median of ``--job-rounds`` rounds) and the server's CPU per create
   (user + system, from ``getrusage``). Once on the API server alone (API server + garbage collector, as
   ``bench_jobset`` runs it), once with the Job controller, scheduler and kubelets of ``SimCluster`` reacting to
   every Job.
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
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kubesim import SimCluster
from kubesim.util.errors import ApiError
from scale_tests import fixtures, record

JSON = dict[str, Any]
ROOT = Path(__file__).resolve().parents[1]


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
            ext = await external_creates(
                sim.port,
                "/api/v1/namespaces/bench/pods",
                [orjson.dumps(pod(http_pods + i)) for i in range(n_ext)],
                concurrency,
            )
            out["http_external_client_creates_per_second"] = ext["creates_per_second"]
            out["http_server_cpu_us_per_create"] = ext["server_cpu_us_per_create"]
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


# ---------------------------------------------------------------------------------- creates from another process


class _Conn(asyncio.Protocol):
    """One keep-alive connection of the raw client: one request in flight, the response read by Content-Length."""

    def __init__(self) -> None:
        self.buf = b""
        self.waiter: asyncio.Future[int] | None = None
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buf += data
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            return
        head = self.buf[:end].lower()
        at = head.find(b"\r\ncontent-length:")
        length = int(head[at + 17 :].split(b"\r\n", 1)[0]) if at >= 0 else 0
        if len(self.buf) < end + 4 + length:
            return
        status = int(self.buf[9:12])
        self.buf = self.buf[end + 4 + length :]
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(status)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError(f"connection lost: {exc}"))


def raw_post(port: int, path: str, body: bytes) -> bytes:
    """A POST as the controller's aiohttp session writes it (same headers), encoded once, before timing."""
    return (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAccept: */*\r\nAccept-Encoding: gzip, deflate\r\n"
        f"User-Agent: Python/3.11 aiohttp/{aiohttp.__version__}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


async def raw_client(port: int, requests: list[bytes], concurrency: int) -> JSON:
    """Send ``requests`` over ``concurrency`` keep-alive connections, one in flight on each; statuses counted."""
    loop = asyncio.get_running_loop()
    conns = []
    for _ in range(concurrency):
        _, conn = await loop.create_connection(_Conn, "127.0.0.1", port)
        conns.append(conn)
    todo = iter(requests)
    statuses: dict[str, int] = {}

    async def worker(conn: _Conn) -> None:
        assert conn.transport is not None
        for req in todo:
            conn.waiter = loop.create_future()
            conn.transport.write(req)
            code = str(await conn.waiter)
            statuses[code] = statuses.get(code, 0) + 1

    print("ready", flush=True)
    await loop.run_in_executor(None, sys.stdin.readline)
    t0 = time.perf_counter()
    await asyncio.gather(*(worker(c) for c in conns))
    secs = time.perf_counter() - t0
    for c in conns:
        if c.transport is not None:
            c.transport.close()
    return {"seconds": secs, "statuses": statuses}


async def client_main(spec_path: str) -> None:
    """Client half of the cross-process measurements (run as ``--client SPEC``): SPEC is a JSON file with the
    port, the path, the request bodies or a JobSet to build the Jobs of, and the concurrency."""
    spec = orjson.loads(Path(spec_path).read_bytes())
    if "jobset" in spec:
        from api.jobset_types import jobset_from_obj
        from controller.decide.children import build_job

        js = jobset_from_obj(spec["jobset"])
        rjob = js.spec.replicated_jobs[0]
        first = spec["first"]
        bodies = [orjson.dumps(build_job(js, rjob, first + i, job_restart_attempt=0)) for i in range(spec["count"])]
    else:
        bodies = [b.encode() for b in spec["bodies"]]
    requests = [raw_post(spec["port"], spec["path"], b) for b in bodies]
    result = await raw_client(spec["port"], requests, spec["concurrency"])
    print(orjson.dumps(result).decode(), flush=True)


async def external_creates(port: int, path: str, bodies: list[bytes] | None, concurrency: int, **job: Any) -> JSON:
    """Run the raw client in another process against this process's server; creates/s by the client's clock and
    this process's CPU (user, system) per create over the same span."""
    spec: JSON = {"port": port, "path": path, "concurrency": concurrency}
    if bodies is not None:
        spec["bodies"] = [b.decode() for b in bodies]
    spec.update(job)
    count = len(bodies) if bodies is not None else job["count"]
    with tempfile.NamedTemporaryFile("wb", suffix=".json") as fh:
        fh.write(orjson.dumps(spec))
        fh.flush()
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "scale_tests.bench_kubesim",
            "--client",
            fh.name,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            cwd=str(ROOT),
        )
        assert proc.stdin is not None
        assert proc.stdout is not None
        if (await proc.stdout.readline()).strip() != b"ready":
            raise RuntimeError("the benchmark client did not start")
        gc.collect()
        before = resource.getrusage(resource.RUSAGE_SELF)
        proc.stdin.write(b"go\n")
        await proc.stdin.drain()
        line = await proc.stdout.readline()
        after = resource.getrusage(resource.RUSAGE_SELF)
        await proc.wait()
    result = orjson.loads(line)
    user = (after.ru_utime - before.ru_utime) / count * 1e6
    system = (after.ru_stime - before.ru_stime) / count * 1e6
    return {
        "creates": count,
        "seconds": round(result["seconds"], 3),
        "creates_per_second": round(count / result["seconds"]),
        "statuses": result["statuses"],
        "server_cpu_us_per_create": round(user + system),
        "server_user_us_per_create": round(user),
        "server_system_us_per_create": round(system),
    }


def bench_jobset(replicas: int) -> JSON:
    """The JobSet the benchmark's Jobs belong to (one replicated job of single-pod Indexed Jobs, DNS hostnames)."""
    return fixtures.indexed_jobset("bench", replicas)


async def bench_jobs(jobs: int, rounds: int, concurrency: int, with_cluster: bool, nodes: int) -> JSON:
    """Job creates over HTTP from another process (P12); ``rounds`` rounds of ``jobs`` distinct Jobs each."""
    from api.crdgen import build_crd

    options: JSON = {"with_cluster": with_cluster, "watch_window": 200_000}
    if with_cluster:
        options["nodes"] = nodes
    async with SimCluster(**options) as sim:
        await sim.store.create("customresourcedefinitions.apiextensions.k8s.io", build_crd())
        doc = bench_jobset(jobs * rounds)
        owner: JSON | None = None
        for _ in range(200):  # the CRD is served once established
            try:
                owner = await sim.store.create("jobsets.jobset.x-k8s.io", orjson.loads(orjson.dumps(doc)))
                break
            except ApiError:
                await asyncio.sleep(0.05)
        assert owner is not None, "the JobSet CRD was never served"
        doc["metadata"]["uid"] = owner["metadata"]["uid"]
        runs = []
        for r in range(rounds):
            runs.append(
                await external_creates(
                    sim.port,
                    "/apis/batch/v1/namespaces/default/jobs",
                    None,
                    concurrency,
                    jobset=doc,
                    first=r * jobs,
                    count=jobs,
                )
            )
        # the same Jobs' create path in process (no HTTP), for the split between the server's layers
        info = sim.store.info("jobs.batch")
        from api.jobset_types import jobset_from_obj
        from controller.decide.children import build_job

        js = jobset_from_obj(doc)
        bodies = [orjson.dumps(build_job(js, js.spec.replicated_jobs[0], i)) for i in range(jobs, 2 * jobs)]
        for i, b in enumerate(bodies):  # distinct names: a second replicated job's worth
            bodies[i] = b.replace(b'"name":"bench-w-', b'"name":"bench-x-', 1)
        cpu0 = time.process_time()
        for i, b in enumerate(bodies):
            obj = await sim.store.create(info, orjson.loads(b), "default", owned=True)
            orjson.dumps(obj)
            if i % 500 == 0:
                await asyncio.sleep(0)
        inproc_us = (time.process_time() - cpu0) / len(bodies) * 1e6
        stored = len(sim.store.bucket(info).objects)
    rates = sorted(r["creates_per_second"] for r in runs)
    cpus = sorted(r["server_cpu_us_per_create"] for r in runs)
    return {
        "with_cluster": with_cluster,
        "nodes": nodes if with_cluster else 0,
        "jobs_per_round": jobs,
        "rounds": runs,
        "creates_per_second_median": rates[len(rates) // 2],
        "creates_per_second_best": rates[-1],
        "server_cpu_us_per_create_median": cpus[len(cpus) // 2],
        "inprocess_cpu_us_per_create": round(inproc_us),
        "jobs_stored": stored,
        "failures": sum(n for r in runs for code, n in r["statuses"].items() if code != "201"),
    }


async def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--client":
        await client_main(sys.argv[2])
        return
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nodes", type=int, default=65_000)
    ap.add_argument("--pods", type=int, default=100_000)
    ap.add_argument("--http-pods", type=int, default=10_000)
    ap.add_argument("--watchers", type=int, default=4)
    ap.add_argument("--updates", type=int, default=20_000)
    ap.add_argument("--concurrency", type=int, default=50)
    ap.add_argument("--jobs", type=int, default=15_000, help="Job creates per round (P12); 0 skips the Job case")
    ap.add_argument("--job-rounds", type=int, default=3)
    ap.add_argument("--cluster-nodes", type=int, default=2_000, help="nodes of the run with the Job controller")
    args = ap.parse_args()
    load_before = record.load_average()
    result: JSON = {"workload_concurrency": args.concurrency}
    if args.nodes:
        result["nodes"] = await bench_nodes(args.nodes)
    if args.jobs:
        result["jobs"] = await bench_jobs(args.jobs, args.job_rounds, args.concurrency, False, 0)
        result["jobs_with_cluster"] = await bench_jobs(args.jobs, 1, args.concurrency, True, args.cluster_nodes)
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
    if "jobs" in r:
        j, jc = r["jobs"], r.get("jobs_with_cluster")
        cluster = ""
        if jc is not None:
            cluster = (
                f"; with the Job controller, scheduler and kubelets reacting ({jc['nodes']:,} nodes): "
                f"{jc['creates_per_second_median']:,}/s, {jc['server_cpu_us_per_create_median']:,} µs"
            )
        out.append(
            record.figure(
                "P12",
                f"Job creates over HTTP from a client in another process ({r['workload_concurrency']} keep-alive "
                "connections, one request in flight each), API server and garbage collector; median of "
                f"{len(j['rounds'])} rounds",
                j["creates_per_second_median"],
                "creates/s",
                target=(">=", 5000),
                target_text="≥ 5,000 Job creates/s over HTTP",
                baseline_reason=NO_BASELINE,
                bound=(
                    round(1e6 / j["server_cpu_us_per_create_median"]),
                    "1 s / the server's CPU per create: the rate one core of its own would sustain",
                ),
                size=f"{j['jobs_stored']:,} Jobs",
                note=f"server CPU {j['server_cpu_us_per_create_median']:,} µs per create "
                f"({j['inprocess_cpu_us_per_create']:,} µs of it the store, measured in process); "
                f"best round {j['creates_per_second_best']:,}/s{cluster}",
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
            note=f"client in another process: {p['http_external_client_creates_per_second']:,}/s, server CPU "
            f"{p['http_server_cpu_us_per_create']:,} µs per create; {p['inprocess_creates_per_second']:,}/s in process",
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
