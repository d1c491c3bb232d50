"""Start-up imports stay lean: ``import controller.app`` does not load ``cryptography`` (~9 MiB resident); only
internal certificate management (``controller.webhooks.certs``, the default) imports it, when it is built."""

from __future__ import annotations

import subprocess
import sys

_PROBE = """
import sys
import controller.app
assert "cryptography" not in sys.modules, "controller.app imported cryptography"
from controller.webhooks.certfiles import FileCertSource
assert "cryptography" not in sys.modules, "certfiles imported cryptography"
from controller.webhooks import certs
assert "cryptography" in sys.modules
assert certs.FileCertSource is FileCertSource
print("ok")
"""


def test_controller_app_does_not_import_cryptography() -> None:
    out = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, check=False, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
