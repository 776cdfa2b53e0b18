"""Every name Vigil shares with the outside world, in one place.

The API group and version, the labels Vigil puts on what it creates, and the annotations
people (or `kubectl vigil`) set to steer a rollout. The CLI, the demo, the bench, the core
and the Kubernetes adapter all import these; none of them spells the strings again.
"""

from __future__ import annotations

from collections.abc import Mapping

GROUP = "vigil.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
PLURAL_MODELDEPLOYMENTS = "modeldeployments"
PLURAL_RISKPOLICIES = "riskpolicies"
PLURAL_AUDITRECORDS = "auditrecords"

# labels on the Deployments, Services and routes Vigil creates
LABEL_MD = "vigil.dev/modeldeployment"
LABEL_VERSION = "vigil.dev/version"
LABEL_TRACK = "vigil.dev/track"  # "main" or "baseline"
LABEL_MANAGED = "app.kubernetes.io/managed-by"

# annotations Vigil writes on what it creates
ANN_DIGEST = "vigil.dev/digest"
ANN_ROLE = "vigil.dev/role"
ANN_VERSION = "vigil.dev/version"  # the exact version (the label may be truncated)
ANN_MANIFEST_HASH = "vigil.dev/manifest-hash"
ANN_APPLIED = "vigil.dev/applied"

# manual controls: annotations a person sets on a ModelDeployment
ANN_PAUSED = "vigil.dev/paused"
ANN_PROMOTE = "vigil.dev/promote"
ANN_ABORT = "vigil.dev/abort"
ANN_REQUESTED_BY = "vigil.dev/requested-by"
ANN_APPROVED_BY = "vigil.dev/approved-by"
ANN_APPROVED_VERSION = "vigil.dev/approved-version"


def approvers(annotations: Mapping[str, str], version: str | None) -> set[str]:
    """The distinct names that approved `version` (empty when the approval is for another)."""
    if not version or annotations.get(ANN_APPROVED_VERSION) != version:
        return set()
    return {n.strip() for n in annotations.get(ANN_APPROVED_BY, "").split(",") if n.strip()}
