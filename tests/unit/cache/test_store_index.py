"""The store's indexes equal indexes computed from scratch after any sequence of upserts and deletes,
including updates that keep the index values (the fast path: buckets only repoint) and ones that move them."""

from __future__ import annotations

import random
from dataclasses import dataclass

from cache.store import Store


@dataclass(frozen=True)
class Obj:
    name: str
    group: str
    tags: tuple[str, ...]
    version: int


def _by_group(o: Obj) -> list[str]:
    return [o.group] if o.group else []


def _by_tag(o: Obj) -> tuple[str, ...]:
    return o.tags


def _expected(items: dict[str, Obj], fn: object) -> dict[str, dict[str, Obj]]:
    out: dict[str, dict[str, Obj]] = {}
    for key, obj in items.items():
        for value in fn(obj):  # type: ignore[operator]
            out.setdefault(value, {})[key] = obj
    return out


def test_indexes_match_a_from_scratch_computation_after_random_changes() -> None:
    rng = random.Random(7)
    store: Store[Obj] = Store(lambda o: o.name, {"group": _by_group, "tag": _by_tag})
    truth: dict[str, Obj] = {}
    for step in range(3000):
        name = f"o{rng.randrange(40)}"
        if rng.random() < 0.15:
            assert store.delete(name) is truth.pop(name, None)
            continue
        old = truth.get(name)
        if old is not None and rng.random() < 0.7:
            obj = Obj(name, old.group, old.tags, step)  # a status-like update: same index values
        else:
            tags = tuple(rng.sample(["a", "b", "c", "d"], rng.randrange(3)))
            obj = Obj(name, rng.choice(["", "g1", "g2", "g3"]), tags, step)
        assert store.upsert(obj) is old
        truth[name] = obj
        for index, fn in (("group", _by_group), ("tag", _by_tag)):
            want = _expected(truth, fn)
            for value in ("", "g1", "g2", "g3", "a", "b", "c", "d"):
                got = {store.key_of(o): o for o in store.by_index(index, value)}
                assert got == want.get(value, {}), (step, index, value)
                # bucket order is the order of last change (an update moves its key to the end)
                assert list(got) == sorted(got, key=lambda k: truth[k].version), (step, index, value)
                # every record handed out is the current one, never a replaced version
                assert all(o is truth[k] for k, o in got.items())
                # the cached tuple is dropped whenever its bucket changes
                assert store.index_tuple(index, value) == tuple(store.by_index(index, value)), (step, index, value)
            assert store.index_count(index, "zzz") == 0
    assert len(store) == len(truth)


def test_an_update_that_keeps_the_index_values_hands_out_the_new_record() -> None:
    store: Store[Obj] = Store(lambda o: o.name, {"group": _by_group})
    first = Obj("x", "g", (), 1)
    second = Obj("x", "g", (), 2)
    store.upsert(first)
    assert store.upsert(second, key="x") is first
    assert store.by_index("group", "g") == [second]
