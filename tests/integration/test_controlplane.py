"""The local control plane is a real Kubernetes: controllers, scheduling, kwok nodes, RBAC, CRDs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from vigil.dev.cluster import ClusterInfo, LocalCluster, temporary_state_dir
from vigil.dev.process import StartError, free_port, pid_alive

from ..conftest import KubeHandle, wait_for



def test_deployment_becomes_available_on_kwok_nodes(kube: KubeHandle, namespace: str) -> None:
    apps = k8s.AppsV1Api(kube.api_client)
    core = k8s.CoreV1Api(kube.api_client)
    labels = {"app": "web"}
    apps.create_namespaced_deployment(namespace, k8s.V1Deployment(
        metadata=k8s.V1ObjectMeta(name="web"),
        spec=k8s.V1DeploymentSpec(
            replicas=3, selector=k8s.V1LabelSelector(match_labels=labels),
            template=k8s.V1PodTemplateSpec(
                metadata=k8s.V1ObjectMeta(labels=labels),
                spec=k8s.V1PodSpec(containers=[k8s.V1Container(name="web", image="example/web:1")]),
            ),
        ),
    ))
    rs = wait_for(lambda: apps.list_namespaced_replica_set(namespace).items, what="a ReplicaSet")
    assert rs[0].metadata.owner_references[0].name == "web"

    def pods_ready():
        pods = core.list_namespaced_pod(namespace, label_selector="app=web").items
        ready = [p for p in pods if p.spec.node_name and p.spec.node_name.startswith("kwok-node-")
                 and any(c.type == "Ready" and c.status == "True" for c in (p.status.conditions or []))]
        return len(ready) == 3 and ready

    pods = wait_for(pods_ready, what="3 Ready pods on kwok nodes")
    assert all(p.status.phase == "Running" for p in pods)

    def available():
        d = apps.read_namespaced_deployment("web", namespace)
        conds = {c.type: c.status for c in (d.status.conditions or [])}
        return conds.get("Available") == "True" and d.status.ready_replicas == 3

    wait_for(available, what="Deployment Available")

    core.create_namespaced_event(namespace, k8s.CoreV1Event(
        metadata=k8s.V1ObjectMeta(generate_name="web."),
        involved_object=k8s.V1ObjectReference(kind="Deployment", name="web", namespace=namespace),
        reason="Tested", message="hello from the test", type="Normal",
    ))
    events = core.list_namespaced_event(namespace, field_selector="involvedObject.name=web").items
    assert any(e.reason == "Tested" and e.message == "hello from the test" for e in events)

    # garbage collection: deleting the Deployment removes its ReplicaSet
    apps.delete_namespaced_deployment("web", namespace, propagation_policy="Foreground")
    wait_for(lambda: not apps.list_namespaced_replica_set(namespace).items, what="ReplicaSet garbage-collected")


def test_vigil_crd_instance_round_trips(kube: KubeHandle, namespace: str) -> None:
    custom = k8s.CustomObjectsApi(kube.api_client)
    body = {"apiVersion": "vigil.dev/v1alpha1", "kind": "RiskPolicy", "metadata": {"name": "p"},
            "spec": {"steps": [5, 20], "maxWeight": 20}}
    custom.create_namespaced_custom_object("vigil.dev", "v1alpha1", namespace, "riskpolicies", body)
    got = custom.get_namespaced_custom_object("vigil.dev", "v1alpha1", namespace, "riskpolicies", "p")
    assert got["spec"]["steps"] == [5, 20]
    assert got["spec"]["confidence"] == 0.95  # defaulted by the apiserver from the schema


def test_rbac_denies_a_serviceaccount_without_permissions(kube: KubeHandle, namespace: str) -> None:
    core = k8s.CoreV1Api(kube.api_client)
    core.create_namespaced_service_account(namespace, k8s.V1ServiceAccount(metadata=k8s.V1ObjectMeta(name="nobody")))
    with kube.client_as(namespace, "nobody") as nobody:
        with pytest.raises(ApiException) as err:
            k8s.CustomObjectsApi(nobody).list_namespaced_custom_object(
                "vigil.dev", "v1alpha1", namespace, "modeldeployments")
        assert err.value.status == 403
        # and the token is real: the same client may ask who it is
        review = k8s.AuthenticationV1Api(nobody).create_self_subject_review(k8s.V1SelfSubjectReview())
        assert review.status.user_info.username == f"system:serviceaccount:{namespace}:nobody"


def _httproute(weights: dict[str, int], mirror: str | None) -> dict:
    rule: dict = {"backendRefs": [{"name": n, "port": 80, "weight": w} for n, w in weights.items()]}
    if mirror:
        rule["filters"] = [{"type": "RequestMirror", "requestMirror": {"backendRef": {"name": mirror, "port": 80}, "percent": 50}}]
    return {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute", "metadata": {"name": "r"},
            "spec": {"parentRefs": [{"name": "gw"}], "rules": [rule]}}


def test_httproute_and_virtualservice_schemas_are_enforced(kube: KubeHandle, namespace: str) -> None:
    custom = k8s.CustomObjectsApi(kube.api_client)
    route = custom.create_namespaced_custom_object(
        "gateway.networking.k8s.io", "v1", namespace, "httproutes", _httproute({"a": 90, "b": 10}, "c"))
    assert route["spec"]["rules"][0]["filters"][0]["requestMirror"]["percent"] == 50
    bad = _httproute({"a": 90}, None)
    bad["metadata"]["name"] = "bad"
    bad["spec"]["rules"][0]["backendRefs"][0]["weight"] = -5
    with pytest.raises(ApiException) as err:
        custom.create_namespaced_custom_object("gateway.networking.k8s.io", "v1", namespace, "httproutes", bad)
    assert err.value.status == 422 and "weight" in err.value.body

    vs = {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService", "metadata": {"name": "vs"},
          "spec": {"hosts": ["m"], "http": [{
              "route": [{"destination": {"host": "a"}, "weight": 90}, {"destination": {"host": "b"}, "weight": 10}],
              "mirror": {"host": "c"}, "mirrorPercentage": {"value": 25.0}}]}}
    got = custom.create_namespaced_custom_object("networking.istio.io", "v1", namespace, "virtualservices", vs)
    assert got["spec"]["http"][0]["mirrorPercentage"]["value"] == 25.0
    vs_bad = {**vs, "metadata": {"name": "vs-bad"}, "spec": {"hosts": "not-a-list", "http": []}}
    with pytest.raises(ApiException) as err:
        custom.create_namespaced_custom_object("networking.istio.io", "v1", namespace, "virtualservices", vs_bad)
    assert err.value.status == 422 and "hosts" in err.value.body


def test_down_stops_every_process_and_removes_state() -> None:
    cluster = LocalCluster(name="vigil-down-test", state_dir=temporary_state_dir(), nodes=1)
    cluster.up()
    info = ClusterInfo.load(cluster.state_dir)
    assert info is not None and {"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok"} <= set(info.pids)
    pids = list(info.pids.values())
    cluster.down()
    assert not any(pid_alive(p) for p in pids)
    assert not cluster.state_dir.exists()


def test_a_killed_owner_leaves_no_process_behind() -> None:
    """A test run that crashes (SIGKILL) must not leave etcd or the apiserver running."""
    state_dir = temporary_state_dir()
    script = textwrap.dedent(f"""
        import sys, time
        from pathlib import Path
        from vigil.dev.cluster import LocalCluster
        LocalCluster(name="vigil-crash-test", state_dir=Path({str(state_dir)!r}), nodes=1).up()
        print("UP", flush=True)
        time.sleep(600)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "UP"
        info = ClusterInfo.load(state_dir)
        assert info is not None
        pids = list(info.pids.values())
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    wait_for(lambda: not any(pid_alive(p) for p in pids), timeout=15, what="children to die with their owner")
    from vigil.dev.cluster import reap_stale

    assert "vigil-crash-test" in reap_stale(state_dir.parent)
    assert not state_dir.exists()


def test_port_in_use_gives_a_one_line_error() -> None:
    import socket

    port = free_port()
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))
        s.listen()
        with pytest.raises(StartError) as err:
            LocalCluster(name="vigil-port-test", state_dir=temporary_state_dir(), apiserver_port=port).up()
    assert f"port {port}" in str(err.value) and "already in use" in str(err.value)
    assert "\n" not in str(err.value)
