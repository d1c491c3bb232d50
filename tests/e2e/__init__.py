"""End-to-end tier: the real Kubernetes control plane (etcd, kube-apiserver, controller-manager, scheduler, KWOK)."""
