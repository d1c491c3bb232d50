"""Where the API server is and how to authenticate: kubeconfig files and the in-cluster ServiceAccount files.

Role: turn the standard sources of cluster configuration into a ``ClusterConfig`` (server URL, TLS context,
``Credentials``), without the generated Kubernetes client (whose models cost ~38 MiB of resident memory).

Where the configuration comes from — controller-runtime's order (``ctrl.GetConfig``):

1. ``--kubeconfig PATH`` (the file must exist);
2. else ``KUBECONFIG``, a list of files separated by ``os.pathsep`` (files that do not exist are skipped, as
   kubectl does; at least one must exist). In-cluster configuration is not tried when ``KUBECONFIG`` is set;
3. else in-cluster: ``KUBERNETES_SERVICE_HOST``/``KUBERNETES_SERVICE_PORT`` and the mounted ServiceAccount token
   and CA (``InClusterFiles``);
4. else ``~/.kube/config``.

Several files merge as kubectl merges them: for ``clusters``, ``users`` and ``contexts`` the first file that
defines a name wins; ``current-context`` comes from the first file that sets one. Relative paths in a file
(``certificate-authority``, ``client-certificate``, ``client-key``, ``tokenFile``, an exec ``command``
containing ``/``) are relative to that file's directory.

Supported: ``server``, ``certificate-authority(-data)``, ``insecure-skip-tls-verify``,
``client-certificate(-data)``/``client-key(-data)``, ``token``, ``tokenFile``, ``username``/``password``, and
``exec`` plugins (``client.authentication.k8s.io/v1`` and ``v1beta1``). Fields that would change where or as
whom requests go and that are not implemented (``auth-provider``, impersonation, ``proxy-url``,
``tls-server-name``) are rejected rather than ignored.

Invariants: every failure is a ``KubeconfigError`` whose one-line message names the file (or source), the field
and the fix; credentials never appear in messages; nothing here talks to the network (an exec plugin runs once
in ``load_cluster_config`` so a broken plugin fails at start-up, not on the first request).
"""

from __future__ import annotations

import base64
import os
import ssl
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog
import yaml

from cache.credentials import (
    EXEC_API_VERSIONS,
    EXEC_CONFIG_EXTENSION,
    CredentialError,
    Credentials,
    ExecPlugin,
    ExecSpec,
    StaticToken,
    TokenFile,
    decode_base64,
    load_cert_chain_data,
)

JSON = dict[str, Any]
log = structlog.get_logger("pyjobset.kubeconfig")

SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
UNSUPPORTED_USER_FIELDS = ("auth-provider", "as", "as-uid", "as-groups", "as-user-extra")
UNSUPPORTED_CLUSTER_FIELDS = ("proxy-url", "tls-server-name")


class KubeconfigError(Exception):
    """The cluster configuration cannot be used; the message names the file, the field and the fix."""


@dataclass(frozen=True)
class ClusterConfig:
    """Where the API server is and how to authenticate; built from a kubeconfig or the in-cluster files."""

    server: str
    ssl_context: ssl.SSLContext | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    """Fixed headers sent with every request (basic auth); bearer tokens come from ``credentials``."""
    credentials: Credentials | None = None
    namespace: str | None = None
    """The context's namespace, or the in-cluster ServiceAccount's namespace."""
    source: str = ""
    """Where this configuration came from, for messages (never contains a credential)."""


@dataclass(frozen=True)
class InClusterFiles:
    """The files a pod's ServiceAccount mount provides (injectable for tests)."""

    token: str = f"{SERVICE_ACCOUNT_DIR}/token"
    ca: str = f"{SERVICE_ACCOUNT_DIR}/ca.crt"
    namespace: str = f"{SERVICE_ACCOUNT_DIR}/namespace"


# --------------------------------------------------------------------------------------------- sources


async def load_cluster_config(
    kubeconfig: str | None = None,
    *,
    context: str | None = None,
    env: Mapping[str, str] | None = None,
    in_cluster: InClusterFiles | None = None,
    home: str | None = None,
) -> ClusterConfig:
    """Resolve the configuration in controller-runtime's order (module docstring) and prime its credentials."""
    config = resolve_cluster_config(kubeconfig, context=context, env=env, in_cluster=in_cluster, home=home)
    if config.credentials is not None:
        try:
            await config.credentials.authorization()
        except CredentialError as err:
            raise KubeconfigError(f"{config.source}: {err}") from None
    return config


def resolve_cluster_config(
    kubeconfig: str | None = None,
    *,
    context: str | None = None,
    env: Mapping[str, str] | None = None,
    in_cluster: InClusterFiles | None = None,
    home: str | None = None,
) -> ClusterConfig:
    """Like ``load_cluster_config`` but without running an exec plugin or reading a token yet."""
    env = os.environ if env is None else env
    if kubeconfig:
        if not os.path.exists(kubeconfig):
            raise KubeconfigError(f"kubeconfig {kubeconfig} (from --kubeconfig) does not exist: pass an existing file")
        return from_kubeconfig([kubeconfig], context=context)
    listed = env.get("KUBECONFIG", "")
    if listed:
        paths = list(dict.fromkeys(p for p in listed.split(os.pathsep) if p))
        present = [p for p in paths if os.path.exists(p)]
        if not present:
            raise KubeconfigError(
                f"KUBECONFIG names {', '.join(paths) or repr(listed)}, which does not exist: "
                "point KUBECONFIG at a kubeconfig file or pass --kubeconfig"
            )
        return from_kubeconfig(present, context=context)
    home_config = os.path.join(home if home is not None else os.path.expanduser("~"), ".kube", "config")
    if env.get("KUBERNETES_SERVICE_HOST") and env.get("KUBERNETES_SERVICE_PORT"):
        try:
            return from_in_cluster(env, in_cluster or InClusterFiles())
        except KubeconfigError as err:
            if not os.path.exists(home_config):
                raise
            log.warning("in_cluster_config_unusable", error=str(err), using=home_config)
        return from_kubeconfig([home_config], context=context)
    if os.path.exists(home_config):
        return from_kubeconfig([home_config], context=context)
    raise KubeconfigError(
        "no cluster configuration: --kubeconfig not given, KUBECONFIG unset, not running in a pod "
        f"(KUBERNETES_SERVICE_HOST/KUBERNETES_SERVICE_PORT unset) and {home_config} does not exist; "
        "pass --kubeconfig PATH"
    )


def from_in_cluster(env: Mapping[str, str], files: InClusterFiles) -> ClusterConfig:
    """A pod's configuration: the kubernetes Service from the environment, the mounted token and CA."""
    host, port = env.get("KUBERNETES_SERVICE_HOST", ""), env.get("KUBERNETES_SERVICE_PORT", "")
    if not host or not port:
        raise KubeconfigError(
            "in-cluster configuration needs KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT (set in every pod); "
            "outside a pod pass --kubeconfig PATH or set KUBECONFIG"
        )
    server = f"https://[{host}]:{port}" if ":" in host else f"https://{host}:{port}"
    source = "in-cluster configuration"
    tokens = TokenFile(files.token)
    try:
        tokens.load()
    except CredentialError as err:
        raise KubeconfigError(
            f"{source}: {err}: mount the ServiceAccount token (automountServiceAccountToken: true)"
        ) from None
    try:
        ctx = _tls_context(cafile=files.ca)
    except (OSError, ssl.SSLError) as err:
        raise KubeconfigError(f"{source}: cannot load the cluster CA {files.ca}: {_reason(err)}") from None
    namespace: str | None = None
    try:
        namespace = Path(files.namespace).read_text(encoding="utf-8").strip() or None
    except OSError:
        namespace = None
    return ClusterConfig(server=server, ssl_context=ctx, credentials=tokens, namespace=namespace, source=source)


# --------------------------------------------------------------------------------------------- files


@dataclass
class _Entry:
    """One named cluster, user or context and the file that defined it."""

    value: JSON
    file: str


@dataclass
class Merged:
    """Several kubeconfig files merged kubectl's way (module docstring)."""

    files: list[str]
    clusters: dict[str, _Entry] = field(default_factory=dict)
    users: dict[str, _Entry] = field(default_factory=dict)
    contexts: dict[str, _Entry] = field(default_factory=dict)
    current_context: str = ""
    current_context_file: str = ""


def read_kubeconfig_file(path: str) -> JSON:
    """Parse one kubeconfig file; an empty file is an empty configuration (kubectl accepts it)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise KubeconfigError(f"kubeconfig {path} does not exist: pass an existing file") from None
    except (OSError, UnicodeDecodeError) as err:
        raise KubeconfigError(f"cannot read kubeconfig {path}: {_reason(err)}") from None
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None) or type(err).__name__
        raise KubeconfigError(f"kubeconfig {path} is not valid YAML{at}: {problem}: fix or regenerate it") from None
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise KubeconfigError(f"kubeconfig {path} must be a YAML mapping (kind: Config), not {type(doc).__name__}")
    return doc


def merge_kubeconfigs(paths: list[str]) -> Merged:
    merged = Merged(files=paths)
    for path in paths:
        doc = read_kubeconfig_file(path)
        base = os.path.dirname(os.path.abspath(path))
        for key, inner, into in (
            ("clusters", "cluster", merged.clusters),
            ("users", "user", merged.users),
            ("contexts", "context", merged.contexts),
        ):
            items = doc.get(key) or []
            if not isinstance(items, list):
                raise KubeconfigError(f"kubeconfig {path}: {key} must be a list of {{name, {inner}}} entries")
            for i, item in enumerate(items):
                where = f"kubeconfig {path}: {key}[{i}]"
                if not isinstance(item, dict) or not isinstance(item.get("name"), str) or not item["name"]:
                    raise KubeconfigError(f"{where} needs a non-empty name")
                value = item.get(inner) or {}
                if not isinstance(value, dict):
                    raise KubeconfigError(f"{where}.{inner} must be a mapping")
                if item["name"] not in into:
                    into[item["name"]] = _Entry(_resolve_paths(inner, value, base), path)
        current = doc.get("current-context")
        if current and not merged.current_context:
            if not isinstance(current, str):
                raise KubeconfigError(f"kubeconfig {path}: current-context must be a string")
            merged.current_context, merged.current_context_file = current, path
    return merged


def _resolve_paths(kind: str, value: JSON, base: str) -> JSON:
    keys = {"cluster": ("certificate-authority",), "user": ("client-certificate", "client-key", "tokenFile")}
    out = dict(value)
    for key in keys.get(kind, ()):
        if isinstance(out.get(key), str) and out[key] and not os.path.isabs(out[key]):
            out[key] = os.path.join(base, out[key])
    exec_spec = out.get("exec")
    if kind == "user" and isinstance(exec_spec, dict):
        command = exec_spec.get("command")
        if isinstance(command, str) and "/" in command and not os.path.isabs(command):
            out["exec"] = {**exec_spec, "command": os.path.join(base, command)}
    return out


def from_kubeconfig(paths: list[str], *, context: str | None = None) -> ClusterConfig:
    """Merge ``paths``, pick ``context`` (default: current-context) and build the ``ClusterConfig``."""
    merged = merge_kubeconfigs(paths)
    files = ", ".join(paths)
    name = context or merged.current_context
    if not name:
        known = ", ".join(sorted(merged.contexts)) or "none defined"
        raise KubeconfigError(
            f"kubeconfig {files} sets no current-context: run kubectl config use-context NAME (contexts: {known})"
        )
    ctx_entry = merged.contexts.get(name)
    if ctx_entry is None:
        origin = "--context" if context else f"current-context in {merged.current_context_file}"
        known = ", ".join(sorted(merged.contexts)) or "none defined"
        raise KubeconfigError(
            f"kubeconfig {files}: context {name!r} ({origin}) is not defined (contexts: {known}): "
            "run kubectl config use-context with one that is"
        )
    ctx = ctx_entry.value
    cluster_name, user_name = ctx.get("cluster"), ctx.get("user")
    if not cluster_name or not isinstance(cluster_name, str):
        raise KubeconfigError(f"kubeconfig {ctx_entry.file}: context {name!r} names no cluster: set context.cluster")
    cluster_entry = merged.clusters.get(cluster_name)
    if cluster_entry is None:
        raise KubeconfigError(
            f"kubeconfig {files}: cluster {cluster_name!r} (of context {name!r}) is not defined: "
            "add it to clusters or fix context.cluster"
        )
    user: JSON = {}
    user_file = ctx_entry.file
    if user_name:
        user_entry = merged.users.get(str(user_name))
        if user_entry is None:
            raise KubeconfigError(
                f"kubeconfig {files}: user {user_name!r} (of context {name!r}) is not defined: "
                "add it to users or fix context.user"
            )
        user, user_file = user_entry.value, user_entry.file
    namespace = ctx.get("namespace") if isinstance(ctx.get("namespace"), str) else None
    source = f"kubeconfig {files} (context {name})"
    return _build(cluster_name, cluster_entry, str(user_name or ""), user, user_file, namespace, source)


def _build(
    cluster_name: str,
    cluster_entry: _Entry,
    user_name: str,
    user: JSON,
    user_file: str,
    namespace: str | None,
    source: str,
) -> ClusterConfig:
    cluster, cfile = cluster_entry.value, cluster_entry.file
    cwhere = f"kubeconfig {cfile}: clusters[{cluster_name}].cluster"
    uwhere = f"kubeconfig {user_file}: users[{user_name}].user"
    for key in UNSUPPORTED_CLUSTER_FIELDS:
        if cluster.get(key):
            raise KubeconfigError(f"{cwhere}.{key} is not supported by pyjobset: remove it")
    for key in UNSUPPORTED_USER_FIELDS:
        if user.get(key):
            raise KubeconfigError(f"{uwhere}.{key} is not supported by pyjobset: use a token, tokenFile or exec")

    server = cluster.get("server")
    if not isinstance(server, str) or not server:
        raise KubeconfigError(f"{cwhere}.server is missing: set it to the API server URL (https://HOST:PORT)")
    if "://" not in server:
        server = "https://" + server
    parsed = urllib.parse.urlsplit(server)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise KubeconfigError(f"{cwhere}.server {server!r} is not an http(s) URL: set it to https://HOST:PORT")
    server = server.rstrip("/")

    insecure = cluster.get("insecure-skip-tls-verify") is True
    ca_file = cluster.get("certificate-authority")
    ca_data = cluster.get("certificate-authority-data")
    if insecure and (ca_file or ca_data):
        raise KubeconfigError(
            f"{cwhere}: insecure-skip-tls-verify cannot be combined with a certificate authority: remove one"
        )
    ctx: ssl.SSLContext | None = None
    if parsed.scheme == "https":
        ctx = _cluster_tls(cwhere, ca_file, ca_data, insecure)
        _client_cert(uwhere, ctx, user)
    elif user.get("client-certificate") or user.get("client-certificate-data"):
        raise KubeconfigError(f"{uwhere}: a client certificate needs an https server (fix {cwhere}.server)")

    headers: dict[str, str] = {}
    token, token_file, exec_cfg = user.get("token"), user.get("tokenFile"), user.get("exec")
    if exec_cfg and (token or token_file):
        raise KubeconfigError(f"{uwhere}: set only one of exec and token/tokenFile")
    credentials: Credentials | None = None
    if exec_cfg:
        credentials = _exec_plugin(uwhere, exec_cfg, cluster, server, ctx, user_name, user_file)
    elif token_file:
        if not isinstance(token_file, str):
            raise KubeconfigError(f"{uwhere}.tokenFile must be a path")
        tokens = TokenFile(token_file)
        try:
            tokens.load()
        except CredentialError as err:
            raise KubeconfigError(f"{uwhere}.tokenFile: {err}: write the token there or fix the path") from None
        credentials = tokens
    elif token:
        if not isinstance(token, str):
            raise KubeconfigError(f"{uwhere}.token must be a string")
        credentials = StaticToken(token)
    elif user.get("username") or user.get("password"):
        username, password = user.get("username"), user.get("password")
        if not isinstance(username, str) or not isinstance(password, str):
            raise KubeconfigError(f"{uwhere}: username and password must both be strings")
        headers["Authorization"] = "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()
    return ClusterConfig(
        server=server, ssl_context=ctx, headers=headers, credentials=credentials, namespace=namespace, source=source
    )


def _cluster_tls(where: str, ca_file: Any, ca_data: Any, insecure: bool) -> ssl.SSLContext:
    try:
        if ca_data:
            pem = decode_base64(str(ca_data)).decode("ascii")
            ctx = _tls_context(cadata=pem)
        elif ca_file:
            ctx = _tls_context(cafile=str(ca_file))
        else:
            ctx = _tls_context()
    except FileNotFoundError:
        raise KubeconfigError(f"{where}.certificate-authority {ca_file} does not exist: fix the path") from None
    except (OSError, ssl.SSLError, ValueError) as err:
        field_name = "certificate-authority-data" if ca_data else "certificate-authority"
        raise KubeconfigError(f"{where}.{field_name} is not a usable PEM CA bundle: {_reason(err)}") from None
    if insecure:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def _client_cert(where: str, ctx: ssl.SSLContext, user: JSON) -> None:
    cert_file, cert_data = user.get("client-certificate"), user.get("client-certificate-data")
    key_file, key_data = user.get("client-key"), user.get("client-key-data")
    if not (cert_file or cert_data or key_file or key_data):
        return
    if not (cert_file or cert_data) or not (key_file or key_data):
        raise KubeconfigError(f"{where}: client-certificate(-data) and client-key(-data) must be set together")
    try:
        cert = decode_base64(str(cert_data)) if cert_data else Path(str(cert_file)).read_bytes()
        key = decode_base64(str(key_data)) if key_data else Path(str(key_file)).read_bytes()
        load_cert_chain_data(ctx, cert, key)
    except FileNotFoundError as err:
        raise KubeconfigError(
            f"{where}: client certificate or key {err.filename} does not exist: fix the path"
        ) from None
    except (OSError, ssl.SSLError, ValueError) as err:
        raise KubeconfigError(f"{where}: client certificate/key is not a usable PEM pair: {_reason(err)}") from None


def _exec_plugin(
    where: str,
    spec: Any,
    cluster: JSON,
    server: str,
    ctx: ssl.SSLContext | None,
    user_name: str,
    user_file: str,
) -> ExecPlugin:
    if not isinstance(spec, dict):
        raise KubeconfigError(f"{where}.exec must be a mapping")
    command, api_version = spec.get("command"), spec.get("apiVersion")
    if not isinstance(command, str) or not command:
        raise KubeconfigError(f"{where}.exec.command is missing: name the credential plugin to run")
    if api_version not in EXEC_API_VERSIONS:
        raise KubeconfigError(
            f"{where}.exec.apiVersion {api_version!r} is not supported: use {' or '.join(EXEC_API_VERSIONS)}"
        )
    mode = spec.get("interactiveMode")
    if mode is None and api_version.endswith("/v1"):
        raise KubeconfigError(f"{where}.exec.interactiveMode is required for {api_version}: set it to Never")
    if mode not in (None, "Never", "IfAvailable"):
        raise KubeconfigError(
            f"{where}.exec.interactiveMode {mode!r}: a controller has no terminal; set it to Never or IfAvailable"
        )
    args = spec.get("args") or []
    if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
        raise KubeconfigError(f"{where}.exec.args must be a list of strings")
    env: dict[str, str] = {}
    for i, item in enumerate(spec.get("env") or []):
        if not isinstance(item, dict) or not all(isinstance(item.get(k), str) for k in ("name", "value")):
            raise KubeconfigError(f"{where}.exec.env[{i}] must be {{name: ..., value: ...}} strings")
        env[item["name"]] = item["value"]
    provide = spec.get("provideClusterInfo") is True
    cluster_info: JSON | None = None
    if provide:
        cluster_info = {"server": server}
        ca_data = cluster.get("certificate-authority-data")
        if cluster.get("certificate-authority") and not ca_data:
            try:
                ca_data = base64.b64encode(Path(str(cluster["certificate-authority"])).read_bytes()).decode()
            except OSError as err:
                raise KubeconfigError(
                    f"{where}: cannot read the cluster CA for provideClusterInfo: {_reason(err)}"
                ) from None
        if ca_data:
            cluster_info["certificate-authority-data"] = ca_data
        if cluster.get("insecure-skip-tls-verify") is True:
            cluster_info["insecure-skip-tls-verify"] = True
        for ext in cluster.get("extensions") or []:
            if isinstance(ext, dict) and ext.get("name") == EXEC_CONFIG_EXTENSION:
                cluster_info["config"] = ext.get("extension")
    hint = spec.get("installHint")
    hint = hint if isinstance(hint, str) else ""
    return ExecPlugin(
        ExecSpec(
            command=command,
            api_version=api_version,
            args=tuple(args),
            env=env,
            interactive_mode=mode or "IfAvailable",
            provide_cluster_info=provide,
            install_hint=hint,
            cluster_info=cluster_info,
            where=f" (users[{user_name}].user.exec in {user_file})",
        ),
        ssl_context=ctx,
    )


def _tls_context(*, cafile: str | None = None, cadata: str | None = None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=cafile, cadata=cadata)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


def _reason(err: BaseException) -> str:
    if isinstance(err, OSError) and err.strerror:
        return err.strerror
    return str(err) or type(err).__name__
