"""The generated JobSet CRD: no drift from the records, and the facts of behaviour.md §1 hold in it.

The structural checks mirror the API server's rules for CRD schemas (every node typed, list-map keys required
or defaulted, defaults only on optional fields), so a broken generator fails here before a cluster sees it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any

import celpy
import celpy.adapter
import msgspec
import msgspec.inspect as mi
import pytest
import yaml

from api import crdgen, jobset_types

JSON = dict[str, Any]
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # the CRD is ~300 KB; libyaml parses it 20x faster


@pytest.fixture(scope="module")
def crd() -> JSON:
    return crdgen.build_crd()


@pytest.fixture(scope="module")
def version(crd: JSON) -> JSON:
    versions = crd["spec"]["versions"]
    assert len(versions) == 1
    v: JSON = versions[0]
    return v


@pytest.fixture(scope="module")
def schema(version: JSON) -> JSON:
    s: JSON = version["schema"]["openAPIV3Schema"]
    return s


def at(schema: JSON, path: str) -> JSON:
    """Walk a dotted path of property names; ``[]`` steps into array items."""
    node = schema
    for part in path.split("."):
        node = node["items"] if part == "[]" else node["properties"][part]
    return node


def walk(node: Any, path: str = "") -> Iterator[tuple[str, JSON]]:
    if not isinstance(node, dict):
        return
    yield path, node
    for name, sub in node.get("properties", {}).items():
        yield from walk(sub, f"{path}.{name}")
    if isinstance(node.get("items"), dict):
        yield from walk(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from walk(node["additionalProperties"], f"{path}{{}}")


def jobset_part(schema: JSON) -> Iterator[tuple[str, JSON]]:
    """Nodes of our own API, not descending into the embedded Kubernetes templates."""
    embedded = (".spec.replicatedJobs[].template", ".spec.volumeClaimPolicies[].templates[]")
    for path, node in walk(schema):
        if not any(path.startswith(e + ".") for e in embedded):
            yield path, node


# --------------------------------------------------------------------------------------------- drift


def test_checked_in_crd_equals_generator_output() -> None:
    on_disk = crdgen.CRD_PATH.read_text(encoding="utf-8")
    assert on_disk == crdgen.generate(), "run `python -m api.crdgen --write` and commit the result"


def test_the_helm_charts_copy_equals_generator_output() -> None:
    on_disk = crdgen.CHART_CRD_PATH.read_text(encoding="utf-8")
    assert on_disk == crdgen.generate(), "run `python -m api.crdgen --write` and commit the result"


def test_check_mode_fails_on_a_stale_chart_copy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    stale = tmp_path / "crd.yaml"
    stale.write_text(crdgen.generate().replace("replicas", "replica"), encoding="utf-8")
    monkeypatch.setattr(crdgen, "CHART_CRD_PATH", stale)
    assert crdgen.main(["--check"]) == 1
    assert str(stale) in capsys.readouterr().err


def test_generation_is_deterministic() -> None:
    assert crdgen.generate() == crdgen.generate()


def test_check_mode_passes_on_the_repo_and_fails_on_drift(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert crdgen.main(["--check"]) == 0
    stale = tmp_path / "crd.yaml"
    stale.write_text(crdgen.generate().replace("replicas", "replica"), encoding="utf-8")
    monkeypatch.setattr(crdgen, "CRD_PATH", stale)
    assert crdgen.main(["--check"]) == 1
    assert "out of date" in capsys.readouterr().err


def test_stdout_mode_prints_the_yaml(capsys: pytest.CaptureFixture[str]) -> None:
    assert crdgen.main([]) == 0
    out = capsys.readouterr().out
    docs = list(yaml.load_all(out, Loader=_LOADER))
    assert len(docs) == 1
    assert docs[0]["metadata"]["name"] == "jobsets.jobset.x-k8s.io"


def test_crd_directory_holds_only_the_crd() -> None:
    files = sorted(p.name for p in crdgen.CRD_PATH.parent.iterdir())
    assert files == ["jobset.x-k8s.io_jobsets.yaml"]


def test_client_side_apply_annotation_fits() -> None:
    # kubectl apply (client side) stores the object as JSON in an annotation limited to 256 KiB in total.
    loaded = yaml.load(crdgen.CRD_PATH.read_text(encoding="utf-8"), Loader=_LOADER)
    assert len(json.dumps(loaded, separators=(",", ":"))) < 200 * 1024


# --------------------------------------------------------------------------------------------- identity


def test_names_scope_and_version(crd: JSON, version: JSON) -> None:
    assert crd["apiVersion"] == "apiextensions.k8s.io/v1"
    assert crd["kind"] == "CustomResourceDefinition"
    assert crd["metadata"]["name"] == "jobsets.jobset.x-k8s.io"
    spec = crd["spec"]
    assert spec["group"] == "jobset.x-k8s.io"
    assert spec["scope"] == "Namespaced"
    assert spec["names"] == {"kind": "JobSet", "listKind": "JobSetList", "plural": "jobsets", "singular": "jobset"}
    assert version["name"] == "v1alpha2"
    assert version["served"] is True
    assert version["storage"] is True
    assert version["subresources"] == {"status": {}}


def test_printer_columns(version: JSON) -> None:
    cols = [(c["name"], c["type"], c["jsonPath"]) for c in version["additionalPrinterColumns"]]
    assert cols == [
        ("TerminalState", "string", ".status.terminalState"),
        ("Restarts", "string", ".status.restarts"),
        ("Completed", "string", '.status.conditions[?(@.type=="Completed")].status'),
        ("Suspended", "string", ".spec.suspend"),
        ("Age", "date", ".metadata.creationTimestamp"),
    ]


def test_root_metadata_is_a_plain_object(schema: JSON) -> None:
    assert schema["properties"]["metadata"] == {"type": "object"}
    assert set(schema["properties"]) == {"apiVersion", "kind", "metadata", "spec", "status"}


# -------------------------------------------------------------------------------------- behaviour.md §1


@pytest.mark.parametrize(
    ("path", "keys"),
    [
        ("spec.replicatedJobs", ["name"]),
        ("spec.replicatedJobs.[].dependsOn", ["name"]),
        ("status.conditions", ["type"]),
        ("status.replicatedJobsStatus", ["name"]),
    ],
)
def test_list_maps(schema: JSON, path: str, keys: list[str]) -> None:
    node = at(schema, path)
    assert node["x-kubernetes-list-type"] == "map"
    assert node["x-kubernetes-list-map-keys"] == keys


@pytest.mark.parametrize(
    "path",
    [
        "spec.successPolicy.targetReplicatedJobs",
        "spec.failurePolicy.rules.[].targetReplicatedJobs",
        "spec.volumeClaimPolicies",
        "spec.volumeClaimPolicies.[].templates",
        "status.replicatedJobsStatus.[].jobRestarts",
    ],
)
def test_atomic_lists(schema: JSON, path: str) -> None:
    assert at(schema, path)["x-kubernetes-list-type"] == "atomic"


def test_crd_defaults_are_exactly_the_four_of_the_spec(schema: JSON) -> None:
    defaults = {path: node["default"] for path, node in jobset_part(schema) if "default" in node}
    assert defaults == {
        ".spec.replicatedJobs[].groupName": "default",
        ".spec.replicatedJobs[].replicas": 1,
        ".spec.failurePolicy.restartStrategy": "Recreate",
        ".spec.volumeClaimPolicies[].retentionPolicy.whenDeleted": "Delete",
    }


@pytest.mark.parametrize(
    ("path", "values"),
    [
        ("spec.successPolicy.operator", ["All", "Any"]),
        ("spec.startupPolicy.startupPolicyOrder", ["AnyOrder", "InOrder"]),
        ("spec.failurePolicy.restartStrategy", ["Recreate", "BlockingRecreate", "InPlaceRestart"]),
        (
            "spec.failurePolicy.rules.[].action",
            [
                "FailJobSet",
                "RestartJobSet",
                "RestartJobSetAndIgnoreMaxRestarts",
                "RestartJob",
                "RestartJobAndIgnoreMaxRestarts",
            ],
        ),
        ("spec.replicatedJobs.[].dependsOn.[].status", ["Ready", "Complete"]),
        ("spec.volumeClaimPolicies.[].retentionPolicy.whenDeleted", ["Delete", "Retain"]),
        ("status.conditions.[].status", ["True", "False", "Unknown"]),
    ],
)
def test_enums_in_declaration_order(schema: JSON, path: str, values: list[str]) -> None:
    node = at(schema, path)
    assert node["type"] == "string"
    assert node["enum"] == values


@pytest.mark.parametrize(
    ("path", "required"),
    [
        ("spec.replicatedJobs.[]", ["name", "template"]),
        ("spec.replicatedJobs.[].dependsOn.[]", ["name", "status"]),
        ("spec.successPolicy", ["operator"]),
        ("spec.startupPolicy", ["startupPolicyOrder"]),
        ("spec.failurePolicy.rules.[]", ["action", "name"]),
        ("spec.coordinator", ["replicatedJob"]),
        ("status.replicatedJobsStatus.[]", ["active", "failed", "name", "ready", "succeeded", "suspended"]),
        ("status.conditions.[]", ["lastTransitionTime", "message", "reason", "status", "type"]),
    ],
)
def test_required_lists(schema: JSON, path: str, required: list[str]) -> None:
    assert at(schema, path)["required"] == required


@pytest.mark.parametrize(
    "path",
    ["spec", "spec.network", "spec.failurePolicy", "spec.volumeClaimPolicies.[].retentionPolicy", "status"],
)
def test_objects_without_required_fields(schema: JSON, path: str) -> None:
    assert "required" not in at(schema, path)


def test_optional_python_fields_are_never_nullable(schema: JSON) -> None:
    assert [path for path, node in walk(schema) if "nullable" in node] == []


@pytest.mark.parametrize(
    ("path", "fmt"),
    [
        ("spec.replicatedJobs.[].replicas", "int32"),
        ("spec.ttlSecondsAfterFinished", "int32"),
        ("spec.failurePolicy.maxRestarts", "int32"),
        ("status.restarts", "int32"),
        ("status.restartsCountTowardsMax", "int32"),
        ("status.replicatedJobsStatus.[].ready", "int32"),
        ("status.replicatedJobsStatus.[].jobRestarts.[]", "int32"),
        ("status.previousInPlaceRestartAttempt", "int32"),
        ("status.conditions.[].observedGeneration", "int64"),
    ],
)
def test_integer_formats(schema: JSON, path: str, fmt: str) -> None:
    node = at(schema, path)
    assert node["type"] == "integer"
    assert node["format"] == fmt


def test_plain_go_ints_have_no_format(schema: JSON) -> None:
    for field in ("jobIndex", "podIndex"):
        assert at(schema, f"spec.coordinator.{field}") == {
            "type": "integer",
            "description": crdgen.FIELD_DESCRIPTIONS[f"Coordinator.{field}"],
        }


@pytest.mark.parametrize(
    ("path", "key", "value"),
    [
        ("spec.replicatedJobs.[].replicas", "minimum", 0),
        ("spec.ttlSecondsAfterFinished", "minimum", 0),
        ("status.previousInPlaceRestartAttempt", "minimum", 0),
        ("status.currentInPlaceRestartAttempt", "minimum", 0),
        ("spec.replicatedJobs.[].dependsOn", "maxItems", 5),
        ("spec.volumeClaimPolicies", "maxItems", 50),
        ("spec.volumeClaimPolicies.[].templates", "maxItems", 50),
        ("status.replicatedJobsStatus.[].jobRestarts", "maxItems", 1024),
        ("status.replicatedJobsStatus.[].jobRestartsCountTowardsMax", "maxItems", 1024),
    ],
)
def test_bounds(schema: JSON, path: str, key: str, value: int) -> None:
    assert at(schema, path)[key] == value


# --------------------------------------------------------------------------------------------- CEL


IMMUTABLE = [{"rule": "self == oldSelf", "message": "Value is immutable"}]


@pytest.mark.parametrize(
    "path",
    [
        "spec.network",
        "spec.successPolicy",
        "spec.failurePolicy",
        "spec.startupPolicy",
        "spec.replicatedJobs.[].dependsOn",
        "spec.volumeClaimPolicies",
    ],
)
def test_immutability_rules(schema: JSON, path: str) -> None:
    assert at(schema, path)["x-kubernetes-validations"] == IMMUTABLE


def test_no_other_fields_carry_rules(schema: JSON) -> None:
    with_rules = {path for path, node in jobset_part(schema) if "x-kubernetes-validations" in node}
    assert with_rules == {
        ".spec",
        ".spec.network",
        ".spec.successPolicy",
        ".spec.failurePolicy",
        ".spec.startupPolicy",
        ".spec.replicatedJobs[].dependsOn",
        ".spec.volumeClaimPolicies",
        ".spec.volumeClaimPolicies[]",
    }


def _rule(node: JSON) -> tuple[celpy.Runner, str]:
    (validation,) = node["x-kubernetes-validations"]
    env = celpy.Environment()
    return env.program(env.compile(validation["rule"])), validation["message"]


def _holds(program: celpy.Runner, obj: JSON) -> bool:
    return bool(program.evaluate({"self": celpy.adapter.json_to_cel(obj)}))


RJOBS_WITH_DEPENDS_ON = [{"name": "a"}, {"name": "b", "dependsOn": [{"name": "a", "status": "Ready"}]}]


@pytest.mark.parametrize(
    ("spec", "ok"),
    [
        pytest.param({"replicatedJobs": RJOBS_WITH_DEPENDS_ON}, True, id="dependsOn-alone"),
        pytest.param(
            {"startupPolicy": {"startupPolicyOrder": "InOrder"}, "replicatedJobs": [{"name": "a"}]},
            True,
            id="InOrder-alone",
        ),
        pytest.param(
            {"startupPolicy": {"startupPolicyOrder": "AnyOrder"}, "replicatedJobs": RJOBS_WITH_DEPENDS_ON},
            True,
            id="AnyOrder-with-dependsOn",
        ),
        pytest.param(
            {"startupPolicy": {"startupPolicyOrder": "InOrder"}, "replicatedJobs": RJOBS_WITH_DEPENDS_ON},
            False,
            id="InOrder-with-dependsOn",
        ),
    ],
)
def test_startup_policy_and_depends_on_are_exclusive(schema: JSON, spec: JSON, ok: bool) -> None:
    program, message = _rule(schema["properties"]["spec"])
    assert message == "StartupPolicy and DependsOn APIs are mutually exclusive"
    assert _holds(program, spec) is ok


@pytest.mark.parametrize(
    ("policy", "ok"),
    [
        pytest.param({"templates": [{"metadata": {"name": "data"}}]}, True, id="no-namespace"),
        pytest.param({"templates": [{"metadata": {"name": "data", "namespace": ""}}]}, True, id="empty-namespace"),
        pytest.param({"templates": [{"spec": {}}]}, True, id="no-metadata"),
        pytest.param({"retentionPolicy": {"whenDeleted": "Retain"}}, True, id="no-templates"),
        pytest.param(
            {"templates": [{"metadata": {"name": "a"}}, {"metadata": {"name": "b", "namespace": "other"}}]},
            False,
            id="namespace-set",
        ),
    ],
)
def test_pvc_template_namespace_rule(schema: JSON, policy: JSON, ok: bool) -> None:
    program, message = _rule(at(schema, "spec.volumeClaimPolicies.[]"))
    assert message == "namespace cannot be set for VolumeClaimPolicies templates"
    assert _holds(program, policy) is ok


def test_every_rule_compiles(schema: JSON) -> None:
    env = celpy.Environment()
    rules = [v["rule"] for _, node in walk(schema) for v in node.get("x-kubernetes-validations", [])]
    assert len(rules) == 8
    for rule in rules:
        env.compile(rule)


# --------------------------------------------------------------------------------------------- structure


def test_every_node_is_structural(schema: JSON) -> None:
    untyped = [
        path
        for path, node in walk(schema)
        if "type" not in node
        and not node.get("x-kubernetes-int-or-string")
        and not node.get("x-kubernetes-preserve-unknown-fields")
    ]
    assert untyped == []


def test_list_map_keys_are_scalar_and_required_or_defaulted(schema: JSON) -> None:
    problems = []
    maps = 0
    for path, node in walk(schema):
        if node.get("x-kubernetes-list-type") != "map":
            continue
        maps += 1
        item = node["items"]
        assert item["type"] == "object", path
        for key in node["x-kubernetes-list-map-keys"]:
            prop = item["properties"][key]
            if prop.get("type") in ("object", "array"):
                problems.append(f"{path}: key {key} is not scalar")
            if key not in item.get("required", []) and "default" not in prop:
                problems.append(f"{path}: key {key} is neither required nor defaulted")
    assert problems == []
    assert maps > 10  # ours plus the embedded pod spec's containers, env, ports, volumes, ...


def test_defaults_only_on_optional_fields(schema: JSON) -> None:
    bad = []
    for path, node in walk(schema):
        for name, prop in node.get("properties", {}).items():
            if "default" in prop and name in node.get("required", []):
                bad.append(f"{path}.{name}")
    assert bad == []


def test_only_known_extensions_are_emitted(schema: JSON) -> None:
    allowed = {
        "type", "format", "description", "properties", "items", "additionalProperties", "required", "default",
        "enum", "minimum", "maximum", "minLength", "maxLength", "pattern", "minItems", "maxItems", "anyOf",
        "x-kubernetes-list-type", "x-kubernetes-list-map-keys", "x-kubernetes-map-type",
        "x-kubernetes-int-or-string", "x-kubernetes-preserve-unknown-fields", "x-kubernetes-validations",
    }  # fmt: skip
    seen = {key for _, node in walk(schema) for key in node}
    assert seen <= allowed
    assert not any(key.startswith("x-pyjobset-") for key in seen)


# --------------------------------------------------------------------------------------------- embedded


@pytest.fixture(scope="module")
def pod_spec(schema: JSON) -> JSON:
    return at(schema, "spec.replicatedJobs.[].template.spec.template.spec")


def test_template_is_fully_typed_so_unknown_fields_are_pruned(schema: JSON) -> None:
    template = at(schema, "spec.replicatedJobs.[].template")
    pvc = at(schema, "spec.volumeClaimPolicies.[].templates.[]")
    for node in (template, pvc):
        assert node["type"] == "object"
        assert "x-kubernetes-preserve-unknown-fields" not in node
    assert set(template["properties"]) == {"metadata", "spec"}
    assert set(pvc["properties"]) == {"apiVersion", "kind", "metadata", "spec", "status"}
    assert at(schema, "spec.replicatedJobs.[].template.spec")["required"] == ["template"]


@pytest.mark.parametrize(
    "path",
    [
        "spec.replicatedJobs.[].template.metadata",
        "spec.replicatedJobs.[].template.spec.template.metadata",
        "spec.volumeClaimPolicies.[].templates.[].metadata",
    ],
)
def test_embedded_object_metadata_keeps_five_fields(schema: JSON, path: str) -> None:
    meta = at(schema, path)
    assert set(meta["properties"]) == {"annotations", "finalizers", "labels", "name", "namespace"}
    assert meta["properties"]["labels"] == {"type": "object", "additionalProperties": {"type": "string"}}


def test_pod_spec_facts(pod_spec: JSON) -> None:
    assert pod_spec["required"] == ["containers"]
    containers = pod_spec["properties"]["containers"]
    assert containers["x-kubernetes-list-type"] == "map"
    assert containers["x-kubernetes-list-map-keys"] == ["name"]
    ports = at(pod_spec, "containers.[].ports")
    assert ports["x-kubernetes-list-map-keys"] == ["containerPort", "protocol"]
    assert at(ports, "[].protocol")["default"] == "TCP"
    assert at(ports, "[].containerPort") == {"type": "integer", "format": "int32"}
    assert at(pod_spec, "containers.[].livenessProbe.grpc.service")["default"] == ""
    assert at(pod_spec, "terminationGracePeriodSeconds") == {"type": "integer", "format": "int64"}


def test_pod_spec_is_the_one_of_the_reference_kubernetes_version(pod_spec: JSON) -> None:
    # Workload-aware scheduling (k8s 1.36) puts the pod group in the template; it must survive pruning.
    assert at(pod_spec, "schedulingGroup.podGroupName") == {"type": "string"}
    assert at(pod_spec, "containers.[].restartPolicyRules.[].action") == {"type": "string"}


def test_quantities_and_int_or_string(pod_spec: JSON) -> None:
    limit = at(pod_spec, "containers.[].resources.limits")["additionalProperties"]
    assert limit["x-kubernetes-int-or-string"] is True
    assert limit["anyOf"] == [{"type": "integer"}, {"type": "string"}]
    assert limit["pattern"] == crdgen.QUANTITY_PATTERN
    port = at(pod_spec, "containers.[].readinessProbe.httpGet.port")
    assert port == {"anyOf": [{"type": "integer"}, {"type": "string"}], "x-kubernetes-int-or-string": True}


def test_kubernetes_zero_value_defaults_are_not_emitted(pod_spec: JSON) -> None:
    assert "default" not in at(pod_spec, "containers.[].name")
    assert "default" not in at(pod_spec, "containers.[].env.[].name")
    assert "default" not in pod_spec["properties"]["nodeSelector"]["additionalProperties"]
    assert "enum" not in at(pod_spec, "containers.[].imagePullPolicy")


def test_kubernetes_descriptions_are_left_out(schema: JSON) -> None:
    template = at(schema, "spec.replicatedJobs.[].template")
    described = [path for path, node in walk(template) if "description" in node]
    assert described == [""]  # only our own description of the field itself


@pytest.mark.parametrize(
    ("value", "ok"),
    [("1", True), ("500m", True), ("1.5Gi", True), ("2e3", True), ("-1k", True), ("1GB", False), ("abc", False)],
)
def test_quantity_pattern(value: str, ok: bool) -> None:
    assert bool(re.fullmatch(crdgen.QUANTITY_PATTERN.strip("^$"), value)) is ok


# --------------------------------------------------------------------------------------------- records


def test_every_record_field_is_in_the_schema(schema: JSON) -> None:
    def fields(cls: type[msgspec.Struct]) -> list[str]:
        info = mi.type_info(cls)
        assert isinstance(info, mi.StructType)
        return [f.encode_name for f in info.fields]

    assert set(at(schema, "spec")["properties"]) == set(fields(jobset_types.JobSetSpec))
    assert set(at(schema, "status")["properties"]) == set(fields(jobset_types.JobSetStatus))
    assert set(at(schema, "spec.replicatedJobs.[]")["properties"]) == set(fields(jobset_types.ReplicatedJob))
    assert set(at(schema, "spec.failurePolicy.rules.[]")["properties"]) == set(fields(jobset_types.FailurePolicyRule))


def test_description_tables_name_existing_fields() -> None:
    records = {
        name: obj
        for name, obj in vars(jobset_types).items()
        if isinstance(obj, type) and issubclass(obj, msgspec.Struct)
    }
    for key in crdgen.FIELD_DESCRIPTIONS:
        record, field = key.split(".")
        info = mi.type_info(records[record])
        assert isinstance(info, mi.StructType)
        assert field in {f.encode_name for f in info.fields}, key
    assert set(crdgen.TYPE_DESCRIPTIONS) <= set(records)


def test_free_form_json_without_embed_marker_is_rejected() -> None:
    class Loose(msgspec.Struct):
        blob: dict[str, Any]

    walker = crdgen._RecordWalker(crdgen._K8sConverter({}))
    with pytest.raises(crdgen.CRDGenError, match="x-pyjobset-embed"):
        walker.struct(mi.type_info(Loose))  # type: ignore[arg-type]


def test_field_descriptions_win_over_type_descriptions(schema: JSON) -> None:
    assert at(schema, "spec.failurePolicy")["description"] == crdgen.FIELD_DESCRIPTIONS["JobSetSpec.failurePolicy"]
    assert at(schema, "spec.failurePolicy.rules.[]")["description"] == crdgen.TYPE_DESCRIPTIONS["FailurePolicyRule"]


def test_a_field_described_twice_is_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    class Twice(msgspec.Struct):
        value: Annotated[int, msgspec.Meta(description="on the record")] = 0

    monkeypatch.setitem(crdgen.FIELD_DESCRIPTIONS, "Twice.value", "in the table")
    walker = crdgen._RecordWalker(crdgen._K8sConverter({}))
    with pytest.raises(crdgen.CRDGenError, match="described both"):
        walker.struct(mi.type_info(Twice))  # type: ignore[arg-type]


def test_unions_other_than_optional_are_rejected() -> None:
    class Either(msgspec.Struct):
        value: int | str

    walker = crdgen._RecordWalker(crdgen._K8sConverter({}))
    with pytest.raises(crdgen.CRDGenError, match="unions"):
        walker.struct(mi.type_info(Either))  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------- vendoring


def _openapi_doc(schemas: JSON) -> str:
    return json.dumps({"components": {"schemas": schemas}})


def test_vendor_subset_keeps_the_closure_and_only_schema_facts(tmp_path: Path) -> None:
    ref = "#/components/schemas/"
    core = {
        "io.k8s.api.core.v1.PersistentVolumeClaim": {
            "description": "prose",
            "type": "object",
            "properties": {
                "metadata": {"allOf": [{"$ref": ref + "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"}]},
                "spec": {"$ref": ref + "io.k8s.api.core.v1.PVCSpec", "x-kubernetes-patch-strategy": "merge"},
            },
        },
        "io.k8s.api.core.v1.PVCSpec": {"type": "object", "properties": {"size": {"type": "string", "enum": ["a"]}}},
        "io.k8s.api.core.v1.Unrelated": {"type": "object"},
        "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta": {"type": "object"},
        "io.k8s.apimachinery.pkg.apis.meta.v1.Condition": {"type": "object", "required": ["type"]},
    }
    batch = {
        "io.k8s.api.batch.v1.JobTemplateSpec": {
            "type": "object",
            "properties": {"spec": {"type": "object", "default": {}, "description": "x"}},
        }
    }
    (tmp_path / "api__v1_openapi.json").write_text(_openapi_doc(core))
    (tmp_path / "apis__batch__v1_openapi.json").write_text(_openapi_doc(batch))
    subset = crdgen.vendor_subset(tmp_path)
    defs = subset["definitions"]
    assert sorted(defs) == [
        "io.k8s.api.batch.v1.JobTemplateSpec",
        "io.k8s.api.core.v1.PVCSpec",
        "io.k8s.api.core.v1.PersistentVolumeClaim",
        "io.k8s.apimachinery.pkg.apis.meta.v1.Condition",
    ]
    assert defs["io.k8s.api.core.v1.PersistentVolumeClaim"]["properties"]["spec"] == {
        "$ref": ref + "io.k8s.api.core.v1.PVCSpec"
    }
    assert defs["io.k8s.api.core.v1.PVCSpec"]["properties"]["size"] == {"type": "string"}
    assert "description" not in json.dumps(defs)


def test_vendored_file_is_the_one_the_crd_was_built_from() -> None:
    data = json.loads(crdgen.OPENAPI_SUBSET.read_text(encoding="utf-8"))
    assert crdgen.K8S_VERSION in data["source"]
    for root in crdgen.VENDOR_ROOTS:
        assert root in data["definitions"]


# --------------------------------------------------------------------------------------------- real apiserver


E2E_KUBECONFIG = os.environ.get("PYJOBSET_E2E_KUBECONFIG", "")
UNMANAGED = "example.com/not-this-controller"  # spec.managedBy: keeps a running controller away from the objects


@pytest.fixture(scope="module")
def kubectl() -> Iterator[Callable[..., subprocess.CompletedProcess[str]]]:
    """``kubectl`` against the real control plane of the e2e tier, in a namespace of its own."""
    if not E2E_KUBECONFIG or shutil.which("kubectl") is None:
        pytest.skip("needs PYJOBSET_E2E_KUBECONFIG (tests/e2e/run.sh exports it) and kubectl")
    namespace = f"crd-{uuid.uuid4().hex[:8]}"

    def run(*args: str, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["kubectl", "--kubeconfig", E2E_KUBECONFIG, "--namespace", namespace, *args],
            input=stdin,
            capture_output=True,
            text=True,
            check=check,
            timeout=60,
        )

    run("create", "namespace", namespace)
    try:
        yield run
    finally:
        run("delete", "namespace", namespace, "--wait=false", check=False)


def _jobset(name: str, **spec: Any) -> str:
    pod = {"containers": [{"name": "c", "image": "busybox"}]}
    body = {
        "apiVersion": "jobset.x-k8s.io/v1alpha2",
        "kind": "JobSet",
        "metadata": {"name": name},
        "spec": {
            "managedBy": UNMANAGED,
            "replicatedJobs": [{"name": "a", "template": {"spec": {"template": {"spec": pod}}}}],
            **spec,
        },
    }
    return json.dumps(body)


@pytest.mark.e2e
def test_real_apiserver_accepts_the_crd_with_client_side_apply(
    kubectl: Callable[..., subprocess.CompletedProcess[str]],
) -> None:
    kubectl("apply", "-f", str(crdgen.CRD_PATH.parent))
    kubectl("wait", "--for=condition=Established", f"crd/{crdgen.CRD_NAME}", "--timeout=60s")
    crd = json.loads(kubectl("get", "crd", crdgen.CRD_NAME, "-o", "json").stdout)
    assert "NonStructuralSchema" not in {c["type"] for c in crd["status"]["conditions"]}


@pytest.mark.e2e
def test_real_apiserver_prunes_and_defaults_inside_templates(
    kubectl: Callable[..., subprocess.CompletedProcess[str]],
) -> None:
    body = json.loads(_jobset("pruned"))
    rjob = body["spec"]["replicatedJobs"][0]
    rjob["template"]["spec"]["bogus"] = 1
    container = rjob["template"]["spec"]["template"]["spec"]["containers"][0]
    container["contaniers"] = "typo"
    container["ports"] = [{"containerPort": 80}]
    kubectl("create", "--validate=false", "-f", "-", stdin=json.dumps(body))
    got = json.loads(kubectl("get", "jobset", "pruned", "-o", "json").stdout)
    stored = got["spec"]["replicatedJobs"][0]
    assert (stored["replicas"], stored["groupName"]) == (1, "default")
    assert "bogus" not in stored["template"]["spec"]
    stored_container = stored["template"]["spec"]["template"]["spec"]["containers"][0]
    assert "contaniers" not in stored_container
    assert stored_container["ports"] == [{"containerPort": 80, "protocol": "TCP"}]


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            {
                "startupPolicy": {"startupPolicyOrder": "InOrder"},
                "replicatedJobs": [
                    {"name": "a", "template": {"spec": {"template": {"spec": {"containers": [{"name": "c"}]}}}}},
                    {
                        "name": "b",
                        "dependsOn": [{"name": "a", "status": "Ready"}],
                        "template": {"spec": {"template": {"spec": {"containers": [{"name": "c"}]}}}},
                    },
                ],
            },
            "StartupPolicy and DependsOn APIs are mutually exclusive",
        ),
        (
            {"volumeClaimPolicies": [{"templates": [{"metadata": {"name": "d", "namespace": "x"}}]}]},
            "namespace cannot be set for VolumeClaimPolicies templates",
        ),
    ],
)
def test_real_apiserver_enforces_the_cel_rules(
    kubectl: Callable[..., subprocess.CompletedProcess[str]], spec: JSON, message: str
) -> None:
    result = kubectl("create", "-f", "-", stdin=_jobset(f"cel-{uuid.uuid4().hex[:6]}", **spec), check=False)
    assert result.returncode != 0
    assert message in result.stderr


@pytest.mark.e2e
def test_real_apiserver_keeps_network_immutable_and_requires_wire_fields_in_status(
    kubectl: Callable[..., subprocess.CompletedProcess[str]],
) -> None:
    kubectl("create", "-f", "-", stdin=_jobset("immutable", network={"enableDNSHostnames": True}))
    patch = kubectl(
        "patch", "jobset", "immutable", "--type=merge", "-p", '{"spec":{"network":{"enableDNSHostnames":false}}}',
        check=False,
    )  # fmt: skip
    assert "Value is immutable" in patch.stderr
    partial = {"status": {"replicatedJobsStatus": [{"name": "a", "ready": 1}]}}
    status = kubectl(
        "patch", "jobset", "immutable", "--subresource=status", "--type=merge", "-p", json.dumps(partial), check=False
    )  # fmt: skip
    assert "status.replicatedJobsStatus[0].active: Required value" in status.stderr
