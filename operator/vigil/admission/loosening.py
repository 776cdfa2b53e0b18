"""When is a RiskPolicy looser than before? One function, so the rule is written once.

A change is *looser* when it lets a version reach more traffic, sooner, with less evidence or
fewer people's consent. `loosenings(old, new, now)` lists every such change, field by field;
admission refuses a policy change with any of them while a rollout under the policy runs.
Tightening is always allowed, and so is a change that neither tightens nor loosens (a reason
text, an unrelated gate's wording).

Deliberately *not* looser: a lower `confidence`. It is 1 - the chance of rolling back a good
version, so lowering it makes rollbacks more likely, never promotions; the error that lets a
regression through is `promotionConfidence`, and lowering that is looser. Likewise a longer
`budget.maxDuration` only gives more time unless `onExpiry` is promote.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from vigil.api.common import parse_duration
from vigil.api.policy import (
    BaselineMode,
    ExpiryAction,
    FreezeWindow,
    NoDataAction,
    RiskPolicySpec,
    RiskTier,
)

TIER_ORDER = {RiskTier.LOW: 0, RiskTier.MEDIUM: 1, RiskTier.HIGH: 2, RiskTier.CRITICAL: 3}
EXPIRY_ORDER = {ExpiryAction.ROLLBACK: 0, ExpiryAction.HOLD: 1, ExpiryAction.PROMOTE: 2}


@dataclass(frozen=True)
class Loosening:
    field: str  # e.g. "spec.maxWeight"
    was: Any
    now: Any

    def __str__(self) -> str:
        return f"{self.field} {self.was} -> {self.now}"


def _seconds(duration: str) -> float:
    return parse_duration(duration).total_seconds()


def _steps_looser(old: list[int], new: list[int]) -> bool:
    """Fewer steps, or a larger weight at any step index: traffic comes sooner."""
    return len(new) < len(old) or any(n > o for n, o in zip(new, old))


def _window_covered(window: FreezeWindow, windows: list[FreezeWindow]) -> bool:
    return any(w.start <= window.start and window.end <= w.end for w in windows)


def _gate_loosenings(old: RiskPolicySpec, new: RiskPolicySpec) -> list[Loosening]:
    out: list[Loosening] = []
    new_gates = {g.metric: g for g in new.gates}
    for gate in old.gates:
        metric = gate.metric.value
        other = new_gates.get(gate.metric)
        if other is None:
            out.append(Loosening(f"spec.gates[metric={metric}]", "present", "removed"))
            continue
        if other.tolerance > gate.tolerance:
            out.append(Loosening(f"spec.gates[metric={metric}].tolerance", gate.tolerance, other.tolerance))
        if other.regression > gate.regression:
            out.append(Loosening(f"spec.gates[metric={metric}].regression margin", gate.regression, other.regression))
        old_floor, new_floor = gate.regression_floor, other.regression_floor
        if old_floor is not None and new_floor is not None and new_floor > old_floor:
            out.append(Loosening(f"spec.gates[metric={metric}].regressionAbsoluteIncrease", old_floor, new_floor))
    return out


def loosenings(old: RiskPolicySpec, new: RiskPolicySpec, now: datetime) -> list[Loosening]:
    """Every way `new` is looser than `old` (empty: as strict or stricter)."""
    out: list[Loosening] = []

    def more(field: str, was: Any, is_: Any) -> None:  # a larger value is looser
        if is_ > was:
            out.append(Loosening(field, was, is_))

    def less(field: str, was: Any, is_: Any) -> None:  # a smaller value is looser
        if is_ < was:
            out.append(Loosening(field, was, is_))

    def dur_less(field: str, was: str, is_: str) -> None:
        if _seconds(is_) < _seconds(was):
            out.append(Loosening(field, was, is_))

    if TIER_ORDER[new.risk_tier] < TIER_ORDER[old.risk_tier]:
        out.append(Loosening("spec.riskTier", old.risk_tier.value, new.risk_tier.value))
    if _steps_looser(old.steps, new.steps):
        out.append(Loosening("spec.steps", old.steps, new.steps))
    more("spec.maxWeight", old.max_weight, new.max_weight)
    if old.shadow.enabled and not new.shadow.enabled:
        out.append(Loosening("spec.shadow.enabled", True, False))
    if old.shadow.enabled and new.shadow.enabled:
        dur_less("spec.shadow.duration", old.shadow.duration, new.shadow.duration)
        less("spec.shadow.mirrorPercent", old.shadow.mirror_percent, new.shadow.mirror_percent)
    dur_less("spec.bakeTime", old.bake_time, new.bake_time)
    less("spec.minSamples", old.min_samples, new.min_samples)
    if _seconds(new.analysis_interval) > _seconds(old.analysis_interval):  # fewer looks: later rollbacks
        out.append(Loosening("spec.analysisInterval", old.analysis_interval, new.analysis_interval))
    less("spec.promotionConfidence", old.promotion_confidence, new.promotion_confidence)
    if old.require_pass_each_step and not new.require_pass_each_step:
        out.append(Loosening("spec.requirePassEachStep", True, False))
    if EXPIRY_ORDER[new.budget.on_expiry] > EXPIRY_ORDER[old.budget.on_expiry]:
        out.append(Loosening("spec.budget.onExpiry", old.budget.on_expiry.value, new.budget.on_expiry.value))
    if new.budget.on_expiry is ExpiryAction.PROMOTE:  # promotes on expiry: a shorter budget promotes sooner
        dur_less("spec.budget.maxDuration", old.budget.max_duration, new.budget.max_duration)
    out += _gate_loosenings(old, new)
    if old.no_data.action is NoDataAction.ROLLBACK and new.no_data.action is NoDataAction.HOLD:
        out.append(Loosening("spec.noData.action", "rollback", "hold"))
    more("spec.noData.rollbackAfter", old.no_data.rollback_after, new.no_data.rollback_after)
    more("spec.failureLimit", old.failure_limit, new.failure_limit)
    less("spec.requiredApprovals", old.required_approvals, new.required_approvals)
    if new.allow_emergency_promotion and not old.allow_emergency_promotion:
        out.append(Loosening("spec.allowEmergencyPromotion", False, True))
    for window in old.freeze_windows:
        if window.end > now and not _window_covered(window, new.freeze_windows):
            out.append(Loosening("spec.freezeWindows",
                                 f"{window.start.isoformat()}..{window.end.isoformat()}", "removed or shortened"))
    if old.holdback is not None and new.holdback is None:
        out.append(Loosening("spec.holdback", "set", "removed"))
    if old.holdback is not None and new.holdback is not None:
        less("spec.holdback.weight", old.holdback.weight, new.holdback.weight)
        dur_less("spec.holdback.bakeTime", old.holdback.bake_time, new.holdback.bake_time)
    if old.baseline is BaselineMode.FRESH and new.baseline is BaselineMode.STABLE:
        out.append(Loosening("spec.baseline", "fresh", "stable"))
    if new.allow_step_overrides and not old.allow_step_overrides:
        out.append(Loosening("spec.allowStepOverrides", False, True))
    if old.pins_digest and not new.pins_digest:
        out.append(Loosening("spec.requirePinnedDigest", True, False))
    if old.require_artifact_report and not new.require_artifact_report:
        out.append(Loosening("spec.requireArtifactReport", True, False))
    out += _budget_loosenings(old, new)
    return out


def _budget_loosenings(old: RiskPolicySpec, new: RiskPolicySpec) -> list[Loosening]:
    """The error-budget gate: removing it, a lower objective, or a window pair with a higher
    factor lets a rollout start while stable burns more."""
    if old.error_budget is None:
        return []
    if new.error_budget is None:
        return [Loosening("spec.errorBudget", "set", "removed")]
    out = []
    if new.error_budget.objective < old.error_budget.objective:
        out.append(Loosening("spec.errorBudget.objective", old.error_budget.objective, new.error_budget.objective))
    old_pairs = {(w.long, w.short): w.factor for w in old.error_budget.windows}
    new_pairs = {(w.long, w.short): w.factor for w in new.error_budget.windows}
    for pair, factor in old_pairs.items():
        if pair not in new_pairs or new_pairs[pair] > factor:
            out.append(Loosening(f"spec.errorBudget.windows[{pair[0]}/{pair[1]}].factor", factor,
                                 new_pairs.get(pair, "removed")))
    return out
