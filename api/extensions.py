"""pyjobset's opt-in extensions (docs/design/extensions.md): annotation keys, value syntax, typed options.

Role: the one place that knows the ``pyjobset.io/`` annotation contract. ``parse_options`` turns a JobSet's
annotations plus the cluster-wide defaults of the Configuration's ``pyjobset:`` section into a typed
``Options``; the admission webhook reports ``option_errors`` for bad values, and the controller (which may see a
JobSet stored before the webhook ran) ignores a bad value, falling back to "off".

Invariants: pure (no clock, no I/O); the keys and value forms below are a contract with outside scripts and
tests and must not change; durations are Go-style (``10s``, ``5m``, ``1h30m``, ``500ms``) and positive.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

PREFIX: Final = "pyjobset.io/"
LAST_FAILURE: Final = PREFIX + "last-failure"
RESTART_HISTORY: Final = PREFIX + "restart-history"
FAIL_FAST: Final = PREFIX + "fail-fast"
RESTART_BACKOFF: Final = PREFIX + "restart-backoff"
RESTART_BUDGET: Final = PREFIX + "restart-budget"
STARTUP_DEADLINE: Final = PREFIX + "startup-deadline"
INJECT_ENV_KEY: Final = PREFIX + "inject-env"
"""``torch``, ``jax``, ``generic`` or a comma-separated list of them: environment for distributed frameworks."""
MASTER_PORT_KEY: Final = PREFIX + "master-port"
"""The port of ``MASTER_PORT`` / ``JAX_COORDINATOR_ADDRESS`` (an integer 1-65535)."""
LAST_FAILURE_KEY: Final = LAST_FAILURE
"""JSON object: the root cause of the latest restart or failure (written by the failure recorder)."""
RESTART_HISTORY_KEY: Final = RESTART_HISTORY
"""JSON array, oldest first: the latest restarts, each a ``last-failure`` object plus ``recoveredSeconds``."""
ENV_FLAVOURS: Final = ("torch", "jax", "generic")
DEFAULT_TORCH_PORT: Final = 29500
DEFAULT_JAX_PORT: Final = 1234
STATE: Final = PREFIX + "restart-state"
"""Internal bookkeeping (restart decision times, the attempt whose gang last formed); not for users to set."""

REASON_RESTART_BUDGET_EXCEEDED: Final = "RestartBudgetExceeded"
REASON_STARTUP_DEADLINE_EXCEEDED: Final = "StartupDeadlineExceeded"
HISTORY_LIMIT: Final = 10
DEFAULT_BACKOFF_MAX: Final = 600.0

FORM_DURATION: Final = 'a positive duration such as "30s", "5m" or "1h30m"'
FORM_BACKOFF: Final = '"<base>[,<max>]" with positive durations, e.g. "10s" or "10s,5m"'
FORM_BUDGET: Final = '"<count>/<window>" with a positive integer count and a duration window, e.g. "3/1h"'
FORM_BOOL: Final = '"true" or "false"'

_DURATION: Final = re.compile(r"^(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m(?!s))?(?:(\d+(?:\.\d+)?)s)?(?:(\d+)ms)?$")


@dataclass(frozen=True, slots=True)
class Defaults:
    """Cluster-wide defaults from the Configuration's ``pyjobset:`` section."""

    record_failures: bool = True
    fail_fast: bool = False


@dataclass(frozen=True, slots=True)
class Backoff:
    base: float
    max: float = DEFAULT_BACKOFF_MAX

    def delay(self, restart_number: int) -> float:
        """Wait before restart ``restart_number`` (1-based) deletes children: 0 for the first."""
        if restart_number < 2:
            return 0.0
        return min(self.base * 2.0 ** min(restart_number - 2, 64), self.max)


@dataclass(frozen=True, slots=True)
class Budget:
    count: int
    window: float


@dataclass(frozen=True, slots=True)
class Options:
    record_failures: bool = True
    fail_fast: bool = False
    backoff: Backoff | None = None
    budget: Budget | None = None
    startup_deadline: float | None = None

    @property
    def tracks_restarts(self) -> bool:
        """Whether restart decision times are kept in the internal state annotation."""
        return self.record_failures or self.backoff is not None or self.budget is not None


def parse_duration(text: str) -> float | None:
    """A positive Go-style duration in seconds, or None when ``text`` is not one."""
    text = text.strip()
    m = _DURATION.match(text) if text else None
    if m is None:
        return None
    h, mi, s, ms = (float(x) if x else 0.0 for x in m.groups())
    seconds = h * 3600 + mi * 60 + s + ms / 1000
    return seconds if seconds > 0 else None


def parse_backoff(text: str) -> Backoff | None:
    parts = text.split(",")
    if len(parts) > 2:
        return None
    base = parse_duration(parts[0])
    cap = parse_duration(parts[1]) if len(parts) == 2 else DEFAULT_BACKOFF_MAX
    if base is None or cap is None:
        return None
    return Backoff(base=base, max=cap)


def parse_budget(text: str) -> Budget | None:
    count, sep, window = text.partition("/")
    if not sep or not count.strip().isdigit():
        return None
    seconds = parse_duration(window)
    n = int(count.strip())
    if seconds is None or n < 1:
        return None
    return Budget(count=n, window=seconds)


def parse_bool(text: str) -> bool | None:
    return {"true": True, "false": False}.get(text.strip().lower())


def option_errors(annotations: Mapping[str, str]) -> list[tuple[str, str, str]]:
    """(annotation key, bad value, expected form) for every malformed extension annotation."""
    checks = (
        (FAIL_FAST, parse_bool, FORM_BOOL),
        (RESTART_BACKOFF, parse_backoff, FORM_BACKOFF),
        (RESTART_BUDGET, parse_budget, FORM_BUDGET),
        (STARTUP_DEADLINE, parse_duration, FORM_DURATION),
    )
    out = []
    for key, parse, form in checks:
        value = annotations.get(key)
        if value is not None and parse(value) is None:
            out.append((key, value, form))
    return out


def parse_options(annotations: Mapping[str, str], defaults: Defaults = Defaults()) -> Options:
    """The effective options of one JobSet; a malformed annotation counts as absent."""
    fail_fast = defaults.fail_fast
    if (raw := annotations.get(FAIL_FAST)) is not None and (flag := parse_bool(raw)) is not None:
        fail_fast = flag
    raw = annotations.get(RESTART_BACKOFF)
    backoff = parse_backoff(raw) if raw is not None else None
    raw = annotations.get(RESTART_BUDGET)
    budget = parse_budget(raw) if raw is not None else None
    raw = annotations.get(STARTUP_DEADLINE)
    deadline = parse_duration(raw) if raw is not None else None
    return Options(
        record_failures=defaults.record_failures,
        fail_fast=fail_fast,
        backoff=backoff,
        budget=budget,
        startup_deadline=deadline,
    )
