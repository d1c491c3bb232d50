"""Bytes per cached Job record, and the controller's idle RSS (issue 18, memory), each with a baseline in one run.

    job_bytes   tracemalloc bytes held per decoded Job, for N Jobs as the API server sends them (the labels and
                annotations ``build_job`` writes, the Job controller's selector and template labels, managedFields,
                a running status): the current ``api.records.Job`` vs the record shape before issue 18 (full label
                and annotation maps on the Job and on its pod template), defined here as the baseline.
    store       tracemalloc bytes per Job held by the Job store (owner index) with slim records, without and with the
                incremental child tally (``cache.tally``) listening to it: the tally's own cost per Job.
    idle_rss    VmRSS of a fresh interpreter after ``import controller.app`` (and, for context, of a bare
                interpreter, of one that imported only ``msgspec``, and of ``controller.app`` as a production
                install has it: without ``rich``), each in its own subprocess, best of three.

Run: ``.venv/bin/python -m scale_tests.bench_records [--jobs N]``. Prints JSON and writes
``scale_tests/results/bench_records.json``. Figures are recorded, never asserted.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import subprocess
import sys
import tracemalloc
from pathlib import Path
from typing import Any

import msgspec
import orjson

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "scale_tests" / "results"


# ----------------------------------------------------------------------------------- baseline record shape


class _B(msgspec.Struct, frozen=True, kw_only=True, rename="camel", omit_defaults=True, gc=False):
    pass


class _BOwner(_B, frozen=True, gc=False):
    api_version: str = ""
    kind: str = ""
    name: str = ""
    uid: str = ""
    controller: bool | None = None


class _BMeta(_B, frozen=True, gc=False):
    name: str = ""
    namespace: str = ""
    uid: str = ""
    resource_version: str = ""
    generation: int = 0
    creation_timestamp: str | None = None
    deletion_timestamp: str | None = None
    labels: dict[str, str] = msgspec.field(default_factory=dict)
    annotations: dict[str, str] = msgspec.field(default_factory=dict)
    owner_references: tuple[_BOwner, ...] = ()


class _BCond(_B, frozen=True, gc=False):
    type: str
    status: str
    reason: str = ""
    message: str = ""
    last_transition_time: str = ""


class _BTemplateMeta(_B, frozen=True, gc=False):
    labels: dict[str, str] = msgspec.field(default_factory=dict)
    annotations: dict[str, str] = msgspec.field(default_factory=dict)


class _BTemplateSpec(_B, frozen=True, gc=False):
    node_selector: dict[str, str] | None = None
    tolerations: tuple[Any, ...] | None = None
    scheduling_gates: tuple[Any, ...] | None = None


class _BTemplate(_B, frozen=True, gc=False):
    metadata: _BTemplateMeta = msgspec.field(default_factory=_BTemplateMeta)
    spec: _BTemplateSpec = msgspec.field(default_factory=_BTemplateSpec)


class _BSpec(_B, frozen=True, gc=False):
    parallelism: int | None = None
    completions: int | None = None
    suspend: bool | None = None
    completion_mode: str | None = None
    template: _BTemplate = msgspec.field(default_factory=_BTemplate)


class _BStatus(_B, frozen=True, gc=False):
    active: int = 0
    ready: int | None = None
    succeeded: int = 0
    failed: int = 0
    terminating: int | None = None
    start_time: str | None = None
    completion_time: str | None = None
    conditions: tuple[_BCond, ...] = ()


class BaselineJob(_B, frozen=True, gc=False):
    """The Job record before issue 18: every label and annotation of the Job and of its pod template kept."""

    metadata: _BMeta = msgspec.field(default_factory=_BMeta)
    spec: _BSpec = msgspec.field(default_factory=_BSpec)
    status: _BStatus = msgspec.field(default_factory=_BStatus)


# ----------------------------------------------------------------------------------- workload


def job_bodies(n: int) -> list[bytes]:
    """``n`` Jobs of one JobSet as the API server returns them (JSON bytes)."""
    sys.path.insert(0, str(ROOT))
    from controller.decide import children
    from tests.builders import JobSetBuilder

    js = JobSetBuilder("train").rjob("workers", n).set("spec.failurePolicy", {"maxRestarts": 3}).record()
    rjob = js.spec.replicated_jobs[0]
    out = []
    for i in range(n):
        m = children.build_job(js, rjob, i)
        meta = m["metadata"]
        uid = f"{i:08d}-8d1c-4b7a-9a55-0f3c1e2d4b6a"
        meta.update(
            uid=uid,
            resourceVersion=str(100000 + i),
            generation=1,
            creationTimestamp="2026-11-23T10:00:00Z",
            managedFields=[
                {
                    "manager": "pyjobset",
                    "operation": "Update",
                    "apiVersion": "batch/v1",
                    "time": "2026-11-23T10:00:00Z",
                    "fieldsType": "FieldsV1",
                    "fieldsV1": {"f:metadata": {"f:labels": {f"f:{k}": {} for k in meta.get("labels", {})}}},
                },
                {
                    "manager": "kube-controller-manager",
                    "operation": "Update",
                    "apiVersion": "batch/v1",
                    "time": "2026-11-23T10:00:05Z",
                    "fieldsType": "FieldsV1",
                    "subresource": "status",
                    "fieldsV1": {"f:status": {"f:active": {}, "f:ready": {}, "f:startTime": {}}},
                },
            ],
        )
        job_labels = {"batch.kubernetes.io/controller-uid": uid, "batch.kubernetes.io/job-name": meta["name"]}
        job_labels |= {"controller-uid": uid, "job-name": meta["name"]}
        spec = m["spec"]
        spec["selector"] = {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}
        tmeta = spec["template"].setdefault("metadata", {})
        tmeta["labels"] = {**tmeta.get("labels", {}), **job_labels}
        spec.update(backoffLimit=6, manualSelector=False, podReplacementPolicy="TerminatingOrFailed")
        m["status"] = {"active": 1, "ready": 1, "startTime": "2026-11-23T10:00:01Z", "terminating": 0}
        out.append(orjson.dumps(m))
    return out


def bytes_per_job(record: type, bodies: list[bytes]) -> float:
    decoder = msgspec.json.Decoder(record)
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    keep = [decoder.decode(b) for b in bodies]
    gc.collect()
    held = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    del keep
    return held / len(bodies)


def bench_job_bytes(n: int) -> dict[str, Any]:
    from api.records import Job

    bodies = job_bodies(n)
    wire = sum(len(b) for b in bodies) / n
    base = bytes_per_job(BaselineJob, bodies)
    slim = bytes_per_job(Job, bodies)
    return {
        "jobs": n,
        "wire_bytes_per_job": round(wire),
        "baseline_bytes_per_job": round(base),
        "slim_bytes_per_job": round(slim),
        "ratio": round(base / max(slim, 1), 1),
        "saved_mib_at_65k_jobs": round((base - slim) * 65_000 / 2**20, 1),
    }


def store_bytes_per_job(bodies: list[bytes], *, tally: bool) -> float:
    from api.records import Job
    from cache.store import Store
    from cache.tally import ChildTallies
    from controller.reconciler import OWNER_INDEX, owner_uid_index

    decoder = msgspec.json.Decoder(Job)
    records = [decoder.decode(b) for b in bodies]
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    listeners = [ChildTallies(owner_uid_index)] if tally else []
    store: Store[Job] = Store(lambda j: j.key, {OWNER_INDEX: owner_uid_index}, listeners=listeners)
    for job in records:
        store.upsert(job)
    gc.collect()
    held = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    del store, listeners
    return held / len(bodies)


def bench_store(n: int) -> dict[str, Any]:
    bodies = job_bodies(n)
    plain = store_bytes_per_job(bodies, tally=False)
    tallied = store_bytes_per_job(bodies, tally=True)
    return {
        "jobs": n,
        "store_bytes_per_job": round(plain),
        "store_with_tally_bytes_per_job": round(tallied),
        "tally_bytes_per_job": round(tallied - plain),
    }


# ----------------------------------------------------------------------------------- idle RSS

_RSS = (
    "import pathlib;"
    "print([int(l.split()[1]) for l in pathlib.Path('/proc/self/status').read_text().splitlines()"
    " if l.startswith('VmRSS:')][0])"
)


def rss_after(imports: str) -> float:
    code = f"{imports}\n{_RSS}" if imports else _RSS
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, cwd=ROOT)
    return int(out.stdout.strip()) / 1024


def bench_idle_rss() -> dict[str, Any]:
    best = {
        name: min(rss_after(code) for _ in range(3))
        for name, code in (
            ("bare_interpreter_mib", ""),
            ("msgspec_only_mib", "import msgspec"),
            ("controller_app_mib", "import controller.app"),
            # A production install has no ``rich`` (only import-linter, a dev tool, pulls it in); structlog imports it
            # when present, so the dev venv's figure is that much above the deployed controller's.
            ("controller_app_without_rich_mib", "import sys; sys.modules['rich'] = None; import controller.app"),
        )
    }
    return {k: round(v, 1) for k, v in best.items()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=15_000)
    args = parser.parse_args()
    out = {
        "benchmark": "records",
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "job_bytes": bench_job_bytes(args.jobs),
        "store": bench_store(args.jobs),
        "idle_rss": bench_idle_rss(),
    }
    text = json.dumps(out, indent=2)
    print(text)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "bench_records.json").write_text(text + "\n")


if __name__ == "__main__":
    main()
