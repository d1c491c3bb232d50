"""The extensions' own state annotation (``controller.decide.extensions.state``): what a restart keeps."""

from __future__ import annotations

from api import extensions as x
from controller.decide.extensions.state import State


def test_a_restart_is_appended_and_the_startup_attempt_is_kept() -> None:
    before = State(restart_times=("2026-01-01T00:00:00.000000Z",), ready_attempt=3)
    after = before.with_restart("2026-01-01T00:01:00.000000Z", x.Options())
    assert after.restart_times == ("2026-01-01T00:00:00.000000Z", "2026-01-01T00:01:00.000000Z")
    # The startup deadline's record of which attempt became ready is not the restart's to change.
    assert after.ready_attempt == 3
