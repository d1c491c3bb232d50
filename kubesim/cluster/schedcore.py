"""The simulated scheduler's cluster model and placement decision. No I/O; fed by the runtime.

``SchedulerState`` holds every node (allocatable, labels, taints, unschedulable) and every pod that occupies
one (bound and not terminal), with indexes that keep a placement cheap at 65k nodes and 100k pods:
node names by label ``(key, value)``, occupying pods by node and by label ``(key, value)``, and the required
anti-affinity terms of placed pods grouped by ``(topologyKey, domain)``.

Filters (the default scheduler's required predicates): schedulingGates (never reach here), node
unschedulable (unless tolerated), resource requests (cpu, memory, ephemeral-storage, extended resources
such as ``nvidia.com/gpu``, and the pod count), nodeSelector, required node affinity, taints with
NoSchedule/NoExecute, topology spread constraints with ``whenUnsatisfiable: DoNotSchedule`` (maxSkew over
the domains of eligible nodes), required inter-pod affinity and anti-affinity (with ``namespaces`` and
``namespaceSelector``), and existing pods' required anti-affinity against the incoming pod.
Placement: scanning from a rotating offset, the first ``NODES_TO_SCORE`` feasible nodes are scored by
LeastAllocated (cpu and memory, with the scheduler's non-zero defaults for pods without requests) and the
least allocated wins -- the default scheduler's sampling and main score, without the other plugins.
``unschedulable_message`` mimics the real "0/N nodes are available: ..." text.

Invariant: ``place`` never changes state; ``add_pod``/``remove_pod`` are the only mutators of occupancy.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from kubesim.cluster.quantity import parse_milli
from kubesim.cluster.selectors import match_node_selector, untolerated_taint
from kubesim.util.selectors import match_label_selector

JSON = dict[str, Any]
PodKey = tuple[str, str]

UNSCHEDULABLE_TAINT = {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}


NODES_TO_SCORE = 16
# The scheduler scores pods without requests as if they asked for 100m CPU and 200 MiB (non-zero defaults).
NONZERO_CPU = 100
NONZERO_MEMORY = 200 * 2**20 * 1000


def _allocated_fraction(info: NodeInfo) -> float:
    """LeastAllocated score input: mean of the requested fractions of cpu and memory."""
    cpu = info.requested.get("score-cpu", 0) / max(1, info.allocatable.get("cpu", 1))
    memory = info.requested.get("score-memory", 0) / max(1, info.allocatable.get("memory", 1))
    return (cpu + memory) / 2


def pod_requests(pod: Mapping[str, Any]) -> dict[str, int]:
    """Effective requests in milli-units: sum over containers, at least the max of init containers."""
    spec = pod.get("spec") or {}
    total: Counter[str] = Counter()
    for c in spec.get("containers") or []:
        res = c.get("resources") or {}
        merged = {**(res.get("limits") or {}), **(res.get("requests") or {})}
        for name, qty in merged.items():
            try:
                total[name] += parse_milli(qty)
            except ValueError:
                continue
    for c in spec.get("initContainers") or []:
        res = c.get("resources") or {}
        merged = {**(res.get("limits") or {}), **(res.get("requests") or {})}
        for name, qty in merged.items():
            try:
                total[name] = max(total[name], parse_milli(qty))
            except ValueError:
                continue
    for name, qty in (spec.get("overhead") or {}).items():
        try:
            total[name] += parse_milli(qty)
        except ValueError:
            continue
    total["pods"] += 1000
    out = dict(total)
    # Scoring-only pseudo-resources (never checked against allocatable: they are not in a node's allocatable).
    out["score-cpu"] = out.get("cpu") or NONZERO_CPU
    out["score-memory"] = out.get("memory") or NONZERO_MEMORY
    return out


@dataclass(slots=True)
class NodeInfo:
    name: str
    labels: dict[str, str]
    allocatable: dict[str, int]
    taints: list[JSON]
    unschedulable: bool
    requested: dict[str, int] = field(default_factory=dict)
    pods: set[PodKey] = field(default_factory=set)


@dataclass(frozen=True, slots=True)
class Term:
    """A required pod (anti-)affinity term resolved against the pod that carries it."""

    selector: JSON | None
    topology_key: str
    namespaces: frozenset[str]
    namespace_selector: JSON | None
    owner_namespace: str
    key: str

    def namespace_matches(self, namespace: str, ns_labels: Mapping[str, Mapping[str, str]]) -> bool:
        if namespace in self.namespaces:
            return True
        if self.namespace_selector is not None:
            return match_label_selector(self.namespace_selector, ns_labels.get(namespace, {}))
        return not self.namespaces and namespace == self.owner_namespace

    def matches(self, namespace: str, labels: Mapping[str, str], ns_labels: Mapping[str, Mapping[str, str]]) -> bool:
        return self.namespace_matches(namespace, ns_labels) and match_label_selector(self.selector, labels)


def _terms(pod: Mapping[str, Any], kind: str) -> list[Term]:
    affinity = ((pod.get("spec") or {}).get("affinity") or {}).get(kind) or {}
    ns = (pod.get("metadata") or {}).get("namespace", "default")
    out = []
    for raw in affinity.get("requiredDuringSchedulingIgnoredDuringExecution") or []:
        key = f"{ns}|{orjson.dumps(raw, option=orjson.OPT_SORT_KEYS).decode()}"
        term = _TERMS.get(key)
        if term is None:
            term = Term(
                selector=raw.get("labelSelector"),
                topology_key=raw.get("topologyKey", ""),
                namespaces=frozenset(raw.get("namespaces") or ()),
                namespace_selector=raw.get("namespaceSelector"),
                owner_namespace=ns,
                key=key,
            )
            if len(_TERMS) < 200_000:
                _TERMS[key] = term
        out.append(term)
    return out


# Pods of one Job carry identical terms: share one (immutable) Term per distinct term, and one requests dict
# per distinct request shape, so 100k placed pods do not hold 100k copies.
_TERMS: dict[str, Term] = {}
_REQUESTS: dict[tuple[tuple[str, int], ...], dict[str, int]] = {}


def _shared_requests(requests: dict[str, int]) -> dict[str, int]:
    key = tuple(sorted(requests.items()))
    found = _REQUESTS.get(key)
    if found is None:
        found = requests
        if len(_REQUESTS) < 10_000:
            _REQUESTS[key] = requests
    return found


@dataclass(slots=True)
class PlacedPod:
    key: PodKey
    node: str
    labels: dict[str, str]
    requests: dict[str, int]
    anti_terms: list[Term]


class SchedulerState:
    def __init__(self) -> None:
        self.nodes: dict[str, NodeInfo] = {}
        self.order: list[str] = []
        self._order_pos: dict[str, int] = {}
        self.by_label: dict[tuple[str, str], set[str]] = {}
        self.placed: dict[PodKey, PlacedPod] = {}
        self.pods_by_label: dict[tuple[str, str], set[PodKey]] = {}
        # (topologyKey, domain) -> term key -> (term, number of placed pods carrying it)
        self.anti: dict[tuple[str, str], dict[str, tuple[Term, int]]] = {}
        self.anti_topology_keys: Counter[str] = Counter()
        self.ns_labels: dict[str, dict[str, str]] = {}
        self._cursor = 0

    # ------------------------------------------------------------------ nodes

    def upsert_node(self, node: Mapping[str, Any]) -> None:
        md = node.get("metadata") or {}
        name = md.get("name", "")
        alloc: dict[str, int] = {}
        for res, qty in ((node.get("status") or {}).get("allocatable") or {}).items():
            try:
                alloc[res] = parse_milli(qty)
            except ValueError:
                continue
        spec = node.get("spec") or {}
        labels = dict(md.get("labels") or {})
        old = self.nodes.get(name)
        if old is not None:
            for item in old.labels.items():
                self.by_label.get(item, set()).discard(name)
            old.labels, old.allocatable = labels, alloc
            old.taints, old.unschedulable = list(spec.get("taints") or []), bool(spec.get("unschedulable"))
            info = old
        else:
            info = NodeInfo(name, labels, alloc, list(spec.get("taints") or []), bool(spec.get("unschedulable")))
            self.nodes[name] = info
            self._order_pos[name] = len(self.order)
            self.order.append(name)
        for item in labels.items():
            self.by_label.setdefault(item, set()).add(name)

    def remove_node(self, name: str) -> None:
        info = self.nodes.pop(name, None)
        if info is None:
            return
        for item in info.labels.items():
            self.by_label.get(item, set()).discard(name)
        pos = self._order_pos.pop(name)
        last = self.order.pop()
        if last != name:
            self.order[pos] = last
            self._order_pos[last] = pos

    # ------------------------------------------------------------------ pods

    def add_pod(self, key: PodKey, pod: Mapping[str, Any]) -> None:
        """Record ``pod`` (bound, not terminal) as occupying its node; idempotent."""
        node = (pod.get("spec") or {}).get("nodeName", "")
        if key in self.placed:
            if self.placed[key].node == node:
                return
            self.remove_pod(key)
        labels = dict((pod.get("metadata") or {}).get("labels") or {})
        placed = PlacedPod(key, node, labels, _shared_requests(pod_requests(pod)), _terms(pod, "podAntiAffinity"))
        self.placed[key] = placed
        info = self.nodes.get(node)
        if info is not None:
            req = info.requested
            for res, amount in placed.requests.items():
                req[res] = req.get(res, 0) + amount
            info.pods.add(key)
            for term in placed.anti_terms:
                dom = info.labels.get(term.topology_key)
                if dom is None:
                    continue
                group = self.anti.setdefault((term.topology_key, dom), {})
                prev = group.get(term.key)
                group[term.key] = (term, (prev[1] if prev else 0) + 1)
                self.anti_topology_keys[term.topology_key] += 1
        for item in labels.items():
            self.pods_by_label.setdefault(item, set()).add(key)

    def remove_pod(self, key: PodKey) -> None:
        placed = self.placed.pop(key, None)
        if placed is None:
            return
        info = self.nodes.get(placed.node)
        if info is not None:
            req = info.requested
            for res, amount in placed.requests.items():
                req[res] = req.get(res, 0) - amount
            info.pods.discard(key)
            for term in placed.anti_terms:
                dom = info.labels.get(term.topology_key)
                group = self.anti.get((term.topology_key, dom or ""))
                if group is None or term.key not in group:
                    continue
                t, n = group[term.key]
                if n <= 1:
                    del group[term.key]
                    if not group:
                        del self.anti[(term.topology_key, dom or "")]
                else:
                    group[term.key] = (t, n - 1)
                self.anti_topology_keys[term.topology_key] -= 1
        for item in placed.labels.items():
            pods = self.pods_by_label.get(item)
            if pods is not None:
                pods.discard(key)
                if not pods:
                    del self.pods_by_label[item]

    # ------------------------------------------------------------------ placement

    def _pods_matching(self, term: Term) -> Iterable[PlacedPod]:
        """Placed pods matching ``term`` (namespace and selector), using the label index when possible."""
        sel = term.selector
        if sel is None:
            return []
        candidates: set[PodKey] | None = None
        for item in (sel.get("matchLabels") or {}).items():
            found = self.pods_by_label.get(item, set())
            candidates = found if candidates is None or len(found) < len(candidates) else candidates
        for expr in sel.get("matchExpressions") or []:
            if expr.get("operator") == "In":
                found = set().union(
                    *(self.pods_by_label.get((expr["key"], v), set()) for v in expr.get("values") or [])
                )
                candidates = found if candidates is None or len(found) < len(candidates) else candidates
        pool: Iterable[PodKey] = candidates if candidates is not None else self.placed.keys()
        out = []
        for key in pool:
            placed = self.placed.get(key)
            if placed is not None and term.matches(key[0], placed.labels, self.ns_labels):
                out.append(placed)
        return out

    def _domain_has_match(self, term: Term, domain: str, cache: dict[tuple[str, str], bool]) -> bool:
        ck = (term.key, domain)
        hit = cache.get(ck)
        if hit is None:
            hit = False
            for node_name in self.by_label.get((term.topology_key, domain), ()):
                for key in self.nodes[node_name].pods:
                    placed = self.placed[key]
                    if term.matches(key[0], placed.labels, self.ns_labels):
                        hit = True
                        break
                if hit:
                    break
            cache[ck] = hit
        return hit

    def _spread_limits(
        self,
        pod: Mapping[str, Any],
        ns: str,
        labels: Mapping[str, str],
        node_selector: Mapping[str, str],
        required_nodes: Mapping[str, Any] | None,
    ) -> list[tuple[str, dict[str, bool]]]:
        """For each DoNotSchedule topology spread constraint: topologyKey -> {domain: may this pod go there}.

        Domains are those of nodes that pass the pod's nodeSelector and required node affinity (the default
        ``nodeAffinityPolicy: Honor``); skew = matching pods in a domain (plus this pod) minus the global minimum.
        """
        out: list[tuple[str, dict[str, bool]]] = []
        for raw in (pod.get("spec") or {}).get("topologySpreadConstraints") or []:
            if raw.get("whenUnsatisfiable", "DoNotSchedule") != "DoNotSchedule":
                continue
            tk = raw.get("topologyKey", "")
            selector = raw.get("labelSelector")
            counts: dict[str, int] = {}
            for info in self.nodes.values():
                dom = info.labels.get(tk)
                if dom is None or any(info.labels.get(k) != v for k, v in node_selector.items()):
                    continue
                if required_nodes is not None and not match_node_selector(required_nodes, info.name, info.labels):
                    continue
                counts.setdefault(dom, 0)
            term = Term(selector, tk, frozenset(), None, ns, "")
            for placed in self._pods_matching(term):
                node_info = self.nodes.get(placed.node)
                dom = node_info.labels.get(tk) if node_info is not None else None
                if dom is not None and dom in counts:
                    counts[dom] += 1
            if not counts:
                out.append((tk, {}))
                continue
            floor = min(counts.values())
            own = 1 if match_label_selector(selector, labels) else 0
            max_skew = int(raw.get("maxSkew", 1))
            out.append((tk, {dom: n + own - floor <= max_skew for dom, n in counts.items()}))
        return out

    def place(self, pod: Mapping[str, Any], *, explain: bool = True) -> tuple[str | None, str]:
        """(chosen node or None, reason text when None; "" when ``explain`` is false)."""
        spec = pod.get("spec") or {}
        md = pod.get("metadata") or {}
        ns = md.get("namespace", "default")
        labels = md.get("labels") or {}
        requests = pod_requests(pod)
        tolerations = list(spec.get("tolerations") or [])
        node_selector: dict[str, str] = spec.get("nodeSelector") or {}
        affinity = spec.get("affinity") or {}
        required_nodes = (affinity.get("nodeAffinity") or {}).get("requiredDuringSchedulingIgnoredDuringExecution")
        aff_terms = _terms(pod, "podAffinity")
        anti_terms = _terms(pod, "podAntiAffinity")

        candidates: set[str] | None = None
        for item in node_selector.items():
            found = self.by_label.get(item, set())
            candidates = found if candidates is None or len(found) < len(candidates) else candidates
        allowed_domains: list[tuple[str, set[str]]] = []
        if aff_terms:
            matched_any = False
            for term in aff_terms:
                doms: set[str] = set()
                for placed in self._pods_matching(term):
                    node_info = self.nodes.get(placed.node)
                    dom = node_info.labels.get(term.topology_key) if node_info is not None else None
                    if dom is not None:
                        doms.add(dom)
                if doms:
                    matched_any = True
                allowed_domains.append((term.topology_key, doms))
            if not matched_any and all(t.matches(ns, labels, self.ns_labels) for t in aff_terms):
                allowed_domains = []  # the first pod of a group that selects itself may go anywhere
            elif allowed_domains:
                tk, doms = min(allowed_domains, key=lambda td: len(td[1]))
                found_nodes: set[str] = set().union(*(self.by_label.get((tk, d), set()) for d in doms))
                if candidates is None or len(found_nodes) < len(candidates):
                    candidates = found_nodes

        cache: dict[tuple[str, str], bool] = {}
        spread = self._spread_limits(pod, ns, labels, node_selector, required_nodes)

        def fits(info: NodeInfo, reasons: Counter[str] | None) -> bool:
            def fail(reason: str) -> bool:
                if reasons is not None:
                    reasons[reason] += 1
                return False

            if info.unschedulable and untolerated_taint([UNSCHEDULABLE_TAINT], tolerations) is not None:
                return fail("node(s) were unschedulable")
            for key, value in node_selector.items():
                if info.labels.get(key) != value:
                    return fail("node(s) didn't match Pod's node affinity/selector")
            if required_nodes is not None and not match_node_selector(required_nodes, info.name, info.labels):
                return fail("node(s) didn't match Pod's node affinity/selector")
            taint = untolerated_taint(info.taints, tolerations)
            if taint is not None:
                tvalue = taint.get("value")
                text = f"{taint.get('key')}: {tvalue}" if tvalue else str(taint.get("key"))
                return fail(f"node(s) had untolerated taint {{{text}}}")
            for res, amount in requests.items():
                if res.startswith("score-"):
                    continue
                if amount and info.requested.get(res, 0) + amount > info.allocatable.get(res, 0):
                    if res == "pods":
                        return fail("Too many pods")
                    return fail(f"Insufficient {res}")
            for tk, limits in spread:
                dom = info.labels.get(tk)
                if dom is None or dom not in limits:
                    return fail("node(s) didn't match pod topology spread constraints (missing required label)")
                if not limits[dom]:
                    return fail("node(s) didn't match pod topology spread constraints")
            for tk, doms in allowed_domains:
                if info.labels.get(tk) not in doms:
                    return fail("node(s) didn't match pod affinity rules")
            for term in anti_terms:
                dom = info.labels.get(term.topology_key)
                if dom is not None and self._domain_has_match(term, dom, cache):
                    return fail("node(s) didn't match pod anti-affinity rules")
            for tk in [k for k, n in self.anti_topology_keys.items() if n > 0]:
                dom = info.labels.get(tk)
                if dom is None:
                    continue
                for term, _ in self.anti.get((tk, dom), {}).values():
                    if term.matches(ns, labels, self.ns_labels):
                        return fail("node(s) didn't satisfy existing pods anti-affinity rules")
            return True

        # Like the default scheduler: stop after a handful of feasible nodes, then take the least allocated one.
        feasible: list[NodeInfo] = []
        if candidates is not None:
            for name in sorted(candidates, key=lambda n: self._order_pos.get(n, 0)):
                info = self.nodes.get(name)
                if info is not None and fits(info, None):
                    feasible.append(info)
                    if len(feasible) >= NODES_TO_SCORE:
                        break
        else:
            n = len(self.order)
            for i in range(n):
                info = self.nodes[self.order[(self._cursor + i) % n]]
                if fits(info, None):
                    feasible.append(info)
                    if len(feasible) >= NODES_TO_SCORE:
                        self._cursor = (self._cursor + i + 1) % max(1, n)
                        break
        if feasible:
            return min(feasible, key=_allocated_fraction).name, ""
        return None, self.unschedulable_message(fits) if explain else ""

    def unschedulable_message(self, fits: Any) -> str:
        reasons: Counter[str] = Counter()
        for info in self.nodes.values():
            fits(info, reasons)
        total = len(self.nodes)
        if not reasons:
            return f"0/{total} nodes are available."
        parts = ", ".join(sorted(f"{n} {r}" for r, n in reasons.items()))  # kube-scheduler sorts "N reason"
        return (
            f"0/{total} nodes are available: {parts}. preemption: 0/{total} nodes are available: "
            f"{total} Preemption is not helpful for scheduling."
        )
