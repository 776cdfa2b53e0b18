"""Traffic routers: one module per backend behind `TrafficRouter` (see base.py).

Adding a router means adding a module and a line in `for_kind`; the state machine never
changes, because it speaks only of weights per version.
"""

from __future__ import annotations

from vigil.api.modeldeployment import RouterKind
from vigil.kube.client import Kube
from vigil.routing.base import TrafficRouter


def for_kind(kind: RouterKind, kube: Kube) -> TrafficRouter:
    if kind is RouterKind.GATEWAY_API:
        from vigil.routing.gatewayapi import GatewayApiRouter

        return GatewayApiRouter(kube)
    if kind is RouterKind.ISTIO:
        from vigil.routing.istio import IstioRouter

        return IstioRouter(kube)
    from vigil.routing.replicas import ReplicaRouter

    return ReplicaRouter(kube)
