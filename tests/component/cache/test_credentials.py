"""Credentials that change while the controller runs (``cache.credentials``): token files that are rewritten or
swapped, and exec plugins (a tiny Python script here) whose ExecCredential expires. Time is injected."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from cache.credentials import CredentialError, ExecPlugin, ExecSpec, TokenFile
from cache.kubeconfig import KubeconfigError, load_cluster_config

V1 = "client.authentication.k8s.io/v1"
V1BETA1 = "client.authentication.k8s.io/v1beta1"

PLUGIN = """\
import json, os, sys
path = os.environ["PLUGIN_STATE"]
with open(path) as fh:
    state = json.load(fh)
state["runs"] = state.get("runs", 0) + 1
state["info"] = json.loads(os.environ["KUBERNETES_EXEC_INFO"])
state["stdin_closed"] = sys.stdin.read() == ""
tmp = "%s.%d" % (path, os.getpid())  # written whole, then renamed: two runs at once never read half a file
with open(tmp, "w") as fh:
    json.dump(state, fh)
os.replace(tmp, path)
if state.get("fail"):
    sys.stderr.write(state["fail"])
    sys.exit(3)
if state.get("garbage"):
    print(state["garbage"])
    sys.exit(0)
status = {"token": "tok-%d" % state["runs"]}
if state.get("expires"):
    status["expirationTimestamp"] = state["expires"]
print(json.dumps({"apiVersion": state.get("version", state["info"]["apiVersion"]), "kind": "ExecCredential",
                  "status": status}))
"""

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC).timestamp()


class Plugin:
    """The script on disk, its state file, and a hand-driven wall clock."""

    def __init__(self, tmp_path: Path) -> None:
        self.script = tmp_path / "plugin.py"
        self.script.write_text(PLUGIN)
        self.state_path = tmp_path / "state.json"
        self.set()
        self.now = T0

    def set(self, **state: Any) -> None:
        current = json.loads(self.state_path.read_text()) if self.state_path.exists() else {}
        current.update(state)
        self.state_path.write_text(json.dumps(current))

    @property
    def state(self) -> dict[str, Any]:
        result: dict[str, Any] = json.loads(self.state_path.read_text())
        return result

    def spec(self, **kw: Any) -> ExecSpec:
        defaults: dict[str, Any] = {
            "command": sys.executable,
            "args": (str(self.script),),
            "api_version": V1,
            "env": {"PLUGIN_STATE": str(self.state_path)},
            "where": " (users[u].user.exec in test)",
        }
        return ExecSpec(**{**defaults, **kw})

    def credentials(self, **kw: Any) -> ExecPlugin:
        return ExecPlugin(self.spec(**kw), wall=lambda: self.now)


def stamp(seconds: float) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.fixture
def plugin(tmp_path: Path) -> Plugin:
    return Plugin(tmp_path)


# ------------------------------------------------------------------------------------------ exec plugins


async def test_exec_credential_is_cached_until_shortly_before_it_expires(plugin: Plugin) -> None:
    plugin.set(expires=stamp(T0 + 3600))
    creds = plugin.credentials()
    assert await creds.authorization() == "Bearer tok-1"
    plugin.now = T0 + 3500  # 100 s left: beyond the 60 s margin
    assert await creds.authorization() == "Bearer tok-1"
    assert plugin.state["runs"] == 1
    plugin.now = T0 + 3545  # inside the margin: run again before the server would refuse it
    assert await creds.authorization() == "Bearer tok-2"
    assert plugin.state["runs"] == 2


async def test_short_lived_credential_gets_a_proportional_margin(plugin: Plugin) -> None:
    plugin.set(expires=stamp(T0 + 100))  # margin: a tenth of its 100 s lifetime
    creds = plugin.credentials()
    assert await creds.authorization() == "Bearer tok-1"
    plugin.now = T0 + 89
    assert await creds.authorization() == "Bearer tok-1"
    plugin.now = T0 + 91
    assert await creds.authorization() == "Bearer tok-2"


async def test_credential_without_expiry_is_kept_until_rejected(plugin: Plugin) -> None:
    creds = plugin.credentials()
    assert await creds.authorization() == "Bearer tok-1"
    plugin.now = T0 + 10 * 86400
    assert await creds.authorization() == "Bearer tok-1"
    assert await creds.refresh("Bearer tok-1")
    assert await creds.authorization() == "Bearer tok-2"
    # A late 401 for the credential already replaced does not run the plugin again.
    assert await creds.refresh("Bearer tok-1")
    assert plugin.state["runs"] == 2


async def test_concurrent_callers_share_one_plugin_run(plugin: Plugin) -> None:
    creds = plugin.credentials()
    got = await asyncio.gather(*(creds.authorization() for _ in range(8)))
    assert set(got) == {"Bearer tok-1"}
    assert plugin.state["runs"] == 1


async def test_one_plugin_serves_two_event_loops_at_once(plugin: Plugin) -> None:
    """The leader elector renews from a thread with its own loop and the same provider (``cache.leader_thread``):
    callers on both loops at once all get a credential; an ``asyncio.Lock`` shared by both loops would raise."""
    creds = plugin.credentials()

    async def callers() -> list[str | None]:
        return list(await asyncio.gather(*(creds.authorization() for _ in range(8))))

    on_loop, on_thread = await asyncio.gather(callers(), asyncio.to_thread(asyncio.run, callers()))
    got = set(on_loop) | set(on_thread)
    assert got <= {"Bearer tok-1", "Bearer tok-2"}, got
    assert len(set(on_loop)) == 1, "callers on one loop share one run"
    assert len(set(on_thread)) == 1, "callers on one loop share one run"


async def test_plugin_gets_exec_info_env_and_no_stdin(plugin: Plugin) -> None:
    cluster = {"server": "https://api:6443", "config": {"audience": "a"}}
    creds = plugin.credentials(api_version=V1BETA1, provide_cluster_info=True, cluster_info=cluster)
    await creds.authorization()
    info = plugin.state["info"]
    assert info == {"apiVersion": V1BETA1, "kind": "ExecCredential", "spec": {"interactive": False, "cluster": cluster}}
    assert plugin.state["stdin_closed"]


async def test_failed_refresh_keeps_the_unexpired_credential_then_fails_once_expired(plugin: Plugin) -> None:
    plugin.set(expires=stamp(T0 + 600))
    creds = plugin.credentials()
    assert await creds.authorization() == "Bearer tok-1"
    plugin.set(fail="metadata server unreachable\nsecond line\n")
    plugin.now = T0 + 590  # inside the margin, not yet expired
    assert await creds.authorization() == "Bearer tok-1"
    plugin.now = T0 + 600
    with pytest.raises(CredentialError) as info:
        await creds.authorization()
    assert str(info.value) == (
        "exec plugin python3 (users[u].user.exec in test) exited with status 3: metadata server unreachable"
    ).replace("python3", os.path.basename(sys.executable))


async def test_missing_plugin_names_the_install_hint(tmp_path: Path) -> None:
    spec = ExecSpec(
        command=str(tmp_path / "gke-gcloud-auth-plugin"),
        api_version=V1,
        install_hint="Install gke-gcloud-auth-plugin: gcloud components install gke-gcloud-auth-plugin\nmore",
        where=" (users[u].user.exec in k)",
    )
    with pytest.raises(CredentialError) as info:
        await ExecPlugin(spec).authorization()
    assert str(info.value) == (
        f"exec plugin {tmp_path / 'gke-gcloud-auth-plugin'} not found (users[u].user.exec in k): install it or fix "
        "exec.command (Install gke-gcloud-auth-plugin: gcloud components install gke-gcloud-auth-plugin)"
    )


@pytest.mark.parametrize(
    ("state", "needle"),
    [
        pytest.param({"garbage": "hello"}, "stdout is not JSON", id="not-json"),
        pytest.param({"version": V1BETA1}, "does not match the configured client.authentication.k8s.io/v1", id="ver"),
        pytest.param({"expires": "tomorrow"}, "is not an RFC 3339 time", id="bad-expiry"),
        pytest.param(
            {"garbage": json.dumps({"kind": "ExecCredential", "apiVersion": V1})}, "status is missing", id="s"
        ),
    ],
)
async def test_invalid_exec_credential(plugin: Plugin, state: dict[str, Any], needle: str) -> None:
    plugin.set(**state)
    with pytest.raises(CredentialError) as info:
        await plugin.credentials().authorization()
    assert "printed an invalid ExecCredential" in str(info.value)
    assert needle in str(info.value)


async def test_failing_plugin_at_start_up_is_a_kubeconfig_error(plugin: Plugin, tmp_path: Path) -> None:
    plugin.set(fail="error: you must be logged in\n")
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "clusters": [{"name": "c", "cluster": {"server": "http://127.0.0.1:1"}}],
                "users": [{"name": "u", "user": {"exec": {**_exec_yaml(plugin), "interactiveMode": "Never"}}}],
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "x",
            }
        )
    )
    with pytest.raises(KubeconfigError) as info:
        await load_cluster_config(str(kubeconfig), env={})
    msg = str(info.value)
    assert msg.startswith(f"kubeconfig {kubeconfig} (context x): exec plugin ")
    assert msg.endswith("exited with status 3: error: you must be logged in")
    assert "\n" not in msg


def _exec_yaml(plugin: Plugin) -> dict[str, Any]:
    return {
        "apiVersion": V1,
        "command": sys.executable,
        "args": [str(plugin.script)],
        "env": [{"name": "PLUGIN_STATE", "value": str(plugin.state_path)}],
    }


# ------------------------------------------------------------------------------------------ token files


class Mono:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def rewrite_unseen(path: Path, text: str) -> None:
    """Overwrite a token in place with one of the same length and restore the mtime: invisible to ``stat``."""
    before = os.stat(path)
    with open(path, "r+") as fh:
        fh.write(text)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))


def replace_file(path: Path, text: str) -> None:
    """Write a new token the way the kubelet does: a new file renamed over the old one (a new inode)."""
    tmp = path.with_suffix(".new")
    tmp.write_text(text)
    os.replace(tmp, path)


async def test_token_file_is_reread_when_it_is_replaced(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text("first\n")
    creds = TokenFile(str(path), monotonic=Mono())
    assert await creds.authorization() == "Bearer first"
    assert await creds.authorization() == "Bearer first"
    assert creds.reads == 1
    replace_file(path, "second\n")
    assert await creds.authorization() == "Bearer second"


async def test_token_file_is_reread_every_minute_even_when_stat_looks_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text("aaaa")
    clock = Mono()
    creds = TokenFile(str(path), monotonic=clock)
    assert await creds.authorization() == "Bearer aaaa"
    rewrite_unseen(path, "bbbb")
    clock.t += 59
    assert await creds.authorization() == "Bearer aaaa"
    clock.t += 1
    assert await creds.authorization() == "Bearer bbbb"


async def test_unreadable_token_file_keeps_the_last_token(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text("first")
    creds = TokenFile(str(path), monotonic=Mono())
    assert await creds.authorization() == "Bearer first"
    path.unlink()
    assert await creds.authorization() == "Bearer first"
    path.write_text("")
    assert await creds.authorization() == "Bearer first"  # an empty file (mid-write) is not a token
    replace_file(path, "third")
    assert await creds.authorization() == "Bearer third"


async def test_refresh_after_401_rereads_and_reports_whether_the_token_changed(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text("aaaa")
    creds = TokenFile(str(path), monotonic=Mono())
    first = await creds.authorization()
    assert not await creds.refresh(first)  # same token: retrying would only get another 401
    rewrite_unseen(path, "bbbb")
    assert await creds.refresh(first)
    assert await creds.authorization() == "Bearer bbbb"
