"""A local, real control plane for development, tests and the demo.

`LocalCluster` runs etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok
as local processes built from the Kubernetes Go modules (see hack/controlplane/build.sh).
Prometheus lives in `vigil.dev.prometheus`.
"""
