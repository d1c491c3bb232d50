"""The ``/metrics``, ``/healthz`` and ``/readyz`` endpoints over real sockets on 127.0.0.1."""

from __future__ import annotations

import datetime as dt
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from prometheus_client.parser import text_string_to_metric_families

from metrics.hub import MetricsHub
from metrics.server import ObservabilityServer, self_signed_tls_context, tls_context_from_dir
from metrics.settings import MetricsSettings
from tools import synthetic as syn


class Flag:
    def __init__(self) -> None:
        self.value = False

    def __call__(self) -> bool:
        return self.value


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def get(http: aiohttp.ClientSession, url: str, **kw: object) -> tuple[int, str]:
    async with http.get(url, **kw) as resp:  # type: ignore[arg-type]
        return resp.status, await resp.text()


@pytest.mark.parametrize("mode", ["sliced", "thread", "inline"])
async def test_metrics_and_probes_on_separate_listeners(http: aiohttp.ClientSession, mode: str) -> None:
    hub = MetricsHub(MetricsSettings(exposition=mode, exposition_slice_seconds=1e-6))
    infs = syn.fake_informers()
    hub.add_informers(infs.values())
    hub.reconcile.reconcile_done("jobset", "success", 0.01)
    synced, certs = Flag(), Flag()
    server = ObservabilityServer(
        hub.render, "127.0.0.1:0", "127.0.0.1:0", readiness_checks={"caches-synced": synced, "webhook-certs": certs}
    )
    await server.start()
    try:
        m, h = server.ports["metrics"], server.ports["health"]
        assert m != h
        status, text = await get(http, f"http://127.0.0.1:{m}/metrics")
        assert status == 200
        families = {f.name: f for f in text_string_to_metric_families(text)}
        assert families["controller_runtime_reconcile"].samples[0].value == 1
        assert "informer_cache_objects" in families
        assert (await get(http, f"http://127.0.0.1:{m}/healthz"))[0] == 404  # probes live on the health port
        assert await get(http, f"http://127.0.0.1:{h}/healthz") == (200, "ok")
        status, text = await get(http, f"http://127.0.0.1:{h}/readyz")
        assert status == 500
        assert "[-]caches-synced failed" in text
        assert "[-]webhook-certs failed" in text
        synced.value = True
        assert (await get(http, f"http://127.0.0.1:{h}/readyz/caches-synced"))[0] == 200
        assert (await get(http, f"http://127.0.0.1:{h}/readyz"))[0] == 500
        certs.value = True
        assert await get(http, f"http://127.0.0.1:{h}/readyz") == (200, "ok")
        status, text = await get(http, f"http://127.0.0.1:{h}/readyz?verbose")
        assert status == 200
        assert "[+]webhook-certs ok" in text
        assert (await get(http, f"http://127.0.0.1:{h}/readyz/nope"))[0] == 404
    finally:
        await server.stop()


async def test_a_raising_check_is_not_ready(http: aiohttp.ClientSession) -> None:
    def broken() -> bool:
        raise RuntimeError("boom")

    hub = MetricsHub()
    server = ObservabilityServer(hub.render, "0", "127.0.0.1:0", readiness_checks={"broken": broken})
    await server.start()
    try:
        assert "metrics" not in server.ports  # "0" disables the metrics listener
        status, text = await get(http, f"http://127.0.0.1:{server.ports['health']}/readyz")
        assert status == 500
        assert "[-]broken failed" in text
    finally:
        await server.stop()


def self_signed(directory: Path) -> Path:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .sign(key, hashes.SHA256())
    )
    (directory / "tls.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (directory / "tls.key").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return directory / "tls.crt"


async def test_metrics_over_tls_from_a_cert_dir(http: aiohttp.ClientSession, tmp_path: Path) -> None:
    ca = self_signed(tmp_path)
    hub = MetricsHub()
    hub.leader("lease").started_leading()
    server = ObservabilityServer(hub.render, "127.0.0.1:0", "0", metrics_tls=tls_context_from_dir(str(tmp_path)))
    await server.start()
    try:
        client_ctx = ssl.create_default_context(cafile=str(ca))
        client_ctx.check_hostname = False
        status, text = await get(http, f"https://127.0.0.1:{server.ports['metrics']}/metrics", ssl=client_ctx)
        assert status == 200
        assert 'leader_election_master_status{name="lease"} 1\n' in text
        with pytest.raises(aiohttp.ClientError):
            await get(http, f"http://127.0.0.1:{server.ports['metrics']}/metrics")
    finally:
        await server.stop()


async def test_shared_address_serves_all_paths(http: aiohttp.ClientSession) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    hub = MetricsHub()
    addr = f"127.0.0.1:{port}"
    server = ObservabilityServer(hub.render, addr, addr)
    await server.start()
    try:
        assert server.ports == {"metrics": port, "health": port}
        assert (await get(http, f"http://127.0.0.1:{port}/metrics"))[0] == 200
        assert await get(http, f"http://127.0.0.1:{port}/healthz") == (200, "ok")
        assert await get(http, f"http://127.0.0.1:{port}/readyz") == (200, "ok")
    finally:
        await server.stop()


async def test_self_signed_metrics_like_the_reference_with_no_cert_dir(http: aiohttp.ClientSession) -> None:
    import glob
    import tempfile

    before = set(glob.glob(f"{tempfile.gettempdir()}/pyjobset-metrics-*"))
    tls = self_signed_tls_context(("127.0.0.1", "jobset-controller-manager-metrics-service.jobset-system.svc"))
    assert set(glob.glob(f"{tempfile.gettempdir()}/pyjobset-metrics-*")) == before  # key material not left on disk
    hub = MetricsHub()
    server = ObservabilityServer(hub.render, "127.0.0.1:0", "0", metrics_tls=tls)
    await server.start()
    try:
        # As the shipped ServiceMonitor scrapes it: HTTPS, certificate not verified, a bearer token sent.
        headers = {"Authorization": "Bearer token"}
        url = f"https://127.0.0.1:{server.ports['metrics']}/metrics"
        status, text = await get(http, url, ssl=False, headers=headers)
        assert status == 200
        assert "# TYPE workqueue_depth gauge" in text
    finally:
        await server.stop()
