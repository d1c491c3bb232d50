"""Kubeconfig and in-cluster loading (``cache.kubeconfig``): where configuration comes from, how several files
merge, which fields are honoured, and the one-line error for each way a configuration can be unusable."""

from __future__ import annotations

import base64
import datetime as dt
import os
import ssl
from pathlib import Path
from typing import Any

import pytest
import yaml

from cache.credentials import ExecPlugin, StaticToken, TokenFile
from cache.kubeconfig import (
    ClusterConfig,
    InClusterFiles,
    KubeconfigError,
    merge_kubeconfigs,
    resolve_cluster_config,
)
from controller.webhooks.certs import generate_ca

JSON = dict[str, Any]


def config(
    *,
    clusters: dict[str, JSON] | None = None,
    users: dict[str, JSON] | None = None,
    contexts: dict[str, JSON] | None = None,
    current: str | None = None,
) -> JSON:
    doc: JSON = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": n, "cluster": c} for n, c in (clusters or {}).items()],
        "users": [{"name": n, "user": u} for n, u in (users or {}).items()],
        "contexts": [{"name": n, "context": c} for n, c in (contexts or {}).items()],
    }
    if current is not None:
        doc["current-context"] = current
    return doc


def simple(server: str = "http://127.0.0.1:1", user: JSON | None = None, **cluster: Any) -> JSON:
    return config(
        clusters={"c": {"server": server, **cluster}},
        users={"u": user if user is not None else {"token": "t0"}},
        contexts={"x": {"cluster": "c", "user": "u", "namespace": "ns1"}},
        current="x",
    )


def write(path: Path, doc: Any) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(doc if isinstance(doc, str) else yaml.safe_dump(doc))
    return str(path)


def resolve(
    tmp_path: Path, kubeconfig: str | None = None, env: dict[str, str] | None = None, **kw: Any
) -> ClusterConfig:
    """Resolve with a private HOME and environment, so the developer's own ~/.kube/config never leaks in."""
    home = kw.pop("home", str(tmp_path / "home"))
    return resolve_cluster_config(kubeconfig, env=env or {}, home=home, **kw)


async def header(cfg: ClusterConfig) -> str | None:
    assert cfg.credentials is not None
    return await cfg.credentials.authorization()


# ------------------------------------------------------------------------------------------ precedence


def test_flag_wins_over_kubeconfig_env_and_in_cluster(tmp_path: Path) -> None:
    flag = write(tmp_path / "flag", simple("http://flag:1"))
    env_file = write(tmp_path / "env", simple("http://env:1"))
    env = {"KUBECONFIG": env_file, "KUBERNETES_SERVICE_HOST": "10.0.0.1", "KUBERNETES_SERVICE_PORT": "443"}
    assert resolve(tmp_path, flag, env).server == "http://flag:1"


def test_kubeconfig_env_wins_over_in_cluster_and_home(tmp_path: Path) -> None:
    env_file = write(tmp_path / "env", simple("http://env:1"))
    write(tmp_path / "home" / ".kube" / "config", simple("http://home:1"))
    env = {"KUBECONFIG": env_file, "KUBERNETES_SERVICE_HOST": "10.0.0.1", "KUBERNETES_SERVICE_PORT": "443"}
    assert resolve(tmp_path, None, env).server == "http://env:1"


def in_cluster_files(tmp_path: Path, token: str = "sa-token") -> InClusterFiles:
    sa = tmp_path / "sa"
    sa.mkdir(exist_ok=True)
    (sa / "token").write_text(token)
    (sa / "ca.crt").write_bytes(generate_ca(dt.datetime.now(dt.UTC))[0])
    (sa / "namespace").write_text("jobset-system\n")
    return InClusterFiles(token=str(sa / "token"), ca=str(sa / "ca.crt"), namespace=str(sa / "namespace"))


async def test_in_cluster_wins_over_home_config(tmp_path: Path) -> None:
    write(tmp_path / "home" / ".kube" / "config", simple("http://home:1"))
    env = {"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"}
    cfg = resolve(tmp_path, None, env, in_cluster=in_cluster_files(tmp_path))
    assert cfg.server == "https://10.96.0.1:443"
    assert cfg.namespace == "jobset-system"
    assert isinstance(cfg.credentials, TokenFile)
    assert await header(cfg) == "Bearer sa-token"
    assert cfg.ssl_context is not None
    assert cfg.ssl_context.verify_mode == ssl.CERT_REQUIRED


def test_in_cluster_ipv6_host_is_bracketed(tmp_path: Path) -> None:
    env = {"KUBERNETES_SERVICE_HOST": "fd00::1", "KUBERNETES_SERVICE_PORT": "6443"}
    assert resolve(tmp_path, None, env, in_cluster=in_cluster_files(tmp_path)).server == "https://[fd00::1]:6443"


def test_home_config_is_the_last_resort(tmp_path: Path) -> None:
    write(tmp_path / "home" / ".kube" / "config", simple("http://home:1"))
    assert resolve(tmp_path).server == "http://home:1"


def test_broken_in_cluster_mount_falls_back_to_home_config(tmp_path: Path) -> None:
    write(tmp_path / "home" / ".kube" / "config", simple("http://home:1"))
    env = {"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"}
    missing = InClusterFiles(token=str(tmp_path / "nope"), ca=str(tmp_path / "nope"), namespace=str(tmp_path / "n"))
    assert resolve(tmp_path, None, env, in_cluster=missing).server == "http://home:1"


# ------------------------------------------------------------------------------------------ merging


def test_kubeconfig_list_merges_first_file_wins(tmp_path: Path) -> None:
    first = write(
        tmp_path / "a",
        config(
            clusters={"shared": {"server": "http://first:1"}},
            users={"u": {"token": "first"}},
            contexts={"ctx-a": {"cluster": "shared", "user": "u"}},
        ),
    )
    second = write(
        tmp_path / "b",
        config(
            clusters={"shared": {"server": "http://second:1"}, "only-b": {"server": "http://b:1"}},
            users={"u": {"token": "second"}},
            contexts={"ctx-b": {"cluster": "only-b", "user": "u"}},
            current="ctx-b",
        ),
    )
    third = write(tmp_path / "c", config(current="ctx-a"))
    merged = merge_kubeconfigs([first, second, third])
    assert merged.clusters["shared"].value["server"] == "http://first:1"
    assert merged.clusters["only-b"].file == second
    assert merged.users["u"].value["token"] == "first"
    assert merged.current_context == "ctx-b"  # the first file that sets one
    cfg = resolve(tmp_path, None, {"KUBECONFIG": os.pathsep.join([first, str(tmp_path / "missing"), second, third])})
    assert cfg.server == "http://b:1"
    assert cfg.source.endswith("(context ctx-b)")


async def test_user_from_an_earlier_file_is_used_by_a_context_in_a_later_one(tmp_path: Path) -> None:
    first = write(tmp_path / "a", config(users={"u": {"token": "from-a"}}))
    second = write(
        tmp_path / "b",
        config(clusters={"c": {"server": "http://b:1"}}, contexts={"x": {"cluster": "c", "user": "u"}}, current="x"),
    )
    cfg = resolve(tmp_path, None, {"KUBECONFIG": os.pathsep.join([first, second])})
    assert await header(cfg) == "Bearer from-a"


async def test_relative_paths_resolve_against_the_file_that_names_them(tmp_path: Path) -> None:
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir" / "tok").write_text("file-token\n")
    path = write(tmp_path / "dir" / "config", simple(user={"tokenFile": "tok"}))
    cfg = resolve(tmp_path, path)
    assert isinstance(cfg.credentials, TokenFile)
    assert cfg.credentials.path == str(tmp_path / "dir" / "tok")
    assert await header(cfg) == "Bearer file-token"


def test_explicit_context_overrides_current_context(tmp_path: Path) -> None:
    doc = simple("http://a:1")
    doc["clusters"].append({"name": "other", "cluster": {"server": "http://other:1"}})
    doc["contexts"].append({"name": "y", "context": {"cluster": "other", "user": "u"}})
    assert resolve(tmp_path, write(tmp_path / "k", doc), context="y").server == "http://other:1"


# ------------------------------------------------------------------------------------------ fields


async def test_token_and_namespace(tmp_path: Path) -> None:
    cfg = resolve(tmp_path, write(tmp_path / "k", simple()))
    assert isinstance(cfg.credentials, StaticToken)
    assert await header(cfg) == "Bearer t0"
    assert cfg.namespace == "ns1"
    assert cfg.ssl_context is None


def test_token_file_wins_over_token(tmp_path: Path) -> None:
    (tmp_path / "tok").write_text("from-file")
    cfg = resolve(tmp_path, write(tmp_path / "k", simple(user={"token": "inline", "tokenFile": str(tmp_path / "tok")})))
    assert isinstance(cfg.credentials, TokenFile)


def test_basic_auth_is_a_fixed_header(tmp_path: Path) -> None:
    cfg = resolve(tmp_path, write(tmp_path / "k", simple(user={"username": "a", "password": "b"})))
    assert cfg.headers == {"Authorization": "Basic " + base64.b64encode(b"a:b").decode()}
    assert cfg.credentials is None


def test_tls_fields(tmp_path: Path) -> None:
    cert, key = generate_ca(dt.datetime.now(dt.UTC))
    (tmp_path / "ca.crt").write_bytes(cert)
    (tmp_path / "tls.crt").write_bytes(cert)
    (tmp_path / "tls.key").write_bytes(key)
    b64 = base64.b64encode
    for cluster, user in [
        ({"certificate-authority-data": b64(cert).decode()}, {"token": "t"}),
        ({"certificate-authority": str(tmp_path / "ca.crt")}, {"token": "t"}),
        (
            {"certificate-authority": "ca.crt"},
            {"client-certificate-data": b64(cert).decode(), "client-key-data": b64(key).decode()},
        ),
        ({}, {"client-certificate": "tls.crt", "client-key": "tls.key"}),
    ]:
        cfg = resolve(tmp_path, write(tmp_path / "k", simple("https://api:6443", user=user, **cluster)))
        assert cfg.ssl_context is not None
        assert cfg.ssl_context.verify_mode == ssl.CERT_REQUIRED
        assert cfg.ssl_context.check_hostname
    insecure_doc = simple("https://api:6443", **{"insecure-skip-tls-verify": True})
    insecure = resolve(tmp_path, write(tmp_path / "k", insecure_doc))
    assert insecure.ssl_context is not None
    assert insecure.ssl_context.verify_mode == ssl.CERT_NONE


def test_server_without_scheme_is_https(tmp_path: Path) -> None:
    assert resolve(tmp_path, write(tmp_path / "k", simple("api.example:6443/"))).server == "https://api.example:6443"


def test_exec_plugin_settings(tmp_path: Path) -> None:
    ca, _ = generate_ca(dt.datetime.now(dt.UTC))
    doc = simple(
        "https://api:6443",
        user={
            "exec": {
                "apiVersion": "client.authentication.k8s.io/v1",
                "command": "bin/plugin",
                "args": ["--a"],
                "env": [{"name": "K", "value": "V"}],
                "interactiveMode": "Never",
                "provideClusterInfo": True,
            }
        },
        **{"certificate-authority-data": base64.b64encode(ca).decode()},
    )
    doc["clusters"][0]["cluster"]["extensions"] = [
        {"name": "client.authentication.k8s.io/exec", "extension": {"audience": "x"}}
    ]
    cfg = resolve(tmp_path, write(tmp_path / "conf" / "k", doc))
    assert isinstance(cfg.credentials, ExecPlugin)
    spec = cfg.credentials.spec
    assert spec.command == str(tmp_path / "conf" / "bin" / "plugin")
    assert list(spec.args) == ["--a"]
    assert dict(spec.env) == {"K": "V"}
    assert spec.cluster_info == {
        "server": "https://api:6443",
        "certificate-authority-data": base64.b64encode(ca).decode(),
        "config": {"audience": "x"},
    }


# ------------------------------------------------------------------------------------------ errors


def error(tmp_path: Path, kubeconfig: str | None = None, env: dict[str, str] | None = None, **kw: Any) -> str:
    with pytest.raises(KubeconfigError) as info:
        resolve(tmp_path, kubeconfig, env, **kw)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_missing_flag_file(tmp_path: Path) -> None:
    assert error(tmp_path, str(tmp_path / "nope")) == (
        f"kubeconfig {tmp_path / 'nope'} (from --kubeconfig) does not exist: pass an existing file"
    )


def test_kubeconfig_env_naming_only_missing_files(tmp_path: Path) -> None:
    msg = error(tmp_path, None, {"KUBECONFIG": "x" + os.pathsep + "y"})
    assert msg.startswith("KUBECONFIG names x, y, which does not exist")
    assert "pass --kubeconfig" in msg


def test_nothing_configured(tmp_path: Path) -> None:
    msg = error(tmp_path)
    assert "KUBERNETES_SERVICE_HOST" in msg
    assert str(tmp_path / "home" / ".kube" / "config") in msg
    assert msg.endswith("pass --kubeconfig PATH")


def test_in_cluster_without_token_mount(tmp_path: Path) -> None:
    env = {"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"}
    files = InClusterFiles(token=str(tmp_path / "token"), ca=str(tmp_path / "ca"), namespace=str(tmp_path / "ns"))
    msg = error(tmp_path, None, env, in_cluster=files)
    assert f"cannot read token file {tmp_path / 'token'}" in msg
    assert "automountServiceAccountToken" in msg


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        pytest.param("clusters: [\n  - {name: a\n", "is not valid YAML at line", id="malformed-yaml"),
        pytest.param("- just\n- a list\n", "must be a YAML mapping", id="not-a-mapping"),
        pytest.param(config(clusters={"c": {"server": "http://a"}}), "sets no current-context", id="no-current"),
        pytest.param(
            config(contexts={"x": {"cluster": "c", "user": "u"}}, current="y"),
            "context 'y' (current-context in",
            id="missing-context",
        ),
        pytest.param(
            config(contexts={"x": {"cluster": "c"}}, current="x"),
            "cluster 'c' (of context 'x') is not defined",
            id="missing-cluster",
        ),
        pytest.param(
            config(clusters={"c": {"server": "http://a"}}, contexts={"x": {"cluster": "c", "user": "u"}}, current="x"),
            "user 'u' (of context 'x') is not defined",
            id="missing-user",
        ),
        pytest.param(simple(server=""), "server is missing", id="no-server"),
        pytest.param(simple(server="ftp://a"), "is not an http(s) URL", id="bad-scheme"),
        pytest.param(simple(user={"tokenFile": "/nonexistent/token"}), "cannot read token file", id="token-file"),
        pytest.param(simple(user={"auth-provider": {"name": "gcp"}}), "auth-provider is not supported", id="authprov"),
        pytest.param(simple(**{"proxy-url": "http://proxy"}), "proxy-url is not supported", id="proxy"),
        pytest.param(
            simple("https://a", **{"certificate-authority": "/nonexistent/ca"}),
            "certificate-authority /nonexistent/ca does not exist",
            id="ca-missing",
        ),
        pytest.param(
            simple("https://a", **{"certificate-authority-data": base64.b64encode(b"junk").decode()}),
            "certificate-authority-data is not a usable PEM CA bundle",
            id="ca-junk",
        ),
        pytest.param(
            simple("https://a", **{"insecure-skip-tls-verify": True, "certificate-authority-data": "eA=="}),
            "insecure-skip-tls-verify cannot be combined",
            id="insecure-and-ca",
        ),
        pytest.param(
            simple("https://a", user={"client-certificate": "/nonexistent"}),
            "must be set together",
            id="cert-without-key",
        ),
        pytest.param(
            simple(user={"exec": {"apiVersion": "client.authentication.k8s.io/v1alpha1", "command": "p"}}),
            "exec.apiVersion 'client.authentication.k8s.io/v1alpha1' is not supported",
            id="exec-version",
        ),
        pytest.param(
            simple(user={"exec": {"apiVersion": "client.authentication.k8s.io/v1", "command": "p"}}),
            "exec.interactiveMode is required",
            id="exec-v1-mode",
        ),
        pytest.param(
            simple(
                user={
                    "exec": {
                        "apiVersion": "client.authentication.k8s.io/v1",
                        "command": "p",
                        "interactiveMode": "Always",
                    }
                }
            ),
            "a controller has no terminal",
            id="exec-always",
        ),
        pytest.param(
            simple(user={"token": "t", "exec": {"apiVersion": "client.authentication.k8s.io/v1beta1", "command": "p"}}),
            "set only one of exec and token/tokenFile",
            id="exec-and-token",
        ),
    ],
)
def test_bad_kubeconfig_is_one_line_naming_the_file(tmp_path: Path, content: Any, needle: str) -> None:
    path = write(tmp_path / "kubeconfig", content)
    msg = error(tmp_path, path)
    assert needle in msg
    assert path in msg


def test_errors_never_show_credentials(tmp_path: Path) -> None:
    doc = simple(server="ftp://a", user={"token": "s3cr3t"})
    assert "s3cr3t" not in error(tmp_path, write(tmp_path / "k", doc))


def test_unreadable_file(tmp_path: Path) -> None:
    directory = tmp_path / "adir"
    directory.mkdir()
    msg = error(tmp_path, None, {"KUBECONFIG": str(directory)})
    assert msg.startswith(f"cannot read kubeconfig {directory}:")
