"""Each router writes a route its own parser reads back exactly, follows its backend's documented
defaults, refuses routes it does not own, and notices routes changed behind its back."""

from __future__ import annotations

import json
from typing import Any

import pytest

from vigil.api.names import ANN_APPLIED, LABEL_MANAGED
from vigil.core.model import TrafficSplit
from vigil.routing.base import RouteTarget
from vigil.routing.gatewayapi import GatewayApiRouter, parse_httproute
from vigil.routing.istio import IstioRouter, default_weight, parse_virtualservice
from vigil.routing.parsed import BackendRef, RouteParseError
from vigil.routing.replicas import ReplicaRouter, replica_split

MD = {"apiVersion": "vigil.dev/v1alpha1", "kind": "ModelDeployment",
      "metadata": {"name": "fraud", "namespace": "demo", "uid": "uid-1"}}


class FakeKube:
    """The three calls routers make: get, apply (server-side, so: store), list."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str, str, str], dict[str, Any]] = {}
        self.deployments: list[dict[str, Any]] = []

    def get(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        found = self.objects.get((api_version, kind, namespace, name))
        return json.loads(json.dumps(found)) if found is not None else None

    def apply(self, body: dict[str, Any]) -> None:
        meta = body["metadata"]
        self.objects[(body["apiVersion"], body["kind"], meta["namespace"], meta["name"])] = json.loads(json.dumps(body))

    def list(self, api_version: str, kind: str, namespace: str, selector: str) -> list[dict[str, Any]]:
        return self.deployments


def target(**extra: Any) -> RouteTarget:
    return RouteTarget(md=MD, route_name="fraud", port=8080, **extra)


SPLITS = [
    TrafficSplit({"fraud-v1": 100}),
    TrafficSplit({"fraud-v1": 100}, "fraud-v2", 100),
    TrafficSplit({"fraud-v1": 75, "fraud-v2": 25}),
    TrafficSplit({"fraud-v1": 50, "fraud-v2": 50}, "fraud-v3", 10),
]


# --- render, then parse: the same split comes back ----------------------------------------


@pytest.mark.parametrize("router_cls", [GatewayApiRouter, IstioRouter])
@pytest.mark.parametrize("split", SPLITS, ids=lambda s: s.as_json())
def test_render_then_parse_round_trips(router_cls: type, split: TrafficSplit[str]) -> None:
    kube = FakeKube()
    router = router_cls(kube)
    router.apply(target(gateway=("gw", "infra"), hostnames=("fraud.example.com",)), split)
    (route,) = kube.objects.values()
    assert router.parse(route) == split
    read = router.read(target())
    assert read.split == split and read.problem is None


def test_gatewayapi_render_shape() -> None:
    spec = GatewayApiRouter(FakeKube()).route_spec(target(gateway=("gw", None), hostnames=("a.example",)),
                                                   TrafficSplit({"b": 10, "a": 90}, "c", 50))
    assert spec["parentRefs"] == [{"name": "gw"}] and spec["hostnames"] == ["a.example"]
    rule = spec["rules"][0]
    assert [b["name"] for b in rule["backendRefs"]] == ["a", "b"]  # sorted: a stable diff
    assert rule["filters"] == [{"type": "RequestMirror",
                                "requestMirror": {"backendRef": {"name": "c", "port": 8080}, "percent": 50}}]


def test_istio_render_shape() -> None:
    spec = IstioRouter(FakeKube()).route_spec(target(gateway=("gw", "infra")), TrafficSplit({"a": 100}, "b", 5))
    assert spec["hosts"] == ["fraud"] and spec["gateways"] == ["infra/gw"]
    http = spec["http"][0]
    assert http["route"] == [{"destination": {"host": "a", "port": {"number": 8080}}, "weight": 100}]
    assert http["mirror"] == {"host": "b", "port": {"number": 8080}} and http["mirrorPercentage"] == {"value": 5.0}


# --- each backend's documented defaults ------------------------------------------------------


def vs(routes: list[dict[str, Any]], **http: Any) -> dict[str, Any]:
    return {"metadata": {"name": "fraud", "namespace": "demo"},
            "spec": {"hosts": ["fraud"], "http": [{"route": routes, **http}]}}


def test_istio_unset_weight_is_100_only_for_a_lone_destination() -> None:
    """Istio: "If there is only one destination in a rule, it will receive all traffic.
    Otherwise, if weight is 0, the destination will not receive any traffic" (unset = 0)."""
    assert (default_weight(1), default_weight(2), default_weight(3)) == (100, 0, 0)
    router = IstioRouter(FakeKube())
    assert router.parse(vs([{"destination": {"host": "fraud-v1"}}])) == TrafficSplit({"fraud-v1": 100})
    two = vs([{"destination": {"host": "fraud-v1"}, "weight": 100}, {"destination": {"host": "fraud-v2"}}])
    assert router.parse(two) == TrafficSplit({"fraud-v1": 100})  # not {v1: 100, v2: 100}
    assert parse_virtualservice(two).weights() == {"fraud-v1": 100, "fraud-v2": 0}
    none_set = vs([{"destination": {"host": "a"}}, {"destination": {"host": "b"}}])
    assert router.parse(none_set) == TrafficSplit({})


def test_istio_hosts_and_mirror_default() -> None:
    route = vs([{"destination": {"host": "fraud-v1.demo.svc.cluster.local"}, "weight": 90},
                {"destination": {"host": "fraud-v2.other"}, "weight": 10}], mirror={"host": "fraud-v3"})
    # a Service beside the route is keyed by its name; one elsewhere keeps its namespace
    assert IstioRouter(FakeKube()).parse(route) == TrafficSplit({"fraud-v1": 90, "other/fraud-v2": 10}, "fraud-v3", 100)


def test_gatewayapi_unset_weight_is_1_and_mirror_fraction() -> None:
    route = {"metadata": {"name": "fraud", "namespace": "demo"}, "spec": {"rules": [{
        "backendRefs": [{"name": "a"}, {"name": "b", "weight": 0}, {"name": "c", "namespace": "demo"}],
        "filters": [{"type": "RequestMirror", "requestMirror": {
            "backendRef": {"name": "m"}, "fraction": {"numerator": 1, "denominator": 4}}}]}]}}
    assert GatewayApiRouter(FakeKube()).parse(route) == TrafficSplit({"a": 1, "c": 1}, "m", 25)
    assert parse_httproute(route).backends[2].ref == BackendRef("c", "demo")


# --- ownership and tampering -----------------------------------------------------------------


@pytest.mark.parametrize("router_cls", [GatewayApiRouter, IstioRouter])
def test_a_route_vigil_does_not_own_is_refused(router_cls: type) -> None:
    kube = FakeKube()
    router = router_cls(kube)
    router.apply(target(), TrafficSplit({"fraud-v1": 100}))
    (key,) = kube.objects
    kube.objects[key]["metadata"]["labels"][LABEL_MANAGED] = "someone-else"
    read = router.read(target())
    assert read.split is None and "not managed by this ModelDeployment" in (read.problem or "")


def test_a_route_changed_behind_vigils_back_is_reported() -> None:
    kube = FakeKube()
    router = IstioRouter(kube)
    router.apply(target(), TrafficSplit({"fraud-v1": 90, "fraud-v2": 10}))
    (key,) = kube.objects
    del kube.objects[key]["spec"]["http"][0]["route"][1]["weight"]  # unset: 0 for Istio, not 100
    read = router.read(target())
    assert read.split == TrafficSplit({"fraud-v1": 90})
    assert "changed outside Vigil" in (read.problem or "")
    assert json.loads(kube.objects[key]["metadata"]["annotations"][ANN_APPLIED])["weights"] == {
        "fraud-v1": 90, "fraud-v2": 10}


def test_an_unreadable_route_is_a_problem_not_a_crash() -> None:
    kube = FakeKube()
    router = GatewayApiRouter(kube)
    router.apply(target(), TrafficSplit({"fraud-v1": 100}))
    (key,) = kube.objects
    kube.objects[key]["spec"]["rules"] = []
    read = router.read(target())
    assert read.split is None and "spec.rules is missing or empty" in (read.problem or "")
    with pytest.raises(RouteParseError):
        router.parse(kube.objects[key])


def test_no_route_yet() -> None:
    read = GatewayApiRouter(FakeKube()).read(target())
    assert read.split is None and read.problem is None


# --- replicas --------------------------------------------------------------------------------


@pytest.mark.parametrize("total, weights, expected", [
    (10, {"a": 90, "b": 10}, {"a": 9, "b": 1}),
    (4, {"a": 75, "b": 25}, {"a": 3, "b": 1}),
    (2, {"a": 90, "b": 10}, {"a": 1, "b": 1}),  # every weighted Service keeps a pod
    (1, {"a": 50, "b": 50}, {"a": 1, "b": 1}),
    (3, {"a": 100, "b": 0}, {"a": 3}),
    (5, {}, {}),
])
def test_replica_split(total: int, weights: dict[str, int], expected: dict[str, int]) -> None:
    assert replica_split(total, weights) == expected


def test_replica_router_reads_ready_pods_and_scales() -> None:
    kube = FakeKube()
    kube.deployments = [{"metadata": {"name": "fraud-v1"}, "status": {"readyReplicas": 3}},
                        {"metadata": {"name": "fraud-v2"}, "status": {"readyReplicas": 1}},
                        {"metadata": {"name": "fraud-v0"}, "status": {}}]
    router = ReplicaRouter(kube)  # type: ignore[arg-type]
    assert router.approximate
    assert router.read(target()).split == TrafficSplit({"fraud-v1": 75, "fraud-v2": 25})
    assert router.replicas(target(replicas=4), TrafficSplit({"fraud-v1": 75, "fraud-v2": 25})) == {
        "fraud-v1": 3, "fraud-v2": 1}
    router.apply(target(), TrafficSplit({"fraud-v1": 100}))  # nothing to write
    assert kube.objects == {}
    kube.deployments = []
    assert router.read(target()).split is None
