"""What a route object says, read strictly: weighted backends and mirrors, with where they point.

Each router module parses its own kind into a `ParsedRoute` (gatewayapi.parse_httproute,
istio.parse_virtualservice); the router reduces it to the `TrafficSplit` it compares and
writes, and the demo's traffic splitter forwards requests by it. One parser per kind, so the
operator and the splitter can never disagree about what a route means.

Only the first rule (HTTPRoute ``spec.rules[0]``, Istio ``spec.http[0]``) is read: that is
the rule Vigil's routers manage.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from vigil.core.model import TrafficSplit


class RouteParseError(ValueError):
    """The route object does not have the shape a router needs; the message names the field."""


@dataclass(frozen=True)
class BackendRef:
    """A backend as a route names it; ``keys()`` are the names a URL map may use."""

    name: str
    namespace: str | None = None
    subset: str | None = None

    def keys(self) -> list[str]:
        """Lookup keys, most specific first: ``ns/name:subset``, ``name:subset``, ``ns/name``, ``name``."""
        plain = [f"{self.namespace}/{self.name}"] if self.namespace else []
        plain.append(self.name)
        if self.subset:
            return [f"{k}:{self.subset}" for k in plain] + plain
        return plain

    @property
    def label(self) -> str:
        """A short stable name for metrics and logs."""
        return f"{self.name}:{self.subset}" if self.subset else self.name

    def service_key(self, home_namespace: str | None) -> str:
        """The key a router's split uses: the Service name when it lives beside the route,
        ``ns/name`` when it does not (so a route pointed elsewhere never looks like ours)."""
        name = self.name if self.namespace in (None, home_namespace) else f"{self.namespace}/{self.name}"
        return f"{name}:{self.subset}" if self.subset else name


@dataclass(frozen=True)
class WeightedBackend:
    ref: BackendRef
    weight: int


@dataclass(frozen=True)
class Mirror:
    """Copy ``percent`` % of requests to ``ref``; the copies' answers are discarded."""

    ref: BackendRef
    percent: float = 100.0


@dataclass(frozen=True)
class ParsedRoute:
    """The first rule of a route: weighted backends, mirrors, and which object it came from."""

    backends: tuple[WeightedBackend, ...]
    mirrors: tuple[Mirror, ...] = ()
    source: str = ""
    resource_version: str | None = None
    generation: int | None = None
    namespace: str | None = None

    @property
    def total_weight(self) -> int:
        return sum(b.weight for b in self.backends)

    def weights(self) -> dict[str, int]:
        return {b.ref.label: b.weight for b in self.backends}

    def shares(self) -> dict[str, float]:
        """Each backend's expected share of requests (0 when all weights are 0)."""
        total = self.total_weight
        return {b.ref.label: (b.weight / total if total else 0.0) for b in self.backends}

    def split(self) -> TrafficSplit[str]:
        """What a router compares and writes: weights > 0 by Service, and the first mirror."""
        weights: dict[str, int] = {}
        for backend in self.backends:
            if backend.weight > 0:
                key = backend.ref.service_key(self.namespace)
                weights[key] = weights.get(key, 0) + backend.weight
        if not self.mirrors:
            return TrafficSplit(weights)
        mirror = self.mirrors[0]
        return TrafficSplit(weights, mirror.ref.service_key(self.namespace), int(round(mirror.percent)))


EMPTY_ROUTE = ParsedRoute(backends=(), source="(no route)")


# ------------------------------------------------------------------ shared field readers


def route_meta(obj: Mapping[str, Any]) -> tuple[str | None, str, str | None, int | None]:
    """(namespace, name, resourceVersion, generation) of a route object."""
    meta = obj.get("metadata") or {}
    return meta.get("namespace"), meta.get("name", "?"), meta.get("resourceVersion"), meta.get("generation")


def first(items: Any, what: str) -> Mapping[str, Any]:
    """The first element of a list field, which must be an object."""
    if not isinstance(items, list) or not items:
        raise RouteParseError(f"{what} is missing or empty")
    head = items[0]
    if not isinstance(head, Mapping):
        raise RouteParseError(f"{what}[0] is not an object")
    return head


def weight(raw: Any, default: int, where: str) -> int:
    """A non-negative integer weight, or `default` when the field is unset."""
    if raw is None:
        return default
    if isinstance(raw, bool) or not isinstance(raw, (int, float)) or raw < 0 or raw != int(raw):
        raise RouteParseError(f"{where}: weight must be a non-negative integer, got {raw!r}")
    return int(raw)


def percent(raw: Any, where: str) -> float:
    """A percentage within [0, 100]."""
    if isinstance(raw, bool) or not isinstance(raw, (int, float)) or not 0 <= raw <= 100:
        raise RouteParseError(f"{where}: percent must be within [0, 100], got {raw!r}")
    return float(raw)
