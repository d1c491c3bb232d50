"""Realistic object generators for the benchmarks: JobSet child pods (~6.4 KB with managedFields), nodes, Jobs.

Role: give every benchmark the same workload shape, so figures are comparable across runs and against the
baselines measured beside them. Invariant: deterministic (seeded) output; nothing here measures anything.
"""

from __future__ import annotations

import random
from typing import Any

import orjson

JSON = dict[str, Any]


def pod(i: int, *, jobset: str = "train", rv: int = 1000, phase: str = "Running") -> JSON:
    job_index = i // 8
    job = f"{jobset}-workers-{job_index}"
    name = f"{job}-{i % 8}-{random.Random(i).randbytes(3).hex()[:5]}"
    labels = {
        "batch.kubernetes.io/controller-uid": f"uid-job-{job_index}",
        "batch.kubernetes.io/job-completion-index": str(i % 8),
        "batch.kubernetes.io/job-name": job,
        "controller-uid": f"uid-job-{job_index}",
        "job-name": job,
        "jobset.sigs.k8s.io/jobset-name": jobset,
        "jobset.sigs.k8s.io/jobset-uid": "uid-jobset",
        "jobset.sigs.k8s.io/replicatedjob-name": "workers",
        "jobset.sigs.k8s.io/restart-attempt": "0",
        "jobset.sigs.k8s.io/replicatedjob-replicas": "1875",
        "jobset.sigs.k8s.io/global-replicas": "1875",
        "jobset.sigs.k8s.io/job-index": str(job_index),
        "jobset.sigs.k8s.io/job-global-index": str(job_index),
        "jobset.sigs.k8s.io/job-key": f"{job_index:040x}",
        "jobset.sigs.k8s.io/group-name": "default",
        "jobset.sigs.k8s.io/group-replicas": "1875",
        "jobset.sigs.k8s.io/job-group-index": str(job_index),
    }
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "generateName": f"{job}-{i % 8}-",
            "namespace": "default",
            "uid": f"00000000-0000-0000-0000-{i:012d}",
            "resourceVersion": str(rv),
            "creationTimestamp": "2026-11-23T10:00:00Z",
            "labels": labels,
            "annotations": {**labels, "batch.kubernetes.io/job-completion-index": str(i % 8)},
            "ownerReferences": [
                {
                    "apiVersion": "batch/v1",
                    "kind": "Job",
                    "name": job,
                    "uid": f"uid-job-{job_index}",
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
            "finalizers": ["batch.kubernetes.io/job-tracking"],
            "managedFields": [
                {
                    "manager": "kube-controller-manager",
                    "operation": "Update",
                    "apiVersion": "v1",
                    "time": "2026-11-23T10:00:00Z",
                    "fieldsType": "FieldsV1",
                    "fieldsV1": {
                        "f:metadata": {
                            "f:labels": {f"f:{k}": {} for k in labels},
                            "f:ownerReferences": {'k:{"uid":"x"}': {}},
                        },
                        "f:spec": {"f:containers": {'k:{"name":"main"}': {".": {}, "f:image": {}}}},
                    },
                },
                {
                    "manager": "kubelet",
                    "operation": "Update",
                    "apiVersion": "v1",
                    "time": "2026-11-23T10:00:05Z",
                    "fieldsType": "FieldsV1",
                    "subresource": "status",
                    "fieldsV1": {"f:status": {"f:conditions": {}, "f:containerStatuses": {}, "f:phase": {}}},
                },
            ],
        },
        "spec": {
            "restartPolicy": "Never",
            "subdomain": jobset,
            "hostname": f"{job}-{i % 8}",
            "nodeName": f"node-{i % 65000}",
            "priority": 0,
            "schedulerName": "default-scheduler",
            "serviceAccountName": "default",
            "terminationGracePeriodSeconds": 30,
            "dnsPolicy": "ClusterFirst",
            "tolerations": [
                {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute"},
                {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute"},
            ],
            "containers": [
                {
                    "name": "main",
                    "image": "registry.example/trainer:v1.2.3",
                    "command": ["python", "-m", "train", "--config", "/etc/train/config.yaml"],
                    "env": [
                        {"name": "JOB_COMPLETION_INDEX", "valueFrom": {"fieldRef": {"fieldPath": "x"}}},
                        {"name": "MASTER_ADDR", "value": f"{jobset}-workers-0-0.{jobset}"},
                        {"name": "MASTER_PORT", "value": "29500"},
                    ],
                    "resources": {
                        "requests": {"cpu": "8", "memory": "64Gi", "nvidia.com/gpu": "8"},
                        "limits": {"nvidia.com/gpu": "8"},
                    },
                    "volumeMounts": [
                        {"name": "kube-api-access", "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"}
                    ],
                    "terminationMessagePath": "/dev/termination-log",
                    "imagePullPolicy": "IfNotPresent",
                }
            ],
            "volumes": [
                {"name": "kube-api-access", "projected": {"sources": [{"serviceAccountToken": {"path": "t"}}]}}
            ],
        },
        "status": {
            "phase": phase,
            "hostIP": "10.0.0.1",
            "podIP": f"10.1.{i // 250 % 250}.{i % 250}",
            "startTime": "2026-11-23T10:00:01Z",
            "qosClass": "Burstable",
            "conditions": [
                {"type": t, "status": "True", "lastTransitionTime": "2026-11-23T10:00:05Z"}
                for t in ("PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady", "PodScheduled")
            ],
            "containerStatuses": [
                {
                    "name": "main",
                    "ready": True,
                    "started": True,
                    "restartCount": 0,
                    "image": "registry.example/trainer:v1.2.3",
                    "imageID": "registry.example/trainer@sha256:" + "ab" * 32,
                    "containerID": "containerd://" + "cd" * 32,
                    "state": {"running": {"startedAt": "2026-11-23T10:00:04Z"}},
                }
            ],
        },
    }


def node(i: int, *, rv: int = 500) -> JSON:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": f"node-{i}",
            "uid": f"00000000-0000-0000-0001-{i:012d}",
            "resourceVersion": str(rv),
            "creationTimestamp": "2026-11-23T09:00:00Z",
            "labels": {
                "kubernetes.io/hostname": f"node-{i}",
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "topology.kubernetes.io/zone": f"zone-{i % 4}",
                "cloud.google.com/gke-nodepool": f"pool-{i // 16}",
                "node.kubernetes.io/instance-type": "a3-highgpu-8g",
            },
            "annotations": {"node.alpha.kubernetes.io/ttl": "0", "volumes.kubernetes.io/controller-managed": "true"},
        },
        "spec": {"podCIDR": f"10.{i // 250 % 250}.{i % 250}.0/24"},
        "status": {
            "capacity": {"cpu": "208", "memory": "1857Gi", "pods": "110", "nvidia.com/gpu": "8"},
            "allocatable": {"cpu": "207", "memory": "1800Gi", "pods": "110", "nvidia.com/gpu": "8"},
            "conditions": [
                {"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "kubelet is posting ready"},
                {"type": "MemoryPressure", "status": "False", "reason": "KubeletHasSufficientMemory"},
                {"type": "DiskPressure", "status": "False", "reason": "KubeletHasNoDiskPressure"},
            ],
            "nodeInfo": {"kubeletVersion": "v1.35.0", "osImage": "Container-Optimized OS", "architecture": "amd64"},
            "addresses": [{"type": "InternalIP", "address": f"10.0.{i // 250 % 250}.{i % 250}"}],
        },
    }


def job(i: int, *, jobset: str = "train", jobset_uid: str = "uid-jobset", rv: int = 800) -> JSON:
    name = f"{jobset}-workers-{i}"
    labels = {
        "jobset.sigs.k8s.io/jobset-name": jobset,
        "jobset.sigs.k8s.io/replicatedjob-name": "workers",
        "jobset.sigs.k8s.io/restart-attempt": "0",
        "jobset.sigs.k8s.io/job-index": str(i),
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": "default",
            "uid": f"uid-job-{i}",
            "resourceVersion": str(rv),
            "labels": labels,
            "annotations": labels,
            "ownerReferences": [
                {
                    "apiVersion": "jobset.x-k8s.io/v1alpha2",
                    "kind": "JobSet",
                    "name": jobset,
                    "uid": jobset_uid,
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": {
            "parallelism": 8,
            "completions": 8,
            "completionMode": "Indexed",
            "suspend": False,
            "template": {"metadata": {"labels": labels}, "spec": {"containers": [{"name": "main", "image": "x"}]}},
        },
        "status": {"active": 8, "ready": 8, "startTime": "2026-11-23T10:00:00Z"},
    }


def list_body(kind: str, items: list[JSON], rv: int, cont: str = "") -> bytes:
    return orjson.dumps(
        {
            "apiVersion": "v1",
            "kind": f"{kind}List",
            "metadata": {"resourceVersion": str(rv), "continue": cont},
            "items": items,
        }
    )


def watch_line(etype: str, obj: JSON) -> bytes:
    return orjson.dumps({"type": etype, "object": obj})


def indexed_jobset(name: str, replicas: int) -> JSON:
    """A JobSet of one replicated job of ``replicas`` single-pod Indexed Jobs with DNS hostnames (the create and
    restart benchmarks' workload, and the owner of the Jobs bench_kubesim posts)."""
    return {
        "apiVersion": "jobset.x-k8s.io/v1alpha2",
        "kind": "JobSet",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "network": {"enableDNSHostnames": True},
            "successPolicy": {"operator": "All"},
            "failurePolicy": {"maxRestarts": 5},
            "replicatedJobs": [
                {
                    "name": "w",
                    "replicas": replicas,
                    "template": {
                        "spec": {
                            "parallelism": 1,
                            "completions": 1,
                            "completionMode": "Indexed",
                            "template": {
                                "spec": {"restartPolicy": "Never", "containers": [{"name": "m", "image": "x"}]}
                            },
                        }
                    },
                }
            ],
        },
    }
