"""``pyjobset demo``: the simulated cluster, the controller and sample JobSets in one process, watched live.

Role: show what pyjobset does with nothing installed, and answer what-if questions at scale: the JobSets of
:mod:`controller.demo.scenario` are created, their Jobs and pods appear on simulated nodes, a node may fail on
cue (``--fail-at``), and the run ends with a summary whose numbers come from the controller's own metrics
registry (:mod:`controller.demo.readings`), optionally with a PNG timeline (``--plot``).

Invariants: the simulated cluster listens on 127.0.0.1 only and is stopped before returning; the demo ends by
itself (every JobSet Completed or Failed, or the timeout) and never leaves a task running; a bad option or a
missing plotting library is found before anything starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from api import constants as c
from cache.client import MERGE_PATCH, ApiClient, load_cluster_config, resource_path
from cache.errors import ApiError
from controller.demo.progress import Progress
from controller.demo.readings import Reading, read
from controller.demo.scenario import DemoOptions, describe, jobsets_for
from controller.demo.timeline import PlotError, Point, Timeline, ensure_writable, require_matplotlib, summary, write_png
from controller.settings import load_settings

if TYPE_CHECKING:
    from controller.app import Running

NODE_FAIL_ANNOTATION = "sim.pyjobset.io/fail"


async def install_crd(client: ApiClient) -> None:
    """Create the JobSet CRD (generated from the records) and wait until the API serves ``jobsets``."""
    from api.crdgen import build_crd

    crd_path = resource_path("apiextensions.k8s.io", "v1", "customresourcedefinitions")
    with contextlib.suppress(ApiError):
        await client.create(crd_path, build_crd())
    for _ in range(200):
        try:
            await client.get(resource_path(c.GROUP, c.VERSION, c.PLURAL))
            return
        except ApiError:
            await asyncio.sleep(0.05)
    raise RuntimeError("the simulated cluster did not start serving jobsets")


@dataclass
class DemoResult:
    """How the demo ended: the exit status, the JobSets as the API served them last, the last metrics reading
    and the timeline."""

    exit_code: int
    jobsets: list[dict[str, Any]] = field(default_factory=list)
    reading: Reading = field(default_factory=Reading)
    timeline: Timeline = field(default_factory=Timeline)


def check_options(options: DemoOptions) -> list[str]:
    """Every problem with ``options`` (flags and the ``--plot`` prerequisites), one line each."""
    problems = options.problems()
    if options.plot is not None and not problems:
        try:
            ensure_writable(options.plot)
            require_matplotlib()
        except PlotError as err:
            problems.append(str(err))
    return problems


async def run_demo(
    stop: asyncio.Event, options: DemoOptions | None = None, *, out: TextIO | None = None, tty: bool | None = None
) -> int:
    """Run the demo; 0 when every JobSet completed, 1 otherwise, 130 when stopped."""
    return (await run_scenario(stop, options, out=out, tty=tty)).exit_code


async def run_scenario(
    stop: asyncio.Event, options: DemoOptions | None = None, *, out: TextIO | None = None, tty: bool | None = None
) -> DemoResult:
    import kubesim
    from controller.app import Running, run_controller

    options = options or DemoOptions()
    problems = check_options(options)
    if problems:
        raise ValueError("; ".join(problems))
    stream = out if out is not None else sys.stdout
    interactive = stream.isatty() if tty is None else tty
    progress = Progress(stream, tty=interactive, min_interval=0.0 if not options.fleet else 1.0)
    with tempfile.TemporaryDirectory(prefix="pyjobset-demo-") as tmp:
        kubeconfig = str(Path(tmp) / "kubeconfig")
        async with kubesim.SimCluster(nodes=options.nodes, gpus_per_node=options.gpus_per_node) as sim:
            sim.write_kubeconfig(kubeconfig)
            _say(stream, f"simulated cluster serving at {sim.url} with {options.nodes} nodes")
            config = await load_cluster_config(kubeconfig)
            settings = load_settings(
                overrides={
                    "leader_election.leader_elect": False,
                    "metrics.bind_address": "0",
                    "health.health_probe_bind_address": "0",
                }
            )
            async with ApiClient(config) as client:
                await install_crd(client)
                _say(stream, "installed CRD jobsets.jobset.x-k8s.io")
                ctl_stop = asyncio.Event()
                running = Running()
                ctl = asyncio.create_task(run_controller(settings, config, ctl_stop, webhooks=False, running=running))
                try:
                    await _started(running, ctl)
                    driver = _Driver(client, running, options, progress, stream)
                    result = await driver.drive(stop)
                finally:
                    ctl_stop.set()
                    await ctl
    if options.plot is not None and result.timeline.points:
        try:
            write_png(result.timeline, options.plot, _title(options))
            _say(stream, f"timeline written to {options.plot}")
        except PlotError as err:
            print(f"pyjobset demo: {err}", file=sys.stderr)
            result.exit_code = result.exit_code or 1
    return result


def _say(stream: TextIO, msg: str) -> None:
    stream.write(msg + "\n")
    stream.flush()


def _title(options: DemoOptions) -> str:
    if not options.fleet:
        return "pyjobset demo: the sample JobSet"
    fail = f", node failure at {options.fail_at:g}s" if options.fail_at is not None else ""
    return (
        f"pyjobset demo: {options.fleet_jobsets} JobSets x {options.fleet_size} pods on "
        f"{options.nodes} nodes x {options.gpus_per_node} GPUs{fail}"
    )


async def _started(running: Running, ctl: asyncio.Task[None]) -> None:
    """Wait for the controller to be listening (or to have failed, which is then raised)."""
    started = asyncio.create_task(running.started.wait())
    done, _ = await asyncio.wait({started, ctl}, return_when=asyncio.FIRST_COMPLETED)
    if ctl in done:
        started.cancel()
        await ctl  # raises what stopped it
        raise RuntimeError("the controller stopped before it started")


class _Driver:
    """One run: create the JobSets, sample the metrics each tick, inject the failure, report."""

    def __init__(
        self, client: ApiClient, running: Running, options: DemoOptions, progress: Progress, out: TextIO
    ) -> None:
        self.client = client
        if running.controller is None or running.controller.metrics_hub is None:
            raise RuntimeError("the controller started without its metrics hub")
        self.controller = running.controller
        self.hub = running.controller.metrics_hub
        self.options = options
        self.progress = progress
        self.out = out
        self.ns = "default"
        self.timeline = Timeline()
        self.failed_node: str | None = None
        self.waiting_to_fail = False
        self.tick = 0.25 if options.nodes <= 200 else 0.5

    def scrape(self) -> Reading:
        for hook in self.hub.pre_scrape:
            hook()
        return read(self.hub.registry.collect())

    async def drive(self, stop: asyncio.Event) -> DemoResult:
        for body in jobsets_for(self.options, self.ns):
            await self.client.create(resource_path(c.GROUP, c.VERSION, c.PLURAL, self.ns), body)
        started = time.monotonic()
        _say(self.out, describe(self.options))
        want_jobs = sum(
            rj["replicas"] for js in jobsets_for(self.options, self.ns) for rj in js["spec"]["replicatedJobs"]
        )
        applied: dict[tuple[str, str], int] = {}
        while True:
            now = time.monotonic() - started
            reading = self.scrape()
            listed = await self.client.get(resource_path(c.GROUP, c.VERSION, c.PLURAL, self.ns))
            jobsets = listed["items"]
            self._sample(now, reading)
            for key, n in sorted(reading.restarts_applied.items()):
                if n > applied.get(key, 0):
                    self.progress.note(now, f"JobSet {key[1]} restarted (restart {n}): the failure policy acted")
            applied = dict(reading.restarts_applied)
            if self.options.fail_at is not None and self.failed_node is None and now >= self.options.fail_at:
                await self._fail_a_node(now)
            terminal = [js for js in jobsets if (js.get("status") or {}).get("terminalState")]
            line = self._line(reading, want_jobs, jobsets, terminal)
            self.progress.status(now, line, _fraction(self.pods_running(), reading))
            if len(terminal) == len(jobsets) or now > self.options.timeout or stop.is_set():
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.tick)
        self.progress.close()
        reading = self.scrape()
        self._sample(time.monotonic() - started, reading)
        if stop.is_set():
            return DemoResult(130, jobsets, reading, self.timeline)
        _say(self.out, await self._table(jobsets, time.monotonic() - started))
        _say(self.out, summary(reading, self.timeline))
        states = {(js.get("status") or {}).get("terminalState") for js in jobsets}
        if states == {"Completed"}:
            return DemoResult(0, jobsets, reading, self.timeline)
        open_ = sum(1 for js in jobsets if not (js.get("status") or {}).get("terminalState"))
        ended = "still running at the timeout" if open_ else "Failed"
        print(f"demo: {open_ or len(jobsets)} JobSet(s) {ended}", file=sys.stderr)
        return DemoResult(1, jobsets, reading, self.timeline)

    def _sample(self, now: float, reading: Reading) -> None:
        self.timeline.add(
            Point(
                t=now,
                jobs=len(self.controller.jobs),
                pods_running=self.pods_running(),
                gpus_held=reading.gpus_requested,
                gpus_allocatable=reading.gpus_allocatable,
                restarts=reading.restarts,
            )
        )

    def pods_running(self) -> int:
        """Pods in phase Running now, in the controller's pod cache (the metrics count attempts' milestones)."""
        return sum(1 for pod in self.controller.pods if pod.status.phase == "Running")

    def _line(self, reading: Reading, want_jobs: int, jobsets: list[Any], terminal: list[Any]) -> str:
        expected = reading.pods_in("expected")
        states: dict[str, int] = {}
        for state in reading.state.values():
            states[state] = states.get(state, 0) + 1
        by_state = " ".join(f"{s}={n}" for s, n in sorted(states.items())) or "-"
        return (
            f"jobs={len(self.controller.jobs)}/{want_jobs} pods running={self.pods_running()}/{expected} "
            f"GPUs={reading.gpus_requested:.0f}/{reading.gpus_allocatable:.0f} restarts={reading.restarts} "
            f"done={len(terminal)}/{len(jobsets)} jobsets: {by_state}"
        )

    async def _fail_a_node(self, now: float) -> None:
        """Fail the node under the first running pod of a JobSet (by name); with none running yet, try again at
        the next tick."""
        pods = await self.client.get(
            resource_path("", "v1", "pods", self.ns),
            {"labelSelector": c.JOBSET_NAME_KEY, "fieldSelector": "status.phase=Running"},
        )
        running = sorted(
            (p for p in pods["items"] if (p.get("spec") or {}).get("nodeName")), key=lambda p: p["metadata"]["name"]
        )
        if not running:
            if not self.waiting_to_fail:
                self.waiting_to_fail = True
                self.progress.note(now, "no pod is running yet: the node fails as soon as one runs")
            return
        pod = running[0]
        node = pod["spec"]["nodeName"]
        await self.client.patch(
            resource_path("", "v1", "nodes", None, node),
            {"metadata": {"annotations": {NODE_FAIL_ANNOTATION: "true"}}},
            patch_type=MERGE_PATCH,
        )
        self.failed_node = node
        self.timeline.failures_at.append(now)
        owner = pod["metadata"].get("labels", {}).get(c.JOBSET_NAME_KEY, "?")
        self.progress.note(now, f"node {node} failed under pod {pod['metadata']['name']} (JobSet {owner})")

    async def _table(self, jobsets: list[dict[str, Any]], elapsed: float) -> str:
        if not self.options.fleet:
            return await self._sample_table(jobsets[0], elapsed)
        lines = ["", f"{'JOBSET':<16} {'STATE':<10} {'RESTARTS':>8}  CONDITIONS"]
        for js in sorted(jobsets, key=lambda j: j["metadata"]["name"]):
            status = js.get("status") or {}
            conds = ",".join(f"{x['type']}={x['status']}" for x in status.get("conditions") or [])
            lines.append(
                f"{js['metadata']['name']:<16} {status.get('terminalState') or '-':<10} "
                f"{status.get('restarts', 0):>8}  {conds}"
            )
        lines.append(f"{len(jobsets)} JobSets in {elapsed:.1f}s")
        return "\n".join(lines)

    async def _sample_table(self, js: dict[str, Any], elapsed: float) -> str:
        """The classic sample's summary: its Jobs, the headless Service and the conditions."""
        name = js["metadata"]["name"]
        jobs = (
            await self.client.get(
                resource_path("batch", "v1", "jobs", self.ns), {"labelSelector": f"{c.JOBSET_NAME_KEY}={name}"}
            )
        )["items"]
        svc = None
        with contextlib.suppress(ApiError):
            svc = await self.client.get(resource_path("", "v1", "services", self.ns, name))
        status = js.get("status", {})
        lines = [
            "",
            f"JobSet {name}: terminalState={status.get('terminalState') or '-'} "
            f"restarts={status.get('restarts', 0)} in {elapsed:.1f}s",
            f"{'JOB':<22} {'GLOBAL-INDEX':>12} {'COMPLETIONS':>11}  COORDINATOR",
        ]
        for job in sorted(jobs, key=lambda j: j["metadata"]["name"]):
            labels = job["metadata"].get("labels", {})
            done = job.get("status", {}).get("succeeded", 0)
            want = job["spec"].get("completions", 1)
            lines.append(
                f"{job['metadata']['name']:<22} {labels.get(c.JOB_GLOBAL_INDEX_KEY, ''):>12} "
                f"{f'{done}/{want}':>11}  {labels.get(c.COORDINATOR_KEY, '')}"
            )
        if svc is not None:
            lines.append(f"headless Service: {svc['metadata']['name']} (clusterIP {svc['spec'].get('clusterIP')})")
        for cond in status.get("conditions", []):
            lines.append(f"condition {cond['type']}={cond['status']} reason={cond.get('reason', '')}")
        return "\n".join(lines)


def _fraction(running: int, reading: Reading) -> float | None:
    expected = reading.pods_in("expected")
    return running / expected if expected else None
