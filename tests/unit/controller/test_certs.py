"""Internal webhook certificate management: generation, validation and rotation on a fake clock (pure parts)."""

from __future__ import annotations

import datetime as dt
import ssl
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID

from controller.webhooks.certs import (
    CA_VALIDITY,
    CERT_VALIDITY,
    LOOKAHEAD,
    CertArtifacts,
    FileCertSource,
    ca_problem,
    cert_problem,
    plan_rotation,
    write_pem_files,
)

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
NAMES = ["jobset-webhook-service.jobset-system.svc", "jobset-webhook-service.jobset-system.svc.cluster.local"]


def fresh(now: dt.datetime = T0) -> CertArtifacts:
    art, reason = plan_rotation(None, NAMES, now)
    assert reason == "no certificates yet"
    return art


def test_fresh_ca_and_serving_cert() -> None:
    art = fresh()
    ca = x509.load_pem_x509_certificate(art.ca_cert)
    assert ca.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "jobset-ca"
    assert ca.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "jobset"
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    cert = x509.load_pem_x509_certificate(art.cert)
    cert.verify_directly_issued_by(ca)
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == NAMES
    assert cert.not_valid_after_utc == T0 + CERT_VALIDITY
    assert ca_problem(art, T0) is None
    assert cert_problem(art, NAMES[0], T0) is None
    assert art.ca_bundle == art.ca_cert


def test_valid_certificates_are_kept() -> None:
    art = fresh()
    later = T0 + CERT_VALIDITY - LOOKAHEAD - dt.timedelta(days=1)
    kept, reason = plan_rotation(art, NAMES, later)
    assert reason is None
    assert kept is art


def test_serving_cert_rotated_before_expiry_with_same_ca() -> None:
    art = fresh()
    near = T0 + CERT_VALIDITY - LOOKAHEAD + dt.timedelta(hours=2)
    new, reason = plan_rotation(art, NAMES, near)
    assert reason == "certificate expires soon"
    assert new.ca_cert == art.ca_cert
    assert new.cert != art.cert
    assert new.ca_bundle == art.ca_cert  # the API server's trust does not change
    assert x509.load_pem_x509_certificate(new.cert).not_valid_after_utc > near + LOOKAHEAD


def test_ca_rotated_before_expiry_and_old_ca_still_trusted() -> None:
    art = fresh()
    near = T0 + CA_VALIDITY - LOOKAHEAD + dt.timedelta(hours=2)
    new, reason = plan_rotation(art, NAMES, near)
    assert reason == "CA expires soon"
    assert new.ca_cert != art.ca_cert
    assert new.ca_bundle == new.ca_cert + art.ca_cert
    # Both certificates verify against the bundle during the switch.
    assert cert_problem(new, NAMES[0], near) is None


def test_expired_old_ca_is_dropped_from_bundle() -> None:
    art = fresh()
    after = T0 + CA_VALIDITY + dt.timedelta(days=1)
    new, reason = plan_rotation(art, NAMES, after)
    assert reason == "CA expires soon"
    assert new.ca_bundle == new.ca_cert


def test_wrong_service_name_reissues() -> None:
    art, _ = plan_rotation(None, ["other.ns.svc"], T0)
    new, reason = plan_rotation(art, NAMES, T0)
    assert reason == f"certificate is not valid for {NAMES[0]}"
    assert new.ca_cert == art.ca_cert


@pytest.mark.parametrize(
    ("field", "reason"),
    [("ca_cert", "CA is not readable"), ("ca_key", "CA is not readable"), ("key", "key does not match")],
)
def test_corrupt_material_is_replaced(field: str, reason: str) -> None:
    art = fresh()
    other = fresh()
    bad = {"ca_cert": b"garbage", "ca_key": b"garbage", "key": other.key}[field]
    broken = CertArtifacts(**{**art.__dict__, field: bad})
    new, why = plan_rotation(broken, NAMES, T0)
    assert why is not None
    assert why.startswith(reason)
    assert ca_problem(new, T0) is None
    assert cert_problem(new, NAMES[0], T0) is None


def test_cert_from_another_ca_is_reissued() -> None:
    art, other = fresh(), fresh()
    mixed = CertArtifacts(art.ca_cert, art.ca_key, other.cert, other.key)
    new, reason = plan_rotation(mixed, NAMES, T0)
    assert reason == "certificate is not readable or not issued by the CA"
    assert new.ca_cert == art.ca_cert


def test_secret_round_trip() -> None:
    art = fresh()
    assert CertArtifacts.from_secret({"data": art.secret_data()}) == art
    assert CertArtifacts.from_secret({}) is None
    assert CertArtifacts.from_secret({"data": {"tls.crt": "!!"}}) is None


def test_files_written_and_loadable(tmp_path: Path) -> None:
    art = fresh(dt.datetime.now(dt.UTC))
    where = write_pem_files(str(tmp_path / "certs"), art)
    assert where == tmp_path / "certs"
    assert (where / "ca.crt").read_bytes() == art.ca_cert
    assert (where / "tls.key").stat().st_mode & 0o777 == 0o600
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(where / "tls.crt", where / "tls.key")


def test_read_only_cert_dir_falls_back(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    where = write_pem_files(str(blocker / "certs"), fresh())
    assert where != blocker / "certs"
    assert (where / "tls.crt").exists()


def test_file_source_loads_and_reloads(tmp_path: Path) -> None:
    loaded: list[bytes] = []
    src = FileCertSource(str(tmp_path), listeners=[lambda crt, _key: loaded.append(crt.read_bytes())])
    assert not src.check_once()
    assert not src.ready()
    first = fresh()
    write_pem_files(str(tmp_path), first)
    assert src.check_once()
    assert src.ready()
    assert not src.check_once()  # unchanged
    second = fresh()
    write_pem_files(str(tmp_path), second)
    import os

    os.utime(tmp_path / "tls.crt", (1, 1))  # a different mtime, whatever the file system's resolution
    assert src.check_once()
    assert loaded == [first.cert, second.cert]


def test_extra_hosts_include_ip_addresses_and_trigger_reissue() -> None:
    art = fresh()
    wanted = [*NAMES, "127.0.0.1", "webhook.example.com"]
    new, reason = plan_rotation(art, wanted, T0)
    assert reason == "certificate is not valid for 127.0.0.1"
    assert new.ca_cert == art.ca_cert
    sans = x509.load_pem_x509_certificate(new.cert).extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert [str(ip) for ip in sans.value.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert "webhook.example.com" in sans.value.get_values_for_type(x509.DNSName)
    assert plan_rotation(new, wanted, T0) == (new, None)
