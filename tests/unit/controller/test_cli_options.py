"""``pyjobset up`` / ``pyjobset demo``: every flag reaches the options the subcommand runs with.

Role: pin the flag → options mapping of the CLI (flags named as the options' fields) without starting a cluster:
the subcommand's runner is replaced by one that records the options it was given.

Invariants: nothing listens or runs; ``main`` is called in-process.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from controller import cli, demo, up
from controller.demo import DemoOptions
from controller.up import UpOptions


def test_every_demo_flag_reaches_the_demo_options(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[DemoOptions] = []

    async def fake_run_demo(stop: asyncio.Event, options: DemoOptions) -> int:
        seen.append(options)
        return 0

    monkeypatch.setattr(demo, "run_demo", fake_run_demo)
    argv = ["demo", "--nodes", "6", "--gpus-per-node", "2", "--jobsets", "3", "--jobset-size", "2"]
    argv += ["--fail-at", "1.5", "--pod-run-seconds", "4", "--plot", "/tmp/t.png", "--timeout", "30"]

    assert cli.main(argv) == 0

    assert seen == [
        DemoOptions(
            nodes=6,
            gpus_per_node=2,
            jobsets=3,
            jobset_size=2,
            pod_run_seconds=4.0,
            fail_at=1.5,
            plot="/tmp/t.png",
            timeout=30.0,
        )
    ]


def test_demo_without_flags_runs_with_the_default_options(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[DemoOptions] = []

    async def fake_run_demo(stop: asyncio.Event, options: DemoOptions) -> int:
        seen.append(options)
        return 0

    monkeypatch.setattr(demo, "run_demo", fake_run_demo)

    assert cli.main(["demo"]) == 0
    assert seen == [DemoOptions()]


def test_every_up_flag_reaches_the_up_options(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[UpOptions] = []

    async def fake_run_up(opts: UpOptions, stop: asyncio.Event, say: Any) -> int:
        seen.append(opts)
        return 0

    monkeypatch.setattr(up, "run_up", fake_run_up)
    argv = ["up", "--kubeconfig", "/tmp/k", "--nodes", "5", "--gpus-per-node", "4", "--nodes-per-pool", "2"]
    argv += ["--port", "6443", "--pod-run-seconds", "7"]

    assert cli.main(argv) == 0

    assert seen == [
        UpOptions(kubeconfig="/tmp/k", port=6443, nodes=5, gpus_per_node=4, nodes_per_pool=2, pod_run_seconds=7.0)
    ]
