"""Controller configuration: the reference's ``config.jobset.x-k8s.io/v1alpha1`` Configuration file plus flags.

Role: decode the ``--config`` file strictly (an unknown field, a wrong type or a bad value is a start-up error
that names the field and the fix), apply the documented defaults (behaviour.md §7), then let explicitly passed
flags override file values. Invariants: the result is a frozen tree of dataclasses; durations are seconds
(floats); nothing here opens a socket or a file other than the config file itself.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from api.constants import GATE_ELASTIC_JOBSET, GATE_IN_PLACE_RESTART, GATE_RESTART_JOB, GATE_TLS_OPTIONS, GROUP, KIND

CONFIG_API_VERSION = "config.jobset.x-k8s.io/v1alpha1"
CONFIG_KIND = "Configuration"
KNOWN_GATES = {
    GATE_IN_PLACE_RESTART: False,
    GATE_RESTART_JOB: False,
    GATE_ELASTIC_JOBSET: False,
    GATE_TLS_OPTIONS: True,
}


class ConfigError(ValueError):
    """A bad configuration value; the message names the field and how to fix it."""


@dataclass(frozen=True)
class Webhook:
    port: int = 9443
    host: str = ""
    cert_dir: str = "/tmp/k8s-webhook-server/serving-certs"  # noqa: S108 - the reference's documented default


@dataclass(frozen=True)
class LeaderElection:
    leader_elect: bool = True
    resource_name: str = "6d4f6a47.jobset.x-k8s.io"
    resource_lock: str = "leases"
    resource_namespace: str = ""
    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0


@dataclass(frozen=True)
class Metrics:
    bind_address: str = ":8443"
    cert_dir: str = ""
    secure: bool = True
    """Ours (the reference always serves securely): HTTPS (certDir or self-signed) with TokenReview and
    SubjectAccessReview on scrapes; false serves plain HTTP to everyone (local runs, tests)."""


@dataclass(frozen=True)
class Health:
    health_probe_bind_address: str = ":8081"
    readiness_endpoint_name: str = "readyz"
    liveness_endpoint_name: str = "healthz"


@dataclass(frozen=True)
class InternalCertManagement:
    enable: bool = True
    webhook_service_name: str = "jobset-webhook-service"
    webhook_secret_name: str = "jobset-webhook-server-cert"  # noqa: S105 - a Secret name, not a secret


@dataclass(frozen=True)
class ClientConnection:
    qps: float = 500.0
    burst: int = 500


@dataclass(frozen=True)
class TLS:
    min_version: str = ""
    cipher_suites: tuple[str, ...] = ()


JOBSET_GROUP_KIND = f"{KIND}.{GROUP}"
"""The key of the JobSet controller in ``controller.groupKindConcurrency`` (controller-runtime's spelling)."""


@dataclass(frozen=True)
class ControllerConcurrency:
    """controller-runtime's ``controller`` block; ours: the reference's Configuration has none (it runs one worker)."""

    group_kind_concurrency: Mapping[str, int] = field(default_factory=lambda: {JOBSET_GROUP_KIND: 1})
    """Reconcile workers per controller. JobSet defaults to 1 like the reference (controller-runtime's default);
    with more, different JobSets are reconciled concurrently, never one JobSet twice at a time."""

    def workers(self, group_kind: str = JOBSET_GROUP_KIND) -> int:
        return int(self.group_kind_concurrency.get(group_kind, 1))


@dataclass(frozen=True)
class Pyjobset:
    """Ours, not the reference's: cluster-wide defaults of the opt-in extensions (docs/design/extensions.md).
    The reference's strict decoder refuses a ``pyjobset:`` section, so a Configuration with one is pyjobset's."""

    record_failures: bool = True
    """Ours: record why a JobSet restarted or failed (annotations `pyjobset.io/last-failure`, `restart-history`)."""
    fail_fast: bool = False
    """Ours: treat a child Job with `FailureTarget` as failed at once (per JobSet: `pyjobset.io/fail-fast`)."""
    pod_event_coalescing: float = 5.0
    """Ours: with gate InPlaceRestart, a pod event that changes nothing the reconcile reads (IP, readiness,
    conditions) reconciles its JobSet at most once per this window (a Go duration, e.g. `5s`; `0` = every
    event). Pod adds, deletes, failures, restart counts and attempts, and all Job events, are never delayed."""
    status_coalescing: float = 1.0
    """Ours: a JobSet status change that is only `replicatedJobsStatus` counts is written at most once per this
    window per JobSet, the latest counts at the window's end (a Go duration, e.g. `1s`; `0` = every change at once,
    as the reference). Every event is still reconciled at once; conditions, restarts and the terminal state are
    always written at once."""


@dataclass(frozen=True)
class Settings:
    webhook: Webhook = field(default_factory=Webhook)
    leader_election: LeaderElection = field(default_factory=LeaderElection)
    metrics: Metrics = field(default_factory=Metrics)
    health: Health = field(default_factory=Health)
    internal_cert_management: InternalCertManagement = field(default_factory=InternalCertManagement)
    client_connection: ClientConnection = field(default_factory=ClientConnection)
    feature_gates: Mapping[str, bool] = field(default_factory=lambda: dict(KNOWN_GATES))
    tls: TLS = field(default_factory=TLS)
    controller: ControllerConcurrency = field(default_factory=ControllerConcurrency)
    pyjobset: Pyjobset = field(default_factory=Pyjobset)
    namespace: str = "jobset-system"
    """Namespace the controller runs in (leader-election Lease, webhook Secret); in-cluster: from the SA file."""

    def gate(self, name: str) -> bool:
        return bool(self.feature_gates.get(name, False))


# --------------------------------------------------------------------------------------------- decoding

_DURATION = re.compile(r"^(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m(?!s))?(?:(\d+(?:\.\d+)?)s)?(?:(\d+)ms)?$")
_DURATION_FIELDS = {"lease_duration", "renew_deadline", "retry_period", "pod_event_coalescing", "status_coalescing"}
_MAX_COALESCING = 60.0


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


def parse_duration(value: object, where: str) -> float:
    """A Go duration string (``15s``, ``1m30s``, ``500ms``) or a number of seconds."""
    if isinstance(value, bool):
        raise ConfigError(f'{where}: expected a duration such as "15s", got {value!r}')
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str) and value and (m := _DURATION.match(value)):
        h, mi, s, ms = (float(x) if x else 0.0 for x in m.groups())
        return h * 3600 + mi * 60 + s + ms / 1000
    raise ConfigError(f'{where}: invalid duration {value!r}; use a Go duration such as "15s" or "1m30s"')


def _decode(cls: type[Any], data: object, where: str) -> Any:
    if data is None:
        return cls()
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: expected a mapping, got {type(data).__name__}")
    fields = {_camel(f.name): f for f in dataclasses.fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        f = fields.get(str(key))
        path = f"{where}.{key}" if where else str(key)
        if f is None:
            known = ", ".join(sorted(fields))
            raise ConfigError(f"{path}: unknown field (strict decoding); known fields here: {known}")
        kwargs[f.name] = _coerce(f, value, path)
    return cls(**kwargs)


def _coerce(f: dataclasses.Field[Any], value: object, path: str) -> Any:
    if f.name in ("pod_event_coalescing", "status_coalescing"):
        window = parse_duration(value, path)
        if not 0 <= window <= _MAX_COALESCING:
            example = "5s" if f.name == "pod_event_coalescing" else "1s"
            raise ConfigError(f'{path}: must be from 0s to {_MAX_COALESCING:g}s, got {value!r}; e.g. "{example}"')
        return window
    if f.name in _DURATION_FIELDS:
        return parse_duration(value, path)
    if f.name == "group_kind_concurrency":
        return _concurrency(value, path)
    default: Any = f.default
    if default is dataclasses.MISSING:
        default = f.default_factory()  # type: ignore[operator]
    if dataclasses.is_dataclass(default):
        return _decode(type(default), value, path)
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"{path}: expected true or false, got {value!r}")
        return value
    if isinstance(default, int) and not isinstance(default, bool):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{path}: expected an integer, got {value!r}")
        return value
    if isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{path}: expected a number, got {value!r}")
        return float(value)
    if isinstance(default, str):
        if not isinstance(value, str):
            raise ConfigError(f"{path}: expected a string, got {value!r}")
        return value
    if isinstance(default, tuple):
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{path}: expected a list of strings, got {value!r}")
        return tuple(value)
    if isinstance(default, Mapping):
        return _feature_gates(value, path)
    raise ConfigError(f"{path}: unsupported value {value!r}")


def _feature_gates(value: object, path: str) -> dict[str, bool]:
    if not isinstance(value, Mapping):
        raise ConfigError(f"{path}: expected a map of gate name to true/false")
    gates = dict(KNOWN_GATES)
    for name, enabled in value.items():
        if name not in KNOWN_GATES:
            raise ConfigError(f"{path}.{name}: unknown feature gate; known gates: {', '.join(sorted(KNOWN_GATES))}")
        if not isinstance(enabled, bool):
            raise ConfigError(f"{path}.{name}: expected true or false, got {enabled!r}")
        if name == GATE_TLS_OPTIONS and not enabled:
            raise ConfigError(f"{path}.{name}: cannot be disabled (the gate is GA and locked to true)")
        gates[name] = enabled
    return gates


MAX_WORKERS = 64
"""Upper bound of ``controller.groupKindConcurrency`` values: workers share one event loop, so more buy nothing."""


def _concurrency(value: object, path: str) -> dict[str, int]:
    if not isinstance(value, Mapping):
        raise ConfigError(f"{path}: expected a map of group-kind to a number of workers, e.g. {JOBSET_GROUP_KIND}: 4")
    out = {JOBSET_GROUP_KIND: 1}
    for key, workers in value.items():
        if key != JOBSET_GROUP_KIND:
            raise ConfigError(f"{path}.{key}: unknown group-kind; the only controller here is {JOBSET_GROUP_KIND}")
        if isinstance(workers, bool) or not isinstance(workers, int) or not 1 <= workers <= MAX_WORKERS:
            raise ConfigError(f"{path}.{key}: expected a number of workers from 1 to {MAX_WORKERS}, got {workers!r}")
        out[key] = workers
    return out


_DNS1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_INSECURE_CIPHERS = re.compile(r"(RC4|3DES|_CBC_SHA$|NULL|EXPORT|anon)", re.IGNORECASE)


def _validate(s: Settings) -> Settings:
    icm = s.internal_cert_management
    if not (_DNS1035.match(icm.webhook_service_name) and len(icm.webhook_service_name) <= 63):
        raise ConfigError(
            f"internalCertManagement.webhookServiceName: {icm.webhook_service_name!r} must be a DNS-1035 label "
            "(lowercase letters, digits and '-', starting with a letter, at most 63 characters)"
        )
    if not (_DNS1123_SUBDOMAIN.match(icm.webhook_secret_name) and len(icm.webhook_secret_name) <= 253):
        raise ConfigError(
            f"internalCertManagement.webhookSecretName: {icm.webhook_secret_name!r} must be a DNS-1123 subdomain"
        )
    if s.tls.min_version not in ("", "VersionTLS12", "VersionTLS13"):
        raise ConfigError(f"tls.minVersion: {s.tls.min_version!r} is not allowed; use VersionTLS12 or VersionTLS13")
    if s.tls.cipher_suites and s.tls.min_version == "VersionTLS13":
        raise ConfigError("tls.cipherSuites: cannot be set with minVersion VersionTLS13 (TLS 1.3 suites are fixed)")
    for suite in s.tls.cipher_suites:
        if _INSECURE_CIPHERS.search(suite):
            raise ConfigError(f"tls.cipherSuites: {suite!r} is insecure; choose an ECDHE AEAD suite")
    if s.client_connection.qps < 0 or s.client_connection.burst < 0:
        raise ConfigError("clientConnection: qps and burst must be >= 0")
    le = s.leader_election
    if le.leader_elect and not (le.lease_duration > le.renew_deadline > 1.2 * le.retry_period > 0):
        raise ConfigError(
            "leaderElection: need leaseDuration > renewDeadline > 1.2 x retryPeriod > 0 "
            f"(got {le.lease_duration}s, {le.renew_deadline}s, {le.retry_period}s)"
        )
    if le.resource_lock != "leases":
        raise ConfigError(f"leaderElection.resourceLock: {le.resource_lock!r} is not supported; use leases")
    return s


def load_settings(path: str | Path | None = None, *, overrides: Mapping[str, Any] | None = None) -> Settings:
    """Read and validate the config file (or defaults), then apply explicitly passed flag overrides.

    ``overrides`` keys are dotted snake_case paths, e.g. ``{"metrics.bind_address": ":9090"}``.
    """
    settings = Settings()
    if path is not None:
        try:
            text = Path(path).read_text()
        except OSError as err:
            raise ConfigError(f"--config {path}: cannot read the file: {err.strerror}") from err
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as err:
            raise ConfigError(f"--config {path}: not valid YAML: {err}") from err
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise ConfigError(f"--config {path}: expected a mapping at the top level")
        data = dict(data)
        api_version = data.pop("apiVersion", CONFIG_API_VERSION)
        kind = data.pop("kind", CONFIG_KIND)
        if api_version != CONFIG_API_VERSION or kind != CONFIG_KIND:
            raise ConfigError(
                f"--config {path}: expected apiVersion {CONFIG_API_VERSION} and kind {CONFIG_KIND}, "
                f"got {api_version}/{kind}"
            )
        settings = _decode(Settings, data, "")
    for dotted, value in (overrides or {}).items():
        settings = _override(settings, dotted.split("."), value)
    return _validate(settings)


def _override(obj: Any, path: list[str], value: Any) -> Any:
    head, *rest = path
    if not rest:
        return dataclasses.replace(obj, **{head: value})
    return dataclasses.replace(obj, **{head: _override(getattr(obj, head), rest, value)})
