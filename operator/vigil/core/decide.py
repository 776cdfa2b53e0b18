"""decide(): the whole rollout, as a pure function of its inputs.

    decide(name, spec, policy, status, observation, now) -> Decision

No I/O, no clock, no randomness: the same inputs always give the same Decision, so any
"why did it do that?" is answered by replaying the audit record's inputs. Phases move only
through `phases.transition`; what to measure comes from `plan.plan_analysis`; the statistics
come from `analyzer` (vigil.stats.analyze).

Step semantics, as platform teams know them from Flagger and Argo Rollouts, but with sound
statistics underneath:

* the fail test runs at every analysis, on all the evidence since the stage started, so a
  gross regression at a small weight rolls back within minutes;
* an intermediate step advances after its bake time and minimum samples when no gate fails
  (`requirePassEachStep` demands every gate's Pass instead);
* full promotion needs every gate's Pass: each gate's regression margin ruled out on all the
  canary evidence;
* a rollout that reaches its budget without a decision does what `budget.onExpiry` says, on
  the record; nothing holds silently for ever.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Callable

from vigil.api.common import parse_duration
from vigil.api.modeldeployment import (
    ModelDeploymentSpec,
    ModelDeploymentStatus,
    Phase,
    RolloutPlan,
    StepStatus,
)
from vigil.api.names import ANN_ABORT, ANN_EMERGENCY, ANN_PAUSED, ANN_PROMOTE, ANN_REQUESTED_BY, approvers
from vigil.api.policy import BaselineMode, ExpiryAction, NoDataAction, RiskPolicySpec
from vigil.core import conditions, guards
from vigil.core.model import (
    Action,
    AnalysisLike,
    Arm,
    Decision,
    DesiredWorkload,
    EventSpec,
    Observation,
    PolicyProblem,
    Role,
    RouteObservation,
    TrafficSplit,
    Track,
)
from vigil.core.phases import ANALYSING, AT_REST, IN_ROLLOUT, Trigger, transition
from vigil.core.plan import SHADOW_ONLY, AnalysisPlan, Stage, plan_analysis
from vigil.core.timefmt import iso, parse_iso, since
from vigil.stats.result import Outcome, status_record

Analyzer = Callable[..., AnalysisLike]
HISTORY_LIMIT = 20


ANALYZER_DEFAULTS: dict[str, Any] = {"deferred": True}
"""What `default_analyzer` adds to the arguments `decide` passes (a request computed ahead carries it too)."""


def default_analyzer(*args: Any, **kwargs: Any) -> AnalysisLike:
    """`vigil.stats.analyze`, deferring what only a decision's AuditRecord reads (the plans of
    decided gates beyond what status shows): `_finish` completes the record when the decision is
    recorded, so every record carries what an eager analysis gives."""
    from vigil.stats import analyze

    return analyze(*args, **{**ANALYZER_DEFAULTS, **kwargs})


@dataclass(frozen=True)
class AnalysisRequest:
    """The analysis a pass asks `analyzer` for: its gates, the observed metrics and the keyword
    arguments (`default_analyzer`'s `deferred` included), for a caller that computes it ahead."""

    gates: list[Any]
    metrics: Any
    kwargs: dict[str, Any]


def analysis_request(policy: RiskPolicySpec | PolicyProblem, status: ModelDeploymentStatus,
                     observation: Observation, now: datetime) -> AnalysisRequest | None:
    """What `decide` will ask its analyzer for in this pass if it analyses (None when nothing is
    measured): a caller with many ModelDeployments due at once computes these together
    (`vigil.stats.analyze.analyze_many`) and hands each pass its result (`precomputed_analyzer`).
    `bench/rollout_sim.run_together` does, to measure what that saves a fleet; the operator does
    not (each pass analyses its own model at once: docs/benchmarks/operator_scale.md, "no common
    tick"). Pure; a pass whose state moves before it analyses asks for something else, and then
    its analyzer computes that itself."""
    if isinstance(policy, PolicyProblem) or observation.metrics is None:
        return None
    plan = plan_analysis(status, policy, now)
    if plan is None:
        return None
    return AnalysisRequest(list(plan.gates), observation.metrics,
                           {**ANALYZER_DEFAULTS, **_analysis_arguments(policy, status, observation, plan, now)})


def precomputed_analyzer(request: AnalysisRequest, analysis: AnalysisLike,
                         fallback: Analyzer = default_analyzer) -> Analyzer:
    """An analyzer that answers `request` (the same metrics object, gates and arguments) with
    `analysis` and computes anything else with `fallback`."""
    def analyzer(gates: Any, metrics: Any, **kwargs: Any) -> AnalysisLike:
        if metrics is request.metrics and list(gates) == request.gates and {**ANALYZER_DEFAULTS, **kwargs} == request.kwargs:
            return analysis
        return fallback(gates, metrics, **kwargs)

    return analyzer


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
    stalled: bool = False  # a hold that needs a person (budget exceeded): Stalled=True
    srm_warning: str | None = None  # a sample-ratio mismatch that this analysis found first
    whole_record: Callable[[], dict[str, Any]] | None = None  # the analysis record with its deferred plans

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

    def ready(self, version: str | None, track: Track = Track.MAIN) -> bool:
        w = self.obs.workloads.get(Arm(version or "", track))
        return bool(w and w.ready())


# ------------------------------------------------------------------ desired states

def _workloads(ctx: _Ctx, *pairs: tuple[Arm, str | None, Role, bool]) -> tuple[DesiredWorkload, ...]:
    assert ctx.spec is not None
    return tuple(DesiredWorkload(arm, digest, ctx.spec.replicas if running else 0, role)
                 for arm, digest, role, running in pairs if arm.version and digest)


def _desired(ctx: _Ctx, phase: Phase) -> tuple[tuple[DesiredWorkload, ...], TrafficSplit[Arm]]:
    """Workloads and traffic for `phase`, from the (new) status alone: apply, never add."""
    s = ctx.status
    stable, canary, previous = Arm(s.stable_version or ""), Arm(s.canary_version or ""), Arm(s.previous_version or "")
    keep_previous = (previous, s.previous_digest, Role.PREVIOUS, False)
    paused_in = s.paused_from if phase is Phase.PAUSED else phase
    if paused_in in (Phase.SHADOW, Phase.CANARY):
        shadowing = paused_in is Phase.SHADOW
        weight = s.step.weight if s.step else 0
        pairs = [(stable, s.stable_digest, Role.STABLE, True), (canary, s.canary_digest, Role.CANARY, True)]
        weights = {stable: 100 - weight, canary: weight}
        if ctx.policy.baseline is BaselineMode.FRESH and not shadowing and weight:
            baseline = Arm(stable.version, Track.BASELINE)
            pairs.append((baseline, s.stable_digest, Role.BASELINE, True))
            weights = {stable: 100 - 2 * weight, baseline: weight, canary: weight}
        traffic = TrafficSplit(
            weights={k: v for k, v in weights.items() if k.version and v > 0},
            mirror=canary if shadowing else None,
            mirror_percent=ctx.policy.shadow.mirror_percent if shadowing else 0,
        )
        return _workloads(ctx, *pairs, keep_previous), traffic
    running_previous = (stable, s.stable_digest, Role.STABLE, True), (previous, s.previous_digest, Role.PREVIOUS, True)
    if paused_in is Phase.HOLDBACK:
        hold = ctx.policy.holdback.weight if ctx.policy.holdback else 0
        return _workloads(ctx, *running_previous), TrafficSplit({stable: 100 - hold, previous: hold})
    if phase is Phase.PROMOTING:
        return _workloads(ctx, *running_previous), TrafficSplit({stable: 100})
    if phase in (Phase.ROLLING_BACK, Phase.ROLLED_BACK):
        return (_workloads(ctx, (stable, s.stable_digest, Role.STABLE, True),
                           (canary, s.canary_digest, Role.CANARY, False), keep_previous),
                TrafficSplit({stable: 100}))
    if phase is Phase.PENDING and s.stable_version is None:  # first deployment
        wanted = Arm(ctx.version)
        return _workloads(ctx, (wanted, ctx.digest, Role.STABLE, True)), TrafficSplit({wanted: 100})
    return _workloads(ctx, (stable, s.stable_digest, Role.STABLE, True), keep_previous), TrafficSplit({stable: 100})


# ------------------------------------------------------------------ status edits

def _move(ctx: _Ctx, trigger: Trigger, reason: str, message: str, *, resume_to: Phase | None = None) -> Phase:
    phase = transition(ctx.status.phase, trigger, resume_to=resume_to)
    if phase is not ctx.status.phase or trigger in (Trigger.STEP_PASSED, Trigger.START_CANARY, Trigger.START_SHADOW):
        ctx.status.phase_started_at = iso(ctx.now)
    ctx.status.phase = phase
    ctx.status.message = message
    warn = trigger in (Trigger.ANALYSIS_FAILED, Trigger.NO_DATA_LIMIT, Trigger.ABORT, Trigger.BLOCKED,
                       Trigger.BUDGET_ROLLBACK)
    ctx.event("Warning" if warn else "Normal", reason, message)
    ctx.evidence["trigger"] = trigger.value
    return phase


def _start_step(ctx: _Ctx, index: int, weight: int, *, new_stage: bool) -> None:
    """A step waits for its pods (started_at None). A new budget stage (a new rollout, the
    holdback) starts its evidence afresh; a new step, or shadow becoming canary, keeps the
    evidence and the analysis cadence."""
    s = ctx.status
    s.step = StepStatus(index=index, weight=weight, started_at=None)
    if new_stage:
        s.stage_started_at = None
        s.last_analysis_at = None
        s.failure_count = 0
        s.no_data_count = 0


def _start_rollout(ctx: _Ctx, restart: bool) -> Action:
    s = ctx.status
    if restart:
        ctx.event("Normal", "NewVersionMidRollout",
                  f"version {ctx.version} arrived while {s.canary_version} was rolling out; analysis restarts for {ctx.version}")
    s.canary_version, s.canary_digest = ctx.version, ctx.digest
    s.rollout_id = f"{ctx.obs.generation}-{ctx.digest[7:19]}"
    s.rollout_started_at = iso(ctx.now)
    s.verdict, s.last_analysis, s.paused_from, s.plan = None, None, None, None
    s.carried_verdicts = {}
    if ctx.policy.shadow.enabled:
        _start_step(ctx, -1, 0, new_stage=True)
        _move(ctx, Trigger.START_SHADOW, "RolloutStarted",
              f"rolling out {ctx.version} (stable {s.stable_version}): shadow traffic first")
    else:
        _start_step(ctx, 0, ctx.steps()[0], new_stage=True)
        _move(ctx, Trigger.START_CANARY, "RolloutStarted",
              f"rolling out {ctx.version} (stable {s.stable_version}): canary at {ctx.steps()[0]}%")
    return Action.START


def _rollback(ctx: _Ctx, trigger: Trigger, reason: str, message: str) -> Action:
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
    s.plan = None
    return Action.ROLLBACK


def _promote(ctx: _Ctx, trigger: Trigger, reason: str, message: str) -> Action:
    s = ctx.status
    s.previous_version, s.previous_digest = s.stable_version, s.stable_digest
    s.stable_version, s.stable_digest = s.canary_version, s.canary_digest
    s.step = StepStatus(index=len(ctx.steps()), weight=100, started_at=iso(ctx.now))
    _move(ctx, trigger, reason, message)
    return Action.PROMOTE


def _hold(ctx: _Ctx, reason: str, message: str, *, announce: bool = True) -> Action:
    """Stay where we are. Status always carries the latest figures, but the hold is a recorded
    decision (Event + audit record) only when the reason for holding changes, not at every
    analysis interval."""
    ctx.status.message = message
    previous = next((c.reason for c in ctx.old.conditions if c.type == "Progressing"), None)
    if not announce or reason == previous:
        return Action.NONE
    ctx.event("Normal", reason, message)
    return Action.HOLD


# ------------------------------------------------------------------ analysis

def expected_share(plan: AnalysisPlan, route: RouteObservation) -> float | None:
    """The canary's share of the two compared arms as the router really serves it (a replicas
    router serves its replica ratio, not the nominal weight). None in shadow (same requests)."""
    if plan.stage is Stage.SHADOW:
        return None
    c, b = route.weight(plan.canary), route.weight(plan.baseline)
    return c / (c + b) if c + b > 0 else None


@dataclass(frozen=True)
class _Judgement:
    """What one analysis means for the rollout."""

    analysis: AnalysisLike
    outcomes: dict[str, Outcome]  # by metric name

    @property
    def failed(self) -> bool:
        return Outcome.FAIL in self.outcomes.values()

    @property
    def blind(self) -> bool:
        """No gate had data: nothing at all was measured."""
        return all(o is Outcome.NO_DATA for o in self.outcomes.values())

    def passed(self, metrics: set[str]) -> bool:
        return all(self.outcomes.get(m) is Outcome.PASS for m in metrics)

    def canary_samples(self) -> int:
        return max((int(v.samples[1]) for v in self.analysis.verdicts), default=0)

    def suspected(self) -> list[str]:
        """Gates whose fail evidence is at least halfway (in log scale) to a rollback. Under a
        version within tolerance that happens with probability at most sqrt(alpha) at any time
        (Ville), so holding it back costs healthy rollouts little."""
        out = []
        for v in self.analysis.verdicts:
            e, threshold = getattr(v, "e_fail", None), getattr(v, "threshold_fail", None)
            if e is not None and threshold and threshold > 1 and e >= math.sqrt(threshold):
                out.append(_metric(v))
        return out


def _metric(v: Any) -> str:
    return str(getattr(v.metric, "value", v.metric))


def _analyse(ctx: _Ctx, plan: AnalysisPlan) -> _Judgement | None:
    if ctx.obs.metrics is None:
        return None
    s = ctx.status
    analysis = ctx.analyzer(list(plan.gates), ctx.obs.metrics,
                            **_analysis_arguments(ctx.policy, s, ctx.obs, plan, ctx.now))
    not_applicable = [
        {"metric": g.metric.value, "outcome": "NotApplicable",
         "explanation": f"judged in shadow: {s.carried_verdicts.get(g.metric.value, 'not judged')}"
         if g.metric in SHADOW_ONLY else f"not measured in the {plan.stage.value} stage"}
        for g in plan.not_applicable
    ]

    def as_record(result: AnalysisLike) -> dict[str, Any]:
        return {**result.to_dict(), "stage": plan.stage.value, "notApplicable": not_applicable}

    record = as_record(analysis)
    complete = getattr(analysis, "complete", None)
    if complete is not None and any(getattr(analysis, "pending", None) or ()):
        ctx.whole_record = lambda: as_record(complete())
    s.last_analysis_at = iso(ctx.now)
    before = (s.last_analysis or {}).get("sampleRatio") or {}
    now_srm = record.get("sampleRatio") or {}
    if now_srm.get("mismatch") and not before.get("mismatch"):
        ctx.srm_warning = str(record.get("summary", "sample ratio mismatch"))
    s.last_analysis = status_record(record)  # the full record goes into the decision's evidence
    s.verdict = Outcome(analysis.outcome).value
    ctx.evidence["analysis"] = record
    ctx.evidence["alpha"] = {"fail": plan.alpha_fail, "pass": plan.alpha_pass}
    judgement = _Judgement(analysis, {_metric(v): Outcome(v.outcome) for v in analysis.verdicts})
    s.plan = _plan_status(ctx, plan, analysis)
    return judgement


def _analysis_arguments(policy: RiskPolicySpec, s: ModelDeploymentStatus, obs: Observation, plan: AnalysisPlan,
                        now: datetime) -> dict[str, Any]:
    """The analyzer's keyword arguments for `plan` in state `s` (`_analyse`, `analysis_request`)."""
    horizon = parse_duration(policy.budget.max_duration).total_seconds()
    split_since = s.step.started_at if s.step and s.step.started_at else s.stage_started_at
    return dict(
        alpha_fail=plan.alpha_fail, alpha_pass=plan.alpha_pass, min_samples=policy.min_samples,
        expected_canary_share=expected_share(plan, obs.route),
        share_since=parse_iso(split_since).timestamp() if split_since else None, horizon_s=horizon,
        # a regression that starts late (after promotion, or while a rollout holds past its
        # budget) is caught about as fast as a fresh one; see docs/rollouts.md for the alpha it costs
        detect_change=plan.stage is Stage.HOLDBACK or _spent(policy, s, now),
        # holdback ends on its bake time: status projects nothing there (the record still says
        # what the holdback could detect)
        pass_needed=plan.stage is not Stage.HOLDBACK,
    )


def _bake(policy: RiskPolicySpec, phase: Phase) -> timedelta:
    if phase is Phase.SHADOW:
        return parse_duration(policy.shadow.duration)
    if phase is Phase.HOLDBACK:
        return parse_duration(policy.holdback.bake_time if policy.holdback else "0s")
    return parse_duration(policy.bake_time)


def _remaining_bake(ctx: _Ctx) -> timedelta:
    """Bake time left in this step and every later one, holdback included."""
    s, p = ctx.status, ctx.policy
    here = max(_bake(p, s.phase) - since(ctx.now, s.step.started_at if s.step else None), timedelta(0))
    later_steps = 0 if s.phase is Phase.HOLDBACK else len(ctx.steps()) - (s.step.index + 1 if s.step else 0)
    holdback = parse_duration(p.holdback.bake_time) if p.holdback and s.phase is not Phase.HOLDBACK else timedelta(0)
    return here + parse_duration(p.bake_time) * later_steps + holdback


def _duration_text(seconds: float) -> str:
    minutes = round(seconds / 60)
    return f"{minutes}m" if minutes < 120 else f"{minutes / 60:.1f}h"


def _plan_status(ctx: _Ctx, plan: AnalysisPlan, analysis: AnalysisLike) -> RolloutPlan:
    """Expected time to full promotion at the observed traffic, and what the budget leaves."""
    s, p = ctx.status, ctx.policy
    budget_left = parse_duration(p.budget.max_duration) - since(ctx.now, s.rollout_started_at)
    elapsed = since(ctx.now, s.stage_started_at).total_seconds()
    holdback = plan.stage is Stage.HOLDBACK  # no Pass is needed there: only the gates that have passed
    gates = {_metric(v): _passed_at(ctx, plan, _metric(v), elapsed) if Outcome(v.outcome) is Outcome.PASS
             else (None if v.time_to_pass_s is None else int(v.time_to_pass_s)) for v in analysis.verdicts
             if not holdback or Outcome(v.outcome) is Outcome.PASS}
    bake = _remaining_bake(ctx).total_seconds()
    if holdback:
        eta: float | None = bake
        needs: list[int | None] = []
    else:  # shadow and canary share their evidence: every gate judged now must pass in time
        eta, needs = bake, list(gates.values())
    beyond = plan.stage is not Stage.HOLDBACK and any(
        getattr(getattr(v, "plan", None), "beyond_horizon", False) for v in analysis.verdicts)
    left = max(budget_left.total_seconds(), 0)
    if needs and all(t is not None for t in needs):
        holdback = parse_duration(p.holdback.bake_time).total_seconds() if p.holdback else 0.0
        eta = max(bake, max(t for t in needs if t is not None) - elapsed + holdback)
    elif needs:
        eta = None
    if beyond:
        summary = f"traffic too low: a gate needs more than the budget ({_duration_text(left)} left) to pass"
    elif eta is None:
        summary = "estimating: a gate has no data yet"
    elif eta > left:
        summary = f"traffic too low: ~{_duration_text(eta)} to promote, budget left {_duration_text(left)}"
    else:
        summary = f"~{_duration_text(eta)} to promote"
    return RolloutPlan(summary=summary, eta_seconds=None if eta is None else int(eta),
                       budget_seconds=int(budget_left.total_seconds()), gates=gates)


def _passed_at(ctx: _Ctx, plan: AnalysisPlan, metric: str, elapsed: float) -> int:
    """Seconds from the stage start to when an analysis first saw this gate pass: observed, not
    projected (kept while it keeps passing in the same budget stage, shadow and canary being one;
    now, if it passes for the first time)."""
    old = ctx.old
    before = old.last_analysis or {}
    kept = old.plan.gates.get(metric) if old.plan else None
    same_stage = before.get("stage") is not None and (before.get("stage") == Stage.HOLDBACK.value) == (
        plan.stage is Stage.HOLDBACK)
    passed_before = same_stage and any(
        isinstance(v, dict) and v.get("metric") == metric and v.get("outcome") == Outcome.PASS.value
        for v in before.get("verdicts") or [])
    if passed_before and kept is not None and 0 <= kept <= elapsed:
        return kept
    return int(elapsed)


def _stage_ready(ctx: _Ctx) -> bool:
    """The pods the current stage compares are ready (and, for a fresh baseline, its pods too)."""
    s = ctx.status
    if s.phase is Phase.HOLDBACK:
        return ctx.ready(s.stable_version) and ctx.ready(s.previous_version)
    fresh = s.phase is Phase.CANARY and ctx.policy.baseline is BaselineMode.FRESH
    return ctx.ready(s.canary_version) and (not fresh or ctx.ready(s.stable_version, Track.BASELINE))


def _drive_analysis(ctx: _Ctx) -> Action:
    """One step of an analysing phase: wait for pods, analyse when due, then act on the verdict."""
    s, p = ctx.status, ctx.policy
    arm = s.stable_version if s.phase is Phase.HOLDBACK else s.canary_version
    if not s.step or not s.step.started_at:
        if not _stage_ready(ctx):
            return _hold(ctx, "WaitingForPods", f"waiting for {arm} pods to be ready", announce=False)
        s.step = StepStatus(index=s.step.index if s.step else 0, weight=s.step.weight if s.step else 0,
                            started_at=iso(ctx.now))
        s.stage_started_at = s.stage_started_at or iso(ctx.now)
        return Action.STEP_STARTED
    plan = plan_analysis(ctx.old, p, ctx.now)
    judgement = _analyse(ctx, plan) if plan is not None else None
    if judgement is None:
        return Action.NONE
    action = _act_on(ctx, judgement, arm)
    if ctx.srm_warning and action is Action.NONE:
        # reported once, when it appears; it never decides on its own
        ctx.event("Warning", "SampleRatioMismatch", f"the canary's share differs from what the router serves: {ctx.srm_warning}")
        return Action.HOLD
    return action


def _act_on(ctx: _Ctx, judgement: _Judgement, arm: str | None) -> Action:
    """Roll back, hold, expire or advance on one analysis."""
    s, p = ctx.status, ctx.policy
    assert s.step is not None
    summary = judgement.analysis.summary()
    if judgement.failed:
        s.failure_count += 1
        s.no_data_count = 0
        if s.failure_count >= p.failure_limit:
            return _rollback(ctx, Trigger.ANALYSIS_FAILED, "RolledBack",
                             f"{arm} failed analysis at {s.step.weight}%: {summary}")
        return _hold(ctx, "AnalysisFailed", f"failed analysis {s.failure_count}/{p.failure_limit}: {summary}")
    if judgement.blind:
        s.no_data_count += 1
        if p.no_data.action is NoDataAction.ROLLBACK and s.no_data_count >= p.no_data.rollback_after:
            return _rollback(ctx, Trigger.NO_DATA_LIMIT, "RolledBack",
                             f"no metrics for {s.no_data_count} analyses: {summary}")
        return _hold(ctx, "NoData", f"holding: no data ({s.no_data_count}): {summary}")
    s.no_data_count = 0
    if _budget_spent(ctx):
        if p.budget.on_expiry is not ExpiryAction.HOLD:
            return _expire(ctx)
        announced = len(ctx.events)
        action = _advance(ctx, judgement, summary)
        if action in (Action.NONE, Action.HOLD):
            del ctx.events[announced:]
            return _expire(ctx)
        return action
    return _advance(ctx, judgement, summary)


def _budget_spent(ctx: _Ctx) -> bool:
    """The rollout's budget ran out before promotion (holdback comes after promotion)."""
    return _spent(ctx.policy, ctx.status, ctx.now)


def _spent(policy: RiskPolicySpec, s: ModelDeploymentStatus, now: datetime) -> bool:
    return s.phase is not Phase.HOLDBACK and since(now, s.rollout_started_at) >= parse_duration(policy.budget.max_duration)


def _expire(ctx: _Ctx) -> Action:
    """Do what `budget.onExpiry` says, on the record. A hold still promotes as soon as the
    evidence is complete; until then it is Stalled=True so nobody waits in silence."""
    s, p = ctx.status, ctx.policy
    plan = s.plan.summary if s.plan else "no plan"
    text = f"rollout budget {p.budget.max_duration} reached without a decision ({plan})"
    if p.budget.on_expiry is ExpiryAction.ROLLBACK:
        return _rollback(ctx, Trigger.BUDGET_ROLLBACK, "BudgetExceeded", f"{text}; rolled back as the policy says")
    if p.budget.on_expiry is ExpiryAction.PROMOTE:
        return _promote(ctx, Trigger.BUDGET_PROMOTE, "BudgetExceeded",
                        f"{text}; promoted without full evidence as the policy says")
    ctx.stalled = True
    action = _hold(ctx, "BudgetExceeded", f"{text}; holding: promote, abort or change the policy")
    return Action.BUDGET if action is Action.HOLD else action


def _advance(ctx: _Ctx, judgement: _Judgement, summary: str) -> Action:
    s, p = ctx.status, ctx.policy
    weight = s.step.weight if s.step else 0
    steps = ctx.steps()
    index = s.step.index if s.step else 0
    last = s.phase is Phase.CANARY and index + 1 >= len(steps)
    if s.phase is Phase.SHADOW:
        must_pass = {g.metric.value for g in p.gates if g.metric in SHADOW_ONLY}
    elif last or (s.phase is Phase.CANARY and p.require_pass_each_step):
        must_pass = set(judgement.outcomes)
    else:
        must_pass = set()  # an intermediate step or the holdback: no gate may fail
    if not judgement.passed(must_pass):
        waiting = sorted(m for m in must_pass if judgement.outcomes.get(m) is not Outcome.PASS)
        return _hold(ctx, "Inconclusive", f"holding at {weight}%: waiting for {', '.join(waiting)} to pass; {summary}")
    baked = since(ctx.now, s.step.started_at if s.step else None)
    if baked < _bake(p, s.phase):
        return _hold(ctx, "Baking", f"no gate fails at {weight}%, baking for {_bake(p, s.phase)} at least",
                     announce=False)
    suspected = judgement.suspected() if s.phase is not Phase.HOLDBACK else []
    if suspected and baked < 2 * _bake(p, s.phase):
        # bake times are minimums: a version the evidence already suspects does not take more
        # traffic until the suspicion clears or the bake time has passed twice
        return _hold(ctx, "Suspected", f"holding at {weight}%: {', '.join(suspected)} halfway to a rollback; "
                                       f"the evidence decides before more traffic moves", announce=False)
    if judgement.canary_samples() < p.min_samples and s.phase is not Phase.HOLDBACK:
        return _hold(ctx, "WaitingForSamples",
                     f"baked at {weight}%, {judgement.canary_samples()} of {p.min_samples} canary samples", announce=False)
    frozen = p.frozen_at(ctx.now)
    if frozen and s.phase is not Phase.HOLDBACK:
        return _hold(ctx, "FreezeWindow", f"ready to advance but frozen until {iso(frozen.end)}: {frozen.reason}")
    if s.phase is Phase.SHADOW:
        s.carried_verdicts = {m: judgement.outcomes[m].value for m in must_pass}
        _start_step(ctx, 0, steps[0], new_stage=False)  # one budget stage: the evidence goes on
        _move(ctx, Trigger.SHADOW_PASSED, "ShadowPassed", f"shadow passed: {summary}; canary at {steps[0]}%")
        return Action.STEP
    if s.phase is Phase.HOLDBACK:
        s.step = StepStatus(index=len(steps), weight=100, started_at=iso(ctx.now))
        s.canary_version = s.canary_digest = None
        _move(ctx, Trigger.HOLDBACK_PASSED, "Promoted", f"holdback bake passed: {summary}; {s.stable_version} serves all traffic")
        return Action.COMPLETE
    if not last:
        _start_step(ctx, index + 1, steps[index + 1], new_stage=False)
        _move(ctx, Trigger.STEP_PASSED, "StepPassed", f"step {index + 1} done: {summary}; canary at {steps[index + 1]}%")
        return Action.STEP
    need = p.required_approvals
    approved = approvers(ctx.obs.annotations, s.canary_digest)
    if need and len(approved) < need:
        return _hold(ctx, "AwaitingApproval",
                     f"analysis passed; {need} approval(s) of {s.canary_version} ({s.canary_digest}) needed, "
                     f"{len(approved)} so far: kubectl vigil approve")
    if need:
        ctx.evidence["approvals"] = sorted(approved)
    return _promote(ctx, Trigger.LAST_STEP_PASSED, "Promoting", f"every gate passed: {summary}; promoting {s.canary_version}")


# ------------------------------------------------------------------ the loop's decision

def _manual(ctx: _Ctx) -> Action | None:
    """Pause, resume, promote now, abort: annotations set by `kubectl vigil`, whose writer the
    apiserver checked at admission (requested-by). Promote and abort act only on the digest
    they name, never on a rebuilt version left under a stale annotation."""
    s, ann = ctx.status, ctx.obs.annotations
    user = ann.get(ANN_REQUESTED_BY, "unknown")
    canary = s.canary_digest
    if canary and ann.get(ANN_ABORT) == canary and s.phase in ANALYSING | {Phase.PAUSED, Phase.PROMOTING}:
        ctx.evidence["manual"] = {"action": "abort", "user": user, "digest": canary}
        return _rollback(ctx, Trigger.ABORT, "Aborted", f"rollout of {s.canary_version} aborted by {user}")
    not_promoted_yet = s.canary_digest != s.stable_digest
    if canary and ann.get(ANN_PROMOTE) == canary and not_promoted_yet \
            and s.phase in (Phase.SHADOW, Phase.CANARY, Phase.PAUSED):
        frozen = ctx.policy.frozen_at(ctx.now)
        if frozen and not ctx.policy.allow_emergency_promotion:
            if s.refused_promote == canary:
                return None  # refused and recorded already; the rollout goes on
            s.refused_promote = canary
            ctx.event("Warning", "PromoteRefused",
                      f"manual promote of {s.canary_version} by {user} refused: freeze window until {iso(frozen.end)} "
                      f"({frozen.reason}) and the policy allows no emergency promotion")
            ctx.evidence["manual"] = {"action": "promote-refused", "user": user, "digest": canary}
            return Action.HOLD
        emergency = frozen is not None
        ctx.evidence["manual"] = {"action": "promote", "user": user, "digest": canary, "emergency": emergency}
        s.paused_from = None
        reason, what = ("EmergencyPromote", "as an emergency in a freeze window") if emergency else \
            ("ManualPromote", "without completing analysis")
        return _promote(ctx, Trigger.MANUAL_PROMOTE, reason, f"{s.canary_version} promoted by {user} {what}")
    paused = ann.get(ANN_PAUSED, "").lower() == "true"
    if paused and s.phase in ANALYSING:
        s.paused_from = s.phase
        ctx.evidence["manual"] = {"action": "pause", "user": user}
        _move(ctx, Trigger.PAUSE, "Paused", f"paused by {user} at {s.step.weight if s.step else 0}%")
        return Action.PAUSE
    if not paused and s.phase is Phase.PAUSED:
        ctx.evidence["manual"] = {"action": "resume", "user": user}
        target = s.paused_from
        s.paused_from = None
        _move(ctx, Trigger.RESUME, "Resumed", f"resumed by {user}", resume_to=target)
        return Action.RESUME
    return None


def _blocked(ctx: _Ctx, reason: str, message: str) -> Decision:
    s = ctx.status
    action = Action.NONE
    if s.phase is not Phase.FAILED:
        s.paused_from = s.phase
        _move(ctx, Trigger.BLOCKED, reason, message)
        action = Action.BLOCKED
    elif s.message != message:
        s.message = message
        ctx.event("Warning", reason, message)
        action = Action.BLOCKED
    return _finish(ctx, action, reason, touch_world=False)


def blocked(status: ModelDeploymentStatus, generation: int, reason: str, message: str, now: datetime) -> Decision:
    """The decision when the spec itself cannot be read: report it, touch nothing."""
    ctx = _Ctx("", None, RiskPolicySpec(), status, Observation(generation=generation), now, default_analyzer)
    return _blocked(ctx, reason, message)


def _requeue(ctx: _Ctx) -> float:
    s = ctx.status
    if s.phase in (Phase.ROLLING_BACK, Phase.PENDING, Phase.PROMOTING) or (s.step and not s.step.started_at):
        return 2.0
    if s.phase in (Phase.SUCCEEDED, Phase.ROLLED_BACK, Phase.FAILED):
        return 60.0
    return min(parse_duration(ctx.policy.analysis_interval).total_seconds(), 60.0)


def _finish(ctx: _Ctx, action: Action, reason: str, *, touch_world: bool = True) -> Decision:
    s = ctx.status
    serving = ctx.spec is not None and s.stable_version == ctx.version and s.stable_digest == ctx.digest
    if action is Action.NONE and s.phase is ctx.old.phase:
        # nothing happened: keep the reason the conditions already carry
        reason = next((c.reason for c in ctx.old.conditions if c.type == "Progressing"), reason)
    s.conditions = conditions.build(
        ctx.old.conditions, s.phase, serving_desired=serving, reason=reason,
        message=s.message, generation=ctx.obs.generation, now=iso(ctx.now),
        stalled=ctx.stalled or (reason == "BudgetExceeded" and action is Action.NONE and s.phase in ANALYSING),
    )
    if action is not Action.NONE:
        s.history = (s.history + [{
            "time": iso(ctx.now), "action": action.value, "phase": s.phase.value,
            "version": s.canary_version or s.stable_version,
            "weight": s.step.weight if s.step else None, "verdict": s.verdict, "message": s.message[:300],
        }])[-HISTORY_LIMIT:]
    workloads, traffic = _desired(ctx, s.phase) if touch_world else (None, None)
    if touch_world:
        ctx.evidence.setdefault("policy", ctx.policy.fingerprint())
    whole = None
    if ctx.whole_record is not None and "analysis" in ctx.evidence:
        record, evidence = ctx.whole_record, ctx.evidence
        if action is not Action.NONE:  # recorded: with the plans the analysis deferred
            ctx.evidence["analysis"] = record()
        else:  # recorded only if the reconciler must restore the world
            whole = lambda: {**evidence, "analysis": record()}  # noqa: E731
    return Decision(action=action, status=s, workloads=workloads, traffic=traffic, events=tuple(ctx.events),
                    evidence=ctx.evidence, requeue_after=_requeue(ctx), whole_evidence=whole)


def desired_world(
    name: str,
    spec: ModelDeploymentSpec,
    policy: RiskPolicySpec,
    status: ModelDeploymentStatus,
    observation: Observation,
    now: datetime,
) -> tuple[tuple[DesiredWorkload, ...], TrafficSplit[Arm]]:
    """The workloads and traffic that `status` stands for, with no transition: what an open
    intent (recorded, status written, action not yet confirmed) asks the world to be."""
    ctx = _Ctx(name, spec, policy, status, observation, now, default_analyzer)
    return _desired(ctx, status.phase)


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
    if isinstance(policy, PolicyProblem):
        return _blocked(_Ctx(name, spec, RiskPolicySpec(), status, observation, now, analyzer), policy.reason, policy.message)
    ctx = _Ctx(name, spec, policy, status, observation, now, analyzer)
    s = ctx.status
    s.router_approximate = observation.route.approximate
    if observation.route.problem:
        return _blocked(ctx, "RouteConflict", observation.route.problem)
    if s.phase is Phase.FAILED:
        target = s.paused_from or Phase.PENDING
        s.paused_from = None
        _move(ctx, Trigger.UNBLOCKED, "Unblocked", f"the problem is gone; continuing in {target.value}", resume_to=target)
        return _finish(ctx, Action.UNBLOCKED, "Unblocked")
    return _finish(ctx, *_step(ctx))


def _step(ctx: _Ctx) -> tuple[Action, str]:
    """Pick what happens now; returns (action, condition reason)."""
    s = ctx.status
    wanted = (ctx.version, ctx.digest)
    assert ctx.spec is not None
    guarded = guards.plan_guards(ctx.spec, ctx.policy, ctx.old)
    if s.stable_version is None:  # first deployment: straight to stable
        if ctx.ready(ctx.version):
            s.stable_version, s.stable_digest = wanted
            s.step = StepStatus(index=0, weight=100, started_at=iso(ctx.now))
            _move(ctx, Trigger.FIRST_DEPLOY_READY, "Deployed", f"{ctx.version} deployed and serving all traffic")
            return Action.DEPLOYED, "Deployed"
        s.message = f"deploying {ctx.version}"
        return Action.NONE, "Deploying"
    if wanted == (s.stable_version, s.stable_digest) and wanted != (s.canary_version, s.canary_digest):
        if s.phase in IN_ROLLOUT or s.phase is Phase.ROLLED_BACK:
            cancelled = s.canary_version
            s.canary_version = s.canary_digest = None
            s.step = StepStatus(index=0, weight=100, started_at=iso(ctx.now))
            s.plan = None
            _move(ctx, Trigger.SPEC_REVERTED, "RolloutCancelled",
                  f"spec is back at the stable version {s.stable_version}; {cancelled} is withdrawn")
            return Action.CANCEL, "RolloutCancelled"
        if s.phase is Phase.PENDING:
            _move(ctx, Trigger.FIRST_DEPLOY_READY, "Deployed", f"{s.stable_version} serving all traffic")
            return Action.DEPLOYED, "Deployed"
        return Action.NONE, "Serving" if s.phase is Phase.SUCCEEDED else s.phase.value
    if s.phase is Phase.ROLLING_BACK:
        route, canary = ctx.obs.route, Arm(s.canary_version or "")
        if route.split is not None and route.weight(canary) == 0 and route.split.mirror != canary:
            _move(ctx, Trigger.TRAFFIC_RESTORED, "RolledBack",
                  f"{s.canary_version} rolled back; {s.stable_version} serves all traffic")
            return Action.ROLLED_BACK, "RolledBack"
        return Action.NONE, "RollingBack"
    if f"{ctx.digest}@{ctx.obs.generation}" in s.failed_digests:
        return Action.NONE, "RolledBack"  # not retried until the spec changes again
    if wanted != (s.canary_version, s.canary_digest) or s.phase in AT_REST | {Phase.PENDING}:
        frozen = ctx.policy.frozen_at(ctx.now)
        emergency = (ctx.obs.annotations.get(ANN_EMERGENCY) or "").strip() if ctx.policy.allow_emergency_promotion else ""
        if frozen and emergency:
            # admitted by the webhook only with a fresh reason in the same request (docs/admission.md)
            ctx.evidence["emergency"] = {"reason": emergency, "window": f"{iso(frozen.start)}..{iso(frozen.end)}",
                                         "user": ctx.obs.annotations.get(ANN_REQUESTED_BY, "unknown")}
            ctx.event("Warning", "EmergencyChange", f"{ctx.version} starts inside a freeze window as an emergency: {emergency}")
        elif frozen:
            return _hold(ctx, "FreezeWindow", f"{ctx.version} waits: freeze window until {iso(frozen.end)} {frozen.reason}"), "FreezeWindow"
        burning = guards.budget_problem(ctx.policy, ctx.obs.guards) if guarded.budget_of else None
        if burning:
            return _hold(ctx, "ErrorBudgetBurning", f"{ctx.version} waits: {burning}"), "ErrorBudgetBurning"
        return _start_rollout(ctx, restart=s.phase in IN_ROLLOUT), "RolloutStarted"
    manual = _manual(ctx)
    if manual:
        return manual, ctx.events[-1].reason if ctx.events else manual.value
    if s.phase is Phase.PROMOTING:
        if ctx.ready(s.stable_version):
            if ctx.policy.holdback:
                _start_step(ctx, len(ctx.steps()), 100 - ctx.policy.holdback.weight, new_stage=True)
                _move(ctx, Trigger.PROMOTED_WITH_HOLDBACK, "Holdback",
                      f"{s.stable_version} promoted; {ctx.policy.holdback.weight}% stays on {s.previous_version} for {ctx.policy.holdback.bake_time}")
                return Action.HOLDBACK, "Holdback"
            s.canary_version = s.canary_digest = None
            _move(ctx, Trigger.PROMOTED, "Promoted", f"{s.stable_version} promoted and serving all traffic")
            return Action.PROMOTED, "Promoted"
        return Action.NONE, "Promoting"
    if s.phase is Phase.PAUSED:
        return Action.NONE, "Paused"
    wrong = guards.artifact_problem(s.canary_digest or "", ctx.obs.guards, ctx.policy) if guarded.artifact_of else None
    if wrong and wrong[0] == "ArtifactMismatch":
        return _rollback(ctx, Trigger.ANALYSIS_FAILED, wrong[0], wrong[1]), wrong[0]
    if wrong:
        return _hold(ctx, wrong[0], wrong[1]), wrong[0]
    action = _drive_analysis(ctx)
    reason = ctx.events[-1].reason if ctx.events else "Analysing"
    return action, reason
