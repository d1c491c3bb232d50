"""Label and field selectors with kube-apiserver's syntax and errors.

Role: parse ``labelSelector`` (``a=b``, ``a==b``, ``a!=b``, ``a in (x,y)``, ``a notin (x)``, ``a``, ``!a``,
``a>1``, ``a<1``) and ``fieldSelector`` (``f=v``, ``f==v``, ``f!=v``) query strings into matchers, and match a
``metav1.LabelSelector`` object (matchLabels/matchExpressions) -- the one implementation for eviction's
PodDisruptionBudgets, admission's ``objectSelector``/``namespaceSelector`` and the scheduler's affinity and
spread terms.

Invariants: parsing errors raise :class:`~kubesim.util.errors.ApiError` 400 BadRequest with the apiserver's wording;
matchers are pure functions of a labels dict (or an object for fields).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from kubesim.util.errors import ApiError, bad_request

JSON = dict[str, Any]
LabelMatcher = Callable[[dict[str, str]], bool]
Requirement = tuple[str, str, tuple[str, ...]]  # key, operator, values

_TOKEN = re.compile(r"\s*(!=|==|=|!|\(|\)|,|>|<|[^\s!=(),<>]+)")


def _tokens(text: str) -> list[str]:
    out: list[str] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m:
            break
        out.append(m.group(1))
        pos = m.end()
        while pos < len(text) and text[pos].isspace():
            pos += 1
    return out


def parse_label_selector(text: str | None) -> list[Requirement]:
    """Parse a label selector string into requirements. Empty or None selects everything."""
    if not text or not text.strip():
        return []
    toks = _tokens(text)
    reqs: list[Requirement] = []
    i = 0

    def err(msg: str) -> ApiError:
        return bad_request(f"unable to parse requirement: {msg}")

    while i < len(toks):
        tok = toks[i]
        if tok == "!":
            if i + 1 >= len(toks):
                raise err("found '', expected: identifier")
            reqs.append((toks[i + 1], "!", ()))
            i += 2
        else:
            key = tok
            if key in ("=", "==", "!=", "(", ")", ",", ">", "<"):
                raise err(f"found '{key}', expected: !, identifier, or 'end of string'")
            op = toks[i + 1] if i + 1 < len(toks) else ","
            if op == ",":
                reqs.append((key, "exists", ()))
                i += 1
            elif op in ("=", "==", "!="):
                val = toks[i + 2] if i + 2 < len(toks) and toks[i + 2] != "," else ""
                reqs.append((key, "!=" if op == "!=" else "=", (val,)))
                i += 3 if val else 2
            elif op in (">", "<"):
                if i + 2 >= len(toks):
                    raise err("found '', expected: integer")
                try:
                    int(toks[i + 2])
                except ValueError:
                    raise err(f"for 'Gt', 'Lt' operators, the value must be an integer: {toks[i + 2]}") from None
                reqs.append((key, op, (toks[i + 2],)))
                i += 3
            elif op in ("in", "notin"):
                if i + 2 >= len(toks) or toks[i + 2] != "(":
                    raise err("found '', expected: '('")
                j = i + 3
                vals: list[str] = []
                while j < len(toks) and toks[j] != ")":
                    if toks[j] != ",":
                        vals.append(toks[j])
                    j += 1
                if j >= len(toks):
                    raise err("found '', expected: ')'")
                reqs.append((key, op, tuple(vals) or ("",)))
                i = j + 1
            else:
                raise err(f"found '{op}', expected: in, notin, =, ==, !=, gt, lt")
        if i < len(toks):
            if toks[i] != ",":
                raise err(f"found '{toks[i]}', expected: ',' or 'end of string'")
            i += 1
    for key, _, _ in reqs:
        _check_key(key)
    return reqs


_KEY_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")


def _check_key(key: str) -> None:
    prefix, _, name = key.rpartition("/")
    if not name or len(name) > 63 or not _KEY_NAME.match(name) or len(prefix) > 253:
        raise bad_request(
            f'unable to parse requirement: invalid label key "{key}": name part must consist of '
            "alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric "
            "character"
        )


def match_requirements(reqs: list[Requirement], labels: dict[str, str] | None) -> bool:
    labels = labels or {}
    for key, op, vals in reqs:
        present = key in labels
        if op == "=":
            if not present or labels[key] != vals[0]:
                return False
        elif op == "!=":
            if present and labels[key] == vals[0]:
                return False
        elif op == "in":
            if not present or labels[key] not in vals:
                return False
        elif op == "notin":
            if present and labels[key] in vals:
                return False
        elif op == "exists":
            if not present:
                return False
        elif op == "!":
            if present:
                return False
        elif op in (">", "<"):
            if not present:
                return False
            try:
                have = int(labels[key])
            except ValueError:
                return False
            want = int(vals[0])
            if (op == ">" and not have > want) or (op == "<" and not have < want):
                return False
    return True


def label_matcher(text: str | None) -> LabelMatcher | None:
    """A matcher for a selector string, or None when it selects everything."""
    reqs = parse_label_selector(text)
    if not reqs:
        return None
    return lambda labels: match_requirements(reqs, labels)


def match_expression(expr: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    """One ``matchExpressions`` entry: In, NotIn, Exists, DoesNotExist (and Gt/Lt, which node selectors use);
    an unknown operator matches nothing (Kubernetes rejects such a selector)."""
    key = expr.get("key", "")
    op = expr.get("operator", "")
    values = expr.get("values") or []
    present = key in labels
    if op == "In":
        return present and labels[key] in values
    if op == "NotIn":
        return not present or labels[key] not in values
    if op == "Exists":
        return present
    if op == "DoesNotExist":
        return not present
    if op in ("Gt", "Lt"):
        if not present or len(values) != 1:
            return False
        try:
            have, want = int(labels[key]), int(values[0])
        except ValueError:
            return False
        return have > want if op == "Gt" else have < want
    return False


def match_label_selector(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """A ``metav1.LabelSelector`` as ``LabelSelectorAsSelector`` reads it: ``None`` matches nothing, ``{}``
    matches everything; ``matchLabels`` and ``matchExpressions`` are ANDed.

    Callers where an absent selector means "everything" (admission webhooks' ``objectSelector`` and
    ``namespaceSelector``, which the API defaults to ``{}``) test for ``None`` themselves.
    """
    if selector is None:
        return False
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    return all(match_expression(e, labels) for e in selector.get("matchExpressions") or [])


FieldReq = tuple[str, bool, str]  # field, equal?, value


def _unsupported_field(field: str, allowed: tuple[str, ...], kind: str, group: str) -> ApiError:
    """kube-apiserver words this per API group: legacy core conversions, batch's, and the generic one."""
    if group == "batch":
        return bad_request(f'field label "{field}" not supported for {kind}')
    if group == "" and len(allowed) > 2:
        return bad_request(f"field label not supported: {field}")
    only = ", ".join(f'"{a}"' for a in allowed)
    return bad_request(f'"{field}" is not a known field selector: only {only}')


def parse_field_selector(text: str | None, allowed: tuple[str, ...], kind_desc: str, group: str = "") -> list[FieldReq]:
    """Parse a field selector; fields outside ``allowed`` are a 400 like kube-apiserver's."""
    if not text or not text.strip():
        return []
    out: list[FieldReq] = []
    for raw_part in text.split(","):
        part = raw_part.strip()
        if not part:
            continue
        for op in ("!=", "==", "="):
            if op in part:
                field, _, value = part.partition(op)
                break
        else:
            raise bad_request(f"invalid selector: '{text}'; can't understand '{part}'")
        field = field.strip()
        if field not in allowed:
            raise _unsupported_field(field, allowed, kind_desc, group)
        out.append((field, op != "!=", value.strip()))
    return out


def field_value(obj: JSON, path: str) -> str:
    """The string value of a dotted field path (missing -> empty string, booleans lower-case)."""
    cur: Any = obj
    if path == "source" and isinstance(obj.get("source"), dict):
        return str(obj["source"].get("component", ""))
    for part in path.split("."):
        if not isinstance(cur, dict):
            return ""
        cur = cur.get(part)
    if cur is None:
        return ""
    if isinstance(cur, bool):
        return "true" if cur else "false"
    return str(cur)


def match_fields(reqs: list[FieldReq], obj: JSON) -> bool:
    for field, equal, value in reqs:
        have = field_value(obj, field)
        if (have == value) != equal:
            return False
    return True
