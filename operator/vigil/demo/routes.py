"""Read traffic weights and mirroring from Gateway API HTTPRoute and Istio VirtualService.

Pure functions over the objects as the apiserver returns them (plain dicts), so the
splitter reads exactly what the operator wrote, and the parsing is testable without a
cluster. Only the first rule (HTTPRoute ``spec.rules[0]``, Istio ``spec.http[0]``)
is read: that is the rule Vigil's routers manage.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

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


class RouteParseError(ValueError):
    """The route object does not have the shape the splitter needs."""


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
class RouteSplit:
    """What the splitter needs from a route: weighted backends and mirrors."""

    backends: tuple[WeightedBackend, ...]
    mirrors: tuple[Mirror, ...] = ()
    source: str = ""
    resource_version: str | None = None
    generation: int | None = None

    @property
    def total_weight(self) -> int:
        return sum(b.weight for b in self.backends)

    def weights(self) -> dict[str, int]:
        return {b.ref.label: b.weight for b in self.backends}

    def shares(self) -> dict[str, float]:
        """Each backend's expected share of requests (0 when all weights are 0)."""
        total = self.total_weight
        return {b.ref.label: (b.weight / total if total else 0.0) for b in self.backends}


EMPTY_ROUTE = RouteSplit(backends=(), source="(no route)")


def parse_route(kind: str, obj: Mapping[str, Any]) -> RouteSplit:
    """Parse a route object of ``kind`` ("httproute" or "virtualservice")."""
    if kind == HTTPROUTE:
        return parse_httproute(obj)
    if kind == VIRTUALSERVICE:
        return parse_virtualservice(obj)
    raise RouteParseError(f"unknown route kind {kind!r}; use one of {sorted(ROUTE_KINDS)}")


def _meta(obj: Mapping[str, Any]) -> tuple[str | None, str, str | None, int | None]:
    meta = obj.get("metadata") or {}
    namespace = meta.get("namespace")
    name = meta.get("name", "?")
    return namespace, name, meta.get("resourceVersion"), meta.get("generation")


def _first(items: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(items, list) or not items:
        raise RouteParseError(f"{what} is missing or empty")
    first = items[0]
    if not isinstance(first, Mapping):
        raise RouteParseError(f"{what}[0] is not an object")
    return first


def _weight(raw: Any, default: int, where: str) -> int:
    if raw is None:
        return default
    if isinstance(raw, bool) or not isinstance(raw, (int, float)) or raw < 0 or raw != int(raw):
        raise RouteParseError(f"{where}: weight must be a non-negative integer, got {raw!r}")
    return int(raw)


def _percent(raw: Any, where: str) -> float:
    if isinstance(raw, bool) or not isinstance(raw, (int, float)) or not 0 <= raw <= 100:
        raise RouteParseError(f"{where}: percent must be within [0, 100], got {raw!r}")
    return float(raw)


# --- Gateway API HTTPRoute -------------------------------------------------------


def parse_httproute(obj: Mapping[str, Any]) -> RouteSplit:
    """``spec.rules[0].backendRefs[].weight`` (default 1) and RequestMirror filters."""
    namespace, name, rv, generation = _meta(obj)
    rule = _first((obj.get("spec") or {}).get("rules"), "spec.rules")
    refs = rule.get("backendRefs") or []
    if not isinstance(refs, list):
        raise RouteParseError("spec.rules[0].backendRefs is not a list")
    backends = []
    for i, ref in enumerate(refs):
        where = f"spec.rules[0].backendRefs[{i}]"
        backends.append(
            WeightedBackend(_gateway_ref(ref, namespace, where), _weight(ref.get("weight"), 1, where))
        )
    mirrors = _gateway_mirrors(rule.get("filters"), namespace, "spec.rules[0].filters")
    return RouteSplit(
        backends=tuple(backends), mirrors=mirrors, source=f"HTTPRoute {namespace}/{name}",
        resource_version=rv, generation=generation,
    )


def _gateway_ref(ref: Any, default_namespace: str | None, where: str) -> BackendRef:
    if not isinstance(ref, Mapping) or not isinstance(ref.get("name"), str) or not ref["name"]:
        raise RouteParseError(f"{where}: a backendRef needs a name")
    return BackendRef(name=ref["name"], namespace=ref.get("namespace") or default_namespace)


def _gateway_mirrors(filters: Any, namespace: str | None, where: str) -> tuple[Mirror, ...]:
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
        ref = _gateway_ref(spec.get("backendRef"), namespace, f"{here}.backendRef")
        mirrors.append(Mirror(ref=ref, percent=_gateway_mirror_percent(spec, here)))
    return tuple(mirrors)


def _gateway_mirror_percent(spec: Mapping[str, Any], where: str) -> float:
    """``percent`` (0-100) or ``fraction`` {numerator, denominator=100}; default 100%."""
    if spec.get("percent") is not None:
        return _percent(spec["percent"], where)
    fraction = spec.get("fraction")
    if fraction is not None:
        numerator = fraction.get("numerator")
        denominator = fraction.get("denominator", 100)
        if not isinstance(numerator, int) or not isinstance(denominator, int) or denominator <= 0:
            raise RouteParseError(f"{where}.fraction needs integer numerator and positive denominator")
        return _percent(100.0 * numerator / denominator, f"{where}.fraction")
    return 100.0


# --- Istio VirtualService -----------------------------------------------------------


def parse_virtualservice(obj: Mapping[str, Any]) -> RouteSplit:
    """``spec.http[0].route[].weight`` and ``mirror``/``mirrorPercentage`` or ``mirrors``.

    Istio's rules: a lone destination may omit its weight (it gets everything); with
    several destinations an omitted weight counts as 0.
    """
    namespace, name, rv, generation = _meta(obj)
    http = _first((obj.get("spec") or {}).get("http"), "spec.http")
    routes = http.get("route") or []
    if not isinstance(routes, list):
        raise RouteParseError("spec.http[0].route is not a list")
    default_weight = 100 if len(routes) == 1 else 0
    backends = []
    for i, route in enumerate(routes):
        where = f"spec.http[0].route[{i}]"
        if not isinstance(route, Mapping):
            raise RouteParseError(f"{where} is not an object")
        ref = _istio_ref(route.get("destination"), namespace, f"{where}.destination")
        backends.append(WeightedBackend(ref, _weight(route.get("weight"), default_weight, where)))
    return RouteSplit(
        backends=tuple(backends), mirrors=_istio_mirrors(http, namespace),
        source=f"VirtualService {namespace}/{name}", resource_version=rv, generation=generation,
    )


def _istio_ref(destination: Any, default_namespace: str | None, where: str) -> BackendRef:
    """Short name and namespace from ``svc``, ``svc.ns`` or ``svc.ns.svc.cluster.local``."""
    if not isinstance(destination, Mapping) or not isinstance(destination.get("host"), str):
        raise RouteParseError(f"{where}: a destination needs a host")
    parts = destination["host"].split(".")
    namespace = parts[1] if len(parts) > 1 else default_namespace
    return BackendRef(name=parts[0], namespace=namespace, subset=destination.get("subset") or None)


def _istio_mirrors(http: Mapping[str, Any], namespace: str | None) -> tuple[Mirror, ...]:
    mirrors = []
    if http.get("mirror") is not None:
        ref = _istio_ref(http["mirror"], namespace, "spec.http[0].mirror")
        percent = 100.0
        if http.get("mirrorPercentage") is not None:
            percent = _percent((http["mirrorPercentage"] or {}).get("value", 100.0),
                               "spec.http[0].mirrorPercentage")
        elif http.get("mirrorPercent") is not None:  # deprecated integer form
            percent = _percent(http["mirrorPercent"], "spec.http[0].mirrorPercent")
        mirrors.append(Mirror(ref, percent))
    for i, item in enumerate(http.get("mirrors") or []):
        where = f"spec.http[0].mirrors[{i}]"
        ref = _istio_ref((item or {}).get("destination"), namespace, f"{where}.destination")
        percent = 100.0
        if item.get("percentage") is not None:
            percent = _percent((item["percentage"] or {}).get("value", 100.0), f"{where}.percentage")
        mirrors.append(Mirror(ref, percent))
    return tuple(mirrors)


__all__ = [
    "HTTPROUTE",
    "VIRTUALSERVICE",
    "ROUTE_KINDS",
    "RouteKind",
    "RouteParseError",
    "BackendRef",
    "WeightedBackend",
    "Mirror",
    "RouteSplit",
    "EMPTY_ROUTE",
    "parse_route",
    "parse_httproute",
    "parse_virtualservice",
]
