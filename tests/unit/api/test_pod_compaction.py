"""Cached pods share their repeated strings (memory goal P4 of performance.md) without a decode hook per struct
(ingest goal P6).

``compact_pod`` interns a pod seen for the first time and, for a new version of a cached pod, reuses every part
that did not change; the informer calls it on every pod it caches (LIST and WATCH)."""

from __future__ import annotations

import asyncio
import copy

import msgspec
import orjson

from api.records import Pod, compact_pod
from cache.informer import Informer
from cache.store import Store
from scale_tests import fixtures

_decode = msgspec.json.Decoder(Pod).decode


def _raw(i: int, **changes: object) -> bytes:
    obj = fixtures.pod(i)
    for path, value in changes.items():
        node = obj
        *parents, leaf = path.split("__")
        for part in parents:
            node = node[part]
        node[leaf] = value
    return orjson.dumps(obj)


def test_first_sight_interns_strings_that_repeat_across_pods() -> None:
    a, b = _decode(_raw(1)), _decode(_raw(2))  # two pods of the same Job
    assert a.metadata.labels.jobset_name is not b.metadata.labels.jobset_name
    compact_pod(a)
    compact_pod(b)
    assert a.metadata.labels.jobset_name is b.metadata.labels.jobset_name
    assert a.metadata.labels.job_key is b.metadata.labels.job_key
    assert a.metadata.annotations.jobset_name is b.metadata.annotations.jobset_name
    assert a.metadata.namespace is b.metadata.namespace
    assert a.metadata.owner_references[0].kind is b.metadata.owner_references[0].kind
    assert a.status.conditions[0].type is b.status.conditions[0].type
    assert a.status.phase is b.status.phase


def test_an_update_reuses_every_unchanged_part_of_the_cached_version() -> None:
    old = _decode(_raw(1))
    compact_pod(old)
    new = _decode(_raw(1, metadata__resourceVersion="2000", status__phase="Succeeded"))
    compact_pod(new, old)
    assert new.metadata.labels is old.metadata.labels
    assert new.metadata.annotations is old.metadata.annotations
    assert new.metadata.owner_references is old.metadata.owner_references
    assert new.spec is old.spec
    assert new.status.conditions is old.status.conditions
    assert (new.metadata.resource_version, new.status.phase) == ("2000", "Succeeded")


def test_an_update_that_changes_a_part_keeps_the_new_values() -> None:
    old = _decode(_raw(1))
    compact_pod(old)
    changed = copy.deepcopy(fixtures.pod(1))
    changed["metadata"]["labels"]["jobset.sigs.k8s.io/restart-attempt"] = "1"
    changed["spec"]["nodeName"] = "node-elsewhere"
    changed["status"]["conditions"] = [{"type": "Ready", "status": "False"}]
    new = _decode(orjson.dumps(changed))
    expected = msgspec.structs.asdict(new)
    compact_pod(new, old)
    assert msgspec.structs.asdict(new) == expected
    assert new.metadata.labels.restart_attempt == "1"
    assert new.metadata.labels is not old.metadata.labels
    assert new.metadata.labels.jobset_name is old.metadata.labels.jobset_name  # interned all the same
    assert new.spec.node_name == "node-elsewhere"
    assert new.status.conditions[0].status == "False"
    assert new.metadata.annotations is old.metadata.annotations


def test_the_informer_compacts_pods_from_watch_events() -> None:
    async def run() -> tuple[Pod, Pod]:
        store: Store[Pod] = Store(lambda p: f"{p.metadata.namespace}/{p.metadata.name}")
        inf = Informer(None, "/api/v1/pods", Pod, store)  # type: ignore[arg-type]
        obj = fixtures.pod(3)
        inf._handle_line(fixtures.watch_line("ADDED", obj))
        first = store.get(f"default/{obj['metadata']['name']}")
        obj["metadata"]["resourceVersion"] = "5000"
        obj["status"]["phase"] = "Failed"
        inf._handle_line(fixtures.watch_line("MODIFIED", obj))
        second = store.get(f"default/{obj['metadata']['name']}")
        assert first is not None
        assert second is not None
        return first, second

    first, second = asyncio.run(run())
    assert second.status.phase == "Failed"
    assert second.metadata.labels is first.metadata.labels
    assert second.spec is first.spec
