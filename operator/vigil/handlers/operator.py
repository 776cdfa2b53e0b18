"""The kopf handlers: one daemon per ModelDeployment drives its loop; watch events wake it.

Run with `kopf run -m vigil.handlers.operator --all-namespaces` or `vigil operator`.

Fail-safe rules (docs/reliability.md):
- one pass at a time per ModelDeployment (its daemon awaits each pass before the next);
- passes run on two bounded pools: `routine` for analyses, `priority` for manual controls and
  rollbacks in progress, so N slow models can hold at most the routine pool, never an abort;
  a routine pass still queued when an abort arrives moves to the priority pool;
- a failed pass is retried after a jittered exponential backoff (per model, reset on success),
  and the fault shows in status (`kube/faults.py`);
- with leader election on (`handlers/leader.py`) only the leader runs passes; followers keep
  watching and wake every daemon the moment they acquire the Lease.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import kopf
import urllib3
from kubernetes.client.exceptions import ApiException

from vigil.api import GROUP, VERSION
from vigil.api.names import ANN_ABORT, ANN_PAUSED, ANN_PROMOTE
from vigil.handlers import health, leader
from vigil.handlers.config import (
    WIRING,
    forget,
    observed,
    reconciler,
    wake,
    wake_all,
    wake_on_change,
    waker,
)
from vigil.kube import faults, resilience
from vigil.kube.client import LABEL_MD
from vigil.observability import heap, logs
from vigil.reconciler import Reconciler

log = logging.getLogger("vigil.operator")
MIN_SLEEP, MAX_SLEEP = 0.5, 60.0
FOLLOWER_POLL = 1.0  # a follower's daemons re-check leadership this often (and on every wake-up)
TICK_SECONDS = 10.0  # liveness ticks through each pool
ROUTINE, PRIORITY = "routine", "priority"
ACTIVE_PHASES = {"Pending", "Shadow", "Canary", "Promoting", "Holdback", "Paused"}

BACKOFF = resilience.PassBackoff(initial=1.0, maximum=60.0)
CONFLICT_BACKOFF = resilience.PassBackoff(initial=0.5, maximum=10.0)


def _workers(var: str, default: int) -> int:
    raw = os.environ.get(var, str(default)).strip()
    if not raw.isdigit() or int(raw) < 1:
        raise ValueError(f"{var} must be a whole number >= 1, got {raw!r}")
    return int(raw)


@dataclass
class Lanes:
    """The two reconcile pools. Sized from $VIGIL_RECONCILE_WORKERS (routine, default 8) and
    $VIGIL_PRIORITY_WORKERS (priority, default 4)."""

    routine: ThreadPoolExecutor
    priority: ThreadPoolExecutor

    @classmethod
    def from_env(cls) -> Lanes:
        return cls(ThreadPoolExecutor(_workers("VIGIL_RECONCILE_WORKERS", 8), thread_name_prefix="vigil-reconcile"),
                   ThreadPoolExecutor(_workers("VIGIL_PRIORITY_WORKERS", 4), thread_name_prefix="vigil-priority"))

    def pool(self, lane: str) -> ThreadPoolExecutor:
        return self.priority if lane == PRIORITY else self.routine


_LANES: Lanes | None = None
_LANES_LOCK = threading.Lock()


def lanes() -> Lanes:
    global _LANES
    with _LANES_LOCK:
        if _LANES is None:
            _LANES = Lanes.from_env()
        return _LANES


@dataclass
class _Runtime:
    """What one operator run started (kopf's loop): stopped again at cleanup."""

    elector: leader.LeaderElector | None = None
    server: health.HealthServer | None = None
    ticker: asyncio.Task | None = None


RUNTIME = _Runtime()


def urgent(body: Any) -> bool:
    """Does this ModelDeployment need a pass ahead of routine analyses: a manual control not yet
    acted on, a rollback in progress, or an intent on the record whose action is unconfirmed."""
    meta = body.get("metadata") or {}
    annotations = meta.get("annotations") or {}
    status = body.get("status") or {}
    phase = status.get("phase")
    if phase == "RollingBack" or status.get("openIntent") is not None:
        return True  # a rollback, or a recorded action not yet confirmed, goes first
    if phase not in ACTIVE_PHASES:
        return False
    if annotations.get(ANN_ABORT) or annotations.get(ANN_PROMOTE):
        return True
    paused = annotations.get(ANN_PAUSED, "").lower() == "true"
    return paused != (phase == "Paused")


@kopf.on.startup()
async def _settings(settings: kopf.OperatorSettings, **_: Any) -> None:
    WIRING.wakers.clear()  # asyncio events belong to one event loop: a restarted operator makes new ones
    settings.posting.level = logging.WARNING
    logs.quiet_successes(WAKE_ONLY)  # one INFO line per watch event otherwise
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="vigil.dev")
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(prefix="vigil.dev")
    settings.watching.server_timeout = 60
    settings.watching.client_timeout = 90  # a watch that went silent is reconnected, never waited on forever
    settings.watching.connect_timeout = 10
    settings.networking.request_timeout = 30
    settings.networking.error_backoffs = [1, 2, 5, 10]
    lanes()
    loop = asyncio.get_running_loop()
    rec = reconciler()
    if leader.enabled():
        client = resilience.build(rec.kube.api_client.configuration, resilience.RetryPolicy(attempts=1))
        elector = leader.LeaderElector(client, leader.LeaseConfig.from_env(),
                                       on_change=lambda leading: _leader_changed(loop, leading))
        WIRING.leadership = elector
        RUNTIME.elector = elector
        elector.start()
    else:
        WIRING.leadership = None
    port = health.health_port()
    if port is not None:
        probe = resilience.ResilientApiClient(rec.kube.api_client.configuration, policy=resilience.RetryPolicy(
            attempts=1, connect_timeout=2.0, read_timeout=3.0))
        RUNTIME.server = health.HealthServer(health.HEARTBEAT, lambda: _apiserver_ok(probe), health.stale_after())
        bound = await RUNTIME.server.start(port)
        log.info("health probes on :%d (/healthz, /readyz)", bound)
    RUNTIME.ticker = asyncio.create_task(_tick(heap.interval()))


def _apiserver_ok(client: Any) -> bool:
    from kubernetes import client as k8s

    k8s.VersionApi(client).get_code()
    return True


def _leader_changed(loop: asyncio.AbstractEventLoop, leading: bool) -> None:
    try:
        from vigil.observability import metrics as operator_metrics
    except ImportError:  # the metrics module is optional
        operator_metrics = None  # type: ignore[assignment]
    if operator_metrics is not None:
        with contextlib.suppress(Exception):
            operator_metrics.set_leader(leading)
    if leading and not loop.is_closed():
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(wake_all)


async def _tick(trim_every: float = 0.0) -> None:
    """Liveness: a tiny task through each pool every TICK_SECONDS; the heartbeat moves only when
    a pool really runs tasks (an idle pool's tick runs at once, a jammed one's never). Every
    `trim_every` seconds (0: never) it also hands free heap memory back (`observability.heap`)."""
    pending: dict[str, Future] = {}
    trim = heap.trimmer() if trim_every > 0 else None
    trimmed = time.monotonic()
    while True:
        if trim is not None and time.monotonic() - trimmed >= trim_every:
            await asyncio.to_thread(trim)  # tens of ms on a large heap: not on the event loop
            trimmed = time.monotonic()
        current = lanes()
        for lane in (ROUTINE, PRIORITY):
            if lane not in pending or pending[lane].done():
                with contextlib.suppress(RuntimeError):  # the pool is shutting down
                    pending[lane] = current.pool(lane).submit(health.HEARTBEAT.beat, lane)
        await asyncio.sleep(TICK_SECONDS)


@kopf.on.cleanup()
async def _cleanup(**_: Any) -> None:
    if RUNTIME.ticker is not None:
        RUNTIME.ticker.cancel()
        RUNTIME.ticker = None
    if RUNTIME.server is not None:
        await RUNTIME.server.stop()
        RUNTIME.server = None
    if RUNTIME.elector is not None:
        elector, RUNTIME.elector = RUNTIME.elector, None
        await asyncio.get_running_loop().run_in_executor(None, elector.stop)
    if WIRING.cache is not None:  # a stopped cache serves nothing: reads fall back to the API
        cache, WIRING.cache = WIRING.cache, None
        await asyncio.get_running_loop().run_in_executor(None, cache.stop)


@kopf.on.login()
def _login(**kwargs: Any) -> kopf.ConnectionInfo | None:
    """Use the same credentials as the reconciler (kubeconfig, in-cluster, or injected)."""
    cfg = reconciler().kube.api_client.configuration
    token = (cfg.api_key or {}).get("authorization", "")
    return kopf.ConnectionInfo(
        server=cfg.host,
        ca_path=cfg.ssl_ca_cert,
        insecure=not cfg.verify_ssl,
        certificate_path=cfg.cert_file,
        private_key_path=cfg.key_file,
        scheme="Bearer" if token else None,
        token=token.removeprefix("Bearer ").strip() or None,
    )


@kopf.daemon(GROUP, VERSION, "modeldeployments", cancellation_timeout=3.0)
async def modeldeployment_loop(name: str, namespace: str, uid: str, body: kopf.Body, stopped: kopf.DaemonStopped,
                               **_: Any) -> None:
    """observe -> decide -> act -> record, again after the decision's requeue delay or a wake-up.

    The daemon itself only waits (async, so thousands cost no threads); each pass runs on a
    reconcile pool, because the Kubernetes client blocks. `body` is kopf's live view of the
    object: it says whether the next pass is urgent.
    """
    loop = asyncio.get_running_loop()
    woken = waker(namespace, name, uid)
    rec = reconciler()
    try:
        while not stopped:
            woken.clear()
            if not WIRING.leading():
                delay: float | None = FOLLOWER_POLL
            else:
                delay = await _run_pass(rec, body, namespace, name, uid, woken)
            if delay is None:
                return  # this object is gone (a re-created one has its own daemon)
            deadline = loop.time() + min(max(delay, MIN_SLEEP), MAX_SLEEP)
            while not stopped and not woken.is_set() and loop.time() < deadline:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(woken.wait(), timeout=min(1.0, deadline - loop.time()))
    finally:
        forget(namespace, name, uid)


async def _run_pass(rec: Reconciler, body: Any, namespace: str, name: str, uid: str,
                    woken: asyncio.Event) -> float | None:
    """One pass on the right pool. A routine pass that is still queued when the object becomes
    urgent (an abort arrived) is taken out of the queue and run on the priority pool instead;
    one that already runs is awaited (it is bounded by the client timeouts)."""
    lane = PRIORITY if urgent(body) else ROUTINE
    fut = _submit(lane, rec, namespace, name, uid)
    waiting = asyncio.wrap_future(fut)
    if lane == PRIORITY:
        return await waiting
    rewake = False
    watcher = asyncio.ensure_future(woken.wait())
    try:
        while not waiting.done():
            await asyncio.wait({waiting, watcher}, return_when=asyncio.FIRST_COMPLETED)
            if waiting.done() or not watcher.done():
                break
            rewake = True
            woken.clear()
            if urgent(body) and fut.cancel():  # still queued: run it ahead of the routine queue
                QUEUE.add(-1)
                fut = _submit(PRIORITY, rec, namespace, name, uid)
                waiting = asyncio.wrap_future(fut)
                break
            watcher = asyncio.ensure_future(woken.wait())
        return await waiting
    finally:
        watcher.cancel()
        if rewake:
            woken.set()  # something changed while this pass waited: look again right after it


def shutdown(grace: float = 2.0) -> list[str]:
    """Stop the reconcile pools after kopf stopped: a pass blocked in a slow Prometheus query or
    apiserver call must not keep the process alive past its grace period (the kubelet would wait
    for SIGKILL). Returns the names of the threads still busy, which the caller then abandons."""
    global _LANES
    with _LANES_LOCK:
        current, _LANES = _LANES, None
    if current is not None:
        current.routine.shutdown(wait=False, cancel_futures=True)
        current.priority.shutdown(wait=False, cancel_futures=True)
    deadline = time.monotonic() + grace
    busy = [t for t in threading.enumerate() if t.name.startswith(("vigil-reconcile", "vigil-priority"))]
    for thread in busy:
        thread.join(max(deadline - time.monotonic(), 0))
    return [t.name for t in busy if t.is_alive()]


class _Queue:
    """Passes submitted to a pool and not started yet: the operator's queue depth metric."""

    def __init__(self) -> None:
        self._lock, self.depth = threading.Lock(), 0

    def add(self, n: int) -> None:
        with self._lock:
            self.depth = max(self.depth + n, 0)
            depth = self.depth
        with contextlib.suppress(ImportError):
            from vigil.observability.metrics import set_queue_depth

            set_queue_depth(depth)


QUEUE = _Queue()


def _submit(lane: str, rec: Reconciler, namespace: str, name: str, uid: str) -> Any:
    QUEUE.add(1)
    return lanes().pool(lane).submit(_one_pass, rec, namespace, name, uid, lane)


def _one_pass(rec: Reconciler, namespace: str, name: str, uid: str, lane: str = ROUTINE) -> float | None:
    """One reconcile, its log lines tagged with the ModelDeployment; returns the delay before
    the next one (None when this object is gone)."""
    QUEUE.add(-1)
    with logs.bound(namespace=namespace, name=name):
        return _pass(rec, namespace, name, uid, lane)


def _pass(rec: Reconciler, namespace: str, name: str, uid: str, lane: str) -> float | None:
    try:
        if not WIRING.leading():
            return FOLLOWER_POLL
        body = rec.kube.get_modeldeployment(namespace, name)
        if body is None or body["metadata"].get("uid") != uid:
            return None
        delay = rec.reconcile(body).requeue_after
        BACKOFF.succeeded(namespace, name)
        CONFLICT_BACKOFF.succeeded(namespace, name)
        WIRING.faults.clear(namespace, name, faults.API)
        _note_metrics_fault(rec, namespace, body)
        shown = [c for c in (body.get("status") or {}).get("conditions") or [] if c.get("type") in faults.FAULT_TYPES]
        if shown or WIRING.faults.get(namespace, name):  # only then can status lag behind the ledger
            _sync_faults(rec, namespace, name)
        return delay
    except resilience.NotLeader:
        return FOLLOWER_POLL  # leadership lapsed mid-pass: nothing more was written
    except ApiException as err:
        if err.status == 409:  # someone wrote after our read: read again (said, so a cut-short pass shows)
            log.info("pass of %s/%s met a conflict (the object changed after it was read); reading it again",
                     namespace, name)
            return CONFLICT_BACKOFF.failed(namespace, name)
        log.exception("reconcile of %s/%s failed: %s", namespace, name, err.reason)
        return _failed(rec, namespace, name, f"ApiError{err.status}", err)
    except urllib3.exceptions.HTTPError as err:  # timeouts and dropped connections, after the client's retries
        log.error("reconcile of %s/%s failed: %s", namespace, name, err)
        return _failed(rec, namespace, name, type(err).__name__, err)
    except Exception as err:
        log.exception("reconcile of %s/%s failed", namespace, name)
        return _failed(rec, namespace, name, type(err).__name__, None)
    finally:
        health.HEARTBEAT.beat(lane)


def _failed(rec: Reconciler, namespace: str, name: str, reason: str, err: BaseException | None) -> float:
    rec.failed(namespace, name, reason)
    if err is not None:
        WIRING.faults.set(namespace, name, faults.api_fault(err))
        _sync_faults(rec, namespace, name)
    return BACKOFF.failed(namespace, name)


def _note_metrics_fault(rec: Reconciler, namespace: str, body: dict[str, Any]) -> None:
    """Copy the provider's verdict on Prometheus for this model into the fault ledger."""
    fault_of = getattr(rec.metrics, "fault", None)
    model = (body.get("spec") or {}).get("model")
    if fault_of is None or not model:
        return
    found = fault_of(namespace, model)
    name = body["metadata"]["name"]
    if found is None:
        WIRING.faults.clear(namespace, name, faults.METRICS)
    else:
        WIRING.faults.set(namespace, name, faults.Fault(faults.METRICS, found[0], found[1]))


def _sync_faults(rec: Reconciler, namespace: str, name: str) -> None:
    """Write the fault conditions when status does not show them yet (one GET + PATCH, only then)."""
    kube = rec.kube
    if not isinstance(kube, faults.FaultAwareKube):
        return
    try:
        fresh = kube.get_modeldeployment(namespace, name)
    except Exception as err:  # noqa: BLE001 - the apiserver may be what is failing
        log.info("fault conditions of %s/%s not written: %s", namespace, name, err)
        return
    if fresh is not None:
        kube.sync_faults(fresh)


@kopf.on.event(GROUP, VERSION, "modeldeployments")
async def _md_changed(body: kopf.Body, **_: Any) -> None:
    wake_on_change(body)


@kopf.on.event("apps", "v1", "deployments", labels={LABEL_MD: kopf.PRESENT})
async def _workload_changed(type: str | None, body: kopf.Body, labels: dict[str, str], namespace: str,
                            **_: Any) -> None:
    observed(type, body)
    wake(namespace, labels[LABEL_MD])


@kopf.on.event(GROUP, VERSION, "riskpolicies")
async def _policy_changed(type: str | None, body: kopf.Body, namespace: str, **_: Any) -> None:
    observed(type, body)
    wake(namespace)


# Other modules register their handlers by being imported here (one line each, below).
from vigil.handlers import admission, checkpoints, telemetry  # noqa: E402,F401  (registers their handlers)

WAKE_ONLY = tuple(h.__qualname__ for h in (_md_changed, _workload_changed, _policy_changed, telemetry._forget_deleted))
"""The watch-event handlers that only wake a daemon or forget an object: kopf's success line
for them is not logged (`logs.QuietSuccesses`)."""
