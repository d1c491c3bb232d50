"""A real Prometheus scrapes our ``/metrics``; every dashboard query and alert expression parses and returns data.

Prometheus is Debian's ``prometheus`` package (``apt-get install -y prometheus``), started by the test on
127.0.0.1 with a temporary config and data directory, and stopped at teardown. Without the binary the test is
skipped on a workstation and fails under CI (``CI=true``), where it must be installed.

The alert rules are loaded into that Prometheus as a rule file (so it parses and evaluates them), and each
alert's base query (the expression without its threshold) must return data.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from metrics.hub import MetricsHub
from metrics.server import ObservabilityServer
from tools import dashboards as d
from tools import synthetic as syn

PROMETHEUS = shutil.which("prometheus")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
async def metrics_server() -> AsyncIterator[tuple[MetricsHub, int]]:
    time = syn.FakeTime()
    hub = MetricsHub(clock=time.clock)
    await syn.populate(hub, time)
    server = ObservabilityServer(hub.render, "127.0.0.1:0", "0")
    await server.start()
    try:
        yield hub, server.ports["metrics"]
    finally:
        await server.stop()


class Prom:
    def __init__(self, base: str, http: aiohttp.ClientSession) -> None:
        self.base = base
        self.http = http

    async def query(self, expr: str) -> dict[str, Any]:
        async with self.http.get(f"{self.base}/api/v1/query", params={"query": expr}) as resp:
            body: dict[str, Any] = await resp.json()
            return body

    async def get(self, path: str) -> dict[str, Any]:
        async with self.http.get(f"{self.base}{path}") as resp:
            body: dict[str, Any] = await resp.json()
            return body

    async def until(self, expr: str, limit: int = 600) -> None:
        """Poll (bounded) until ``expr`` has a result: Prometheus is another process, there is no event."""
        for _ in range(limit):
            body = await self.query(expr)
            if body.get("status") == "success" and body["data"]["result"]:
                return
            await asyncio.sleep(0.05)
        pytest.fail(f"Prometheus never answered {expr!r}")


@contextlib.asynccontextmanager
async def running_prometheus(tmp_path: Path, target: int) -> AsyncIterator[Prom]:
    """Prometheus on 127.0.0.1 scraping ``127.0.0.1:<target>/metrics`` every second (job named as the Prometheus
    Operator names our ServiceMonitor's), with our alert rules."""
    if PROMETHEUS is None:
        if os.environ.get("CI") == "true":
            pytest.fail("the prometheus binary is missing: CI must `apt-get install -y prometheus`")
        pytest.skip("prometheus not installed (apt-get install -y prometheus)")
    rules = d.RULES_FILE  # the same rules as the PrometheusRule's spec (tools.dashboards writes both)
    config = tmp_path / "prometheus.yml"
    config.write_text(
        yaml.safe_dump(
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "rule_files": [str(rules)],
                "scrape_configs": [
                    {"job_name": d.METRICS_JOB, "static_configs": [{"targets": [f"127.0.0.1:{target}"]}]}
                ],
            }
        )
    )
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        PROMETHEUS,
        f"--config.file={config}",
        f"--storage.tsdb.path={tmp_path / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--log.level=warn",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with aiohttp.ClientSession() as http:
            base = f"http://127.0.0.1:{port}"
            for _ in range(400):
                if proc.returncode is not None:
                    err = await proc.stderr.read() if proc.stderr else b""
                    pytest.fail(f"prometheus exited: {err.decode()[-2000:]}")
                with contextlib.suppress(aiohttp.ClientError):
                    async with http.get(f"{base}/-/ready") as resp:
                        if resp.status == 200:
                            break
                await asyncio.sleep(0.05)
            else:
                pytest.fail("prometheus never became ready")
            yield Prom(base, http)
    finally:
        if proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except TimeoutError:
                proc.kill()
                await proc.wait()


async def check_every_query(prometheus: Prom) -> None:
    """Every dashboard query (variables substituted), alert base and full alert expression parses; the
    queries and bases return data."""
    empty, failed = [], []
    checks = list(d.queries()) + [(f"alert {a.name} (base)", a.base) for a in d.ALERTS]
    for where, expr in checks:
        body = await prometheus.query(expr)
        if body.get("status") != "success":
            failed.append(f"{where}: {expr}: {body.get('error')}")
        elif not body["data"]["result"]:
            empty.append(f"{where}: {expr}")
    for alert in d.ALERTS:  # the full expressions must parse (they need not fire)
        body = await prometheus.query(alert.expr)
        if body.get("status") != "success":
            failed.append(f"alert {alert.name}: {alert.expr}: {body.get('error')}")
    assert failed == []
    assert empty == []


@pytest.fixture
async def prometheus(tmp_path: Path, metrics_server: tuple[MetricsHub, int]) -> AsyncIterator[Prom]:
    async with running_prometheus(tmp_path, metrics_server[1]) as prom:
        yield prom


async def test_every_dashboard_query_and_alert_returns_data(prometheus: Prom) -> None:
    # rate()/increase() need two samples inside the 1m window: wait for three scrapes.
    await prometheus.until(f'count_over_time(up{{job="{d.METRICS_JOB}"}}[1m]) >= 3')
    up = await prometheus.query(f'up{{job="{d.METRICS_JOB}"}}')
    assert up["data"]["result"][0]["value"][1] == "1"
    await check_every_query(prometheus)


async def test_alert_rules_load_and_evaluate_healthy(prometheus: Prom) -> None:
    names = {a.name for a in d.ALERTS}
    for _ in range(600):
        body = await prometheus.get("/api/v1/rules")
        rules = [r for g in body["data"]["groups"] for r in g["rules"]]
        evaluated = [r for r in rules if r.get("lastEvaluation", "").startswith("0001") is False]
        if len(evaluated) == len(names) and all(r.get("health") != "unknown" for r in rules):
            break
        await asyncio.sleep(0.05)
    assert {r["name"] for r in rules} == names
    bad = {r["name"]: r.get("lastError") for r in rules if r.get("health") != "ok"}
    assert bad == {}


async def test_scraped_values_match_the_scripted_story(prometheus: Prom) -> None:
    await prometheus.until(f'up{{job="{d.METRICS_JOB}"}} == 1')

    async def scalar(expr: str) -> float:
        body = await prometheus.query(expr)
        result = body["data"]["result"]
        assert len(result) == 1, (expr, result)
        return float(result[0]["value"][1])

    restarts = 'jobset_restarts_total{namespace="team-a", jobset_name="train"}'
    assert await scalar(f"sum({restarts})") == 1
    labels = await prometheus.query(restarts)
    assert labels["data"]["result"][0]["metric"]["reason"] == "FailurePolicy_nodeFailure"
    assert await scalar('jobset_recovery_seconds_count{namespace="team-a"}') == 1
    assert await scalar('jobset_recovery_seconds_sum{namespace="team-a"}') == 10
    assert await scalar('sum(jobset_startup_seconds_count{namespace="team-a"})') == 2
    assert await scalar('jobset_completed_total{jobset_name="train"}') == 1
    assert await scalar('jobset_failed_total{jobset_name="doomed"}') == 1
    assert await scalar('jobset_gpu_allocatable{node_pool="a3-pool"}') == 32
    assert await scalar('jobset_gpu_requested{node_pool="b-pool"}') == 4
    assert await scalar('jobset_gpus_held{jobset_name="waiting"}') == 4
    assert await scalar('jobset_gpu_idle_seconds_total{jobset_name="train"}') == 344
