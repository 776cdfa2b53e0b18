"""The watch cache on the real apiserver: what is created, changed and deleted shows in it, and
a reconcile pass with the cache reads none of the cached kinds from the API.

The 410 re-list is tested with a scripted watch (tests/unit/test_kube_cache.py). A young test
apiserver answers a watch from resourceVersion 1 with a normal (empty) watch rather than 410
Expired, even after compacting etcd by hand; a cluster that has run for some minutes does
answer 410, and the informer then re-lists (seen by hand on the benchmark's cluster)."""

from __future__ import annotations

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
    started.stop()
    assert not any(i.alive for i in started.informers.values()), "an informer thread outlived stop()"


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
