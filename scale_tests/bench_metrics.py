"""Metrics benchmark (performance goal P7), with its baseline measured in the same run.

Workload: a fleet of JobSets (default 4,600 JobSets x 4 pods on 2,300 GPU nodes, about 65k series) tracked by
``metrics.hub.MetricsHub``; pod update events (Ready toggling, so state changes and idle-GPU integration happen)
arrive at a fixed rate (default 5,000/s) through the informer path (store upsert + tracker handler), while an
HTTP scraper thread fetches ``/metrics`` every 15 s from the real ``ObservabilityServer``.

    event → metric   delay from an event's arrival time to its effect on the tracker's counts (p50/p99/max)
    loop stall       lateness of a 5 ms ticker on the event loop (p99/max)
    scrape           wall seconds per scrape and series per scrape
    handler cost     µs CPU per event through store + tracker, without scrapes (context for P3)

Modes: ``sliced`` (ours: the exposition is rendered on the loop in 2 ms slices, yielding between them), then two
baselines: ``thread`` (rendered in a worker thread, competing for the GIL) and ``inline`` (rendered in one go on
the event loop, as a plain aiohttp handler calling ``generate_latest`` would). Goal P7: event → metric p99
≤ 50 ms and loop stall p99 ≤ 20 ms.

Run: ``.venv/bin/python -m scale_tests.bench_metrics [--quick]``; writes ``scale_tests/results/bench_metrics.json``.
Never a pass/fail test.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import statistics
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

from metrics import synthetic as syn
from metrics.hub import MetricsHub
from metrics.server import ObservabilityServer
from metrics.settings import MetricsSettings

RESULTS = Path(__file__).parent / "results"


def pct(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Fleet:
    """JobSets, their Jobs and pods pre-built (ready and not-ready variants), fed through fake informers."""

    def __init__(self, hub: MetricsHub, jobsets: int, pods_per_jobset: int) -> None:
        self.hub = hub
        self.infs = syn.fake_informers()
        for name, handler in (
            ("jobsets", hub.tracker.on_jobset),
            ("jobs", hub.tracker.on_job),
            ("pods", hub.tracker.on_pod),
        ):
            self.infs[name].add_handler(handler)
        hub.add_informers(self.infs.values())
        hub.watch_gpus(lambda: self.infs["nodes"].store, lambda: self.infs["pods"].store)
        half = pods_per_jobset // 2
        for n in range(jobsets * pods_per_jobset // 8 + 1):
            self.infs["nodes"].upsert(syn.node(f"node-{n}", f"pool-{n % 16}", gpus=8))
        self.ready: list[Any] = []
        self.unready: list[Any] = []
        for j in range(jobsets):
            js = syn.jobset(f"js-{j}", f"ns-{j % 20}", rjobs=(("w", 2, half),))
            self.infs["jobsets"].upsert(js)
            for i in range(2):
                self.infs["jobs"].upsert(syn.job(js, "w", i))
            for p in range(pods_per_jobset):
                i, r = divmod(p, half)
                node = f"node-{(j * pods_per_jobset + p) // 8}"
                ready = syn.pod(js, "w", i, r, node=node, phase="Running", ready=True, gpus=2)
                unready = syn.pod(js, "w", i, r, node=node, phase="Running", ready=False, gpus=2)
                self.infs["pods"].upsert(ready)
                self.ready.append(ready)
                self.unready.append(unready)
            hub.tracker.plan_applied(js, syn.AppliedPlan(syn.Outcome("restarted", "r", action="RestartJobSet")))
        self.cursor = 0
        self.flip = False

    def event(self) -> Any:
        """Apply the next pod event; returns the JobSet view it changed (for the effect check)."""
        i = self.cursor
        rec = self.unready[i] if not self.flip else self.ready[i]
        self.infs["pods"].upsert(rec)
        self.cursor += 1
        if self.cursor == len(self.ready):
            self.cursor = 0
            self.flip = not self.flip
        return rec


def handler_cost(fleet: Fleet, n: int) -> float:
    start = time.process_time()
    for _ in range(n):
        fleet.event()
    return (time.process_time() - start) / n * 1e6


def scraper(
    url: str, interval: float, stop: threading.Event, out: list[tuple[float, int]], windows: list[tuple[float, float]]
) -> None:
    """Scrape every ``interval`` seconds (like Prometheus), recording each scrape's wall time and window."""
    while not stop.is_set():
        t0 = time.monotonic()
        with urllib.request.urlopen(url, timeout=60) as resp:
            body = resp.read()
        t1 = time.monotonic()
        windows.append((t0, t1))
        out.append((t1 - t0, body.count(b"\n") - 2 * body.count(b"# TYPE ")))
        stop.wait(max(interval - (time.monotonic() - t0), 0))


async def run_mode(mode: str, args: argparse.Namespace) -> dict[str, Any]:
    hub = MetricsHub(MetricsSettings(max_jobsets=args.jobsets + 1, exposition=mode))
    hub.tracker.mark_synced()
    fleet = Fleet(hub, args.jobsets, args.pods)
    cost_us = handler_cost(fleet, 20_000)
    gc.collect()
    gc.freeze()  # as the controller does once its caches are synced
    slices: list[float] = []
    hub.slice_observer = slices.append
    render_cpu: list[float] = []

    async def render() -> bytes:
        c0 = time.process_time()
        body = await hub.render()
        render_cpu.append(time.process_time() - c0)
        return body

    server = ObservabilityServer(render, "127.0.0.1:0", "0")
    await server.start()
    loop = asyncio.get_running_loop()
    delays: list[tuple[float, float]] = []
    stalls: list[tuple[float, float]] = []
    done = asyncio.Event()

    async def ticker() -> None:
        period = 0.005
        expected = loop.time() + period
        while not done.is_set():
            await asyncio.sleep(period)
            now = loop.time()
            late = max(now - expected, 0.0)
            stalls.append((now - late, late))
            expected = now + period

    async def producer() -> None:
        start = loop.time()
        i = 0
        end = start + args.duration
        while loop.time() < end:
            now = loop.time()
            while start + i / args.rate <= now:
                arrived = start + i / args.rate
                fleet.event()
                delays.append((arrived, loop.time() - arrived))
                i += 1
            await asyncio.sleep(0.001)
        done.set()

    stop = threading.Event()
    scrapes: list[tuple[float, int]] = []
    windows: list[tuple[float, float]] = []
    url = f"http://127.0.0.1:{server.ports['metrics']}/metrics"
    thread = threading.Thread(target=scraper, args=(url, args.scrape_interval, stop, scrapes, windows), daemon=True)
    tick = asyncio.create_task(ticker())
    thread.start()
    await producer()
    stop.set()
    await tick
    await asyncio.to_thread(thread.join, 120)
    await server.stop()
    gc.unfreeze()

    def during(t: float, x: float) -> bool:
        """Whether the interval [t, t + x] (an event's wait, a stall) overlaps a scrape."""
        return any(t <= b and t + x >= a for a, b in windows)

    def figures(samples: list[tuple[float, float]]) -> dict[str, Any]:
        inside = [x for t, x in samples if during(t, x)]
        outside = [x for t, x in samples if not during(t, x)]
        return {
            "p50": ms(pct([x for _, x in samples], 0.5)),
            "p99": ms(pct([x for _, x in samples], 0.99)),
            "max": ms(max((x for _, x in samples), default=0)),
            "during_scrapes_p99": ms(pct(inside, 0.99)),
            "outside_scrapes_p99": ms(pct(outside, 0.99)),
            "outside_scrapes_max": ms(max(outside, default=0)),
        }

    return {
        "events": len(delays),
        "event_to_metric_ms": figures(delays),
        "loop_stall_ms": figures(stalls),
        "scrapes": len(scrapes),
        "scrape_wall_s": round(statistics.mean(s for s, _ in scrapes), 3) if scrapes else None,
        "scrape_cpu_s": round(statistics.mean(render_cpu), 3) if render_cpu else None,
        "longest_render_slice_ms": ms(max(slices, default=0)) if slices else None,
        "series_per_scrape": scrapes[0][1] if scrapes else 0,
        "handler_us_per_event": round(cost_us, 2),
    }


def ms(seconds: float) -> float:
    return round(seconds * 1e3, 2)


def load_average() -> list[float]:
    return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]


async def amain(args: argparse.Namespace) -> dict[str, Any]:
    load_before = load_average()
    ours = await run_mode("sliced", args)
    thread = await run_mode("thread", args)
    base = await run_mode("inline", args)
    return {
        "machine": {
            "python": sys.version.split()[0],
            "cores": os.cpu_count(),
            "load_average_before_after": [load_before, load_average()],
            "note": "2 shared cores: other processes' load inflates wall-clock figures; compare modes by ratio",
        },
        "workload": {
            "jobsets": args.jobsets,
            "pods": args.jobsets * args.pods,
            "nodes": args.jobsets * args.pods // 8 + 1,
            "events_per_s": args.rate,
            "scrape_interval_s": args.scrape_interval,
            "duration_s": args.duration,
        },
        "sliced": ours,
        "baseline_thread": thread,
        "baseline_inline": base,
        "ratio_stall_during_scrapes_p99_inline_vs_sliced": round(
            base["loop_stall_ms"]["during_scrapes_p99"] / max(ours["loop_stall_ms"]["during_scrapes_p99"], 0.01), 1
        ),
        "ratio_event_p99_inline_vs_sliced": round(
            base["event_to_metric_ms"]["p99"] / max(ours["event_to_metric_ms"]["p99"], 0.01), 1
        ),
        "ratio_event_p99_thread_vs_sliced": round(
            thread["event_to_metric_ms"]["p99"] / max(ours["event_to_metric_ms"]["p99"], 0.01), 1
        ),
        "goal_P7": {"event_to_metric_p99_ms": 50, "loop_stall_p99_ms": 20},
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="a tenth of the fleet and 10 s, for a smoke run")
    parser.add_argument("--jobsets", type=int, default=4600)
    parser.add_argument("--pods", type=int, default=4, help="pods per JobSet (even)")
    parser.add_argument("--rate", type=float, default=5000.0, help="pod events per second")
    parser.add_argument("--duration", type=float, default=46.0, help="seconds per mode")
    parser.add_argument("--scrape-interval", type=float, default=15.0)
    args = parser.parse_args()
    if args.quick:
        args.jobsets //= 10
        args.duration = 10.0
        args.scrape_interval = 3.0
    results = asyncio.run(amain(args))
    RESULTS.mkdir(exist_ok=True)
    name = "bench_metrics_quick.json" if args.quick else "bench_metrics.json"
    (RESULTS / name).write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
