"""Test doubles for the decision core: a scripted analyzer and builders of inputs."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from vigil.api.modeldeployment import ModelDeploymentSpec, ModelDeploymentStatus
from vigil.api.policy import RiskPolicySpec
from vigil.core.decide import decide
from vigil.core.model import Decision, Observation, RouteState, WorkloadState

T0 = datetime(2026, 11, 25, 12, 0, tzinfo=timezone.utc)
D1 = "sha256:" + "1" * 64
D2 = "sha256:" + "2" * 64
D3 = "sha256:" + "3" * 64


@dataclass
class FakeAnalysis:
    outcome: str
    calls: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"outcome": self.outcome, "verdicts": [{"metric": "errorRate", "outcome": self.outcome}]}

    def summary(self) -> str:
        return f"errorRate {self.outcome}"


@dataclass
class ScriptedAnalyzer:
    """Returns the next outcome of `script` (the last one repeats) and records its calls."""

    script: list[str]
    calls: list[dict[str, Any]] = field(default_factory=list)

    def __call__(self, gates: Any, metrics: Any, **kwargs: Any) -> FakeAnalysis:
        self.calls.append(kwargs)
        outcome = self.script[min(len(self.calls) - 1, len(self.script) - 1)]
        return FakeAnalysis(outcome)


def spec(version: str = "v1", digest: str = D1, **extra: Any) -> ModelDeploymentSpec:
    body = {
        "model": "fraud", "version": version, "artifact": {"uri": f"s3://m/{version}", "digest": digest},
        "server": {"image": "srv:1"}, "replicas": 2, "policyRef": {"name": "p"},
        "traffic": {"router": "istio"},
    }
    body.update(extra)
    return ModelDeploymentSpec.model_validate(body)


def policy(**extra: Any) -> RiskPolicySpec:
    body = {"steps": [10, 50], "maxWeight": 50, "bakeTime": "2m", "analysisInterval": "1m"}
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
        self.workloads: dict[str, WorkloadState] = {}
        self.route = RouteState(weights={})
        self.now = T0
        self.decisions: list[Decision] = []

    def set_spec(self, md: ModelDeploymentSpec) -> None:
        self.spec = md
        self.generation += 1

    def tick(self, minutes: float = 1.0, metrics: bool = True) -> Decision:
        from vigil.core.decide import analysis_due

        due = metrics and analysis_due(self.status, self.policy, self.now)
        obs = Observation(
            generation=self.generation, annotations=dict(self.annotations), workloads=dict(self.workloads),
            route=self.route, metrics={"errorRate": object()} if due else None,
        )
        d = decide("fraud", self.spec, self.policy, self.status, obs, self.now, analyzer=self.analyzer)
        self.decisions.append(d)
        self.status = d.status
        if d.workloads is not None:
            self.workloads = {
                w.version if w.role.value != "baseline" else w.version + "@baseline":
                WorkloadState(w.version, w.digest, w.replicas, w.replicas) for w in d.workloads
            }
        if d.traffic is not None:
            self.route = RouteState(weights=dict(d.traffic.weights), mirror_version=d.traffic.mirror_version)
        self.now += timedelta(minutes=minutes)
        return d

    def run(self, ticks: int, minutes: float = 1.0) -> None:
        for _ in range(ticks):
            self.tick(minutes)
