#!/usr/bin/env python3
"""Print N KWOK-managed fake Node manifests shaped exactly like kubesim's nodes (YAML on stdout).

Usage: ``scale_tests/kind/nodes.py --nodes 16 [--gpus-per-node 8] [--nodes-per-pool 4] | kubectl apply -f -``.
Names, labels and capacities come from ``kubesim.cluster.nodes.make_node``; the annotation
``kwok.x-k8s.io/node: fake`` hands each node to the in-cluster KWOK controller (its default
``--manage-nodes-with-annotation-selector``). Conditions are left to KWOK's Stages.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from kubesim.cluster import nodes as simnodes


def manifests(count: int, gpus: int, per_pool: int) -> list[dict[str, object]]:
    shape = simnodes.NodeShape(gpus=gpus)
    out: list[dict[str, object]] = []
    for i in range(count):
        node = simnodes.make_node(i, nodes_per_pool=per_pool, shape=shape, now=time.time())
        meta = dict(node["metadata"])
        meta["annotations"] = {**meta.get("annotations", {}), "kwok.x-k8s.io/node": "fake"}
        status = node.get("status", {})
        out.append(
            {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": meta,
                "spec": {},
                "status": {k: status[k] for k in ("capacity", "allocatable", "addresses", "nodeInfo") if k in status},
            }
        )
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=16)
    parser.add_argument("--gpus-per-node", type=int, default=8)
    parser.add_argument("--nodes-per-pool", type=int, default=4)
    args = parser.parse_args()
    sys.stdout.write(
        yaml.safe_dump_all(manifests(args.nodes, args.gpus_per_node, args.nodes_per_pool), sort_keys=False)
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
