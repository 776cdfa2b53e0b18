"""The watch cache on the real apiserver: what is created, changed and deleted shows in it, a
reconcile pass with the cache reads none of the cached kinds from the API, and a watch whose
resourceVersion the apiserver has forgotten (410 Gone, after etcd compaction and an apiserver
restart) is followed by a fresh list that misses nothing."""

from __future__ import annotations

import sys
import time
import traceback
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client as k8s
from vigil.api.names import GROUP, LABEL_MD, VERSION
from vigil.kube.cache import WatchCache
from vigil.kube.client import Kube, count_requests
from vigil.reconciler import Reconciler

from tests.doubles import passing_analyzer

from ..conftest import KubeHandle, wait_for

POLICY = {"steps": [50], "maxWeight": 50, "bakeTime": "1s", "analysisInterval": "1s", "minSamples": 1}


@pytest.fixture
def cache(kube: KubeHandle, namespace: str) -> Iterator[WatchCache]:
    started = WatchCache(kube.client_for(), namespaces=[namespace]).start()
    assert started.wait_synced(30), "the cache did not list"
    yield started
    started.stop()  # waits 5 s per informer; one blocked in a list or a watch's set-up ends when
    # that request returns (bounded by the client's timeouts), so a busy apiserver gets some time
    deadline = time.monotonic() + 30
    while any(i.alive for i in started.informers.values()) and time.monotonic() < deadline:
        time.sleep(0.2)
    alive = [i for i in started.informers.values() if i.alive]
    assert not alive, "an informer thread outlived stop(): " + "\n".join(
        f"{i.name}:\n{stack_of(i)}" for i in alive)


def stack_of(informer: Any) -> str:
    """Where a thread that should have stopped is blocked (for the failure message)."""
    thread = informer._thread
    frame = sys._current_frames().get(thread.ident) if thread is not None else None
    return "".join(traceback.format_stack(frame)) if frame is not None else "(no frame)"


def deployment(name: str, md: str | None, replicas: int = 0) -> k8s.V1Deployment:
    labels = {"app": name, **({LABEL_MD: md} if md else {})}
    return k8s.V1Deployment(
        metadata=k8s.V1ObjectMeta(name=name, labels=labels),
        spec=k8s.V1DeploymentSpec(
            replicas=replicas, selector=k8s.V1LabelSelector(match_labels={"app": name}),
            template=k8s.V1PodTemplateSpec(metadata=k8s.V1ObjectMeta(labels={"app": name}),
                                           spec=k8s.V1PodSpec(containers=[k8s.V1Container(name="c", image="x")]))))


def test_created_changed_and_deleted_objects_show_in_the_cache(kube: KubeHandle, namespace: str,
                                                               cache: WatchCache) -> None:
    apps, custom = k8s.AppsV1Api(kube.api_client), k8s.CustomObjectsApi(kube.api_client)
    deployments = cache.informers[("apps/v1", "Deployment", namespace)]
    policies = cache.informers[(f"{GROUP}/{VERSION}", "RiskPolicy", namespace)]

    apps.create_namespaced_deployment(namespace, deployment("owned", "m1"))
    apps.create_namespaced_deployment(namespace, deployment("foreign", None))
    custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "riskpolicies", {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "RiskPolicy", "metadata": {"name": "p"}, "spec": POLICY})
    wait_for(lambda: deployments.get(namespace, "owned") and policies.get(namespace, "p"), what="created objects")
    assert deployments.get(namespace, "foreign") is None, "a Deployment outside the selector was cached"

    apps.patch_namespaced_deployment("owned", namespace, {"spec": {"replicas": 3}})
    wait_for(lambda: (deployments.get(namespace, "owned") or {}).get("spec", {}).get("replicas") == 3,
             what="the change")

    apps.delete_namespaced_deployment("owned", namespace)
    custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, "riskpolicies", "p")
    wait_for(lambda: deployments.get(namespace, "owned") is None and policies.get(namespace, "p") is None,
             what="the deletes")


def md_body(name: str) -> dict[str, Any]:
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "ModelDeployment", "metadata": {"name": name},
            "spec": {"model": name, "version": "v1",
                     "artifact": {"uri": "s3://x", "digest": "sha256:" + "1" * 64},
                     "server": {"image": "s:1"}, "replicas": 1, "policyRef": {"name": "p"},
                     "traffic": {"router": "gatewayapi", "gatewayRef": {"name": "gw"}}}}


def test_a_pass_with_the_cache_reads_no_cached_kind_from_the_api(kube: KubeHandle, namespace: str,
                                                                 cache: WatchCache) -> None:
    custom = k8s.CustomObjectsApi(kube.api_client)
    custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "riskpolicies", {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "RiskPolicy", "metadata": {"name": "p"}, "spec": POLICY})
    custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "modeldeployments", md_body("m"))
    wait_for(lambda: cache.informer(f"{GROUP}/{VERSION}", "RiskPolicy", namespace).get(namespace, "p"),
             what="the policy in the cache")

    api = kube.client_for()
    requests = count_requests(api)
    reconciler = Reconciler(Kube(api, cache=cache), analyzer=passing_analyzer)

    def md() -> dict[str, Any]:
        return custom.get_namespaced_custom_object(GROUP, VERSION, namespace, "modeldeployments", "m")

    for _ in range(4):  # deploy v1: Deployments, Service and route written, status patched, then steady
        reconciler.reconcile(md())
    assert cache.informer("apps/v1", "Deployment", namespace).get(namespace, "m-v1") is not None, \
        "the pass's own write is in the cache at once"
    writes = [r for r in requests.requests if r[0] in ("PATCH", "POST", "PUT")]
    assert writes, "the passes wrote nothing: the test would prove nothing"
    for plural in ("deployments", "riskpolicies", "httproutes"):
        assert requests.reads_of(plural) == [], f"a pass read {plural} from the API: {requests.reads_of(plural)}"

    # the same passes without the cache do read them (so the count above can fail)
    requests.clear()
    plain = Reconciler(Kube(api), analyzer=passing_analyzer)
    plain.reconcile(md())
    assert requests.reads_of("deployments") and requests.reads_of("riskpolicies") and requests.reads_of("httproutes")


def test_a_forgotten_resource_version_is_answered_410_and_the_cache_lists_again(
        kube: KubeHandle, namespace: str, cache: WatchCache) -> None:
    """What a long-running cluster does to every informer: etcd compacts its history, the
    apiserver restarts, and the watch resumes from a resourceVersion nobody has any more."""
    custom, core = k8s.CustomObjectsApi(kube.api_client), k8s.CoreV1Api(kube.api_client)
    policies = cache.informers[(f"{GROUP}/{VERSION}", "RiskPolicy", namespace)]

    def create(name: str) -> None:
        custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "riskpolicies", {
            "apiVersion": f"{GROUP}/{VERSION}", "kind": "RiskPolicy", "metadata": {"name": name}, "spec": POLICY})

    create("before")
    wait_for(lambda: policies.get(namespace, "before"), what="the first policy in the cache")
    watched_from, lists, gone = policies.resource_version, policies.lists, policies.gone
    for i in range(5):  # history the informer never sees: its resourceVersion falls behind
        core.create_namespaced_config_map(namespace, k8s.V1ConfigMap(metadata=k8s.V1ObjectMeta(name=f"c{i}")))
    assert kube.cluster.compact_etcd() > int(watched_from)
    kube.cluster.restart_apiserver()  # drops the watch; the new watch cache starts after the compaction

    wait_for(lambda: policies.gone > gone and policies.lists > lists, timeout=90,
             what="a 410 answer and a fresh list")
    create("after")
    custom.patch_namespaced_custom_object(GROUP, VERSION, namespace, "riskpolicies", "before",
                                          {"spec": {"minSamples": 7}})
    wait_for(lambda: policies.get(namespace, "after")
             and (policies.get(namespace, "before") or {}).get("spec", {}).get("minSamples") == 7,
             timeout=60, what="changes after the re-list")
    assert int(policies.resource_version) > int(watched_from)
