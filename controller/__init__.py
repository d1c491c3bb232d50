"""The JobSet controller: pure policy, the single writer, the reconcile loop, webhooks and the process wiring.

Layers inside (import-linter, highest first): ``cli`` → ``demo`` → ``app`` (the composition root) →
``reconciler`` / ``placement`` / ``webhooks`` → ``act`` (the only code that writes JobSet children) → ``events`` |
``settings`` → ``decide`` (pure: ``api``, msgspec, re2 and the standard library only). The reconcile loop and the
webhooks are independent of each other.

Around it: ``controller`` sits above ``cache`` and ``api``, beside ``metrics``; it reaches ``metrics`` only through
``metrics.seam`` (the observer interfaces the reconciler and the acting layer call) and from ``app``, which wires
the metrics hub in. Only ``cli`` and ``demo`` import ``kubesim`` (the simulated cluster behind ``pyjobset sim`` /
``pyjobset demo``); nothing here imports ``tools``.
"""
