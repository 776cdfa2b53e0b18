"""The apiserver route watch's loop, against a scripted fake API: list, watch, errors, re-list.

The real apiserver is exercised in tests/integration/test_demo_parts_kube_route.py; this
pins down the recovery paths that are hard to provoke there (410 Gone, a broken
stream, an unparseable object, a deletion).
"""

from __future__ import annotations

import threading
from typing import Any, Iterator

from vigil.demo.routes import ParsedRoute
from vigil.demo.routewatch import KubeRouteWatcher, WatchedRoute


def route(rv: str, weights: dict[str, int]) -> dict[str, Any]:
    return {"metadata": {"name": "iris", "namespace": "demo", "resourceVersion": rv},
            "spec": {"rules": [{"backendRefs": [{"name": n, "weight": w} for n, w in weights.items()]}]}}


class FakeApi:
    """list_namespaced_custom_object answers from a script of listings."""

    def __init__(self, listings: list[dict[str, Any] | Exception]) -> None:
        self.listings = listings
        self.list_calls: list[dict[str, Any]] = []

    def list_namespaced_custom_object(self, group: str, version: str, namespace: str, plural: str,
                                      **kwargs: Any) -> dict[str, Any]:
        self.list_calls.append({"group": group, "version": version, "namespace": namespace,
                                "plural": plural, **kwargs})
        step = self.listings.pop(0) if self.listings else {"items": [], "metadata": {"resourceVersion": "0"}}
        if isinstance(step, Exception):
            raise step
        return step


class FakeWatch:
    """Each new watch plays the next scripted stream of events (or raises)."""

    def __init__(self, streams: list[list[dict[str, Any]] | Exception], watcher: list[KubeRouteWatcher]):
        self.streams = streams
        self.watcher = watcher
        self.calls: list[dict[str, Any]] = []
        self.resource_version: str | None = None

    def __call__(self) -> "FakeWatch":
        return self

    def stream(self, func: Any, *args: Any, **kwargs: Any) -> Iterator[dict[str, Any]]:
        self.calls.append(kwargs)
        if not self.streams:
            self.watcher[0].stop()
            return
        step = self.streams.pop(0)
        if isinstance(step, Exception):
            raise step
        for event in step:
            yield event

    def stop(self) -> None:
        pass


def run(listings: list[Any], streams: list[Any]) -> tuple[list[ParsedRoute], list[str], FakeApi, FakeWatch]:
    api = FakeApi(listings)
    holder: list[KubeRouteWatcher] = []
    fake_watch = FakeWatch(streams, holder)
    watcher = KubeRouteWatcher("unused", WatchedRoute("httproute", "demo", "iris"),
                               api_factory=lambda: api, watch_factory=fake_watch)
    holder.append(watcher)
    routes: list[ParsedRoute] = []
    errors: list[str] = []
    thread = threading.Thread(target=watcher.run, args=(routes.append, errors.append))
    thread.start()
    thread.join(timeout=10)
    assert not thread.is_alive()
    return routes, errors, api, fake_watch


def test_list_then_watch_from_the_listed_version() -> None:
    routes, errors, api, watch = run(
        [{"items": [route("5", {"a": 100})], "metadata": {"resourceVersion": "10"}}],
        [[{"type": "MODIFIED", "object": route("11", {"a": 90, "b": 10})},
          {"type": "MODIFIED", "object": route("12", {"a": 0, "b": 100})}]],
    )
    assert [r.weights() for r in routes] == [{"a": 100}, {"a": 90, "b": 10}, {"a": 0, "b": 100}]
    assert errors == []
    assert api.list_calls[0]["field_selector"] == "metadata.name=iris"
    assert (api.list_calls[0]["group"], api.list_calls[0]["plural"]) == ("gateway.networking.k8s.io", "httproutes")
    assert watch.calls[0]["resource_version"] == "10"
    # After a stream ends normally, the watch resumes from the last version seen.
    assert watch.calls[1]["resource_version"] == "12"


def test_gone_and_broken_streams_lead_to_a_fresh_list() -> None:
    routes, errors, api, watch = run(
        [{"items": [route("5", {"a": 100})], "metadata": {"resourceVersion": "5"}},
         ConnectionError("apiserver restarting"),
         {"items": [route("30", {"a": 50, "b": 50})], "metadata": {"resourceVersion": "30"}}],
        [[{"type": "ERROR", "object": {"code": 410, "message": "too old resource version"}}]],
    )
    assert [r.weights() for r in routes] == [{"a": 100}, {"a": 50, "b": 50}]
    assert len(api.list_calls) == 3
    assert "too old resource version" in errors[0]
    assert "apiserver restarting" in errors[1]


def test_deleted_route_means_no_backends_and_bad_objects_are_reported_not_applied() -> None:
    routes, errors, _, _ = run(
        [{"items": [], "metadata": {"resourceVersion": "1"}}],
        [[{"type": "ADDED", "object": route("2", {"a": 1})},
          {"type": "MODIFIED", "object": {"metadata": {"resourceVersion": "3"}, "spec": {"rules": []}}},
          {"type": "DELETED", "object": route("4", {"a": 1})}]],
    )
    assert [r.weights() for r in routes] == [{}, {"a": 1}, {}]
    assert len(errors) == 1 and "spec.rules is missing or empty" in errors[0]
