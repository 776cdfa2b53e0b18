"""The only code that talks to the Kubernetes API (plus the routers, which get a `Kube`).

Writes are idempotent: workloads and routes are server-side applied with field manager
`vigil` (the desired state, never "add 10%"); status is merge-patched with the resourceVersion
that was read, so a stale writer gets a conflict instead of overwriting newer memory.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import threading
from typing import Any

from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException
from kubernetes.dynamic import DynamicClient
from kubernetes.dynamic.exceptions import NotFoundError

from vigil.api.names import (  # noqa: F401  (re-exported for the adapters)
    ANN_DIGEST,
    ANN_ROLE,
    ANN_VERSION,
    API_VERSION,
    LABEL_MANAGED,
    LABEL_MD,
    LABEL_TRACK,
    LABEL_UID,
    LABEL_VERSION,
)
from vigil.core.model import Arm, EventSpec, Track, WorkloadState
from vigil.kube.cache import WatchCache, parse_selector

FIELD_MANAGER = "vigil"


def _narrower(wanted: dict[str, str | None], held: dict[str, str | None]) -> bool:
    """True when every object `wanted` selects is among those an informer holds (it selects `held`)."""
    return all(k in wanted and (v is None or wanted[k] == v) for k, v in held.items())


class _Observed:
    """A dynamic resource whose writes also update the attached cache; reads pass through."""

    WRITES = ("patch", "create", "replace", "server_side_apply")

    def __init__(self, resource: Any, kube: Kube) -> None:
        self._resource, self._kube = resource, kube

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._resource, name)
        if name in self.WRITES:
            def write(*args: Any, **kwargs: Any) -> Any:
                result = attr(*args, **kwargs)
                self._kube._written(self._resource.group_version, self._resource.kind, result)
                return result
            return write
        if name == "delete":
            def delete(*args: Any, **kwargs: Any) -> Any:
                result = attr(*args, **kwargs)
                if self._kube.cache is not None and kwargs.get("name"):
                    rv = None
                    with contextlib.suppress(Exception):  # a Status has no resourceVersion of the object
                        rv = int(result.to_dict()["metadata"]["resourceVersion"])
                    self._kube.cache.forget(self._resource.group_version, self._resource.kind,
                                            kwargs.get("namespace") or "", kwargs["name"], rv)
                return result
            return delete
        return attr



def owner_reference(md: dict[str, Any]) -> dict[str, Any]:
    meta = md["metadata"]
    return {
        "apiVersion": API_VERSION, "kind": "ModelDeployment", "name": meta["name"],
        "uid": meta["uid"], "controller": True, "blockOwnerDeletion": True,
    }


class Kube:
    """Typed helpers over the dynamic client for the objects Vigil reads and writes.

    With a started `WatchCache` attached (`cache=` or `attach_cache`), reads of the kinds it
    watches come from it once it has listed; everything else, and every write, goes to the API.
    Each write's result is put into the cache at once, so a pass never reads an object older
    than its own last write (the staleness rule, `vigil.kube.cache`).
    """

    def __init__(self, api_client: k8s.ApiClient, cache: WatchCache | None = None) -> None:
        self.api_client = api_client
        self.dynamic = DynamicClient(api_client)
        self._resources: dict[tuple[str, str], Any] = {}
        self.cache = cache

    def attach_cache(self, cache: WatchCache | None) -> None:
        """Read through `cache` from now on (None: read from the API again)."""
        self.cache = cache

    def resource(self, api_version: str, kind: str) -> Any:
        """The dynamic resource; its writes (patch, create, apply, delete) also update the cache."""
        key = (api_version, kind)
        if key not in self._resources:
            self._resources[key] = _Observed(self.dynamic.resources.get(api_version=api_version, kind=kind), self)
        return self._resources[key]

    # ------------------------------------------------------------ generic
    def get(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        informer = self.cache.informer(api_version, kind, namespace) if self.cache is not None else None
        if informer is not None:
            return informer.get(namespace, name)
        try:
            return self.resource(api_version, kind).get(name=name, namespace=namespace).to_dict()
        except NotFoundError:
            return None

    def list(self, api_version: str, kind: str, namespace: str, selector: str | None = None) -> list[dict[str, Any]]:
        informer = self.cache.informer(api_version, kind, namespace) if self.cache is not None else None
        wanted = parse_selector(selector)
        if informer is not None and wanted is not None and _narrower(wanted, informer.selector):
            return informer.list(namespace, wanted)
        items = self.resource(api_version, kind).get(namespace=namespace, label_selector=selector).items
        return [i.to_dict() for i in items]

    def apply(self, body: dict[str, Any]) -> dict[str, Any]:
        res = self.resource(body["apiVersion"], body["kind"])
        meta = body["metadata"]
        return res.server_side_apply(
            body=body, name=meta["name"], namespace=meta.get("namespace"),
            field_manager=FIELD_MANAGER, force_conflicts=True,
        ).to_dict()

    def delete(self, api_version: str, kind: str, namespace: str, name: str) -> None:
        try:
            self.resource(api_version, kind).delete(name=name, namespace=namespace)
        except NotFoundError:
            if self.cache is not None:
                self.cache.forget(api_version, kind, namespace, name)

    def _written(self, api_version: str, kind: str, result: Any) -> None:
        """Put a write's result into the cache (the staleness rule)."""
        if self.cache is None:
            return
        try:
            obj = result.to_dict() if hasattr(result, "to_dict") else result
        except Exception:  # noqa: BLE001 - a result we cannot read leaves the cache to the watch
            return
        if isinstance(obj, dict) and (obj.get("metadata") or {}).get("name") and obj.get("kind") == kind:
            self.cache.observe({**obj, "apiVersion": obj.get("apiVersion") or api_version})

    # ------------------------------------------------------------ Vigil objects
    def get_modeldeployment(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.get(API_VERSION, "ModelDeployment", namespace, name)

    def get_policy(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The RiskPolicy object as stored (None when absent); `core.policy_check` judges it."""
        return self.get(API_VERSION, "RiskPolicy", namespace, name)

    def patch_status(self, md: dict[str, Any], status: dict[str, Any]) -> dict[str, Any]:
        """Merge-patch status, guarded by the resourceVersion that was read (409 if stale)."""
        meta = md["metadata"]
        body = {"metadata": {"resourceVersion": meta["resourceVersion"]}, "status": status}
        res = self.resource(API_VERSION, "ModelDeployment")
        return res.status.patch(
            body=body, name=meta["name"], namespace=meta["namespace"],
            content_type="application/merge-patch+json", field_manager=FIELD_MANAGER,
        ).to_dict()

    # ------------------------------------------------------------ workloads
    def workloads(self, namespace: str, md_name: str) -> dict[Arm, tuple[dict[str, Any], WorkloadState]]:
        """Deployments Vigil owns for `md_name`, keyed by the arm they serve."""
        out = {}
        for d in self.list("apps/v1", "Deployment", namespace, f"{LABEL_MD}={md_name}"):
            labels = d["metadata"].get("labels", {})
            version = d["metadata"].get("annotations", {}).get(ANN_VERSION, labels.get(LABEL_VERSION, ""))
            track = Track.BASELINE if labels.get(LABEL_TRACK) == Track.BASELINE.value else Track.MAIN
            spec, status = d.get("spec", {}), d.get("status") or {}
            out[Arm(version, track)] = (d, WorkloadState(
                version=version,
                digest=d["metadata"].get("annotations", {}).get(ANN_DIGEST, ""),
                replicas=int(spec.get("replicas") or 0),
                ready_replicas=int(status.get("readyReplicas") or 0)
                if status.get("observedGeneration", 0) >= d["metadata"].get("generation", 0) else 0,
            ))
        return out

    # ------------------------------------------------------------ events
    def emit_event(self, md: dict[str, Any], event: EventSpec, now: dt.datetime) -> None:
        meta = md["metadata"]
        core = k8s.CoreV1Api(self.api_client)
        body = k8s.CoreV1Event(
            metadata=k8s.V1ObjectMeta(generate_name=f"{meta['name']}.", namespace=meta["namespace"]),
            involved_object=k8s.V1ObjectReference(
                api_version=API_VERSION, kind="ModelDeployment", name=meta["name"],
                namespace=meta["namespace"], uid=meta["uid"], resource_version=meta.get("resourceVersion"),
            ),
            reason=event.reason, message=event.message[:1024], type=event.type,
            first_timestamp=now, last_timestamp=now, count=1,
            source=k8s.V1EventSource(component="vigil"),
            reporting_component="vigil.dev/operator", reporting_instance="vigil",
        )
        core.create_namespaced_event(meta["namespace"], body)

    def events_for(self, namespace: str, md_name: str) -> list[k8s.CoreV1Event]:
        core = k8s.CoreV1Api(self.api_client)
        sel = f"involvedObject.name={md_name},involvedObject.kind=ModelDeployment"
        return list(core.list_namespaced_event(namespace, field_selector=sel).items)

    # ------------------------------------------------------------ audit
    def create_audit_record(self, md: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any]:
        """Create record `seq` of this ModelDeployment's chain (named after its UID, so a
        re-created ModelDeployment starts a new chain). If it exists already, it is compared:
        the same decision (a crash between the record and the status patch) is ours to
        complete; anything else raises AuditConflict and is never adopted."""
        meta = md["metadata"]
        name = audit_record_name(meta["name"], meta["uid"], int(spec["seq"]))
        body = {
            "apiVersion": API_VERSION, "kind": "AuditRecord",
            "metadata": {"name": name, "namespace": meta["namespace"],
                         "labels": {LABEL_MD: meta["name"], LABEL_UID: meta["uid"], LABEL_MANAGED: "vigil"}},
            "spec": spec,
        }
        res = self.resource(API_VERSION, "AuditRecord")
        try:
            return res.create(body=body, namespace=meta["namespace"]).to_dict()
        except ApiException as err:
            if err.status != 409:
                raise
        existing = self.get(API_VERSION, "AuditRecord", meta["namespace"], name)
        if existing is None or not same_decision(existing.get("spec") or {}, spec):
            raise AuditConflict(name, (existing or {}).get("spec") or {}, spec)
        return existing

    def audit_records(self, namespace: str, md_name: str, uid: str | None = None) -> list[dict[str, Any]]:
        """The chain of a ModelDeployment (of the one with `uid`, when given)."""
        selector = f"{LABEL_MD}={md_name}" + (f",{LABEL_UID}={uid}" if uid else "")
        return [r["spec"] for r in self.list(API_VERSION, "AuditRecord", namespace, selector)]


class AuditConflict(RuntimeError):
    """The next record of the chain exists and says something else: never adopt it."""

    def __init__(self, name: str, existing: dict[str, Any], ours: dict[str, Any]) -> None:
        differs = sorted(k for k in DECISION_FIELDS if existing.get(k) != ours.get(k))
        super().__init__(f"AuditRecord {name} already exists and differs from this decision in {', '.join(differs)}; "
                         "Vigil will not adopt it: check who wrote it (`vigil audit verify`)")


DECISION_FIELDS = ("seq", "prevHash", "uid", "modelDeployment", "stage", "of", "result", "action", "phase", "version",
                   "digest", "weight", "reason")
"""What makes two records the same decision (the time and the figures may differ between passes)."""


def same_decision(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return all(a.get(k) == b.get(k) for k in DECISION_FIELDS)


def audit_record_name(md_name: str, uid: str, seq: int) -> str:
    return f"{md_name[:40]}-{uid[:8]}-{seq:06d}"



class RequestLog:
    """Every request an ApiClient sends, as (method, path, query): the benchmark's API request
    rate and the tests' proof that a pass with the watch cache reads nothing it caches."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, str]] = []
        self._lock = threading.Lock()

    def record(self, method: str, url: str) -> None:
        path, _, query = url.partition("?")
        path = "/" + path.split("://", 1)[-1].partition("/")[2] if "://" in path else path
        with self._lock:
            self.requests.append((method.upper(), path, query))

    def reads_of(self, plural: str) -> list[tuple[str, str, str]]:
        """GETs (single reads, lists and watches) of a resource by its plural name."""
        with self._lock:
            return [r for r in self.requests if r[0] == "GET" and f"/{plural}" in r[1]]

    def clear(self) -> None:
        with self._lock:
            self.requests.clear()

    def __len__(self) -> int:
        return len(self.requests)


def count_requests(api_client: k8s.ApiClient) -> RequestLog:
    """Record every request `api_client` sends from now on (it keeps working as before)."""
    log = RequestLog()
    original = api_client.call_api

    def call_api(method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        log.record(method, url)
        return original(method, url, *args, **kwargs)

    api_client.call_api = call_api  # type: ignore[method-assign]
    return log
