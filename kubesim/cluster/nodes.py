"""Simulated nodes: how they look when created and how the fail annotation changes them.

Pure builders over JSON dicts. Node ``i`` (0-based) is named ``sim-node-<i>`` (zero-padded to 5 digits), sits
in node pool ``pool-<i // nodes_per_pool>`` (label ``cloud.google.com/gke-nodepool``) and in zone
``sim-zone-<a|b|c>`` chosen per pool, so every pool is inside one zone as on GKE, and in rack ``sim-rack-<pool>``
(label ``topology.kubernetes.io/rack``, the domain of topology-aware workload scheduling): one rack per pool.

Node contract: annotation ``sim.pyjobset.io/fail: "true"`` makes the node NotReady (Ready=False) and taints it
``node.kubernetes.io/not-ready`` (NoSchedule and NoExecute) as the node lifecycle controller does; removing the
annotation restores Ready=True and drops those taints. Invariant: ``node_status_for`` is a pure function of
(node, now) and returns ``None`` when the node already has the wanted status, so reacting to our own writes
never loops.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kubesim.util.jsonutil import clone
from kubesim.util.timefmt import rfc3339

JSON = dict[str, Any]

FAIL_ANNOTATION = "sim.pyjobset.io/fail"
NODEPOOL_LABEL = "cloud.google.com/gke-nodepool"
ZONE_LABEL = "topology.kubernetes.io/zone"
RACK_LABEL = "topology.kubernetes.io/rack"
HOSTNAME_LABEL = "kubernetes.io/hostname"
NOT_READY_TAINT = "node.kubernetes.io/not-ready"
ZONES = ("sim-zone-a", "sim-zone-b", "sim-zone-c")


@dataclass(frozen=True, slots=True)
class NodeShape:
    """Capacity of every simulated node (strings in Kubernetes quantity syntax)."""

    cpu: str = "96"
    memory: str = "768Gi"
    pods: str = "110"
    ephemeral_storage: str = "1Ti"
    gpus: int = 8


def node_name(index: int) -> str:
    return f"sim-node-{index:05d}"


def pool_name(index: int, nodes_per_pool: int) -> str:
    return f"pool-{index // max(1, nodes_per_pool)}"


def make_node(index: int, *, nodes_per_pool: int, shape: NodeShape, now: float) -> JSON:
    name = node_name(index)
    pool = index // max(1, nodes_per_pool)
    capacity = {
        "cpu": shape.cpu,
        "memory": shape.memory,
        "pods": shape.pods,
        "ephemeral-storage": shape.ephemeral_storage,
    }
    if shape.gpus > 0:
        capacity["nvidia.com/gpu"] = str(shape.gpus)
    ts = rfc3339(now)
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {
                "kubernetes.io/arch": "amd64",
                "kubernetes.io/os": "linux",
                HOSTNAME_LABEL: name,
                ZONE_LABEL: ZONES[pool % len(ZONES)],
                RACK_LABEL: f"sim-rack-{pool}",
                "topology.kubernetes.io/region": "sim-region",
                NODEPOOL_LABEL: f"pool-{pool}",
                "node.kubernetes.io/instance-type": "sim-standard",
            },
            "annotations": {"node.alpha.kubernetes.io/ttl": "0"},
        },
        "spec": {"podCIDR": f"10.{(index >> 8) & 255}.{index & 255}.0/24"},
        "status": {
            "capacity": capacity,
            "allocatable": dict(capacity),
            "conditions": _conditions(ready=True, ts=ts),
            "addresses": [
                {"type": "InternalIP", "address": f"10.128.{(index >> 8) & 255}.{index & 255}"},
                {"type": "Hostname", "address": name},
            ],
            "nodeInfo": {
                "architecture": "amd64",
                "operatingSystem": "linux",
                "kubeletVersion": "v1.33.0-sim",
                "kubeProxyVersion": "v1.33.0-sim",
                "containerRuntimeVersion": "sim://1.0",
                "osImage": "kubesim",
                "kernelVersion": "6.1.0-sim",
                "machineID": name,
                "systemUUID": name,
                "bootID": name,
            },
            "phase": "Running",
        },
    }


def _conditions(*, ready: bool, ts: str) -> list[JSON]:
    conds = [
        {
            "type": t,
            "status": "False",
            "reason": f"KubeletHasSufficient{what}" if t != "PIDPressure" else "KubeletHasSufficientPID",
            "message": msg,
            "lastHeartbeatTime": ts,
            "lastTransitionTime": ts,
        }
        for t, what, msg in (
            ("MemoryPressure", "Memory", "kubelet has sufficient memory available"),
            ("DiskPressure", "Disk", "kubelet has no disk pressure"),
            ("PIDPressure", "PID", "kubelet has sufficient PID available"),
        )
    ]
    conds.append(
        {
            "type": "Ready",
            "status": "True" if ready else "False",
            "reason": "KubeletReady" if ready else "KubeletNotReady",
            "message": "kubelet is posting ready status"
            if ready
            else "simulated node failure (sim.pyjobset.io/fail=true)",
            "lastHeartbeatTime": ts,
            "lastTransitionTime": ts,
        }
    )
    return conds


def node_failed(node: JSON) -> bool:
    return ((node.get("metadata") or {}).get("annotations") or {}).get(FAIL_ANNOTATION) == "true"


def node_ready(node: JSON) -> bool:
    for cond in (node.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            return bool(cond.get("status") == "True")
    return False


def desired_node(node: JSON, now: float) -> JSON | None:
    """The node with Ready and taints matching its fail annotation, or ``None`` if already so.

    Returns a new dict (the input is never changed); callers write both spec (taints) and status.
    """
    want_ready = not node_failed(node)
    taints = list((node.get("spec") or {}).get("taints") or [])
    has_taint = any(t.get("key") == NOT_READY_TAINT for t in taints)
    if node_ready(node) == want_ready and has_taint == (not want_ready):
        return None
    out = clone(node)
    ts = rfc3339(now)
    conds = out.setdefault("status", {}).setdefault("conditions", [])
    for cond in conds:
        if cond.get("type") == "Ready":
            new = _conditions(ready=want_ready, ts=ts)[-1]
            if cond.get("status") == new["status"]:
                new["lastTransitionTime"] = cond.get("lastTransitionTime", ts)
            cond.clear()
            cond.update(new)
            break
    else:
        conds.append(_conditions(ready=want_ready, ts=ts)[-1])
    kept = [t for t in taints if t.get("key") != NOT_READY_TAINT]
    if not want_ready:
        kept.append({"key": NOT_READY_TAINT, "effect": "NoSchedule", "timeAdded": ts})
        kept.append({"key": NOT_READY_TAINT, "effect": "NoExecute", "timeAdded": ts})
    spec = out.setdefault("spec", {})
    if kept:
        spec["taints"] = kept
    else:
        spec.pop("taints", None)
    return out
