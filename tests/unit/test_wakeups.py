"""What wakes a ModelDeployment's daemon early: a change a pass must act on, not the operator's
own status write (which would double every pass that writes status)."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Iterator
from typing import Any

import pytest
from vigil.handlers.config import WIRING, forget, wake_on_change, waker


def body(**meta: Any) -> dict[str, Any]:
    return {"metadata": {"namespace": "ns", "name": "m", "uid": "u1", "generation": 1,
                         "annotations": {}, "labels": {}, **meta},
            "spec": {"version": "v1"}, "status": {"phase": "Canary"}}


@pytest.fixture
def event() -> Iterator[asyncio.Event]:
    woken = waker("ns", "m", "u1")
    yield woken
    forget("ns", "m", "u1")
    assert ("ns", "m", "u1") not in WIRING.seen


def test_the_first_sight_wakes_and_a_status_only_change_does_not(event: asyncio.Event) -> None:
    first = body()
    wake_on_change(first)
    assert event.is_set()
    event.clear()
    written = copy.deepcopy(first)
    written["status"] = {"phase": "Canary", "analysis": {"outcome": "pass"}}
    written["metadata"]["resourceVersion"] = "99"
    wake_on_change(written)
    assert not event.is_set(), "the operator's own status write woke a second pass"


@pytest.mark.parametrize("change", [
    {"generation": 2},  # the spec changed
    {"annotations": {"vigil.dev/abort": "sha256:x"}},  # a manual control
    {"annotations": {"approved.vigil.dev/u-1": "alice sha256:x"}},  # an approval
    {"labels": {"team": "risk"}},
    {"deletionTimestamp": "2026-12-01T00:00:00Z"},
])
def test_a_change_a_pass_acts_on_wakes(event: asyncio.Event, change: dict[str, Any]) -> None:
    wake_on_change(body())
    event.clear()
    wake_on_change(body(**change))
    assert event.is_set()


def test_an_event_for_an_object_without_a_daemon_leaves_nothing_behind() -> None:
    """A late event after the daemon ended (a deleted object) must not grow the memory forever."""
    wake_on_change(body(uid="gone"))
    assert ("ns", "m", "gone") not in WIRING.seen


def test_a_watched_change_is_in_the_cache_before_the_daemon_wakes(event: asyncio.Event) -> None:
    """kopf's watch and the cache's are separate streams: a RiskPolicy created after its
    ModelDeployment must be readable by the pass that kopf's event wakes, even when the cache's
    own watch has not delivered it yet (else the pass finds no policy and sleeps a minute)."""
    import threading

    from vigil.handlers.config import observed
    from vigil.handlers.operator import _policy_changed
    from vigil.api.names import API_VERSION
    from vigil.kube.cache import Informer, WatchCache

    quiet = threading.Event()

    def watcher(rv: str) -> Any:  # a watch that delivers nothing until the test ends
        quiet.wait(5)
        return iter(())

    informer = Informer("riskpolicies", lambda: ([], "1"), watcher).start()
    assert informer.wait_synced(5)
    cache = WatchCache.__new__(WatchCache)
    cache.informers = {(API_VERSION, "RiskPolicy", None): informer}
    held, WIRING.cache = WIRING.cache, cache
    try:
        policy = {"apiVersion": API_VERSION, "kind": "RiskPolicy",
                  "metadata": {"namespace": "ns", "name": "p", "resourceVersion": "7", "managedFields": [{}]},
                  "spec": {"riskTier": "low"}}
        asyncio.run(_policy_changed(type="ADDED", body=policy, namespace="ns"))
        assert event.is_set()
        got = informer.get("ns", "p")
        assert got is not None and got["spec"] == {"riskTier": "low"}
        observed("DELETED", {**policy, "metadata": {**policy["metadata"], "resourceVersion": "8"}})
        assert informer.get("ns", "p") is None
        observed("ADDED", policy)  # a late copy of the old event cannot bring it back
        assert informer.get("ns", "p") is None
    finally:
        WIRING.cache = held
        quiet.set()
        informer.stop()
