"""ModelDeployment: a served model, its version, how traffic reaches it and which policy governs it.

The spec belongs to the user (and to Argo CD / Flux): Vigil reads it and never writes it.
Everything Vigil knows lives in `status` (see `ModelDeploymentStatus`).
"""

from __future__ import annotations

import hashlib
import re
from enum import Enum
from typing import Any

from pydantic import Field, field_validator, model_validator

from vigil.api.common import STEPS_INCREASING_CEL, CamelModel, DnsLabel, LocalObjectReference, check_steps

VERSION_PATTERN = r"^[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?$"
DIGEST_PATTERN = r"^sha256:[a-f0-9]{64}$"


class RouterKind(str, Enum):
    GATEWAY_API = "gatewayapi"
    ISTIO = "istio"
    REPLICAS = "replicas"


class Artifact(CamelModel):
    uri: str = Field(min_length=1, max_length=2048, description="Where the model artifact lives (s3://, gs://, https://, oci://).")
    digest: str = Field(pattern=DIGEST_PATTERN, description="Content digest of the artifact: sha256:<64 hex>.")


class ServerSpec(CamelModel):
    """The container that serves the model. Vigil adds the model name, version and artifact as
    environment variables (VIGIL_MODEL, VIGIL_MODEL_VERSION, VIGIL_ARTIFACT_URI, VIGIL_ARTIFACT_DIGEST)."""

    image: str = Field(min_length=1, max_length=1024)
    args: list[str] = Field(default_factory=list, max_length=64)
    env: dict[str, str] = Field(default_factory=dict, description="Extra environment variables.")
    port: int = Field(8080, ge=1, le=65535, description="Port the server listens on (also serves /metrics).")
    resources: dict[str, dict[str, str]] = Field(
        default_factory=dict, description="Container resources: {requests: {...}, limits: {...}}."
    )

    @field_validator("resources")
    @classmethod
    def _known_resource_keys(cls, value: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
        unknown = set(value) - {"requests", "limits"}
        if unknown:
            raise ValueError(f"resources: only 'requests' and 'limits' are allowed, got {sorted(unknown)}")
        return value


class GatewayRef(CamelModel):
    name: DnsLabel
    namespace: DnsLabel | None = None


class TrafficSpec(CamelModel):
    """How requests reach the model. Vigil creates and owns the route named `routeName`
    (default: the ModelDeployment's name) and refuses to act on one it does not own."""

    router: RouterKind = Field(RouterKind.GATEWAY_API, description="gatewayapi | istio | replicas.")
    route_name: DnsLabel | None = Field(None, description="Name of the HTTPRoute / VirtualService Vigil manages.")
    gateway_ref: GatewayRef | None = Field(None, description="Gateway API parent (router gatewayapi).")
    hostnames: list[str] = Field(default_factory=list, max_length=16, description="Hostnames (HTTPRoute) or hosts (VirtualService).")
    port: int = Field(80, ge=1, le=65535, description="Service port the route sends traffic to.")


class MetricsPreset(str, Enum):
    """Whose metric names Vigil reads (vigil.metrics.presets; docs/presets.md)."""

    VIGIL = "vigil"
    KSERVE = "kserve"
    VLLM = "vllm"
    TRITON = "triton"
    SELDON = "seldon"


class AnalysisSpec(CamelModel):
    """Where the model's metrics are: extra label matchers for every query, and whose metric names."""

    selector: dict[str, str] = Field(
        default_factory=dict, description="Extra label matchers (label: value) added to every query."
    )
    metrics_preset: MetricsPreset = Field(
        MetricsPreset.VIGIL,
        description="Metric names to read: vigil (the Vigil metric contract) or a model server's own "
                    "(kserve, vllm, triton, seldon: latency and error gates only; see docs/presets.md).",
    )


# Rules the apiserver checks itself (CEL).
MODELDEPLOYMENT_CEL_RULES = [
    {"rule": "self.traffic.router != 'gatewayapi' || has(self.traffic.gatewayRef)",
     "message": "traffic.gatewayRef is required when traffic.router is gatewayapi", "fieldPath": ".traffic.gatewayRef"},
    {"rule": f"!has(self.steps) || ({STEPS_INCREASING_CEL})",
     "message": "steps must be strictly increasing", "fieldPath": ".steps"},
]

class ModelDeploymentSpec(CamelModel):
    model_config = CamelModel.model_config | {"json_schema_extra": {"x-kubernetes-validations": MODELDEPLOYMENT_CEL_RULES}}

    model: DnsLabel = Field(description="Model name, as exported in the `model` metric label.")
    version: str = Field(pattern=VERSION_PATTERN, description="Model version (a label value: letters, digits, . _ -).")
    artifact: Artifact
    server: ServerSpec
    replicas: int = Field(2, ge=1, le=1000)
    policy_ref: LocalObjectReference = Field(description="The RiskPolicy, in the same namespace, that governs rollouts.")
    traffic: TrafficSpec = Field(default_factory=TrafficSpec)
    analysis: AnalysisSpec = Field(default_factory=AnalysisSpec)
    steps: list[int] | None = Field(
        None, max_length=20, description="Canary weights for this model, if the policy allows overrides."
    )

    @field_validator("steps")
    @classmethod
    def _steps_increasing(cls, steps: list[int] | None) -> list[int] | None:
        return None if steps is None else check_steps(steps)

    @model_validator(mode="after")
    def _gateway_needs_parent(self) -> ModelDeploymentSpec:
        if self.traffic.router is RouterKind.GATEWAY_API and self.traffic.gateway_ref is None:
            raise ValueError("traffic.gatewayRef is required when traffic.router is gatewayapi")
        return self


class Phase(str, Enum):
    """Where a ModelDeployment is. The transition table is in vigil.core.phases."""

    PENDING = "Pending"
    SHADOW = "Shadow"
    CANARY = "Canary"
    PROMOTING = "Promoting"
    HOLDBACK = "Holdback"
    SUCCEEDED = "Succeeded"
    ROLLING_BACK = "RollingBack"
    ROLLED_BACK = "RolledBack"
    PAUSED = "Paused"
    FAILED = "Failed"


class Condition(CamelModel):
    type: str
    status: str = Field(description='"True", "False" or "Unknown".')
    reason: str
    message: str = ""
    last_transition_time: str
    observed_generation: int | None = None


class StepStatus(CamelModel):
    index: int = Field(description="Index into the steps list; -1 before the first step.")
    weight: int = Field(description="Canary weight in percent now.")
    started_at: str | None = Field(None, description="When this step (or phase) started, RFC 3339.")


class RolloutPlan(CamelModel):
    """The expected time to a decision at the observed traffic, refreshed at every analysis."""

    model_config = CamelModel.model_config | {"frozen": False}

    summary: str = Field("", description='What `kubectl get md` shows, e.g. "~25m to promote" or "traffic too low: ~9h".')
    eta_seconds: int | None = Field(None, description="Expected seconds until full promotion; none when unknown.")
    budget_seconds: int | None = Field(None, description="Seconds left in the rollout budget.")
    gates: dict[str, int | None] = Field(
        default_factory=dict,
        description="Per gate: seconds from the stage start to its Pass: when an analysis first saw it pass, "
                    "or, for a gate still to pass, the projection for a healthy canary. In holdback, which "
                    "needs no Pass, only the gates that have passed.",
    )


class ModelDeploymentStatus(CamelModel):
    """All the memory Vigil has: any replica, after any restart, continues from here."""

    # Atomic for server-side field management: only the operator writes status, always whole, so
    # the apiserver tracks it as one field. Tracked key by key, `metadata.managedFields` listed
    # every key of it: about 16 KB of Python objects in every copy of the object the operator and
    # kopf hold, more than the status itself.
    model_config = CamelModel.model_config | {"frozen": False,
                                              "json_schema_extra": {"x-kubernetes-map-type": "atomic"}}

    observed_generation: int | None = None
    phase: Phase = Phase.PENDING
    message: str = ""
    stable_version: str | None = None
    stable_digest: str | None = None
    canary_version: str | None = None
    canary_digest: str | None = None
    rollout_id: str | None = None
    rollout_started_at: str | None = Field(None, description="When the current rollout started (its budget runs from here).")
    step: StepStatus | None = None
    stage_started_at: str | None = Field(
        None, description="Start of the current analysis stage's evidence (shadow, canary or holdback); "
                          "canary evidence is kept across steps.")
    carried_verdicts: dict[str, str] = Field(
        default_factory=dict, description="Verdicts of gates judged in an earlier stage (shadowDisagreement).")
    plan: RolloutPlan | None = None
    phase_started_at: str | None = None
    paused_from: Phase | None = None
    verdict: str | None = Field(None, description="Outcome of the last analysis: Pass, Fail, Inconclusive, NoData.")
    last_analysis: dict[str, Any] | None = Field(
        None, json_schema_extra={"x-kubernetes-preserve-unknown-fields": True}
    )
    last_analysis_at: str | None = None
    no_data_count: int = 0
    failure_count: int = 0
    failed_digests: list[str] = Field(default_factory=list)
    refused_promote: str | None = Field(None, description="Digest whose manual promote was refused (recorded once).")
    previous_version: str | None = None
    previous_digest: str | None = None
    router_approximate: bool = False
    audit_seq: int = 0
    audit_head: str | None = None
    open_intent: int | None = Field(
        None, description="Sequence number of a recorded intent whose action has no outcome record yet: "
        "the next pass completes that same action and records the outcome before deciding anything new.",
    )
    history: list[dict[str, Any]] = Field(
        default_factory=list,
        json_schema_extra={"items": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}},
    )
    conditions: list[Condition] = Field(default_factory=list)


def workload_name(md_name: str, version: str, suffix: str = "") -> str:
    """Name of the Deployment and Service serving `version`: a DNS-1035 label of <= 63 chars."""
    clean = re.sub(r"[^a-z0-9-]+", "-", version.lower()).strip("-") or "v"
    name = f"{md_name}-{clean}{suffix}"
    if len(name) <= 63 and name[0].isalpha():
        return name
    digest = hashlib.sha256(f"{md_name}/{version}".encode()).hexdigest()[:8]
    head = md_name[: 63 - len(digest) - len(suffix) - 1]
    return f"{head}-{digest}{suffix}" if head[:1].isalpha() else f"m{digest}{suffix}"
