"""The TrafficRouter interface and the ownership rules every route-based router shares.

A router reads the weights now in force and applies desired weights and mirror.
It works in Service names; the reconciler maps versions to Services. It never touches a route
Vigil does not own (label `app.kubernetes.io/managed-by: vigil` and the ModelDeployment as
controller owner), and it refuses to act on one that was changed behind its back: every apply
records what it wrote in the annotation `vigil.dev/applied`, and a read compares.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Mapping, Protocol

from vigil.api.names import ANN_APPLIED, ANN_APPLIED_SPEC, LABEL_MANAGED, LABEL_MD
from vigil.core.model import TrafficSplit
from vigil.kube.client import Kube, owner_reference
from vigil.routing.parsed import RouteParseError

Split = TrafficSplit[str]
"""What a router reads and writes: weights and mirror keyed by Service name."""


@dataclass(frozen=True)
class RouteTarget:
    """What a router needs to know about the ModelDeployment it routes for."""

    md: Mapping[str, Any]  # the ModelDeployment object (metadata for ownership)
    route_name: str
    port: int
    hostnames: tuple[str, ...] = ()
    gateway: tuple[str, str | None] | None = None  # (name, namespace) for Gateway API
    replicas: int = 1

    @property
    def namespace(self) -> str:
        return str(self.md["metadata"]["namespace"])


@dataclass(frozen=True)
class ReadResult:
    split: Split | None  # None: no route yet
    problem: str | None = None


class TrafficRouter(Protocol):
    approximate: bool  # True when weights are only approximated (replica ratio)

    def read(self, target: RouteTarget) -> ReadResult: ...

    def apply(self, target: RouteTarget, split: Split) -> None: ...

    def replicas(self, target: RouteTarget, split: Split) -> Mapping[str, int] | None:
        """Replica counts per Service when the router works by replicas, else None."""
        ...


class RouteObjectRouter:
    """Shared logic of routers backed by one route object (HTTPRoute, VirtualService)."""

    api_version: str
    kind: str
    approximate = False

    def __init__(self, kube: Kube) -> None:
        self.kube = kube

    # subclasses: the route body for a split, and the split a route body expresses
    def route_spec(self, target: RouteTarget, split: Split) -> dict[str, Any]:
        raise NotImplementedError

    def parse(self, route: Mapping[str, Any]) -> Split:
        """The split a route expresses; RouteParseError (naming the field) if it has no usable shape."""
        raise NotImplementedError

    def read(self, target: RouteTarget) -> ReadResult:
        route = self.kube.get(self.api_version, self.kind, target.namespace, target.route_name)
        if route is None:
            return ReadResult(None)
        meta = route["metadata"]
        owners = [o.get("uid") for o in meta.get("ownerReferences") or [] if o.get("controller")]
        if (meta.get("labels") or {}).get(LABEL_MANAGED) != "vigil" or target.md["metadata"]["uid"] not in owners:
            return ReadResult(None, f"{self.kind} {target.route_name!r} exists and is not managed by this "
                                    "ModelDeployment; Vigil will not touch it. Rename spec.traffic.routeName or "
                                    "delete that route.")
        try:
            split = self.parse(route)
        except RouteParseError as err:
            return ReadResult(None, f"{self.kind} {target.route_name!r} cannot be read ({err}); Vigil will not "
                                    "act on it until it is fixed or deleted.")
        applied = (meta.get("annotations") or {}).get(ANN_APPLIED)
        if applied and json.loads(applied) != json.loads(split.as_json()):
            return ReadResult(split, f"{self.kind} {target.route_name!r} was changed outside Vigil "
                                     f"(now {split.as_json()}, Vigil applied {applied}); Vigil will not act on it "
                                     f"until the change is reverted or the route is deleted.")
        rendered = (meta.get("annotations") or {}).get(ANN_APPLIED_SPEC)
        if rendered and owned_part(route.get("spec") or {}, json.loads(rendered)) != json.loads(rendered):
            return ReadResult(split, f"{self.kind} {target.route_name!r} was changed outside Vigil (a field Vigil "
                                     "owns, such as a match, filter, hostname or port, differs from what it applied); "
                                     "Vigil will not act on it until the change is reverted or the route is deleted.")
        return ReadResult(split)

    def apply(self, target: RouteTarget, split: Split) -> None:
        md = target.md
        spec = self.route_spec(target, split)
        self.kube.apply({
            "apiVersion": self.api_version, "kind": self.kind,
            "metadata": {
                "name": target.route_name, "namespace": target.namespace,
                "labels": {LABEL_MANAGED: "vigil", LABEL_MD: md["metadata"]["name"]},
                "annotations": {ANN_APPLIED: split.as_json(),
                                ANN_APPLIED_SPEC: json.dumps(spec, sort_keys=True, separators=(",", ":"))},
                "ownerReferences": [owner_reference(dict(md))],
            },
            "spec": spec,
        })

    def replicas(self, target: RouteTarget, split: Split) -> Mapping[str, int] | None:
        return None


def owned_part(current: Any, rendered: Any) -> Any:
    """`current` cut down to the fields `rendered` sets: what the apiserver added (defaults) is
    ignored, anything Vigil set and someone changed shows as a difference."""
    if isinstance(rendered, dict):
        if not isinstance(current, dict):
            return current
        return {k: owned_part(current.get(k), v) for k, v in rendered.items()}
    if isinstance(rendered, list):
        if not isinstance(current, list) or len(current) != len(rendered):
            return current
        return [owned_part(c, r) for c, r in zip(current, rendered)]
    return current
