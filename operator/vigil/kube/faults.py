"""Faults a user should know about, as status conditions on the ModelDeployment.

Two condition types are owned here, beside the rollout conditions `core/conditions.py` builds:

- `ApiAvailable=False` while passes fail on the apiserver (reasons `ApiError`, `ApiThrottled`,
  `ApiTimeout`, `ApiUnavailable`);
- `MetricsAvailable=False` while Prometheus cannot be used for this model (reasons
  `PrometheusUnavailable`, `PrometheusTimeout`, `PrometheusThrottled`, `PrometheusBadResponse`,
  `MetricsInvalid`, `MetricsStale`, `MetricsMissing`).

A condition is present only while its fault lasts (absent means no known fault), so healthy
objects carry nothing extra. The operator keeps the current faults in a `FaultLedger`; the
`FaultAwareKube` it builds puts them into every status patch the reconciler sends (whose merge
patch replaces the whole conditions list) and skips a patch that would change nothing, so the
fault conditions neither vanish at the next pass nor cause a write per pass.
"""

from __future__ import annotations

import copy
import datetime as dt
import threading
from dataclasses import dataclass
from typing import Any

from kubernetes.client.exceptions import ApiException

from vigil.kube.client import Kube

API = "ApiAvailable"
METRICS = "MetricsAvailable"
FAULT_TYPES = (API, METRICS)


@dataclass(frozen=True)
class Fault:
    type: str
    reason: str
    message: str


class FaultLedger:
    """The faults known now, per ModelDeployment (thread-safe: passes run on worker threads)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: dict[tuple[str, str], dict[str, Fault]] = {}

    def set(self, namespace: str, name: str, fault: Fault) -> None:
        with self._lock:
            self._faults.setdefault((namespace, name), {})[fault.type] = fault

    def clear(self, namespace: str, name: str, type_: str | None = None) -> None:
        with self._lock:
            faults = self._faults.get((namespace, name), {})
            for t in [type_] if type_ else list(faults):
                faults.pop(t, None)
            if not faults:
                self._faults.pop((namespace, name), None)

    def get(self, namespace: str, name: str) -> dict[str, Fault]:
        with self._lock:
            return dict(self._faults.get((namespace, name), {}))


def api_fault(err: BaseException) -> Fault:
    """The condition a failed pass shows; the reason says which kind of trouble."""
    if isinstance(err, ApiException):
        status = err.status or 0
        reason = "ApiThrottled" if status == 429 else "ApiUnavailable" if status == 0 or status >= 500 else "ApiError"
        return Fault(API, reason, f"the apiserver answered {status} {err.reason or ''}".strip()
                     + "; the pass is retried with backoff")
    text = " ".join(str(err).split())[:300]
    reason = "ApiTimeout" if "timed out" in text.lower() or "timeout" in type(err).__name__.lower() else "ApiUnavailable"
    return Fault(API, reason, f"{type(err).__name__}: {text}; the pass is retried with backoff")


def _iso(now: dt.datetime) -> str:
    return now.astimezone(dt.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def fault_conditions(stored: list[dict[str, Any]], active: dict[str, Fault], now: dt.datetime,
                     generation: int | None) -> list[dict[str, Any]]:
    """The conditions for the active faults, keeping lastTransitionTime of an unchanged one."""
    previous = {c.get("type"): c for c in stored}
    out = []
    for type_ in FAULT_TYPES:
        fault = active.get(type_)
        if fault is None:
            continue
        prev = previous.get(type_)
        since = prev.get("lastTransitionTime") if prev and prev.get("status") == "False" else None
        out.append({"type": type_, "status": "False", "reason": fault.reason, "message": fault.message[:1024],
                    "lastTransitionTime": since or _iso(now), "observedGeneration": generation})
    return out


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch (what the apiserver does with the status patch)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


def _with_faults(md: dict[str, Any], status: dict[str, Any], active: dict[str, Fault],
                 now: dt.datetime) -> dict[str, Any]:
    stored = (md.get("status") or {}).get("conditions") or []
    own = status.get("conditions")
    base = [c for c in (own if own is not None else stored) if c.get("type") not in FAULT_TYPES]
    generation = md["metadata"].get("generation")
    return {**status, "conditions": base + fault_conditions(stored, active, now, generation)}


class FaultAwareKube(Kube):
    """`Kube` whose status patches carry the current fault conditions and skip no-op writes."""

    def __init__(self, api_client: Any, ledger: FaultLedger | None = None) -> None:
        super().__init__(api_client)
        self.ledger = ledger or FaultLedger()

    def patch_status(self, md: dict[str, Any], status: dict[str, Any]) -> dict[str, Any]:
        meta = md["metadata"]
        status = _with_faults(md, status, self.ledger.get(meta["namespace"], meta["name"]),
                              dt.datetime.now(dt.UTC))
        if md.get("status") and merge_patch(md["status"], status) == md["status"]:
            return md  # nothing would change: no write, no watch event, no wake-up
        return super().patch_status(md, status)

    def sync_faults(self, md: dict[str, Any]) -> bool:
        """Write this object's fault conditions if status does not show them yet (after a pass,
        or when a pass failed). Returns whether a write was sent; a 409 or an unreachable
        apiserver is left to the next pass."""
        stored = (md.get("status") or {}).get("conditions") or []
        status = _with_faults(md, {}, self.ledger.get(md["metadata"]["namespace"], md["metadata"]["name"]),
                              dt.datetime.now(dt.UTC))
        if status["conditions"] == stored:
            return False
        try:
            Kube.patch_status(self, md, {"conditions": status["conditions"]})
        except ApiException:
            return False
        return True
