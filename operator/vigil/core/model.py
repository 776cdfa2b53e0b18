"""The plain data that crosses the boundary of the decision core.

`Observation` is what the adapters saw; `Decision` is what the core wants. Neither holds a
client, a clock or anything that does I/O, so a decision can be replayed from its inputs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Generic, Mapping, Protocol, TypeVar

from vigil.api.modeldeployment import ModelDeploymentStatus
from vigil.api.policy import RiskPolicySpec


class Role(str, Enum):
    """Which part a workload plays in a rollout. Routers and workloads are keyed by role."""

    STABLE = "stable"
    CANARY = "canary"
    BASELINE = "baseline"  # fresh pods of the stable version, started with the canary
    PREVIOUS = "previous"  # the last stable, kept (scaled down) for a quick rollback


class Track(str, Enum):
    """Which pods of a version: its main Deployment, or the fresh baseline started beside a canary."""

    MAIN = "main"
    BASELINE = "baseline"


@dataclass(frozen=True, order=True)
class Arm:
    """One set of pods that traffic can go to: a version on a track. Keys weights and workloads."""

    version: str
    track: Track = Track.MAIN

    def __str__(self) -> str:
        return self.version if self.track is Track.MAIN else f"{self.version} ({self.track.value})"


K = TypeVar("K")


@dataclass(frozen=True)
class TrafficSplit(Generic[K]):
    """Percent weights by destination and an optional mirror with its percentage.

    The core keys it by `Arm`; routers key it by Service name. One type for both, so what the
    core wants and what a router reads compare directly once the keys are mapped.
    """

    weights: Mapping[K, int]
    mirror: K | None = None
    mirror_percent: int = 0

    def as_json(self) -> str:
        return json.dumps({"weights": {str(k): v for k, v in sorted(self.weights.items(), key=lambda kv: str(kv[0]))},
                           "mirror": None if self.mirror is None else str(self.mirror),
                           "mirrorPercent": self.mirror_percent if self.mirror is not None else 0}, sort_keys=True)


@dataclass(frozen=True)
class WorkloadState:
    """A Deployment as observed: which version it runs and how many pods are ready."""

    version: str
    digest: str
    replicas: int
    ready_replicas: int

    def ready(self) -> bool:
        return self.replicas > 0 and self.ready_replicas >= self.replicas


@dataclass(frozen=True)
class RouteState:
    """Weights (percent) per version as the router reads them, and the mirror target."""

    weights: Mapping[str, int]
    mirror_version: str | None = None
    problem: str | None = None  # e.g. changed behind Vigil's back; Vigil will not act then


@dataclass(frozen=True)
class PolicyProblem:
    """The RiskPolicy could not be used: `reason` is a condition reason (PolicyNotFound...)."""

    reason: str
    message: str


class AnalysisLike(Protocol):
    """What the core needs from an analysis result (vigil.stats.Analysis)."""

    @property
    def outcome(self) -> Any: ...

    def to_dict(self) -> dict[str, Any]: ...

    def summary(self) -> str: ...


@dataclass(frozen=True)
class Observation:
    """Everything the adapters saw in one pass of the loop."""

    generation: int
    annotations: Mapping[str, str] = field(default_factory=dict)
    workloads: Mapping[str, WorkloadState] = field(default_factory=dict)  # by version
    route: RouteState | None = None
    metrics: Mapping[Any, Any] | None = None  # MetricKind -> MetricData | NoData; None: not queried
    spec_problem: str | None = None


@dataclass(frozen=True)
class DesiredWorkload:
    version: str
    digest: str
    replicas: int
    role: Role


@dataclass(frozen=True)
class DesiredTraffic:
    """Percent weights by version (summing to 100) and an optional mirror."""

    weights: Mapping[str, int]
    mirror_version: str | None = None
    mirror_percent: int = 0


@dataclass(frozen=True)
class EventSpec:
    type: str  # Normal | Warning
    reason: str
    message: str


@dataclass(frozen=True)
class Decision:
    """The core's answer. `action` names what happened ("none" when nothing changed)."""

    action: str
    status: ModelDeploymentStatus
    workloads: tuple[DesiredWorkload, ...] | None  # None: leave workloads as they are
    traffic: DesiredTraffic | None  # None: leave traffic as it is
    events: tuple[EventSpec, ...] = ()
    evidence: Mapping[str, Any] = field(default_factory=dict)
    requeue_after: float = 30.0
    analyze_from: str | None = None  # RFC 3339 start of the analysis window for the next pass

    @property
    def changed(self) -> bool:
        return self.action != "none"


@dataclass(frozen=True)
class Inputs:
    """The inputs of `decide`, kept together so the audit record can cite them."""

    name: str
    spec: Any  # ModelDeploymentSpec
    policy: RiskPolicySpec | PolicyProblem
    status: ModelDeploymentStatus
    observation: Observation
