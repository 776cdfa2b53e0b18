"""AuditRecord: one immutable record per rollout decision, chained by hashes.

Events expire after an hour; these do not. Each record carries the hash of the one before it
for the same ModelDeployment, and the apiserver refuses any change to a stored record (CEL
`self == oldSelf`), so an edit is impossible and a deletion shows as a gap in the chain. With a
signing key configured, each record is also signed (`keyId`, `signature`), so a record planted
by someone without the operator's key shows too (docs/audit.md).
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from vigil.api.common import CamelModel

AUDIT_CEL_RULES = [{"rule": "self == oldSelf", "message": "audit records are immutable"}]


class AuditRecordSpec(CamelModel):
    model_config = CamelModel.model_config | {"json_schema_extra": {"x-kubernetes-validations": AUDIT_CEL_RULES}}

    model_deployment: str = Field(description="Name of the ModelDeployment the decision is about.")
    uid: str | None = Field(None, description="UID of that ModelDeployment: a re-created one starts a new chain.")
    digest: str | None = Field(None, description="Artifact digest of the version the decision is about.")
    seq: int = Field(ge=1, description="Position in the chain, from 1.")
    time: str = Field(description="When the decision was taken (RFC 3339).")
    action: str = Field(description="What was decided: start, step, hold, promote, rollback, pause, ...")
    phase: str = Field(description="Phase after the decision.")
    version: str | None = Field(None, description="The version the decision is about.")
    weight: int | None = Field(None, description="Canary weight after the decision.")
    reason: str = ""
    message: str = ""
    actor: str = Field("vigil", description="Who decided: vigil, or the user of a manual action.")
    policy: str | None = Field(None, description="Fingerprint of the RiskPolicy as applied.")
    evidence: dict[str, Any] = Field(
        default_factory=dict, json_schema_extra={"x-kubernetes-preserve-unknown-fields": True},
        description="Verdicts with statistic, bound or p-value, effect, sample sizes; inputs.",
    )
    stage: str = Field(
        "decision",
        description="decision: nothing to move; intent: written before its action moves traffic or workloads; "
        "outcome: written after that action, naming the intent (`of`) and what was served.",
    )
    of: int | None = Field(None, description="For an outcome: the sequence number of its intent.")
    result: str | None = Field(None, description="For an outcome: completed, or abandoned (with the reason in message).")
    served: dict[str, int] | None = Field(
        None, description="For an outcome: the weights the route serves after the action, read back from the router.",
    )
    prev_hash: str = Field(description="hash of the previous record, or 'genesis'.")
    hash: str = Field(description="sha256 of this record's canonical JSON without this field and signature.")
    key_id: str | None = Field(None, description="Which Ed25519 key signed the record: 'ed25519:' + 16 hex of "
                               "sha256 of the raw public key.")
    signature: str | None = Field(None, description="Base64 Ed25519 signature, by the operator's key, of the "
                                  "line 'vigil.dev/audit-record/v1' followed by hash (docs/audit.md).")
