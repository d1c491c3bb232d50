"""``api.jsontypes.json_copy`` gives back the same kind of container it was given, on both of its paths.

Found by mutation testing (docs/design/mutation-testing.md): a list the msgspec round trip would alter takes the
iterative walk, which must build a list, not a mapping indexed by position.
"""

from __future__ import annotations

import math

from api.jsontypes import json_copy


def test_a_list_taking_the_walk_comes_back_a_list() -> None:
    value = [math.nan, (1, 2), {"k": [math.inf]}]
    copied = json_copy(value)
    assert type(copied) is list
    assert copied[1] is value[1]
    assert type(copied[2]["k"]) is list
    assert copied[2]["k"] == [math.inf]
    assert copied[2] is not value[2]
