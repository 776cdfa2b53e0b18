"""Leader election on a `coordination.k8s.io/v1` Lease, so that of N replicas exactly one acts.

The rules are client-go's: the holder renews every `renew_period`; another replica takes the
Lease only after it has seen the same record unchanged for `lease_duration` on its *own* clock
(clocks of different machines are never compared); every write is guarded by the
resourceVersion that was read, so two candidates cannot both win. A holder trusts its leadership
only until `renew_deadline` after the start of its last successful renewal, which is shorter
than `lease_duration`: it stops acting before anyone else could take the Lease. The write fence
in `kube/resilience.py` asks `is_leader()` before every write the operator sends.

Enabled with `VIGIL_LEADER_ELECTION=true` (or `vigil operator --leader-elect`). Identity:
`$VIGIL_POD_NAME`, else `<hostname>-<pid>`. The Lease lives in `$VIGIL_POD_NAMESPACE` (else
`$VIGIL_LEADER_NAMESPACE`, else `default`) under `$VIGIL_LEADER_LEASE` (default `vigil-operator`).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

log = logging.getLogger("vigil.leader")


def enabled() -> bool:
    return os.environ.get("VIGIL_LEADER_ELECTION", "").strip().lower() in ("1", "true", "yes")


def default_identity() -> str:
    return os.environ.get("VIGIL_POD_NAME") or f"{socket.gethostname()}-{os.getpid()}"


@dataclass(frozen=True)
class LeaseConfig:
    """Timing of the election; `renew_deadline < lease_duration` is what makes it safe."""

    namespace: str
    name: str = "vigil-operator"
    identity: str = ""
    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    renew_period: float = 5.0
    retry_period: float = 2.0

    def __post_init__(self) -> None:
        if not self.namespace:
            raise ValueError("LeaseConfig.namespace is required (set VIGIL_POD_NAMESPACE)")
        if not self.identity:
            raise ValueError("LeaseConfig.identity is required (set VIGIL_POD_NAME)")
        if not 0 < self.renew_period < self.renew_deadline < self.lease_duration:
            raise ValueError("LeaseConfig: need 0 < renew_period < renew_deadline < lease_duration, got "
                             f"{self.renew_period} / {self.renew_deadline} / {self.lease_duration}")
        if self.retry_period <= 0:
            raise ValueError(f"LeaseConfig.retry_period must be > 0, got {self.retry_period}")

    @classmethod
    def from_env(cls) -> LeaseConfig:
        namespace = (os.environ.get("VIGIL_POD_NAMESPACE") or os.environ.get("VIGIL_LEADER_NAMESPACE")
                     or "default")
        return cls(namespace=namespace, name=os.environ.get("VIGIL_LEADER_LEASE", "vigil-operator"),
                   identity=default_identity())


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class LeaderElector:
    """Acquire, renew and release one Lease. `step()` is one attempt (tests drive it directly);
    `start()` runs it on a thread until `stop()`, which releases the Lease if held."""

    def __init__(self, api_client: k8s.ApiClient, config: LeaseConfig,
                 on_change: Callable[[bool], None] | None = None,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.api = k8s.CoordinationV1Api(api_client)
        self.config = config
        self.on_change = on_change
        self._monotonic = monotonic
        self._valid_until = 0.0  # monotonic time until which this replica may act as leader
        self._leading = False
        self._observed: tuple[Any, float] | None = None  # (other holder's record, when we first saw it)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._timeout = (min(2.0, config.renew_deadline / 4), config.renew_deadline / 2)

    # ------------------------------------------------------------ state
    def is_leader(self) -> bool:
        """True only while the last renewal is younger than the renew deadline."""
        return self._leading and self._monotonic() < self._valid_until

    def _set(self, leading: bool) -> None:
        if leading != self._leading:
            self._leading = leading
            log.warning("%s %s the leader Lease %s/%s", self.config.identity,
                        "acquired" if leading else "lost", self.config.namespace, self.config.name)
            if self.on_change is not None:
                try:
                    self.on_change(leading)
                except Exception:
                    log.exception("leader change listener failed")

    # ------------------------------------------------------------ one attempt
    def step(self) -> bool:
        """Try to acquire or renew once; returns whether this replica leads now."""
        started = self._monotonic()
        try:
            won = self._try(started)
        except ApiException as err:
            log.warning("leader election: %s %s", err.status, err.reason)
            won = False
        except Exception as err:  # noqa: BLE001 - timeouts, refused connections: keep trying
            log.warning("leader election: %s", err)
            won = False
        if won:
            self._valid_until = started + self.config.renew_deadline
        self._set(self._monotonic() < self._valid_until)
        return self.is_leader()

    def _try(self, started: float) -> bool:
        c = self.config
        try:
            lease = self.api.read_namespaced_lease(c.name, c.namespace, _request_timeout=self._timeout)
        except ApiException as err:
            if err.status != 404:
                raise
            return self._create()
        spec = lease.spec or k8s.V1LeaseSpec()
        holder = spec.holder_identity or ""
        if holder != c.identity and holder:
            self._valid_until = 0.0  # someone else holds it: whatever we thought, we do not lead
            record = (holder, spec.renew_time, spec.lease_duration_seconds, lease.metadata.resource_version)
            if self._observed is None or self._observed[0] != record:
                self._observed = (record, started)
                return False
            duration = spec.lease_duration_seconds or c.lease_duration
            if started - self._observed[1] < duration:
                return False  # held by another replica that may still be renewing
        transitions = (spec.lease_transitions or 0) + (0 if holder == c.identity else 1)
        now = _now()
        lease.spec = k8s.V1LeaseSpec(
            holder_identity=c.identity, lease_duration_seconds=int(c.lease_duration),
            acquire_time=spec.acquire_time if holder == c.identity and spec.acquire_time else now,
            renew_time=now, lease_transitions=transitions,
        )
        try:  # replace carries metadata.resourceVersion: a concurrent writer makes this a 409
            self.api.replace_namespaced_lease(c.name, c.namespace, lease, _request_timeout=self._timeout)
        except ApiException as err:
            if err.status == 409:
                return False
            raise
        self._observed = None
        return True

    def _create(self) -> bool:
        c = self.config
        now = _now()
        body = k8s.V1Lease(metadata=k8s.V1ObjectMeta(name=c.name, namespace=c.namespace),
                           spec=k8s.V1LeaseSpec(holder_identity=c.identity, lease_duration_seconds=int(c.lease_duration),
                                                acquire_time=now, renew_time=now, lease_transitions=0))
        try:
            self.api.create_namespaced_lease(c.namespace, body, _request_timeout=self._timeout)
        except ApiException as err:
            if err.status == 409:
                return False  # another replica created it first
            raise
        return True

    def release(self) -> None:
        """Give the Lease up at a clean stop so another replica takes over at once."""
        if not self.is_leader():
            return
        c = self.config
        self._leading, self._valid_until = False, 0.0
        try:
            lease = self.api.read_namespaced_lease(c.name, c.namespace, _request_timeout=self._timeout)
            if (lease.spec.holder_identity or "") != c.identity:
                return
            lease.spec.holder_identity = ""
            lease.spec.lease_duration_seconds = 1
            self.api.replace_namespaced_lease(c.name, c.namespace, lease, _request_timeout=self._timeout)
        except Exception as err:  # noqa: BLE001 - the Lease then simply expires
            log.warning("leader election: could not release the Lease: %s", err)
        finally:
            if self.on_change is not None:
                self.on_change(False)

    # ------------------------------------------------------------ thread
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="vigil-leader", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            leading = self.step()
            self._stop.wait(self.config.renew_period if leading else self.config.retry_period)

    def stop(self, release: bool = True) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self.config.renew_deadline)
        if release:
            self.release()


class AlwaysLeader:
    """Leader election off: this replica always acts (one replica, or a test)."""

    def is_leader(self) -> bool:
        return True

    def stop(self, release: bool = True) -> None:
        pass
