"""The route kinds the demo's traffic splitter follows, read by the routers' own parsers.

The splitter must forward exactly as the operator routes, so it does not parse routes
itself: `parse_route` dispatches to `vigil.routing.gatewayapi.parse_httproute` and
`vigil.routing.istio.parse_virtualservice`, the same functions the routers read with.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from vigil.routing.gatewayapi import parse_httproute
from vigil.routing.istio import parse_virtualservice
from vigil.routing.parsed import (
    EMPTY_ROUTE,
    BackendRef,
    Mirror,
    ParsedRoute,
    RouteParseError,
    WeightedBackend,
)

HTTPROUTE = "httproute"
VIRTUALSERVICE = "virtualservice"


@dataclass(frozen=True)
class RouteKind:
    """Where a route kind lives in the API."""

    name: str
    group: str
    version: str
    plural: str


ROUTE_KINDS: dict[str, RouteKind] = {
    HTTPROUTE: RouteKind(HTTPROUTE, "gateway.networking.k8s.io", "v1", "httproutes"),
    VIRTUALSERVICE: RouteKind(VIRTUALSERVICE, "networking.istio.io", "v1", "virtualservices"),
}


def parse_route(kind: str, obj: Mapping[str, Any]) -> ParsedRoute:
    """Parse a route object of ``kind`` ("httproute" or "virtualservice")."""
    if kind == HTTPROUTE:
        return parse_httproute(obj)
    if kind == VIRTUALSERVICE:
        return parse_virtualservice(obj)
    raise RouteParseError(f"unknown route kind {kind!r}; use one of {sorted(ROUTE_KINDS)}")


__all__ = [
    "HTTPROUTE",
    "VIRTUALSERVICE",
    "ROUTE_KINDS",
    "RouteKind",
    "RouteParseError",
    "BackendRef",
    "WeightedBackend",
    "Mirror",
    "ParsedRoute",
    "EMPTY_ROUTE",
    "parse_route",
    "parse_httproute",
    "parse_virtualservice",
]
