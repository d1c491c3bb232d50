"""Certificates, keys and kubeconfigs for the local control plane, generated with ``cryptography``.

One throw-away CA signs the kube-apiserver serving certificate and every client certificate; a separate RSA key
pair signs and verifies ServiceAccount tokens. Everything is written under one directory with owner-only
permissions and lives exactly as long as the control plane that uses it.

Invariants: the serving certificate is valid for 127.0.0.1 and the in-cluster names of the ``kubernetes``
Service; client identities are carried in the subject (CN = user, O = groups), as the apiserver's x509
authenticator reads them; kubeconfigs embed their credentials (``*-data`` fields) so they can be copied anywhere.
"""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

_VALIDITY = dt.timedelta(days=365)
SERVICE_NAMES = (
    "localhost",
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
)


@dataclass(frozen=True)
class CertPair:
    """Paths of a PEM certificate and its PEM private key."""

    cert: Path
    key: Path


def _write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    return path


def _key_pem(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _name(common_name: str, groups: tuple[str, ...] = ()) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, g) for g in groups]
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    return x509.Name(attrs)


class Pki:
    """A CA plus helpers issuing serving and client certificates into ``directory``."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._now = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
        self._ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_name = _name("pyjobset-e2e-ca")
        self._ca_cert = (
            x509.CertificateBuilder()
            .subject_name(ca_name)
            .issuer_name(ca_name)
            .public_key(self._ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(self._now)
            .not_valid_after(self._now + _VALIDITY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
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
            .sign(self._ca_key, hashes.SHA256())
        )
        self.ca = CertPair(
            _write(directory / "ca.crt", self._ca_cert.public_bytes(serialization.Encoding.PEM)),
            _write(directory / "ca.key", _key_pem(self._ca_key)),
        )

    @property
    def ca_pem(self) -> bytes:
        return self._ca_cert.public_bytes(serialization.Encoding.PEM)

    def _issue(
        self,
        stem: str,
        subject: x509.Name,
        usage: x509.ObjectIdentifier,
        sans: list[x509.GeneralName] | None = None,
    ) -> CertPair:
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self._ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(self._now)
            .not_valid_after(self._now + _VALIDITY)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        )
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        cert = builder.sign(self._ca_key, hashes.SHA256())
        return CertPair(
            _write(self.directory / f"{stem}.crt", cert.public_bytes(serialization.Encoding.PEM)),
            _write(self.directory / f"{stem}.key", _key_pem(key)),
        )

    def serving(self, stem: str, *, dns: tuple[str, ...] = SERVICE_NAMES, ips: tuple[str, ...] = ()) -> CertPair:
        sans: list[x509.GeneralName] = [x509.DNSName(d) for d in dns]
        sans += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ("127.0.0.1", *ips)]
        return self._issue(stem, _name(dns[0] if dns else "127.0.0.1"), ExtendedKeyUsageOID.SERVER_AUTH, sans)

    def client(self, stem: str, user: str, groups: tuple[str, ...] = ()) -> CertPair:
        return self._issue(stem, _name(user, groups), ExtendedKeyUsageOID.CLIENT_AUTH)

    def service_account_keys(self) -> CertPair:
        """RSA key pair for ServiceAccount tokens: ``cert`` holds the public key, ``key`` the private key."""
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        public = key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return CertPair(_write(self.directory / "sa.pub", public), _write(self.directory / "sa.key", _key_pem(key)))


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def write_kubeconfig(
    path: Path,
    *,
    server: str,
    ca_pem: bytes,
    user: str,
    client: CertPair | None = None,
    token: str | None = None,
    namespace: str | None = None,
) -> Path:
    """Write a single-context kubeconfig for ``server`` with either a client certificate or a bearer token."""
    if (client is None) == (token is None):
        raise ValueError("exactly one of client and token is required")
    creds: dict[str, Any]
    if client is not None:
        creds = {
            "client-certificate-data": _b64(client.cert.read_bytes()),
            "client-key-data": _b64(client.key.read_bytes()),
        }
    else:
        creds = {"token": token}
    context: dict[str, Any] = {"cluster": "pyjobset-e2e", "user": user}
    if namespace:
        context["namespace"] = namespace
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": "pyjobset-e2e", "cluster": {"server": server, "certificate-authority-data": _b64(ca_pem)}}
        ],
        "users": [{"name": user, "user": creds}],
        "contexts": [{"name": user, "context": context}],
        "current-context": user,
    }
    return _write(path, yaml.safe_dump(config, sort_keys=False).encode())
