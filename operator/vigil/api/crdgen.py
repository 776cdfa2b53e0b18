"""Generate the CRDs in crds/ from the pydantic models (the one source of truth).

    python -m vigil.api.crdgen          # write crds/*.yaml
    python -m vigil.api.crdgen --check  # exit 1 if the committed files differ

pydantic emits JSON Schema; Kubernetes wants a *structural* OpenAPI v3 schema. The
conversion inlines `$ref`s, turns `Optional[X]` (anyOf X|null) into `X` + `nullable`, and
drops what Kubernetes rejects (titles, `$defs`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from vigil.api import GROUP, VERSION
from vigil.api.audit import AuditRecordSpec
from vigil.api.modeldeployment import ModelDeploymentSpec, ModelDeploymentStatus
from vigil.api.policy import RiskPolicySpec

REPO = Path(__file__).resolve().parents[3]
CRD_DIR = REPO / "crds"
CHART_CRD_DIR = REPO / "charts" / "vigil" / "crds"  # Helm installs CRDs from here
_DROP = {"title", "$defs", "discriminator"}


def structural(schema: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """Turn one pydantic JSON-schema node into a Kubernetes structural schema node."""
    if "$ref" in schema:
        target = defs[schema["$ref"].split("/")[-1]]
        merged = {**target, **{k: v for k, v in schema.items() if k != "$ref"}}
        return structural(merged, defs)
    any_of = schema.get("anyOf")
    if any_of:
        non_null = [s for s in any_of if s.get("type") != "null"]
        if len(non_null) == 1:
            rest = {k: v for k, v in schema.items() if k != "anyOf"}
            node = structural({**non_null[0], **rest}, defs)
            if len(non_null) < len(any_of):
                node["nullable"] = True
            if node.get("default", 0) is None:
                node.pop("default")
            return node
        raise ValueError(f"cannot express anyOf with several types in a structural schema: {any_of}")
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in _DROP:
            continue
        if key == "properties":
            out[key] = {name: structural(sub, defs) for name, sub in value.items()}
        elif key in ("items", "additionalProperties") and isinstance(value, dict):
            out[key] = structural(value, defs)
        elif key == "default" and isinstance(value, BaseModel):
            out[key] = value.model_dump(mode="json", by_alias=True, exclude_none=True)
        else:
            out[key] = value
    if out.get("additionalProperties") is True:
        # dict[str, Any]: free-form. `additionalProperties: true` would still prune nested
        # objects; preserve-unknown-fields keeps them whole.
        del out["additionalProperties"]
        out["x-kubernetes-preserve-unknown-fields"] = True
    if out.get("additionalProperties") is False:
        # Kubernetes forbids it beside `properties`; unknown fields are rejected by the
        # apiserver's strict field validation (kubectl's default) and pruned otherwise.
        del out["additionalProperties"]
    for bound, limit in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        if isinstance(out.get(bound), (int, float)) and not isinstance(out.get(bound), bool):
            # JSON Schema 2020 (pydantic's gt/lt) gives the bound itself; Kubernetes speaks
            # OpenAPI v3, where the bound is `minimum` and exclusiveMinimum is a flag
            out[limit], out[bound] = out[bound], True
    if "enum" in out and "type" not in out:
        out["type"] = "string"
    if out.get("x-kubernetes-preserve-unknown-fields"):
        out.setdefault("type", "object")
    return out


def model_schema(model: type[BaseModel]) -> dict[str, Any]:
    raw = model.model_json_schema(by_alias=True, mode="validation")
    return structural(raw, raw.get("$defs", {}))


def crd(
    *,
    kind: str,
    plural: str,
    short_names: list[str],
    spec_model: type[BaseModel],
    status_model: type[BaseModel] | None,
    columns: list[dict[str, Any]],
    description: str,
) -> dict[str, Any]:
    properties: dict[str, Any] = {
        "apiVersion": {"type": "string"},
        "kind": {"type": "string"},
        "metadata": {"type": "object"},
        "spec": model_schema(spec_model),
    }
    if status_model is not None:
        properties["status"] = model_schema(status_model)
    version: dict[str, Any] = {
        "name": VERSION,
        "served": True,
        "storage": True,
        "schema": {
            "openAPIV3Schema": {
                "type": "object",
                "description": description,
                "required": ["spec"],
                "properties": properties,
            }
        },
        "additionalPrinterColumns": columns,
    }
    if status_model is not None:
        version["subresources"] = {"status": {}}
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": plural,
                "singular": kind.lower(),
                "shortNames": short_names,
                "categories": ["vigil"],
            },
            "scope": "Namespaced",
            "versions": [version],
        },
    }


def all_crds() -> dict[str, dict[str, Any]]:
    """File name -> CRD document."""
    return {
        "vigil.dev_modeldeployments.yaml": crd(
            kind="ModelDeployment",
            plural="modeldeployments",
            short_names=["md"],
            spec_model=ModelDeploymentSpec,
            status_model=ModelDeploymentStatus,
            description="A served model version whose rollouts Vigil guards.",
            columns=[
                {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
                {"name": "Version", "type": "string", "jsonPath": ".spec.version"},
                {"name": "Stable", "type": "string", "jsonPath": ".status.stableVersion"},
                {"name": "Canary Weight", "type": "integer", "jsonPath": ".status.step.weight"},
                {"name": "Verdict", "type": "string", "jsonPath": ".status.verdict"},
                {"name": "Plan", "type": "string", "jsonPath": ".status.plan.summary"},
                {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
            ],
        ),
        "vigil.dev_riskpolicies.yaml": crd(
            kind="RiskPolicy",
            plural="riskpolicies",
            short_names=["rp"],
            spec_model=RiskPolicySpec,
            status_model=None,
            description="Policy as code: what a new model version must prove, and how fast it may take traffic.",
            columns=[
                {"name": "Tier", "type": "string", "jsonPath": ".spec.riskTier"},
                {"name": "Max Weight", "type": "integer", "jsonPath": ".spec.maxWeight"},
                {"name": "Confidence", "type": "number", "jsonPath": ".spec.confidence"},
                {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
            ],
        ),
        "vigil.dev_auditrecords.yaml": crd(
            kind="AuditRecord",
            plural="auditrecords",
            short_names=["audit"],
            spec_model=AuditRecordSpec,
            status_model=None,
            description="An immutable, hash-chained record of one rollout decision.",
            columns=[
                {"name": "Model Deployment", "type": "string", "jsonPath": ".spec.modelDeployment"},
                {"name": "Seq", "type": "integer", "jsonPath": ".spec.seq"},
                {"name": "Action", "type": "string", "jsonPath": ".spec.action"},
                {"name": "Phase", "type": "string", "jsonPath": ".spec.phase"},
                {"name": "Version", "type": "string", "jsonPath": ".spec.version"},
                {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
            ],
        ),
    }


def render(doc: dict[str, Any]) -> str:
    header = "# Generated by `python -m vigil.api.crdgen` from operator/vigil/api. Do not edit.\n"
    return header + yaml.safe_dump(doc, sort_keys=False, width=120)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if crds/ is out of date")
    parser.add_argument("--out", type=Path, action="append", help="output dir (default: crds/ and the chart's)")
    args = parser.parse_args(argv)
    stale = []
    targets = [(out / name, doc) for out in (args.out or [CRD_DIR, CHART_CRD_DIR]) for name, doc in all_crds().items()]
    for path, doc in targets:
        text = render(doc)
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(str(path))
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    if stale:
        print("out of date (run `python -m vigil.api.crdgen`): " + ", ".join(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
