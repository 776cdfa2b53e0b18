"""What to measure now: the pure plan the reconciler executes before `decide()` runs.

A rollout has up to three analysis *stages*, each one comparison with its own evidence:

* shadow: the new version on mirrored requests against stable on the same requests;
* canary: the new version against stable (or a fresh baseline) on split traffic. Its evidence
  starts when the first canary step starts and is kept across steps and restarts, because the
  window is re-read from Prometheus from the stage start: the rate tests condition on each
  interval's split, so a weight change does not bias them;
* holdback: after promotion, the new stable against the few percent left on the previous one.

The false-rollback budget (1 - policy.confidence) is spent once per stage, not once per step.
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
    start: datetime  # the stage's evidence starts here
    gates: tuple[Gate, ...]  # the gates that apply in this stage
    not_applicable: tuple[Gate, ...]  # the others, reported as such (not as Inconclusive)
    alpha_fail: float  # false-rollback budget of this stage (analyze splits it across gates)
    alpha_pass: float  # per gate: chance of passing a regression at its margin


def stages(policy: RiskPolicySpec) -> tuple[Stage, ...]:
    """The analysis stages a rollout under `policy` goes through."""
    return tuple(s for s, on in ((Stage.SHADOW, policy.shadow.enabled), (Stage.CANARY, True),
                                 (Stage.HOLDBACK, policy.holdback is not None)) if on)


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
        alpha_fail=(1 - policy.confidence) / len(stages(policy)),
        alpha_pass=1 - policy.promotion_confidence,
    )
