"""Warning headers carry any field name safely: found by the admission fuzz suite (tests/chaos), where a JobSet
with an unknown field named ``"\\x1f"`` made kubesim drop the connection (a control character in a header).

kube-apiserver quotes the field with Go's ``%q`` (``unknown field "status.\\x1f"``) and writes the warning text
as a quoted-string, so the answer is the usual 201 with a printable ``Warning``.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import aiohttp
import pytest

from kubesim import SimCluster
from kubesim.util.jsonutil import go_quote, header_quoted


@pytest.fixture
async def sim() -> AsyncIterator[SimCluster]:
    async with SimCluster(with_cluster=False) as cluster:
        yield cluster


@pytest.mark.parametrize("field", ["\x1f", 'q"uote', "back\\slash", "new\nline"])
async def test_unknown_field_with_any_name_is_a_printable_warning(sim: SimCluster, field: str) -> None:
    # json.dumps escapes control characters as a client would.
    spec = "{" + json.dumps(field) + ':1,"containers":[{"name":"a","image":"b"}]}'
    body = ('{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"},"spec":' + spec + "}").encode()
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{sim.url}/api/v1/namespaces/default/pods", data=body, headers={"Content-Type": "application/json"}
        ) as resp,
    ):
        assert resp.status == 201, await resp.text()
        warning = resp.headers["Warning"]
    assert warning.startswith('299 - "unknown field \\"spec.')
    assert all(ch >= " " for ch in warning)


def test_go_quote_matches_go_percent_q() -> None:
    assert go_quote("spec.bogus") == '"spec.bogus"'
    assert go_quote("a\x1fb") == '"a\\x1fb"'
    assert go_quote('q"\\') == '"q\\"\\\\"'
    assert go_quote("\n\t") == '"\\n\\t"'
    assert go_quote("\u200b") == '"\\u200b"'
    assert go_quote("é") == '"é"'


def test_header_quoted_escapes_quotes_and_controls() -> None:
    assert header_quoted('unknown field "x"') == '"unknown field \\"x\\""'
    assert header_quoted("a\x00b") == '"a\\x00b"'


async def test_null_metadata_fields_of_a_custom_resource_are_not_stored(sim: SimCluster) -> None:
    """Also found by the admission fuzz suite: ``metadata.generateName: null`` on a JobSet was stored verbatim;
    kube-apiserver decodes custom-resource metadata into ObjectMeta, so the null field is simply absent."""
    from api.crdgen import build_crd

    async with aiohttp.ClientSession() as http:
        async with http.post(
            f"{sim.url}/apis/apiextensions.k8s.io/v1/customresourcedefinitions", json=build_crd()
        ) as r:
            assert r.status == 201
        rjob = {
            "name": "a",
            "template": {"spec": {"template": {"spec": {"containers": [{"name": "m", "image": "i"}]}}}},
        }
        body = {"metadata": {"name": "js", "generateName": None, "labels": None}, "spec": {"replicatedJobs": [rjob]}}
        async with http.post(f"{sim.url}/apis/jobset.x-k8s.io/v1alpha2/namespaces/default/jobsets", json=body) as r:
            assert r.status == 201, await r.text()
            meta = (await r.json())["metadata"]
    assert "generateName" not in meta
    assert "labels" not in meta
