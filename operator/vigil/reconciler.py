"""One pass of the loop for one ModelDeployment: observe -> decide -> act -> record.

Nothing else lives here: reading and writing go through `vigil.kube`, `vigil.routing` and the
metrics provider; every choice is made by the pure `vigil.core.decide`. Running a pass twice
with the same world changes nothing the second time; a restart continues from status.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Mapping, Protocol, Sequence

from pydantic import ValidationError

from vigil.api.modeldeployment import ModelDeploymentSpec, ModelDeploymentStatus, Phase
from vigil.api.policy import BaselineMode, RiskPolicySpec
from vigil.audit import chain
from vigil.core.decide import Analyzer, analysis_due, blocked, decide, default_analyzer, parse_iso
from vigil.core.model import Decision, DesiredWorkload, Observation, PolicyProblem, RouteState, WorkloadState
from vigil.kube.client import Kube, validation_message
from vigil.kube.workloads import manifest_hash, manifests, service_name
from vigil.routing import for_kind
from vigil.routing.base import RouteTarget, Split, TrafficRouter

log = logging.getLogger("vigil.reconciler")


class MetricsSource(Protocol):
    """What the loop needs from a metrics provider (vigil.metrics)."""

    def collect(self, target: Any, gates: Sequence[Any], start: dt.datetime, end: dt.datetime) -> Mapping[Any, Any]: ...


TargetFactory = Callable[..., Any]


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0)


@dataclass
class World:
    """What one pass observed, kept for the act step."""

    md: dict[str, Any]
    spec: ModelDeploymentSpec
    workloads: dict[str, tuple[dict[str, Any], WorkloadState]]
    router: TrafficRouter
    target: RouteTarget
    route_split: Split | None
    route_problem: str | None


@dataclass
class Reconciler:
    kube: Kube
    metrics: MetricsSource | None = None
    analysis_target: TargetFactory | None = None  # builds the provider's AnalysisTarget
    analyzer: Analyzer = default_analyzer
    clock: Callable[[], dt.datetime] = utcnow
    last: dict[str, Decision] = field(default_factory=dict)

    # ---------------------------------------------------------------- the pass
    def reconcile(self, md: dict[str, Any]) -> Decision:
        now = self.clock()
        meta = md["metadata"]
        status = _status(md)
        try:
            spec = ModelDeploymentSpec.model_validate(md.get("spec") or {})
        except ValidationError as err:
            return self._invalid_spec(md, status, validation_message(err), now)
        policy = self.kube.get_policy(meta["namespace"], spec.policy_ref.name)
        world = self._observe(md, spec)
        obs = Observation(
            generation=int(meta.get("generation", 1)),
            annotations=meta.get("annotations") or {},
            workloads={k: w for k, (_, w) in world.workloads.items()},
            route=self._route_state(world),
            metrics=self._metrics(meta["namespace"], spec, policy, status, now),
        )
        decision = decide(meta["name"], spec, policy, status, obs, now, analyzer=self.analyzer)
        decision.status.router_approximate = world.router.approximate
        self._act(world, decision)
        self._record(md, status, decision, now)
        self.last[f"{meta['namespace']}/{meta['name']}"] = decision
        return decision

    # ---------------------------------------------------------------- observe
    def _observe(self, md: dict[str, Any], spec: ModelDeploymentSpec) -> World:
        meta = md["metadata"]
        traffic = spec.traffic
        gateway = (traffic.gateway_ref.name, traffic.gateway_ref.namespace) if traffic.gateway_ref else None
        target = RouteTarget(md=md, route_name=traffic.route_name or meta["name"], port=traffic.port,
                             hostnames=tuple(traffic.hostnames), gateway=gateway, replicas=spec.replicas)
        router = for_kind(traffic.router, self.kube)
        read = router.read(target)
        return World(md, spec, self.kube.workloads(meta["namespace"], meta["name"]), router, target,
                     read.split, read.problem)

    def _route_state(self, world: World) -> RouteState | None:
        problem = world.route_problem
        if world.route_split is None:
            return RouteState(weights={}, problem=problem) if problem else None
        md_name = world.md["metadata"]["name"]
        by_service = {service_name(md_name, key): key for key in world.workloads}
        split = world.route_split
        return RouteState(
            weights={by_service.get(svc, svc): w for svc, w in split.weights.items()},
            mirror_version=by_service.get(split.mirror, split.mirror) if split.mirror else None,
            problem=problem,
        )

    def _metrics(self, namespace: str, spec: ModelDeploymentSpec, policy: RiskPolicySpec | PolicyProblem,
                 status: ModelDeploymentStatus, now: dt.datetime) -> Mapping[Any, Any] | None:
        if isinstance(policy, PolicyProblem) or not analysis_due(status, policy, now):
            return None
        holdback = status.phase.value == "Holdback"
        baseline = status.previous_version if holdback else status.stable_version
        canary = status.stable_version if holdback else status.canary_version
        assert status.step is not None and status.step.started_at is not None
        if self.metrics is None or self.analysis_target is None:
            return {}
        target = self.analysis_target(
            namespace=namespace, model=spec.model, baseline_version=baseline,
            canary_version=canary, extra_matchers=dict(spec.analysis.selector),
            baseline_matchers=fresh_baseline_matchers(policy, status),
        )
        return self.metrics.collect(target, policy.gates, parse_iso(status.step.started_at), now)

    # ---------------------------------------------------------------- act
    def _act(self, world: World, decision: Decision) -> None:
        if decision.workloads is not None:
            self._apply_workloads(world, decision)
        if decision.traffic is not None:
            md_name = world.md["metadata"]["name"]
            t = decision.traffic
            split = Split(
                weights={service_name(md_name, k): w for k, w in t.weights.items()},
                mirror=service_name(md_name, t.mirror_version) if t.mirror_version else None,
                mirror_percent=t.mirror_percent if t.mirror_version else 0,
            )
            if world.route_split != split or world.router.approximate:
                world.router.apply(world.target, split)

    def _apply_workloads(self, world: World, decision: Decision) -> None:
        md, spec = world.md, world.spec
        ns, md_name = md["metadata"]["namespace"], md["metadata"]["name"]
        assert decision.workloads is not None and decision.traffic is not None
        wanted = {w.version + ("@baseline" if w.role.value == "baseline" else ""): w for w in decision.workloads}
        overrides = world.router.replicas(world.target, Split({
            service_name(md_name, k): v for k, v in decision.traffic.weights.items()})) or {}
        for key, want in wanted.items():
            replicas = overrides.get(service_name(md_name, key), want.replicas) if want.replicas else 0
            existing = world.workloads.get(key)
            if want.version == spec.version and want.digest == spec.artifact.digest and want.role.value != "baseline":
                bodies = manifests(md, spec, replace(want, replicas=replicas))
                if (existing is None or manifest_hash(existing[0]) != manifest_hash(bodies[0])
                        or existing[1].replicas != replicas):
                    for body in bodies:
                        self.kube.apply(body)
            elif existing is not None:
                if existing[1].replicas != replicas:
                    self._scale(ns, existing[0]["metadata"]["name"], replicas)
            else:
                self._create_from_template(world, key, want, replicas)
        for key, (body, _) in world.workloads.items():
            if key not in wanted:
                name = body["metadata"]["name"]
                self.kube.delete("apps/v1", "Deployment", ns, name)
                self.kube.delete("v1", "Service", ns, name)

    def _scale(self, namespace: str, name: str, replicas: int) -> None:
        self.kube.resource("apps/v1", "Deployment").patch(
            name=name, namespace=namespace, body={"spec": {"replicas": replicas}},
            content_type="application/merge-patch+json",
        )

    def _create_from_template(self, world: World, key: str, want: DesiredWorkload, replicas: int) -> None:
        """A version that is not the spec's (a fresh baseline of stable, or a stable someone
        deleted): copy the pod template of the stable Deployment, never the new spec's."""
        source = world.workloads.get(want.version)
        bodies = manifests(world.md, world.spec, replace(want, replicas=replicas))
        if source is not None:
            template = source[0]["spec"]["template"]
            bodies[0]["spec"]["template"]["spec"] = template["spec"]
        else:
            log.warning("recreating %s from the current spec: its own Deployment is gone", key)
        for body in bodies:
            self.kube.apply(body)

    # ---------------------------------------------------------------- record
    def _record(self, md: dict[str, Any], old: ModelDeploymentStatus, decision: Decision, now: dt.datetime) -> None:
        status = decision.status
        if decision.changed:
            for event in decision.events:
                self.kube.emit_event(md, event, now)
            manual = decision.evidence.get("manual") or {}
            record = chain.next_record(
                status.audit_head, status.audit_seq + 1,
                modelDeployment=md["metadata"]["name"], time=now.strftime("%Y-%m-%dT%H:%M:%SZ"),
                action=decision.action, phase=status.phase.value,
                version=status.canary_version or status.stable_version,
                weight=status.step.weight if status.step else None,
                reason=decision.events[-1].reason if decision.events else decision.action,
                message=status.message, actor=manual.get("user", "vigil"),
                policy=decision.evidence.get("policy"), evidence=dict(decision.evidence),
            )
            stored = self.kube.create_audit_record(md, record)
            status.audit_seq = int(stored["spec"]["seq"])
            status.audit_head = stored["spec"]["hash"]
        if status != old or not md.get("status"):
            self.kube.patch_status(md, status.model_dump(mode="json", by_alias=True))

    def _invalid_spec(self, md: dict[str, Any], status: ModelDeploymentStatus, message: str, now: dt.datetime) -> Decision:
        decision = blocked(status, int(md["metadata"].get("generation", 1)), "InvalidSpec", message, now)
        self._record(md, status, decision, now)
        return decision


def fresh_baseline_matchers(policy: RiskPolicySpec, status: ModelDeploymentStatus) -> dict[str, str]:
    """With `baseline: fresh`, canary steps compare against the fresh baseline pods only
    (shadow and holdback have no fresh baseline)."""
    if policy.baseline is BaselineMode.FRESH and status.phase is Phase.CANARY:
        return {"track": "baseline"}
    return {}


def _status(md: dict[str, Any]) -> ModelDeploymentStatus:
    try:
        return ModelDeploymentStatus.model_validate(md.get("status") or {})
    except ValidationError:
        log.warning("status of %s is unreadable; starting from an empty status", md["metadata"]["name"])
        return ModelDeploymentStatus()

