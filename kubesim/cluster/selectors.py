"""Node and taint matching as Kubernetes defines it, over plain JSON dicts.

Pure functions, no I/O. Semantics follow the API types:
- ``metav1.LabelSelector``: see :func:`kubesim.util.selectors.match_label_selector` (one implementation).
- ``NodeSelector`` (required node affinity): terms are ORed, expressions inside a term ANDed; operators
  In, NotIn, Exists, DoesNotExist, Gt, Lt; ``matchFields`` supports ``metadata.name``; an empty term
  matches nothing.
- Taints/tolerations: a toleration with an empty key and operator Exists tolerates everything; an empty
  effect tolerates every effect; operator defaults to Equal.
- Equality selectors (``a=b,c==d,e!=f``) as used by the ``sim.pyjobset.io/fail-when`` annotation.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from kubesim.util.selectors import match_expression

JSON = dict[str, Any]


def match_node_selector_term(term: Mapping[str, Any], node_name: str, labels: Mapping[str, str]) -> bool:
    exprs = term.get("matchExpressions") or []
    fields = term.get("matchFields") or []
    if not exprs and not fields:
        return False
    if not all(match_expression(e, labels) for e in exprs):
        return False
    name_fields = {"metadata.name": node_name}
    return all(match_expression(f, name_fields) for f in fields)


def match_node_selector(selector: Mapping[str, Any], node_name: str, labels: Mapping[str, str]) -> bool:
    return any(match_node_selector_term(t, node_name, labels) for t in selector.get("nodeSelectorTerms") or [])


def tolerates(tolerations: Sequence[Mapping[str, Any]], taint: Mapping[str, Any]) -> bool:
    for tol in tolerations:
        effect = tol.get("effect") or ""
        if effect and effect != taint.get("effect"):
            continue
        op = tol.get("operator") or "Equal"
        key = tol.get("key") or ""
        if op == "Exists":
            if not key or key == taint.get("key"):
                return True
            continue
        if key == taint.get("key") and (tol.get("value") or "") == (taint.get("value") or ""):
            return True
    return False


def untolerated_taint(
    taints: Sequence[Mapping[str, Any]], tolerations: Sequence[Mapping[str, Any]]
) -> Mapping[str, Any] | None:
    """The first NoSchedule/NoExecute taint the tolerations do not cover (PreferNoSchedule never blocks)."""
    for taint in taints:
        if taint.get("effect") in ("NoSchedule", "NoExecute") and not tolerates(tolerations, taint):
            return taint
    return None


def parse_equality_selector(text: str) -> list[tuple[str, str, str]]:
    """Parse ``k=v,k2==v2,k3!=v3`` into ``(key, op, value)`` with op ``=`` or ``!=``; raises ValueError."""
    out: list[tuple[str, str, str]] = []
    for raw in text.split(","):
        part = raw.strip()
        if not part:
            continue
        if "!=" in part:
            key, value = part.split("!=", 1)
            op = "!="
        elif "==" in part:
            key, value = part.split("==", 1)
            op = "="
        elif "=" in part:
            key, value = part.split("=", 1)
            op = "="
        else:
            raise ValueError(f"not an equality requirement: {part!r}")
        key, value = key.strip(), value.strip()
        if not key:
            raise ValueError(f"empty key in {part!r}")
        out.append((key, op, value))
    return out


def match_equality_selector(requirements: list[tuple[str, str, str]], labels: Mapping[str, str]) -> bool:
    for key, op, value in requirements:
        if op == "=" and labels.get(key) != value:
            return False
        if op == "!=" and labels.get(key) == value:
            return False
    return True
