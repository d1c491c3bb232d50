"""Sliced rendering yields to the event loop between slices and produces the same bytes as rendering at once."""

from __future__ import annotations

import asyncio

from metrics.exposition import render_now, render_sliced
from metrics.hub import MetricsHub
from tools import synthetic as syn


async def test_sliced_render_lets_other_tasks_run_and_matches_render_now() -> None:
    t = syn.FakeTime()
    hub = MetricsHub(clock=t.clock)
    await syn.populate(hub, t)
    ticks = 0
    stop = asyncio.Event()

    async def other() -> None:
        nonlocal ticks
        while not stop.is_set():
            ticks += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(other())
    await asyncio.sleep(0)
    before = ticks
    body = await render_sliced(hub.sources, budget=0.0)  # a zero budget yields at every pause point
    stop.set()
    await task
    assert ticks - before > 5
    assert body == render_now(hub.sources)
