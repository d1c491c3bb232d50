"""Hypothesis through the HTTPS webhook endpoints: never an HTTP 500, never a crash.

Whatever AdmissionReview arrives — valid, wrong, huge or absurdly nested JobSets and pods (the JobSet
strategies are shared with the pure fuzz tests), or broken envelopes — the answer is HTTP 200 with ``allowed``
or a denial whose code is a 4xx (422 denials name a field under ``metadata`` or ``spec``), or HTTP 400/413 for
an envelope that cannot be read. A mutating answer's patch always applies to the object it was computed for.

The server runs on its own event loop in a thread so hypothesis can drive it from plain synchronous tests.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import datetime as dt
import http.client
import os
import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from api import constants as c
from api.records import Node, Pod
from cache.errors import ServerError
from cache.store import Store
from controller.placement import POD_NAME_INDEX, pod_name_index
from controller.webhooks.certs import FileCertSource, plan_rotation, write_pem_files
from controller.webhooks.server import (
    MUTATE_JOBSET_PATH,
    MUTATE_POD_PATH,
    VALIDATE_JOBSET_PATH,
    VALIDATE_POD_PATH,
    AdmissionHandlers,
    CachePlacementLookup,
    WebhookServer,
)
from kubesim.storage.patch import json_patch
from tests.unit.controller.test_fuzz_jobset_validation import jobsets, json_values, names

JSON = dict[str, Any]
SERVER_NAME = "jobset-webhook-service.jobset-system.svc"
FUZZ = settings(
    max_examples=int(os.environ.get("PYJOBSET_FUZZ_EXAMPLES", "60")),
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
        HealthCheck.function_scoped_fixture,
    ],
)


class ThreadedServer:
    """A ``WebhookServer`` on a private event loop in a daemon thread; ``post`` is synchronous."""

    def __init__(self, cert_dir: Path, gates: dict[str, bool]) -> None:
        art, _ = plan_rotation(None, [SERVER_NAME], dt.datetime.now(dt.UTC))
        write_pem_files(str(cert_dir), art)
        self.ca = str(cert_dir / "ca.crt")
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="webhook-fuzz", daemon=True)
        self.thread.start()
        pods: Store[Pod] = Store(lambda p: p.key, {POD_NAME_INDEX: pod_name_index})
        nodes: Store[Node] = Store(lambda n: n.key)
        self.handlers = AdmissionHandlers(gates=gates, lookup=CachePlacementLookup(pods, nodes), pvc_getter=self._pvc)
        self.server = self._call(self._start(cert_dir))
        self.ctx = ssl.create_default_context(cafile=self.ca)

    @staticmethod
    async def _pvc(_namespace: str, name: str) -> JSON | None:
        if name.startswith("a"):
            raise ServerError("lookup failed")
        return {"spec": {"x": name}} if name.startswith("b") else None

    async def _start(self, cert_dir: Path) -> WebhookServer:
        server = WebhookServer(self.handlers, FileCertSource(str(cert_dir)), host="127.0.0.1", port=0)
        assert await server.start()
        return server

    def _call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(60)

    def post(self, path: str, body: bytes, content_type: str = "application/json") -> tuple[int, JSON]:
        conn = http.client.HTTPSConnection("127.0.0.1", self.server.bound_port, context=self.ctx, timeout=60)
        # Connect by address but verify the service name, as the API server does.
        raw_sock = socket.create_connection(("127.0.0.1", self.server.bound_port), 60)
        conn.sock = self.ctx.wrap_socket(raw_sock, server_hostname=SERVER_NAME)
        try:
            conn.request("POST", path, body=body, headers={"Content-Type": content_type})
            resp = conn.getresponse()
            raw = resp.read()
        finally:
            conn.close()
        return resp.status, orjson.loads(raw) if raw.startswith(b"{") else {}

    def close(self) -> None:
        self._call(self.server.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThreadedServer]:
    srv = ThreadedServer(tmp_path_factory.mktemp("fuzz-certs"), {"ElasticJobSet": True})
    try:
        yield srv
    finally:
        srv.close()


def review(operation: str, obj: Any, old: Any = None, kind: str = "JobSet") -> bytes:
    request: JSON = {
        "uid": "fuzz-uid",
        "operation": operation,
        "namespace": "ns",
        "object": obj,
        "kind": {"kind": kind},
    }
    if old is not None:
        request["oldObject"] = old
    return orjson.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request})


def check_answer(status: int, answer: JSON, obj: Any, *, mutating: bool) -> None:
    assert status == 200, (status, answer)
    response = answer["response"]
    assert response["uid"] == "fuzz-uid"
    if response["allowed"]:
        if mutating and response.get("patch"):
            ops = orjson.loads(base64.b64decode(response["patch"]))
            json_patch(copy.deepcopy(obj), ops)  # the patch applies to what it was computed for
        return
    code = response["status"]["code"]
    assert 400 <= code < 500, response["status"]
    if code == 422:
        causes = response["status"]["details"]["causes"]
        assert causes
        assert all(cause["field"].startswith(("metadata", "spec")) for cause in causes), causes


@FUZZ
@given(obj=jobsets)
def test_jobset_create_through_https(server: ThreadedServer, obj: JSON) -> None:
    for path, mutating in ((MUTATE_JOBSET_PATH, True), (VALIDATE_JOBSET_PATH, False)):
        status, answer = server.post(path, review("CREATE", obj))
        check_answer(status, answer, obj, mutating=mutating)


@FUZZ
@given(new=jobsets, old=jobsets)
def test_jobset_update_through_https(server: ThreadedServer, new: JSON, old: JSON) -> None:
    status, answer = server.post(VALIDATE_JOBSET_PATH, review("UPDATE", new, old))
    check_answer(status, answer, new, mutating=False)


def nested(depth: int) -> str:
    """``{"x": [{"x": [ ... {} ... ]}]}`` as JSON text (deeper than encoders that recurse can write)."""
    return '{"x":[' * depth + "{}" + "]}" * depth


@settings(FUZZ, max_examples=max(10, FUZZ.max_examples // 4))
@given(depth=st.integers(min_value=100, max_value=600), where=st.sampled_from(["template", "metadata", "spec"]))
def test_deeply_nested_objects(server: ThreadedServer, depth: int, where: str) -> None:
    marker = '"@NESTED@"'
    obj: JSON = {"metadata": {"name": "deep"}, "spec": {"replicatedJobs": [{"name": "a", "template": "@NESTED@"}]}}
    if where == "metadata":
        obj["spec"]["replicatedJobs"][0]["template"] = {}
        obj["metadata"]["annotations"] = "@NESTED@"
    elif where == "spec":
        obj["spec"]["replicatedJobs"][0]["template"] = {}
        obj["spec"]["x"] = "@NESTED@"
    body = review("CREATE", obj).replace(marker.encode(), nested(depth).encode())
    for path in (MUTATE_JOBSET_PATH, VALIDATE_JOBSET_PATH, MUTATE_POD_PATH, VALIDATE_POD_PATH):
        status, answer = server.post(path, body)
        if status == 400:  # deeper than the JSON decoder reads: a bad request, never a crash
            assert answer["response"]["status"]["code"] == 400
            continue
        response = answer["response"]
        assert status == 200
        assert response["allowed"] or 400 <= response["status"]["code"] < 500, response


def test_huge_jobset(server: ThreadedServer) -> None:
    rjobs = [
        {"name": f"rj{i}", "replicas": 2**31 - 1, "template": {"spec": {"parallelism": 2**31 - 1}}} for i in range(2000)
    ]
    obj = {"metadata": {"name": "h" * 300}, "spec": {"replicatedJobs": rjobs}}
    for path, mutating in ((MUTATE_JOBSET_PATH, True), (VALIDATE_JOBSET_PATH, False)):
        status, answer = server.post(path, review("CREATE", obj))
        check_answer(status, answer, obj, mutating=mutating)


annotation_maps = st.dictionaries(
    st.sampled_from(
        [
            c.JOBSET_NAME_KEY,
            c.EXCLUSIVE_TOPOLOGY_KEY,
            c.NODE_SELECTOR_STRATEGY_KEY,
            c.JOB_COMPLETION_INDEX_ANNOTATION,
            "other",
        ]
    ),
    st.one_of(st.sampled_from(["0", "1", "js", "cloud.google.com/gke-nodepool"]), names),
)
pods = st.fixed_dictionaries(
    {},
    optional={
        "metadata": st.one_of(
            st.fixed_dictionaries(
                {},
                optional={
                    "name": names,
                    "annotations": st.one_of(annotation_maps, json_values),
                    "labels": st.one_of(st.dictionaries(names, names, max_size=4), json_values),
                    "ownerReferences": json_values,
                },
            ),
            json_values,
        ),
        "spec": st.one_of(
            st.fixed_dictionaries(
                {},
                optional={
                    "priority": st.one_of(st.integers(-(2**31), 2**31 - 1), json_values),
                    "nodeSelector": json_values,
                    "affinity": json_values,
                },
            ),
            json_values,
        ),
    },
)


@FUZZ
@given(pod=pods)
@example(pod={"metadata": {"annotations": {c.JOBSET_NAME_KEY: "js", c.EXCLUSIVE_TOPOLOGY_KEY: "t"}}, "spec": []})
def test_pods_through_https(server: ThreadedServer, pod: JSON) -> None:
    for path, mutating in ((MUTATE_POD_PATH, True), (VALIDATE_POD_PATH, False)):
        status, answer = server.post(path, review("CREATE", pod, kind="Pod"))
        check_answer(status, answer, pod, mutating=mutating)


@FUZZ
@given(
    body=st.one_of(st.binary(max_size=200), json_values.map(orjson.dumps)),
    content_type=st.sampled_from(["application/json", "text/plain", ""]),
)
def test_broken_envelopes_are_bad_requests(server: ThreadedServer, body: bytes, content_type: str) -> None:
    status, answer = server.post(VALIDATE_JOBSET_PATH, body, content_type)
    assert status in (200, 400), status
    if status == 400:
        assert answer["response"]["status"]["code"] == 400
