"""What kubectl shows and what the API answers in corners where the simulated cluster once differed (issue 14).

Each test passes against kube-apiserver (the e2e tier runs this file there) and pins what kubesim must do:
CRD printer columns leave a cell empty when its JSONPath finds nothing (JobSet's TerminalState / Completed /
Suspended), event timestamps decode as ``metav1.Time`` (whole seconds) and ``metav1.MicroTime`` (six digits)
so LAST SEEN is an age, ``/openapi/v2`` answers client-go's protobuf request in protobuf (so ``kubectl create``
of an unknown kind says ``no matches for kind``), and an apps/v1 Deployment's ``spec.selector`` is immutable.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from api.crdgen import PRINTER_COLUMNS
from tests.contract.client import Kube
from tests.contract.conftest import eventually
from tests.contract.test_kubectl import Kubectl

JSON = dict[str, Any]
TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io"
AGE = re.compile(r"^\d+(s|m\d*s?)$")


@pytest.fixture
def kubectl(kubectl_bin: str, kubeconfig: str, ns: str) -> Kubectl:
    return Kubectl(kubectl_bin, kubeconfig, ns)


async def _printer_crd(kube: Kube) -> str:
    """A CRD with the JobSet CRD's printer columns, in a group of its own; returns the group."""
    group = f"p{uuid.uuid4().hex[:8]}.contract.pyjobset.io"
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"jobsets.{group}"},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"plural": "jobsets", "singular": "jobset", "kind": "JobSet"},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": PRINTER_COLUMNS,
                    "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}},
                }
            ],
        },
    }
    reply = await kube.post("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd)
    assert reply.status == 201, reply.body

    async def served() -> bool:
        return (await kube.get(f"/apis/{group}/v1/jobsets")).ok

    await eventually(served)
    return group


@pytest.mark.kubectl
async def test_jobset_printer_columns_are_empty_for_unset_fields(kube: Kube, kubectl: Kubectl, ns: str) -> None:
    group = await _printer_crd(kube)
    try:
        base = f"/apis/{group}/v1/namespaces/{ns}/jobsets"
        for name, spec in (("fresh", {}), ("done", {"suspend": True})):
            body = {"apiVersion": f"{group}/v1", "kind": "JobSet", "metadata": {"name": name}, "spec": spec}
            assert (await kube.post(base, body)).status == 201
        status = {"restarts": 2, "terminalState": "Completed", "conditions": [{"type": "Completed", "status": "True"}]}
        reply = await kube.patch(f"{base}/done/status", {"status": status})
        assert reply.status == 200, reply.body

        table = (await kube.request("GET", base, accept=TABLE)).obj()
        names = [c["name"] for c in table["columnDefinitions"]]
        assert names == ["Name", "TerminalState", "Restarts", "Completed", "Suspended", "Age"]
        rows = {r["cells"][0]: r["cells"] for r in table["rows"]}
        assert rows["fresh"][1:5] == [None, None, None, None]  # null cells, not the age
        assert rows["done"][1:5] == ["Completed", "2", "True", "true"]  # string columns carry printed values
        assert AGE.match(rows["fresh"][5])
        assert AGE.match(rows["done"][5])

        for _ in range(50):  # kubectl's discovery may need a moment to see the new group
            code, out, _ = await kubectl.run("get", f"jobsets.{group}", check=False)
            if code == 0:
                break
            await asyncio.sleep(0.2)
        lines = {line.split()[0]: line.split() for line in out.splitlines()}
        assert lines["NAME"] == ["NAME", "TERMINALSTATE", "RESTARTS", "COMPLETED", "SUSPENDED", "AGE"]
        assert len(lines["fresh"]) == 2, out  # name and age only: the unset columns print empty
        assert AGE.match(lines["fresh"][1]), out
        assert lines["done"][1:5] == ["Completed", "2", "True", "true"]
    finally:
        await kube.delete(f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/jobsets.{group}")


def _event(name: str, ns: str, **fields: Any) -> JSON:
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": name, "namespace": ns},
        "involvedObject": {"kind": "Pod", "name": "subject", "namespace": ns},
        "reason": "Probe",
        "message": name,
        "type": "Normal",
        **fields,
    }


@pytest.mark.kubectl
async def test_event_times_with_sub_second_precision_show_an_age(kube: Kube, kubectl: Kubectl, ns: str) -> None:
    now = datetime.now(UTC)
    micro = now.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    millis = micro[:-4] + "Z"
    core = f"/api/v1/namespaces/{ns}/events"
    reporting = {"reportingComponent": "probe", "reportingInstance": "probe-1", "action": "Probe"}

    legacy = await kube.post(core, _event("legacy", ns, firstTimestamp=micro, lastTimestamp=micro, count=1))
    assert legacy.status == 201, legacy.body
    second = now.strftime("%Y-%m-%dT%H:%M:%SZ")  # metav1.Time: whole seconds on the way out
    assert legacy.obj()["lastTimestamp"] == second
    assert legacy.obj()["firstTimestamp"] == second

    fresh = await kube.post(core, _event("micro", ns, eventTime=micro, **reporting))
    assert fresh.status == 201, fresh.body
    assert fresh.obj()["eventTime"] == micro  # metav1.MicroTime: six digits, kept

    modern = {
        "apiVersion": "events.k8s.io/v1",
        "kind": "Event",
        "metadata": {"name": "modern", "namespace": ns},
        "eventTime": micro,
        "reportingController": "probe",
        "reportingInstance": "probe-1",
        "action": "Probe",
        "reason": "Probe",
        "type": "Normal",
        "note": "modern",
        "regarding": {"kind": "Pod", "name": "subject", "namespace": ns},
    }
    reply = await kube.post(f"/apis/events.k8s.io/v1/namespaces/{ns}/events", modern)
    assert reply.status == 201, reply.body

    wrong = await kube.post(core, _event("millis", ns, eventTime=millis, **reporting))
    assert wrong.status == 400, wrong.body
    assert "cannot be handled as a Event" in wrong.obj()["message"]
    assert f'parsing time "{millis}"' in wrong.obj()["message"]

    _, out, _ = await kubectl.run("get", "events")
    rows = [line.split() for line in out.splitlines()[1:] if "pod/subject" in line]
    assert sorted(r[-1] for r in rows) == ["legacy", "micro", "modern"], out
    for row in rows:
        assert AGE.match(row[0]), f"LAST SEEN is not an age:\n{out}"


async def test_openapi_v2_answers_protobuf_to_client_go(kube: Kube) -> None:
    reply = await kube.request(
        "GET", "/openapi/v2", accept="application/com.github.proto-openapi.spec.v2@v1.0+protobuf"
    )
    assert reply.status == 200
    assert reply.headers["Content-Type"] == "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"
    assert reply.raw.startswith(b"\n\x032.0")  # field 1 (swagger), a 3-byte string: protobuf, not JSON
    as_json = await kube.request("GET", "/openapi/v2")
    assert as_json.status == 200
    assert as_json.obj()["swagger"] == "2.0"
    refused = await kube.request("GET", "/openapi/v2", accept="text/plain")
    assert refused.status == 406


@pytest.mark.kubectl
async def test_kubectl_create_of_an_unknown_kind_says_no_matches(kubectl: Kubectl) -> None:
    manifest = "apiVersion: nowhere.pyjobset.io/v1\nkind: Phantom\nmetadata: {name: ghost}\n"
    code, _, err = await kubectl.run("create", "-f", "-", stdin=manifest, check=False)
    assert code != 0
    assert 'no matches for kind "Phantom" in version "nowhere.pyjobset.io/v1"' in err
    assert "proto" not in err


def _deployment(ns: str, app: str) -> JSON:
    labels = {"app": app}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": ns},
        "spec": {
            "replicas": 0,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10"}]},
            },
        },
    }


async def _replace(kube: Kube, path: str, change: Any) -> Any:
    """PUT the latest object with ``change`` applied, again on a 409 (the Deployment controller writes status)."""
    for _ in range(20):
        current = (await kube.get(path)).obj()
        change(current)
        reply = await kube.put(path, current)
        if reply.status != 409:
            return reply
    raise AssertionError(f"PUT {path} kept conflicting")


async def test_deployment_selector_is_immutable(kube: Kube, ns: str) -> None:
    path = f"/apis/apps/v1/namespaces/{ns}/deployments"
    created = await kube.post(path, _deployment(ns, "a"))
    assert created.status == 201, created.body

    def relabel(obj: JSON) -> None:
        obj["spec"]["selector"] = {"matchLabels": {"app": "b"}}
        obj["spec"]["template"]["metadata"]["labels"] = {"app": "b"}

    reply = await _replace(kube, f"{path}/web", relabel)
    assert reply.status == 422, reply.body
    status = reply.obj()
    assert status["reason"] == "Invalid"
    assert status["details"]["causes"] == [
        {
            "reason": "FieldValueInvalid",
            "message": 'Invalid value: {"matchLabels":{"app":"b"}}: field is immutable',
            "field": "spec.selector",
        }
    ]
    assert status["message"].startswith('Deployment.apps "web" is invalid: spec.selector: ')

    def scale(obj: JSON) -> None:
        obj["spec"]["replicas"] = 1

    # The same selector with another replica count is an ordinary update.
    assert (await _replace(kube, f"{path}/web", scale)).status == 200
