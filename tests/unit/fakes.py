"""Test doubles for the decision core: a scripted analyzer and builders of inputs."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from vigil.api.modeldeployment import ModelDeploymentSpec, ModelDeploymentStatus
from vigil.api.policy import RiskPolicySpec
from vigil.core.decide import decide
from vigil.core.model import Arm, Decision, Observation, RouteObservation, TrafficSplit, WorkloadState
from vigil.core.plan import plan_analysis

from ..doubles import AnalysisDouble, ScriptedAnalyzer

__all__ = ["AnalysisDouble", "ScriptedAnalyzer", "World", "policy", "spec"]

T0 = datetime(2026, 11, 25, 12, 0, tzinfo=timezone.utc)
D1 = "sha256:" + "1" * 64
D2 = "sha256:" + "2" * 64
D3 = "sha256:" + "3" * 64


def spec(version: str = "v1", digest: str = D1, **extra: Any) -> ModelDeploymentSpec:
    body = {
        "model": "fraud", "version": version, "artifact": {"uri": f"s3://m/{version}", "digest": digest},
        "server": {"image": "srv:1"}, "replicas": 2, "policyRef": {"name": "p"},
        "traffic": {"router": "istio"},
    }
    body.update(extra)
    return ModelDeploymentSpec.model_validate(body)


def policy(**extra: Any) -> RiskPolicySpec:
    body = {"steps": [10, 50], "maxWeight": 50, "bakeTime": "2m", "analysisInterval": "1m",
            "gates": [{"metric": "errorRate"}]}
    body.update(extra)
    return RiskPolicySpec.model_validate(body)


class World:
    """A tiny simulated cluster: workloads become ready when desired; the route follows the
    decision. Drives `decide` like the reconciler does, one pass per call to `tick`."""

    def __init__(self, pol: RiskPolicySpec, analyzer: ScriptedAnalyzer, md: ModelDeploymentSpec | None = None):
        self.policy = pol
        self.analyzer = analyzer
        self.spec = md or spec()
        self.status = ModelDeploymentStatus()
        self.generation = 1
        self.annotations: dict[str, str] = {}
        self.workloads: dict[Arm, WorkloadState] = {}
        self.split: TrafficSplit[Arm] | None = None
        self.now = T0
        self.decisions: list[Decision] = []

    def set_spec(self, md: ModelDeploymentSpec) -> None:
        self.spec = md
        self.generation += 1

    @property
    def route(self) -> RouteObservation:
        return RouteObservation(self.split)

    def weight(self, version: str | None) -> int:
        return self.route.weight(Arm(version or ""))

    def tick(self, minutes: float = 1.0, metrics: bool = True) -> Decision:
        due = metrics and plan_analysis(self.status, self.policy, self.now) is not None
        obs = Observation(
            generation=self.generation, annotations=dict(self.annotations), workloads=dict(self.workloads),
            route=self.route, metrics={"errorRate": object()} if due else None,
        )
        d = decide("fraud", self.spec, self.policy, self.status, obs, self.now, analyzer=self.analyzer)
        self.decisions.append(d)
        self.status = d.status
        if d.workloads is not None:
            self.workloads = {w.arm: WorkloadState(w.version, w.digest, w.replicas, w.replicas) for w in d.workloads}
        if d.traffic is not None:
            self.split = d.traffic
        self.now += timedelta(minutes=minutes)
        return d

    def run(self, ticks: int, minutes: float = 1.0) -> None:
        for _ in range(ticks):
            self.tick(minutes)
