"""Istio VirtualService: route weights, and `mirror` + `mirrorPercentage` for shadow traffic.

`parse_virtualservice` is the one reader of a VirtualService: the router compares and records
what it returns (reduced to a split), and the demo's traffic splitter forwards by it.
"""

from __future__ import annotations

from typing import Any, Mapping

from vigil.routing.base import RouteObjectRouter, RouteTarget, Split
from vigil.routing.parsed import (
    BackendRef,
    Mirror,
    ParsedRoute,
    RouteParseError,
    WeightedBackend,
    first,
    percent,
    route_meta,
    weight,
)


def default_weight(destinations: int) -> int:
    """The weight Istio gives a destination whose `weight` is unset.

    Istio's VirtualService reference, HTTPRouteDestination.weight
    (istio.io/latest/docs/reference/config/networking/virtual-service/#HTTPRouteDestination;
    istio/api networking/v1alpha3/virtual_service.proto): "A destination will receive
    weight/(sum of all weights) requests. If there is only one destination in a rule, it will
    receive all traffic. Otherwise, if weight is 0, the destination will not receive any
    traffic." The field is a proto3 int32, so unset reads as 0: 100 (everything) for a lone
    destination, 0 when there are several.
    """
    return 100 if destinations == 1 else 0


def parse_virtualservice(obj: Mapping[str, Any]) -> ParsedRoute:
    """``spec.http[0].route[].weight`` and ``mirror``/``mirrorPercentage`` or ``mirrors``."""
    namespace, name, rv, generation = route_meta(obj)
    http = first((obj.get("spec") or {}).get("http"), "spec.http")
    routes = http.get("route") or []
    if not isinstance(routes, list):
        raise RouteParseError("spec.http[0].route is not a list")
    unset = default_weight(len(routes))
    backends = []
    for i, route in enumerate(routes):
        where = f"spec.http[0].route[{i}]"
        if not isinstance(route, Mapping):
            raise RouteParseError(f"{where} is not an object")
        ref = _ref(route.get("destination"), namespace, f"{where}.destination")
        backends.append(WeightedBackend(ref, weight(route.get("weight"), unset, where)))
    return ParsedRoute(
        backends=tuple(backends), mirrors=_mirrors(http, namespace),
        source=f"VirtualService {namespace}/{name}", resource_version=rv, generation=generation,
        namespace=namespace,
    )


def _ref(destination: Any, default_namespace: str | None, where: str) -> BackendRef:
    """Short name and namespace from ``svc``, ``svc.ns`` or ``svc.ns.svc.cluster.local``."""
    if not isinstance(destination, Mapping) or not isinstance(destination.get("host"), str):
        raise RouteParseError(f"{where}: a destination needs a host")
    parts = destination["host"].split(".")
    namespace = parts[1] if len(parts) > 1 else default_namespace
    return BackendRef(name=parts[0], namespace=namespace, subset=destination.get("subset") or None)


def _mirrors(http: Mapping[str, Any], namespace: str | None) -> tuple[Mirror, ...]:
    mirrors = []
    if http.get("mirror") is not None:
        ref = _ref(http["mirror"], namespace, "spec.http[0].mirror")
        share = 100.0
        if http.get("mirrorPercentage") is not None:
            share = percent((http["mirrorPercentage"] or {}).get("value", 100.0), "spec.http[0].mirrorPercentage")
        elif http.get("mirrorPercent") is not None:  # deprecated integer form
            share = percent(http["mirrorPercent"], "spec.http[0].mirrorPercent")
        mirrors.append(Mirror(ref, share))
    for i, item in enumerate(http.get("mirrors") or []):
        where = f"spec.http[0].mirrors[{i}]"
        ref = _ref((item or {}).get("destination"), namespace, f"{where}.destination")
        share = 100.0
        if item.get("percentage") is not None:
            share = percent((item["percentage"] or {}).get("value", 100.0), f"{where}.percentage")
        mirrors.append(Mirror(ref, share))
    return tuple(mirrors)


class IstioRouter(RouteObjectRouter):
    api_version = "networking.istio.io/v1"
    kind = "VirtualService"

    def route_spec(self, target: RouteTarget, split: Split) -> dict[str, Any]:
        http: dict[str, Any] = {
            "route": [
                {"destination": {"host": svc, "port": {"number": target.port}}, "weight": w}
                for svc, w in sorted(split.weights.items())
            ]
        }
        if split.mirror:
            http["mirror"] = {"host": split.mirror, "port": {"number": target.port}}
            http["mirrorPercentage"] = {"value": float(split.mirror_percent)}
        hosts = list(target.hostnames) or [target.route_name]
        spec: dict[str, Any] = {"hosts": hosts, "http": [http]}
        if target.gateway:
            name, ns = target.gateway
            spec["gateways"] = [f"{ns}/{name}" if ns else name]
        return spec

    def parse(self, route: Mapping[str, Any]) -> Split:
        return parse_virtualservice(route).split()
