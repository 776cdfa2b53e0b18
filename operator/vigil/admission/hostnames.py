"""Which hostnames a namespace may claim on a Gateway, following Gateway API's own rules.

A route attaches to a listener when the listener admits routes from the route's namespace
(`allowedRoutes.namespaces.from`: Same, All or Selector), admits the HTTPRoute kind, and its
hostname intersects the route's (a listener without a hostname accepts any). Vigil refuses at
admission what the Gateway would refuse (or silently not serve) later.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

GATEWAY_GROUP = "gateway.networking.k8s.io"
HTTP_PROTOCOLS = frozenset({"HTTP", "HTTPS"})


def hostnames_intersect(listener: str | None, route: str) -> bool:
    """Gateway API hostname matching: `*.example.com` is a suffix match of one or more labels
    (it matches `a.example.com` and `a.b.example.com`, never `example.com`); a wildcard on
    either side matches a more specific name on the other."""
    if not listener:
        return True
    listener, route = listener.lower().rstrip("."), route.lower().rstrip(".")
    if listener == route:
        return True
    if listener.startswith("*."):
        suffix = listener[1:]  # ".example.com"
        if route.startswith("*."):
            return route.endswith(suffix) or listener.endswith(route[1:])
        return route.endswith(suffix)
    if route.startswith("*."):
        return listener.endswith(route[1:])
    return False


def selector_matches(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """A Kubernetes LabelSelector (matchLabels and matchExpressions) against `labels`; an empty
    selector matches everything, as in Kubernetes."""
    selector = selector or {}
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and key in labels and labels[key] in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
        if op not in ("In", "NotIn", "Exists", "DoesNotExist"):
            return False  # an operator we do not know admits nothing (fail closed)
    return True


def admits_namespace(listener: Mapping[str, Any], gateway_namespace: str, route_namespace: str,
                     namespace_labels: Mapping[str, str]) -> bool:
    """`allowedRoutes.namespaces.from`: Same (the default), All, or Selector."""
    namespaces = (listener.get("allowedRoutes") or {}).get("namespaces") or {}
    source = namespaces.get("from", "Same")
    if source == "All":
        return True
    if source == "Same":
        return route_namespace == gateway_namespace
    if source == "Selector":
        return selector_matches(namespaces.get("selector"), namespace_labels)
    return False


def admits_httproute(listener: Mapping[str, Any]) -> bool:
    """`allowedRoutes.kinds`, or by default the kinds of the listener's protocol (HTTPRoute
    for HTTP and HTTPS)."""
    kinds = (listener.get("allowedRoutes") or {}).get("kinds")
    if not kinds:
        return listener.get("protocol", "HTTP") in HTTP_PROTOCOLS
    return any(k.get("kind") == "HTTPRoute" and k.get("group", GATEWAY_GROUP) == GATEWAY_GROUP for k in kinds)


def listeners_for(gateway: Mapping[str, Any], route_namespace: str,
                  namespace_labels: Mapping[str, str]) -> list[Mapping[str, Any]]:
    """The listeners of `gateway` an HTTPRoute in `route_namespace` may attach to."""
    gateway_namespace = (gateway.get("metadata") or {}).get("namespace", "")
    return [listener for listener in (gateway.get("spec") or {}).get("listeners") or []
            if admits_httproute(listener)
            and admits_namespace(listener, gateway_namespace, route_namespace, namespace_labels)]


def unclaimable(gateway: Mapping[str, Any], route_namespace: str, namespace_labels: Mapping[str, str],
                hostnames: Sequence[str]) -> list[str]:
    """The hostnames no listener of `gateway` lets `route_namespace` claim."""
    listeners = listeners_for(gateway, route_namespace, namespace_labels)
    return [h for h in hostnames if not any(hostnames_intersect(li.get("hostname"), h) for li in listeners)]
