"""One pass of the loop for one ModelDeployment: plan -> observe -> decide -> act -> record.

Nothing else lives here: reading and writing go through `vigil.kube`, `vigil.routing` and the
metrics provider; what to measure is planned by the pure `vigil.core.plan`, and every choice is
made by the pure `vigil.core.decide`. Running a pass twice with the same world changes nothing
the second time; a restart continues from status.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Callable, Mapping, Protocol, Sequence

from kubernetes.client.exceptions import ApiException
from pydantic import ValidationError

from vigil.api.modeldeployment import ModelDeploymentSpec, ModelDeploymentStatus
from vigil.api.names import ANN_ABORT, ANN_PROMOTE
from vigil.api.policy import RiskPolicySpec
from vigil.audit import chain
from vigil.core.decide import Analyzer, blocked, decide, default_analyzer, desired_world
from vigil.core.guards import plan_guards
from vigil.core.model import (
    Action,
    Arm,
    Decision,
    DesiredWorkload,
    EventSpec,
    GuardReadings,
    Observation,
    RouteObservation,
    Track,
    TrafficSplit,
    WorkloadState,
)
from vigil.core.plan import AnalysisPlan, plan_analysis
from vigil.core.policy_check import resolve_policy, validation_message
from vigil.core.timefmt import iso
from vigil.kube.client import API_VERSION as API_AUDIT
from vigil.kube.client import AuditConflict, Kube, audit_record_name
from vigil.kube.workloads import manifest_hash, manifests, service_name
from vigil.metrics import AnalysisTarget, MetricsProvider
from vigil.metrics.guards import GuardReader
from vigil.routing import for_kind
from vigil.routing.base import ReadResult, RouteTarget, Split, TrafficRouter

log = logging.getLogger("vigil.reconciler")


ORPHAN_MESSAGES = {
    "intent": "the operator stopped before this intent's status was written; nothing was moved for it, "
              "and the next decision replaces it",
    "decision": "this decision's status was never written (the operator stopped or the write failed); it "
                "never took effect, and the next decision replaces it",
}
"""The records a later pass may close as abandoned, by stage, and what the closing record says."""


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0)


@dataclass
class World:
    """What one pass observed, kept for the act step."""

    md: dict[str, Any]
    spec: ModelDeploymentSpec
    workloads: dict[Arm, tuple[dict[str, Any], WorkloadState]]
    router: TrafficRouter
    target: RouteTarget
    route: ReadResult

    @property
    def name(self) -> str:
        return str(self.md["metadata"]["name"])

    def service(self, arm: Arm) -> str:
        return service_name(self.name, arm)

    def to_services(self, split: TrafficSplit[Arm]) -> Split:
        """The core's split (by arm) in the router's terms (by Service)."""
        return Split(
            weights={self.service(a): w for a, w in split.weights.items()},
            mirror=self.service(split.mirror) if split.mirror is not None else None,
            mirror_percent=split.mirror_percent if split.mirror is not None else 0,
        )

    def to_arms(self, split: Split) -> TrafficSplit[Arm]:
        """A split the router read (by Service) in the core's terms; unknown Services keep their name."""
        by_service = {self.service(arm): arm for arm in self.workloads}

        def arm(svc: str) -> Arm:
            return by_service.get(svc, Arm(svc))

        return TrafficSplit({arm(svc): w for svc, w in split.weights.items()},
                            arm(split.mirror) if split.mirror else None, split.mirror_percent)


class PassListener(Protocol):
    """Told about every pass (operator metrics, logs); must never raise or block."""

    def passed(self, md: dict[str, Any], decision: Decision, seconds: float) -> None: ...

    def failed(self, namespace: str, name: str, reason: str) -> None: ...


@dataclass
class Moves:
    """What acting on a decision changes in the world (empty when the world already is so).

    Computed before anything moves, so the intent record can say what will change and a
    pass that would move nothing writes no intent."""

    route: Split | None = None
    workloads: list[tuple[str, Callable[[], None]]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return self.route is not None or bool(self.workloads)

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.route is not None:
            out["route"] = dict(self.route.weights)
            if self.route.mirror:
                out["mirror"] = {self.route.mirror: self.route.mirror_percent}
        if self.workloads:
            out["workloads"] = [what for what, _ in self.workloads]
        return out

    def execute(self, world: World) -> None:
        """Workloads first (a canary must exist before it gets traffic), then the route."""
        for _, op in self.workloads:
            op()
        if self.route is not None:
            world.router.apply(world.target, self.route)


@dataclass
class Reconciler:
    kube: Kube
    metrics: MetricsProvider | None = None
    analyzer: Analyzer = default_analyzer
    clock: Callable[[], dt.datetime] = utcnow
    signer: chain.RecordSigner | None = None
    guards: GuardReader | None = None  # reads the artifact digest and burn rates the core asks for
    listeners: list[PassListener] = field(default_factory=list)

    # ---------------------------------------------------------------- the pass
    def reconcile(self, md: dict[str, Any]) -> Decision:
        started = time.monotonic()
        decision = self._reconcile(md)
        for listener in self.listeners:
            listener.passed(md, decision, time.monotonic() - started)
        return decision

    def failed(self, namespace: str, name: str, reason: str) -> None:
        """A pass raised (the handler logs it and retries): tell the listeners."""
        for listener in self.listeners:
            listener.failed(namespace, name, reason)

    def _reconcile(self, md: dict[str, Any]) -> Decision:
        now = self.clock()
        meta = md["metadata"]
        status = _status(md)
        try:
            spec = ModelDeploymentSpec.model_validate(md.get("spec") or {})
        except ValidationError as err:
            if status.open_intent is not None:
                return self._abandon(md, status, f"the spec became invalid ({validation_message(err)})", now)
            return self._invalid_spec(md, status, validation_message(err), now)
        ns = meta["namespace"]
        policy = resolve_policy(self.kube.get_policy(ns, spec.policy_ref.name), spec.policy_ref.name, ns)
        if status.open_intent is not None:  # an action was recorded but never confirmed: finish it first
            return self._complete_open_intent(md, spec, policy, status, now)
        plan = plan_analysis(status, policy, now) if isinstance(policy, RiskPolicySpec) else None
        if _manual_control_pending(meta.get("annotations") or {}, status):
            plan = None  # an abort or promote of this canary is decided without waiting for Prometheus
        world = self._observe(md, spec)
        obs = replace(self._observation(md, world, measure(self.metrics, ns, spec, plan, now)),
                      guards=self._read_guards(ns, spec, policy, status))
        decision = decide(meta["name"], spec, policy, status, obs, now, analyzer=self.analyzer)
        moves = self._moves(world, decision.workloads, decision.traffic)
        if moves and not decision.changed:
            decision = _restore(decision, moves)
        recorded, md = self._record(md, status, decision, now, moves)  # durable before anything moves
        if recorded is not decision:
            return recorded  # the record could not be written: nothing moved, a condition says why
        if moves:
            moves.execute(world)
            self._outcome(md, decision.status, decision.action.value, "completed", "",
                          self._served(world, decision.traffic), now)
        self._emit_events(md, decision, now)
        return decision

    def _read_guards(self, namespace: str, spec: ModelDeploymentSpec, policy: Any,
                     status: ModelDeploymentStatus) -> GuardReadings | None:
        if self.guards is None or not isinstance(policy, RiskPolicySpec):
            return None
        due = plan_guards(spec, policy, status)
        if not due:
            return None
        target = analysis_target(namespace, spec, status.stable_version or "", due.artifact_of or spec.version)
        return self.guards.read(target, due)

    def _observation(self, md: dict[str, Any], world: World, metrics: Mapping[Any, Any] | None) -> Observation:
        meta = md["metadata"]
        return Observation(
            generation=int(meta.get("generation", 1)),
            annotations=meta.get("annotations") or {},
            workloads={arm: state for arm, (_, state) in world.workloads.items()},
            route=RouteObservation(
                split=world.to_arms(world.route.split) if world.route.split is not None else None,
                problem=world.route.problem, approximate=world.router.approximate,
            ),
            metrics=metrics,
        )

    # ---------------------------------------------------------------- open intents
    def _complete_open_intent(self, md: dict[str, Any], spec: ModelDeploymentSpec, policy: Any,
                              status: ModelDeploymentStatus, now: dt.datetime) -> Decision:
        """After a crash between an intent and its outcome: make the world what the recorded
        status stands for (the same action: status was written with the intent) and record
        the outcome, or record why it was abandoned. Nothing new is decided in this pass."""
        if not isinstance(policy, RiskPolicySpec):
            return self._abandon(md, status, f"the policy can no longer be used ({policy.message})", now)
        world = self._observe(md, spec)
        if world.route.problem:
            return self._abandon(md, status, world.route.problem, now)
        workloads, traffic = desired_world(md["metadata"]["name"], spec, policy, status,
                                           self._observation(md, world, None), now)
        moves = self._moves(world, workloads, traffic)
        moves.execute(world)
        intent = self._open_intent_record(md, status)
        why = "completed by a later pass: the pass that recorded it stopped before its outcome"
        log.info("%s/%s: intent %s (%s) %s", md["metadata"]["namespace"], md["metadata"]["name"],
                 status.open_intent, intent.get("action"), why)
        after = self._outcome(md, status, str(intent.get("action", "unknown")), "completed", why,
                              self._served(world, traffic), now)
        # the interrupted pass never reached its Events: post the ones its intent announced
        self._post_events(md, [EventSpec(**e) for e in (intent.get("evidence") or {}).get("events", [])], now)
        return Decision(Action.NONE, after, None, None, requeue_after=0.5)

    def _abandon(self, md: dict[str, Any], status: ModelDeploymentStatus, why: str, now: dt.datetime) -> Decision:
        action = str(self._open_intent_record(md, status).get("action", "unknown"))
        after = self._outcome(md, status, action, "abandoned", why, None, now)
        return Decision(Action.NONE, after, None, None, requeue_after=0.5)

    def _open_intent_record(self, md: dict[str, Any], status: ModelDeploymentStatus) -> dict[str, Any]:
        """The stored spec of the intent status names as open ({} if it cannot be found)."""
        meta = md["metadata"]
        assert status.open_intent is not None
        intent = self.kube.get(API_AUDIT, "AuditRecord", meta["namespace"],
                               audit_record_name(meta["name"], meta["uid"], status.open_intent))
        return dict((intent or {}).get("spec") or {})

    # ---------------------------------------------------------------- moves
    def _moves(self, world: World, workloads: tuple[DesiredWorkload, ...] | None,
               traffic: TrafficSplit[Arm] | None) -> Moves:
        moves = Moves()
        if workloads is not None and traffic is not None:
            moves.workloads = self._workload_moves(world, workloads, traffic)
        if traffic is not None and not world.router.approximate:
            split = world.to_services(traffic)
            if world.route.split != split:
                moves.route = split
        return moves

    # ---------------------------------------------------------------- observe
    def _observe(self, md: dict[str, Any], spec: ModelDeploymentSpec) -> World:
        meta = md["metadata"]
        traffic = spec.traffic
        gateway = (traffic.gateway_ref.name, traffic.gateway_ref.namespace) if traffic.gateway_ref else None
        target = RouteTarget(md=md, route_name=traffic.route_name or meta["name"], port=traffic.port,
                             hostnames=tuple(traffic.hostnames), gateway=gateway, replicas=spec.replicas)
        router = for_kind(traffic.router, self.kube)
        return World(md, spec, self.kube.workloads(meta["namespace"], meta["name"]), router, target,
                     router.read(target))

    # ---------------------------------------------------------------- act
    def _workload_moves(self, world: World, workloads: tuple[DesiredWorkload, ...],
                        traffic: TrafficSplit[Arm]) -> list[tuple[str, Callable[[], None]]]:
        """The Deployment/Service writes that make the workloads what the decision wants."""
        md, spec = world.md, world.spec
        ns = md["metadata"]["namespace"]
        wanted = {w.arm: w for w in workloads}
        overrides = world.router.replicas(world.target, world.to_services(TrafficSplit(traffic.weights))) or {}
        ops: list[tuple[str, Callable[[], None]]] = []
        for arm, want in wanted.items():
            replicas = overrides.get(world.service(arm), want.replicas) if want.replicas else 0
            existing = world.workloads.get(arm)
            if arm == Arm(spec.version) and want.digest == spec.artifact.digest:
                bodies = manifests(md, spec, replace(want, replicas=replicas))
                if (existing is None or manifest_hash(existing[0]) != manifest_hash(bodies[0])
                        or existing[1].replicas != replicas):
                    ops.append((f"apply {world.service(arm)} replicas={replicas}",
                                lambda bodies=bodies: [self.kube.apply(b) for b in bodies] and None))
            elif existing is not None:
                if existing[1].replicas != replicas:
                    name = existing[0]["metadata"]["name"]
                    ops.append((f"scale {name} replicas={replicas}",
                                lambda name=name, n=replicas: self._scale(ns, name, n)))
            else:
                ops.append((f"create {world.service(arm)} replicas={replicas}",
                            lambda want=want, n=replicas: self._create_from_template(world, want, n)))
        for arm, (body, _) in world.workloads.items():
            if arm not in wanted:
                name = body["metadata"]["name"]
                ops.append((f"delete {name}", lambda name=name: self._delete_workload(ns, name)))
        return ops

    def _delete_workload(self, namespace: str, name: str) -> None:
        self.kube.delete("apps/v1", "Deployment", namespace, name)
        self.kube.delete("v1", "Service", namespace, name)

    def _served(self, world: World, traffic: TrafficSplit[Arm] | None) -> dict[str, int] | None:
        """What the route serves after acting: read back from a route object, or, for the
        replicas router, the share of the replica counts just written. The outcome records
        this, not the weight that was asked for (2 replicas cannot serve 10%)."""
        if world.router.approximate:
            if traffic is None:
                return None
            counts = world.router.replicas(world.target, world.to_services(TrafficSplit(traffic.weights))) or {}
            total = sum(counts.values())
            return {svc: round(100 * n / total) for svc, n in counts.items() if n} if total else None
        read = world.router.read(world.target)
        return dict(read.split.weights) if read.split is not None else None

    def _scale(self, namespace: str, name: str, replicas: int) -> None:
        self.kube.resource("apps/v1", "Deployment").patch(
            name=name, namespace=namespace, body={"spec": {"replicas": replicas}},
            content_type="application/merge-patch+json",
        )

    def _create_from_template(self, world: World, want: DesiredWorkload, replicas: int) -> None:
        """A version that is not the spec's (a fresh baseline of stable, or a stable someone
        deleted): copy the pod template of that version's main Deployment, never the new spec's."""
        source = world.workloads.get(Arm(want.arm.version))
        bodies = manifests(world.md, world.spec, replace(want, replicas=replicas))
        if source is not None:
            bodies[0]["spec"]["template"]["spec"] = source[0]["spec"]["template"]["spec"]
        else:
            log.warning("recreating %s from the current spec: its own Deployment is gone", want.arm)
        for body in bodies:
            self.kube.apply(body)

    # ---------------------------------------------------------------- record
    def _record(self, md: dict[str, Any], old: ModelDeploymentStatus, decision: Decision, now: dt.datetime,
                moves: Moves | None = None) -> tuple[Decision, dict[str, Any]]:
        """Write the decision's AuditRecord, then status (guarded by the resourceVersion read),
        before any traffic or workload changes. When the decision will move something, the
        record is an intent and status names it (`openIntent`) until the outcome is recorded.
        A crash after the record finds it on the next pass: the same decision is completed,
        anything else is an AuditConflict. When the record cannot be written, the returned
        decision is a block that moved nothing. Returns the decision and the ModelDeployment
        as stored after the status write (its resourceVersion guards the next write)."""
        status = decision.status
        if decision.changed:
            manual = decision.evidence.get("manual") or decision.evidence.get("emergency") or {}
            version = status.canary_version or status.stable_version
            evidence = dict(decision.evidence)
            if moves:
                evidence["moves"] = moves.describe()
                # the Events are posted after the outcome; a pass that dies before then leaves
                # them to the pass that completes the intent, which finds them here
                evidence["events"] = [asdict(e) for e in decision.events]
            stage = "intent" if moves else "decision"
            fields = dict(stage=stage, time=iso(now), action=decision.action.value, phase=status.phase.value,
                          version=version,
                          digest=status.canary_digest if version == status.canary_version else status.stable_digest,
                          weight=status.step.weight if status.step else None,
                          reason=decision.events[-1].reason if decision.events else decision.action.value,
                          message=status.message, actor=manual.get("user", "vigil"),
                          policy=decision.evidence.get("policy"), evidence=evidence)
            try:
                try:
                    self._append(md, status, **fields)
                except AuditConflict:
                    if not self._abandon_orphan(md, status, now):
                        raise
                    self._append(md, status, **fields)
            except AuditConflict as err:
                return self._refuse(md, old, "AuditConflict", str(err), now), md
            except ApiException as err:
                return self._refuse(md, old, "AuditWriteFailed",
                                    f"the audit record could not be written ({err.status} {err.reason}); "
                                    "no traffic was changed", now), md
            status.open_intent = status.audit_seq if moves else None
            return decision, self._status_after_record(md, old, status)
        if status != old or not md.get("status"):
            md = self.kube.patch_status(md, status.model_dump(mode="json", by_alias=True))
        return decision, md

    def _status_after_record(self, md: dict[str, Any], old: ModelDeploymentStatus,
                             status: ModelDeploymentStatus) -> dict[str, Any]:
        """Status after a record was appended: it must follow the chain. A 409 here means the
        object changed since it was read; when only its spec or metadata did (a user paused or
        annotated it meanwhile) and status is still the one this decision started from, the
        status is written on the fresh object. Otherwise the next pass would decide again from
        a status behind the chain, and a different decision would meet the record just written
        as an AuditConflict for good. A status someone else changed (another replica) stays a
        409: the next pass reads it and the chain decides."""
        body = status.model_dump(mode="json", by_alias=True)
        try:
            return self.kube.patch_status(md, body)
        except ApiException as err:
            if err.status != 409:
                raise
            meta = md["metadata"]
            fresh = self.kube.get_modeldeployment(meta["namespace"], meta["name"])
            if fresh is None or fresh["metadata"].get("uid") != meta.get("uid") or _status(fresh) != old:
                raise
            log.info("%s/%s changed while its decision was recorded; status written on the fresh object",
                     meta["namespace"], meta["name"])
            return self.kube.patch_status(fresh, body)

    def _append(self, md: dict[str, Any], status: ModelDeploymentStatus, **fields: Any) -> dict[str, Any]:
        """Create the next record of this ModelDeployment's chain and move status's pointer to it."""
        meta = md["metadata"]
        record = chain.next_record(status.audit_head, status.audit_seq + 1, signer=self.signer,
                                   modelDeployment=meta["name"], uid=meta.get("uid"), **fields)
        stored = self.kube.create_audit_record(md, record)
        status.audit_seq = int(stored["spec"]["seq"])
        status.audit_head = stored["spec"]["hash"]
        return stored

    def _abandon_orphan(self, md: dict[str, Any], status: ModelDeploymentStatus, now: dt.datetime) -> bool:
        """The next record exists and is not this decision: it may be our own intent or plain
        decision whose status write was lost (a crash, or a write that failed), and which this
        pass no longer decides (time moved on, or the user acted meanwhile). Only a record
        provably ours (signed with our key, linked to our head, for this UID) is closed as
        abandoned, on the record: nothing moved for it (an intent moves only after its status
        is written, a plain decision moves nothing) and its status never took effect. Anything
        else stays an AuditConflict. The status read is a quorum GET, so a record whose status
        did land is never mistaken for an orphan."""
        meta = md["metadata"]
        if self.signer is None:
            return False
        found = self.kube.get(API_AUDIT, "AuditRecord", meta["namespace"],
                              audit_record_name(meta["name"], meta["uid"], status.audit_seq + 1))
        record = (found or {}).get("spec") or {}
        if not record or record.get("stage") not in ORPHAN_MESSAGES:
            return False
        ours = (record.get("prevHash") == (status.audit_head or chain.GENESIS) and record.get("uid") == meta["uid"]
                and chain.seal(record)["hash"] == record.get("hash")
                and record.get("signature") == self.signer.sign(chain.record_message(str(record.get("hash")))))
        if not ours:
            return False
        orphan = status.model_copy(update={"audit_seq": int(record["seq"]), "audit_head": record["hash"]})
        self._append(md, orphan, stage="outcome", of=orphan.audit_seq, result="abandoned", served=None,
                     time=iso(now), action=str(record.get("action")), phase=status.phase.value,
                     version=record.get("version"), digest=record.get("digest"), weight=record.get("weight"),
                     reason=f"{str(record['stage']).capitalize()}Abandoned", actor="vigil",
                     message=ORPHAN_MESSAGES[str(record["stage"])])
        status.audit_seq, status.audit_head = orphan.audit_seq, orphan.audit_head
        return True

    def _outcome(self, md: dict[str, Any], status: ModelDeploymentStatus, action: str, result: str, why: str,
                 served: dict[str, int] | None, now: dt.datetime) -> ModelDeploymentStatus:
        """Record how the open intent ended, then clear it in status. If this write fails the
        intent stays open and the next pass completes it again (every action is idempotent)."""
        after = status.model_copy(deep=True)
        intent = after.open_intent
        version = after.canary_version or after.stable_version
        self._append(md, after, stage="outcome", of=intent, result=result, served=served,
                     time=iso(now), action=action, phase=after.phase.value, version=version,
                     digest=after.canary_digest if version == after.canary_version else after.stable_digest,
                     weight=after.step.weight if after.step else None,
                     reason=f"Intent{result.capitalize()}", message=why or f"intent {intent} {result}",
                     actor="vigil")
        after.open_intent = None
        self.kube.patch_status(md, after.model_dump(mode="json", by_alias=True))
        return after

    def _refuse(self, md: dict[str, Any], old: ModelDeploymentStatus, reason: str, message: str,
                now: dt.datetime) -> Decision:
        """Report in status (Stalled) that the decision could not be recorded; touch nothing else."""
        log.error("%s/%s: %s", md["metadata"]["namespace"], md["metadata"]["name"], message)
        refusal = blocked(old, int(md["metadata"].get("generation", 1)), reason, message, now)
        if refusal.status != old:
            self.kube.patch_status(md, refusal.status.model_dump(mode="json", by_alias=True))
        return replace(refusal, requeue_after=REFUSED_RETRY_S)

    def _emit_events(self, md: dict[str, Any], decision: Decision, now: dt.datetime) -> None:
        """Events are for people watching; the AuditRecord is the record, so a refused Event
        never undoes or blocks a decision."""
        if decision.changed:
            self._post_events(md, decision.events, now)

    def _post_events(self, md: dict[str, Any], events: Sequence[EventSpec], now: dt.datetime) -> None:
        for event in events:
            try:
                self.kube.emit_event(md, event, now)
            except ApiException as err:
                log.warning("event %s for %s not posted: %s", event.reason, md["metadata"]["name"], err.reason)

    def _invalid_spec(self, md: dict[str, Any], status: ModelDeploymentStatus, message: str, now: dt.datetime) -> Decision:
        decision = blocked(status, int(md["metadata"].get("generation", 1)), "InvalidSpec", message, now)
        if self._record(md, status, decision, now)[0] is decision:
            self._emit_events(md, decision, now)
        return decision


def _manual_control_pending(annotations: Mapping[str, str], status: ModelDeploymentStatus) -> bool:
    """An abort or promote naming the canary now rolling out: the core acts on it before any
    analysis, so this pass need not wait for a (possibly slow) Prometheus."""
    digest = status.canary_digest
    return bool(digest) and digest in (annotations.get(ANN_ABORT), annotations.get(ANN_PROMOTE))


def _restore(decision: Decision, moves: Moves) -> Decision:
    """Nothing was decided, yet the world differs from what status says (a deleted route or
    Deployment, a scaled workload): putting it back moves traffic, so it is a recorded action."""
    first = decision.status.stable_version is None
    message = f"{'deploying' if first else 'restoring what status stands for'}: {moves.describe()}"
    return replace(decision, action=Action.DEPLOY if first else Action.RESTORE,
                   evidence={**decision.recorded_evidence(), "moves": moves.describe()}, whole_evidence=None,
                   status=decision.status.model_copy(update={"message": message}))


def measure(metrics: MetricsProvider | None, namespace: str, spec: ModelDeploymentSpec,
            plan: AnalysisPlan | None, now: dt.datetime) -> Mapping[Any, Any] | None:
    """Execute the core's plan: read the counters it names (None when nothing is due)."""
    if plan is None:
        return None
    if metrics is None:
        return {}
    target = analysis_target(namespace, spec, plan.baseline.version, plan.canary.version,
                             baseline_matchers=arm_matchers(plan.baseline))
    return metrics.collect(target, plan.gates, plan.start, now)


def analysis_target(namespace: str, spec: ModelDeploymentSpec, baseline_version: str, canary_version: str,
                    baseline_matchers: Mapping[str, str] | None = None) -> AnalysisTarget:
    """The series of one ModelDeployment's two arms, as its spec names them (model, extra
    selector, and whose metric names: `spec.analysis.metricsPreset`)."""
    return AnalysisTarget(
        namespace=namespace, model=spec.model, baseline_version=baseline_version, canary_version=canary_version,
        extra_matchers=dict(spec.analysis.selector), baseline_matchers=dict(baseline_matchers or {}),
        preset=spec.analysis.metrics_preset.value,
    )


def arm_matchers(arm: Arm) -> dict[str, str]:
    """Extra Prometheus matchers that select one arm's pods: a fresh baseline's pods carry
    `vigil.dev/track=baseline`, which the scrape config maps to the `track` label
    (docs/metrics-contract.md)."""
    return {"track": arm.track.value} if arm.track is Track.BASELINE else {}



REFUSED_RETRY_S = 5.0
"""How soon a pass whose record was refused tries again: the cause (a quota, an admission
policy, an apiserver error) changes nothing on the ModelDeployment that would wake it, and the
rollout should go on within seconds of its removal, not at the next minute's pass."""


def _status(md: dict[str, Any]) -> ModelDeploymentStatus:
    try:
        return ModelDeploymentStatus.model_validate(md.get("status") or {})
    except ValidationError:
        log.warning("status of %s is unreadable; starting from an empty status", md["metadata"]["name"])
        return ModelDeploymentStatus()
