"""RiskPolicy: how much a new model version must prove, and how fast it may take traffic.

Policy as code: one RiskPolicy governs many ModelDeployments in its namespace. Everything the
decision core needs to know about "how careful" lives here, so a reviewer reads one object.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from enum import Enum

from pydantic import Field, field_validator, model_validator

from vigil.api.slo import ErrorBudgetPolicy
from vigil.api.common import STEPS_INCREASING_CEL, CamelModel, Duration, check_steps, parse_duration
from vigil.api.gates import Gate, MetricKind


class RiskTier(str, Enum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


class NoDataAction(str, Enum):
    HOLD = "hold"
    ROLLBACK = "rollback"


class BaselineMode(str, Enum):
    """`stable`: compare with the stable pods. `fresh`: start new pods of the stable version
    with the canary (same replica count), so pod age and warm-up do not look like a regression."""

    STABLE = "stable"
    FRESH = "fresh"


class ShadowPolicy(CamelModel):
    enabled: bool = Field(False, description="Mirror traffic to the new version before any canary step.")
    duration: Duration = Field("10m", description="How long the shadow phase lasts at least.")
    mirror_percent: int = Field(100, ge=1, le=100, description="Share of requests mirrored to the shadow.")


class NoDataPolicy(CamelModel):
    action: NoDataAction = Field(
        NoDataAction.HOLD,
        description="hold: wait (never promote) while metrics are missing; rollback after rollbackAfter intervals.",
    )
    rollback_after: int = Field(
        5, ge=1, le=1000, description="Analysis intervals without data before the canary is rolled back."
    )


class HoldbackPolicy(CamelModel):
    """After promotion keep a little traffic on the previous version and keep analysing with the
    roles swapped, so a late regression (a leak, a slow drift) still rolls back with evidence."""

    weight: int = Field(5, ge=1, le=50, description="Percent of traffic left on the previous version.")
    bake_time: Duration = Field("30m", description="How long the holdback lasts.")


class ExpiryAction(str, Enum):
    """What a rollout does when its budget runs out without a decision."""

    HOLD = "hold"
    PROMOTE = "promote"
    ROLLBACK = "rollback"


class BudgetPolicy(CamelModel):
    """How long a rollout may take to reach a decision, and what happens then.

    The default holds with `Stalled=True` (reason BudgetExceeded): safe, because it never
    promotes a version that has not shown it is no regression, and loud, because GitOps tools
    and `kubectl get md` show it. `rollback` frees the canary; `promote` is for teams that
    accept the risk of too little traffic. Either way the expiry is a recorded decision.
    """

    max_duration: Duration = Field(
        "4h", description="Longest a rollout (from its start to full promotion) may take before onExpiry applies."
    )
    on_expiry: ExpiryAction = Field(
        ExpiryAction.HOLD, description="hold (Stalled=True, reason BudgetExceeded) | rollback | promote."
    )


class FreezeWindow(CamelModel):
    """No rollout starts or advances inside a freeze window (rollbacks still happen)."""

    start: datetime
    end: datetime
    reason: str = Field("", max_length=256)

    @model_validator(mode="after")
    def _ordered(self) -> FreezeWindow:
        if self.end <= self.start:
            raise ValueError("freezeWindows[].end must be after freezeWindows[].start")
        return self


# Rules the apiserver checks itself (CEL), so `kubectl apply` rejects a bad policy at once.
RISKPOLICY_CEL_RULES = [
    {"rule": "self.steps.all(s, s <= self.maxWeight)",
     "message": "every steps[] weight must be <= maxWeight", "fieldPath": ".steps"},
    {"rule": STEPS_INCREASING_CEL, "message": "steps must be strictly increasing", "fieldPath": ".steps"},
    {"rule": "self.baseline != 'fresh' || self.maxWeight <= 50",
     "message": "baseline fresh sends the canary's weight to a fresh baseline too, so maxWeight must be <= 50",
     "fieldPath": ".maxWeight"},
]


class RiskPolicySpec(CamelModel):
    """What a new model version must prove before it gets more traffic."""

    model_config = CamelModel.model_config | {"json_schema_extra": {"x-kubernetes-validations": RISKPOLICY_CEL_RULES}}

    risk_tier: RiskTier = Field(RiskTier.MEDIUM, description="low | medium | high | critical.")
    steps: list[int] = Field(
        default_factory=lambda: [10, 25, 50],
        min_length=1,
        max_length=20,
        description="Canary weights in percent, strictly increasing, each <= maxWeight.",
        json_schema_extra={"items": {"type": "integer", "minimum": 1, "maximum": 100}},
    )
    max_weight: int = Field(50, ge=1, le=100, description="Highest canary weight before promotion.")
    shadow: ShadowPolicy = Field(default_factory=ShadowPolicy)
    bake_time: Duration = Field("5m", description="Minimum time at each canary step.")
    min_samples: int = Field(
        200, ge=1, le=10_000_000, description="Canary requests needed at a step before it can pass."
    )
    analysis_interval: Duration = Field("1m", description="How often the analysis runs.")
    confidence: float = Field(
        0.95, ge=0.5, le=0.9999,
        description="1 - the chance of rolling back a version whose every gate is within its tolerance, "
                    "over the whole rollout (every gate, every step, every look).",
    )
    promotion_confidence: float = Field(
        0.95, ge=0.5, le=0.9999,
        description="1 - the chance of promoting a version that regresses a gate by its regression margin or more.",
    )
    require_pass_each_step: bool = Field(
        False,
        description="Demand every gate's Pass before each step, not only before promotion (strictest tiers). "
                    "By default an intermediate step advances after bakeTime and minSamples when no gate fails.",
    )
    budget: BudgetPolicy = Field(default_factory=BudgetPolicy)
    gates: list[Gate] = Field(
        default_factory=lambda: [Gate(metric=MetricKind.ERROR_RATE), Gate(metric=MetricKind.LATENCY_P99)],
        max_length=20,
        description="Metrics the new version must not regress (default: errorRate and latencyP99, the two "
                    "signals every model server exports).",
    )
    no_data: NoDataPolicy = Field(default_factory=NoDataPolicy)
    failure_limit: int = Field(1, ge=1, le=100, description="Failed analyses before the canary is rolled back.")
    required_approvals: int = Field(
        0, ge=0, le=10,
        description="Distinct users who must approve the canary's digest (`kubectl vigil approve`) before promotion.",
    )
    allow_emergency_promotion: bool = Field(
        False, description="Whether a manual promote may override a freeze window (recorded as an emergency).",
    )
    freeze_windows: list[FreezeWindow] = Field(default_factory=list, max_length=50)
    error_budget: ErrorBudgetPolicy | None = Field(
        None, description="Block starting a rollout while the stable version burns its SLO error budget faster "
        "than these multi-window burn rates (SRE workbook); status says so (reason ErrorBudgetBurning).",
    )
    require_artifact_report: bool = Field(
        False, description="Hold the canary until its pods report their artifact digest through "
        "`vigil_model_info{digest}` (docs/metrics-contract.md). A reported digest that differs from "
        "spec.artifact.digest rolls the version back whatever this says.",
    )
    holdback: HoldbackPolicy | None = Field(None, description="Post-promotion holdback bake.")
    baseline: BaselineMode = Field(BaselineMode.STABLE)
    allow_step_overrides: bool = Field(
        False, description="Whether a ModelDeployment may set its own steps (still <= maxWeight)."
    )
    require_pinned_digest: bool | None = Field(
        None,
        description="Whether admission refuses a ModelDeployment whose spec.artifact.digest is not a "
                    "sha256:<64 hex> content digest. Unset: true for riskTier high and critical (a "
                    "reviewer must be able to name the exact bytes that served), false for low and medium.",
    )

    @field_validator("steps")
    @classmethod
    def _steps_increasing(cls, steps: list[int]) -> list[int]:
        return check_steps(steps)

    @field_validator("bake_time", "analysis_interval")
    @classmethod
    def _positive_duration(cls, value: str) -> str:
        if parse_duration(value).total_seconds() <= 0:
            raise ValueError("must be longer than 0s")
        return value

    @model_validator(mode="after")
    def _steps_within_max(self) -> RiskPolicySpec:
        too_high = [w for w in self.steps if w > self.max_weight]
        if too_high:
            raise ValueError(f"steps {too_high} exceed maxWeight {self.max_weight}")
        if self.baseline is BaselineMode.FRESH and self.max_weight > 50:
            raise ValueError("maxWeight must be <= 50 with baseline fresh (the fresh baseline gets the canary's weight too)")
        kinds = [g.metric for g in self.gates]
        dup = {k for k in kinds if kinds.count(k) > 1}
        if dup:
            raise ValueError(f"gates: metric {sorted(str(getattr(d, 'value', d)) for d in dup)} listed twice")
        return self

    def fingerprint(self) -> str:
        """The full SHA-256 of the policy as applied (canonical JSON, defaults filled in): audit
        records cite it, so a reviewer can match a decision to the exact policy content."""
        blob = json.dumps(self.to_wire(), sort_keys=True, separators=(",", ":")).encode()
        return "sha256:" + hashlib.sha256(blob).hexdigest()

    @property
    def pins_digest(self) -> bool:
        """requirePinnedDigest in force: the value given, else true for the high and critical tiers."""
        if self.require_pinned_digest is not None:
            return self.require_pinned_digest
        return self.risk_tier in (RiskTier.HIGH, RiskTier.CRITICAL)

    def frozen_at(self, now: datetime) -> FreezeWindow | None:
        return next((w for w in self.freeze_windows if w.start <= now < w.end), None)

