"""A local Kubernetes control plane (etcd, kube-apiserver, kube-controller-manager) for tests and laptops.

No kubelet and no scheduler: pods are created and stay Pending, which is all the operator's tests need to see
that Jobs, owner references, RBAC and service-account tokens behave as on a real cluster.
"""
