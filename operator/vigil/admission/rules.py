"""The rules of a RiskPolicy that the apiserver enforces at admission, as pure functions.

Given the object under review, its old version, and what it refers to (the RiskPolicy, the
Gateway, the namespace's labels, the ModelDeployments under a policy) plus `now`, return the
violations, each naming the field and the rule. No I/O: `vigil.handlers.admission` reads the
objects and calls these; the tests call them directly.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from vigil.admission.hostnames import listeners_for, unclaimable
from vigil.admission.loosening import loosenings
from vigil.api.modeldeployment import DIGEST_PATTERN, Phase
from vigil.api.names import ANN_EMERGENCY
from vigil.api.policy import RiskPolicySpec
from vigil.core.phases import IN_ROLLOUT

_DIGEST = re.compile(DIGEST_PATTERN)


@dataclass(frozen=True)
class Violation:
    """One broken rule: the field at fault, the rule's name and what is allowed."""

    field: str
    rule: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message} (rule {self.rule})"


@dataclass(frozen=True)
class Review:
    violations: list[Violation] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def allowed(self) -> bool:
        return not self.violations

    def message(self) -> str:
        return "; ".join(str(v) for v in self.violations)


def _get(obj: Mapping[str, Any] | None, *path: str) -> Any:
    for key in path:
        if not isinstance(obj, Mapping):
            return None
        obj = obj.get(key)
    return obj


def parse_policy(policy: Mapping[str, Any]) -> RiskPolicySpec:
    return RiskPolicySpec.model_validate(policy.get("spec") or {})


# ------------------------------------------------------------------ ModelDeployment rules
def check_policy_exists(md: Mapping[str, Any], policy: Mapping[str, Any] | None) -> list[Violation]:
    name = _get(md, "spec", "policyRef", "name")
    if policy is None:
        ns = _get(md, "metadata", "namespace")
        return [Violation("spec.policyRef.name", "PolicyExists",
                          f'RiskPolicy "{name}" does not exist in namespace "{ns}"; '
                          "name a RiskPolicy of the same namespace")]
    return []


def check_pinned_digest(md: Mapping[str, Any], policy: RiskPolicySpec) -> list[Violation]:
    digest = _get(md, "spec", "artifact", "digest")
    if policy.pins_digest and not (isinstance(digest, str) and _DIGEST.match(digest)):
        return [Violation("spec.artifact.digest", "PinnedDigest",
                          f"must be a content digest sha256:<64 lowercase hex> for riskTier "
                          f"{policy.risk_tier.value} (requirePinnedDigest), got {digest!r}")]
    return []


def check_steps(md: Mapping[str, Any], policy: RiskPolicySpec) -> list[Violation]:
    """A ModelDeployment's own steps: only when the policy allows overrides, never above
    maxWeight, and never a first step above the policy's (the exposure before any evidence)."""
    steps = _get(md, "spec", "steps")
    if not steps:
        return []
    if not policy.allow_step_overrides:
        return [Violation("spec.steps", "StepOverrides",
                          "the RiskPolicy does not allow step overrides (allowStepOverrides: false); "
                          "remove spec.steps to use the policy's steps " f"{policy.steps}")]
    out = []
    above = [w for w in steps if w > policy.max_weight]
    if above:
        out.append(Violation("spec.steps", "MaxWeight",
                             f"weights {above} exceed the RiskPolicy's maxWeight {policy.max_weight}"))
    if steps[0] > policy.steps[0]:
        out.append(Violation("spec.steps", "FirstStep",
                             f"the first step {steps[0]}% exceeds the RiskPolicy's first step "
                             f"{policy.steps[0]}%: a version gets no more traffic before any evidence"))
    return out


def _version_changed(md: Mapping[str, Any], old: Mapping[str, Any] | None) -> bool:
    if old is None:
        return False
    return (_get(md, "spec", "version") != _get(old, "spec", "version")
            or _get(md, "spec", "artifact", "digest") != _get(old, "spec", "artifact", "digest"))


def check_freeze(md: Mapping[str, Any], old: Mapping[str, Any] | None, policy: RiskPolicySpec,
                 now: datetime, user: str = "") -> tuple[list[Violation], list[str]]:
    """A version change inside a freeze window is refused, except as an emergency: the
    annotation vigil.dev/emergency (a reason, set in this same request) on a policy that
    allows emergency promotion. An admitted emergency comes back as a warning."""
    window = policy.frozen_at(now)
    if window is None or not _version_changed(md, old):
        return [], []
    reason = (_get(md, "metadata", "annotations") or {}).get(ANN_EMERGENCY, "").strip()
    old_reason = (_get(old, "metadata", "annotations") or {}).get(ANN_EMERGENCY, "").strip()
    fresh = bool(reason) and reason != old_reason
    what = (f"inside the RiskPolicy's freeze window {window.start.isoformat()} .. {window.end.isoformat()}"
            + (f" ({window.reason})" if window.reason else ""))
    if fresh and policy.allow_emergency_promotion:
        return [], [f"emergency version change {what} by {user or 'unknown user'}: {reason}"]
    if not policy.allow_emergency_promotion:
        hint = "the policy does not allow emergencies (allowEmergencyPromotion: false)"
    elif reason:
        hint = f"metadata.annotations[{ANN_EMERGENCY}] is left from an earlier change; set a new reason"
    else:
        hint = f"an emergency needs metadata.annotations[{ANN_EMERGENCY}] with a reason"
    return [Violation("spec.version", "FreezeWindow", f"no version change {what}; {hint}")], []


def check_hostnames(md: Mapping[str, Any], gateway: Mapping[str, Any] | None,
                    namespace_labels: Mapping[str, str]) -> list[Violation]:
    """Gateway API's allowedRoutes and listener hostnames decide what a namespace may claim."""
    if _get(md, "spec", "traffic", "router") not in (None, "gatewayapi"):
        return []
    ref = _get(md, "spec", "traffic", "gatewayRef") or {}
    if not ref:
        return []
    ns = _get(md, "metadata", "namespace") or ""
    gw_ns = ref.get("namespace") or ns
    hostnames: Sequence[str] = _get(md, "spec", "traffic", "hostnames") or []
    if gateway is None:
        if not hostnames:
            return []
        return [Violation("spec.traffic.gatewayRef", "GatewayExists",
                          f'Gateway "{gw_ns}/{ref.get("name")}" does not exist, so the hostnames '
                          f"{list(hostnames)} cannot be checked against its listeners")]
    if not listeners_for(gateway, ns, namespace_labels):
        return [Violation("spec.traffic.gatewayRef", "AllowedRoutes",
                          f'no listener of Gateway "{gw_ns}/{ref.get("name")}" admits HTTPRoutes from '
                          f'namespace "{ns}" (listeners[].allowedRoutes)')]
    refused = unclaimable(gateway, ns, namespace_labels, hostnames)
    if refused:
        return [Violation("spec.traffic.hostnames", "AllowedHostnames",
                          f'namespace "{ns}" may not claim {refused} on Gateway "{gw_ns}/{ref.get("name")}": '
                          "no listener that admits this namespace has a matching hostname")]
    return []


def review_modeldeployment(md: Mapping[str, Any], old: Mapping[str, Any] | None, *,
                           policy: Mapping[str, Any] | None, gateway: Mapping[str, Any] | None,
                           namespace_labels: Mapping[str, str], now: datetime, user: str = "") -> Review:
    """Every rule for a ModelDeployment CREATE (old None) or UPDATE."""
    violations = check_policy_exists(md, policy) + check_hostnames(md, gateway, namespace_labels)
    warnings: list[str] = []
    if policy is not None:
        try:
            spec = parse_policy(policy)
        except ValidationError as err:
            name = _get(md, "spec", "policyRef", "name")
            violations.append(Violation("spec.policyRef.name", "PolicyValid",
                                        f'RiskPolicy "{name}" is not valid, so its rules cannot be checked: '
                                        f"{err.errors()[0].get('msg')}"))
        else:
            violations += check_pinned_digest(md, spec) + check_steps(md, spec)
            frozen, warnings = check_freeze(md, old, spec, now, user)
            violations += frozen
    return Review(violations, warnings)


# ------------------------------------------------------------------ RiskPolicy rules
def running_under(policy_name: str, mds: Sequence[Mapping[str, Any]]) -> list[str]:
    """Names of the ModelDeployments that reference `policy_name` and have a rollout running."""
    running = {p.value for p in IN_ROLLOUT}
    return sorted(_get(md, "metadata", "name") for md in mds
                  if _get(md, "spec", "policyRef", "name") == policy_name
                  and (_get(md, "status", "phase") or Phase.PENDING.value) in running)


def review_riskpolicy(policy: Mapping[str, Any] | None, old: Mapping[str, Any] | None, *,
                      modeldeployments: Sequence[Mapping[str, Any]], now: datetime) -> Review:
    """A RiskPolicy UPDATE (or DELETE, `policy` None) while rollouts under it run: no loosening."""
    if old is None:
        return Review()
    name = _get(old, "metadata", "name") or ""
    running = running_under(name, modeldeployments)
    if not running:
        return Review()
    if policy is None:
        return Review([Violation("metadata.name", "PolicyInUse",
                                 f"RiskPolicy {name!r} cannot be deleted while rollouts under it run: {running}")])
    try:
        before, after = parse_policy(old), parse_policy(policy)
    except ValidationError:
        return Review()  # the CRD schema and CEL rules refuse an invalid policy with their own message
    found = loosenings(before, after, now)
    if not found:
        return Review()
    return Review([Violation(f.field, "NoLooseningDuringRollout",
                             f"loosened ({f.was} -> {f.now}) while rollouts under this RiskPolicy run: "
                             f"{running}; wait until they finish or tighten only") for f in found])
