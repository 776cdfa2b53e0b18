"""Gateway API HTTPRoute: backendRefs weights, and a RequestMirror filter for shadow traffic.

`parse_httproute` is the one reader of an HTTPRoute: the router compares and records what it
returns (reduced to a split), and the demo's traffic splitter forwards by it.
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

DEFAULT_WEIGHT = 1
"""Gateway API: "If unspecified, weight defaults to 1" (HTTPBackendRef.weight)."""


def parse_httproute(obj: Mapping[str, Any]) -> ParsedRoute:
    """``spec.rules[0].backendRefs[].weight`` (default 1) and RequestMirror filters."""
    namespace, name, rv, generation = route_meta(obj)
    rule = first((obj.get("spec") or {}).get("rules"), "spec.rules")
    refs = rule.get("backendRefs") or []
    if not isinstance(refs, list):
        raise RouteParseError("spec.rules[0].backendRefs is not a list")
    backends = []
    for i, ref in enumerate(refs):
        where = f"spec.rules[0].backendRefs[{i}]"
        backends.append(WeightedBackend(_ref(ref, namespace, where), weight(
            ref.get("weight") if isinstance(ref, Mapping) else None, DEFAULT_WEIGHT, where)))
    return ParsedRoute(
        backends=tuple(backends), mirrors=_mirrors(rule.get("filters"), namespace, "spec.rules[0].filters"),
        source=f"HTTPRoute {namespace}/{name}", resource_version=rv, generation=generation,
        namespace=namespace,
    )


def _ref(ref: Any, default_namespace: str | None, where: str) -> BackendRef:
    if not isinstance(ref, Mapping) or not isinstance(ref.get("name"), str) or not ref["name"]:
        raise RouteParseError(f"{where}: a backendRef needs a name")
    return BackendRef(name=ref["name"], namespace=ref.get("namespace") or default_namespace)


def _mirrors(filters: Any, namespace: str | None, where: str) -> tuple[Mirror, ...]:
    if filters is None:
        return ()
    if not isinstance(filters, list):
        raise RouteParseError(f"{where} is not a list")
    mirrors = []
    for i, flt in enumerate(filters):
        if not isinstance(flt, Mapping) or flt.get("type") != "RequestMirror":
            continue
        spec = flt.get("requestMirror") or {}
        here = f"{where}[{i}].requestMirror"
        ref = _ref(spec.get("backendRef"), namespace, f"{here}.backendRef")
        mirrors.append(Mirror(ref=ref, percent=_mirror_percent(spec, here)))
    return tuple(mirrors)


def _mirror_percent(spec: Mapping[str, Any], where: str) -> float:
    """``percent`` (0-100) or ``fraction`` {numerator, denominator=100}; default 100%."""
    if spec.get("percent") is not None:
        return percent(spec["percent"], where)
    fraction = spec.get("fraction")
    if fraction is not None:
        numerator = fraction.get("numerator")
        denominator = fraction.get("denominator", 100)
        if not isinstance(numerator, int) or not isinstance(denominator, int) or denominator <= 0:
            raise RouteParseError(f"{where}.fraction needs integer numerator and positive denominator")
        return percent(100.0 * numerator / denominator, f"{where}.fraction")
    return 100.0


class GatewayApiRouter(RouteObjectRouter):
    api_version = "gateway.networking.k8s.io/v1"
    kind = "HTTPRoute"

    def route_spec(self, target: RouteTarget, split: Split) -> dict[str, Any]:
        rule: dict[str, Any] = {
            "backendRefs": [
                {"name": svc, "port": target.port, "weight": w}
                for svc, w in sorted(split.weights.items())
            ]
        }
        if split.mirror:
            mirror: dict[str, Any] = {"backendRef": {"name": split.mirror, "port": target.port}}
            if split.mirror_percent < 100:
                mirror["percent"] = split.mirror_percent
            rule["filters"] = [{"type": "RequestMirror", "requestMirror": mirror}]
        spec: dict[str, Any] = {"rules": [rule]}
        if target.gateway:
            name, ns = target.gateway
            spec["parentRefs"] = [{"name": name, **({"namespace": ns} if ns else {})}]
        if target.hostnames:
            spec["hostnames"] = list(target.hostnames)
        return spec

    def parse(self, route: Mapping[str, Any]) -> Split:
        return parse_httproute(route).split()
