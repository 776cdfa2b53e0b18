"""Lease-based leader election: one leader, takeover only after the Lease expired on the
taker's own clock, and a holder that stops acting before anyone can take over."""

from __future__ import annotations

import copy

import pytest
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException
from vigil.handlers.leader import LeaderElector, LeaseConfig


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


class LeaseStore:
    """An in-memory coordination API with the apiserver's resourceVersion rules."""

    def __init__(self) -> None:
        self.lease: k8s.V1Lease | None = None
        self.rv = 0
        self.down = False
        self.before_replace = None  # a hook that writes "concurrently"

    def _check(self) -> None:
        if self.down:
            raise ApiException(status=503, reason="apiserver down")

    def read_namespaced_lease(self, name, namespace, **_):
        self._check()
        if self.lease is None:
            raise ApiException(status=404, reason="NotFound")
        return copy.deepcopy(self.lease)

    def create_namespaced_lease(self, namespace, body, **_):
        self._check()
        if self.lease is not None:
            raise ApiException(status=409, reason="AlreadyExists")
        self.rv += 1
        body.metadata.resource_version = str(self.rv)
        self.lease = copy.deepcopy(body)
        return body

    def replace_namespaced_lease(self, name, namespace, body, **_):
        self._check()
        if self.before_replace:
            hook, self.before_replace = self.before_replace, None
            hook()
        if body.metadata.resource_version != self.lease.metadata.resource_version:
            raise ApiException(status=409, reason="Conflict")
        self.rv += 1
        body.metadata.resource_version = str(self.rv)
        self.lease = copy.deepcopy(body)
        return body


def elector(store: LeaseStore, clock: Clock, who: str, changes: list | None = None) -> LeaderElector:
    e = LeaderElector(k8s.ApiClient(k8s.Configuration()), LeaseConfig(namespace="ns", identity=who),
                      on_change=(changes.append if changes is not None else None), monotonic=clock)
    e.api = store  # type: ignore[assignment]
    return e


def test_one_leader_and_the_other_waits_while_it_renews() -> None:
    store, clock = LeaseStore(), Clock()
    changes: list[bool] = []
    a, b = elector(store, clock, "a", changes), elector(store, clock, "b")
    assert a.step() and changes == [True]
    for _ in range(10):  # a renews every 5 s; b never gets it, however long it watches
        clock.t += 5
        assert not b.step()
        assert a.step()
    assert store.lease.spec.holder_identity == "a" and store.lease.spec.lease_transitions == 0


def test_a_dead_leader_is_replaced_only_after_it_stopped_acting() -> None:
    store, clock = LeaseStore(), Clock()
    a, b = elector(store, clock, "a"), elector(store, clock, "b")
    assert a.step()
    assert not b.step()  # b sees the record for the first time
    # a dies (no more renewals). b's takeover waits a full lease duration on b's own clock...
    took_over_at = None
    for _ in range(40):
        clock.t += 1
        if b.step():
            took_over_at = clock.t
            break
        assert a.is_leader() or clock.t - 1000 >= 10  # a acts at most until its renew deadline
    assert took_over_at is not None and took_over_at - 1000 >= 15
    # ... and a had stopped acting before that (renew deadline 10 s < lease 15 s)
    assert not a.is_leader()
    assert store.lease.spec.holder_identity == "b" and store.lease.spec.lease_transitions == 1


def test_a_leader_that_cannot_renew_stops_acting_at_its_deadline() -> None:
    store, clock = LeaseStore(), Clock()
    changes: list[bool] = []
    a = elector(store, clock, "a", changes)
    assert a.step()
    store.down = True
    clock.t += 9
    assert a.step()  # renewal failed, but the last one is younger than the deadline
    clock.t += 1.5
    assert not a.step() and not a.is_leader()
    assert changes == [True, False]


def test_two_candidates_racing_for_an_expired_lease_cannot_both_win() -> None:
    store, clock = LeaseStore(), Clock()
    old, b, c = elector(store, clock, "old"), elector(store, clock, "b"), elector(store, clock, "c")
    assert old.step()
    assert not b.step() and not c.step()
    clock.t += 16  # the old holder is gone; both candidates see it expired
    store.before_replace = lambda: c.step()  # c writes between b's read and b's write
    assert not b.step()
    assert c.is_leader() and store.lease.spec.holder_identity == "c"


def test_release_hands_over_at_once() -> None:
    store, clock = LeaseStore(), Clock()
    a, b = elector(store, clock, "a"), elector(store, clock, "b")
    assert a.step()
    a.release()
    assert not a.is_leader()
    assert b.step()


def test_bad_timing_is_refused_with_the_fields_named() -> None:
    with pytest.raises(ValueError, match="renew_deadline < lease_duration"):
        LeaseConfig(namespace="ns", identity="a", lease_duration=10, renew_deadline=10)
    with pytest.raises(ValueError, match="namespace is required"):
        LeaseConfig(namespace="", identity="a")
