"""The ``/metrics``, ``/healthz`` and ``/readyz`` HTTP endpoints (aiohttp).

Role: serve the hub's exposition on the metrics bind address (reference default ``:8443``) and the probes on
the health-probe bind address (reference default ``:8081``); when both addresses are equal, one listener serves
all three paths. A bind address of ``"0"`` (or ``""``) disables that listener, as in the reference.

Our choice versus the reference (behaviour.md §6): the reference serves metrics over HTTPS with an authn/authz
filter. The metrics listener speaks TLS when given ``metrics_tls`` (1.2 minimum, HTTP/1.1 only) — from
``tls_context_from_dir(certDir)`` (files ``tls.crt``/``tls.key``) or, like the reference with an empty certDir,
``self_signed_tls_context()`` — and plain HTTP otherwise. With ``metrics_authorizer`` (``metrics.auth``) scrapes
need a bearer token that a TokenReview accepts and a SubjectAccessReview allows to ``get`` ``/metrics``, as
the reference's authn/authz filter requires; probes are never authenticated.

Probes follow controller-runtime's answers: ``/healthz`` → 200 ``ok`` (a "ping" check plus injected ones);
``/readyz`` → 200 ``ok`` when every injected readiness check passes, else 500 with one ``[-]name failed`` line
per failing check; ``?verbose`` lists every check. Named sub-paths (``/readyz/<check>``) run one check.

Invariants: checks are plain callables returning bool (an exception counts as a failure); nothing here blocks the
event loop for long (rendering goes through ``MetricsHub.render``, which may use a worker thread); the server
binds only where told (tests pass ``127.0.0.1:0``) and ``stop()`` closes every listener it opened.
"""

from __future__ import annotations

import ssl
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

Check = Callable[[], bool]


def parse_bind_address(addr: str) -> tuple[str, int] | None:
    """``":8443"`` → ``("0.0.0.0", 8443)``; ``"127.0.0.1:0"``; ``"[::1]:9090"``; ``"0"`` or ``""`` → None."""
    addr = addr.strip()
    if addr in ("", "0"):
        return None
    host, sep, port = addr.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"bind address {addr!r}: want [host]:port, or 0 to disable")
    host = host.strip("[]") or "0.0.0.0"  # noqa: S104 - ":port" means every interface, as in the reference
    return host, int(port)


def tls_context_from_dir(cert_dir: str) -> ssl.SSLContext:
    """A server TLS context from ``<cert_dir>/tls.crt`` and ``tls.key`` (TLS 1.2 minimum, HTTP/1.1 only)."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(str(Path(cert_dir) / "tls.crt"), str(Path(cert_dir) / "tls.key"))
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


def self_signed_tls_context(hosts: tuple[str, ...] = ("localhost",), *, days: int = 365) -> ssl.SSLContext:
    """A server TLS context with a fresh self-signed ECDSA certificate, as the reference serves metrics when
    ``metrics.certDir`` is empty.

    The key and certificate are written to a private temporary directory only long enough for OpenSSL to load
    them (it reads files, not memory), then removed: nothing outlives the process. Needs a writable temp dir
    (the Deployment mounts an emptyDir on /tmp under its read-only root filesystem).
    """
    import datetime as dt
    import ipaddress
    import tempfile

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])])
    now = dt.datetime.now(dt.UTC)
    alt: list[x509.GeneralName] = []
    for host in hosts:
        try:
            alt.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            alt.append(x509.DNSName(host))
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(alt), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    with tempfile.TemporaryDirectory(prefix="pyjobset-metrics-") as tmp:
        (Path(tmp) / "tls.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_path = Path(tmp) / "tls.key"
        key_path.touch(mode=0o600)
        key_path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        return tls_context_from_dir(tmp)


def _run(check: Check) -> bool:
    try:
        return bool(check())
    except Exception:  # noqa: BLE001 - a check that raises means "not ready"
        return False


def _probe(kind: str, checks: Mapping[str, Check]) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handler(request: web.Request) -> web.Response:
        only = request.match_info.get("check")
        if only is not None:
            if only not in checks:
                return web.Response(status=404, text=f"no {kind} check named {only!r}\n")
            ok = _run(checks[only])
            return web.Response(status=200 if ok else 500, text="ok" if ok else f"[-]{only} failed\n")
        results = {name: _run(check) for name, check in checks.items()}
        failed = [name for name, ok in results.items() if not ok]
        if not failed and "verbose" not in request.query:
            return web.Response(text="ok")
        lines = [f"[+]{name} ok" if ok else f"[-]{name} failed: reason withheld" for name, ok in results.items()]
        lines.append(f"{kind} check failed" if failed else f"{kind} check passed")
        return web.Response(status=500 if failed else 200, text="\n".join(lines) + "\n")

    return handler


@dataclass
class ObservabilityServer:
    """Metrics and probe listeners (see the module docstring)."""

    render: Callable[[], Awaitable[bytes]]
    """``MetricsHub.render``."""
    metrics_bind_address: str = ":8443"
    health_bind_address: str = ":8081"
    readiness_checks: Mapping[str, Check] = field(default_factory=dict)
    """E.g. ``{"caches-synced": ..., "webhook-certs": ...}``; each returns True when ready."""
    liveness_checks: Mapping[str, Check] = field(default_factory=dict)
    metrics_tls: ssl.SSLContext | None = None
    metrics_authorizer: Callable[[str | None, str], Awaitable[int]] | None = None
    """E.g. ``metrics.auth.MetricsAuthorizer(client)``: given the Authorization header and the path, the HTTP
    status to answer (200 serves the metrics). None serves every scraper."""
    readiness_path: str = "readyz"
    liveness_path: str = "healthz"
    ports: dict[str, int] = field(default_factory=dict, init=False)
    """Bound ports once started: keys ``metrics`` and ``health`` (the same port when the addresses match)."""
    _runners: list[web.AppRunner] = field(default_factory=list, init=False)

    async def _metrics(self, request: web.Request) -> web.Response:
        if self.metrics_authorizer is not None:
            status = await self.metrics_authorizer(request.headers.get("Authorization"), request.path)
            if status != 200:
                reason = {401: "Unauthorized", 403: "Forbidden"}.get(status, "Internal Server Error")
                return web.Response(status=status, text=reason + "\n")
        body = await self.render()
        resp = web.Response(body=body)
        resp.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return resp

    def _add_probes(self, app: web.Application) -> None:
        live = {"ping": lambda: True, **self.liveness_checks}
        ready = {"ping": lambda: True, **self.readiness_checks}
        for path, kind, checks in ((self.liveness_path, "healthz", live), (self.readiness_path, "readyz", ready)):
            handler = _probe(kind, checks)
            app.router.add_get(f"/{path}", handler)
            app.router.add_get(f"/{path}/{{check}}", handler)

    async def _listen(self, app: web.Application, where: tuple[str, int], tls: ssl.SSLContext | None) -> int:
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        self._runners.append(runner)
        site = web.TCPSite(runner, where[0], where[1], ssl_context=tls, reuse_address=True)
        await site.start()
        addresses = runner.addresses  # this runner's one site: (host, port[, flowinfo, scope_id])
        return int(addresses[0][1]) if addresses else where[1]

    async def start(self) -> None:
        metrics_at = parse_bind_address(self.metrics_bind_address)
        health_at = parse_bind_address(self.health_bind_address)
        if metrics_at is not None and metrics_at == health_at and metrics_at[1] != 0:
            app = web.Application()
            app.router.add_get("/metrics", self._metrics)
            self._add_probes(app)
            port = await self._listen(app, metrics_at, self.metrics_tls)
            self.ports.update(metrics=port, health=port)
            return
        if metrics_at is not None:
            app = web.Application()
            app.router.add_get("/metrics", self._metrics)
            self.ports["metrics"] = await self._listen(app, metrics_at, self.metrics_tls)
        if health_at is not None:
            app = web.Application()
            self._add_probes(app)
            self.ports["health"] = await self._listen(app, health_at, None)

    async def stop(self) -> None:
        runners, self._runners = self._runners, []
        for runner in runners:
            await runner.cleanup()
