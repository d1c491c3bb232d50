"""The extensions' internal bookkeeping annotation ``pyjobset.io/restart-state``.

Role: remember what the status cannot: when each JobSet-wide restart was decided (for the restart backoff, the
restart budget and ``recoveredSeconds``) and the restart attempt whose gang last formed (every Job ready; the
startup deadline no longer applies to it). Value: ``{"restartTimes": [RFC 3339, ...], "readyAttempt": n}``.

Invariants: pure; an unreadable value reads as empty state (never an error); ``restartTimes`` is oldest first
and bounded (the last ``max(11, budget count)`` decisions).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

from api import extensions as x


@dataclass(frozen=True, slots=True)
class State:
    restart_times: tuple[str, ...] = ()
    ready_attempt: int | None = None

    def with_restart(self, when: str, options: x.Options) -> State:
        keep = max(x.HISTORY_LIMIT + 1, options.budget.count if options.budget is not None else 0)
        return State(restart_times=(*self.restart_times, when)[-keep:], ready_attempt=self.ready_attempt)


def read_state(annotations: Mapping[str, str]) -> State:
    raw = annotations.get(x.STATE)
    if not raw:
        return State()
    try:
        data = json.loads(raw)
    except ValueError:
        return State()
    if not isinstance(data, dict):
        return State()
    times = data.get("restartTimes")
    ready = data.get("readyAttempt")
    return State(
        restart_times=tuple(t for t in times if isinstance(t, str)) if isinstance(times, list) else (),
        ready_attempt=ready if isinstance(ready, int) and not isinstance(ready, bool) else None,
    )


def write_state(state: State) -> str:
    data: dict[str, object] = {"restartTimes": list(state.restart_times)}
    if state.ready_attempt is not None:
        data["readyAttempt"] = state.ready_attempt
    return json.dumps(data, separators=(",", ":"))
