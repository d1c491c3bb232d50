"""OpenAPI v3 structural-schema validation and ``x-kubernetes-validations`` CEL rules for custom resources.

Role: :class:`SchemaValidator` checks an object against one CRD version's ``openAPIV3Schema`` the way the
apiextensions apiserver does and returns 422 field causes with its wording: types (``x-kubernetes-int-or-string``,
``nullable``), ``required``, ``enum``, numeric bounds, string length and ``pattern``, item counts, list-map key
and set uniqueness (``x-kubernetes-list-type``), ``anyOf``/``allOf``/``oneOf``/``not`` type branches, and CEL
rules (via ``celpy``) with ``self``, transition rules with ``oldSelf`` (evaluated only when the old object has a
correlatable value), ``messageExpression``, ``reason`` and ``fieldPath``.

Invariants: validation ratchets like Kubernetes 1.30+: a subtree equal to its correlated old value is not
re-validated (so status writes do not re-run spec rules, and unchanged invalid data stays writable); CEL
programs are compiled once per schema node; a rule that fails to compile or errors at run time is reported as a
cause, never raised.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import celpy
from celpy.adapter import json_to_cel

from kubesim.util.errors import field_cause

JSON = dict[str, Any]
_MISSING = object()


def _shown_value(value: Any) -> str:
    """How kube-apiserver prints the value of a failed CEL rule: omitted for objects and arrays, Go ``%v`` for
    numbers and booleans, quoted for strings; followed by ``": "`` when shown."""
    if isinstance(value, dict | list):
        return ""
    if isinstance(value, bool):
        return f"{str(value).lower()}: "
    if isinstance(value, str):
        return f"{json.dumps(value, ensure_ascii=False)}: "
    if value is None:
        return "null: "
    return f"{value}: "


def _invalid(field: str, shown: object, complaint: str) -> JSON:
    """The apiextensions cause ``Invalid value: <shown>: <field> in body <complaint>`` (reason FieldValueInvalid)."""
    return field_cause("FieldValueInvalid", field, f"Invalid value: {shown}: {field} in body {complaint}")


def _type_name(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "null"


def _fmt(value: Any) -> str:
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return f'"{_type_name(value)}"'
    if value is None:
        return "null"
    return str(value)


def _type_ok(value: Any, schema: JSON) -> bool:
    if value is None:
        return bool(schema.get("nullable"))
    if schema.get("x-kubernetes-int-or-string"):
        return isinstance(value, int | str) and not isinstance(value, bool)
    want = schema.get("type")
    if not want:
        return True
    got = _type_name(value)
    if want == "number":
        return got in ("number", "integer")
    return bool(got == want)


class SchemaValidator:
    """Validates objects against one structural schema (root = the whole object)."""

    def __init__(self, schema: JSON) -> None:
        self.schema = schema
        self._env = celpy.Environment()
        self._programs: dict[tuple[int, int], Any] = {}
        self._patterns: dict[str, re.Pattern[str]] = {}

    def validate(self, obj: JSON, old: JSON | None) -> Iterator[JSON]:
        root = {k: v for k, v in obj.items() if k != "metadata"}
        old_root = {k: v for k, v in old.items() if k != "metadata"} if old is not None else _MISSING
        yield from self._node(root, old_root, self.schema, "", top=True)

    # ------------------------------------------------------------------------------------ walk

    def _node(self, value: Any, old: Any, schema: JSON, path: str, top: bool = False) -> Iterator[JSON]:
        if old is not _MISSING and value == old:
            return  # ratcheting: an unchanged value is not re-validated
        field = path or "<root>"
        if not _type_ok(value, schema):
            want = "integer or string" if schema.get("x-kubernetes-int-or-string") else schema.get("type")
            yield field_cause(
                "FieldValueTypeInvalid",
                field,
                f'Invalid value: {_fmt(value)}: {field} in body must be of type {want}: "{_type_name(value)}"',
            )
            return
        if value is None:
            return
        for key in ("allOf",):
            for sub in schema.get(key) or []:
                yield from self._node(value, _MISSING, dict(sub), path)
        for key in ("anyOf", "oneOf"):
            branches = schema.get(key) or []
            if branches and not any(
                _type_ok(value, b) and not list(self._node(value, _MISSING, b, path)) for b in branches
            ):
                yield _invalid(field, _fmt(value), f"must match {key}")
        if "enum" in schema and value not in schema["enum"]:
            supported = ", ".join(_fmt(e) for e in schema["enum"])
            yield field_cause(
                "FieldValueNotSupported", field, f"Unsupported value: {_fmt(value)}: supported values: {supported}"
            )
        if isinstance(value, int | float) and not isinstance(value, bool):
            yield from self._numeric(value, schema, field)
        if isinstance(value, str):
            yield from self._string(value, schema, field)
        if isinstance(value, list):
            yield from self._array(value, old, schema, path, field)
        if isinstance(value, dict):
            yield from self._object(value, old, schema, path, top)
        if schema.get("x-kubernetes-validations"):
            yield from self._rules(value, old, schema, path)

    def _numeric(self, value: float, schema: JSON, field: str) -> Iterator[JSON]:
        lo, hi = schema.get("minimum"), schema.get("maximum")
        if lo is not None:
            if schema.get("exclusiveMinimum") and value <= lo:
                yield _invalid(field, value, f"should be greater than {lo}")
            elif value < lo:
                yield _invalid(field, value, f"should be greater than or equal to {lo}")
        if hi is not None:
            if schema.get("exclusiveMaximum") and value >= hi:
                yield _invalid(field, value, f"should be less than {hi}")
            elif value > hi:
                yield _invalid(field, value, f"should be less than or equal to {hi}")
        if schema.get("format") == "int32" and isinstance(value, int) and not -(2**31) <= value < 2**31:
            yield _invalid(field, value, "should be a valid int32")

    def _string(self, value: str, schema: JSON, field: str) -> Iterator[JSON]:
        max_len, min_len = schema.get("maxLength"), schema.get("minLength")
        if max_len is not None and len(value) > max_len:
            yield field_cause("FieldValueTooLong", field, f"Too long: may not be more than {max_len} bytes")
        if min_len is not None and len(value) < min_len:
            yield _invalid(field, _fmt(value), f"should be at least {min_len} chars long")
        pattern = schema.get("pattern")
        if pattern:
            rx = self._patterns.get(pattern)
            if rx is None:
                rx = self._patterns[pattern] = re.compile(pattern)
            if not rx.search(value):
                yield _invalid(field, _fmt(value), f"should match '{pattern}'")

    def _array(self, value: list[Any], old: Any, schema: JSON, path: str, field: str) -> Iterator[JSON]:
        max_items, min_items = schema.get("maxItems"), schema.get("minItems")
        if max_items is not None and len(value) > max_items:
            yield field_cause(
                "FieldValueTooMany", field, f"Too many: {len(value)}: must have at most {max_items} items"
            )
        if min_items is not None and len(value) < min_items:
            yield _invalid(field, len(value), f"should have at least {min_items} items")
        list_type = schema.get("x-kubernetes-list-type")
        keys = schema.get("x-kubernetes-list-map-keys") or []
        old_by_key: dict[str, Any] = {}
        if list_type == "map" and keys:
            seen: set[str] = set()
            for i, item in enumerate(value):
                if not isinstance(item, dict):
                    continue
                ident = repr(tuple(item.get(k) for k in keys))
                if ident in seen:
                    desc = ", ".join(f'"{k}":{_fmt(item.get(k))}' for k in keys)
                    yield field_cause(
                        "FieldValueDuplicate", f"{path}[{i}]", f"Duplicate value: map[string]interface {{}}{{{desc}}}"
                    )
                seen.add(ident)
            if isinstance(old, list):
                for item in old:
                    if isinstance(item, dict):
                        old_by_key[repr(tuple(item.get(k) for k in keys))] = item
        elif list_type == "set":
            seen_vals: list[Any] = []
            for i, item in enumerate(value):
                if item in seen_vals:
                    yield field_cause("FieldValueDuplicate", f"{path}[{i}]", f"Duplicate value: {_fmt(item)}")
                seen_vals.append(item)
        items = schema.get("items")
        if isinstance(items, dict):
            for i, item in enumerate(value):
                old_item: Any = _MISSING
                if old_by_key and isinstance(item, dict):
                    old_item = old_by_key.get(repr(tuple(item.get(k) for k in keys)), _MISSING)
                yield from self._node(item, old_item, items, f"{path}[{i}]")

    def _object(self, value: JSON, old: Any, schema: JSON, path: str, top: bool) -> Iterator[JSON]:
        props = schema.get("properties") or {}
        for req in schema.get("required") or []:
            if req not in value:
                yield field_cause("FieldValueRequired", f"{path}.{req}" if path else req, "Required value")
        extra = schema.get("additionalProperties")
        old_map = old if isinstance(old, dict) else {}
        for name, item in value.items():
            if top and name in ("apiVersion", "kind"):
                continue
            sub = props.get(name)
            if sub is None and isinstance(extra, dict):
                sub = extra
            if sub is None:
                continue
            yield from self._node(item, old_map.get(name, _MISSING), sub, f"{path}.{name}" if path else name)

    # ------------------------------------------------------------------------------------ CEL

    def _program(self, schema: JSON, i: int, expr: str) -> Any:
        key = (id(schema), i)
        prog = self._programs.get(key)
        if prog is None:
            prog = self._programs[key] = self._env.program(self._env.compile(expr))
        return prog

    def _rules(self, value: Any, old: Any, schema: JSON, path: str) -> Iterator[JSON]:
        field = path or "<root>"
        self_cel = json_to_cel(value)
        old_cel = json_to_cel(old) if old is not _MISSING else None
        for i, rule in enumerate(schema.get("x-kubernetes-validations") or []):
            expr = str(rule.get("rule", ""))
            uses_old = "oldSelf" in expr
            if uses_old and old_cel is None and not rule.get("optionalOldSelf"):
                continue
            activation: dict[str, Any] = {"self": self_cel}
            if uses_old:
                activation["oldSelf"] = old_cel
            try:
                ok = bool(self._program(schema, i, expr).evaluate(activation))
                error = ""
            except Exception as exc:  # noqa: BLE001 - any CEL compile or evaluation error fails the rule
                ok, error = False, str(exc)
            if ok:
                continue
            message = str(rule.get("message") or f"failed rule: {expr}")
            if rule.get("messageExpression"):
                try:
                    message = str(self._program(schema, 1000 + i, rule["messageExpression"]).evaluate(activation))
                except Exception:  # noqa: BLE001 - fall back to the static message, as Kubernetes does
                    message = str(rule.get("message") or f"failed rule: {expr}")
            if error:
                message = f"{message}: rule evaluation error: {error}" if rule.get("message") else error
            target = field
            if rule.get("fieldPath"):
                target = f"{path}{rule['fieldPath']}" if path else str(rule["fieldPath"]).lstrip(".")
            reason = rule.get("reason") or "FieldValueInvalid"
            if reason == "FieldValueForbidden":
                yield field_cause(reason, target, f"Forbidden: {message}")
            elif reason == "FieldValueRequired":
                yield field_cause(reason, target, f"Required value: {message}")
            elif reason == "FieldValueDuplicate":
                yield field_cause(reason, target, f"Duplicate value: {message}")
            elif error:
                yield field_cause("FieldValueInvalid", target, f'Invalid value: "{_type_name(value)}": {message}')
            else:
                yield field_cause("FieldValueInvalid", target, f"Invalid value: {_shown_value(value)}{message}")
