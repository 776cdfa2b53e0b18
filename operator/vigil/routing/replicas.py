"""Replica-ratio fallback for clusters with neither Gateway API nor Istio.

A plain Service selects the pods of every version, so traffic splits roughly by ready pods:
the weights are approximated by replica counts (status says so: `routerApproximate`), and
mirroring is impossible (a shadow phase then only warms the new pods up).
"""

from __future__ import annotations

from typing import Mapping

from vigil.api.names import LABEL_MD
from vigil.kube.client import Kube
from vigil.routing.base import ReadResult, RouteTarget, Split


def replica_split(total: int, weights: Mapping[str, int]) -> dict[str, int]:
    """Replicas per Service so that replica shares approximate `weights` (largest remainder),
    with at least one pod for every Service that has any weight."""
    live = {k: w for k, w in weights.items() if w > 0}
    if not live:
        return {}
    total = max(total, len(live))
    exact = {k: total * w / 100 for k, w in live.items()}
    counts = {k: max(1, int(v)) for k, v in exact.items()}
    while sum(counts.values()) < total:
        k = max(exact, key=lambda n: exact[n] - counts[n])
        counts[k] += 1
    while sum(counts.values()) > total:
        k = max((n for n in counts if counts[n] > 1), key=lambda n: counts[n] - exact[n])
        counts[k] -= 1
    return counts


class ReplicaRouter:
    approximate = True

    def __init__(self, kube: Kube) -> None:
        self.kube = kube

    def read(self, target: RouteTarget) -> ReadResult:
        md_name = target.md["metadata"]["name"]
        deployments = self.kube.list("apps/v1", "Deployment", target.namespace, f"{LABEL_MD}={md_name}")
        ready = {d["metadata"]["name"]: int((d.get("status") or {}).get("readyReplicas") or 0) for d in deployments}
        total = sum(ready.values())
        if total == 0:
            return ReadResult(None)
        return ReadResult(Split({k: round(100 * v / total) for k, v in ready.items() if v}))

    def apply(self, target: RouteTarget, split: Split) -> None:
        """Nothing to write: the reconciler applies the replica counts from `replicas()`."""

    def replicas(self, target: RouteTarget, split: Split) -> Mapping[str, int] | None:
        return replica_split(target.replicas, split.weights)

