"""The kill-point planner of the crash suite: seeded, ordered by progress, and covering each code path."""

from __future__ import annotations

import random

from tests.chaos.harness import Tracker
from tests.chaos.scenarios import KillPoint, plan_phase

ORDER = {"decided": 0, "removing": 1, "created": 2}


def test_creation_points_are_distinct_and_within_the_jobset() -> None:
    points = plan_phase(0, 100, 6, random.Random(1))
    assert [p.what for p in points] == ["created"] * 6
    ks = [p.k for p in points]
    assert ks == sorted(set(ks))
    assert all(1 <= k < 100 for k in ks)


def test_restart_points_follow_progress_and_cover_every_kind() -> None:
    for seed in range(50):
        points = plan_phase(2, 40, 3, random.Random(seed))
        assert {p.what for p in points} == {"decided", "removing", "created"}
        assert [ORDER[p.what] for p in points] == sorted(ORDER[p.what] for p in points)


def test_same_seed_same_plan() -> None:
    assert [str(p) for p in plan_phase(3, 2000, 6, random.Random(7))] == [
        str(p) for p in plan_phase(3, 2000, 6, random.Random(7))
    ]


def test_points_read_progress_from_the_tracker() -> None:
    t = Tracker("ns", "js")
    t.jobset = {"metadata": {"name": "js", "uid": "u"}, "status": {"restarts": 1}}
    t.removing["0"] = 5
    assert KillPoint(1, "decided", 1).reached(t)
    assert KillPoint(1, "removing", 5).reached(t)
    assert not KillPoint(1, "removing", 6).reached(t)
    assert not KillPoint(1, "created", 1).reached(t)
