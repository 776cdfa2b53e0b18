"""The kopf handlers: one daemon per ModelDeployment drives its loop; watch events wake it.

Run with `kopf run -m vigil.handlers.operator --all-namespaces` or `vigil operator`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import kopf
from kubernetes.client.exceptions import ApiException

from vigil.api import GROUP, VERSION
from vigil.handlers.config import WIRING, forget, reconciler, wake, waker
from vigil.kube.client import LABEL_MD
from vigil.reconciler import Reconciler

log = logging.getLogger("vigil.operator")
MIN_SLEEP, MAX_SLEEP = 0.5, 60.0
POOL = ThreadPoolExecutor(max_workers=int(os.environ.get("VIGIL_RECONCILE_WORKERS", "8")),
                          thread_name_prefix="vigil-reconcile")


@kopf.on.startup()
def _settings(settings: kopf.OperatorSettings, **_: Any) -> None:
    WIRING.wakers.clear()  # asyncio events belong to one event loop: a restarted operator makes new ones
    settings.posting.level = logging.WARNING
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="vigil.dev")
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(prefix="vigil.dev")
    settings.watching.server_timeout = 60
    settings.networking.error_backoffs = [1, 2, 5]


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
async def modeldeployment_loop(name: str, namespace: str, uid: str, stopped: kopf.DaemonStopped, **_: Any) -> None:
    """observe -> decide -> act -> record, again after the decision's requeue delay or a wake-up.

    The daemon itself only waits (async, so thousands cost no threads); each pass runs on the
    shared reconcile pool, because the Kubernetes client blocks.
    """
    loop = asyncio.get_running_loop()
    woken = waker(namespace, name, uid)
    rec = reconciler()
    try:
        while not stopped:
            woken.clear()
            delay = await loop.run_in_executor(POOL, _one_pass, rec, namespace, name, uid)
            if delay is None:
                return  # this object is gone (a re-created one has its own daemon)
            deadline = loop.time() + min(max(delay, MIN_SLEEP), MAX_SLEEP)
            while not stopped and not woken.is_set() and loop.time() < deadline:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(woken.wait(), timeout=min(1.0, deadline - loop.time()))
    finally:
        forget(namespace, name, uid)


def shutdown(grace: float = 2.0) -> list[str]:
    """Stop the reconcile pool after kopf stopped: a pass blocked in a slow Prometheus query or
    apiserver call must not keep the process alive past its grace period (the kubelet would wait
    for SIGKILL). Returns the names of the threads still busy, which the caller then abandons."""
    POOL.shutdown(wait=False, cancel_futures=True)
    deadline = time.monotonic() + grace
    busy = [t for t in threading.enumerate() if t.name.startswith("vigil-reconcile")]
    for thread in busy:
        thread.join(max(deadline - time.monotonic(), 0))
    return [t.name for t in busy if t.is_alive()]


def _one_pass(rec: Reconciler, namespace: str, name: str, uid: str) -> float | None:
    """One reconcile; returns the delay before the next one (None when this object is gone)."""
    try:
        body = rec.kube.get_modeldeployment(namespace, name)
        if body is None or body["metadata"].get("uid") != uid:
            return None
        return rec.reconcile(body).requeue_after
    except ApiException as err:
        if err.status == 409:
            return MIN_SLEEP  # someone wrote status after our read: read again
        log.exception("reconcile of %s/%s failed: %s", namespace, name, err.reason)
        rec.failed(namespace, name, f"ApiError{err.status}")
    except Exception as err:  # noqa: BLE001 - the loop must survive; the next pass retries
        log.exception("reconcile of %s/%s failed", namespace, name)
        rec.failed(namespace, name, type(err).__name__)
    return 2.0


@kopf.on.event(GROUP, VERSION, "modeldeployments")
async def _md_changed(name: str, namespace: str, **_: Any) -> None:
    wake(namespace, name)


@kopf.on.event("apps", "v1", "deployments", labels={LABEL_MD: kopf.PRESENT})
async def _workload_changed(labels: dict[str, str], namespace: str, **_: Any) -> None:
    wake(namespace, labels[LABEL_MD])


@kopf.on.event(GROUP, VERSION, "riskpolicies")
async def _policy_changed(namespace: str, **_: Any) -> None:
    wake(namespace)
