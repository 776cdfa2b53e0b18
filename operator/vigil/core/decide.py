"""decide(): the whole rollout, as a pure function of its inputs.

    decide(name, spec, policy, status, observation, now) -> Decision

No I/O, no clock, no randomness: the same inputs always give the same Decision, so any
"why did it do that?" is answered by replaying the audit record's inputs. Phases move only
through `phases.transition`; the statistics come from `analyzer` (vigil.stats.analyze).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Callable, Mapping

from vigil.api.common import parse_duration
from vigil.api.modeldeployment import ModelDeploymentSpec, ModelDeploymentStatus, Phase, StepStatus
from vigil.api.policy import BaselineMode, NoDataAction, RiskPolicySpec
from vigil.core import conditions
from vigil.core.model import (
    AnalysisLike,
    Decision,
    DesiredTraffic,
    DesiredWorkload,
    EventSpec,
    Observation,
    PolicyProblem,
    Role,
)
from vigil.core.phases import AT_REST, IN_ROLLOUT, Trigger, transition

Analyzer = Callable[..., AnalysisLike]

ANN_PAUSED = "vigil.dev/paused"
ANN_PROMOTE = "vigil.dev/promote"
ANN_ABORT = "vigil.dev/abort"
ANN_REQUESTED_BY = "vigil.dev/requested-by"
ANN_APPROVED_BY = "vigil.dev/approved-by"
ANN_APPROVED_VERSION = "vigil.dev/approved-version"
HISTORY_LIMIT = 20


def iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def default_analyzer(*args: Any, **kwargs: Any) -> AnalysisLike:
    from vigil.stats import analyze  # imported late: the core module loads without numpy

    return analyze(*args, **kwargs)


@dataclass
class _Ctx:
    """One call's inputs plus what the call accumulates (status edits, events, evidence)."""

    name: str
    spec: ModelDeploymentSpec | None  # None only when blocked on an unreadable spec
    policy: RiskPolicySpec
    old: ModelDeploymentStatus
    obs: Observation
    now: datetime
    analyzer: Analyzer
    status: ModelDeploymentStatus = field(init=False)
    events: list[EventSpec] = field(default_factory=list)
    evidence: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.status = self.old.model_copy(deep=True)
        self.status.observed_generation = self.obs.generation

    @property
    def version(self) -> str:
        return self.spec.version if self.spec else ""

    @property
    def digest(self) -> str:
        return self.spec.artifact.digest if self.spec else ""

    def event(self, type_: str, reason: str, message: str) -> None:
        self.events.append(EventSpec(type_, reason, message))

    def steps(self) -> list[int]:
        if self.spec and self.spec.steps and self.policy.allow_step_overrides:
            return [w for w in self.spec.steps if w <= self.policy.max_weight] or self.policy.steps
        return self.policy.steps

    def ready(self, version: str | None) -> bool:
        w = self.obs.workloads.get(version or "")
        return bool(w and w.ready())


# ------------------------------------------------------------------ desired states

def _workloads(ctx: _Ctx, *pairs: tuple[str | None, str | None, Role, bool]) -> tuple[DesiredWorkload, ...]:
    out = []
    for version, digest, role, running in pairs:
        if version and digest:
            out.append(DesiredWorkload(version, digest, ctx.spec.replicas if running else 0, role))
    return tuple(out)


def _desired(ctx: _Ctx, phase: Phase) -> tuple[tuple[DesiredWorkload, ...], DesiredTraffic]:
    """Workloads and traffic for `phase`, from the (new) status alone: apply, never add."""
    s = ctx.status
    stable, canary, previous = s.stable_version, s.canary_version, s.previous_version
    keep_previous = (previous, s.previous_digest, Role.PREVIOUS, False)
    if phase in (Phase.SHADOW, Phase.CANARY) or (phase is Phase.PAUSED and s.paused_from in (Phase.SHADOW, Phase.CANARY)):
        fresh = ctx.policy.baseline is BaselineMode.FRESH and phase is not Phase.SHADOW and s.paused_from is not Phase.SHADOW
        weight = s.step.weight if s.step else 0
        pairs = [(stable, s.stable_digest, Role.STABLE, True), (canary, s.canary_digest, Role.CANARY, True)]
        weights = {stable: 100 - weight, canary: weight}
        if fresh and weight:
            pairs.append((stable, s.stable_digest, Role.BASELINE, True))
            weights = {stable: 100 - 2 * weight, f"{stable}@baseline": weight, canary: weight}
        shadowing = phase is Phase.SHADOW or s.paused_from is Phase.SHADOW
        traffic = DesiredTraffic(
            weights={k: v for k, v in weights.items() if k and v > 0},
            mirror_version=canary if shadowing else None,
            mirror_percent=ctx.policy.shadow.mirror_percent if shadowing else 0,
        )
        return _workloads(ctx, *pairs, keep_previous), traffic
    if phase is Phase.HOLDBACK or (phase is Phase.PAUSED and s.paused_from is Phase.HOLDBACK):
        hold = ctx.policy.holdback.weight if ctx.policy.holdback else 0
        return (
            _workloads(ctx, (stable, s.stable_digest, Role.STABLE, True), (previous, s.previous_digest, Role.PREVIOUS, True)),
            DesiredTraffic(weights={stable: 100 - hold, previous: hold}),
        )
    if phase is Phase.PROMOTING:
        return (
            _workloads(ctx, (stable, s.stable_digest, Role.STABLE, True), (previous, s.previous_digest, Role.PREVIOUS, True)),
            DesiredTraffic(weights={stable: 100}),
        )
    if phase in (Phase.ROLLING_BACK, Phase.ROLLED_BACK):
        return (
            _workloads(ctx, (stable, s.stable_digest, Role.STABLE, True), (canary, s.canary_digest, Role.CANARY, False), keep_previous),
            DesiredTraffic(weights={stable: 100}),
        )
    if phase is Phase.PENDING and stable is None:  # first deployment
        return (
            _workloads(ctx, (ctx.version, ctx.digest, Role.STABLE, True)),
            DesiredTraffic(weights={ctx.version: 100}),
        )
    return (  # at rest
        _workloads(ctx, (stable, s.stable_digest, Role.STABLE, True), keep_previous),
        DesiredTraffic(weights={stable: 100}),
    )


# ------------------------------------------------------------------ status edits

def _move(ctx: _Ctx, trigger: Trigger, reason: str, message: str, *, resume_to: Phase | None = None) -> Phase:
    phase = transition(ctx.status.phase, trigger, resume_to=resume_to)
    if phase is not ctx.status.phase or trigger in (Trigger.STEP_PASSED, Trigger.START_CANARY, Trigger.START_SHADOW):
        ctx.status.phase_started_at = iso(ctx.now)
    ctx.status.phase = phase
    ctx.status.message = message
    warn = trigger in (Trigger.ANALYSIS_FAILED, Trigger.NO_DATA_LIMIT, Trigger.ABORT, Trigger.BLOCKED)
    ctx.event("Warning" if warn else "Normal", reason, message)
    ctx.evidence["trigger"] = trigger.value
    return phase


def _start_step(ctx: _Ctx, index: int, weight: int) -> None:
    ctx.status.step = StepStatus(index=index, weight=weight, started_at=None)
    ctx.status.failure_count = 0
    ctx.status.no_data_count = 0
    ctx.status.last_analysis_at = None


def _start_rollout(ctx: _Ctx, restart: bool) -> str:
    s = ctx.status
    if restart:
        ctx.event("Normal", "NewVersionMidRollout",
                  f"version {ctx.version} arrived while {s.canary_version} was rolling out; analysis restarts for {ctx.version}")
    s.canary_version, s.canary_digest = ctx.version, ctx.digest
    s.rollout_id = f"{ctx.obs.generation}-{ctx.digest[7:19]}"
    s.verdict, s.last_analysis, s.paused_from = None, None, None
    if ctx.policy.shadow.enabled:
        _start_step(ctx, -1, 0)
        _move(ctx, Trigger.START_SHADOW, "RolloutStarted",
              f"rolling out {ctx.version} (stable {s.stable_version}): shadow traffic first")
    else:
        _start_step(ctx, 0, ctx.steps()[0])
        _move(ctx, Trigger.START_CANARY, "RolloutStarted",
              f"rolling out {ctx.version} (stable {s.stable_version}): canary at {ctx.steps()[0]}%")
    return "start"


def _rollback(ctx: _Ctx, trigger: Trigger, reason: str, message: str) -> str:
    s = ctx.status
    failed, failed_digest = s.canary_version, s.canary_digest
    if (failed, failed_digest) == (s.stable_version, s.stable_digest):
        # already promoted (Promoting, Holdback): the previous version becomes stable again
        s.stable_version, s.stable_digest = s.previous_version, s.previous_digest
        s.previous_version = s.previous_digest = None
    _move(ctx, trigger, reason, message)
    s.failed_digests = ([d for d in s.failed_digests if not d.startswith(f"{failed_digest}@")]
                        + [f"{failed_digest}@{ctx.obs.generation}"])[-10:]
    s.step = StepStatus(index=-1, weight=0, started_at=iso(ctx.now))
    return "rollback"


def _promote(ctx: _Ctx, trigger: Trigger, reason: str, message: str) -> str:
    s = ctx.status
    s.previous_version, s.previous_digest = s.stable_version, s.stable_digest
    s.stable_version, s.stable_digest = s.canary_version, s.canary_digest
    s.step = StepStatus(index=len(ctx.steps()), weight=100, started_at=iso(ctx.now))
    _move(ctx, trigger, reason, message)
    return "promote"


# ------------------------------------------------------------------ analysis

def analysis_due(status: ModelDeploymentStatus, policy: RiskPolicySpec, now: datetime) -> bool:
    """Whether the loop should query metrics now: an analysing phase whose step started, and
    whose last analysis (or the step's start) is at least one interval old."""
    from vigil.core.phases import ANALYSING

    if status.phase not in ANALYSING or not status.step or not status.step.started_at:
        return False
    last = status.last_analysis_at or status.step.started_at  # the first look waits one interval too
    return now - parse_iso(last) >= parse_duration(policy.analysis_interval)


def analysis_stages(policy: RiskPolicySpec, steps: list[int]) -> int:
    """Separate analyses in one rollout; the false-rollback budget is split across them."""
    return len(steps) + int(policy.shadow.enabled) + int(policy.holdback is not None)


def _analyse(ctx: _Ctx) -> AnalysisLike | None:
    if ctx.obs.metrics is None:
        return None
    s = ctx.status
    weight = s.step.weight if s.step else 0
    if s.phase is Phase.SHADOW:
        share = None  # mirrored: both arms see the same requests
    elif s.phase is Phase.HOLDBACK and ctx.policy.holdback:
        share = (100 - ctx.policy.holdback.weight) / 100
    else:
        share = 0.5 if ctx.policy.baseline is BaselineMode.FRESH else weight / 100
    per_stage = (1 - ctx.policy.confidence) / analysis_stages(ctx.policy, ctx.steps())
    analysis = ctx.analyzer(
        ctx.policy.gates, ctx.obs.metrics,
        confidence=1 - per_stage, min_samples=ctx.policy.min_samples, expected_canary_share=share,
    )
    s.last_analysis_at = iso(ctx.now)
    s.last_analysis = analysis.to_dict()
    s.verdict = _outcome(analysis)
    ctx.evidence["analysis"] = s.last_analysis
    ctx.evidence["confidence"] = 1 - per_stage
    return analysis


def _outcome(analysis: AnalysisLike) -> str:
    value = analysis.outcome
    return str(getattr(value, "value", value))


def _elapsed(ctx: _Ctx, since: str | None) -> timedelta:
    return ctx.now - parse_iso(since) if since else timedelta(0)


def _approved(ctx: _Ctx) -> bool:
    need = ctx.policy.required_approvals
    if need == 0:
        return True
    ann = ctx.obs.annotations
    if ann.get(ANN_APPROVED_VERSION) != ctx.status.canary_version:
        return False
    names = {n.strip() for n in ann.get(ANN_APPROVED_BY, "").split(",") if n.strip()}
    return len(names) >= need


def _hold(ctx: _Ctx, reason: str, message: str, *, announce: bool = True) -> str:
    """Stay where we are. Status always carries the latest figures, but the hold is a recorded
    decision (Event + audit record) only when the reason for holding changes, not at every
    analysis interval."""
    ctx.status.message = message
    previous = next((c.reason for c in ctx.old.conditions if c.type == "Progressing"), None)
    if not announce or reason == previous:
        return "none"
    ctx.event("Normal", reason, message)
    return "hold"


def _drive_analysis(ctx: _Ctx) -> str:
    """One step of an analysing phase: wait for pods, analyse when due, then act on the verdict."""
    s, p = ctx.status, ctx.policy
    arm = s.stable_version if s.phase is Phase.HOLDBACK else s.canary_version
    if not s.step or not s.step.started_at:
        if not ctx.ready(arm) or (s.phase is Phase.HOLDBACK and not ctx.ready(s.previous_version)):
            _hold(ctx, "WaitingForPods", f"waiting for {arm} pods to be ready", announce=False)
            return "none"
        s.step = StepStatus(index=s.step.index if s.step else 0, weight=s.step.weight if s.step else 0,
                            started_at=iso(ctx.now))
        return "step-started"
    analysis = _analyse(ctx)
    if analysis is None:
        return "none"
    verdict = _outcome(analysis)
    summary = analysis.summary()
    if verdict == "Fail":
        s.failure_count += 1
        s.no_data_count = 0
        if s.failure_count >= p.failure_limit:
            return _rollback(ctx, Trigger.ANALYSIS_FAILED, "RolledBack",
                             f"{arm} failed analysis at {s.step.weight}%: {summary}")
        return _hold(ctx, "AnalysisFailed", f"failed analysis {s.failure_count}/{p.failure_limit}: {summary}")
    if verdict == "NoData":
        s.no_data_count += 1
        if p.no_data.action is NoDataAction.ROLLBACK and s.no_data_count >= p.no_data.rollback_after:
            return _rollback(ctx, Trigger.NO_DATA_LIMIT, "RolledBack",
                             f"no metrics for {s.no_data_count} analyses: {summary}")
        return _hold(ctx, "NoData", f"holding: no data ({s.no_data_count}): {summary}")
    s.no_data_count = 0
    if verdict != "Pass":
        return _hold(ctx, "Inconclusive", f"holding at {s.step.weight}%: {summary}")
    return _advance(ctx, summary)


def _advance(ctx: _Ctx, summary: str) -> str:
    s, p = ctx.status, ctx.policy
    bake = {
        Phase.SHADOW: p.shadow.duration,
        Phase.HOLDBACK: p.holdback.bake_time if p.holdback else "0s",
    }.get(s.phase, p.bake_time)
    baked = _elapsed(ctx, s.step.started_at if s.step else None)
    if baked < parse_duration(bake):
        return _hold(ctx, "Baking", f"passing at {s.step.weight if s.step else 0}%, baking ({bake} at least)", announce=False)
    frozen = p.frozen_at(ctx.now)
    if frozen and s.phase is not Phase.HOLDBACK:
        return _hold(ctx, "FreezeWindow", f"passing but frozen until {iso(frozen.end)}: {frozen.reason}")
    steps = ctx.steps()
    if s.phase is Phase.SHADOW:
        _start_step(ctx, 0, steps[0])
        _move(ctx, Trigger.SHADOW_PASSED, "ShadowPassed", f"shadow passed: {summary}; canary at {steps[0]}%")
        return "step"
    if s.phase is Phase.HOLDBACK:
        s.step = StepStatus(index=len(steps), weight=100, started_at=iso(ctx.now))
        s.canary_version = s.canary_digest = None
        _move(ctx, Trigger.HOLDBACK_PASSED, "Promoted", f"holdback bake passed: {summary}; {s.stable_version} serves all traffic")
        return "complete"
    index = s.step.index if s.step else 0
    if index + 1 < len(steps):
        _start_step(ctx, index + 1, steps[index + 1])
        _move(ctx, Trigger.STEP_PASSED, "StepPassed", f"step {index + 1} passed: {summary}; canary at {steps[index + 1]}%")
        return "step"
    if not _approved(ctx):
        return _hold(ctx, "AwaitingApproval",
                     f"analysis passed; {p.required_approvals} approval(s) for {s.canary_version} needed "
                     f"(annotations {ANN_APPROVED_BY}, {ANN_APPROVED_VERSION})")
    return _promote(ctx, Trigger.LAST_STEP_PASSED, "Promoting", f"all steps passed: {summary}; promoting {s.canary_version}")


# ------------------------------------------------------------------ the loop's decision

def _manual(ctx: _Ctx) -> str | None:
    """Pause, resume, promote now, abort: annotations set by `kubectl vigil`."""
    s, ann = ctx.status, ctx.obs.annotations
    user = ann.get(ANN_REQUESTED_BY, "unknown")
    from vigil.core.phases import ANALYSING

    if ann.get(ANN_ABORT) and ann.get(ANN_ABORT) == s.canary_version and s.phase in ANALYSING | {Phase.PAUSED, Phase.PROMOTING}:
        ctx.evidence["manual"] = {"action": "abort", "user": user}
        return _rollback(ctx, Trigger.ABORT, "Aborted", f"rollout of {s.canary_version} aborted by {user}")
    not_promoted_yet = s.canary_version != s.stable_version
    if ann.get(ANN_PROMOTE) and ann.get(ANN_PROMOTE) == s.canary_version and not_promoted_yet \
            and s.phase in (Phase.SHADOW, Phase.CANARY, Phase.PAUSED):
        ctx.evidence["manual"] = {"action": "promote", "user": user}
        s.paused_from = None
        return _promote(ctx, Trigger.MANUAL_PROMOTE, "ManualPromote",
                        f"{s.canary_version} promoted by {user} without completing analysis")
    paused = ann.get(ANN_PAUSED, "").lower() == "true"
    if paused and s.phase in ANALYSING:
        s.paused_from = s.phase
        ctx.evidence["manual"] = {"action": "pause", "user": user}
        _move(ctx, Trigger.PAUSE, "Paused", f"paused by {user} at {s.step.weight if s.step else 0}%")
        return "pause"
    if not paused and s.phase is Phase.PAUSED:
        ctx.evidence["manual"] = {"action": "resume", "user": user}
        target = s.paused_from
        s.paused_from = None
        _move(ctx, Trigger.RESUME, "Resumed", f"resumed by {user}", resume_to=target)
        return "resume"
    return None


def _blocked(ctx: _Ctx, reason: str, message: str) -> Decision:
    s = ctx.status
    action = "none"
    if s.phase is not Phase.FAILED:
        s.paused_from = s.phase
        _move(ctx, Trigger.BLOCKED, reason, message)
        action = "blocked"
    elif s.message != message:
        s.message = message
        ctx.event("Warning", reason, message)
        action = "blocked"
    return _finish(ctx, action, reason, touch_world=False)


def blocked(status: ModelDeploymentStatus, generation: int, reason: str, message: str, now: datetime) -> Decision:
    """The decision when the spec itself cannot be read: report it, touch nothing."""
    ctx = _Ctx("", None, RiskPolicySpec(), status, Observation(generation=generation), now, default_analyzer)
    return _blocked(ctx, reason, message)


def _finish(ctx: _Ctx, action: str, reason: str, *, touch_world: bool = True) -> Decision:
    s = ctx.status
    serving = ctx.spec is not None and s.stable_version == ctx.version and s.stable_digest == ctx.digest
    if action == "none" and s.phase is ctx.old.phase:
        # nothing happened: keep the reason the conditions already carry
        reason = next((c.reason for c in ctx.old.conditions if c.type == "Progressing"), reason)
    s.conditions = conditions.build(
        ctx.old.conditions, s.phase, serving_desired=serving, reason=reason,
        message=s.message, generation=ctx.obs.generation, now=iso(ctx.now),
    )
    if action != "none":
        s.history = (s.history + [{
            "time": iso(ctx.now), "action": action, "phase": s.phase.value, "version": s.canary_version or s.stable_version,
            "weight": s.step.weight if s.step else None, "verdict": s.verdict, "message": s.message[:300],
        }])[-HISTORY_LIMIT:]
    workloads, traffic = _desired(ctx, s.phase) if touch_world else (None, None)
    if s.phase in (Phase.ROLLING_BACK, Phase.PENDING, Phase.PROMOTING) or (s.step and not s.step.started_at):
        requeue = 2.0
    elif s.phase in (Phase.SUCCEEDED, Phase.ROLLED_BACK, Phase.FAILED):
        requeue = 60.0
    else:
        requeue = min(parse_duration(ctx.policy.analysis_interval).total_seconds(), 60.0)
    if touch_world:
        ctx.evidence.setdefault("policy", ctx.policy.fingerprint())
    return Decision(
        action=action, status=s, workloads=workloads, traffic=traffic, events=tuple(ctx.events),
        evidence=ctx.evidence, requeue_after=requeue,
        analyze_from=s.step.started_at if s.step else None,
    )


def decide(
    name: str,
    spec: ModelDeploymentSpec,
    policy: RiskPolicySpec | PolicyProblem,
    status: ModelDeploymentStatus,
    observation: Observation,
    now: datetime,
    analyzer: Analyzer = default_analyzer,
) -> Decision:
    """The next step of one ModelDeployment's rollout. Pure: no I/O, `now` is passed in."""
    if isinstance(policy, PolicyProblem) or observation.spec_problem:
        ctx = _Ctx(name, spec, RiskPolicySpec(), status, observation, now, analyzer)
        if isinstance(policy, PolicyProblem):
            return _blocked(ctx, policy.reason, policy.message)
        return _blocked(ctx, "InvalidSpec", observation.spec_problem or "")
    ctx = _Ctx(name, spec, policy, status, observation, now, analyzer)
    s = ctx.status
    if observation.route is not None and observation.route.problem:
        return _blocked(ctx, "RouteConflict", observation.route.problem)
    if s.phase is Phase.FAILED:
        target = s.paused_from or Phase.PENDING
        s.paused_from = None
        _move(ctx, Trigger.UNBLOCKED, "Unblocked", f"the problem is gone; continuing in {target.value}", resume_to=target)
        return _finish(ctx, "unblocked", "Unblocked")
    return _finish(ctx, *_step(ctx))


def _step(ctx: _Ctx) -> tuple[str, str]:
    """Pick what happens now; returns (action, condition reason)."""
    s = ctx.status
    wanted = (ctx.version, ctx.digest)
    if s.stable_version is None:  # first deployment: straight to stable
        if ctx.ready(ctx.version):
            s.stable_version, s.stable_digest = wanted
            s.step = StepStatus(index=0, weight=100, started_at=iso(ctx.now))
            _move(ctx, Trigger.FIRST_DEPLOY_READY, "Deployed", f"{ctx.version} deployed and serving all traffic")
            return "deployed", "Deployed"
        s.message = f"deploying {ctx.version}"
        return "none", "Deploying"
    if wanted == (s.stable_version, s.stable_digest) and wanted != (s.canary_version, s.canary_digest):
        if s.phase in IN_ROLLOUT or s.phase is Phase.ROLLED_BACK:
            cancelled = s.canary_version
            s.canary_version = s.canary_digest = None
            s.step = StepStatus(index=0, weight=100, started_at=iso(ctx.now))
            _move(ctx, Trigger.SPEC_REVERTED, "RolloutCancelled",
                  f"spec is back at the stable version {s.stable_version}; {cancelled} is withdrawn")
            return "cancel", "RolloutCancelled"
        if s.phase is Phase.PENDING:
            _move(ctx, Trigger.FIRST_DEPLOY_READY, "Deployed", f"{s.stable_version} serving all traffic")
            return "deployed", "Deployed"
        return "none", "Serving" if s.phase is Phase.SUCCEEDED else s.phase.value
    if s.phase is Phase.ROLLING_BACK:
        route = ctx.obs.route
        if route is not None and route.weights.get(s.canary_version or "", 0) == 0 and route.mirror_version != s.canary_version:
            _move(ctx, Trigger.TRAFFIC_RESTORED, "RolledBack",
                  f"{s.canary_version} rolled back; {s.stable_version} serves all traffic")
            return "rolled-back", "RolledBack"
        return "none", "RollingBack"
    if f"{ctx.digest}@{ctx.obs.generation}" in s.failed_digests:
        return "none", "RolledBack"  # not retried until the spec changes again
    if wanted != (s.canary_version, s.canary_digest) or s.phase in AT_REST | {Phase.PENDING}:
        frozen = ctx.policy.frozen_at(ctx.now)
        if frozen:
            return _hold(ctx, "FreezeWindow", f"{ctx.version} waits: freeze window until {iso(frozen.end)} {frozen.reason}"), "FreezeWindow"
        return _start_rollout(ctx, restart=s.phase in IN_ROLLOUT), "RolloutStarted"
    manual = _manual(ctx)
    if manual:
        return manual, ctx.events[-1].reason if ctx.events else manual
    if s.phase is Phase.PROMOTING:
        if ctx.ready(s.stable_version):
            if ctx.policy.holdback:
                s.step = StepStatus(index=len(ctx.steps()), weight=100 - ctx.policy.holdback.weight, started_at=None)
                s.failure_count = s.no_data_count = 0
                s.last_analysis_at = None
                _move(ctx, Trigger.PROMOTED_WITH_HOLDBACK, "Holdback",
                      f"{s.stable_version} promoted; {ctx.policy.holdback.weight}% stays on {s.previous_version} for {ctx.policy.holdback.bake_time}")
                return "holdback", "Holdback"
            s.canary_version = s.canary_digest = None
            _move(ctx, Trigger.PROMOTED, "Promoted", f"{s.stable_version} promoted and serving all traffic")
            return "promoted", "Promoted"
        return "none", "Promoting"
    if s.phase is Phase.PAUSED:
        return "none", "Paused"
    action = _drive_analysis(ctx)
    reason = ctx.events[-1].reason if ctx.events else ("Analysing" if s.phase.value != "Succeeded" else "Serving")
    return action, reason
