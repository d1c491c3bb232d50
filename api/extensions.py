"""Wire names of pyjobset's opt-in extensions (``docs/design/extensions.md``): annotation keys and their values.

Role: one place for the ``pyjobset.io/`` strings that outside scripts and tests rely on; the contract fixes them.
Invariants: pure data, standard library only; a name here is never renamed.
"""

from typing import Final

PREFIX: Final = "pyjobset.io/"

INJECT_ENV_KEY: Final = PREFIX + "inject-env"
"""``torch``, ``jax``, ``generic`` or a comma-separated list of them: environment for distributed frameworks."""
MASTER_PORT_KEY: Final = PREFIX + "master-port"
"""The port of ``MASTER_PORT`` / ``JAX_COORDINATOR_ADDRESS`` (an integer 1-65535)."""
LAST_FAILURE_KEY: Final = PREFIX + "last-failure"
"""JSON object: the root cause of the latest restart or failure (written by the failure recorder)."""
RESTART_HISTORY_KEY: Final = PREFIX + "restart-history"
"""JSON array, oldest first: the latest restarts, each a ``last-failure`` object plus ``recoveredSeconds``."""

ENV_FLAVOURS: Final = ("torch", "jax", "generic")
DEFAULT_TORCH_PORT: Final = 29500
DEFAULT_JAX_PORT: Final = 1234
