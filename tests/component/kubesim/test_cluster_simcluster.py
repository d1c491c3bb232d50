"""The in-cluster half plugged into ``kubesim.SimCluster`` through the ``kubesim.cluster.start`` hook."""

from __future__ import annotations

import kubesim


async def test_sim_cluster_starts_nodes_and_runs_a_job_to_completion() -> None:
    async with kubesim.SimCluster(nodes=3, gpus_per_node=2, nodes_per_pool=2) as sim:
        nodes = await sim.store.list("nodes")
        assert [n["metadata"]["name"] for n in nodes] == ["sim-node-00000", "sim-node-00001", "sim-node-00002"]
        assert nodes[0]["status"]["allocatable"]["nvidia.com/gpu"] == "2"
        pools = {n["metadata"]["labels"]["cloud.google.com/gke-nodepool"] for n in nodes}
        assert pools == {"pool-0", "pool-1"}

        stream = sim.store.watch("jobs.batch", "default")
        async with stream:
            await sim.store.create(
                "jobs.batch",
                {
                    "apiVersion": "batch/v1",
                    "kind": "Job",
                    "metadata": {"name": "quick", "namespace": "default"},
                    "spec": {
                        "completionMode": "Indexed",
                        "completions": 2,
                        "parallelism": 2,
                        "template": {
                            "metadata": {"annotations": {"sim.pyjobset.io/run-seconds": "0"}},
                            "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "i"}]},
                        },
                    },
                },
            )
            async for _, job in stream:
                conds = {c["type"]: c["status"] for c in (job.get("status") or {}).get("conditions") or []}
                if conds.get("Complete") == "True":
                    break
        assert job["status"]["succeeded"] == 2
        assert job["status"]["completedIndexes"] == "0,1"
