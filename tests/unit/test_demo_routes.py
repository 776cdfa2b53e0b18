"""Reading weights and mirrors from HTTPRoute and VirtualService objects as the apiserver returns them."""

from __future__ import annotations

from typing import Any

import pytest

from vigil.demo.backends import BackendMap, BackendMapError, parse_entry, parse_file_text, write_backend_file
from vigil.demo.routes import (
    EMPTY_ROUTE, BackendRef, Mirror, RouteParseError, parse_httproute, parse_route,
    parse_virtualservice,
)


def httproute(backend_refs: list[dict[str, Any]], filters: list[dict[str, Any]] | None = None,
              rules_after: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    rule: dict[str, Any] = {"backendRefs": backend_refs}
    if filters is not None:
        rule["filters"] = filters
    return {
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
        "metadata": {"name": "iris", "namespace": "demo", "resourceVersion": "42", "generation": 3},
        "spec": {"parentRefs": [{"name": "gw"}], "rules": [rule, *(rules_after or [])]},
    }


def virtualservice(http: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
        "metadata": {"name": "iris", "namespace": "demo", "resourceVersion": "7"},
        "spec": {"hosts": ["iris"], "http": [http]},
    }


# --- HTTPRoute ------------------------------------------------------------------------


def test_httproute_weights_of_the_first_rule() -> None:
    split = parse_httproute(httproute(
        [{"name": "iris-v1", "port": 80, "weight": 90}, {"name": "iris-v2", "port": 80, "weight": 10}],
        rules_after=[{"backendRefs": [{"name": "other", "weight": 100}]}],
    ))
    assert split.weights() == {"iris-v1": 90, "iris-v2": 10}
    assert split.shares() == {"iris-v1": 0.9, "iris-v2": 0.1}
    assert split.mirrors == ()
    assert split.source == "HTTPRoute demo/iris"
    assert (split.resource_version, split.generation) == ("42", 3)
    assert split.backends[0].ref == BackendRef("iris-v1", "demo")


def test_httproute_weight_defaults_to_one() -> None:
    split = parse_httproute(httproute([{"name": "a"}, {"name": "b"}]))
    assert split.weights() == {"a": 1, "b": 1}


def test_httproute_mirror_with_percent() -> None:
    split = parse_httproute(httproute(
        [{"name": "iris-v1", "weight": 100}],
        [{"type": "RequestHeaderModifier", "requestHeaderModifier": {}},
         {"type": "RequestMirror",
          "requestMirror": {"backendRef": {"name": "iris-v2", "port": 80}, "percent": 25}}],
    ))
    assert split.mirrors == (Mirror(BackendRef("iris-v2", "demo"), 25.0),)


def test_httproute_mirror_with_fraction_and_default() -> None:
    with_fraction = parse_httproute(httproute(
        [{"name": "a", "weight": 1}],
        [{"type": "RequestMirror",
          "requestMirror": {"backendRef": {"name": "s", "namespace": "other"},
                            "fraction": {"numerator": 1, "denominator": 8}}}],
    ))
    assert with_fraction.mirrors == (Mirror(BackendRef("s", "other"), 12.5),)
    default_denominator = parse_httproute(httproute(
        [{"name": "a"}], [{"type": "RequestMirror", "requestMirror": {
            "backendRef": {"name": "s"}, "fraction": {"numerator": 30}}}]))
    assert default_denominator.mirrors[0].percent == 30.0
    everything = parse_httproute(httproute(
        [{"name": "a"}], [{"type": "RequestMirror", "requestMirror": {"backendRef": {"name": "s"}}}]))
    assert everything.mirrors[0].percent == 100.0


@pytest.mark.parametrize("obj, complaint", [
    ({"metadata": {"name": "x"}, "spec": {}}, "spec.rules is missing"),
    (httproute([{"weight": 3}]), "needs a name"),
    (httproute([{"name": "a", "weight": -1}]), "non-negative integer"),
    (httproute([{"name": "a", "weight": 1.5}]), "non-negative integer"),
    (httproute([{"name": "a"}], [{"type": "RequestMirror", "requestMirror": {
        "backendRef": {"name": "s"}, "percent": 101}}]), "within [0, 100]"),
    (httproute([{"name": "a"}], [{"type": "RequestMirror", "requestMirror": {}}]), "needs a name"),
])
def test_httproute_errors_name_the_field(obj: dict[str, Any], complaint: str) -> None:
    with pytest.raises(RouteParseError) as info:
        parse_httproute(obj)
    assert complaint in str(info.value)


# --- VirtualService -------------------------------------------------------------------


def test_virtualservice_weights_and_host_forms() -> None:
    split = parse_virtualservice(virtualservice({"route": [
        {"destination": {"host": "iris-v1", "port": {"number": 80}}, "weight": 80},
        {"destination": {"host": "iris-v2.demo.svc.cluster.local"}, "weight": 20},
    ]}))
    assert split.weights() == {"iris-v1": 80, "iris-v2": 20}
    assert split.backends[1].ref == BackendRef("iris-v2", "demo")
    assert split.source == "VirtualService demo/iris"


def test_virtualservice_subsets_and_weight_defaults() -> None:
    lone = parse_virtualservice(virtualservice({"route": [{"destination": {"host": "iris"}}]}))
    assert lone.weights() == {"iris": 100}
    two = parse_virtualservice(virtualservice({"route": [
        {"destination": {"host": "iris", "subset": "stable"}, "weight": 100},
        {"destination": {"host": "iris", "subset": "canary"}},
    ]}))
    assert two.weights() == {"iris:stable": 100, "iris:canary": 0}
    assert two.backends[1].ref.keys() == ["demo/iris:canary", "iris:canary", "demo/iris", "iris"]


def test_virtualservice_mirror_and_percentage() -> None:
    split = parse_virtualservice(virtualservice({
        "route": [{"destination": {"host": "iris-v1"}, "weight": 100}],
        "mirror": {"host": "iris-v2"}, "mirrorPercentage": {"value": 12.5},
    }))
    assert split.mirrors == (Mirror(BackendRef("iris-v2", "demo"), 12.5),)
    full = parse_virtualservice(virtualservice({
        "route": [{"destination": {"host": "iris-v1"}}], "mirror": {"host": "iris-v2"}}))
    assert full.mirrors[0].percent == 100.0
    legacy = parse_virtualservice(virtualservice({
        "route": [{"destination": {"host": "iris-v1"}}], "mirror": {"host": "s"}, "mirrorPercent": 5}))
    assert legacy.mirrors[0].percent == 5.0


def test_virtualservice_mirrors_list() -> None:
    split = parse_virtualservice(virtualservice({
        "route": [{"destination": {"host": "iris-v1"}}],
        "mirrors": [{"destination": {"host": "iris-v2", "subset": "shadow"}, "percentage": {"value": 50}},
                    {"destination": {"host": "iris-v3"}}],
    }))
    assert split.mirrors == (Mirror(BackendRef("iris-v2", "demo", "shadow"), 50.0),
                             Mirror(BackendRef("iris-v3", "demo"), 100.0))


@pytest.mark.parametrize("http, complaint", [
    ({"route": [{"destination": {}}]}, "needs a host"),
    ({"route": [{"destination": {"host": "a"}, "weight": "x"}]}, "non-negative integer"),
    ({"route": [{"destination": {"host": "a"}}], "mirror": {"host": "b"},
      "mirrorPercentage": {"value": 300}}, "within [0, 100]"),
])
def test_virtualservice_errors_name_the_field(http: dict[str, Any], complaint: str) -> None:
    with pytest.raises(RouteParseError) as info:
        parse_virtualservice(virtualservice(http))
    assert complaint in str(info.value)


def test_parse_route_dispatches_by_kind() -> None:
    assert parse_route("httproute", httproute([{"name": "a"}])).weights() == {"a": 1}
    with pytest.raises(RouteParseError, match="unknown route kind"):
        parse_route("ingress", {})
    assert EMPTY_ROUTE.total_weight == 0 and EMPTY_ROUTE.shares() == {}


# --- backend map ----------------------------------------------------------------------


def test_backend_entries_and_lookup_order() -> None:
    assert parse_entry("iris-v1=http://127.0.0.1:8081/") == ("iris-v1", "http://127.0.0.1:8081")
    with pytest.raises(BackendMapError):
        parse_entry("iris-v1:8081")
    backends = BackendMap(static={"iris": "http://h:1", "demo/iris:canary": "http://h:2"})
    assert backends.resolve(BackendRef("iris", "demo", "canary")) == "http://h:2"
    assert backends.resolve(BackendRef("iris", "demo", "stable")) == "http://h:1"
    assert backends.resolve(BackendRef("nope", "demo")) is None


def test_backend_file_formats_and_reload(tmp_path: Any) -> None:
    assert parse_file_text("# comment\na=http://x:1\n\nb = http://x:2  # two\n") == {
        "a": "http://x:1", "b": "http://x:2"}
    path = tmp_path / "backends.json"
    write_backend_file(path, {"iris-v1": "http://127.0.0.1:1"})
    backends = BackendMap(static={"iris-v1": "http://static:9", "iris-v0": "http://static:8"}, file=path)
    assert backends.resolve_label("iris-v1") == "http://127.0.0.1:1"  # the file wins
    assert not backends.reload_if_changed()
    write_backend_file(path, {"iris-v1": "http://127.0.0.1:1", "iris-v2": "http://127.0.0.1:22"})
    assert backends.reload_if_changed()
    assert backends.resolve_label("iris-v2") == "http://127.0.0.1:22"
    path.write_text("{not json")
    assert not backends.reload_if_changed()  # a broken file keeps the last good map
    assert backends.resolve_label("iris-v2") == "http://127.0.0.1:22"
    assert backends.resolve_label("iris-v0") == "http://static:8"
