"""Gateway API HTTPRoute: backendRefs weights, and a RequestMirror filter for shadow traffic."""

from __future__ import annotations

from typing import Any, Mapping

from vigil.routing.base import RouteObjectRouter, RouteTarget, Split


class GatewayApiRouter(RouteObjectRouter):
    api_version = "gateway.networking.k8s.io/v1"
    kind = "HTTPRoute"

    def route_spec(self, target: RouteTarget, split: Split) -> dict[str, Any]:
        rule: dict[str, Any] = {
            "backendRefs": [
                {"name": svc, "port": target.port, "weight": weight}
                for svc, weight in sorted(split.weights.items())
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
        rules = (route.get("spec") or {}).get("rules") or [{}]
        rule = rules[0]
        weights = {b["name"]: int(b.get("weight", 1)) for b in rule.get("backendRefs") or []}
        mirror, percent = None, 0
        for f in rule.get("filters") or []:
            if f.get("type") == "RequestMirror":
                rm = f.get("requestMirror") or {}
                mirror = (rm.get("backendRef") or {}).get("name")
                if "percent" in rm:
                    percent = int(rm["percent"])
                elif "fraction" in rm:
                    frac = rm["fraction"]
                    percent = round(100 * frac["numerator"] / frac.get("denominator", 100))
                else:
                    percent = 100
        return Split({k: v for k, v in weights.items() if v > 0}, mirror, percent)
