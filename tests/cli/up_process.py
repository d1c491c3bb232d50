"""``pyjobset up`` as its own process, for the CLI and examples tiers.

Role: start ``python -m controller.cli up`` on 127.0.0.1, read its stdout on a thread until it says the
kubeconfig is written (no polling of the file system), keep draining stdout so the process never blocks on a full
pipe, and stop it with a signal at the end, reporting the exit status. Plus the ``kubectl`` helpers the tiers share:
``wait_for`` is ``kubectl wait`` (a watch on the server), never a sleep loop.
"""

from __future__ import annotations

import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.cli.test_cli_processes import KUBECTL, ROOT

READY_LINE = "kubeconfig written to "


@dataclass
class UpProcess:
    proc: subprocess.Popen[str]
    kubeconfig: Path
    stderr_path: Path
    lines: list[str] = field(default_factory=list)

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def stop(self, sig: signal.Signals = signal.SIGTERM, timeout: float = 30.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                pytest.fail(f"pyjobset up did not stop on {sig.name}")
        return self.proc.returncode


@contextmanager
def up_process(tmp_path: Path, *args: str, limit: float = 90.0) -> Iterator[UpProcess]:
    """Run ``pyjobset up --kubeconfig <tmp>/kubeconfig ARGS`` until it is ready; stop it (SIGTERM) on exit."""
    kubeconfig = tmp_path / "kubeconfig"
    stderr_path = tmp_path / "up.stderr"
    with stderr_path.open("w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "controller.cli", "up", "--kubeconfig", str(kubeconfig), *args],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
        )
    up = UpProcess(proc, kubeconfig, stderr_path)
    seen: queue.Queue[str | None] = queue.Queue()

    def drain() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            up.lines.append(line.rstrip("\n"))
            seen.put(line)
        seen.put(None)

    reader = threading.Thread(target=drain, daemon=True, name="up-stdout")
    reader.start()
    try:
        deadline = time.monotonic() + limit
        while True:
            try:
                line = seen.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                pytest.fail(f"pyjobset up not ready within {limit:g}s; stderr: {stderr_path.read_text()[-2000:]}")
            if line is None:
                pytest.fail(f"pyjobset up exited ({proc.wait()}) before ready: {stderr_path.read_text()[-2000:]}")
            if line.startswith(READY_LINE):
                break
        yield up
    finally:
        up.stop()
        reader.join(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()


def kubectl_run(kubeconfig: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    assert KUBECTL is not None
    return subprocess.run(
        [KUBECTL, "--kubeconfig", str(kubeconfig), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def wait_for(kubeconfig: Path, condition: str, target: str, timeout: str = "60s") -> None:
    """``kubectl wait --for=<condition> <target>``: a watch on the API server until it holds."""
    out = kubectl_run(kubeconfig, "wait", f"--for={condition}", target, f"--timeout={timeout}")
    assert out.returncode == 0, f"kubectl wait --for={condition} {target}: {out.stderr}"


def port_of(output: str, word: str) -> int:
    """The port of the first ``<word>: http://127.0.0.1:PORT`` line ``pyjobset up`` printed."""
    m = re.search(rf"^{word}: https?://127\.0\.0\.1:(\d+)", output, re.MULTILINE)
    assert m is not None, f"no '{word}' line in: {output}"
    return int(m.group(1))
