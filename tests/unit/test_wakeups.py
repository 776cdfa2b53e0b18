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
