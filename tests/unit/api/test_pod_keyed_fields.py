"""Pod label/annotation records read like mappings (``api.records._KeyedFields``), defaults included.

Found by mutation testing (docs/design/mutation-testing.md): the in-place barrier reads a pod annotation that may
be absent, and a key the record does not keep must answer the default, not fail.
"""

from __future__ import annotations

import msgspec

from api import constants as c
from api.records import PodAnnotations, PodLabels


def test_get_answers_the_default_for_an_absent_or_unknown_key() -> None:
    empty = PodAnnotations()
    assert empty.get(c.IN_PLACE_RESTART_ATTEMPT_KEY) is None
    assert empty.get(c.IN_PLACE_RESTART_ATTEMPT_KEY, "d") == "d"
    assert empty.get("not.kept/by-the-record", "d") == "d"
    assert PodLabels().get("unknown") is None


def test_get_answers_a_present_value() -> None:
    ann = msgspec.convert({c.IN_PLACE_RESTART_ATTEMPT_KEY: "3", "dropped": "x"}, PodAnnotations)
    assert ann.get(c.IN_PLACE_RESTART_ATTEMPT_KEY, "d") == "3"
    assert ann.get("dropped", "d") == "d"
