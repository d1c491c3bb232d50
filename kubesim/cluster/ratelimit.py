"""A client-side token bucket (client-go ``flowcontrol``) on the injected clock.

``await bucket.take()`` returns when a token is available: ``qps`` tokens per second, at most ``burst``
saved. ``qps <= 0`` means unlimited. Used to give the simulated Job controller kube-controller-manager's
client rate limit (``--kube-api-qps``/``--kube-api-burst``, 20/30 by default upstream) when wanted.

Invariant: over any window of ``t`` seconds at most ``burst + qps * t`` tokens are handed out.
"""

from __future__ import annotations

from kubesim.cluster.clock import Clock
from kubesim.cluster.timing import wait_until


class TokenBucket:
    def __init__(self, clock: Clock, qps: float, burst: int) -> None:
        self.clock = clock
        self.qps = qps
        self.burst = max(1, burst)
        self._tokens = float(self.burst)
        self._at = clock.now()
        self.waiting = 0

    def _refill(self) -> None:
        now = self.clock.now()
        self._tokens = min(float(self.burst), self._tokens + (now - self._at) * self.qps)
        self._at = now

    async def take(self) -> None:
        if self.qps <= 0:
            return
        self._refill()
        self._tokens -= 1.0  # reserve now, so concurrent takers queue up in order
        if self._tokens >= 0:
            return
        self.waiting += 1
        try:
            await wait_until(self.clock, self.clock.now() + (-self._tokens) / self.qps)
        finally:
            self.waiting -= 1
