"""The watch cache's semantics with a scripted list and watch (no apiserver): events land, a
410 re-lists, the cache never goes behind a write it was told about, and it stops."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import urllib3
from kubernetes.client.exceptions import ApiException
from vigil.kube.cache import Informer, parse_selector
from vigil.kube.client import _narrower


def obj(name: str, rv: int, ns: str = "ns", **labels: str) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": ns, "resourceVersion": str(rv), "labels": labels,
                         "managedFields": [{"manager": "x"}]},
            "spec": {"replicas": rv}}


class Script:
    """A fake apiserver: `lists` answers list calls in turn; watch events are fed through a queue
    (None ends the current watch, an exception is raised from it)."""

    def __init__(self, *lists: tuple[list[dict[str, Any]], str]) -> None:
        self.lists = list(lists)
        self.events: queue.Queue[Any] = queue.Queue()
        self.watched_from: list[str] = []

    def lister(self) -> tuple[list[dict[str, Any]], str]:
        return self.lists.pop(0) if len(self.lists) > 1 else self.lists[0]

    def watcher(self, rv: str) -> Iterator[dict[str, Any]]:
        self.watched_from.append(rv)
        while True:
            item = self.events.get()
            if item is None:
                return
            if isinstance(item, Exception):
                raise item
            yield item


MARKS: list[int] = []


def settle(script: Script, informer: Informer) -> None:
    """Wait until the informer has consumed every queued event (a marker round trip)."""
    done = threading.Event()
    MARKS.append(len(MARKS))
    marker = obj("zz-marker", 10**9 + len(MARKS))
    script.events.put({"type": "ADDED", "object": marker})
    for _ in range(500):
        if informer.get("ns", "zz-marker") is not None:
            done.set()
            break
        threading.Event().wait(0.01)
    assert done.is_set(), "the informer did not consume its events"
    informer.forget(("ns", "zz-marker"))


@pytest.fixture
def running() -> Iterator[tuple[Script, Informer]]:
    script = Script(([obj("a", 5), obj("b", 6)], "10"), ([obj("a", 20)], "21"))
    informer = Informer("test", script.lister, script.watcher, backoff_s=(0.01, 0.02),
                        on_stop=lambda: script.events.put(None)).start()
    assert informer.wait_synced(10)
    yield script, informer
    informer.stop()


def test_a_list_then_watch_events_are_what_reads_see(running: tuple[Script, Informer]) -> None:
    script, informer = running
    assert informer.get("ns", "a")["spec"]["replicas"] == 5
    assert "managedFields" not in informer.get("ns", "a")["metadata"]
    script.events.put({"type": "MODIFIED", "object": obj("a", 11)})
    script.events.put({"type": "ADDED", "object": obj("c", 12, app="x")})
    script.events.put({"type": "DELETED", "object": obj("b", 13)})
    settle(script, informer)
    assert informer.get("ns", "a")["spec"]["replicas"] == 11
    assert informer.get("ns", "b") is None
    assert [o["metadata"]["name"] for o in informer.list("ns", {"app": "x"})] == ["c"]
    assert script.watched_from[0] == "10"


def test_a_late_event_never_takes_the_cache_behind_our_own_write(running: tuple[Script, Informer]) -> None:
    script, informer = running
    informer.observe(obj("a", 30))  # what our write returned
    script.events.put({"type": "MODIFIED", "object": obj("a", 25)})  # an older change, delivered late
    settle(script, informer)
    assert informer.get("ns", "a")["metadata"]["resourceVersion"] == "30"


def test_a_deleted_object_is_not_resurrected_by_a_late_event(running: tuple[Script, Informer]) -> None:
    script, informer = running
    informer.forget(("ns", "b"), 40)
    script.events.put({"type": "MODIFIED", "object": obj("b", 39)})
    settle(script, informer)
    assert informer.get("ns", "b") is None
    script.events.put({"type": "ADDED", "object": obj("b", 41)})  # re-created afterwards: seen
    settle(script, informer)
    assert informer.get("ns", "b")["metadata"]["resourceVersion"] == "41"


def test_410_gone_lists_again_and_watches_from_the_new_list(running: tuple[Script, Informer]) -> None:
    script, informer = running
    script.events.put(ApiException(status=410, reason="Gone"))
    for _ in range(500):
        if informer.lists == 2 and len(script.watched_from) == 2:
            break
        threading.Event().wait(0.01)
    assert informer.lists == 2
    assert script.watched_from == ["10", "21"]
    assert informer.get("ns", "a")["spec"]["replicas"] == 20
    assert informer.get("ns", "b") is None  # gone from the new list


def test_a_dropped_connection_resumes_the_watch_without_listing_again(running: tuple[Script, Informer]) -> None:
    """A restarting apiserver drops every watch: resuming from the last resourceVersion costs
    nothing, a fresh list of every kind would cost the apiserver a full read per informer."""
    script, informer = running
    script.events.put({"type": "MODIFIED", "object": obj("a", 15)})
    script.events.put(urllib3.exceptions.ProtocolError("Response ended prematurely"))
    for _ in range(500):
        if len(script.watched_from) == 2:
            break
        threading.Event().wait(0.01)
    assert script.watched_from == ["10", "15"]
    assert informer.lists == 1
    settle(script, informer)
    assert informer.get("ns", "a")["spec"]["replicas"] == 15


def test_an_error_event_in_the_stream_also_relists(running: tuple[Script, Informer]) -> None:
    script, informer = running
    script.events.put({"type": "ERROR", "object": {"code": 410, "message": "too old resource version"}})
    for _ in range(500):
        if informer.lists == 2:
            break
        threading.Event().wait(0.01)
    assert informer.lists == 2


def test_a_relist_keeps_a_write_newer_than_its_snapshot() -> None:
    script = Script(([obj("a", 5)], "10"))
    informer = Informer("t", script.lister, script.watcher, on_stop=lambda: script.events.put(None)).start()
    try:
        assert informer.wait_synced(10)
        informer.observe(obj("a", 50))
        informer._relist()  # a list whose snapshot (rv 10) predates our write
        assert informer.get("ns", "a")["metadata"]["resourceVersion"] == "50"
    finally:
        informer.stop()


def test_beyond_its_bound_it_stops_serving_instead_of_growing() -> None:
    script = Script(([obj("a", 1), obj("b", 2)], "3"))
    informer = Informer("t", script.lister, script.watcher, max_objects=2,
                        on_stop=lambda: script.events.put(None)).start()
    try:
        assert informer.wait_synced(10)
        assert informer.serving
        script.events.put({"type": "ADDED", "object": obj("c", 4)})
        for _ in range(500):
            if informer.overflowed:
                break
            threading.Event().wait(0.01)
        assert informer.overflowed and not informer.serving
        assert len(informer) == 2
    finally:
        informer.stop()


def test_stop_ends_the_thread() -> None:
    script = Script(([], "1"))
    informer = Informer("t", script.lister, script.watcher, on_stop=lambda: script.events.put(None)).start()
    assert informer.wait_synced(10)
    informer.stop(timeout=10)
    assert not informer.alive
    assert not informer.serving


def test_objects_handed_out_are_copies(running: tuple[Script, Informer]) -> None:
    _, informer = running
    informer.get("ns", "a")["spec"]["replicas"] = 999
    assert informer.get("ns", "a")["spec"]["replicas"] == 5


@pytest.mark.parametrize(("selector", "parsed"), [
    ("", {}), ("a=b", {"a": "b"}), ("a==b,c", {"a": "b", "c": None}),
    ("a!=b", None), ("a in (b)", None), ("!a", None),
])
def test_selectors_the_cache_evaluates(selector: str, parsed: Any) -> None:
    assert parse_selector(selector) == parsed


def test_a_list_is_served_only_when_narrower_than_what_the_informer_holds() -> None:
    held = {"vigil.dev/modeldeployment": None}
    assert _narrower({"vigil.dev/modeldeployment": "m1"}, held)
    assert not _narrower({"app": "x"}, held)
    assert _narrower({"app": "x"}, {})


def test_the_label_index_finds_exactly_what_a_scan_finds() -> None:
    items = [obj(f"d{i}", i + 1, ns=f"ns{i % 2}", **{"vigil.dev/modeldeployment": f"m{i % 3}"}) for i in range(12)]
    script = Script((items, "100"))
    informer = Informer("t", script.lister, script.watcher, index_label="vigil.dev/modeldeployment",
                        selector={"vigil.dev/modeldeployment": None}, on_stop=lambda: script.events.put(None)).start()
    try:
        assert informer.wait_synced(10)
        informer.observe(obj("d0", 200, ns="ns0", **{"vigil.dev/modeldeployment": "m2"}))  # relabelled
        informer.forget(("ns1", "d1"), 201)
        informer.observe(obj("new", 202, ns="ns1", **{"vigil.dev/modeldeployment": "m0"}))
        for ns in ("ns0", "ns1"):
            for md in ("m0", "m1", "m2"):
                wanted = {"vigil.dev/modeldeployment": md}
                by_index = [o["metadata"]["name"] for o in informer.list(ns, wanted)]
                by_scan = sorted(o["metadata"]["name"] for o in informer.list(None, wanted)
                                 if o["metadata"]["namespace"] == ns)
                assert by_index == by_scan, (ns, md)
        assert [o["metadata"]["name"] for o in informer.list("ns0", {"vigil.dev/modeldeployment": "m2"})] == \
            ["d0", "d2", "d8"]
    finally:
        informer.stop()
