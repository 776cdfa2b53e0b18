"""How the operator process is wired: API client, metrics provider, analyzer.

Read from the environment at start-up (VIGIL_PROMETHEUS_URL, VIGIL_PROMETHEUS_TOKEN,
VIGIL_PROMETHEUS_CA, VIGIL_PROMETHEUS_INSECURE, VIGIL_PROMETHEUS_STEP_SECONDS,
VIGIL_PROMETHEUS_TIMEOUT_SECONDS, VIGIL_KUBE_READ_TIMEOUT_SECONDS); tests and the demo may call
`configure()` before the operator starts to inject a provider or an analysis double.

The API client the operator builds itself is `kube/resilience.py`'s: timeouts on every call,
bounded jittered retries, and writes fenced by `WIRING.leadership` (leader election).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from kubernetes import client as k8s
from kubernetes import config as k8s_config

from vigil.core.decide import Analyzer, default_analyzer
from vigil.handlers import env
from vigil.kube import resilience
from vigil.kube.faults import FaultAwareKube, FaultLedger
from vigil.metrics import MetricsProvider
from vigil.reconciler import Reconciler


@dataclass
class Wiring:
    api_client: k8s.ApiClient | None = None
    metrics: MetricsProvider | None = None
    analyzer: Analyzer = default_analyzer
    wakers: dict[tuple[str, str, str], asyncio.Event] = field(default_factory=dict)  # (ns, name, uid); kopf's loop only
    seen: dict[tuple[str, str, str], tuple[Any, ...]] = field(default_factory=dict)  # what last woke each daemon
    reconciler: Reconciler | None = None
    signer: Any = None  # a vigil.audit.chain.RecordSigner; None until one is configured
    leadership: Any = None  # has is_leader(); None: leader election off, this replica always acts
    faults: FaultLedger = field(default_factory=FaultLedger)
    cache: Any = None  # vigil.kube.cache.WatchCache; None: every read goes to the API

    def leading(self) -> bool:
        return self.leadership is None or bool(self.leadership.is_leader())


WIRING = Wiring()


def configure(**kwargs: Any) -> None:
    """Override parts of the wiring (before the operator starts)."""
    if "api_client" in kwargs and WIRING.cache is not None:
        WIRING.cache.stop()  # it watches through the old client
        WIRING.cache = None
    for key, value in kwargs.items():
        setattr(WIRING, key, value)
    WIRING.reconciler = None


def kube_configuration() -> k8s.Configuration:
    """In-cluster credentials, else $KUBECONFIG; a connection pool big enough for the workers."""
    cfg = k8s.Configuration()
    try:
        k8s_config.load_incluster_config(client_configuration=cfg)
    except k8s_config.ConfigException:
        k8s_config.load_kube_config(config_file=os.environ.get("KUBECONFIG"), client_configuration=cfg)
    cfg.connection_pool_maxsize = 32
    return cfg


_seconds = env.seconds


def _api_client() -> k8s.ApiClient:
    """Timeouts and bounded retries on every call; writes only while this replica leads."""
    policy = resilience.RetryPolicy(read_timeout=_seconds("VIGIL_KUBE_READ_TIMEOUT_SECONDS", 15.0))
    return resilience.build(kube_configuration(), policy, fence=WIRING.leading)


def _default_metrics() -> MetricsProvider | None:
    url = os.environ.get("VIGIL_PROMETHEUS_URL")
    if not url:
        return None
    from vigil.metrics import PrometheusConfig, PrometheusProvider

    config = PrometheusConfig(
        url=url,
        bearer_token=os.environ.get("VIGIL_PROMETHEUS_TOKEN") or None,
        ca_file=os.environ.get("VIGIL_PROMETHEUS_CA") or None,
        verify_tls=os.environ.get("VIGIL_PROMETHEUS_INSECURE", "") != "true",
        step_seconds=float(os.environ.get("VIGIL_PROMETHEUS_STEP_SECONDS", "60")),
        timeout_seconds=_seconds("VIGIL_PROMETHEUS_TIMEOUT_SECONDS", 10.0),
    )
    return PrometheusProvider(config)


def audit_signer() -> Any:
    """The Ed25519 key from $VIGIL_AUDIT_KEY_FILE (a Secret only the operator's ServiceAccount
    reads). A broken key file stops the operator; a missing one leaves records unsigned, with a
    warning, so an install without a key still works (docs/audit.md says how to add one)."""
    from vigil.audit.signing import load_signer_from_env

    return load_signer_from_env(missing_ok=True)


def _guard_reader(metrics: MetricsProvider | None) -> Any:
    """The artifact and error-budget guards read the same Prometheus as the analysis."""
    from vigil.metrics import PrometheusProvider
    from vigil.metrics.guards import GuardReader

    if isinstance(metrics, PrometheusProvider):
        return GuardReader(metrics.client, metrics.config.namespace_label)
    return None


def watch_cache(api_client: k8s.ApiClient) -> Any:
    """Informer-style caches of the routes, workloads and policies a pass reads, over the
    namespaces the operator watches ($VIGIL_WATCH_NAMESPACES, set by `vigil operator -n`): a
    namespaced install may not list cluster-wide. Until it has listed, reads go to the API."""
    from vigil.kube.cache import WatchCache

    namespaces = [n.strip() for n in os.environ.get("VIGIL_WATCH_NAMESPACES", "").split(",") if n.strip()] or None
    return WatchCache(api_client, namespaces=namespaces).start()


def reconciler() -> Reconciler:
    if WIRING.reconciler is None:
        if WIRING.api_client is None:
            WIRING.api_client = _api_client()
        if WIRING.metrics is None:
            WIRING.metrics = _default_metrics()
        if WIRING.signer is None:
            WIRING.signer = audit_signer()
        kube = FaultAwareKube(WIRING.api_client, WIRING.faults)
        if WIRING.cache is None and os.environ.get("VIGIL_WATCH_CACHE", "on") != "off":
            WIRING.cache = watch_cache(WIRING.api_client)
        kube.attach_cache(WIRING.cache)
        WIRING.reconciler = Reconciler(kube, metrics=WIRING.metrics, analyzer=WIRING.analyzer,
                                       signer=WIRING.signer, guards=_guard_reader(WIRING.metrics))
    return WIRING.reconciler


def waker(namespace: str, name: str, uid: str) -> asyncio.Event:
    """The event that wakes one ModelDeployment object's daemon early. Keyed by UID too: a
    ModelDeployment deleted and re-created under the same name is another object with a
    daemon of its own, and the old daemon's end must not take the new one's waker away."""
    return WIRING.wakers.setdefault((namespace, name, uid), asyncio.Event())


def wake_all() -> None:
    """Wake every daemon (this replica just became the leader: act at once)."""
    for event in list(WIRING.wakers.values()):
        event.set()


def wake(namespace: str, name: str | None = None) -> None:
    """Wake the daemons of `name` (every ModelDeployment of the namespace when None)."""
    for (ns, md, _uid), event in list(WIRING.wakers.items()):
        if ns == namespace and name in (None, md):
            event.set()


def observed(event_type: str | None, body: Mapping[str, Any]) -> None:
    """Put what kopf's watch just saw into the watch cache before a daemon is woken for it.

    kopf and the cache watch on separate streams; without this, a pass woken by kopf's event
    can read the cache before the cache's own watch delivered the change (a new RiskPolicy not
    there yet) and then sleep a whole requeue delay. The cache's staleness rule (only a higher
    resourceVersion replaces an entry) makes feeding it twice harmless."""
    if WIRING.cache is not None and (body.get("metadata") or {}).get("name"):
        WIRING.cache.apply(event_type, body)


def wake_on_change(body: Mapping[str, Any]) -> None:
    """Wake a ModelDeployment's daemon when the object changed in what a pass acts on: its spec
    (generation), annotations (controls, approvals), labels or deletion. Not when only status
    changed: that is the operator's own write, and waking on it would follow every pass that
    writes status with a second pass that finds nothing to do (twice the passes and reads)."""
    meta = body.get("metadata") or {}
    key = (meta.get("namespace", ""), meta.get("name", ""), meta.get("uid", ""))
    if key not in WIRING.wakers:
        return  # no daemon to wake (not started yet, or ended): remember nothing it would not forget
    seen = (meta.get("generation"), repr(sorted((meta.get("annotations") or {}).items())),
            repr(sorted((meta.get("labels") or {}).items())), meta.get("deletionTimestamp"))
    if WIRING.seen.get(key) == seen:
        return
    WIRING.seen[key] = seen
    wake(key[0], key[1])


def forget(namespace: str, name: str, uid: str) -> None:
    """Drop the waker of a ModelDeployment object whose daemon ended (deleted or stopping)."""
    WIRING.wakers.pop((namespace, name, uid), None)
    WIRING.seen.pop((namespace, name, uid), None)
