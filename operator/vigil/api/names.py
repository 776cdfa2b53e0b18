"""Every name Vigil shares with the outside world, in one place.

The API group and version, the labels Vigil puts on what it creates, and the annotations
people (or `kubectl vigil`) set to steer a rollout. The CLI, the demo, the bench, the core
and the Kubernetes adapter all import these; none of them spells the strings again.
"""

from __future__ import annotations

import hashlib
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
LABEL_UID = "vigil.dev/uid"  # on AuditRecords: the chain belongs to one ModelDeployment object

# annotations Vigil writes on what it creates
ANN_DIGEST = "vigil.dev/digest"
ANN_ROLE = "vigil.dev/role"
ANN_VERSION = "vigil.dev/version"  # the exact version (the label may be truncated)
ANN_MANIFEST_HASH = "vigil.dev/manifest-hash"
ANN_APPLIED = "vigil.dev/applied"
ANN_APPLIED_SPEC = "vigil.dev/applied-spec"  # the route spec Vigil rendered (JSON): a read compares every field it owns

# manual controls: annotations a person sets on a ModelDeployment. The ValidatingAdmissionPolicy
# in charts/vigil/templates/admission.yaml makes the apiserver check who sets them: requested-by
# must be the authenticated user, promote needs the `promote` verb, an approval the `approve`
# verb and the approver's own name. Promote and abort name the digest they act on, so a
# leftover annotation never acts on a rebuilt version.
ANN_PAUSED = "vigil.dev/paused"
ANN_PROMOTE = "vigil.dev/promote"  # value: the canary digest to promote now
ANN_ABORT = "vigil.dev/abort"  # value: the canary digest to roll back
ANN_EMERGENCY = "vigil.dev/emergency"  # value: why a version change may enter a freeze window
ANN_REQUESTED_BY = "vigil.dev/requested-by"  # the authenticated user (checked at admission)
ANN_APPROVAL_PREFIX = "approved.vigil.dev/"  # one key per approver; value "<user> <digest>"


def approval_key(user: str) -> str:
    """The annotation key of `user`'s approval: one per user (a hash keeps any user name, such
    as system:serviceaccount:ns:sa or an e-mail address, a legal key)."""
    return ANN_APPROVAL_PREFIX + "u-" + hashlib.sha256(user.encode()).hexdigest()[:20]


def approval_value(user: str, digest: str) -> str:
    return f"{user} {digest}"


def approvers(annotations: Mapping[str, str], digest: str | None) -> set[str]:
    """The distinct users whose approval names `digest` (admission checked each is its writer's own)."""
    if not digest:
        return set()
    users = set()
    for key, value in annotations.items():
        user, _, approved = value.rpartition(" ")
        if key.startswith(ANN_APPROVAL_PREFIX) and user and approved == digest:
            users.add(user)
    return users
