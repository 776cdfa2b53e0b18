"""The kopf handlers: one daemon per ModelDeployment drives its loop; watch events wake it.

Run with `kopf run -m vigil.handlers.operator --all-namespaces` or `vigil operator`.
"""

from __future__ import annotations

import logging
from typing import Any

import kopf
from kubernetes.client.exceptions import ApiException

from vigil.api import GROUP, VERSION
from vigil.handlers.config import WIRING, reconciler, waker
from vigil.kube.client import LABEL_MD

log = logging.getLogger("vigil.operator")
MIN_SLEEP, MAX_SLEEP = 0.5, 60.0


@kopf.on.startup()
def _settings(settings: kopf.OperatorSettings, **_: Any) -> None:
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


@kopf.daemon(GROUP, VERSION, "modeldeployments", cancellation_timeout=10.0)
def modeldeployment_loop(name: str, namespace: str, stopped: kopf.DaemonStopped, **_: Any) -> None:
    """observe -> decide -> act -> record, again after the decision's requeue delay or a wake-up."""
    wake = waker(namespace, name)
    rec = reconciler()
    while not stopped:
        wake.clear()
        body = rec.kube.get_modeldeployment(namespace, name)
        if body is None:
            return
        delay = 2.0
        try:
            delay = rec.reconcile(body).requeue_after
        except ApiException as err:
            if err.status == 409:
                delay = MIN_SLEEP  # someone wrote status after our read: read again
            else:
                log.exception("reconcile of %s/%s failed: %s", namespace, name, err.reason)
        except Exception:  # noqa: BLE001 - the loop must survive; the next pass retries
            log.exception("reconcile of %s/%s failed", namespace, name)
        waited = 0.0
        delay = min(max(delay, MIN_SLEEP), MAX_SLEEP)
        while waited < delay and not stopped and not wake.is_set():
            wake.wait(0.25)
            waited += 0.25


@kopf.on.event(GROUP, VERSION, "modeldeployments")
def _md_changed(name: str, namespace: str, **_: Any) -> None:
    waker(namespace, name).set()


@kopf.on.event("apps", "v1", "deployments", labels={LABEL_MD: kopf.PRESENT})
def _workload_changed(labels: dict[str, str], namespace: str, **_: Any) -> None:
    waker(namespace, labels[LABEL_MD]).set()


@kopf.on.event(GROUP, VERSION, "riskpolicies")
def _policy_changed(namespace: str, **_: Any) -> None:
    for (ns, _name), event in list(WIRING.wakers.items()):
        if ns == namespace:
            event.set()
