"""Awaiting a moment on an injected ``Clock`` (so fake time in tests wakes waiters at once).

Invariant: ``wait_until`` returns no earlier than ``clock.now() >= when`` and cancels its timer if the
awaiting task is cancelled.
"""

from __future__ import annotations

import asyncio

from kubesim.cluster.clock import Clock


async def wait_until(clock: Clock, when: float) -> None:
    if clock.now() >= when:
        return
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[None] = loop.create_future()

    def fire() -> None:
        if not fut.done():
            fut.set_result(None)

    timer = clock.call_at(when, fire)
    try:
        await fut
    finally:
        timer.cancel()
