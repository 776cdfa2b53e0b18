"""Istio VirtualService: route weights, and `mirror` + `mirrorPercentage` for shadow traffic."""

from __future__ import annotations

from typing import Any, Mapping

from vigil.routing.base import RouteObjectRouter, RouteTarget, Split


class IstioRouter(RouteObjectRouter):
    api_version = "networking.istio.io/v1"
    kind = "VirtualService"

    def route_spec(self, target: RouteTarget, split: Split) -> dict[str, Any]:
        http: dict[str, Any] = {
            "route": [
                {"destination": {"host": svc, "port": {"number": target.port}}, "weight": weight}
                for svc, weight in sorted(split.weights.items())
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
        http = ((route.get("spec") or {}).get("http") or [{}])[0]
        weights = {r["destination"]["host"]: int(r.get("weight", 100)) for r in http.get("route") or []}
        mirror = (http.get("mirror") or {}).get("host")
        percent = int(round((http.get("mirrorPercentage") or {}).get("value", 100))) if mirror else 0
        return Split({k: v for k, v in weights.items() if v > 0}, mirror, percent)
