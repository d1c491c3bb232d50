"""Credentials that change while the controller runs: static tokens, token files and exec plugins.

Role: give ``ApiClient`` the ``Authorization`` header to send with each request, and a fresh one after the API
server answers 401. Three sources, as a kubeconfig or the in-cluster files describe them:

* ``StaticToken`` — a ``token:`` written into the kubeconfig; it never changes.
* ``TokenFile`` — a file holding a bearer token (``tokenFile:``, the in-cluster projected ServiceAccount token
  that the kubelet rotates about hourly). The file is re-read when its identity changes (inode, device, size or
  mtime) and at least every ``max_age`` seconds (60, like client-go's periodic reload), and at once after a 401.
* ``ExecPlugin`` — a ``client.authentication.k8s.io/v1`` or ``v1beta1`` exec plugin (GKE, EKS, ...). Its
  ``ExecCredential`` is cached until ``expirationTimestamp`` minus a margin (a tenth of its lifetime, at most
  60 s), then the plugin runs again; it also runs again after a 401 for the credential it gave.

Invariants:

* a credential's value never appears in a log line or an error message;
* concurrent callers share one refresh (one plugin run, one file read), and a 401 for a credential that has
  since been replaced does not trigger another refresh;
* one provider may serve several event loops on several threads (the leader elector renews from a thread of its
  own, ``cache.leader_thread``): nothing here is bound to a loop — ``ExecPlugin`` keeps one lock per loop, so
  callers on one loop share a run, and the loops at worst run the plugin once each at the same time;
* when a refresh fails while the last good credential has not yet expired, the last one keeps being used (the
  failure is logged); otherwise ``CredentialError`` — a ``TransientError``, so requests back off and retry;
* time is injected (``wall`` for expiry timestamps, ``monotonic`` for reload periods) so tests never sleep.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import os
import ssl
import tempfile
import threading
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
import structlog

from cache.errors import TransientError

log = structlog.get_logger("pyjobset.credentials")

EXEC_API_VERSIONS = ("client.authentication.k8s.io/v1", "client.authentication.k8s.io/v1beta1")
EXEC_INFO_ENV = "KUBERNETES_EXEC_INFO"
EXEC_CONFIG_EXTENSION = "client.authentication.k8s.io/exec"


class CredentialError(TransientError):
    """No usable credential (unreadable token file, exec plugin missing or failing); the message says why."""


class Credentials:
    """A source of the ``Authorization`` header; subclasses refresh it as their credential changes."""

    async def authorization(self) -> str | None:
        """The header value to send now (None: send none)."""
        raise NotImplementedError

    async def refresh(self, rejected: str | None) -> bool:
        """The server answered 401 to ``rejected``; get a new credential. True when a retry may succeed."""
        del rejected
        return False


class StaticToken(Credentials):
    def __init__(self, token: str) -> None:
        self._header = f"Bearer {token}"

    async def authorization(self) -> str | None:
        return self._header


class TokenFile(Credentials):
    """A bearer token read from a file that may be rewritten (or swapped by symlink) at any time."""

    def __init__(self, path: str, *, max_age: float = 60.0, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.path = path
        self.max_age = max_age
        self._monotonic = monotonic
        self._identity: tuple[int, ...] | None = None
        self._read_at = 0.0
        self._header: str | None = None
        self.reads = 0
        """How many times the file was read (tests)."""

    def _stat(self) -> tuple[int, ...]:
        st = os.stat(self.path)
        return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)

    def load(self) -> str:
        """Read the file now; raises ``CredentialError`` when it is missing, unreadable or empty."""
        try:
            identity = self._stat()
            with open(self.path, encoding="utf-8") as fh:
                token = fh.read().strip()
        except (OSError, UnicodeDecodeError) as err:
            raise CredentialError(f"cannot read token file {self.path}: {_reason(err)}") from None
        if not token:
            raise CredentialError(f"token file {self.path} is empty")
        self.reads += 1
        self._identity = identity
        self._read_at = self._monotonic()
        self._header = f"Bearer {token}"
        return self._header

    def _reload(self, why: str) -> str:
        try:
            return self.load()
        except CredentialError as err:
            if self._header is None:
                raise
            log.warning("token_file_reload_failed", path=self.path, reason=why, error=str(err))
            self._read_at = self._monotonic()  # try again after max_age, not on every request
            return self._header

    async def authorization(self) -> str | None:
        if self._header is None:
            return self.load()
        try:
            changed = self._stat() != self._identity
        except OSError:
            changed = True
        if changed:
            return self._reload("changed")
        if self._monotonic() - self._read_at >= self.max_age:
            return self._reload("periodic")
        return self._header

    async def refresh(self, rejected: str | None) -> bool:
        if rejected != self._header:
            return True  # already replaced since that request was sent
        return self._reload("unauthorized") != rejected


@dataclass(frozen=True)
class ExecSpec:
    """``users[].user.exec`` of a kubeconfig, resolved: ``command`` is a path or a name to find on PATH."""

    command: str
    api_version: str
    args: Sequence[str] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    interactive_mode: str = "Never"
    provide_cluster_info: bool = False
    install_hint: str = ""
    cluster_info: Mapping[str, Any] | None = None
    """The ``spec.cluster`` passed in KUBERNETES_EXEC_INFO when ``provide_cluster_info`` is set."""
    where: str = ""
    """Where the plugin was configured (user and file), for messages."""


@dataclass
class _Issued:
    header: str | None
    cert: tuple[bytes, bytes] | None
    expires: float | None  # wall-clock seconds; None: until rejected
    refresh_at: float | None


class ExecPlugin(Credentials):
    """Runs an exec credential plugin and caches what it prints until shortly before it expires."""

    def __init__(
        self,
        spec: ExecSpec,
        *,
        ssl_context: ssl.SSLContext | None = None,
        wall: Callable[[], float] = time.time,
        timeout: float = 120.0,
        max_margin: float = 60.0,
    ) -> None:
        self.spec = spec
        self.ssl_context = ssl_context
        self._wall = wall
        self.timeout = timeout
        self.max_margin = max_margin
        self._issued: _Issued | None = None
        self._locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = weakref.WeakKeyDictionary()
        self._locks_guard = threading.Lock()
        self.runs = 0
        """How many times the plugin ran (tests)."""

    def _name(self) -> str:
        return os.path.basename(self.spec.command)

    @property
    def _lock(self) -> asyncio.Lock:
        """The running loop's lock (an ``asyncio.Lock`` belongs to one loop; see the module's invariants)."""
        loop = asyncio.get_running_loop()
        with self._locks_guard:
            lock = self._locks.get(loop)
            if lock is None:
                lock = self._locks[loop] = asyncio.Lock()
            return lock

    def _fresh(self) -> bool:
        issued = self._issued
        return issued is not None and (issued.refresh_at is None or self._wall() < issued.refresh_at)

    async def authorization(self) -> str | None:
        if not self._fresh():
            async with self._lock:
                if not self._fresh():
                    await self._renew("expiring" if self._issued else "first use")
        assert self._issued is not None
        return self._issued.header

    async def refresh(self, rejected: str | None) -> bool:
        async with self._lock:
            if self._issued is not None and self._issued.header != rejected:
                return True
            self._issued = None  # rejected: never fall back to it
            await self._renew("unauthorized")
        return True

    async def _renew(self, why: str) -> None:
        try:
            self._issued = await self._run()
        except CredentialError as err:
            last = self._issued
            if last is None or (last.expires is not None and self._wall() >= last.expires):
                raise
            log.warning("exec_plugin_refresh_failed", plugin=self._name(), reason=why, error=str(err))

    def _exec_info(self) -> bytes:
        spec: dict[str, Any] = {"interactive": False}
        if self.spec.provide_cluster_info and self.spec.cluster_info is not None:
            spec["cluster"] = dict(self.spec.cluster_info)
        return orjson.dumps({"apiVersion": self.spec.api_version, "kind": "ExecCredential", "spec": spec})

    async def _run(self) -> _Issued:
        name, where = self._name(), self.spec.where
        env = {**os.environ, **self.spec.env, EXEC_INFO_ENV: self._exec_info().decode()}
        try:
            proc = await asyncio.create_subprocess_exec(
                self.spec.command,
                *self.spec.args,
                env=env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
        except FileNotFoundError:
            hint = f" ({self.spec.install_hint.strip().splitlines()[0]})" if self.spec.install_hint.strip() else ""
            raise CredentialError(
                f"exec plugin {self.spec.command} not found{where}: install it or fix exec.command{hint}"
            ) from None
        except OSError as err:
            raise CredentialError(f"cannot run exec plugin {self.spec.command}{where}: {_reason(err)}") from None
        try:
            out, err_out = await asyncio.wait_for(proc.communicate(), self.timeout)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
            raise CredentialError(f"exec plugin {name}{where} did not finish within {self.timeout:g}s") from None
        self.runs += 1
        if proc.returncode != 0:
            first = next((ln.strip() for ln in err_out.decode(errors="replace").splitlines() if ln.strip()), "")
            detail = f": {first}" if first else " (no output on stderr)"
            raise CredentialError(f"exec plugin {name}{where} exited with status {proc.returncode}{detail}")
        return self._parse(out)

    def _parse(self, out: bytes) -> _Issued:
        name, where = self._name(), self.spec.where

        def bad(why: str) -> CredentialError:
            return CredentialError(f"exec plugin {name}{where} printed an invalid ExecCredential: {why}")

        try:
            doc = orjson.loads(out)
        except orjson.JSONDecodeError:
            raise bad("stdout is not JSON") from None
        if not isinstance(doc, dict) or doc.get("kind") != "ExecCredential":
            raise bad('kind must be "ExecCredential"')
        if doc.get("apiVersion") != self.spec.api_version:
            raise bad(f"apiVersion {doc.get('apiVersion')!r} does not match the configured {self.spec.api_version}")
        status = doc.get("status")
        if not isinstance(status, dict):
            raise bad("status is missing")
        token = status.get("token")
        cert_data, key_data = status.get("clientCertificateData"), status.get("clientKeyData")
        if token is not None and (not isinstance(token, str) or not token):
            raise bad("status.token must be a non-empty string")
        if bool(cert_data) != bool(key_data):
            raise bad("status.clientCertificateData and status.clientKeyData must be set together")
        if not token and not cert_data:
            raise bad("status has neither token nor clientCertificateData/clientKeyData")
        cert: tuple[bytes, bytes] | None = None
        if cert_data:
            if not isinstance(cert_data, str) or not isinstance(key_data, str):
                raise bad("status.clientCertificateData and status.clientKeyData must be PEM strings")
            cert = (cert_data.encode(), key_data.encode())
            self._load_cert(cert)
        expires: float | None = None
        refresh_at: float | None = None
        stamp = status.get("expirationTimestamp")
        if stamp is not None:
            try:
                when = dt.datetime.fromisoformat(str(stamp))
            except ValueError:
                raise bad(f"status.expirationTimestamp {stamp!r} is not an RFC 3339 time") from None
            if when.tzinfo is None:
                raise bad(f"status.expirationTimestamp {stamp!r} has no time zone")
            expires = when.timestamp()
            now = self._wall()
            refresh_at = expires - min(self.max_margin, max(0.0, expires - now) / 10)
        return _Issued(header=f"Bearer {token}" if token else None, cert=cert, expires=expires, refresh_at=refresh_at)

    def _load_cert(self, cert: tuple[bytes, bytes]) -> None:
        """Present the plugin's client certificate on new TLS connections (ones already open keep theirs)."""
        if self.ssl_context is None:
            raise CredentialError(
                f"exec plugin {self._name()}{self.spec.where} returned a client certificate for a non-TLS server"
            )
        try:
            load_cert_chain_data(self.ssl_context, cert[0], cert[1])
        except (ssl.SSLError, ValueError) as err:
            raise CredentialError(
                f"exec plugin {self._name()}{self.spec.where} returned an unusable client certificate: {_reason(err)}"
            ) from None


def load_cert_chain_data(ctx: ssl.SSLContext, cert_pem: bytes, key_pem: bytes) -> None:
    """``SSLContext.load_cert_chain`` from bytes: through a private temporary directory removed at once."""
    with tempfile.TemporaryDirectory(prefix="pyjobset-cert-") as tmp:
        cert_path, key_path = os.path.join(tmp, "tls.crt"), os.path.join(tmp, "tls.key")
        for path, data in ((cert_path, cert_pem), (key_path, key_pem)):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
        ctx.load_cert_chain(cert_path, key_path)


def decode_base64(value: str) -> bytes:
    """Decode kubeconfig ``*-data`` fields; raises ValueError on bad input."""
    return base64.b64decode(value.encode(), validate=False)


def _reason(err: BaseException) -> str:
    if isinstance(err, OSError) and err.strerror:
        return err.strerror
    return str(err) or type(err).__name__
