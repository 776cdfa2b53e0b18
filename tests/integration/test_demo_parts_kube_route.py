"""The splitter follows HTTPRoute / VirtualService objects in the real local kube-apiserver.

Weights are written with the Kubernetes client, exactly as the operator's routers write
them; the splitter must pick each change up from its watch within about a second, and
real requests must follow.
"""

from __future__ import annotations

import json
import math
import time
import urllib.error
import urllib.request
from typing import Any, Iterator

import pytest
from kubernetes import client as k8s
from prometheus_client.parser import text_string_to_metric_families

from vigil.demo.processes import DemoProcesses
from vigil.dev.process import ManagedProcess

from ..conftest import KubeHandle

pytestmark = pytest.mark.integration

GATEWAY = ("gateway.networking.k8s.io", "v1", "httproutes")
ISTIO = ("networking.istio.io", "v1", "virtualservices")


def splitter_route(splitter: ManagedProcess) -> dict[str, Any]:
    with urllib.request.urlopen(splitter.url + "/_splitter/route", timeout=5) as response:
        return json.loads(response.read())


def wait_for_weights(splitter: ManagedProcess, weights: dict[str, int], timeout: float = 10.0) -> float:
    """Seconds until the splitter reports ``weights``."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if splitter_route(splitter)["weights"] == weights:
            return time.monotonic() - started
        time.sleep(0.05)
    raise AssertionError(f"splitter still at {splitter_route(splitter)} after {timeout}s, wanted {weights}")


def predict_status(splitter: ManagedProcess) -> int:
    request = urllib.request.Request(splitter.url + "/predict", data=b'{"row": 1}', method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def shadow_comparisons(server: ManagedProcess) -> float:
    with urllib.request.urlopen(server.url + "/metrics", timeout=5) as response:
        text = response.read().decode()
    return sum(s.value for f in text_string_to_metric_families(text) for s in f.samples
               if s.name == "vigil_model_shadow_comparisons_total")


def httproute(namespace: str, weights: dict[str, int], mirror: str | None = None) -> dict[str, Any]:
    rule: dict[str, Any] = {"backendRefs": [{"name": n, "port": 80, "weight": w} for n, w in weights.items()]}
    if mirror:
        rule["filters"] = [{"type": "RequestMirror", "requestMirror": {
            "backendRef": {"name": mirror, "port": 80}, "percent": 100}}]
    return {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
            "metadata": {"name": "iris", "namespace": namespace},
            "spec": {"parentRefs": [{"name": "demo-gateway"}], "rules": [rule]}}


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[DemoProcesses, dict[str, ManagedProcess]]]:
    with DemoProcesses(tmp_path_factory.mktemp("kube-route")) as procs:
        started = {
            "iris-v1": procs.start_model_server("iris", "v1", namespace="demo", wait=False),
            "iris-v2": procs.start_model_server("iris", "v2", namespace="demo", wait=False),
            "iris-v3": procs.start_model_server("iris", "v3", namespace="demo", wait=False,
                                                faults=["disagree:share=0.3"]),
        }
        for server in started.values():
            server.wait_ready(timeout=60)
        yield procs, started


def urls(started: dict[str, ManagedProcess]) -> dict[str, str]:
    return {name: server.url for name, server in started.items()}  # type: ignore[misc]


def test_httproute_weights_are_followed_and_changes_apply_within_a_second(
        kube: KubeHandle, namespace: str, servers: tuple[DemoProcesses, dict[str, ManagedProcess]]) -> None:
    procs, started = servers
    custom = k8s.CustomObjectsApi(kube.api_client)
    custom.create_namespaced_custom_object(*GATEWAY[:2], namespace, GATEWAY[2],
                                           httproute(namespace, {"iris-v1": 80, "iris-v2": 20}))
    splitter = procs.start_splitter(kubeconfig=kube.kubeconfig, kind="httproute", namespace=namespace,
                                    route="iris", backends=urls(started), name="split-httproute")
    try:
        wait_for_weights(splitter, {"iris-v1": 80, "iris-v2": 20})
        summary = procs.start_loadgen(splitter.url, rate=200, count=600, feedback_delay=(0, 0),
                                      name="load-httproute").wait_summary(120)
        share = summary["by_backend"].get("iris-v2", 0) / summary["sent"]
        assert abs(share - 0.2) < 3 * math.sqrt(0.2 * 0.8 / summary["sent"])

        # The operator moves the canary to 100% and adds a mirror: a patch, as its router does.
        custom.patch_namespaced_custom_object(*GATEWAY[:2], namespace, GATEWAY[2], "iris",
                                              httproute(namespace, {"iris-v1": 0, "iris-v2": 100}, "iris-v3"))
        latency = wait_for_weights(splitter, {"iris-v1": 0, "iris-v2": 100})
        print(f"HTTPRoute weight patch reached the splitter in {latency:.3f}s")
        assert latency < 2.0, f"weight change took {latency:.2f}s to reach the splitter"
        assert splitter_route(splitter)["mirrors"] == [{"backend": "iris-v3", "percent": 100.0}]
        summary = procs.start_loadgen(splitter.url, rate=200, count=100, feedback_delay=(0, 0),
                                      name="load-httproute-2").wait_summary(120)
        assert summary["by_backend"] == {"iris-v2": 100}

        # Deleting the route leaves nothing to route to, as a gateway would.
        custom.delete_namespaced_custom_object(*GATEWAY[:2], namespace, GATEWAY[2], "iris")
        wait_for_weights(splitter, {})
        assert predict_status(splitter) == 503
    finally:
        procs.stop(splitter)


def test_virtualservice_weights_and_mirror_are_followed(
        kube: KubeHandle, namespace: str, servers: tuple[DemoProcesses, dict[str, ManagedProcess]]) -> None:
    procs, started = servers
    custom = k8s.CustomObjectsApi(kube.api_client)
    body = {
        "apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
        "metadata": {"name": "iris", "namespace": namespace},
        "spec": {"hosts": ["iris"], "http": [{
            "route": [{"destination": {"host": "iris-v1"}, "weight": 100},
                      {"destination": {"host": f"iris-v2.{namespace}.svc.cluster.local"}, "weight": 0}],
            "mirror": {"host": "iris-v3"}, "mirrorPercentage": {"value": 50.0},
        }]},
    }
    custom.create_namespaced_custom_object(*ISTIO[:2], namespace, ISTIO[2], body)
    splitter = procs.start_splitter(kubeconfig=kube.kubeconfig, kind="virtualservice", namespace=namespace,
                                    route="iris", backends=urls(started), name="split-vs")
    try:
        wait_for_weights(splitter, {"iris-v1": 100, "iris-v2": 0})
        assert splitter_route(splitter)["mirrors"] == [{"backend": "iris-v3", "percent": 50.0}]
        before = shadow_comparisons(started["iris-v3"])
        summary = procs.start_loadgen(splitter.url, rate=200, count=400, feedback_delay=(0, 0),
                                      name="load-vs").wait_summary(120)
        assert summary["by_backend"] == {"iris-v1": 400}
        time.sleep(0.5)  # mirrored copies are sent after the answer; let the last ones land
        compared = shadow_comparisons(started["iris-v3"]) - before
        assert abs(compared - 200) < 3 * math.sqrt(400 * 0.25)

        body["spec"]["http"][0]["route"][0]["weight"] = 50
        body["spec"]["http"][0]["route"][1]["weight"] = 50
        custom.patch_namespaced_custom_object(*ISTIO[:2], namespace, ISTIO[2], "iris", body)
        assert wait_for_weights(splitter, {"iris-v1": 50, "iris-v2": 50}) < 2.0
    finally:
        procs.stop(splitter)
