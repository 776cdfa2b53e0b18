"""Whether a RiskPolicy object can govern a rollout, and the message a user sees if not.

The Kubernetes adapter only fetches the object; judging it (missing, invalid) is a policy
rule, so it lives here, beside the other rules, and is tested without an apiserver.
"""

from __future__ import annotations

from typing import Any, Mapping

from pydantic import ValidationError

from vigil.api.policy import RiskPolicySpec
from vigil.core.model import PolicyProblem


def validation_message(err: ValidationError, prefix: str = "spec") -> str:
    """One line per problem, naming the field as a user would write it."""
    parts = []
    for e in err.errors():
        loc = ".".join(str(p) for p in (prefix, *e["loc"]))
        parts.append(f"{loc}: {e['msg']}")
    return "; ".join(parts)


def resolve_policy(body: Mapping[str, Any] | None, name: str, namespace: str) -> RiskPolicySpec | PolicyProblem:
    """The policy to apply, or the problem that blocks the rollout (no traffic is changed then)."""
    if body is None:
        return PolicyProblem(
            "PolicyNotFound",
            f"RiskPolicy {name!r} not found in namespace {namespace!r}; create it or fix spec.policyRef.name "
            "(a ModelDeployment may only use a policy in its own namespace). No traffic was changed.",
        )
    try:
        return RiskPolicySpec.model_validate(body.get("spec") or {})
    except ValidationError as err:
        return PolicyProblem("InvalidPolicy", f"RiskPolicy {name!r} is invalid: {validation_message(err)}")
