"""``tools/mutation.py`` (scripts/mutation): mutant names, the allow-list file and how a survivor is matched.

The mutation run itself is too slow for the unit tier (docs/design/mutation-testing.md); these checks keep the
pieces it relies on honest: the checked-in allow-list parses and every entry gives a reason, and matching ignores
indentation and mutant numbers but not the mutated text.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tools.mutation import Equivalent, Outside, Survivor, allowed, function_of, is_outside, load_allow_list


def test_function_of_names_module_class_and_function() -> None:
    assert function_of("api.records.xǁJobǁcondition__mutmut_3") == "api.records.Job.condition"
    assert function_of("controller.decide.ttl.x_finish_time__mutmut_12") == "controller.decide.ttl.finish_time"
    assert function_of("controller.decide.failure.x__apply__mutmut_1") == "controller.decide.failure._apply"


def test_the_checked_in_allow_list_parses_and_every_entry_has_a_reason() -> None:
    equivalent, outside = load_allow_list()
    assert equivalent
    assert outside
    for entry in equivalent:
        assert entry.function.startswith(("controller.decide.", "api.")), entry
        assert len(entry.reason) > 20, entry
    for o in outside:
        assert len(o.reason) > 10, o
    keys = [(e.function, e.original, e.mutant) for e in equivalent]
    assert len(keys) == len(set(keys)), "duplicate entries"


def _survivor(name: str, original: str, mutant: str) -> Survivor:
    return Survivor(name, "survived", function_of(name), original, mutant, "")


def test_a_survivor_matches_by_function_and_text_not_by_number_or_indentation() -> None:
    entry = Equivalent("controller.decide.ttl.finish_time", 'return ""', 'return "XXXX"', "both unparsable")
    assert allowed(_survivor("controller.decide.ttl.x_finish_time__mutmut_99", 'return ""', 'return "XXXX"'), [entry])
    assert allowed(_survivor("controller.decide.ttl.x_finish_time__mutmut_7", 'return ""', 'return "XXXX"'), [entry])
    assert not allowed(_survivor("controller.decide.ttl.x_decide_ttl__mutmut_7", 'return ""', 'return "XXXX"'), [entry])
    assert not allowed(_survivor("controller.decide.ttl.x_finish_time__mutmut_7", 'return ""', 'return "X"'), [entry])


def test_outside_patterns_match_whole_function_names() -> None:
    outside = [Outside("api.records._KeyedFields.[!g]*", "only get is used")]
    assert is_outside("api.records.xǁ_KeyedFieldsǁ__contains____mutmut_1", outside)
    assert is_outside("api.records.xǁ_KeyedFieldsǁitems__mutmut_2", outside)
    assert not is_outside("api.records.xǁ_KeyedFieldsǁget__mutmut_7", outside)


def test_an_entry_without_a_reason_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "allow.toml"
    bad.write_text('[[equivalent]]\nfunction = "api.x.f"\noriginal = "a"\nmutant = "b"\n', encoding="utf-8")
    with pytest.raises(SystemExit, match="reason"):
        load_allow_list(bad)
