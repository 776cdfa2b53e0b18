"""Admission for the rules of a RiskPolicy: pure rule functions (`rules`), the policy order
(`loosening`), Gateway API hostname claims (`hostnames`) and the webhook's certificates
(`certs`). The kopf handlers that serve them live in `vigil.handlers.admission`."""

from vigil.admission.rules import (
    Review,
    Violation,
    review_modeldeployment,
    review_riskpolicy,
)

__all__ = ["Review", "Violation", "review_modeldeployment", "review_riskpolicy"]
