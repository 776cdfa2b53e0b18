"""What the operator's ServiceAccount may write, enforced by the chart's ValidatingAdmissionPolicy
on the real apiserver: RBAC alone (cluster-wide mode) would let a stolen operator token run pods
in kube-system; the policy allows only workloads controlled by a ModelDeployment, outside the
protected namespaces."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from vigil.api.names import API_VERSION

from ..conftest import KubeHandle, wait_for
from .test_admission_policy import refusal, render


def deployment(name: str, owner_uid: str | None) -> dict:
    meta: dict = {"name": name, "labels": {"app": name}}
    if owner_uid:
        meta["ownerReferences"] = [{"apiVersion": API_VERSION, "kind": "ModelDeployment", "name": "fraud",
                                    "uid": owner_uid, "controller": True}]
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta,
            "spec": {"replicas": 0, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": "c", "image": "example/x:1"}]}}}}


@pytest.fixture
def operator_ns(kube: KubeHandle, tmp_path: Path) -> Iterator[str]:
    """A release namespace with the operator's ServiceAccount, a cluster-wide right to write
    Deployments (as the chart's cluster-wide mode gives), and the chart's policy in force."""
    ns = f"wl-{uuid.uuid4().hex[:8]}"
    core, rbac = k8s.CoreV1Api(kube.api_client), k8s.RbacAuthorizationV1Api(kube.api_client)
    core.create_namespace(k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name=ns)))
    core.create_namespaced_service_account(ns, {"metadata": {"name": "vigil-operator"}})
    rbac.create_cluster_role({"metadata": {"name": ns}, "rules": [
        {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get", "create", "patch"]}]})
    rbac.create_cluster_role_binding({"metadata": {"name": ns},
                                      "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": ns},
                                      "subjects": [{"kind": "ServiceAccount", "name": "vigil-operator", "namespace": ns}]})
    manifest = render(kube, "workload-admission.yaml", {"admission": {"workloads": {"policyName": ns}}}, ns, tmp_path)
    kube.kubectl("apply", "-f", "-", input=manifest)
    try:
        yield ns
    finally:
        kube.kubectl("delete", "-f", "-", "--ignore-not-found", input=manifest)
        rbac.delete_cluster_role_binding(ns)
        rbac.delete_cluster_role(ns)
        core.delete_namespace(ns)


def test_the_operator_writes_only_modeldeployment_workloads_outside_protected_namespaces(
        kube: KubeHandle, operator_ns: str, namespace: str) -> None:
    apps = k8s.AppsV1Api(kube.client_as(operator_ns, "vigil-operator"))
    owner = str(uuid.uuid4())

    def in_force() -> bool:
        try:
            apps.create_namespaced_deployment("kube-system", deployment("probe", owner), dry_run="All")
        except ApiException as err:
            return err.status == 403 and "protected namespace" in err.body
        return False

    wait_for(in_force, timeout=30, what="the workload policy in force")
    message = refusal(lambda: apps.create_namespaced_deployment("kube-system", deployment("miner", owner)))
    assert "kube-system" in message and "protected namespace" in message
    message = refusal(lambda: apps.create_namespaced_deployment(namespace, deployment("stray", None)))
    assert "controlled by a ModelDeployment" in message
    # what the operator really writes (a ModelDeployment's workload) goes through
    apps.create_namespaced_deployment(namespace, deployment("fraud-v1", owner), dry_run="All")
    # the policy binds the operator only: an administrator is not limited by it
    k8s.AppsV1Api(kube.api_client).create_namespaced_deployment(namespace, deployment("by-admin", None), dry_run="All")
