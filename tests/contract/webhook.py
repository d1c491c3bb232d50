"""A programmable HTTPS admission webhook server for the contract suite.

Role: serve ``AdmissionReview`` requests on 127.0.0.1 with a throw-away CA and serving certificate (made with
``cryptography``), record every review it receives, and answer with whatever the test's handler returns, so
tests can check what the API server sends to webhooks and what it does with the answers.

Invariants: listens on 127.0.0.1 only; ``stop()`` closes it; the CA bundle is the base64 PEM a webhook
configuration's ``caBundle`` wants; the certificate is valid for 127.0.0.1 and ``localhost``.
"""

from __future__ import annotations

import base64
import datetime
import ipaddress
import ssl
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

JSON = dict[str, Any]
Handler = Callable[[JSON], Awaitable[JSON]]


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def make_certs(directory: Path, dns: tuple[str, ...] = ()) -> tuple[bytes, Path, Path]:
    """(CA PEM, serving cert path, serving key path)."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "contract-webhook-ca")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    *(x509.DNSName(d) for d in dns),
                    x509.DNSName("localhost"),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                ]
            ),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    cert_path, key_path = directory / "tls.crt", directory / "tls.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(_pem_key(key))
    return ca.public_bytes(serialization.Encoding.PEM), cert_path, key_path


def allow(review: JSON, patch: list[JSON] | None = None, warnings: list[str] | None = None) -> JSON:
    resp: JSON = {"uid": review["request"]["uid"], "allowed": True}
    if patch is not None:
        resp["patchType"] = "JSONPatch"
        resp["patch"] = base64.b64encode(orjson.dumps(patch)).decode()
    if warnings:
        resp["warnings"] = warnings
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": resp}


def deny(review: JSON, message: str, code: int = 403, reason: str = "") -> JSON:
    status: JSON = {"code": code, "message": message}
    if reason:
        status["reason"] = reason
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "response": {"uid": review["request"]["uid"], "allowed": False, "status": status},
    }


class WebhookServer:
    """HTTPS server: ``handlers[path](review) -> AdmissionReview``; ``reviews`` records (path, review)."""

    def __init__(self, dns_names: tuple[str, ...] = ()) -> None:
        self.handlers: dict[str, Handler] = {}
        self.reviews: list[tuple[str, JSON]] = []
        self._tmp = tempfile.TemporaryDirectory()
        self.ca_pem, cert, key = make_certs(Path(self._tmp.name), dns_names)
        self._ssl = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._ssl.load_cert_chain(cert, key)
        app = web.Application()
        app.router.add_post("/{path:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        self.port = 0

    @property
    def ca_bundle(self) -> str:
        return base64.b64encode(self.ca_pem).decode()

    def url(self, path: str) -> str:
        return f"https://127.0.0.1:{self.port}/{path.lstrip('/')}"

    async def start(self) -> None:
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=self._ssl)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        await self._runner.cleanup()
        self._tmp.cleanup()

    async def _handle(self, request: web.Request) -> web.Response:
        path = "/" + request.match_info["path"]
        review = orjson.loads(await request.read())
        self.reviews.append((path, review))
        handler = self.handlers.get(path)
        answer = await handler(review) if handler else allow(review)
        return web.Response(body=orjson.dumps(answer), content_type="application/json")
