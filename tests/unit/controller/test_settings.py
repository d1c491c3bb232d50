"""Controller configuration file and flags (behaviour.md §7): defaults, strict decoding, overrides, errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from controller.cli import build_parser
from controller.settings import ConfigError, load_settings, parse_duration


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "config.yaml"
    p.write_text(text)
    return p


def test_defaults_match_the_reference() -> None:
    s = load_settings()
    assert s.webhook.port == 9443
    assert s.webhook.cert_dir == "/tmp/k8s-webhook-server/serving-certs"
    assert s.leader_election.leader_elect is True
    assert s.leader_election.resource_name == "6d4f6a47.jobset.x-k8s.io"
    assert (s.leader_election.lease_duration, s.leader_election.renew_deadline, s.leader_election.retry_period) == (
        15.0,
        10.0,
        2.0,
    )
    assert s.metrics.bind_address == ":8443"
    assert s.health.health_probe_bind_address == ":8081"
    assert s.internal_cert_management.webhook_service_name == "jobset-webhook-service"
    assert s.internal_cert_management.webhook_secret_name == "jobset-webhook-server-cert"
    assert (s.client_connection.qps, s.client_connection.burst) == (500.0, 500)
    assert s.gate("TLSOptions") is True
    assert s.gate("RestartJob") is False


def test_full_file_is_decoded(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        """
apiVersion: config.jobset.x-k8s.io/v1alpha1
kind: Configuration
leaderElection:
  leaderElect: false
  leaseDuration: 30s
  renewDeadline: 20s
  retryPeriod: 500ms
metrics:
  bindAddress: ":9090"
clientConnection:
  qps: 50
  burst: 100
featureGates:
  RestartJob: true
  ElasticJobSet: true
tls:
  minVersion: VersionTLS13
""",
    )
    s = load_settings(path)
    assert s.leader_election.leader_elect is False
    assert s.leader_election.lease_duration == 30.0
    assert s.leader_election.retry_period == 0.5
    assert s.metrics.bind_address == ":9090"
    assert s.client_connection.qps == 50.0
    assert s.gate("RestartJob")
    assert s.gate("ElasticJobSet")
    assert not s.gate("InPlaceRestart")
    assert s.tls.min_version == "VersionTLS13"


def test_flags_override_file_only_when_passed(tmp_path: Path) -> None:
    path = _write(tmp_path, "leaderElection:\n  leaderElect: true\nclientConnection:\n  qps: 10\n")
    s = load_settings(path, overrides={"client_connection.qps": 99.0})
    assert s.client_connection.qps == 99.0
    assert s.leader_election.leader_elect is True


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        pytest.param("webhook:\n  portt: 1\n", "webhook.portt: unknown field", id="unknown-field-named"),
        pytest.param("webhook:\n  port: nine\n", "webhook.port: expected an integer", id="wrong-type"),
        pytest.param("featureGates:\n  Foo: true\n", "featureGates.Foo: unknown feature gate", id="unknown-gate"),
        pytest.param("featureGates:\n  TLSOptions: false\n", "cannot be disabled", id="locked-gate"),
        pytest.param("tls:\n  minVersion: VersionTLS11\n", "tls.minVersion", id="old-tls"),
        pytest.param(
            "tls:\n  minVersion: VersionTLS13\n  cipherSuites: [TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256]\n",
            "cannot be set with minVersion VersionTLS13",
            id="ciphers-with-tls13",
        ),
        pytest.param("tls:\n  cipherSuites: [TLS_RSA_WITH_RC4_128_SHA]\n", "insecure", id="insecure-cipher"),
        pytest.param(
            "internalCertManagement:\n  webhookServiceName: Bad_Name\n", "DNS-1035 label", id="bad-service-name"
        ),
        pytest.param("leaderElection:\n  leaseDuration: soon\n", "invalid duration", id="bad-duration"),
        pytest.param(
            "leaderElection:\n  leaseDuration: 5s\n  renewDeadline: 10s\n",
            "leaseDuration > renewDeadline > 1.2 x retryPeriod",
            id="order",
        ),
        pytest.param("pyjobset:\n  podEventCoalescing: -1s\n", "invalid duration", id="negative-coalescing"),
        pytest.param("pyjobset:\n  podEventCoalescing: 2m\n", "pyjobset.podEventCoalescing: must be", id="huge-window"),
        pytest.param("apiVersion: v1\nkind: ConfigMap\n", "expected apiVersion", id="wrong-kind"),
        pytest.param("- a\n- b\n", "mapping at the top level", id="not-a-mapping"),
        pytest.param("webhook: [\n", "not valid YAML", id="bad-yaml"),
    ],
)
def test_bad_config_names_the_field(tmp_path: Path, text: str, needle: str) -> None:
    with pytest.raises(ConfigError, match=None) as exc:
        load_settings(_write(tmp_path, text))
    assert needle in str(exc.value)


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the file"):
        load_settings(tmp_path / "absent.yaml")


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("15s", 15.0), ("1m30s", 90.0), ("500ms", 0.5), ("1h", 3600.0), (2, 2.0)],
)
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration(text, "x") == seconds


def test_run_flags_of_the_reference_are_accepted() -> None:
    args = build_parser().parse_args(
        [
            "run",
            "--kubeconfig",
            "/k",
            "--config=/c.yaml",
            "--metrics-bind-address=:9",
            "--health-probe-bind-address",
            ":8",
            "--leader-elect=false",
            "--kube-api-qps",
            "5",
            "--kube-api-burst",
            "6",
            "--zap-log-level=2",
        ]
    )
    assert args.leader_elect is False
    assert args.kube_api_qps == 5.0
    assert args.kube_api_burst == 6
    assert build_parser().parse_args(["run", "--leader-elect"]).leader_elect is True


@pytest.mark.parametrize(("text", "seconds"), [("2s", 2.0), ("500ms", 0.5), ("0s", 0.0), ("3", 3.0)])
def test_pod_event_coalescing_window(tmp_path: Path, text: str, seconds: float) -> None:
    assert load_settings(None).pyjobset.pod_event_coalescing == 5.0
    value = text if not text.isdigit() else int(text)
    got = load_settings(_write(tmp_path, f"pyjobset:\n  podEventCoalescing: {value}\n"))
    assert got.pyjobset.pod_event_coalescing == seconds
