"""Externally provided webhook serving certificates (``internalCertManagement.enable: false``, e.g. cert-manager).

Role: watch ``tls.crt``/``tls.key`` in ``webhook.certDir`` and hand a changed pair to the listeners (the webhook
server reloads its ``SSLContext``). Kept apart from ``certs`` (internal management) so that a controller whose
certificates come from outside never imports ``cryptography`` (~9 MiB resident).

Invariants: a pair that does not load is not adopted (the old one keeps serving) and is retried at the next poll;
listeners hear of a pair once per change of either file's modification time.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import structlog

log = structlog.get_logger("pyjobset.certs")

CertListener = Callable[[Path, Path], None]


@dataclass
class FileCertSource:
    """Externally provided ``tls.crt``/``tls.key`` in ``cert_dir`` (cert-manager), reloaded when they change."""

    cert_dir: str
    poll_interval: float = 10.0
    listeners: list[CertListener] = field(default_factory=list)
    _seen: tuple[float, float] | None = field(default=None, init=False)
    _files: tuple[Path, Path] | None = field(default=None, init=False)

    def ready(self) -> bool:
        return self._files is not None

    @property
    def files(self) -> tuple[Path, Path] | None:
        return self._files

    def check_once(self) -> bool:
        """Notify listeners if the pair appeared or changed; True when it did."""
        crt, key = Path(self.cert_dir) / "tls.crt", Path(self.cert_dir) / "tls.key"
        try:
            stamp = (crt.stat().st_mtime, key.stat().st_mtime)
        except OSError:
            return False
        if stamp == self._seen:
            return False
        for listener in self.listeners:
            listener(crt, key)  # raises if the pair does not load: keep serving the old one, retry next poll
        self._seen = stamp
        self._files = (crt, key)
        log.info("webhook_cert_loaded", cert_dir=self.cert_dir)
        return True

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                self.check_once()
            except (OSError, ValueError) as err:
                log.warning("webhook_cert_load_failed", cert_dir=self.cert_dir, error=str(err))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.poll_interval)
