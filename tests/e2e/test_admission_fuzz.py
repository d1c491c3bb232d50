"""Generated JobSets through the real admission path: kube-apiserver calling our installed webhooks (issue 13, 8).

``tests/chaos/test_admission_fuzz.py`` fuzzes kubesim's admission path and follows every accepted JobSet through
the controller; this test sends the same hypothesis-generated JobSets to the real kube-apiserver of the e2e tier,
which calls the webhooks of the installed Deployment (``run.sh``: ``deploy/`` applied with kubectl, the pod run by
``tests/e2e/kubelet.py``, the Service routed to it). Every answer must be 2xx, or a 4xx ``Status``: a 422 names
a field under ``metadata`` or ``spec`` in every cause, a 400 says which field has the wrong type; never a 5xx,
which would also be what kube-apiserver answers when a webhook crashes or times out (``failurePolicy: Fail``).
An accepted JobSet is deleted at once (foreground), so the plane never holds hundreds of generated Jobs; what
the controller does with accepted ones is the kubesim suite's part.

The size is ``PYJOBSET_E2E_FUZZ_EXAMPLES`` (default 150 in CI; ``scale_tests/bench_chaos.py`` runs the big one on
kubesim).
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from tests.chaos.admission import BAD_REQUESTS, any_jobsets, fold_replicas
from tests.e2e.kube import ApiError, Client

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        os.environ.get("PYJOBSET_E2E_ADMISSION") != "1", reason="needs the install of tests/e2e/run.sh (admission on)"
    ),
]

EXAMPLES = int(os.environ.get("PYJOBSET_E2E_FUZZ_EXAMPLES", "150"))
# kube-apiserver words a wrong JSON type in its own way besides Go's decoder message; both name the field.
REAL_BAD_REQUESTS = {**BAD_REQUESTS, "wrong type (apiserver)": r"json: cannot unmarshal|unmarshalerDecoder"}


def check_refusal(err: ApiError, obj: Any) -> None:
    """A refusal is a 4xx Status that says where the request is wrong."""
    body = err.body if isinstance(err.body, dict) else {}
    assert err.status < 500, f"HTTP {err.status} for {json.dumps(obj)[:2000]}: {err}"
    assert 400 <= err.status < 500, err
    assert body.get("kind") == "Status", err
    if err.status == 422:
        causes = (body.get("details") or {}).get("causes") or []
        # kube-apiserver adds a cause with field "<nil>" when it skipped the CRD's CEL rules because of earlier
        # errors ("some validation rules were not checked"); every other cause names the field.
        named = [c for c in causes if c.get("field") != "<nil>"]
        assert named, err
        for cause in named:
            assert str(cause.get("field", "")).startswith(("metadata", "spec")), err
    if err.status == 400:
        message = str(body.get("message"))
        assert any(re.search(p, message) for p in REAL_BAD_REQUESTS.values()), f"a 400 naming no field: {err}"


def test_generated_jobsets_get_2xx_or_a_4xx_naming_the_field(admin: Client, namespace: str) -> None:
    codes: Counter[int] = Counter()
    path = f"/apis/jobset.x-k8s.io/v1alpha2/namespaces/{namespace}/jobsets"

    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
    @given(any_jobsets)
    def one(obj: Any) -> None:
        obj = fold_replicas(obj)
        if isinstance(obj, dict):
            obj.setdefault("apiVersion", "jobset.x-k8s.io/v1alpha2")
            obj.setdefault("kind", "JobSet")
        refused: ApiError | None = None
        try:
            created = admin.create(path, obj)
        except ApiError as err:
            refused = err
        if refused is not None:
            check_refusal(refused, obj)
            codes[refused.status] += 1
            return
        codes[201] += 1
        name = created["metadata"]["name"]
        admin.delete(f"{path}/{name}", {"propagationPolicy": "Foreground"})

    one()
    assert sum(codes.values()) >= EXAMPLES
    assert codes[201] > 0, f"nothing was accepted, so the webhooks' accepting path was never exercised: {codes}"
    assert codes[422] > 0, f"nothing was refused by validation: {codes}"
