"""Webhook serving certificates: internal management (self-signed CA, rotation) or external files (cert-manager).

Role (behaviour.md §7, ``internalCertManagement``): the API server reaches our admission webhooks over HTTPS and
trusts them through the ``caBundle`` of the webhook configurations. Two sources of the serving certificate:

* :class:`CertManager` (``internalCertManagement.enable: true``, the default) keeps a self-signed CA
  (CN ``jobset-ca``, O ``jobset``) and a serving certificate for ``<service>.<namespace>.svc`` in the Secret
  ``jobset-webhook-server-cert`` (keys ``ca.crt``, ``ca.key``, ``tls.crt``, ``tls.key``), writes ``tls.crt``,
  ``tls.key`` and ``ca.crt`` to ``webhook.certDir`` and patches the CA into every webhook of
  ``jobset-validating-webhook-configuration`` and ``jobset-mutating-webhook-configuration``. Every
  ``check_interval`` it re-reads the Secret and re-checks the configurations (so a re-applied configuration
  gets its caBundle back). A certificate that expires within ``lookahead`` (90 days) or does not match the
  service name is re-issued from the existing CA (the caBundle does not change); a CA that is invalid or expires
  within ``lookahead`` is replaced, and until the old CA expires both are in the caBundle, so the API server
  keeps trusting whichever certificate a replica still serves.
* :class:`FileCertSource` (``enable: false``; in ``certfiles``, re-exported here): ``tls.crt``/``tls.key`` are
  provided in ``certDir`` (cert-manager's Secret mounted there); they are re-read when their modification time
  changes.

Invariants: the caBundle is patched before the certificate it vouches for is served; a replica that loses an
update race (409) adopts the Secret the winner wrote instead of writing its own; private keys never appear in
logs; time comes from an injected clock (tests rotate with a fake one); ``ready()`` is false until a certificate
pair is on disk and loadable.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import ipaddress
import os
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import structlog
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from cache.client import ApiClient, resource_path
from cache.errors import ApiError, Conflict, NotFound
from controller.webhooks.certfiles import CertListener, FileCertSource

__all__ = ["CertListener", "CertManager", "FileCertSource"]

log = structlog.get_logger("pyjobset.certs")

CA_NAME: Final = "jobset-ca"
CA_ORGANIZATION: Final = "jobset"
VALIDATING_CONFIGURATION: Final = "jobset-validating-webhook-configuration"
MUTATING_CONFIGURATION: Final = "jobset-mutating-webhook-configuration"
CA_VALIDITY: Final = dt.timedelta(days=3650)
CERT_VALIDITY: Final = dt.timedelta(days=365)
LOOKAHEAD: Final = dt.timedelta(days=90)
_SKEW: Final = dt.timedelta(hours=1)  # backdate notBefore: the API server's clock may lag ours

Clock = Callable[[], dt.datetime]


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


# --------------------------------------------------------------------------------------------- pure PKI


@dataclass(frozen=True)
class CertArtifacts:
    """PEM bytes of the CA and the serving pair; ``bundle`` is what goes into ``caBundle`` (current CA first)."""

    ca_cert: bytes
    ca_key: bytes
    cert: bytes
    key: bytes
    bundle: bytes = b""

    @property
    def ca_bundle(self) -> bytes:
        return self.bundle or self.ca_cert

    def secret_data(self) -> dict[str, str]:
        raw = {"ca.crt": self.ca_cert, "ca.key": self.ca_key, "tls.crt": self.cert, "tls.key": self.key}
        return {k: base64.b64encode(v).decode() for k, v in raw.items()}

    @classmethod
    def from_secret(cls, secret: dict[str, Any]) -> CertArtifacts | None:
        data = secret.get("data")
        if not isinstance(data, dict):
            return None
        try:
            got = {k: base64.b64decode(data[k], validate=True) for k in ("ca.crt", "ca.key", "tls.crt", "tls.key")}
        except (KeyError, TypeError, ValueError):
            return None
        return cls(got["ca.crt"], got["ca.key"], got["tls.crt"], got["tls.key"])


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def generate_ca(now: dt.datetime, validity: dt.timedelta = CA_VALIDITY) -> tuple[bytes, bytes]:
    """A self-signed CA (CN ``jobset-ca``, O ``jobset``): (certificate PEM, key PEM)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, CA_NAME),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, CA_ORGANIZATION),
        ]
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _SKEW)
        .not_valid_after(now + validity)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM), _key_pem(key)


def issue_serving_cert(
    ca_cert_pem: bytes,
    ca_key_pem: bytes,
    dns_names: Iterable[str],
    now: dt.datetime,
    validity: dt.timedelta = CERT_VALIDITY,
) -> tuple[bytes, bytes]:
    """A serving certificate for ``dns_names`` signed by the CA: (certificate PEM, key PEM)."""
    ca_cert = x509.load_pem_x509_certificate(ca_cert_pem)
    ca_key = serialization.load_pem_private_key(ca_key_pem, password=None)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise TypeError("the CA key is not an ECDSA key")
    names = list(dns_names)
    key = ec.generate_private_key(ec.SECP256R1())
    not_after = min(now + validity, ca_cert.not_valid_after_utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(
            x509.Name(
                [
                    x509.NameAttribute(NameOID.COMMON_NAME, names[0]),
                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, CA_ORGANIZATION),
                ]
            )
        )
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _SKEW)
        .not_valid_after(not_after)
        .add_extension(x509.SubjectAlternativeName([_san(n) for n in names]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM), _key_pem(key)


def _san(host: str) -> x509.GeneralName:
    """An IP address SAN for addresses (a controller run outside the cluster, reached by URL), else DNS."""
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


def _sans(cert: x509.Certificate) -> set[str]:
    ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return set(ext.get_values_for_type(x509.DNSName)) | {str(ip) for ip in ext.get_values_for_type(x509.IPAddress)}


def _expiring(cert: x509.Certificate, now: dt.datetime, lookahead: dt.timedelta) -> bool:
    return cert.not_valid_before_utc > now + _SKEW or cert.not_valid_after_utc <= now + lookahead


def _key_matches(cert: x509.Certificate, key_pem: bytes) -> bool:
    key = serialization.load_pem_private_key(key_pem, password=None)
    pub = serialization.PublicFormat.SubjectPublicKeyInfo
    enc = serialization.Encoding.DER
    return key.public_key().public_bytes(enc, pub) == cert.public_key().public_bytes(enc, pub)


def ca_problem(art: CertArtifacts, now: dt.datetime, lookahead: dt.timedelta = LOOKAHEAD) -> str | None:
    """Why the CA must be replaced, or None."""
    try:
        ca = x509.load_pem_x509_certificate(art.ca_cert)
        if not _key_matches(ca, art.ca_key):
            return "CA key does not match the CA certificate"
        if not isinstance(serialization.load_pem_private_key(art.ca_key, password=None), ec.EllipticCurvePrivateKey):
            return "CA key is not an ECDSA key"
    except ValueError:
        return "CA is not readable"
    if _expiring(ca, now, lookahead):
        return "CA expires soon"
    return None


def cert_problem(
    art: CertArtifacts, hosts: str | Iterable[str], now: dt.datetime, lookahead: dt.timedelta = LOOKAHEAD
) -> str | None:
    """Why the serving certificate must be re-issued (CA assumed good), or None."""
    try:
        ca = x509.load_pem_x509_certificate(art.ca_cert)
        cert = x509.load_pem_x509_certificate(art.cert)
        if not _key_matches(cert, art.key):
            return "key does not match the certificate"
        cert.verify_directly_issued_by(ca)
        sans = _sans(cert)
    except (ValueError, TypeError, InvalidSignature, x509.ExtensionNotFound):
        return "certificate is not readable or not issued by the CA"
    for host in [hosts] if isinstance(hosts, str) else hosts:
        if host not in sans:
            return f"certificate is not valid for {host}"
    if _expiring(cert, now, lookahead):
        return "certificate expires soon"
    return None


def plan_rotation(
    current: CertArtifacts | None, dns_names: list[str], now: dt.datetime, lookahead: dt.timedelta = LOOKAHEAD
) -> tuple[CertArtifacts, str | None]:
    """(artifacts to use, reason they were (re)generated or None when ``current`` is kept)."""
    if current is not None:
        ca_reason = ca_problem(current, now, lookahead)
        if ca_reason is None:
            cert_reason = cert_problem(current, dns_names, now, lookahead)
            if cert_reason is None:
                return current, None
            cert, key = issue_serving_cert(current.ca_cert, current.ca_key, dns_names, now)
            return CertArtifacts(current.ca_cert, current.ca_key, cert, key), cert_reason
    else:
        ca_reason = "no certificates yet"
    ca_cert, ca_key = generate_ca(now)
    cert, key = issue_serving_cert(ca_cert, ca_key, dns_names, now)
    bundle = b""
    if current is not None and _still_valid_ca(current.ca_cert, now):
        bundle = ca_cert + current.ca_cert  # keep trusting the old CA while replicas still serve its certificates
    return CertArtifacts(ca_cert, ca_key, cert, key, bundle), ca_reason


def _still_valid_ca(pem: bytes, now: dt.datetime) -> bool:
    try:
        return x509.load_pem_x509_certificate(pem).not_valid_after_utc > now
    except ValueError:
        return False


# --------------------------------------------------------------------------------------------- files


def write_pem_files(cert_dir: str, art: CertArtifacts) -> Path:
    """Write ``tls.crt``, ``tls.key`` and ``ca.crt`` atomically; falls back to a private temp dir if read-only."""
    target = Path(cert_dir)
    try:
        _write_files(target, art)
    except OSError as err:
        target = Path(tempfile.mkdtemp(prefix="pyjobset-webhook-certs-"))
        log.warning("cert_dir_not_writable", cert_dir=cert_dir, error=err.strerror, using=str(target))
        _write_files(target, art)
    return target


def _write_files(target: Path, art: CertArtifacts) -> None:
    target.mkdir(parents=True, exist_ok=True)
    for name, data, mode in (
        ("ca.crt", art.ca_bundle, 0o644),
        ("tls.key", art.key, 0o600),
        ("tls.crt", art.cert, 0o644),
    ):
        fd, tmp = tempfile.mkstemp(dir=target, prefix=f".{name}.")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.chmod(tmp, mode)
            os.replace(tmp, target / name)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise


# --------------------------------------------------------------------------------------------- sources

"""Called with (tls.crt path, tls.key path) whenever a new serving pair is on disk."""


@dataclass
class CertManager:
    """Internal certificate management (see the module docstring)."""

    client: ApiClient
    namespace: str
    secret_name: str = "jobset-webhook-server-cert"  # noqa: S105 - a Secret name
    service_name: str = "jobset-webhook-service"
    cert_dir: str = "/tmp/k8s-webhook-server/serving-certs"  # noqa: S108 - the reference's default
    webhook_configurations: tuple[tuple[str, str], ...] = (
        ("validatingwebhookconfigurations", VALIDATING_CONFIGURATION),
        ("mutatingwebhookconfigurations", MUTATING_CONFIGURATION),
    )
    clock: Clock = utcnow
    lookahead: dt.timedelta = LOOKAHEAD
    check_interval: float = 60.0
    extra_hosts: tuple[str, ...] = ()
    """More SANs (DNS names or IP addresses), e.g. ``127.0.0.1`` for a controller run outside the cluster."""
    listeners: list[CertListener] = field(default_factory=list)
    current: CertArtifacts | None = field(default=None, init=False)
    rotations: int = field(default=0, init=False)
    _files: tuple[Path, Path] | None = field(default=None, init=False)

    @property
    def dns_names(self) -> list[str]:
        svc = f"{self.service_name}.{self.namespace}.svc"
        return [svc, f"{svc}.cluster.local", *self.extra_hosts]

    def ready(self) -> bool:
        return self._files is not None

    @property
    def files(self) -> tuple[Path, Path] | None:
        return self._files

    async def reconcile_once(self) -> CertArtifacts:
        """Make Secret, caBundles and files agree on a valid certificate; returns what is served."""
        for _ in range(5):
            secret, stored = await self._read_secret()
            art, reason = plan_rotation(stored, self.dns_names, self.clock(), self.lookahead)
            if reason is not None:
                try:
                    await self._write_secret(secret, art)
                except Conflict:
                    continue  # another replica rotated first: adopt its certificates
                self.rotations += 1
                log.info("webhook_cert_rotated", secret=self.secret_name, reason=reason)
            elif self.current is not None and self.current.ca_cert == art.ca_cert and self.current.bundle:
                art = CertArtifacts(art.ca_cert, art.ca_key, art.cert, art.key, self.current.bundle)
            await self._inject_ca_bundle(art.ca_bundle)
            if self.current != art or self._files is None:
                crt_dir = write_pem_files(self.cert_dir, art)
                self._files = (crt_dir / "tls.crt", crt_dir / "tls.key")
                self.current = art
                for listener in self.listeners:
                    listener(*self._files)
            return art
        raise Conflict(f"secret {self.namespace}/{self.secret_name} kept changing under us")

    async def _read_secret(self) -> tuple[dict[str, Any] | None, CertArtifacts | None]:
        try:
            secret = await self.client.get(resource_path("", "v1", "secrets", self.namespace, self.secret_name))
        except NotFound:
            return None, None
        return secret, CertArtifacts.from_secret(secret)

    async def _write_secret(self, secret: dict[str, Any] | None, art: CertArtifacts) -> None:
        if secret is None:
            body = {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": self.secret_name, "namespace": self.namespace},
                "type": "Opaque",
                "data": art.secret_data(),
            }
            try:
                await self.client.create(resource_path("", "v1", "secrets", self.namespace), body)
            except ApiError as err:
                if err.status == 409:
                    raise Conflict(str(err)) from err
                raise
            return
        updated = dict(secret, data=art.secret_data())
        await self.client.replace(resource_path("", "v1", "secrets", self.namespace, self.secret_name), updated)

    async def _inject_ca_bundle(self, bundle: bytes) -> None:
        encoded = base64.b64encode(bundle).decode()
        for plural, name in self.webhook_configurations:
            path = resource_path("admissionregistration.k8s.io", "v1", plural, name=name)
            for _ in range(5):
                try:
                    conf = await self.client.get(path)
                except NotFound:
                    log.info("webhook_configuration_missing", configuration=name)
                    break
                hooks = conf.get("webhooks") or []
                if all((h.get("clientConfig") or {}).get("caBundle") == encoded for h in hooks):
                    break
                for hook in hooks:
                    hook.setdefault("clientConfig", {})["caBundle"] = encoded
                try:
                    await self.client.replace(path, conf)
                    log.info("webhook_ca_bundle_patched", configuration=name)
                    break
                except Conflict:
                    continue

    async def run(self, stop: asyncio.Event) -> None:
        """Reconcile now and every ``check_interval`` until ``stop``; API errors retry with backoff."""
        backoff = 1.0
        while not stop.is_set():
            delay = self.check_interval
            try:
                await self.reconcile_once()
                backoff = 1.0
            except (ApiError, OSError, ValueError, TypeError) as err:
                log.warning("webhook_cert_reconcile_failed", error=str(err))
                delay, backoff = backoff, min(backoff * 2, self.check_interval)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
