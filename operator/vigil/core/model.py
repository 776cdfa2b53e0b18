"""The plain data that crosses the boundary of the decision core.

`Observation` is what the adapters saw; `Decision` is what the core wants. Neither holds a
client, a clock or anything that does I/O, so a decision can be replayed from its inputs.
Destinations are typed (`Arm`), actions are an enum (`Action`): no strings assembled in
several files.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Callable, Generic, Mapping, Protocol, Sequence, TypeVar

from vigil.api.modeldeployment import ModelDeploymentStatus


class Role(str, Enum):
    """Which part a workload plays in a rollout."""

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


class Action(str, Enum):
    """What one decision did. The values are what audit records and status history say."""

    NONE = "none"
    HOLD = "hold"
    DEPLOYED = "deployed"
    START = "start"
    STEP_STARTED = "step-started"
    STEP = "step"
    PROMOTE = "promote"
    HOLDBACK = "holdback"
    PROMOTED = "promoted"
    COMPLETE = "complete"
    ROLLBACK = "rollback"
    ROLLED_BACK = "rolled-back"
    CANCEL = "cancel"
    PAUSE = "pause"
    RESUME = "resume"
    BLOCKED = "blocked"
    UNBLOCKED = "unblocked"
    BUDGET = "budget-exceeded"
    DEPLOY = "deploy"  # creating the first version's workloads and route (recorded like any move)
    RESTORE = "restore"  # the route or a workload drifted from what status says: put it back (recorded)


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
class RouteObservation:
    """The route as the router reads it, mapped to arms.

    `split` is None when there is no route yet; `problem` says why Vigil must not act on it
    (changed behind its back, owned by someone else). `approximate` is True for routers that
    can only approximate weights (replica ratios): the weights are then what is really served.
    """

    split: TrafficSplit[Arm] | None = None
    problem: str | None = None
    approximate: bool = False

    def weight(self, arm: Arm) -> int:
        return int(self.split.weights.get(arm, 0)) if self.split else 0


@dataclass(frozen=True)
class PolicyProblem:
    """The RiskPolicy could not be used: `reason` is a condition reason (PolicyNotFound...)."""

    reason: str
    message: str


class VerdictLike(Protocol):
    """What the core reads of one gate's verdict (vigil.stats.Verdict)."""

    @property
    def metric(self) -> Any: ...

    @property
    def outcome(self) -> Any: ...

    @property
    def time_to_pass_s(self) -> float | None: ...


class AnalysisLike(Protocol):
    """What the core needs from an analysis result (vigil.stats.Analysis)."""

    @property
    def outcome(self) -> Any: ...

    @property
    def verdicts(self) -> Sequence[VerdictLike]: ...

    def to_dict(self) -> dict[str, Any]: ...

    def summary(self) -> str: ...


@dataclass(frozen=True)
class Observation:
    """Everything the adapters saw in one pass of the loop."""

    generation: int
    annotations: Mapping[str, str] = field(default_factory=dict)
    workloads: Mapping[Arm, WorkloadState] = field(default_factory=dict)
    route: RouteObservation = field(default_factory=RouteObservation)
    metrics: Mapping[Any, Any] | None = None  # MetricKind -> MetricData | NoData; None: not measured
    guards: GuardReadings | None = None  # what the guards asked for (core.guards.plan_guards); None: not asked


@dataclass(frozen=True)
class GuardReadings:
    """Facts the guards check besides the analysis, read from Prometheus.

    `canary_digests`: the artifact digests the canary's pods report (empty: none reported);
    `burn_rates`: the stable version's error-budget burn rate per window ("1h", "5m", ...);
    `problem`: why a reading is missing (Prometheus unreachable, bad query): never a pass."""

    canary_digests: frozenset[str] | None = None
    burn_rates: Mapping[str, float] | None = None
    problem: str | None = None


@dataclass(frozen=True)
class DesiredWorkload:
    arm: Arm
    digest: str
    replicas: int
    role: Role

    @property
    def version(self) -> str:
        return self.arm.version


@dataclass(frozen=True)
class EventSpec:
    type: str  # Normal | Warning
    reason: str
    message: str


@dataclass(frozen=True)
class Decision:
    """The core's answer: what happened (`action`), the new status, and the world it wants."""

    action: Action
    status: ModelDeploymentStatus
    workloads: tuple[DesiredWorkload, ...] | None  # None: leave workloads as they are
    traffic: TrafficSplit[Arm] | None  # None: leave traffic as it is
    events: tuple[EventSpec, ...] = ()
    evidence: Mapping[str, Any] = field(default_factory=dict)
    requeue_after: float = 30.0
    whole_evidence: Callable[[], Mapping[str, Any]] | None = field(default=None, compare=False, repr=False)
    """For a decision that records nothing: its evidence with the parts an analysis deferred (what
    a record needs; the reconciler records such a decision when it must restore the world)."""

    @property
    def changed(self) -> bool:
        return self.action is not Action.NONE

    def recorded_evidence(self) -> Mapping[str, Any]:
        """The evidence as an AuditRecord carries it (deferred parts computed)."""
        return self.whole_evidence() if self.whole_evidence is not None else self.evidence
