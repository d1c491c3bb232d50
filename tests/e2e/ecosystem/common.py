"""Shared helpers of the ecosystem e2e tests (the real Kueue, Kubeflow Trainer, ... on top of the installed pyjobset).

Role: find an ecosystem controller's pinned build (``tests/e2e/ecosystem/<name>/build.env``, built by
``tests/e2e/ecosystem/build.sh <name>`` into the cache directory) and its Go module source (the manifests, CRDs and
default configuration are read from the module cache at test time, never copied into this repository), and apply
the manifests with the plane's kubectl as a user would.

Invariants: nothing here downloads anything except through ``go mod download`` of the exact pinned module version
(a no-op when the module cache holds it, as it does after the build); a missing binary, module or kubectl is
reported through :func:`unavailable`, which fails the test under ``PYJOBSET_E2E_REQUIRE=1`` (CI) and skips it with
the same precise reason elsewhere.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import pytest

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Pinned:
    """One ecosystem controller as ``<name>/build.env`` pins it."""

    name: str
    module: str
    version: str
    package: str
    binary_name: str

    @property
    def directory(self) -> Path:
        return HERE / self.name

    @property
    def binary(self) -> Path:
        """Where ``build.sh <name>`` puts the binary (the same rule as the script: cache root, name-version/bin)."""
        cache = Path(os.environ.get("PYJOBSET_CACHE") or Path.home() / ".cache" / "pyjobset")
        return cache / f"{self.name}-{self.version}" / "bin" / self.binary_name


def pinned(name: str) -> Pinned:
    """Read ``tests/e2e/ecosystem/<name>/build.env`` (KEY=VALUE lines, shell quoting allowed)."""
    values: dict[str, str] = {}
    for raw_line in (HERE / name / "build.env").read_text().splitlines():
        line = raw_line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, raw = line.partition("=")
        words = shlex.split(raw)
        values[key.strip()] = words[0] if words else ""
    return Pinned(name, values["MODULE"], values["VERSION"], values["PACKAGE"], values["BINARY"])


def unavailable(message: str) -> NoReturn:
    """Fail under ``PYJOBSET_E2E_REQUIRE=1`` (what is required is missing), skip with ``message`` elsewhere."""
    if os.environ.get("PYJOBSET_E2E_REQUIRE") == "1":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def module_dir(pin: Pinned) -> Path:
    """The pinned module's source directory in the Go module cache (``go mod download -json MODULE@VERSION``)."""
    env = {**os.environ, "GOTOOLCHAIN": "local", "GOFLAGS": "-mod=readonly"}
    try:
        out = subprocess.run(
            ["go", "mod", "download", "-json", f"{pin.module}@{pin.version}"],
            cwd=pin.directory,
            env=env,
            check=True,
            capture_output=True,
            text=True,
            timeout=300,
        ).stdout
    except FileNotFoundError:
        unavailable(f"the Go toolchain is needed to find {pin.module}@{pin.version}'s manifests (go mod download)")
    except subprocess.CalledProcessError as err:
        unavailable(f"go mod download {pin.module}@{pin.version} failed: {err.stderr.strip() or err.stdout.strip()}")
    info = json.loads(out)
    directory = Path(info.get("Dir") or "")
    if not info.get("Dir") or not directory.is_dir():
        unavailable(f"{pin.module}@{pin.version} has no source directory in the module cache: {info}")
    return directory


def binary(pin: Pinned) -> Path:
    """The built binary; missing → :func:`unavailable` naming the command that builds it."""
    if not os.access(pin.binary, os.X_OK):
        unavailable(f"{pin.binary} is missing: run tests/e2e/ecosystem/build.sh {pin.name}")
    return pin.binary


def kubectl(kubeconfig: Path | str, *args: str, input: str | None = None, timeout: float = 300) -> str:
    """Run the plane's kubectl (``PYJOBSET_KUBECTL``, else the one ``tests/e2e/build.sh`` built) with ``input`` on
    its stdin; its stdout. A failure raises with kubectl's own message."""
    from tests.e2e.harness import bin_dir

    exe = os.environ.get("PYJOBSET_KUBECTL") or str(bin_dir() / "kubectl")
    if not os.access(exe, os.X_OK):
        unavailable(f"no kubectl at {exe}: run tests/e2e/build.sh or set PYJOBSET_KUBECTL")
    result = subprocess.run(
        [exe, "--kubeconfig", str(kubeconfig), *args],
        check=False,
        input=input,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if result.returncode != 0:
        raise RuntimeError(f"kubectl {' '.join(args)} failed ({result.returncode}): {result.stderr.strip()}")
    return result.stdout


def wait_http_ok(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    """Poll ``url`` (a readiness probe: no watch exists) until it answers 200; fail with the log's tail when
    ``proc`` exits first or the time is up."""
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-20:])
            pytest.fail(f"{proc.args[0]} exited with {proc.returncode} before {url} was ready:\n{tail}")
        try:
            with urllib.request.urlopen(url, timeout=5) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        if time.monotonic() > deadline:
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-20:])
            pytest.fail(f"{url} did not answer 200 within {timeout} s:\n{tail}")
        time.sleep(1)
