"""Guards besides the statistical analysis: the right artifact, and a stable version that is
not burning its error budget. Pure: the adapters read what `plan_guards` asks for."""

from __future__ import annotations

from dataclasses import dataclass

from vigil.api.modeldeployment import ModelDeploymentSpec, ModelDeploymentStatus
from vigil.api.policy import RiskPolicySpec
from vigil.api.modeldeployment import Phase
from vigil.core.model import GuardReadings
from vigil.core.phases import ANALYSING, IN_ROLLOUT


@dataclass(frozen=True)
class GuardPlan:
    """What to read this pass: the digests a canary version's pods report, and the burn rates
    of the stable version over these windows."""

    artifact_of: str | None = None  # canary version whose reported digest to read
    budget_of: str | None = None  # stable version whose burn rates to read
    windows: tuple[str, ...] = ()
    objective: float | None = None

    def __bool__(self) -> bool:
        return bool(self.artifact_of or self.budget_of)


def plan_guards(spec: ModelDeploymentSpec, policy: RiskPolicySpec, status: ModelDeploymentStatus) -> GuardPlan:
    artifact = status.canary_version if status.phase in ANALYSING and status.phase is not Phase.HOLDBACK else None
    starting = (status.stable_version is not None and status.phase not in IN_ROLLOUT
                and (spec.version, spec.artifact.digest) != (status.stable_version, status.stable_digest))
    budget = policy.error_budget
    if not (starting and budget):
        return GuardPlan(artifact_of=artifact)
    windows = tuple(dict.fromkeys(w for pair in budget.windows for w in (pair.long, pair.short)))
    return GuardPlan(artifact_of=artifact, budget_of=status.stable_version, windows=windows,
                     objective=budget.objective)


def artifact_problem(expected: str, readings: GuardReadings | None, policy: RiskPolicySpec) -> tuple[str, str] | None:
    """(reason, message) when the canary's pods serve another artifact (a rollback) or, if the
    policy requires a report, have not said what they serve (a hold)."""
    digests = readings.canary_digests if readings else None
    if digests:
        wrong = sorted(d for d in digests if d != expected)
        if wrong:
            return "ArtifactMismatch", (f"the canary's pods report artifact {', '.join(wrong)}, but spec.artifact.digest "
                                        f"is {expected}: the wrong model is deployed")
        return None
    if policy.require_artifact_report:
        why = readings.problem if readings and readings.problem else "no vigil_model_info{digest} series"
        return "ArtifactUnverified", f"waiting for the canary's pods to report their artifact digest ({why})"
    return None


def budget_problem(policy: RiskPolicySpec, readings: GuardReadings | None) -> str | None:
    """Why a rollout may not start now, or None. Missing readings block too: an unknown burn
    rate is not a healthy one."""
    budget = policy.error_budget
    if budget is None:
        return None
    rates = readings.burn_rates if readings else None
    if rates is None:
        why = readings.problem if readings and readings.problem else "no burn rate could be read"
        return f"the stable version's error-budget burn rate is unknown ({why}); a rollout waits until it is known"
    for pair in budget.windows:
        long, short = rates.get(pair.long), rates.get(pair.short)
        if long is None or short is None:
            return f"no burn rate for windows {pair.long}/{pair.short}"
        if long > pair.factor and short > pair.factor:
            return (f"the stable version burns its error budget {long:.1f}x ({pair.long}) and {short:.1f}x "
                    f"({pair.short}) faster than sustainable (limit {pair.factor}x for objective {budget.objective})")
    return None
