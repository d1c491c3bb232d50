#!/usr/bin/env python3
"""Start or stop the real Kubernetes control plane (etcd, apiserver, controller-manager, scheduler, KWOK) locally.

A thin entry point over ``tests/e2e/harness.py`` for users: ``scale_tests/controlplane.py start [--nodes N]
[--build] [--kubeconfig PATH]`` runs in the foreground until Ctrl-C and prints the admin kubeconfig path;
``start --detach`` returns once the plane is ready and ``stop --workdir DIR`` stops it. Binaries come from
``tests/e2e/build.sh`` (pass ``--build`` to run it first).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.e2e.harness import main

if __name__ == "__main__":
    sys.exit(main())
