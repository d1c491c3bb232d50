"""Pictures of the Grafana dashboards for the documentation, drawn from a real Prometheus scraping a demo run.

Role: Grafana cannot be installed where the documentation is built, so this draws what its panels would show.
It starts ``pyjobset sim`` (a simulated cluster on 127.0.0.1), ``pyjobset run`` with plain-HTTP metrics on
127.0.0.1, and a local Prometheus (``/usr/bin/prometheus`` or ``$PROMETHEUS``) scraping it every second; it
then plays a scripted workload (JobSets that complete, one that restarts, one that fails for good, one too big
to fit, a node failure), asks Prometheus for every panel query of ``tools.dashboards`` over the run through its
HTTP API (``/api/v1/query_range``), and plots each dashboard as a grid of small charts with matplotlib into
``docs/images/dashboard-<name>.png``. Run it by hand (``python -m tools.screenshots``, about four minutes);
CI does not run it, the PNGs are committed.

Invariants: every process it starts listens on 127.0.0.1 only and is stopped before it returns; the queries are
exactly the dashboards' (template variables replaced by "all" and a 30 s rate window); a panel with no data is
drawn empty and named in the output, never silently dropped.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from api import constants as c
from cache.client import ApiClient, load_cluster_config, resource_path
from controller.demo import install_crd
from tools import dashboards

ROOT = Path(__file__).resolve().parent.parent
IMAGES = ROOT / "docs" / "images"
RATE_WINDOW = "30s"
STEP_SECONDS = 2
JSON = dict[str, Any]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextlib.contextmanager
def _process(argv: list[str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)  # noqa: S603
        try:
            yield proc
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _wait_for(check: Any, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            if check():
                return
        time.sleep(0.2)
    raise RuntimeError(f"timed out waiting for {what}")


def _http_ok(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=2) as resp:  # noqa: S310 - loopback URLs built here
        return bool(resp.status == 200)


# --------------------------------------------------------------------------------------------- workload


def _jobset(
    name: str,
    namespace: str,
    *,
    workers: int = 3,
    pods: int = 2,
    run_seconds: float = 10,
    max_restarts: int = 2,
    gpus: int = 1,
    annotations: dict[str, str] | None = None,
) -> JSON:
    def rjob(rname: str, replicas: int, parallelism: int, extra: dict[str, str]) -> JSON:
        return {
            "name": rname,
            "replicas": replicas,
            "template": {
                "spec": {
                    "parallelism": parallelism,
                    "completions": parallelism,
                    "backoffLimit": 0,
                    "template": {
                        "metadata": {
                            "annotations": {
                                "sim.pyjobset.io/start-seconds": "1",
                                "sim.pyjobset.io/run-seconds": str(run_seconds),
                                **extra,
                            }
                        },
                        "spec": {
                            "restartPolicy": "Never",
                            "containers": [
                                {
                                    "name": "main",
                                    "image": "registry.example/trainer:latest",
                                    "resources": {"requests": {"cpu": "1", "nvidia.com/gpu": str(gpus)}},
                                }
                            ],
                        },
                    },
                }
            },
        }

    return {
        "apiVersion": c.API_VERSION,
        "kind": c.KIND,
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "failurePolicy": {"maxRestarts": max_restarts},
            "replicatedJobs": [
                rjob("driver", 1, 1, {}),
                rjob("workers", workers, pods, annotations or {}),
            ],
        },
    }


def _steer(sim_url: str, path: str, body: JSON, method: str) -> None:
    """Fault injection on the simulated cluster (``/kubesim/faults``, ``/kubesim/watches``)."""
    req = urllib.request.Request(  # noqa: S310 - the simulated cluster on loopback
        f"{sim_url}{path}", data=json.dumps(body).encode(), method=method, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310
        resp.read()


async def _workload(client: ApiClient, sim_url: str, log: Any) -> None:
    """About three minutes of a small fleet's life, in two namespaces."""
    for ns in ("team-a", "team-b"):
        with contextlib.suppress(Exception):
            await client.create(resource_path("", "v1", "namespaces"), {"metadata": {"name": ns}})

    async def create(obj: JSON) -> None:
        ns = obj["metadata"]["namespace"]
        await client.create(resource_path(c.GROUP, c.VERSION, c.PLURAL, ns), obj)
        log(f"created {ns}/{obj['metadata']['name']}")

    restart_once = {"sim.pyjobset.io/fail-when": f"{c.RESTART_ATTEMPT_KEY}=0,{c.JOB_INDEX_KEY}=1"}
    always_fails = {"sim.pyjobset.io/exit-code": "1"}
    await create(_jobset("pretrain", "team-a", workers=4, pods=4, run_seconds=60, gpus=4, annotations=restart_once))
    await asyncio.sleep(10)
    await create(_jobset("flaky", "team-b", run_seconds=8, max_restarts=3, annotations=always_fails))
    for i in range(6):
        await create(_jobset(f"finetune-{i}", "team-a", run_seconds=12 + 3 * i))
        await asyncio.sleep(8)
        if i == 2:
            # A bad patch of the API server: a third of Job creations answered 500 for 15 s, pod watches expire.
            faults = {"errorRate": 0.33, "errorCode": 500, "paths": ["/jobs"], "verbs": ["POST"]}
            await asyncio.to_thread(_steer, sim_url, "/kubesim/faults", faults, "PUT")
            await asyncio.to_thread(
                _steer, sim_url, "/kubesim/watches", {"action": "expire", "resource": "pods"}, "POST"
            )
            log("API server: 33% of Job creations fail, pod watches expired")
        if i == 4:
            await asyncio.to_thread(_steer, sim_url, "/kubesim/faults", {}, "PUT")
            log("API server healthy again")
    # Too big for what is left: some pods bind and hold GPUs while the rest wait.
    await create(_jobset("too-big", "team-b", workers=1, pods=30, run_seconds=30, gpus=8))
    await asyncio.sleep(25)
    node = "sim-node-00003"
    await client.patch(
        resource_path("", "v1", "nodes", None, node), {"metadata": {"annotations": {"sim.pyjobset.io/fail": "true"}}}
    )
    log(f"node {node} failed")
    await asyncio.sleep(30)
    await client.patch(
        resource_path("", "v1", "nodes", None, node), {"metadata": {"annotations": {"sim.pyjobset.io/fail": None}}}
    )
    log(f"node {node} recovered")
    await client.delete(resource_path(c.GROUP, c.VERSION, c.PLURAL, "team-b", "too-big"), propagation="Foreground")
    log("deleted team-b/too-big")
    for i in range(6, 9):
        await create(_jobset(f"finetune-{i}", "team-a", run_seconds=10))
        await asyncio.sleep(6)
    await asyncio.sleep(40)


# --------------------------------------------------------------------------------------------- queries and plots


def _substitute(expr: str) -> str:
    expr = expr.replace("$__rate_interval", RATE_WINDOW)
    return dashboards.substitute(expr)


def _query_range(prom: str, expr: str, start: float, end: float) -> list[JSON]:
    params = urllib.parse.urlencode({"query": expr, "start": start, "end": end, "step": STEP_SECONDS})
    with urllib.request.urlopen(f"{prom}/api/v1/query_range?{params}", timeout=30) as resp:  # noqa: S310
        body = json.load(resp)
    if body.get("status") != "success":
        raise RuntimeError(f"query failed: {expr}: {body}")
    result: list[JSON] = body["data"]["result"]
    return result


def _legend(fmt: str, labels: dict[str, str]) -> str:
    if not fmt:
        return " ".join(f"{k}={v}" for k, v in sorted(labels.items()) if k not in ("__name__", "job", "instance"))
    return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: labels.get(m[1], ""), fmt).strip()


def _plot(name: str, dash: JSON, series: dict[int, list[tuple[str, list[float], list[float]]]], start: float) -> Path:
    import matplotlib as mpl

    mpl.use("Agg")
    import matplotlib.pyplot as plt

    panels = dash["panels"]
    cols = 2
    rows = (len(panels) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(11, 2.35 * rows), dpi=72, squeeze=False)
    for ax in axes.flat[len(panels) :]:
        ax.axis("off")
    for ax, panel in zip(axes.flat, panels, strict=False):
        lines = series.get(panel["id"], [])
        title = panel["title"] + ("  (table in Grafana)" if panel["type"] == "table" else "")
        ax.set_title(title, fontsize=9, loc="left")
        ax.tick_params(labelsize=7)
        ax.grid(visible=True, linewidth=0.3)
        for label, xs, ys in lines[:12]:
            ax.plot([x - start for x in xs], ys, linewidth=1.1, label=label[:40] or "value")
        if lines:
            shown = min(len(lines), 12)
            ncol = 3 if shown > 8 else 2 if shown > 4 else 1
            # Headroom above the data for the legend, so it does not hide the lines.
            lo, hi = ax.get_ylim()
            ax.set_ylim(lo, hi + (hi - lo) * 0.16 * -(-shown // ncol))
            ax.legend(fontsize=6, loc="upper left", framealpha=0.85, ncol=ncol)
        else:
            ax.text(0.5, 0.5, "no data in this run", ha="center", va="center", fontsize=8, transform=ax.transAxes)
        unit = panel["fieldConfig"]["defaults"].get("unit", "short")
        if unit in ("s", "percentunit", "ops", "reqps"):
            ax.set_ylabel(
                {"s": "seconds", "percentunit": "fraction", "ops": "per second", "reqps": "per second"}[unit],
                fontsize=7,
            )
    fig.suptitle(f"{dash['title']} — seconds since the start of the run", fontsize=10)
    fig.tight_layout()
    IMAGES.mkdir(parents=True, exist_ok=True)
    out = IMAGES / f"dashboard-{name.removesuffix('.json').removeprefix('jobset-')}.png"
    fig.savefig(out, dpi=72, metadata={"Software": None})
    plt.close(fig)
    return out


def _render(prom: str, start: float, end: float) -> list[Path]:
    written: list[Path] = []
    for name, build in dashboards.DASHBOARDS.items():
        dash = build()
        series: dict[int, list[tuple[str, list[float], list[float]]]] = {}
        for panel in dash["panels"]:
            for target in panel["targets"]:
                for item in _query_range(prom, _substitute(target["expr"]), start, end):
                    xs = [float(t) for t, _ in item["values"]]
                    ys = [float(v) for _, v in item["values"]]
                    label = _legend(target.get("legendFormat", ""), item["metric"])
                    series.setdefault(panel["id"], []).append((label, xs, ys))
            if panel["id"] not in series:
                print(f"{name}: {panel['title']}: no data", file=sys.stderr)
        written.append(_plot(name, dash, series, start))
    return written


# --------------------------------------------------------------------------------------------- main


async def _install(kubeconfig: Path) -> None:
    config = await load_cluster_config(str(kubeconfig))
    async with ApiClient(config) as client:
        await install_crd(client)
        # The controller's namespace, for its leader-election Lease.
        with contextlib.suppress(Exception):
            await client.create(resource_path("", "v1", "namespaces"), {"metadata": {"name": "jobset-system"}})


async def _drive(kubeconfig: Path) -> None:
    config = await load_cluster_config(str(kubeconfig))
    async with ApiClient(config) as client:
        started = time.monotonic()
        await _workload(
            client, config.server, lambda msg: print(f"[{time.monotonic() - started:5.1f}s] {msg}", flush=True)
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--prometheus", default=os.environ.get("PROMETHEUS", "/usr/bin/prometheus"))
    args = parser.parse_args(argv)
    prometheus = shutil.which(args.prometheus)
    if prometheus is None:
        print(f"screenshots: Prometheus not found at {args.prometheus}; pass --prometheus PATH", file=sys.stderr)
        return 2
    pyjobset = str(Path(sys.executable).with_name("pyjobset"))
    metrics_port, prom_port = _free_port(), _free_port()
    prom = f"http://127.0.0.1:{prom_port}"
    with tempfile.TemporaryDirectory(prefix="pyjobset-shots-") as tmp_name:
        tmp = Path(tmp_name)
        kubeconfig = tmp / "kubeconfig"
        (tmp / "prometheus.yml").write_text(
            "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
            "scrape_configs:\n"
            f"  - job_name: pyjobset\n    static_configs: [{{targets: ['127.0.0.1:{metrics_port}']}}]\n"
        )
        sim = [pyjobset, "sim", "--kubeconfig", str(kubeconfig), "--nodes", "32", "--nodes-per-pool", "8"]
        ctl = [
            pyjobset, "run", "--kubeconfig", str(kubeconfig), "--leader-elect=true", "--webhooks=false",
            "--metrics-bind-address", f"127.0.0.1:{metrics_port}", "--metrics-secure=false",
            "--health-probe-bind-address", f"127.0.0.1:{_free_port()}",
        ]  # fmt: skip
        prom_argv = [
            prometheus, f"--config.file={tmp / 'prometheus.yml'}", f"--storage.tsdb.path={tmp / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{prom_port}",
        ]  # fmt: skip
        with _process(sim, tmp / "sim.log"):
            _wait_for(kubeconfig.exists, "the simulated cluster's kubeconfig")
            asyncio.run(_install(kubeconfig))
            with _process(ctl, tmp / "controller.log"), _process(prom_argv, tmp / "prometheus.log"):
                _wait_for(lambda: _http_ok(f"http://127.0.0.1:{metrics_port}/metrics"), "the controller's /metrics")
                _wait_for(lambda: _http_ok(f"{prom}/-/ready"), "Prometheus")
                start = time.time()
                asyncio.run(_drive(kubeconfig))
                end = time.time()
                time.sleep(3)
                written = _render(prom, start, end)
    for path in written:
        print(f"wrote {path.relative_to(ROOT)} ({path.stat().st_size // 1024} KiB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
