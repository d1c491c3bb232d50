"""Scale on the real control plane (goals P9, P10, P11 of ``docs/design/performance.md``): pyjobset against the
plane's own floor, CPU per Job lifecycle with a profile breakdown, peak RSS, and a timeline plot.

One run = a fresh real control plane (etcd, kube-apiserver, kube-controller-manager, kube-scheduler, KWOK with
``ceil(N / 100) + 2`` fake nodes; ``tests/e2e/harness.py``), then, one after the other:

1. the **floor** (``scale_tests/realplane.py`` ``run_floor``) with no JobSet controller running: a trivial client
   with the controller's identity, QPS and burst creates N Jobs, foreground-deletes them, creates them again, and
   every pod is made to exit 0;
2. pyjobset (``pyjobset run`` as its own process with the installed identity, ``--kube-api-qps/burst`` as the
   floor's client) and one JobSet of N single-pod Jobs: create → all pods Running → Job 0's pod exits 1 → restart →
   all new pods Running → every pod exits 0 → Completed (``run_jobset``).

Each pyjobset phase is reported as a ratio to its floor: creation (create → N Jobs seen) to the floor's creates;
restart (Job 0 Failed seen → N new Jobs seen) to foreground delete + creates; completion (first exit patch → N Jobs
finished) to the floor's; and Completed's lag behind the last Job finishing. The controller's CPU is its
``utime + stime`` from ``/proc`` over its whole life (start-up included) divided by N; its peak RSS is ``VmHWM``.
With ``--profile`` py-spy samples the controller (``--nonblocking``: it never stops the process) and the samples are
split into decode/ingest, reconcile/decide, act/HTTP, metrics, logging and the event loop.

Writes ``scale_tests/results/bench_realplane_<N>.json`` (schema ``pyjobset-bench/1``), the timeline
``scale_tests/results/bench_realplane_<N>.png`` and, with ``--profile``, ``..._<N>.profile.txt`` (collapsed stacks).
Run (binaries from ``tests/e2e/build.sh``)::

    .venv/bin/python -m scale_tests.bench_realplane --jobs 2000 --profile

A benchmark, never a pass/fail test: ``tests/e2e/test_scale_smoke.py`` runs the same scenario at a few hundred Jobs
and asserts correctness only.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from dataclasses import asdict
from pathlib import Path
from typing import Any

import structlog

from cache.client import ApiClient, load_cluster_config
from scale_tests import record
from scale_tests.realplane import Marks, Timeline, create_namespace, delete_namespace, run_floor, run_jobset
from tests.chaos.harness import ControllerProcess, total
from tests.e2e.harness import ControlPlane, NodeShape, installed_identity

BENCH = "bench_realplane"

# Profile categories, first match wins, by a substring of any frame of the sample (frames are "func (file:line)").
CATEGORIES: list[tuple[str, tuple[str, ...]]] = [
    ("logging", ("structlog/", "/logging/", "controller/events.py")),
    ("metrics", ("metrics/", "prometheus_client/")),
    ("decode/ingest", ("cache/informer.py", "cache/store.py", "api/records.py", "cache/index")),
    ("reconcile/decide", ("controller/decide/",)),
    ("act/HTTP (writes)", ("controller/act.py", "controller/annotate.py")),
    ("reconcile (snapshot, queue)", ("controller/reconciler.py", "cache/queue.py", "api/plan.py")),
    ("client/HTTP (no caller above)", ("cache/client.py", "cache/watchstream.py", "aiohttp/", "orjson", "json/")),
    ("TLS and socket I/O", ("ssl.py", "sslproto.py", "selector_events.py")),
    ("start-up (imports)", ("<frozen importlib", "importlib/")),
    ("event loop, other", ("",)),
]


def categorise(stack: str) -> str:
    for name, needles in CATEGORIES:
        if any(n in stack for n in needles):
            return name
    return CATEGORIES[-1][0]


def breakdown(collapsed: Path) -> dict[str, Any]:
    """Samples per category from py-spy's raw (collapsed) output, and the top leaf functions. Samples waiting in
    ``epoll`` are counted apart as idle, so the busy samples are in proportion to CPU time."""
    cats: Counter[str] = Counter()
    leaves: Counter[str] = Counter()
    idle = 0
    for raw in collapsed.read_text(errors="replace").splitlines():
        stack, _, count_text = raw.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        if frames[-1].startswith(("select (selectors.py", "EpollSelector.select")):
            idle += count  # --nonblocking cannot tell a thread waiting in epoll from a running one
            continue
        cats[categorise(stack)] += count
        leaves[frames[-1]] += count
    busy = sum(cats.values())
    return {
        "samples_busy": busy,
        "samples_idle": idle,
        "share": {k: round(v / busy, 4) for k, v in cats.most_common()} if busy else {},
        "top_leaves": [[k, v] for k, v in leaves.most_common(25)],
    }


def _rss_peak_mib(pid: int) -> float | None:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    return None


def _wait_ready(proc: ControllerProcess, timeout: float = 120.0) -> None:
    """Poll the controller's ``/readyz`` (a probe endpoint: there is no event to await) until it answers 200."""
    url = f"http://127.0.0.1:{proc.health_port}/readyz"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not proc.alive():
            raise RuntimeError(f"controller exited before it was ready:\n{proc.tail()}")
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=5) as resp:
            if resp.status == 200:
                return
        time.sleep(0.2)
    raise RuntimeError(f"controller not ready after {timeout:.0f}s:\n{proc.tail()}")


def _span(m: Marks, a: str, b: str) -> float:
    return round(m.t[b] - m.t[a], 3)


def _level(up: list[float], down: list[float], shift: float, lo: float, hi: float) -> tuple[list[float], list[int]]:
    """A step curve of (ups - downs) over [lo, hi), starting from its level at ``lo``, shifted left by ``shift``."""
    level = sum(1 for t in up if t < lo) - sum(1 for t in down if t < lo)
    xs, ys = [lo - shift], [level]
    for t, d in sorted([(t, 1) for t in up if lo <= t < hi] + [(t, -1) for t in down if lo <= t < hi]):
        level += d
        xs.append(t - shift)
        ys.append(level)
    return xs, ys


def plot(path: Path, n: int, js: Marks, jtl: Timeline, floor: Marks | None, ftl: Timeline | None) -> None:
    import matplotlib as mpl

    mpl.use("Agg")
    import matplotlib.pyplot as plt

    def curves(tl: Timeline) -> list[tuple[str, str, list[float], list[float]]]:
        return [
            ("Jobs existing", "tab:blue", [t for t, _ in tl.jobs_added], tl.jobs_deleted),
            ("pods Running", "tab:orange", [t for t, _ in tl.pods_running], tl.pods_left_running),
            ("Jobs of attempt 1 finished", "tab:green", [t for t, a, _ in tl.jobs_finished if a == 1], []),
        ]

    t0 = js.t["start"]
    fig, ax = plt.subplots(figsize=(11, 5.5), dpi=110)
    for label, colour, up, down in curves(jtl):
        xs, ys = _level(up, down, t0, t0, math.inf)
        ax.step(xs, ys, where="post", color=colour, label=f"pyjobset: {label}")
    if floor is not None and ftl is not None:
        # The floor's three segments, each aligned with the pyjobset phase it bounds: creation at the JobSet's
        # creation, delete + create at Job 0's failure, completion at the first exit patch.
        segments = [("start", "start", "delete"), ("delete", "job_failed", "complete"), ("complete", "complete", "")]
        for seg, (fstart, jstart, fend) in enumerate(segments):
            lo, hi = floor.t[fstart], floor.t[fend] if fend else math.inf
            shift = lo - (js.t[jstart] - t0)
            for label, colour, up, down in curves(ftl):
                xs, ys = _level(up, down, shift, lo, hi)
                if len(xs) > 1:
                    ax.step(xs, ys, where="post", color=colour, ls=":", label=f"floor: {label}" if seg != 1 else None)
    for name, text in (("job_failed", "Job 0 failed → restart"), ("completed", "JobSet Completed")):
        x = js.t[name] - t0
        ax.axvline(x, color="tab:red" if name == "job_failed" else "black", lw=1, ls="--")
        ax.annotate(text, (x, n * 1.03), fontsize=8, ha="left")
    with_floor = floor is not None
    aligned = " (floor segments aligned with the phase they bound)" if with_floor else ""
    ax.set_xlabel(f"seconds since the JobSet was created{aligned}")
    ax.set_ylabel("count")
    ax.set_ylim(0, n * 1.1)
    dotted = "dotted: the plane's floor" if with_floor else "no floor measured in this run"
    ax.set_title(f"pyjobset on the real control plane: one JobSet of {n:,} single-pod Jobs ({dotted})")
    handles, labels = ax.get_legend_handles_labels()
    unique = dict(zip(labels, handles, strict=True))
    ax.legend(unique.values(), unique.keys(), loc="center right", fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


async def measure(
    plane: ControlPlane, n: int, qps: float, burst: int, workdir: Path, *, floor: bool, profile: Path | None
) -> dict[str, Any]:
    def log(msg: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)

    config = await load_cluster_config(str(plane.kubeconfig))
    plane.install_jobset_crd()  # before the floor: its observer watches JobSets too (there are none)
    # The controller's identity, used by the floor's client too: API Priority and Fairness queues requests by
    # identity, and an admin (system:masters) client is exempt from it where the controller's ServiceAccount is not.
    kubeconfig = installed_identity(plane, workdir / "controller")
    out: dict[str, Any] = {}
    async with (
        ApiClient(config, qps=1000, burst=1000) as watcher,
        ApiClient(config, qps=qps, burst=burst) as writer,
        ApiClient(await load_cluster_config(str(kubeconfig)), qps=qps, burst=burst) as as_controller,
    ):
        if floor:
            await create_namespace(writer, "floor")
            fm, ftl = await run_floor(watcher, as_controller, "floor", n, player=writer, log=log)
            out["floor"] = (fm, ftl)
            await delete_namespace(writer, "floor")
            log("floor: namespace deleted")
        proc = ControllerProcess(str(kubeconfig), workdir, qps=qps, burst=burst)
        proc.start()
        spy: subprocess.Popen[bytes] | None = None
        try:
            if profile is not None:
                spy = subprocess.Popen(
                    [
                        str(Path(sys.executable).with_name("py-spy")),
                        "record",
                        "--pid",
                        str(proc.pid),
                        "--rate",
                        "50",
                        "--nonblocking",
                        "--format",
                        "raw",
                        "--output",
                        str(profile),
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            await asyncio.to_thread(_wait_ready, proc)
            log(f"controller ready (pid {proc.pid})")
            await create_namespace(writer, "scale")
            jm, jtl, final = await run_jobset(watcher, writer, "scale", n, controller_pid=proc.pid, log=log)
            out["jobset"] = (jm, jtl, final)
            out["rss_peak_mib"] = _rss_peak_mib(proc.pid)
            with contextlib.suppress(OSError, ValueError):
                scraped = await asyncio.to_thread(proc.metrics)
                out["requests"] = {
                    m: int(total(scraped, "rest_client_requests_total", method=m))
                    for m in ("GET", "POST", "PUT", "PATCH", "DELETE", "WATCH")
                }
                out["reconciles"] = int(total(scraped, "controller_runtime_reconcile_total", controller="jobset"))
                out["watch"] = {
                    r: {
                        "events": int(total(scraped, "informer_watch_events_total", resource=r)),
                        "bytes": int(total(scraped, "informer_watch_bytes_total", resource=r)),
                    }
                    for r in ("jobsets", "jobs", "pods", "services", "nodes")
                }
            if spy is not None:
                spy.send_signal(signal.SIGINT)
                await asyncio.to_thread(spy.wait, 60)
        finally:
            if spy is not None and spy.poll() is None:
                spy.kill()
            await asyncio.to_thread(proc.stop)
        out["cpu_total_s"] = round(proc.cpu_seconds, 2)
        out["controller_log"] = proc.tail(5)
    return out


def figures(n: int, res: dict[str, Any], qps: float) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    jm, _, final = res["jobset"]
    size = f"{n:,} Jobs"
    phases = {
        "creation_s": _span(jm, "start", "created"),
        "running_s": _span(jm, "start", "running"),
        "restart_s": _span(jm, "job_failed", "recreated"),
        "restart_running_s": _span(jm, "job_failed", "running2"),
        "completion_s": _span(jm, "complete", "jobs_done"),
        "completed_lag_s": _span(jm, "jobs_done", "completed"),
        "total_s": _span(jm, "start", "completed"),
    }
    cpu_phases = {
        k: round(jm.cpu[b] - jm.cpu[a], 2)
        for k, (a, b) in {
            "create_to_running": ("start", "running"),
            "fail_to_running": ("fail", "running2"),
            "completion": ("complete", "completed"),
        }.items()
        if a in jm.cpu and b in jm.cpu
    }
    cpu_ms = round(res["cpu_total_s"] * 1000 / n, 2)
    restarts = int((final.get("status") or {}).get("restarts", -1))
    figs: list[dict[str, Any]] = []
    details: dict[str, Any] = {
        "phases_s": phases,
        "controller_cpu_s": res["cpu_total_s"],
        "controller_cpu_by_phase_s": cpu_phases,
        "rss_peak_mib": res["rss_peak_mib"],
        "restarts": restarts,
        "controller_requests": res.get("requests"),
        "reconciles": res.get("reconciles"),
        "watch_received": res.get("watch"),
        "marks": {k: round(v - jm.t["start"], 3) for k, v in jm.t.items()},
    }
    if "floor" in res:
        fm, _ = res["floor"]
        floor = {
            "creation_s": _span(fm, "start", "created"),
            "running_s": _span(fm, "start", "running"),
            "delete_s": _span(fm, "delete", "deleted"),
            "recreate_s": _span(fm, "create2", "recreated"),
            "recreate_running_s": _span(fm, "create2", "running2"),
            "completion_s": _span(fm, "complete", "jobs_done"),
        }
        details["floor_s"] = floor
        restart_floor = round(floor["delete_s"] + floor["recreate_s"], 3)
        ratios = {
            "creation": round(phases["creation_s"] / floor["creation_s"], 3),
            "running": round(phases["running_s"] / floor["running_s"], 3),
            "restart": round(phases["restart_s"] / restart_floor, 3),
            "restart_running": round(
                phases["restart_running_s"] / (floor["delete_s"] + floor["recreate_running_s"]), 3
            ),
            "completion": round(phases["completion_s"] / floor["completion_s"], 3),
        }
        details["ratios"] = ratios
        figs += [
            record.figure(
                "P9",
                "real plane: JobSet creation → all N Jobs seen, as a ratio to the floor (N creates at the same QPS)",
                ratios["creation"],
                "x floor",
                target=("<=", 1.1),
                target_text="≤ 1.1x the floor",
                baseline=(1.0, f"the floor, {floor['creation_s']:.1f} s, same run, no controller"),
                size=size,
                note=f"{phases['creation_s']:.1f} s against {floor['creation_s']:.1f} s",
            ),
            record.figure(
                "P9",
                "real plane: restart (Job 0 Failed → N new Jobs seen), as a ratio to foreground delete + creates",
                ratios["restart"],
                "x floor",
                target=("<=", 1.2),
                target_text="≤ 1.2x the floor",
                baseline=(1.0, f"the floor, {restart_floor:.1f} s (delete {floor['delete_s']:.1f} s + create)"),
                size=size,
                note=f"{phases['restart_s']:.1f} s against {restart_floor:.1f} s",
            ),
            record.figure(
                "P9",
                "real plane: completion (every pod exits 0 → N Jobs finished), as a ratio to the floor",
                ratios["completion"],
                "x floor",
                baseline=(1.0, f"the floor, {floor['completion_s']:.1f} s, same run, no controller"),
                size=size,
                note=f"{phases['completion_s']:.1f} s against {floor['completion_s']:.1f} s",
            ),
        ]
    figs += [
        record.figure(
            "P9",
            "real plane: JobSet Completed written after the last Job finished",
            phases["completed_lag_s"],
            "s",
            target=("<=", 1.0),
            target_text="≤ 1 s",
            baseline_reason="a lag, measured on the same watch as the Jobs' completions",
            size=size,
        ),
        record.figure(
            "P10",
            "real plane: controller CPU per Job lifecycle (create, fail, restart, complete; /proc utime+stime, "
            "start-up included)",
            cpu_ms,
            "ms",
            target=("<=", 5.0),
            target_text="≤ 5 ms per Job",
            baseline_reason="the reference (Go) controller is not run here (issue 18: ≈ 59 ms per Job at 2k)",
            size=size,
            note=f"{res['cpu_total_s']:.1f} s CPU in all",
        ),
        record.figure(
            "P11",
            "real plane: controller peak RSS (VmHWM) with N Jobs and their pods",
            res["rss_peak_mib"] or 0.0,
            "MiB",
            target=("<=", 130.0) if n <= 2000 else None,
            target_text="≤ 130 MiB at 2k Jobs" if n <= 2000 else "",
            baseline_reason="the reference (Go) controller is not run here (issue 18: 265-300 MiB at 2k)",
            size=size,
        ),
    ]
    return figs, details


def replot(raw: Path) -> int:
    """Draw ``<stem>.png`` beside a ``<stem>.timeline.json`` written by a run."""
    data = json.loads(raw.read_text())

    def load(part: list[Any] | None) -> tuple[Marks | None, Timeline | None]:
        if not part:
            return None, None
        series = {k: [tuple(e) if isinstance(e, list) else e for e in v] for k, v in part[1].items()}
        return Marks(t=part[0]), Timeline(**series)

    jm, jtl = load(data["jobset"])
    fm, ftl = load(data["floor"])
    assert jm is not None
    assert jtl is not None
    png = raw.with_name(raw.name.replace(".timeline.json", ".png"))
    plot(png, int(data["n"]), jm, jtl, fm, ftl)
    print(f"wrote {png}", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=2000, help="N: Jobs in the JobSet (default 2000)")
    parser.add_argument("--qps", type=float, default=500.0, help="the controller's and the floor client's QPS")
    parser.add_argument("--burst", type=int, default=500, help="the controller's and the floor client's burst")
    parser.add_argument("--no-floor", action="store_true", help="skip the floor (no ratios)")
    parser.add_argument("--profile", action="store_true", help="sample the controller with py-spy")
    parser.add_argument("--name", default=None, help="result file stem (default bench_realplane_<N>)")
    parser.add_argument("--replot", type=Path, default=None, help="redraw the PNG from a saved .timeline.json")
    args = parser.parse_args(argv)
    if args.replot is not None:
        return replot(args.replot)
    if args.jobs < 2:
        parser.error("--jobs: at least 2 (one Job fails, the others keep running)")
    # The bench's own clients log every write at debug: keep this process's CPU for the plane it measures.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    name = args.name or f"{BENCH}_{args.jobs}"
    load_before = record.load_average()
    record.RESULTS.mkdir(exist_ok=True)
    profile = record.RESULTS / f"{name}.profile.txt" if args.profile else None
    if args.profile and not Path(sys.executable).with_name("py-spy").exists():
        parser.error("--profile needs py-spy in the virtualenv: .venv/bin/pip install py-spy")
    workdir = Path(tempfile.mkdtemp(prefix="pyjobset-realplane-"))
    nodes = math.ceil(args.jobs / 100) + 2
    plane = ControlPlane(nodes=NodeShape(count=nodes, gpus_per_node=8, nodes_per_pool=2))
    started = time.monotonic()
    try:
        plane.start()
        res = asyncio.run(
            measure(plane, args.jobs, args.qps, args.burst, workdir, floor=not args.no_floor, profile=profile)
        )
    finally:
        plane.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    figs, details = figures(args.jobs, res, args.qps)
    details["wall_s"] = round(time.monotonic() - started, 1)
    if profile is not None and profile.exists():
        details["profile"] = breakdown(profile)
    png = record.RESULTS / f"{name}.png"
    jm, jtl, _ = res["jobset"]
    fm, ftl = res.get("floor", (None, None))
    raw = record.RESULTS / f"{name}.timeline.json"
    raw.write_text(json.dumps({"n": args.jobs, "jobset": [jm.t, asdict(jtl)], "floor": fm and [fm.t, asdict(ftl)]}))
    plot(png, args.jobs, jm, jtl, fm, ftl)
    details["plot"] = png.name
    workload = {"jobs": args.jobs, "pods_per_job": 1, "nodes": nodes, "qps": args.qps, "burst": args.burst}
    doc = record.document(BENCH, figs, load_before=load_before, workload=workload, details=details)
    path = record.write(doc, name, command=" ".join(["python -m scale_tests.bench_realplane", *sys.argv[1:]]))
    print(json.dumps({"figures": figs, "details": details}, indent=2, ensure_ascii=False))
    print(f"wrote {path} and {png}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
