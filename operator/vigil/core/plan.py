"""What to measure now: the pure plan the reconciler executes before `decide()` runs.

A rollout is judged in up to three *stages*, which say which arms and gates are compared:

* shadow: the new version on mirrored requests against stable on the same requests;
* canary: the new version against stable (or a fresh baseline) on split traffic;
* holdback: after promotion, the new stable against the few percent left on the previous one.

Evidence belongs to a *budget stage*: shadow and canary form one (the rollout before
promotion), holdback another (the roles are swapped). A budget stage's window starts when its
first phase starts and is kept across the shadow-to-canary change, every step and every
restart, because it is re-read from Prometheus from that start: mirrored requests are served
by the very pods that later take canary traffic, and the rate tests condition on each
interval's split, so neither the mirror nor a weight change biases them. The false-rollback
budget (1 - policy.confidence) is spent once per budget stage and gate, never per step: every
gate gets the same share in every phase of its budget stage, so the gates judged only in
shadow and the others add up to the stage's share exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import Enum

from vigil.api.common import parse_duration
from vigil.api.gates import Gate, MetricKind
from vigil.api.modeldeployment import ModelDeploymentStatus, Phase
from vigil.api.policy import BaselineMode, RiskPolicySpec
from vigil.core.model import Arm, Track
from vigil.core.timefmt import parse_iso


class Stage(str, Enum):
    SHADOW = "shadow"
    CANARY = "canary"
    HOLDBACK = "holdback"


STAGE_OF_PHASE = {Phase.SHADOW: Stage.SHADOW, Phase.CANARY: Stage.CANARY, Phase.HOLDBACK: Stage.HOLDBACK}

SHADOW_ONLY = frozenset({MetricKind.SHADOW_DISAGREEMENT})
"""Gates whose data exists only while traffic is mirrored: judged in shadow, then carried."""


@dataclass(frozen=True)
class AnalysisPlan:
    """One measurement: which arms, since when, for which gates, at which error budgets."""

    stage: Stage
    baseline: Arm
    canary: Arm
    start: datetime  # the budget stage's evidence starts here
    gates: tuple[Gate, ...]  # the gates that apply in this stage
    not_applicable: tuple[Gate, ...]  # the others, reported as such (not as Inconclusive)
    alpha_fail: float  # false-rollback budget of the gates judged now (analyze splits it across them)
    alpha_pass: float  # per gate: chance of passing a regression at its margin


def budget_stages(policy: RiskPolicySpec) -> int:
    """How many ways the false-rollback budget is split: the rollout, and the holdback if any."""
    return 1 + int(policy.holdback is not None)


def gate_alpha(policy: RiskPolicySpec) -> float:
    """The false-rollback budget of one gate in one budget stage."""
    return (1 - policy.confidence) / budget_stages(policy) / max(len(policy.gates), 1)


def gates_for(stage: Stage, policy: RiskPolicySpec) -> tuple[tuple[Gate, ...], tuple[Gate, ...]]:
    """(gates judged in `stage`, gates that do not apply to it)."""
    applies = [g for g in policy.gates if stage is Stage.SHADOW or g.metric not in SHADOW_ONLY]
    return tuple(applies), tuple(g for g in policy.gates if g not in applies)


def arms(stage: Stage, status: ModelDeploymentStatus, policy: RiskPolicySpec) -> tuple[Arm, Arm]:
    """(baseline, canary) of a stage. Holdback swaps roles: the new stable is judged against the
    previous version; a fresh baseline replaces stable during canary steps."""
    if stage is Stage.HOLDBACK:
        return Arm(status.previous_version or ""), Arm(status.stable_version or "")
    track = Track.BASELINE if stage is Stage.CANARY and policy.baseline is BaselineMode.FRESH else Track.MAIN
    return Arm(status.stable_version or "", track), Arm(status.canary_version or "")


def analysis_due(status: ModelDeploymentStatus, policy: RiskPolicySpec, now: datetime) -> bool:
    """An analysing phase whose stage has started, and whose last analysis (or the stage start)
    is at least one interval old: the first look waits one interval too."""
    if status.phase not in STAGE_OF_PHASE or not status.stage_started_at or not status.step or not status.step.started_at:
        return False
    last = status.last_analysis_at or status.stage_started_at
    return now - parse_iso(last) >= parse_duration(policy.analysis_interval)


def plan_analysis(status: ModelDeploymentStatus, policy: RiskPolicySpec, now: datetime) -> AnalysisPlan | None:
    """The measurement due now, or None. Pure: the reconciler executes it, `decide` reads the result."""
    if not analysis_due(status, policy, now):
        return None
    stage = STAGE_OF_PHASE[status.phase]
    baseline, canary = arms(stage, status, policy)
    applies, skipped = gates_for(stage, policy)
    assert status.stage_started_at is not None
    return AnalysisPlan(
        stage=stage, baseline=baseline, canary=canary, start=parse_iso(status.stage_started_at),
        gates=applies, not_applicable=skipped,
        alpha_fail=gate_alpha(policy) * max(len(applies), 1),  # analyze splits it across `applies`
        alpha_pass=1 - policy.promotion_confidence,
    )
